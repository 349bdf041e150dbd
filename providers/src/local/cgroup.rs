//! CPU and memory limits from a sandbox's plan, enforced with cgroups where the kernel lets prov
//! write them: cgroup v2 (`/sys/fs/cgroup` offering the cpu and memory controllers) or cgroup v1
//! (`/sys/fs/cgroup/cpu` and `/sys/fs/cgroup/memory`). The sandbox's group is
//! `prov-local/KEY` in each hierarchy; its sshd joins it, so every session and command run
//! through it inherits the limits. Without root or without those controllers nothing is
//! enforced, and get-server-info says so (`limits_enforced: false`). The empty `prov-local`
//! parent groups stay: removing them would race with another sandbox creating its group.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "/sys/fs/cgroup";
const PERIOD_US: u64 = 100_000;

fn controllers_v2(root: &Path) -> Option<bool> {
    let text = fs::read_to_string(root.join("cgroup.controllers")).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    Some(words.contains(&"cpu") && words.contains(&"memory"))
}

/// The group directories a sandbox with `key` would use here; empty when limits cannot be
/// enforced (not root, no usable hierarchy).
pub fn dirs_for(key: &str) -> Vec<PathBuf> {
    if !super::options::is_root() {
        return Vec::new();
    }
    let root = Path::new(ROOT);
    if controllers_v2(root) == Some(true) {
        return vec![root.join("prov-local").join(key)];
    }
    let (cpu, mem) = (root.join("cpu"), root.join("memory"));
    if cpu.join("cpu.cfs_quota_us").exists() && mem.join("memory.limit_in_bytes").exists() {
        return vec![
            cpu.join("prov-local").join(key),
            mem.join("prov-local").join(key),
        ];
    }
    Vec::new()
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// Creates the groups (once) and sets their limits: `cores` CPUs of time per period and
/// `memory_mb` of memory.
pub fn apply(dirs: &[PathBuf], cores: u32, memory_mb: u64) -> Result<(), String> {
    for dir in dirs {
        let parent = dir.parent().expect("a group has a parent");
        if !parent.exists() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // cgroup v2: controllers must be enabled down to the group's parent.
        if controllers_v2(Path::new(ROOT)) == Some(true) && dir.starts_with(ROOT) {
            for p in [Path::new(ROOT), parent] {
                write(&p.join("cgroup.subtree_control"), "+cpu +memory")?;
            }
        }
        if !dir.exists() {
            fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let bytes = (memory_mb * 1024 * 1024).to_string();
        let quota = (u64::from(cores) * PERIOD_US).to_string();
        if dir.join("memory.max").exists() {
            write(&dir.join("memory.max"), &bytes)?;
        }
        if dir.join("cpu.max").exists() {
            write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
        }
        if dir.join("memory.limit_in_bytes").exists() {
            write(&dir.join("memory.limit_in_bytes"), &bytes)?;
        }
        if dir.join("cpu.cfs_quota_us").exists() {
            write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
            write(&dir.join("cpu.cfs_quota_us"), &quota)?;
        }
    }
    Ok(())
}

/// Moves `pid` (and, as it forks later, its children) into the groups.
pub fn join(dirs: &[PathBuf], pid: i32) -> Result<(), String> {
    for dir in dirs {
        write(&dir.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(())
}

/// The processes in the groups.
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    dirs.iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Removes the groups (their processes must have ended; exiting ones may take a moment).
pub async fn remove(dirs: &[PathBuf]) -> Result<(), String> {
    for dir in dirs {
        let mut tries = 0;
        loop {
            match fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if tries < 50 => {
                    let _ = e;
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(format!("cannot remove cgroup {}: {e}", dir.display())),
            }
        }
    }
    Ok(())
}
