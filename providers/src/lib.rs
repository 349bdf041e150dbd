//! prov's providers: implementations of the engine's `Provider` trait — `sim` (simulated cloud),
//! `local` (sandboxes on this machine: namespaces, sshd, nftables as root), `aws` (EC2 through
//! the AWS SDK, cargo feature `aws`), `upcloud` (UpCloud REST API 1.3) and `exec` (extension
//! directories naming an executable that speaks JSON on stdin/stdout, in any language).

#![deny(clippy::print_stdout, clippy::print_stderr)]
// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod exec;
pub mod local;
pub mod retry;
pub mod settings;
pub mod sim;
pub mod upcloud;

use prov_engine::extension::ExtensionError;
use prov_engine::registry::Registry;

/// Registers every built-in provider of this crate under its name (`sim`, `local`, `upcloud`,
/// and `aws` when built with the `aws` feature).
pub fn register_all(reg: &mut Registry) {
    reg.provider("sim", sim::factory());
    reg.provider_schema("sim", sim::options::SCHEMA);
    reg.provider("local", local::factory());
    reg.provider_schema("local", local::options::SCHEMA);
    reg.provider("upcloud", upcloud::factory());
    reg.provider_schema("upcloud", upcloud::settings::SCHEMA);
    #[cfg(feature = "aws")]
    reg.provider("aws", aws::factory());
    #[cfg(feature = "aws")]
    reg.provider_schema("aws", aws::settings::SCHEMA);
}

/// Registers the extension-directory providers found under `roots` (see
/// `prov_engine::extension::search_path`): each becomes an `exec` provider under its manifest's
/// name. A broken manifest, or a name that is already a built-in provider, is an error naming
/// the directory.
pub fn register_extensions(
    reg: &mut Registry,
    roots: &[prov_engine::extension::Root],
) -> Result<(), ExtensionError> {
    exec::register(reg, roots)
}
