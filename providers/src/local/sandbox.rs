//! One sandbox: its directory and metadata, the processes that belong to it, and its sshd.
//!
//! Layout of `.prov/local/ID/`: `meta.json` (what was asked for and what was built: names,
//! address, port, state, ownership tags), `root/` (the working directory of local-process
//! transports), `ssh/` (host key, prov's own key pair, `authorized_keys`), `sshd_config`,
//! `run/sshd.pid`, `log/sshd.log`, `firewall.nft` (netns only: the rule set in force).
//!
//! A process belongs to the sandbox when it runs in the sandbox's network namespace or carries
//! `PROV_LOCAL_SANDBOX=KEY` in its environment (sshd and its sessions, and local-transport
//! commands, get it); that is how stop finds every one of them without cgroups.

use super::cmd::Cmd;
use super::options::Isolation;
use prov_engine::fsutil;
use prov_engine::traits::FirewallRule;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable that marks a sandbox's processes.
pub const MARKER: &str = "PROV_LOCAL_SANDBOX";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// create-server has not finished (or crashed): delete cleans it up, a new create starts over.
    Creating,
    Running,
    Stopped,
    /// delete-server has begun (or was interrupted): another delete finishes it.
    Deleting,
}

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub hostname: String,
    pub plan: String,
    pub zone: String,
    pub os: String,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// The server's tags, ownership tags (`prov:workspace`, `prov:address`) included.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub firewall_rules: Vec<FirewallRule>,
    #[serde(default)]
    pub storage: Value,
    #[serde(default)]
    pub network: Value,
    pub isolation: Isolation,
    /// 10 hex digits from the sandbox directory's path: unique per machine, names the namespace,
    /// the veth pair and the process marker.
    pub key: String,
    #[serde(default)]
    pub netns: Option<String>,
    #[serde(default)]
    pub veth_host: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    /// Whether the sandbox has its own sshd (always in netns mode; in none mode when the sshd
    /// binary exists).
    #[serde(default)]
    pub sshd: bool,
    #[serde(default)]
    pub ssh_port: Option<u16>,
    /// The sandbox's cgroup directories (empty: limits not enforced).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// Why limits are not enforced, when prov tried and the kernel refused.
    #[serde(default)]
    pub limits_note: Option<String>,
    /// The prov process running create-server, while it runs: a create whose process is gone
    /// was interrupted.
    #[serde(default)]
    pub creator_pid: Option<u32>,
    pub ssh_user: String,
    pub state: State,
    pub created_at: String,
    #[serde(default)]
    pub boots: u64,
}

pub fn meta_path(dir: &Path) -> PathBuf {
    dir.join("meta.json")
}

pub fn read_meta(dir: &Path) -> Result<Option<Meta>, String> {
    fsutil::read_json(&meta_path(dir))
        .map_err(|e| format!("cannot read {}: {e}", meta_path(dir).display()))
}

pub fn write_meta(dir: &Path, meta: &Meta) -> Result<(), String> {
    fsutil::write_json_atomic(&meta_path(dir), meta)
        .map_err(|e| format!("cannot write {}: {e}", meta_path(dir).display()))
}

pub fn client_key(dir: &Path) -> PathBuf {
    dir.join("ssh").join("id_ed25519")
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("run").join("sshd.pid")
}

fn log_file(dir: &Path) -> PathBuf {
    dir.join("log").join("sshd.log")
}

/// Whether process `pid` is alive (not a zombie).
pub fn process_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(alive)
}

fn alive(pid: i32) -> bool {
    // A zombie has no command line left: it no longer counts.
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// The sandbox's sshd pid, if one is running.
pub fn sshd_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    // sshd rewrites its title but keeps its config path in it: a recycled pid will not match.
    let text = String::from_utf8_lossy(&cmdline);
    (text.contains("sshd") && alive(pid)).then_some(pid)
}

/// The parent pid of `pid` (field 4 of `/proc/PID/stat`, after the parenthesised name).
fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every process of the sandbox (never this process): those in its namespace, those carrying
/// its marker, its sshd (which rewrites its title over its environment, hiding the marker) and
/// every descendant of these (sshd's per-connection processes do the same).
pub async fn pids(meta: &Meta, dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut found = std::collections::BTreeSet::new();
    if let Some(ns) = &meta.netns {
        if super::net::netns_exists(ns) {
            if let Ok(text) = Cmd::new("ip").args(["netns", "pids", ns]).run().await {
                found.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    found.extend(sshd_pid(dir));
    found.extend(super::cgroup::pids(&meta.cgroups));
    let needle = format!("{MARKER}={}", meta.key);
    let mut parents = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(env) = fs::read(e.path().join("environ")) {
                if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                    found.insert(pid);
                }
            }
            if let Some(pp) = ppid(pid) {
                parents.push((pid, pp));
            }
        }
    }
    // Descendants, to a fixed point.
    loop {
        let before = found.len();
        for (pid, pp) in &parents {
            if found.contains(pp) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found
        .into_iter()
        .filter(|p| *p != me && *p > 1 && alive(*p))
        .collect()
}

/// Ends every process of the sandbox: SIGTERM, then SIGKILL after 3 s.
pub async fn kill_all(meta: &Meta, dir: &Path) -> Result<(), String> {
    let start = Instant::now();
    let mut signal = libc::SIGTERM;
    loop {
        let left = pids(meta, dir).await;
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(3) {
            signal = libc::SIGKILL;
        }
        if start.elapsed() > Duration::from_secs(8) {
            return Err(format!("processes {left:?} did not end after SIGKILL"));
        }
        for p in &left {
            // SAFETY: kill has no memory-safety preconditions; a vanished pid yields ESRCH.
            unsafe {
                libc::kill(*p, signal);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A public key written inline (`ssh-ed25519 AAAA... comment`).
pub fn looks_like_public_key(s: &str) -> bool {
    let t = s.trim_start();
    ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| t.starts_with(p))
        && t.split_whitespace().count() >= 2
}

/// `ssh_keys` entries → public key lines: inline keys as they are, anything else read as the
/// path of a public-key file (`~/` is the home directory).
pub fn resolve_keys(keys: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if looks_like_public_key(k) {
            out.push(k.trim().to_string());
            continue;
        }
        let path = match k.strip_prefix("~/") {
            Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
            None => PathBuf::from(k),
        };
        let text = fs::read_to_string(&path).map_err(|e| {
            format!(
                "ssh_keys[{i}]: {k:?} is neither a public key (\"ssh-ed25519 AAAA...\") nor a \
                 readable public-key file ({e})"
            )
        })?;
        let lines: Vec<&str> = text.lines().filter(|l| looks_like_public_key(l)).collect();
        if lines.is_empty() {
            return Err(format!(
                "ssh_keys[{i}]: {} holds no public key",
                path.display()
            ));
        }
        out.extend(lines.iter().map(|l| l.trim().to_string()));
    }
    Ok(out)
}

/// Generates the host key and prov's client key (once) and writes `authorized_keys`.
pub async fn prepare_ssh(dir: &Path, user_keys: &[String]) -> Result<(), String> {
    let ssh = dir.join("ssh");
    fs::create_dir_all(&ssh).map_err(|e| format!("cannot create {}: {e}", ssh.display()))?;
    for (name, comment) in [("ssh_host_ed25519_key", "host"), ("id_ed25519", "prov")] {
        let key = ssh.join(name);
        if key.exists() && key.with_extension("pub").exists() {
            continue;
        }
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        let key_s = key.display().to_string();
        Cmd::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &key_s])
            .run()
            .await?;
    }
    write_authorized_keys(dir, user_keys)
}

/// prov's own public key plus the server's `ssh_keys`.
pub fn write_authorized_keys(dir: &Path, user_keys: &[String]) -> Result<(), String> {
    let ssh = dir.join("ssh");
    let own = fs::read_to_string(ssh.join("id_ed25519.pub"))
        .map_err(|e| format!("cannot read prov's public key: {e}"))?;
    let mut text = own.trim().to_string();
    text.push('\n');
    for k in user_keys {
        text.push_str(k);
        text.push('\n');
    }
    let path = ssh.join("authorized_keys");
    fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A free TCP port on 127.0.0.1 (another process could take it before sshd binds it: the
/// caller retries).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

fn sshd_config(dir: &Path, listen: &str, key: &str) -> String {
    let ssh = dir.join("ssh");
    // Without PAM a non-root sshd cannot read the shadow file and takes every account for a
    // locked one; as root PAM's session modules (pam_loginuid) can fail in containers, and
    // sshd reads the shadow file itself.
    let pam = if super::options::is_root() {
        "no"
    } else {
        "yes"
    };
    format!(
        "# Written by prov's local provider for this sandbox only.\n\
         ListenAddress {listen}\n\
         HostKey \"{}\"\n\
         AuthorizedKeysFile \"{}\"\n\
         PidFile \"{}\"\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM {pam}\n\
         StrictModes no\n\
         PrintMotd no\n\
         Subsystem sftp internal-sftp\n\
         SetEnv {MARKER}={key}\n",
        ssh.join("ssh_host_ed25519_key").display(),
        ssh.join("authorized_keys").display(),
        pid_file(dir).display(),
    )
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

async fn wait_listening(addr: SocketAddr, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = tokio::task::spawn_blocking(move || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
        })
        .await
        .unwrap_or(false);
        if ok && sshd_pid(dir).is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "sshd is not accepting connections on {addr} after 10s (log: {})",
                tail(&log_file(dir))
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the sandbox's sshd unless it runs: in the namespace on ADDRESS:22 (netns), or on
/// 127.0.0.1 at the recorded port or a free one (none). Updates `meta.ssh_port`.
pub async fn start_sshd(sshd: &str, meta: &mut Meta, dir: &Path) -> Result<(), String> {
    if sshd_pid(dir).is_some() {
        return Ok(());
    }
    for d in ["run", "log"] {
        fs::create_dir_all(dir.join(d)).map_err(|e| format!("cannot create {d}/: {e}"))?;
    }
    if super::options::is_root() {
        // Debian's sshd refuses to start without its privilege-separation directory.
        let _ = fs::create_dir_all("/run/sshd");
    }
    let cfg = dir.join("sshd_config");
    let cfg_s = cfg.display().to_string();
    let log_s = log_file(dir).display().to_string();
    let attempts = if meta.netns.is_some() { 1 } else { 3 };
    let mut last = String::new();
    for attempt in 0..attempts {
        let (listen, addr): (String, SocketAddr) = match (&meta.netns, &meta.address) {
            (Some(_), Some(a)) => (
                format!("{a}:22"),
                format!("{a}:22").parse().map_err(|e| format!("{e}"))?,
            ),
            _ => {
                let port = match meta.ssh_port {
                    Some(p) if attempt == 0 => p,
                    _ => free_port()?,
                };
                meta.ssh_port = Some(port);
                (
                    format!("127.0.0.1:{port}"),
                    SocketAddr::from(([127, 0, 0, 1], port)),
                )
            }
        };
        if meta.netns.is_some() {
            meta.ssh_port = Some(22);
        }
        fs::write(&cfg, sshd_config(dir, &listen, &meta.key))
            .map_err(|e| format!("cannot write {cfg_s}: {e}"))?;
        let _ = fs::remove_file(pid_file(dir));
        Cmd::new(sshd).args(["-t", "-f", &cfg_s]).run().await?;
        let run = match &meta.netns {
            Some(ns) => {
                Cmd::new("ip").args(["netns", "exec", ns, sshd, "-f", &cfg_s, "-E", &log_s])
            }
            None => Cmd::new(sshd).args(["-f", &cfg_s, "-E", &log_s]),
        };
        run.env(MARKER, &meta.key).run().await?;
        match wait_listening(addr, dir).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                last = e;
                // Whatever did start must not linger before the next attempt.
                if let Some(pid) = sshd_pid(dir) {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
    }
    Err(last)
}
