//! prov's clusters: implementations of the engine's `Cluster` trait — `sim`, and
//! extension-directory clusters (`ext`) from the workspace, `PROV_EXTENSIONS_PATH` and the
//! built-in catalog (`buildkit`, `cicd`), whose components run through prov-taskservs.

// Libraries never print: output is the CLI's (tests/tidy.rs checks this line is here).
#![deny(clippy::print_stdout, clippy::print_stderr)]
// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

pub mod ext;
pub mod sim;

use prov_engine::extension::{discover, Extension, ExtensionError, ExtensionKind, Origin, Root};
use prov_engine::registry::Registry;
use serde::Serialize;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

/// Registers every built-in cluster implementation of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.cluster("sim", sim::factory());
}

/// The built-in catalog's files: (path relative to `clusters/catalog/`, bytes).
pub fn catalog_files() -> &'static [(&'static str, &'static [u8])] {
    embedded::FILES
}

/// The extension directories to load: those under `roots`, then the built-in catalog; the
/// first of a name wins. The flag says whether it is the built-in one.
pub fn extensions(roots: &[Root]) -> Result<Vec<(Extension, bool)>, ExtensionError> {
    Ok(discover(&with_catalog(roots)?, ExtensionKind::Cluster)?
        .into_iter()
        .map(|e| {
            let builtin = e.origin == Origin::Catalog;
            (e, builtin)
        })
        .collect())
}

/// `roots` with the built-in cluster catalog (written out once) appended.
pub fn with_catalog(roots: &[Root]) -> Result<Vec<Root>, ExtensionError> {
    let catalog = prov_taskservs::catalog::materialize_files("clusters", catalog_files()).map_err(
        |source| ExtensionError::Io {
            path: std::env::temp_dir(),
            source,
        },
    )?;
    let mut all = roots.to_vec();
    all.push(Root::tree(catalog, Origin::Catalog));
    Ok(all)
}

/// Registers the extension-directory clusters found under `roots` and in the built-in
/// catalog. Their `taskserv` components use the taskservs `reg` holds now, so call this after
/// the taskservs are registered. A name registered in code (`sim`) is not overridden.
pub fn register_extensions(reg: &mut Registry, roots: &[Root]) -> Result<(), ExtensionError> {
    let mut searched: Vec<String> = roots
        .iter()
        .filter_map(|r| r.describe(ExtensionKind::Cluster))
        .collect();
    searched.push(prov_taskservs::CATALOG_LABEL.to_string());
    reg.set_searched("cluster", searched);
    let taskservs = reg.clone();
    let found = extensions(roots)?;
    // Dependencies (clusters or taskservs) are judged against what this search path resolves to.
    let mut known: Vec<Extension> = found.iter().map(|(e, _)| e.clone()).collect();
    known.extend(
        prov_taskservs::extensions(roots)?
            .into_iter()
            .map(|(e, _)| e),
    );
    for (e, _) in found {
        let name = e.name.to_string();
        if name == "sim" {
            continue;
        }
        let spec = ext::spec_of(&e)?;
        let problems = prov_engine::extension::check::unmet_dependencies(&e, &known);
        reg.cluster(&name, ext::factory(e, spec, taskservs.clone(), problems));
    }
    Ok(())
}

/// One cluster extension available to a workspace, for `prov cluster list`.
#[derive(Debug, Clone, Serialize)]
pub struct Available {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The components it carries scripts for (application/infrastructure).
    pub components: Vec<String>,
    /// The extension directory, or `built-in` for the embedded catalog.
    pub source: String,
}

/// Every extension-directory cluster a workspace with these `roots` can use.
pub fn available(roots: &[Root]) -> Result<Vec<Available>, ExtensionError> {
    Ok(extensions(roots)?
        .into_iter()
        .map(|(e, builtin)| {
            let mut components: Vec<String> = std::fs::read_dir(e.dir.join("components"))
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter(|d| d.path().is_dir())
                        .map(|d| d.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            components.sort();
            Available {
                name: e.name.to_string(),
                version: e.manifest.extension.version.clone(),
                description: e.manifest.extension.description.clone(),
                components,
                source: if builtin {
                    "built-in".into()
                } else {
                    e.dir.display().to_string()
                },
            }
        })
        .collect())
}

/// The interface findings only this crate can judge for an extension-directory cluster
/// (`prov extension validate`): its `[cluster]` section parses, each component's does too.
pub fn check(e: &Extension) -> Vec<prov_engine::extension::check::Finding> {
    use prov_engine::extension::check::{Finding, Rule};
    match ext::spec_of(e) {
        Ok(_) => Vec::new(),
        Err(err) => vec![Finding::error(
            Rule::Interface,
            Some(e.dir.join("manifest.toml")),
            err.to_string(),
        )],
    }
}
