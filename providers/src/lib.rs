//! prov's providers: implementations of the engine's `Provider` trait (`sim`, and `aws` with the `aws` feature).

#[cfg(feature = "aws")]
pub mod aws;
pub mod sim;

use prov_engine::extension::ExtensionError;
use prov_engine::registry::Registry;
use std::path::PathBuf;

/// Registers every provider of this crate under its name (`sim`, and `aws` when built with the
/// `aws` feature).
pub fn register_all(reg: &mut Registry) {
    reg.provider("sim", sim::factory());
    #[cfg(feature = "aws")]
    reg.provider("aws", aws::factory());
}

/// Registers the extension-directory providers (`exec`) found under `roots`
/// (see `prov_engine::extension::search_path`). Filled in by the extension-directory work.
pub fn register_extensions(reg: &mut Registry, roots: &[PathBuf]) -> Result<(), ExtensionError> {
    let _ = (reg, roots);
    Ok(())
}
