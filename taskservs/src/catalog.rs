//! The built-in catalog of extension-directory taskservs (containerd, etcd, kubernetes, cilium,
//! coredns, redis, postgres), embedded at compile time from `taskservs/catalog/` and written out
//! once to a content-addressed directory, where it is loaded like any other extension directory.

use sha2::{Digest, Sha256};
use std::path::PathBuf;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

/// The embedded files: (path relative to the catalog root, e.g. `redis/manifest.toml`, bytes).
pub fn files() -> &'static [(&'static str, &'static [u8])] {
    embedded::FILES
}

/// The names of the taskservs in the built-in catalog.
pub fn names() -> Vec<&'static str> {
    let mut n: Vec<&str> = files()
        .iter()
        .filter_map(|(p, _)| p.strip_suffix("/manifest.toml"))
        .collect();
    n.sort_unstable();
    n
}

/// Writes the catalog out (once per content) and returns the search-path entry holding it:
/// `DIR/taskservs/NAME/...`. The directory is named by a hash of the contents, so different
/// prov builds never share a stale copy, and concurrent processes race harmlessly (rename).
pub fn materialize() -> std::io::Result<PathBuf> {
    let mut h = Sha256::new();
    for (p, c) in files() {
        h.update(p.as_bytes());
        h.update([0]);
        h.update(c);
    }
    let digest: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = std::env::temp_dir().join(format!("prov-catalog-{digest}"));
    if base.join("complete").is_file() {
        return Ok(base);
    }
    let tmp = std::env::temp_dir().join(format!(
        "prov-catalog-{digest}.tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (p, c) in files() {
        let dest = tmp.join("taskservs").join(p);
        std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
        std::fs::write(dest, c)?;
    }
    std::fs::write(tmp.join("complete"), b"")?;
    match std::fs::rename(&tmp, &base) {
        Ok(()) => Ok(base),
        // Another process got there first (or an incomplete copy is in the way).
        Err(_) if base.join("complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(base)
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(&base);
            std::fs::rename(&tmp, &base)?;
            Ok(base)
        }
    }
}
