//! Confined evaluation (`EvalOptions::confined`): before Nickel reads anything, every file the configuration imports must be inside the workspace directory or prov's library.
//!
//! Nickel itself has no IO besides `import` (no environment, processes, network or clock), and
//! an import's path is a static string, so the import scan (`scan.rs`) sees every file an
//! evaluation can read. What it cannot read exactly (a multiline string, an escape, a package
//! name) or cannot resolve is refused here instead of being left to Nickel.

use super::scan::ScanResult;
use super::ConfigError;
use std::path::{Path, PathBuf};

fn canonical(p: &Path) -> Result<PathBuf, ConfigError> {
    p.canonicalize().map_err(|source| ConfigError::Io {
        path: p.to_path_buf(),
        source,
    })
}

fn shown(file: &Path, workspace: &Path) -> String {
    file.strip_prefix(workspace)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// prov writes its library into `.prov/lib`: neither that nor `.prov` may lead elsewhere (a
/// symlink committed to the repository would make prov write, and Nickel read, outside it).
pub(crate) fn check_library(workspace: &Path, lib_dir: &Path) -> Result<(), ConfigError> {
    for dir in [workspace.join(".prov"), lib_dir.to_path_buf()] {
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ConfigError::Confined {
                at: shown(&dir, workspace),
                detail: "is a symbolic link".into(),
            });
        }
    }
    Ok(())
}

/// Every scanned file inside the workspace (after resolving symbolic links); no import the scan
/// could not follow.
pub(crate) fn check_scan(
    workspace: &Path,
    lib_dir: &Path,
    scanned: &ScanResult,
) -> Result<(), ConfigError> {
    let root = canonical(workspace)?;
    let lib = canonical(lib_dir)?;
    if let Some((file, import)) = scanned.unresolved.first() {
        let detail = if import.opaque {
            format!(
                "import {} is not a plain \"...\" path without escapes, so the file it reads cannot be checked",
                import.path
            )
        } else {
            format!("import {:?} names no file", import.path)
        };
        return Err(ConfigError::Confined {
            at: format!("{}:{}", shown(file, workspace), import.line),
            detail,
        });
    }
    for f in &scanned.files {
        let c = canonical(f)?;
        if !(c.starts_with(&root) || c.starts_with(&lib)) {
            return Err(ConfigError::Confined {
                at: shown(f, workspace),
                detail: if c == *f {
                    "is imported, but lies outside the workspace".to_string()
                } else {
                    format!(
                        "is imported, but leads to {}, outside the workspace",
                        c.display()
                    )
                },
            });
        }
    }
    Ok(())
}
