//! Small file helpers for implementations whose world lives in files: atomic JSON writes,
//! no-clobber publishing, tolerant reads, cross-process striped locks and timestamps.
//!
//! The taskservs and clusters crates keep a copy of the same helpers (they may not depend on this
//! crate); the lock protocol below must stay identical in all three copies, because the sim
//! provider's out-of-band edits and the sim taskserv write the same files.

use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of lock files under a world's `locks/` directory.
pub const LOCK_STRIPES: u64 = 64;

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

/// A held exclusive `flock` on one lock stripe; released when dropped (the file is closed).
pub struct StripeLock {
    _file: File,
}

/// FNV-1a, 64 bit: a fixed, dependency-free hash so every crate maps a key to the same stripe.
fn fnv1a(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Locks the stripe for `key` (a world-relative path such as `servers/sim-0123456789ab` or
/// `taskservs/sim-0123456789ab/redis`): `locks_dir/NN.lock`, NN = fnv1a(key) % 64, with
/// `flock(LOCK_EX)`. flock excludes other processes and also other open files in this process,
/// and the kernel drops it when a holder is killed. Blocking: call it off the async runtime, and
/// never while holding another stripe (two keys may share a stripe).
pub fn lock_stripe(locks_dir: &Path, key: &str) -> io::Result<StripeLock> {
    let path = locks_dir.join(format!("{:02}.lock", fnv1a(key) % LOCK_STRIPES));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    loop {
        // SAFETY: flock on a file descriptor we own and keep open for the lock's lifetime.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(StripeLock { _file: file });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether `s` is safe as one path component: non-empty, no separators, not dot-led.
pub fn is_safe_component(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '+'))
}

/// The current UTC time as RFC 3339 (`2024-05-01T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the lock protocol: the copies in prov-taskservs and prov-clusters assert the same.
    #[test]
    fn lock_stripes_are_pinned() {
        assert_eq!(fnv1a("servers/sim-0123456789ab") % LOCK_STRIPES, 2);
        assert_eq!(fnv1a("taskservs/sim-0123456789ab/redis") % LOCK_STRIPES, 12);
        assert_eq!(fnv1a("clusters/buildkit") % LOCK_STRIPES, 23);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
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
}
