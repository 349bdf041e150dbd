//! Extension directories: the `manifest.toml` every provider/taskserv/cluster extension carries,
//! and where prov looks for them (the workspace first, then `PROV_EXTENSIONS_PATH`).
//!
//! The engine only finds and reads manifests; what a directory *does* (run an executable, render
//! templates and scripts) belongs to the crate that implements that kind of extension.

use crate::model::Name;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The kinds of extension, as spelled in `manifest.toml`'s `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtensionKind {
    Provider,
    Taskserv,
    Cluster,
}

impl ExtensionKind {
    /// The sub-directory of a search-path entry holding this kind (`providers`, `taskservs`, `clusters`).
    pub fn dir_name(self) -> &'static str {
        match self {
            ExtensionKind::Provider => "providers",
            ExtensionKind::Taskserv => "taskservs",
            ExtensionKind::Cluster => "clusters",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionKind::Provider => "provider",
            ExtensionKind::Taskserv => "taskserv",
            ExtensionKind::Cluster => "cluster",
        }
    }
}

/// `[extension]` of a manifest: the metadata shared by every kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionMeta {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ExtensionKind,
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// Other extensions of the same kind this one needs (for taskservs: installed first on the server).
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// A parsed `manifest.toml`. Sections other than `[extension]` and `[capabilities]` (e.g.
/// `[exec]`, `[taskserv]`) are kept as TOML for the implementing crate to read.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub extension: ExtensionMeta,
    pub capabilities: BTreeMap<String, toml::Value>,
    pub sections: toml::Table,
}

/// An extension found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub name: Name,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Extension {
    /// A section other than `[extension]`/`[capabilities]`, deserialised into `T`
    /// (`Ok(None)` when absent). Errors name the manifest file.
    pub fn section<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ExtensionError> {
        match self.manifest.sections.get(name) {
            None => Ok(None),
            Some(v) => v
                .clone()
                .try_into()
                .map(Some)
                .map_err(|e: toml::de::Error| ExtensionError::Manifest {
                    path: self.dir.join("manifest.toml"),
                    message: format!("[{name}]: {}", e.message()),
                }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads and checks `dir/manifest.toml`. `expected` (when given) must match its `type`.
pub fn read_manifest(
    dir: &Path,
    expected: Option<ExtensionKind>,
) -> Result<Extension, ExtensionError> {
    let path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| ExtensionError::Io {
        path: path.clone(),
        source,
    })?;
    parse_manifest(&text, dir, expected)
}

/// Parses and checks the text of `dir/manifest.toml` (see [`read_manifest`]); errors name that
/// file and, for TOML syntax, the line.
pub fn parse_manifest(
    text: &str,
    dir: &Path,
    expected: Option<ExtensionKind>,
) -> Result<Extension, ExtensionError> {
    let path = dir.join("manifest.toml");
    let bad = |message: String| ExtensionError::Manifest {
        path: path.clone(),
        message,
    };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        bad(format!("{line}{}", e.message()))
    })?;
    let meta = table
        .remove("extension")
        .ok_or_else(|| bad("missing the [extension] table (name, type, version)".into()))?;
    let extension: ExtensionMeta = meta
        .try_into()
        .map_err(|e: toml::de::Error| bad(format!("[extension]: {}", e.message())))?;
    let capabilities = match table.remove("capabilities") {
        None => BTreeMap::new(),
        Some(toml::Value::Table(t)) => t.into_iter().collect(),
        Some(_) => return Err(bad("[capabilities] must be a table".into())),
    };
    if let Some(kind) = expected {
        if extension.kind != kind {
            return Err(bad(format!(
                "type is {:?}, expected {:?} (it sits in a {} directory)",
                extension.kind.as_str(),
                kind.as_str(),
                kind.dir_name()
            )));
        }
    }
    let name = Name::new(&extension.name)
        .map_err(|e| bad(format!("[extension] name {:?}: {e}", extension.name)))?;
    Ok(Extension {
        name,
        dir: dir.to_path_buf(),
        manifest: Manifest {
            extension,
            capabilities,
            sections: table,
        },
    })
}

/// Where extensions are looked for, in order: `WORKSPACE/extensions`, then each entry of
/// `PROV_EXTENSIONS_PATH` (colon-separated). Each entry holds `providers/`, `taskservs/`,
/// `clusters/` sub-directories of extension directories.
pub fn search_path(workspace_dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![workspace_dir.join("extensions")];
    if let Some(p) = std::env::var_os("PROV_EXTENSIONS_PATH") {
        out.extend(std::env::split_paths(&p).filter(|p| !p.as_os_str().is_empty()));
    }
    out
}

/// Every extension of `kind` under `roots` (see [`search_path`]). When two directories declare
/// the same name, the one found first wins (the workspace overrides `PROV_EXTENSIONS_PATH`).
/// A directory with a broken manifest is an error, never skipped silently.
pub fn discover(roots: &[PathBuf], kind: ExtensionKind) -> Result<Vec<Extension>, ExtensionError> {
    let mut found: BTreeMap<String, Extension> = BTreeMap::new();
    for root in roots {
        let dir = root.join(kind.dir_name());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ExtensionError::Io { path: dir, source }),
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("manifest.toml").is_file())
            .collect();
        dirs.sort();
        for d in dirs {
            let ext = read_manifest(&d, Some(kind))?;
            found.entry(ext.name.to_string()).or_insert(ext);
        }
    }
    Ok(found.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn discovers_parses_and_prefers_the_first_root() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(
            a.path(),
            "taskservs/redis/manifest.toml",
            "[extension]\nname = \"redis\"\ntype = \"taskserv\"\nversion = \"7.0.0\"\ndependencies = [\"containerd\"]\n[capabilities]\nhealth = true\n[taskserv]\nport = 6379\n",
        );
        write(
            b.path(),
            "taskservs/redis/manifest.toml",
            "[extension]\nname = \"redis\"\ntype = \"taskserv\"\nversion = \"6.0.0\"\n",
        );
        write(
            b.path(),
            "taskservs/etcd/manifest.toml",
            "[extension]\nname = \"etcd\"\ntype = \"taskserv\"\nversion = \"3.5.0\"\n",
        );
        let found = discover(
            &[a.path().to_path_buf(), b.path().to_path_buf()],
            ExtensionKind::Taskserv,
        )
        .unwrap();
        let names: Vec<_> = found.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(names, ["etcd", "redis"]);
        let redis = &found[1];
        assert_eq!(redis.manifest.extension.version, "7.0.0");
        assert_eq!(redis.manifest.extension.dependencies, ["containerd"]);
        assert_eq!(
            redis.manifest.capabilities["health"],
            toml::Value::Boolean(true)
        );
        #[derive(Deserialize)]
        struct Ts {
            port: u16,
        }
        assert_eq!(redis.section::<Ts>("taskserv").unwrap().unwrap().port, 6379);
        assert!(redis.section::<Ts>("exec").unwrap().is_none());
    }

    #[test]
    fn broken_manifests_name_the_file_and_the_problem() {
        let a = tempfile::tempdir().unwrap();
        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"p\"\ntype = \"taskserv\"\nversion = \"1\"\n",
        );
        let e = discover(&[a.path().to_path_buf()], ExtensionKind::Provider)
            .unwrap_err()
            .to_string();
        assert!(e.contains("providers/p/manifest.toml"), "{e}");
        assert!(e.contains("expected \"provider\""), "{e}");

        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"p\"\n\ntype = = \"provider\"\n",
        );
        let e = discover(&[a.path().to_path_buf()], ExtensionKind::Provider)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4"), "{e}");

        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"p\"\ntype = \"provider\"\n",
        );
        let e = discover(&[a.path().to_path_buf()], ExtensionKind::Provider)
            .unwrap_err()
            .to_string();
        assert!(e.contains("version"), "{e}");

        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"Bad Name\"\ntype = \"provider\"\nversion = \"1\"\n",
        );
        let e = discover(&[a.path().to_path_buf()], ExtensionKind::Provider)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bad Name"), "{e}");
    }
}
