//! The built-in catalog of extension-directory taskservs (containerd, etcd, kubernetes, cilium,
//! coredns, redis, postgres, buildah, buildkit), embedded at compile time from `taskservs/catalog/` and written out
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
    materialize_files("taskservs", files())
}

/// Writes embedded extension `files` (paths relative to their catalog root) once per content
/// under `DIR/KIND_DIR/...` and returns `DIR`, a search-path entry: the same for every kind of
/// built-in catalog (the clusters crate keeps its own).
pub fn materialize_files(kind_dir: &str, files: &[(&str, &[u8])]) -> std::io::Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(kind_dir.as_bytes());
    h.update([0]);
    for (p, c) in files {
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
    let uid = crate::transport::current_uid();
    let base = std::env::temp_dir().join(format!("prov-catalog-{uid}-{digest}"));
    if base.join("complete").is_file() {
        trusted(&base, uid)?;
        return Ok(base);
    }
    let tmp = std::env::temp_dir().join(format!(
        "prov-catalog-{uid}-{digest}.tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    for (p, c) in files {
        let dest = tmp.join(kind_dir).join(p);
        std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
        std::fs::write(dest, c)?;
    }
    restrict(&tmp)?;
    std::fs::write(tmp.join("complete"), b"")?;
    match std::fs::rename(&tmp, &base) {
        Ok(()) => Ok(base),
        // Another process got there first (or an incomplete copy is in the way).
        Err(_) if base.join("complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            trusted(&base, uid)?;
            Ok(base)
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(&base);
            std::fs::rename(&tmp, &base)?;
            Ok(base)
        }
    }
}

/// Scripts from the catalog copy run as this user (often root): the copy must be this user's
/// and writable by nobody else, or someone could have planted it in the shared temp directory.
fn trusted(dir: &std::path::Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{}: the built-in catalog's copy is not a directory owned by uid {uid} and writable only by it; remove it",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Directories 0755 and files 0644 whatever the umask: only the owner may change the copy.
fn restrict(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            restrict(&p)?;
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_copy_others_can_write_is_refused() {
        let uid = crate::transport::current_uid();
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        trusted(d.path(), uid).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = trusted(d.path(), uid).unwrap_err().to_string();
        assert!(e.contains("writable only by it"), "{e}");
        let e = trusted(d.path(), uid + 1).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {}", uid + 1)), "{e}");
    }

    #[test]
    fn materialized_catalog_has_every_file() {
        let dir = materialize().unwrap();
        for (p, c) in files() {
            assert_eq!(&std::fs::read(dir.join("taskservs").join(p)).unwrap(), c);
        }
        assert_eq!(materialize().unwrap(), dir, "written once");
    }
}
