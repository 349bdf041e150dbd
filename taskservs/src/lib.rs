//! prov's taskservs: implementations of the engine's `TaskServ` trait — `sim`, and
//! extension-directory taskservs (`ext`) from the workspace, `PROV_EXTENSIONS_PATH` and the
//! built-in catalog (`catalog`), reaching servers through `transport`.

pub mod catalog;
pub mod ext;
pub mod sim;
pub mod transport;

use prov_engine::extension::{discover, Extension, ExtensionError, ExtensionKind};
use prov_engine::registry::Registry;
use serde::Serialize;
use std::path::PathBuf;

/// Registers every built-in taskserv implementation of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.taskserv("sim", sim::factory());
}

/// How the built-in catalog is named in "searched" lists.
pub const CATALOG_LABEL: &str = "the built-in catalog";

/// The extension directories to load: those under `roots` (see
/// `prov_engine::extension::search_path`), then the built-in catalog; the first of a name wins.
pub fn extensions(roots: &[PathBuf]) -> Result<Vec<(Extension, bool)>, ExtensionError> {
    let catalog = catalog::materialize().map_err(|source| ExtensionError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut all = roots.to_vec();
    all.push(catalog.clone());
    Ok(discover(&all, ExtensionKind::Taskserv)?
        .into_iter()
        .map(|e| {
            let builtin = e.dir.starts_with(&catalog);
            (e, builtin)
        })
        .collect())
}

/// Registers the extension-directory taskservs found under `roots` and in the built-in
/// catalog. A name registered in code (`sim`) is not overridden.
pub fn register_extensions(reg: &mut Registry, roots: &[PathBuf]) -> Result<(), ExtensionError> {
    let mut searched: Vec<String> = roots
        .iter()
        .map(|r| {
            // Absolute, so the message means the same wherever it is read.
            let d = r.join(ExtensionKind::Taskserv.dir_name());
            std::path::absolute(&d).unwrap_or(d).display().to_string()
        })
        .collect();
    searched.push(CATALOG_LABEL.to_string());
    reg.set_searched("taskserv", searched);
    for (ext, _) in extensions(roots)? {
        let name = ext.name.to_string();
        if reg.has_taskserv(&name) && name == "sim" {
            continue;
        }
        let spec = ext::spec_of(&ext)?;
        reg.set_taskserv_requires(&name, ext.manifest.extension.dependencies.clone());
        reg.taskserv(&name, ext::factory(ext, spec));
    }
    Ok(())
}

/// One taskserv available to a workspace, for `prov taskserv list`.
#[derive(Debug, Clone, Serialize)]
pub struct Available {
    pub name: String,
    pub version: String,
    pub description: String,
    pub dependencies: Vec<String>,
    /// The extension directory, or `built-in` for the embedded catalog.
    pub source: String,
}

/// Every extension-directory taskserv a workspace with these `roots` can use.
pub fn available(roots: &[PathBuf]) -> Result<Vec<Available>, ExtensionError> {
    Ok(extensions(roots)?
        .into_iter()
        .map(|(e, builtin)| Available {
            name: e.name.to_string(),
            version: e.manifest.extension.version.clone(),
            description: e.manifest.extension.description.clone(),
            dependencies: e.manifest.extension.dependencies.clone(),
            source: if builtin {
                "built-in".into()
            } else {
                e.dir.display().to_string()
            },
        })
        .collect())
}
