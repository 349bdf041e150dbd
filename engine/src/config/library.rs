//! The Nickel schema library embedded in prov (`prov/schemas.ncl`, ...) and its materialisation
//! into `<workspace>/.prov/lib/`, where Nickel finds it as an import path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::ConfigError;

/// The library's files: (path relative to the library directory, contents).
pub(crate) static LIBRARY: &[(&str, &str)] = &[
    ("prov/schemas.ncl", include_str!("lib/prov/schemas.ncl")),
    ("prov/workspace.ncl", include_str!("lib/prov/workspace.ncl")),
];

/// The library file whose value is the contract applied to every workspace.
pub(crate) const WORKSPACE_CONTRACT: &str = "prov/workspace.ncl";

/// Where the library is written inside a workspace.
pub(crate) fn lib_dir(workspace_dir: &Path) -> PathBuf {
    workspace_dir.join(".prov").join("lib")
}

/// Write the embedded library below `lib_dir`, creating directories as needed. A file whose
/// contents are already right is left alone; otherwise the new contents go to a temporary file
/// in the same directory that is then renamed over the old one, so concurrent evaluations never
/// see a partly written file.
pub(crate) fn materialize(lib_dir: &Path) -> Result<(), ConfigError> {
    for (rel, contents) in LIBRARY {
        let target = lib_dir.join(rel);
        if std::fs::read(&target).is_ok_and(|old| old == contents.as_bytes()) {
            continue;
        }
        let parent = target.parent().unwrap_or(lib_dir);
        std::fs::create_dir_all(parent).map_err(|source| ConfigError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        let tmp = parent.join(temp_name(&target));
        let written = std::fs::write(&tmp, contents).and_then(|()| std::fs::rename(&tmp, &target));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(ConfigError::Io {
                path: target,
                source,
            });
        }
    }
    Ok(())
}

/// A temporary file name unique to this process and call.
fn temp_name(target: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
