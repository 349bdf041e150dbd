//! prov's providers: implementations of the engine's `Provider` trait (`sim`, `local`).

pub mod local;
pub mod sim;

use prov_engine::extension::ExtensionError;
use prov_engine::registry::Registry;
use std::path::PathBuf;

/// Registers every provider of this crate under its name (`sim`, `local`).
pub fn register_all(reg: &mut Registry) {
    reg.provider("sim", sim::factory());
    reg.provider("local", local::factory());
}

/// Registers the extension-directory providers (`exec`) found under `roots`
/// (see `prov_engine::extension::search_path`). Filled in by the extension-directory work.
pub fn register_extensions(reg: &mut Registry, roots: &[PathBuf]) -> Result<(), ExtensionError> {
    let _ = (reg, roots);
    Ok(())
}
