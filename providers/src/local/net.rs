//! Network plumbing of netns sandboxes (root only): the host bridge, outbound NAT and address
//! leases shared by every workspace and every prov process, and each sandbox's namespace, veth
//! pair and nftables rule set.
//!
//! Host-level state lives in `/run/prov-local/` (tmpfs: gone after a reboot, like the bridge):
//! `BRIDGE.lock` (an `flock` that serialises every change to the bridge, NAT and leases across
//! processes), and `BRIDGE/` with `subnet` (the subnet the bridge serves), `leases/ADDRESS`
//! (one JSON file per address in use: the sandbox directory and namespace) and, when prov turned
//! IPv4 forwarding on, `ip_forward.orig`. When the last lease goes, the bridge, the NAT table and
//! `BRIDGE/` go too, and forwarding is restored — unless another prov bridge is still in use,
//! which then inherits `ip_forward.orig`.

use super::cmd::Cmd;
use super::firewall;
use super::options::{LocalOptions, Subnet};
use prov_engine::traits::FirewallRule;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const RUN_DIR: &str = "/run/prov-local";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The nftables table (family `ip`) holding a bridge's NAT and forwarding rules.
pub fn nat_table(bridge: &str) -> String {
    format!("prov_local_{}", bridge.replace('-', "_"))
}

fn host_dir(bridge: &str) -> PathBuf {
    Path::new(RUN_DIR).join(bridge)
}

/// One address in use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub dir: PathBuf,
    pub netns: String,
}

/// The held host lock; released when dropped.
struct HostLock {
    _file: File,
}

async fn lock_host(bridge: &str) -> Result<HostLock, String> {
    fs::create_dir_all(RUN_DIR).map_err(|e| format!("cannot create {RUN_DIR}: {e}"))?;
    let path = Path::new(RUN_DIR).join(format!("{bridge}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        // SAFETY: flock on a descriptor we own and keep open for the lock's lifetime.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(HostLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock
            && err.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(format!("cannot lock {}: {err}", path.display()));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{} stayed locked for 120s (another prov process is changing the bridge)",
                path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_leases(bridge: &str) -> Result<Vec<(PathBuf, Lease)>, String> {
    let dir = host_dir(bridge).join("leases");
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(bytes) = fs::read(&path) else { continue };
        match serde_json::from_slice::<Lease>(&bytes) {
            Ok(l) => out.push((path, l)),
            // A torn or foreign file holds no address: drop it.
            Err(_) => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(out)
}

/// Leases whose sandbox directory is gone belong to nobody (a sandbox deleted by hand, a
/// workspace removed): they are freed.
fn live_leases(bridge: &str) -> Result<Vec<Lease>, String> {
    let mut live = Vec::new();
    for (path, lease) in read_leases(bridge)? {
        if lease.dir.join("meta.json").exists() {
            live.push(lease);
        } else {
            let _ = fs::remove_file(path);
        }
    }
    Ok(live)
}

async fn link_exists(name: &str, netns: Option<&str>) -> bool {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "show", "dev", name]);
    matches!(Cmd::new("ip").args(args).output().await, Ok((Some(0), ..)))
}

pub fn netns_exists(netns: &str) -> bool {
    Path::new("/run/netns").join(netns).exists()
}

/// Creates the bridge with its address, turns forwarding on and installs the NAT table; each
/// step is skipped when already done. Called with the host lock held.
async fn ensure_host(opts: &LocalOptions) -> Result<(), String> {
    let br = opts.bridge.as_str();
    let hd = host_dir(br);
    fs::create_dir_all(hd.join("leases"))
        .map_err(|e| format!("cannot create {}: {e}", hd.display()))?;
    let subnet_file = hd.join("subnet");
    let want = opts.subnet.to_string();
    match fs::read_to_string(&subnet_file) {
        Ok(have) if have.trim() != want => {
            return Err(format!(
                "bridge {br} already serves subnet {} for other sandboxes, not {want}: set \
                 providers.local.bridge to another name to use another subnet",
                have.trim()
            ))
        }
        Ok(_) => {}
        Err(_) => fs::write(&subnet_file, &want)
            .map_err(|e| format!("cannot write {}: {e}", subnet_file.display()))?,
    }
    if !link_exists(br, None).await {
        Cmd::new("ip")
            .args(["link", "add", br, "type", "bridge"])
            .run()
            .await?;
    }
    let gw = format!("{}/{}", opts.subnet.gateway(), opts.subnet.prefix);
    let addrs = Cmd::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", br])
        .run()
        .await?;
    if !addrs.split_whitespace().any(|w| w == gw) {
        if let Some(other) = addrs.split_whitespace().skip_while(|w| *w != "inet").nth(1) {
            return Err(format!(
                "bridge {br} already has address {other}, not {gw}: set providers.local.bridge \
                 to another name"
            ));
        }
        Cmd::new("ip")
            .args(["addr", "add", &gw, "dev", br])
            .run()
            .await?;
    }
    Cmd::new("ip").args(["link", "set", br, "up"]).run().await?;

    let fwd = fs::read_to_string(IP_FORWARD).unwrap_or_default();
    if fwd.trim() != "1" {
        let orig = hd.join("ip_forward.orig");
        if !orig.exists() {
            let _ = fs::write(&orig, fwd.trim());
        }
        fs::write(IP_FORWARD, "1").map_err(|e| format!("cannot enable {IP_FORWARD}: {e}"))?;
    }

    let t = nat_table(br);
    let s = opts.subnet;
    let rules = format!(
        "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n  \
         chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    \
         ip saddr {s} oifname != \"{br}\" masquerade\n  }}\n  \
         chain forward {{\n    type filter hook forward priority 0; policy accept;\n    \
         iifname \"{br}\" accept\n    oifname \"{br}\" ct state established,related accept\n  }}\n}}\n"
    );
    Cmd::new("nft").args(["-f", "-"]).stdin(rules).run().await?;
    Ok(())
}

/// Removes the NAT table and the bridge, restores forwarding. Called with the host lock held
/// and no lease left.
async fn teardown_host(bridge: &str) -> Result<(), String> {
    let t = nat_table(bridge);
    let (code, _, err) = Cmd::new("nft")
        .args(["delete", "table", "ip", &t])
        .output()
        .await?;
    if code != Some(0) && !err.contains("No such file") {
        return Err(format!("`nft delete table ip {t}` failed: {err}"));
    }
    if link_exists(bridge, None).await {
        Cmd::new("ip").args(["link", "del", bridge]).run().await?;
    }
    let hd = host_dir(bridge);
    let orig_file = hd.join("ip_forward.orig");
    if let Ok(orig) = fs::read_to_string(&orig_file) {
        // Another prov bridge still in use needs forwarding: it inherits the duty to restore.
        let heir = fs::read_dir(RUN_DIR).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.is_dir() && *p != hd && p.join("leases").is_dir())
        });
        match heir {
            Some(other) => {
                let _ = fs::rename(&orig_file, other.join("ip_forward.orig"));
            }
            None => {
                let _ = fs::write(IP_FORWARD, orig.trim());
            }
        }
    }
    let _ = fs::remove_dir_all(&hd);
    Ok(())
}

/// Makes sure the host side exists and leases an address to the sandbox at `dir` (the same
/// address again if it already holds one: a retried create keeps its address).
pub async fn acquire(opts: &LocalOptions, dir: &Path, netns: &str) -> Result<Ipv4Addr, String> {
    let _lock = lock_host(&opts.bridge).await?;
    ensure_host(opts).await?;
    let leases = live_leases(&opts.bridge)?;
    if let Some(l) = leases.iter().find(|l| l.dir == dir) {
        return Ok(l.address);
    }
    let used: std::collections::HashSet<Ipv4Addr> = leases.iter().map(|l| l.address).collect();
    let address = opts
        .subnet
        .hosts()
        .find(|a| !used.contains(a))
        .ok_or_else(|| format!("no free address left in {}", opts.subnet))?;
    let lease = Lease {
        address,
        dir: dir.to_path_buf(),
        netns: netns.to_string(),
    };
    let path = host_dir(&opts.bridge)
        .join("leases")
        .join(address.to_string());
    let bytes = serde_json::to_vec_pretty(&lease).map_err(|e| e.to_string())?;
    fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(address)
}

/// Frees the sandbox's address; the last one out removes the bridge and NAT.
pub async fn release(bridge: &str, dir: &Path) -> Result<(), String> {
    let _lock = lock_host(bridge).await?;
    for (path, lease) in read_leases(bridge)? {
        if lease.dir == dir {
            fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    if live_leases(bridge)?.is_empty() {
        teardown_host(bridge).await?;
    }
    Ok(())
}

/// Creates (or completes) the sandbox's namespace and veth pair: `eth0` inside with `address`,
/// the host end on the bridge. Every step checks first, so a half-done setup is finished.
pub async fn setup_netns(
    opts: &LocalOptions,
    netns: &str,
    veth_host: &str,
    veth_peer: &str,
    address: Ipv4Addr,
) -> Result<(), String> {
    if !netns_exists(netns) {
        Cmd::new("ip").args(["netns", "add", netns]).run().await?;
    }
    if !link_exists("eth0", Some(netns)).await {
        if link_exists(veth_host, None).await {
            Cmd::new("ip")
                .args(["link", "del", veth_host])
                .run()
                .await?;
        }
        Cmd::new("ip")
            .args([
                "link", "add", veth_host, "type", "veth", "peer", "name", veth_peer,
            ])
            .run()
            .await?;
        Cmd::new("ip")
            .args(["link", "set", veth_peer, "netns", netns])
            .run()
            .await?;
        Cmd::new("ip")
            .args(["-n", netns, "link", "set", veth_peer, "name", "eth0"])
            .run()
            .await?;
    }
    let cidr = format!("{address}/{}", opts.subnet.prefix);
    let gw = opts.subnet.gateway().to_string();
    let ns = |args: &[&str]| {
        let mut a = vec!["-n", netns];
        a.extend_from_slice(args);
        Cmd::new("ip").args(a.into_iter().map(str::to_string).collect::<Vec<_>>())
    };
    // Announce the address when eth0 comes up (gratuitous ARP): a sandbox that had it before
    // may still be in its neighbours' caches with another MAC.
    Cmd::new("ip")
        .args(["netns", "exec", netns, "sh", "-c"])
        .args(["echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_notify"])
        .run()
        .await?;
    ns(&["addr", "replace", &cidr, "dev", "eth0"]).run().await?;
    ns(&["link", "set", "eth0", "up"]).run().await?;
    ns(&["link", "set", "lo", "up"]).run().await?;
    ns(&["route", "replace", "default", "via", &gw])
        .run()
        .await?;
    Cmd::new("ip")
        .args(["link", "set", veth_host, "master", &opts.bridge, "up"])
        .run()
        .await?;
    // And forget it on the host side, so the next packet asks afresh.
    let addr = address.to_string();
    let _ = Cmd::new("ip")
        .args(["neigh", "flush", "to", &addr, "dev", &opts.bridge])
        .output()
        .await;
    Ok(())
}

/// Deletes the host veth end (its peer goes with it, at once) and then the namespace (its
/// nftables table goes with it). The veth first: a namespace is destroyed asynchronously, and
/// its veth with it, so deleting the namespace first would leave the veth visible for a while.
pub async fn teardown_netns(netns: &str, veth_host: &str) -> Result<(), String> {
    if link_exists(veth_host, None).await {
        let (code, _, err) = Cmd::new("ip")
            .args(["link", "del", veth_host])
            .output()
            .await?;
        // Gone between the check and the delete is gone.
        if code != Some(0) && !err.contains("Cannot find device") {
            return Err(format!("`ip link del {veth_host}` failed: {err}"));
        }
    }
    if netns_exists(netns) {
        Cmd::new("ip").args(["netns", "del", netns]).run().await?;
    }
    Ok(())
}

/// Loads the sandbox's firewall into its namespace (atomically replacing the previous one).
pub async fn apply_firewall(
    netns: &str,
    rules: &[FirewallRule],
    subnet: Subnet,
    dir: &Path,
) -> Result<(), String> {
    let text = firewall::render(rules, subnet.gateway());
    // Kept beside the sandbox for whoever wants to read what is enforced.
    let _ = fs::write(dir.join("firewall.nft"), &text);
    Cmd::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(text)
        .run()
        .await
        .map(|_| ())
}
