//! prov's taskservs: implementations of the engine's `TaskServ` trait (currently `sim`).

pub mod sim;

use prov_engine::extension::ExtensionError;
use prov_engine::registry::Registry;
use std::path::PathBuf;

/// Registers every taskserv implementation of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.taskserv("sim", sim::factory());
}

/// Registers the extension-directory taskservs found under `roots`
/// (see `prov_engine::extension::search_path`). Filled in by the extension-directory work.
pub fn register_extensions(reg: &mut Registry, roots: &[PathBuf]) -> Result<(), ExtensionError> {
    let _ = (reg, roots);
    Ok(())
}
