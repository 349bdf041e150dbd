//! The advisory lock file beside a file-based state (`.prov/state.lock`): an exclusive `flock`
//! plus a JSON note saying who holds it, so a second prov can name the holder.
//!
//! `flock` belongs to the open file description, so it is released by the kernel when the
//! holder exits for any reason (kill -9 included): there are no stale locks to break by hand.
//! Only the note can outlive its holder; `force_unlock_sled` clears such a note.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{now_secs, random_hex};
use crate::{LockInfo, StateError};

/// A waiting open retries the lock from this interval on, doubling up to the caller's limit, so
/// a lock let go a moment later (a session handing the state over) is taken at once.
const FIRST_POLL: Duration = Duration::from_millis(1);

/// How long to re-read a holder note that is missing or looks stale: the holder writes it just
/// after taking the lock, so a reader can catch the gap.
const NOTE_GRACE: Duration = Duration::from_millis(300);

/// An exclusive lock, held until drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
    info: LockInfo,
}

impl FileLock {
    /// Takes the lock at `path` (created 0600 if missing), waiting up to `timeout` and retrying
    /// at most every `poll` (from 1 ms, doubling).
    pub(crate) fn acquire_polling(
        path: &Path,
        operation: &str,
        timeout: Duration,
        poll: Duration,
    ) -> Result<FileLock, StateError> {
        let file = open_lock_file(path)?;
        let deadline = Instant::now() + timeout;
        let mut wait = FIRST_POLL.min(poll);
        while !try_flock(&file).map_err(|source| io_error(path, source))? {
            let now = Instant::now();
            if now >= deadline {
                return Err(StateError::Locked {
                    holder: Box::new(read_holder(path)),
                });
            }
            std::thread::sleep(wait.min(deadline - now));
            wait = (wait * 2).min(poll);
        }
        Self::noted(file, path, operation)
    }

    /// The lock if it is free now; `None` (without reading who holds it) if not.
    pub(crate) fn try_acquire(
        path: &Path,
        operation: &str,
    ) -> Result<Option<FileLock>, StateError> {
        let file = open_lock_file(path)?;
        if !try_flock(&file).map_err(|source| io_error(path, source))? {
            return Ok(None);
        }
        Self::noted(file, path, operation).map(Some)
    }

    /// Writes the note naming us into the lock file we just locked.
    fn noted(file: File, path: &Path, operation: &str) -> Result<FileLock, StateError> {
        let info = LockInfo {
            id: random_hex(8),
            user: current_user(),
            host: hostname(),
            pid: std::process::id(),
            operation: operation.to_string(),
            since: now_secs(),
            location: path.display().to_string(),
        };
        // Not fsync'd: the note only matters while this process lives.
        let note = serde_json::to_vec(&info).expect("LockInfo always serialises");
        file.set_len(0).map_err(|source| io_error(path, source))?;
        file.write_all_at(&note, 0)
            .map_err(|source| io_error(path, source))?;
        Ok(FileLock { file, info })
    }

    pub(crate) fn info(&self) -> &LockInfo {
        &self.info
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Clear the note first so nobody reads us as the holder after we let go.
        let _ = self.file.set_len(0);
        // SAFETY: the fd is valid for as long as `self.file` lives.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The lock file guarding `state_dir`: `<state_dir>.lock`, beside it (`.prov/state` ->
/// `.prov/state.lock`).
pub fn lock_path_for(state_dir: &Path) -> Result<PathBuf, StateError> {
    let name = state_dir
        .file_name()
        .ok_or_else(|| StateError::InvalidPath {
            path: state_dir.to_path_buf(),
            detail: "it must end in a directory name, like .prov/state".to_string(),
        })?;
    let mut lock_name = name.to_os_string();
    lock_name.push(".lock");
    Ok(state_dir.with_file_name(lock_name))
}

/// The waiting room beside a lock file (`state.lock` -> `state.lock.wait`): a process waiting
/// for the lock holds a shared `flock` on it while it waits, and a holder that keeps the lock
/// between operations (a sled session) probes it to learn that someone waits and hands over.
/// Like the lock itself, a waiter that dies leaves nothing behind.
pub(crate) struct WaitRoom {
    path: PathBuf,
    /// The holder's own open file description, for probing; opened once the file exists (a
    /// waiter creates it), so a state nobody waited for has none.
    probe: std::sync::OnceLock<File>,
}

impl WaitRoom {
    pub(crate) fn new(lock_path: &Path) -> WaitRoom {
        let mut name = lock_path.as_os_str().to_os_string();
        name.push(".wait");
        WaitRoom {
            path: PathBuf::from(name),
            probe: std::sync::OnceLock::new(),
        }
    }

    /// Announces a waiter until the returned file is dropped (closing it lets go).
    pub(crate) fn enter(&self) -> Result<File, StateError> {
        let file = open_lock_file(&self.path)?;
        flock_retrying(&file, libc::LOCK_SH).map_err(|source| io_error(&self.path, source))?;
        Ok(file)
    }

    /// True when some process (this one included, through another store) waits: a waiter's
    /// shared lock makes our exclusive probe fail.
    pub(crate) fn occupied(&self) -> bool {
        let probe = match self.probe.get() {
            Some(f) => f,
            None => match std::fs::File::open(&self.path) {
                Ok(f) => self.probe.get_or_init(|| f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
                // Cannot tell: hand over, the safe side for whoever might wait.
                Err(_) => return true,
            },
        };
        match try_flock(probe) {
            Ok(true) => {
                // SAFETY: plain syscall on a valid fd.
                unsafe { libc::flock(probe.as_raw_fd(), libc::LOCK_UN) };
                false
            }
            Ok(false) | Err(_) => true,
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| io_error(path, source))
}

/// A blocking `flock(op)`, retried on EINTR.
fn flock_retrying(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: plain syscall on a valid fd.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

fn io_error(path: &Path, source: io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `Ok(true)` when the lock was taken, `Ok(false)` when someone else holds it.
pub(crate) fn try_flock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: plain syscall on a valid fd.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Reads the holder's note. Returns a LockInfo with pid 0 and empty id when there is no usable
/// note (a non-prov process holds the lock, e.g. `flock(1)`).
fn read_holder(path: &Path) -> LockInfo {
    let start = Instant::now();
    let here = hostname();
    loop {
        let note = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok());
        if let Some(mut n) = note.filter(|n| n.host != here || pid_alive(n.pid)) {
            // The holder may have used a path relative to another cwd.
            n.location = path.display().to_string();
            return n;
        }
        if start.elapsed() >= NOTE_GRACE {
            // No note, or one left by a dead process (notes are not cleared on kill -9): the
            // holder is something that does not write notes.
            return unknown_holder(path.display().to_string());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn unknown_holder(location: String) -> LockInfo {
    LockInfo {
        id: String::new(),
        user: String::new(),
        host: String::new(),
        pid: 0,
        operation: String::new(),
        since: 0,
        location,
    }
}

/// Who this process is, as the holder of a lock acquired now (a fresh random id).
pub(crate) fn new_holder(operation: &str, location: String) -> LockInfo {
    LockInfo {
        id: random_hex(8),
        user: current_user(),
        host: hostname(),
        pid: std::process::id(),
        operation: operation.to_string(),
        since: now_secs(),
        location,
    }
}

/// A resource lock as a file-based state's lock table keeps it: the holder, and when its
/// process started, so a pid reused by another process after the holder died is not taken for
/// the holder.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct LockEntry {
    pub(crate) holder: LockInfo,
    /// The holder process's start time (`/proc/PID/stat` field 22, clock ticks since boot);
    /// 0 when unknown.
    pub(crate) start: u64,
}

impl LockEntry {
    pub(crate) fn mine(holder: &LockInfo) -> LockEntry {
        LockEntry {
            holder: holder.clone(),
            start: process_start(holder.pid).unwrap_or(0),
        }
    }

    /// Whether the holder may still be running. On another host it cannot be checked, so it
    /// counts as alive (`prov force-unlock` clears it).
    pub(crate) fn alive(&self) -> bool {
        if self.holder.host != hostname() {
            return true;
        }
        pid_alive(self.holder.pid)
            && (self.start == 0 || process_start(self.holder.pid) == Some(self.start))
    }
}

/// When process `pid` started (see [`LockEntry::start`]), if it exists.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What a successful force-unlock did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForceUnlock {
    /// The lock itself was free (its holder had exited without releasing it cleanly, e.g. killed)
    /// and the holder note it left behind, shown here, was removed.
    StaleNoteCleared(LockInfo),
    /// Resource locks of this holder, which is not running on this host, were removed from a
    /// sled state's lock table (a holder on another host, which prov cannot check, or one
    /// that is gone).
    ResourceLocksCleared {
        holder: LockInfo,
        addresses: Vec<String>,
    },
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

pub(crate) fn current_user() -> String {
    if let Ok(u) = std::env::var("USER") {
        if !u.is_empty() {
            return u;
        }
    }
    // SAFETY: getpwuid_r writes into our buffers only; pw_name points into `buf`, read before
    // `buf` is dropped.
    unsafe {
        let uid = libc::geteuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            return CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
        }
        format!("uid {uid}")
    }
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
