//! Where the simulated world keeps each object under `<workspace>/.prov/sim/`, and the lock
//! protocol every process writing there follows.
//!
//! ```text
//! <workspace>/.prov/sim/
//!   servers/<id>.json                       one SimServer per file (id = "sim-" + 12 hex chars)
//!   taskservs/<server_id>/<name>.json       an installed taskserv (prov-taskservs' sim)
//!   clusters/<name>.json                    a cluster (prov-clusters' sim)
//!   clusters/<name>/components/<comp>.json  one of its components
//!   ips/<slot>                              address-pool claim: contains the owning server id
//!   ips/.next                               hint: the slot to try next (any value is safe)
//!   locks/NN.lock                           64 flock stripes (see [`lock_stripe`])
//! ```
//!
//! A read-modify-write holds the stripe of its key (`servers/<id>`, `taskservs/<server_id>/<name>`,
//! `clusters/<name>`), so an update racing a delete cannot resurrect the deleted object.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Number of lock files under the world's `locks/` directory.
pub const LOCK_STRIPES: u64 = 64;

/// The paths of one workspace's world. Building one touches no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The world of the workspace at `workspace_dir`: `<workspace_dir>/.prov/sim`.
    pub fn of(workspace_dir: impl AsRef<Path>) -> Layout {
        Layout {
            root: workspace_dir.as_ref().join(".prov").join("sim"),
        }
    }

    /// `<workspace>/.prov/sim`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The top-level directories `World::open` creates.
    pub const DIRS: [&'static str; 5] = ["servers", "taskservs", "clusters", "ips", "locks"];

    pub fn servers_dir(&self) -> PathBuf {
        self.root.join("servers")
    }
    pub fn server_file(&self, id: &str) -> PathBuf {
        self.servers_dir().join(format!("{id}.json"))
    }
    pub fn server_key(id: &str) -> String {
        format!("servers/{id}")
    }

    /// `taskservs/<server_id>`: what a server's deletion removes with it.
    pub fn taskservs_dir(&self, server_id: &str) -> PathBuf {
        self.root.join("taskservs").join(server_id)
    }
    /// The file of taskserv `name` on server `server_id`; an error when either name could
    /// leave its directory.
    pub fn taskserv_file(&self, server_id: &str, name: &str) -> Result<PathBuf, String> {
        if !is_safe_component(server_id) {
            return Err(format!("invalid server id {server_id:?}"));
        }
        if !is_safe_component(name) {
            return Err(format!("invalid taskserv name {name:?}"));
        }
        Ok(self.taskservs_dir(server_id).join(format!("{name}.json")))
    }
    pub fn taskserv_key(server_id: &str, name: &str) -> String {
        format!("taskservs/{server_id}/{name}")
    }

    /// `clusters/<name>.json`; an error when the name could leave its directory.
    pub fn cluster_file(&self, cluster: &str) -> Result<PathBuf, String> {
        if !is_safe_component(cluster) {
            return Err(format!("invalid cluster name {cluster:?}"));
        }
        Ok(self.root.join("clusters").join(format!("{cluster}.json")))
    }
    /// `clusters/<name>`: holds `components/`.
    pub fn cluster_dir(&self, cluster: &str) -> PathBuf {
        self.root.join("clusters").join(cluster)
    }
    pub fn components_dir(&self, cluster: &str) -> PathBuf {
        self.cluster_dir(cluster).join("components")
    }
    /// `clusters/<cluster>/components/<component>.json`.
    pub fn component_file(&self, cluster: &str, component: &str) -> Result<PathBuf, String> {
        if !is_safe_component(component) {
            return Err(format!("invalid component name {component:?}"));
        }
        Ok(self
            .components_dir(cluster)
            .join(format!("{component}.json")))
    }
    pub fn cluster_key(cluster: &str) -> String {
        format!("clusters/{cluster}")
    }

    pub fn ips_dir(&self) -> PathBuf {
        self.root.join("ips")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Takes the stripe of `key` (one of the `*_key` functions), creating `locks/` if needed.
    pub fn lock(&self, key: &str) -> io::Result<StripeLock> {
        let dir = self.locks_dir();
        std::fs::create_dir_all(&dir)?;
        lock_stripe(&dir, key)
    }
}

/// Whether `s` is safe as one path component: non-empty, no separators, not dot-led.
pub fn is_safe_component(s: &str) -> bool {
    prov_engine::fsutil::is_safe_component(s)
}

/// A held exclusive `flock` on one lock stripe; released when dropped (the file is closed).
pub struct StripeLock {
    _file: File,
}

/// FNV-1a, 64 bit: a fixed, dependency-free hash so every implementation maps a key to the same
/// stripe.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the lock protocol: the sim provider's out-of-band edits, the sim taskserv and the sim
    /// cluster (and any process of an older build) must agree on every key's stripe.
    #[test]
    fn lock_stripes_are_pinned() {
        let stripe = |k: &str| fnv1a(k) % LOCK_STRIPES;
        assert_eq!(stripe(&Layout::server_key("sim-0123456789ab")), 2);
        assert_eq!(
            stripe(&Layout::taskserv_key("sim-0123456789ab", "redis")),
            12
        );
        assert_eq!(stripe(&Layout::cluster_key("buildkit")), 23);
    }

    #[test]
    fn paths_stay_inside_the_world() {
        let l = Layout::of("/ws");
        assert_eq!(l.root(), Path::new("/ws/.prov/sim"));
        assert_eq!(
            l.server_file("sim-1"),
            Path::new("/ws/.prov/sim/servers/sim-1.json")
        );
        assert_eq!(
            l.taskserv_file("sim-1", "redis").unwrap(),
            Path::new("/ws/.prov/sim/taskservs/sim-1/redis.json")
        );
        assert_eq!(
            l.component_file("bk", "registry").unwrap(),
            Path::new("/ws/.prov/sim/clusters/bk/components/registry.json")
        );
        assert!(l
            .taskserv_file("..", "redis")
            .unwrap_err()
            .contains("server id"));
        assert!(l
            .taskserv_file("sim-1", "a/b")
            .unwrap_err()
            .contains("taskserv name"));
        assert!(l
            .cluster_file(".hidden")
            .unwrap_err()
            .contains("cluster name"));
        assert!(l
            .component_file("bk", "")
            .unwrap_err()
            .contains("component name"));
    }

    #[test]
    fn a_stripe_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::of(dir.path());
        let held = l.lock(&Layout::cluster_key("a")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = l.clone();
        let waiter = std::thread::spawn(move || {
            let _second = l2.lock(&Layout::cluster_key("a")).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}
