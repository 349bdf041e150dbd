//! A content-addressed cache of evaluated configurations: keyed by the bytes of every file the evaluation reads and the prov version.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped when the cached document's shape changes.
const CACHE_FORMAT: &str = "prov-eval-cache-1";

/// The cache key, or None when a file cannot be read (then nothing is cached).
pub(crate) fn key(files: &[PathBuf]) -> Option<String> {
    let mut h = Sha256::new();
    h.update(CACHE_FORMAT);
    h.update(env!("CARGO_PKG_VERSION"));
    let mut sorted: Vec<&PathBuf> = files.iter().collect();
    sorted.sort();
    for f in sorted {
        let bytes = std::fs::read(f).ok()?;
        h.update(f.to_string_lossy().as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn dir(workspace: &Path) -> PathBuf {
    workspace.join(".prov").join("cache")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    format: String,
    key: String,
    value: serde_json::Value,
    positions: BTreeMap<String, String>,
}

pub(crate) fn load(
    workspace: &Path,
    key: &str,
) -> Option<(serde_json::Value, BTreeMap<String, String>)> {
    let bytes = std::fs::read(dir(workspace).join("eval.json")).ok()?;
    let e: Entry = serde_json::from_slice(&bytes).ok()?;
    (e.format == CACHE_FORMAT && e.key == key).then_some((e.value, e.positions))
}

/// Best effort: a cache that cannot be written only costs the next run an evaluation. One entry
/// per workspace (the last configuration), written atomically.
pub(crate) fn store(
    workspace: &Path,
    key: &str,
    value: &serde_json::Value,
    positions: &BTreeMap<String, String>,
) {
    let d = dir(workspace);
    if std::fs::create_dir_all(&d).is_err() {
        return;
    }
    let e = Entry {
        format: CACHE_FORMAT.into(),
        key: key.into(),
        value: value.clone(),
        positions: positions.clone(),
    };
    let Ok(bytes) = serde_json::to_vec(&e) else {
        return;
    };
    let tmp = d.join(format!("eval.json.tmp.{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, d.join("eval.json")).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
