//! Extension registries: plain TOML files naming extension directories, one per user
//! (`$XDG_CONFIG_HOME/prov/extensions.toml`, else `~/.config/prov/extensions.toml`) and one per
//! workspace (`WORKSPACE/extensions.toml`, for a team to commit). The seed's
//! register-extension / unregister-extension / list-registered-extensions.
//!
//! ```toml
//! [[extension]]
//! name = "redis2"
//! type = "taskserv"
//! path = "../exts/redis2"    # relative to this file's directory, or absolute
//! ```

use super::{Extension, ExtensionError, ExtensionKind, Origin, Place, Root};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One registered extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ExtensionKind,
    /// As written: relative to the registry file's directory, or absolute.
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    #[serde(default, rename = "extension")]
    pub entries: Vec<Entry>,
}

/// The user's registry: `$XDG_CONFIG_HOME/prov/extensions.toml`, else
/// `$HOME/.config/prov/extensions.toml` (None without either).
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("prov").join("extensions.toml"))
}

/// The workspace's registry: `WORKSPACE/extensions.toml`.
pub fn workspace_file(workspace_dir: &Path) -> PathBuf {
    workspace_dir.join("extensions.toml")
}

/// Reads a registry file; a missing one is empty. Errors name the file and line.
pub fn read(file: &Path) -> Result<RegistryFile, ExtensionError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryFile::default()),
        Err(source) => {
            return Err(ExtensionError::Io {
                path: file.to_path_buf(),
                source,
            })
        }
    };
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| format!("line {}: ", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        ExtensionError::Manifest {
            path: file.to_path_buf(),
            message: format!("{line}{}", e.message().trim()),
        }
    })
}

/// The directory an entry of `file` names.
pub fn entry_dir(file: &Path, entry: &Entry) -> PathBuf {
    let p = Path::new(&entry.path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// The search-path entries of a registry file (one per entry; a broken file is one `Broken`
/// entry, an error when searched).
pub fn roots(file: &Path, origin: Origin) -> Vec<Root> {
    match read(file) {
        Ok(r) => r
            .entries
            .iter()
            .map(|e| Root {
                origin,
                place: Place::Registered {
                    kind: e.kind,
                    name: e.name.clone(),
                    dir: entry_dir(file, e),
                    file: file.to_path_buf(),
                },
            })
            .collect(),
        Err(e) => vec![Root {
            origin,
            place: Place::Broken {
                file: file.to_path_buf(),
                message: match e {
                    ExtensionError::Manifest { message, .. } => message,
                    other => other.to_string(),
                },
            },
        }],
    }
}

/// What [`register`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub file: PathBuf,
    pub entry: Entry,
    /// The entry of the same kind and name it replaced.
    pub replaced: Option<Entry>,
}

/// Adds `ext` to the registry `file` (created with its directory when missing), replacing an
/// entry of the same kind and name. The path is written relative to the file's directory when
/// the extension lies below it (a workspace registry stays valid in every clone), else absolute.
pub fn register(file: &Path, ext: &Extension) -> Result<Registered, ExtensionError> {
    let mut reg = read(file)?;
    let dir = std::path::absolute(&ext.dir).map_err(|source| ExtensionError::Io {
        path: ext.dir.clone(),
        source,
    })?;
    let base = file
        .parent()
        .map(|p| std::path::absolute(p).unwrap_or(p.to_path_buf()));
    let path = match base.as_deref().and_then(|b| dir.strip_prefix(b).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => dir.display().to_string(),
    };
    let entry = Entry {
        name: ext.name.to_string(),
        kind: ext.manifest.extension.kind,
        path,
    };
    let replaced = reg
        .entries
        .iter()
        .position(|e| e.kind == entry.kind && e.name == entry.name)
        .map(|i| reg.entries.remove(i));
    reg.entries.push(entry.clone());
    write(file, &reg)?;
    Ok(Registered {
        file: file.to_path_buf(),
        entry,
        replaced,
    })
}

/// Removes the entries named `name` (of `kind` when given) from `file`; returns them. None
/// found, or two kinds of that name without `kind`, is an error listing what is registered.
pub fn unregister(
    file: &Path,
    name: &str,
    kind: Option<ExtensionKind>,
) -> Result<Vec<Entry>, ExtensionError> {
    let mut reg = read(file)?;
    let matching: Vec<usize> = reg
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == name && kind.is_none_or(|k| k == e.kind))
        .map(|(i, _)| i)
        .collect();
    let listed = || {
        if reg.entries.is_empty() {
            "it registers nothing".to_string()
        } else {
            format!(
                "it registers {}",
                reg.entries
                    .iter()
                    .map(|e| format!("{} {}", e.kind, e.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let bad = |message: String| ExtensionError::Manifest {
        path: file.to_path_buf(),
        message,
    };
    if matching.is_empty() {
        return Err(bad(format!(
            "no registered {} named {name:?}: {}",
            kind.map_or("extension", ExtensionKind::as_str),
            listed()
        )));
    }
    if matching.len() > 1 {
        return Err(bad(format!(
            "{name:?} is registered as {}: say which with --type",
            matching
                .iter()
                .map(|&i| reg.entries[i].kind.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    }
    let removed = vec![reg.entries.remove(matching[0])];
    write(file, &reg)?;
    Ok(removed)
}

/// Writes the registry atomically (a temporary file renamed over it).
fn write(file: &Path, reg: &RegistryFile) -> Result<(), ExtensionError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExtensionError::Io { path, source }
    };
    let parent = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let body = toml::to_string(reg).map_err(|e| ExtensionError::Manifest {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let text = format!(
        "# prov extension registry (`prov extension register|unregister|list`; docs/extensions.md).\n# Paths are relative to this file's directory.\n\n{body}"
    );
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, file).map_err(io(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(dir: &Path, name: &str, kind: &str) -> Extension {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("manifest.toml"),
            format!("[extension]\nname = \"{name}\"\ntype = \"{kind}\"\nversion = \"1.0.0\"\n"),
        )
        .unwrap();
        super::super::read_manifest(dir, None).unwrap()
    }

    #[test]
    fn register_relative_replace_unregister() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("extensions.toml");
        let a = ext(&t.path().join("exts/a"), "a", "taskserv");
        let r = register(&file, &a).unwrap();
        assert_eq!(r.entry.path, "exts/a");
        assert!(r.replaced.is_none());
        let again = register(&file, &a).unwrap();
        assert_eq!(again.replaced.as_ref().unwrap().name, "a");
        let other = tempfile::tempdir().unwrap();
        let b = ext(&other.path().join("b"), "a", "cluster");
        let r = register(&file, &b).unwrap();
        assert!(Path::new(&r.entry.path).is_absolute());
        assert_eq!(read(&file).unwrap().entries.len(), 2);
        let roots = roots(&file, Origin::UserRegistry);
        assert_eq!(roots.len(), 2);
        let found = super::super::discover(&roots, ExtensionKind::Taskserv).unwrap();
        assert_eq!(found[0].dir, t.path().join("exts/a"));
        assert_eq!(found[0].origin, Origin::UserRegistry);

        let e = unregister(&file, "a", None).unwrap_err().to_string();
        assert!(e.contains("taskserv and cluster"), "{e}");
        assert_eq!(
            unregister(&file, "a", Some(ExtensionKind::Cluster)).unwrap()[0].kind,
            ExtensionKind::Cluster
        );
        let e = unregister(&file, "zz", None).unwrap_err().to_string();
        assert!(e.contains("it registers taskserv a"), "{e}");

        std::fs::remove_dir_all(t.path().join("exts/a")).unwrap();
        let e = super::super::discover(&roots, ExtensionKind::Taskserv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unregister a"), "{e}");

        std::fs::write(&file, "[[extension]]\nname = \"x\"\ntype = \"gadget\"\n").unwrap();
        let e = super::super::discover(
            &super::roots(&file, Origin::UserRegistry),
            ExtensionKind::Taskserv,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("extensions.toml") && e.contains("line "), "{e}");
    }
}
