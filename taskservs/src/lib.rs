//! prov's taskservs: implementations of the engine's `TaskServ` trait — `sim`, and
//! extension-directory taskservs (`ext`) from the workspace, `PROV_EXTENSIONS_PATH` and the
//! built-in catalog (`catalog`), reaching servers through `transport`.

#![deny(clippy::print_stdout, clippy::print_stderr)]
// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

pub mod catalog;
pub mod ext;
pub mod sim;
pub mod transport;

use prov_engine::extension::{discover, Extension, ExtensionError, ExtensionKind, Origin, Root};
use prov_engine::registry::Registry;
use serde::Serialize;

/// Registers every built-in taskserv implementation of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.taskserv("sim", sim::factory());
}

/// How the built-in catalog is named in "searched" lists.
pub const CATALOG_LABEL: &str = "the built-in catalog";

/// The extension directories to load: those under `roots` (see
/// `prov_engine::extension::search_path`), then the built-in catalog; the first of a name wins.
pub fn extensions(roots: &[Root]) -> Result<Vec<(Extension, bool)>, ExtensionError> {
    Ok(discover(&with_catalog(roots)?, ExtensionKind::Taskserv)?
        .into_iter()
        .map(|e| {
            let builtin = e.origin == Origin::Catalog;
            (e, builtin)
        })
        .collect())
}

/// `roots` with the built-in catalog (written out once) appended: the whole search path.
pub fn with_catalog(roots: &[Root]) -> Result<Vec<Root>, ExtensionError> {
    let catalog = catalog::materialize().map_err(|source| ExtensionError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut all = roots.to_vec();
    all.push(Root::tree(catalog, Origin::Catalog));
    Ok(all)
}

/// Registers the extension-directory taskservs found under `roots` and in the built-in
/// catalog. A name registered in code (`sim`) is not overridden.
pub fn register_extensions(reg: &mut Registry, roots: &[Root]) -> Result<(), ExtensionError> {
    // Absolute, so the message means the same wherever it is read.
    let mut searched: Vec<String> = roots
        .iter()
        .filter_map(|r| r.describe(ExtensionKind::Taskserv))
        .collect();
    searched.push(CATALOG_LABEL.to_string());
    reg.set_searched("taskserv", searched);
    let found = extensions(roots)?;
    // Dependencies are judged against the extensions this search path resolves to.
    let known: Vec<Extension> = found.iter().map(|(e, _)| e.clone()).collect();
    for (ext, _) in found {
        let name = ext.name.to_string();
        if reg.has_taskserv(&name) && name == "sim" {
            continue;
        }
        let spec = ext::spec_of(&ext)?;
        reg.set_taskserv_requires(&name, ext.manifest.extension.dependency_names());
        let problems = prov_engine::extension::check::unmet_dependencies(&ext, &known);
        reg.taskserv(&name, ext::factory(ext, spec, problems));
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
pub fn available(roots: &[Root]) -> Result<Vec<Available>, ExtensionError> {
    Ok(extensions(roots)?
        .into_iter()
        .map(|(e, builtin)| Available {
            name: e.name.to_string(),
            version: e.manifest.extension.version.clone(),
            description: e.manifest.extension.description.clone(),
            dependencies: e.manifest.extension.dependency_names(),
            source: if builtin {
                "built-in".into()
            } else {
                e.dir.display().to_string()
            },
        })
        .collect())
}

/// The interface findings only this crate can judge for an extension-directory taskserv
/// (`prov extension validate`): its `[taskserv]` section parses, its declared templates exist.
pub fn check(ext: &Extension) -> Vec<prov_engine::extension::check::Finding> {
    use prov_engine::extension::check::{line_of, Finding, Rule};
    let manifest = ext.dir.join("manifest.toml");
    let spec = match ext::spec_of(ext) {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::error(
                Rule::Interface,
                Some(manifest),
                e.to_string(),
            )]
        }
    };
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    spec.files
        .iter()
        .filter(|f| !ext.dir.join("templates").join(&f.template).is_file())
        .map(|f| {
            Finding::error(
                Rule::Interface,
                Some(manifest.clone()),
                format!(
                    "[[taskserv.files]] template {:?}: templates/{} does not exist",
                    f.template, f.template
                ),
            )
            .at(line_of(&text, &format!("\"{}\"", f.template)))
        })
        .collect()
}

/// Renders the template file `template` with `ctx` as apply does (strict undefineds, trailing
/// newline kept); errors name the template file and line. For `prov extension test --unit`.
pub fn render_template(
    template: &std::path::Path,
    ctx: &serde_json::Value,
) -> Result<String, String> {
    let shown = template.display().to_string();
    let src = std::fs::read_to_string(template).map_err(|e| format!("{shown}: {e}"))?;
    ext::render_file(&shown, &src, ctx)
}
