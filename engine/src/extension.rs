//! Extension directories: the `manifest.toml` every provider/taskserv/cluster extension carries,
//! and where prov looks for them (the workspace first, then `PROV_EXTENSIONS_PATH`).
//!
//! The engine only finds, reads and checks extension directories (the registries of
//! `registered`, the rules of `check`, the skeletons of `scaffold`, the unit tests of `unit`);
//! what a directory *does* (run an executable, render templates and scripts) belongs to the crate
//! that implements that kind of extension.

pub mod check;
pub mod registered;
pub mod scaffold;
pub mod unit;

use crate::model::Name;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of the extension interface this prov implements (the operations, scripts,
/// manifest sections and exec protocol of docs/extensions.md), checked against a manifest's
/// `[compatibility] interface_version`.
pub const INTERFACE_VERSION: &str = "1.0.0";

/// prov's own version, checked against `[compatibility] prov_version`.
pub const PROV_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The kinds of extension, as spelled in `manifest.toml`'s `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
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
    pub const ALL: [ExtensionKind; 3] = [
        ExtensionKind::Provider,
        ExtensionKind::Taskserv,
        ExtensionKind::Cluster,
    ];
}

impl std::str::FromStr for ExtensionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "provider" | "providers" => Ok(ExtensionKind::Provider),
            "taskserv" | "taskservs" => Ok(ExtensionKind::Taskserv),
            "cluster" | "clusters" => Ok(ExtensionKind::Cluster),
            other => Err(format!(
                "unknown extension type {other:?}: provider, taskserv or cluster"
            )),
        }
    }
}

impl std::fmt::Display for ExtensionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `[extension] dependencies`: a name (`"containerd"`), or a table with a semver
/// constraint and the kind when it differs from the extension's own
/// (`{ name = "containerd", version = ">=1.0", type = "taskserv" }`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dependency {
    pub name: String,
    /// A semver requirement (`">=1.0.0, <2"`); none: any version.
    pub version: Option<String>,
    /// The kind of the dependency; none: the same kind as the extension.
    pub kind: Option<ExtensionKind>,
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            name: String,
            #[serde(default)]
            version: Option<String>,
            #[serde(default, rename = "type")]
            kind: Option<ExtensionKind>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Name(String),
            Table(Table),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a dependency is a name or a table { name, version = \"SEMVER REQUIREMENT\", type }",
            )
        })? {
            Either::Name(name) => Ok(Dependency {
                name,
                version: None,
                kind: None,
            }),
            Either::Table(t) => Ok(Dependency {
                name: t.name,
                version: t.version,
                kind: t.kind,
            }),
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
    /// Other extensions this one needs (for taskservs: taskservs installed first on the server).
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
}

impl ExtensionMeta {
    /// The names of the dependencies of the extension's own kind (what taskservs require on
    /// the same server).
    pub fn dependency_names(&self) -> Vec<String> {
        self.dependencies
            .iter()
            .filter(|d| d.kind.is_none_or(|k| k == self.kind))
            .map(|d| d.name.clone())
            .collect()
    }
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
    /// Where it was found (which decides which of two of one name wins).
    pub origin: Origin,
}

/// Where an extension comes from, in precedence order: of two extensions of one kind and name,
/// the one whose origin comes first wins (docs/extensions.md, "Precedence").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Origin {
    /// `WORKSPACE/extensions/{providers,taskservs,clusters}/NAME`.
    #[serde(rename = "workspace")]
    Workspace,
    /// An entry of the workspace's registry, `WORKSPACE/extensions.toml`.
    #[serde(rename = "registered (workspace)")]
    WorkspaceRegistry,
    /// An entry of `PROV_EXTENSIONS_PATH`.
    #[serde(rename = "PROV_EXTENSIONS_PATH")]
    EnvPath,
    /// An entry of the user's registry, `$XDG_CONFIG_HOME/prov/extensions.toml`.
    #[serde(rename = "registered (user)")]
    UserRegistry,
    /// Built into prov.
    #[serde(rename = "catalog")]
    Catalog,
    /// A directory named on the command line (`prov extension validate PATH`).
    #[serde(rename = "path")]
    Direct,
    /// Compiled into the prov binary (the `sim`, `local`, `upcloud` and `aws` providers, the
    /// `sim` taskserv and cluster): no directory; ahead of every directory of its name.
    #[serde(rename = "built-in")]
    Compiled,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Workspace => "workspace",
            Origin::WorkspaceRegistry => "registered (workspace)",
            Origin::EnvPath => "PROV_EXTENSIONS_PATH",
            Origin::UserRegistry => "registered (user)",
            Origin::Catalog => "catalog",
            Origin::Direct => "path",
            Origin::Compiled => "built-in",
        }
    }
}

/// One place on the search path.
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    pub origin: Origin,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// A directory holding `providers/`, `taskservs/`, `clusters/` of extension directories.
    Tree(PathBuf),
    /// One registered extension directory (an entry of a registry file).
    Registered {
        kind: ExtensionKind,
        name: String,
        dir: PathBuf,
        file: PathBuf,
    },
    /// A registry file that cannot be read: an error when it is searched, like a broken manifest.
    Broken { file: PathBuf, message: String },
}

impl Root {
    pub fn tree(dir: PathBuf, origin: Origin) -> Root {
        Root {
            origin,
            place: Place::Tree(dir),
        }
    }

    /// How "searched" lists name this place for `kind` (None: it holds no extension of it).
    pub fn describe(&self, kind: ExtensionKind) -> Option<String> {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or(p.to_path_buf());
        match &self.place {
            Place::Tree(d) => Some(abs(&d.join(kind.dir_name())).display().to_string()),
            Place::Registered {
                kind: k, dir, file, ..
            } if *k == kind => Some(format!(
                "{} (registered in {})",
                abs(dir).display(),
                file.display()
            )),
            Place::Registered { .. } => None,
            Place::Broken { file, .. } => Some(file.display().to_string()),
        }
    }
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
        origin: Origin::Direct,
    })
}

/// Where extensions are looked for, in precedence order: `WORKSPACE/extensions`, the
/// workspace's registry (`WORKSPACE/extensions.toml`), each entry of `PROV_EXTENSIONS_PATH`
/// (colon-separated), the user's registry (`$XDG_CONFIG_HOME/prov/extensions.toml`). The
/// implementing crates add their built-in catalogs last. A tree entry holds `providers/`,
/// `taskservs/`, `clusters/` sub-directories of extension directories.
pub fn search_path(workspace_dir: &Path) -> Vec<Root> {
    let mut out = vec![Root::tree(
        workspace_dir.join("extensions"),
        Origin::Workspace,
    )];
    out.extend(registered::roots(
        &registered::workspace_file(workspace_dir),
        Origin::WorkspaceRegistry,
    ));
    if let Some(p) = std::env::var_os("PROV_EXTENSIONS_PATH") {
        out.extend(
            std::env::split_paths(&p)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| Root::tree(p, Origin::EnvPath)),
        );
    }
    if let Some(user) = registered::user_file() {
        out.extend(registered::roots(&user, Origin::UserRegistry));
    }
    out
}

/// Every extension of `kind` under `roots` (see [`search_path`]). When two directories declare
/// the same name, the one found first wins (the workspace overrides `PROV_EXTENSIONS_PATH`).
/// A directory with a broken manifest is an error, never skipped silently.
pub fn discover(roots: &[Root], kind: ExtensionKind) -> Result<Vec<Extension>, ExtensionError> {
    let mut found: BTreeMap<String, Extension> = BTreeMap::new();
    for ext in discover_all(roots, kind)? {
        found.entry(ext.name.to_string()).or_insert(ext);
    }
    Ok(found.into_values().collect())
}

/// Every extension of `kind` under `roots` in precedence order, shadowed ones included (what
/// `prov extension list` shows).
pub fn discover_all(roots: &[Root], kind: ExtensionKind) -> Result<Vec<Extension>, ExtensionError> {
    let mut out = Vec::new();
    for root in roots {
        match &root.place {
            Place::Tree(tree) => {
                let dir = tree.join(kind.dir_name());
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
                    let mut ext = read_manifest(&d, Some(kind))?;
                    ext.origin = root.origin;
                    out.push(ext);
                }
            }
            Place::Registered {
                kind: k,
                name,
                dir,
                file,
            } if *k == kind => {
                if !dir.join("manifest.toml").is_file() {
                    return Err(ExtensionError::Manifest {
                        path: file.clone(),
                        message: format!(
                            "the registered {kind} {name:?} is gone: {} has no manifest.toml (`prov extension unregister {name}` removes the entry)",
                            dir.display()
                        ),
                    });
                }
                let mut ext = read_manifest(dir, Some(kind))?;
                if ext.name.as_str() != name {
                    return Err(ExtensionError::Manifest {
                        path: file.clone(),
                        message: format!(
                            "the registered {kind} {name:?} at {} now calls itself {:?}: register it again",
                            dir.display(),
                            ext.name.as_str()
                        ),
                    });
                }
                ext.origin = root.origin;
                out.push(ext);
            }
            Place::Registered { .. } => {}
            Place::Broken { file, message } => {
                return Err(ExtensionError::Manifest {
                    path: file.clone(),
                    message: message.clone(),
                })
            }
        }
    }
    Ok(out)
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
            &[
                Root::tree(a.path().to_path_buf(), Origin::Workspace),
                Root::tree(b.path().to_path_buf(), Origin::EnvPath),
            ],
            ExtensionKind::Taskserv,
        )
        .unwrap();
        let names: Vec<_> = found.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(names, ["etcd", "redis"]);
        let redis = &found[1];
        assert_eq!(redis.manifest.extension.version, "7.0.0");
        assert_eq!(redis.manifest.extension.dependency_names(), ["containerd"]);
        assert_eq!(redis.origin, Origin::Workspace);
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
        let e = discover(
            &[Root::tree(a.path().to_path_buf(), Origin::Workspace)],
            ExtensionKind::Provider,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("providers/p/manifest.toml"), "{e}");
        assert!(e.contains("expected \"provider\""), "{e}");

        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"p\"\n\ntype = = \"provider\"\n",
        );
        let e = discover(
            &[Root::tree(a.path().to_path_buf(), Origin::Workspace)],
            ExtensionKind::Provider,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 4"), "{e}");

        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"p\"\ntype = \"provider\"\n",
        );
        let e = discover(
            &[Root::tree(a.path().to_path_buf(), Origin::Workspace)],
            ExtensionKind::Provider,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("version"), "{e}");

        write(
            a.path(),
            "providers/p/manifest.toml",
            "[extension]\nname = \"Bad Name\"\ntype = \"provider\"\nversion = \"1\"\n",
        );
        let e = discover(
            &[Root::tree(a.path().to_path_buf(), Origin::Workspace)],
            ExtensionKind::Provider,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Bad Name"), "{e}");
    }
}
