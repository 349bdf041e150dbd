//! Small filesystem helpers for extension implementations whose objects live in files: atomic JSON
//! files, tolerant reads and removals, safe path components, RFC 3339 timestamps.
//!
//! Extension crates use them for their own files; the engine itself uses only the clock (a plan's
//! `timestamp`). Cross-process locking of such files is the extension crate's business.

use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use prov_state::format_utc;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp file next to `path` (same directory, so a rename is atomic); dot-prefixed and
/// `.tmp`-suffixed so directory listings skip leftovers of a killed process.
fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let tmp = temp_path(path);
    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    if let Err(e) = f.write_all(bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Writes `value` as JSON to `path` via a temp file and a rename, so readers (and a process
/// killed mid-write) only ever see the old or the new content. No fsync: the world must survive
/// SIGKILL, not power loss, and benchmarks write thousands of files.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value)?;
    let tmp = write_temp(path, &bytes)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Publishes `value` at `path` only if nothing is there yet: `Ok(false)` when it exists. A hard
/// link is an atomic create-if-absent of a complete file (create_new + write could be torn).
pub fn create_json_exclusive<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<bool> {
    let bytes = serde_json::to_vec_pretty(value)?;
    let tmp = write_temp(path, &bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("invalid JSON: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file; `Ok(false)` when it was already gone.
pub fn remove_file(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes a directory tree; missing is fine.
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a directory entry name is a data file (`*.json`, not a dot-prefixed temp file).
pub fn is_data_file(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.')
}

/// Whether `s` is safe as one path component: non-empty, no separators, not dot-led.
pub fn is_safe_component(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '+'))
}

/// Unix seconds as RFC 3339 UTC (`2024-05-01T12:00:00Z`): [`format_utc`]'s date and time.
pub fn format_rfc3339(unix_secs: u64) -> String {
    let utc = format_utc(unix_secs);
    let stamp = utc.strip_suffix(" UTC").unwrap_or(&utc);
    format!("{}Z", stamp.replacen(' ', "T", 1))
}

/// The current UTC time as RFC 3339 (`2024-05-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(19_723 * 86_400), "2024-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(19_782 * 86_400), "2024-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_615_387), "2026-11-25T14:03:07Z");
        let now = now_rfc3339();
        assert!(now.len() == 20 && now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }

    #[test]
    fn exclusive_create_does_not_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        assert!(create_json_exclusive(&p, &1).unwrap());
        assert!(!create_json_exclusive(&p, &2).unwrap());
        assert_eq!(read_json::<i32>(&p).unwrap(), Some(1));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp files are cleaned up");
    }

    #[test]
    fn tolerant_reads_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json");
        assert_eq!(read_json::<i32>(&p).unwrap(), None);
        write_json_atomic(&p, &[1, 2]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), Some(vec![1, 2]));
        assert!(remove_file(&p).unwrap());
        assert!(!remove_file(&p).unwrap());
        remove_dir_all(&dir.path().join("missing")).unwrap();
        assert!(is_data_file("a-1.json") && !is_data_file(".a-1.json.7.0.tmp"));
        assert!(is_safe_component("web-01") && !is_safe_component("../x"));
    }
}
