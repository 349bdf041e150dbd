//! The simulated cloud's servers and the out-of-band edit API (`prov sim ...`, tests, drift
//! demos), over the files of [`crate::layout`].
//!
//! A taskserv file is a JSON object `{ name, version, settings, status ("running"|"stopped"),
//! installed_at, configured (counter), restarts, server_id, hostname, updated_at }`; this module
//! only ever changes its `status`, `version` and `updated_at`.
//!
//! Every file is written atomically (temp file in the same directory + rename; new servers are
//! published with a no-clobber hard link), so a SIGKILL never leaves a torn file, and every
//! operation touches O(1) files (benchmarks create 10,000 servers). Addresses come from a pool of
//! slots: slot N gives one public address (203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, then the
//! 198.18.0.0/15 benchmarking range: never routed) and one private 10.x address; a slot is claimed
//! by creating `ips/<N>` exclusively, so addresses are unique across processes.
//!
//! All methods do blocking file I/O; async callers run them on `spawn_blocking`.

use crate::layout::{Layout, StripeLock};
use prov_engine::fsutil;
use prov_engine::traits::{
    ErrorKind, FirewallRule, Ownership, ServerInfo, ServerSpec, ServerStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Ownership tag keys (from `Ownership`), attached to every server the provider creates.
pub const TAG_WORKSPACE: &str = prov_engine::traits::Ownership::TAG_WORKSPACE;
pub const TAG_ADDRESS: &str = prov_engine::traits::Ownership::TAG_ADDRESS;

/// Public /24 networks in allocation order: (first three octets, number of consecutive /24s).
const PUBLIC_RANGES: &[([u8; 3], u32)] = &[
    ([203, 0, 113], 1),
    ([198, 51, 100], 1),
    ([192, 0, 2], 1),
    ([198, 18, 0], 512),
];
const HOSTS_PER_NET: u32 = 254;
/// How often (in slots) the `ips/.next` hint is rewritten; a power of two (tested with a mask).
const HINT_EVERY: u32 = 32;
/// How many servers can exist at once (one address slot each).
pub const POOL_SIZE: u32 = (1 + 1 + 1 + 512) * HOSTS_PER_NET;

/// Attributes `set_server_attribute` may change (plus `tags.<key>`).
pub const SETTABLE_ATTRIBUTES: &[&str] = &[
    "hostname",
    "status",
    "plan",
    "zone",
    "os",
    "public_ip",
    "private_ip",
    "tags",
    "firewall_rules",
    "storage",
    "network",
    "ssh_keys",
    "boots",
];

/// One simulated server, as stored in `servers/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimServer {
    pub id: String,
    pub hostname: String,
    pub status: ServerStatus,
    pub plan: String,
    pub zone: String,
    pub os: String,
    /// None when the spec asked for `network.public_ip = false`.
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub private_ip: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub firewall_rules: Vec<FirewallRule>,
    #[serde(default)]
    pub storage: Value,
    #[serde(default)]
    pub network: Value,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    pub created_at: String,
    /// How many times the server booted (create, start from stopped, reboot).
    #[serde(default)]
    pub boots: u64,
    /// The address-pool slot its addresses came from (claimed by `ips/<slot>`).
    #[serde(default)]
    pub slot: Option<u32>,
}

impl SimServer {
    /// Whether prov owns it (it carries the `prov:workspace` ownership tag).
    pub fn is_managed(&self) -> bool {
        self.tags.contains_key(TAG_WORKSPACE)
    }

    /// The trait's view of it, consuming it (no copy of its fields).
    pub fn into_info(self) -> ServerInfo {
        let extra = serde_json::json!({
            "simulated": true,
            "storage": self.storage,
            "network": self.network,
            "ssh_keys": self.ssh_keys,
            "created_at": self.created_at,
            "boots": self.boots,
        });
        ServerInfo {
            id: self.id,
            hostname: self.hostname,
            status: self.status,
            plan: self.plan,
            zone: self.zone,
            os: self.os,
            public_ip: self.public_ip,
            private_ip: self.private_ip,
            tags: self.tags,
            firewall_rules: self.firewall_rules,
            extra,
        }
    }

    /// The trait's view of it (a copy; see [`SimServer::into_info`]).
    pub fn to_info(&self) -> ServerInfo {
        self.clone().into_info()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("hostname {hostname:?} matches {} servers ({}); name one by id", ids.len(), ids.join(", "))]
    Ambiguous { hostname: String, ids: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl WorldError {
    /// The extension error class this maps to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WorldError::NotFound(_) => ErrorKind::NotFound,
            WorldError::Ambiguous { .. } | WorldError::Invalid(_) => ErrorKind::Invalid,
            WorldError::Failed(_) | WorldError::Io { .. } => ErrorKind::Failed,
        }
    }
}

pub type WorldResult<T> = Result<T, WorldError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WorldError + '_ {
    move |source| WorldError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A handle on one workspace's simulated world. Cheap to clone; handles in different processes
/// (or several in one) see the same files.
#[derive(Clone)]
pub struct World {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    /// In-process cursor into the address pool, loaded from `ips/.next` on first use.
    next_slot: OnceLock<AtomicU64>,
}

impl World {
    /// Opens (creating its directories if needed) the world of the workspace at `workspace_dir`.
    pub fn open(workspace_dir: impl AsRef<Path>) -> WorldResult<World> {
        let layout = Layout::of(workspace_dir);
        for dir in Layout::DIRS {
            let d = layout.root().join(dir);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        Ok(World {
            inner: Arc::new(Inner {
                layout,
                next_slot: OnceLock::new(),
            }),
        })
    }

    /// `<workspace>/.prov/sim`.
    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Where its objects live.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    fn server_path(&self, id: &str) -> PathBuf {
        self.inner.layout.server_file(id)
    }

    fn lock(&self, key: &str) -> WorldResult<StripeLock> {
        let dir = self.inner.layout.locks_dir();
        crate::layout::lock_stripe(&dir, key).map_err(io_err(&dir))
    }

    // --- reads ---------------------------------------------------------------------------------

    /// All servers in the world, managed or not, sorted by hostname then id.
    pub fn list_servers(&self) -> WorldResult<Vec<SimServer>> {
        let dir = self.inner.layout.servers_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !fsutil::is_data_file(&name) {
                continue;
            }
            // A server deleted between the listing and the read is simply gone.
            if let Some(s) = self.read_server_file(&entry.path())? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
        Ok(out)
    }

    fn read_server_file(&self, path: &Path) -> WorldResult<Option<SimServer>> {
        fsutil::read_json(path).map_err(io_err(path))
    }

    /// The server with this id; `None` when there is none (or the id could not be one).
    pub fn get_server(&self, id: &str) -> WorldResult<Option<SimServer>> {
        if !fsutil::is_safe_component(id) {
            return Ok(None);
        }
        self.read_server_file(&self.server_path(id))
    }

    /// The servers with these ids, in order (`None`: no such server), read with one reused
    /// buffer: what a refresh of every server costs is then the file system's, not allocation's.
    pub fn get_servers(&self, ids: &[String]) -> Vec<WorldResult<Option<SimServer>>> {
        use std::io::Read;
        let mut buf = Vec::new();
        ids.iter()
            .map(|id| {
                if !fsutil::is_safe_component(id) {
                    return Ok(None);
                }
                let path = self.server_path(id);
                buf.clear();
                match fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
                    Ok(_) => serde_json::from_slice(&buf).map(Some).map_err(|e| {
                        io_err(&path)(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("invalid JSON: {e}"),
                        ))
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(&path)(e)),
                }
            })
            .collect()
    }

    /// Every server with this hostname (hostnames need not be unique: create-before-destroy
    /// briefly has two).
    pub fn find_by_hostname(&self, hostname: &str) -> WorldResult<Vec<SimServer>> {
        Ok(self
            .list_servers()?
            .into_iter()
            .filter(|s| s.hostname == hostname)
            .collect())
    }

    /// The server named by an id or, failing that, by a hostname that only one server has.
    pub fn resolve(&self, id_or_hostname: &str) -> WorldResult<SimServer> {
        if let Some(s) = self.get_server(id_or_hostname)? {
            return Ok(s);
        }
        let mut found = self.find_by_hostname(id_or_hostname)?;
        match found.len() {
            0 => Err(WorldError::NotFound(format!("server {id_or_hostname:?}"))),
            1 => Ok(found.remove(0)),
            _ => Err(WorldError::Ambiguous {
                hostname: id_or_hostname.to_string(),
                ids: found.into_iter().map(|s| s.id).collect(),
            }),
        }
    }

    /// How many servers exist (counts files; parses nothing).
    pub fn server_count(&self) -> WorldResult<usize> {
        let dir = self.inner.layout.servers_dir();
        let mut n = 0;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if fsutil::is_data_file(&entry.file_name().to_string_lossy()) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether the world has no servers.
    pub fn is_empty(&self) -> WorldResult<bool> {
        Ok(self.server_count()? == 0)
    }

    // --- writes used by the provider -------------------------------------------------------------

    /// Creates a running server from `spec`, with the ownership tags of `owner` (if any) added
    /// to its tags. Plan and zone are not checked here (the provider checks them against its
    /// catalogue; out-of-band servers may be anything).
    pub fn create_server(
        &self,
        spec: &ServerSpec,
        owner: Option<&Ownership>,
    ) -> WorldResult<SimServer> {
        if spec.hostname.trim().is_empty() {
            return Err(WorldError::Invalid("hostname must not be empty".into()));
        }
        let mut tags = spec.tags.clone();
        if let Some(o) = owner {
            tags.insert(TAG_WORKSPACE.into(), o.workspace.clone());
            tags.insert(TAG_ADDRESS.into(), o.address.clone());
        }
        let wants_public = spec.network.get("public_ip").and_then(Value::as_bool) != Some(false);
        loop {
            // A random id: a clash is for the exclusive publish below to find (it costs a
            // claimed slot back), not worth a lookup before every create.
            let id = new_id();
            let path = self.server_path(&id);
            let slot = self.claim_slot(&id)?;
            let (public_ip, private_ip) = slot_addresses(slot);
            let server = SimServer {
                id: id.clone(),
                hostname: spec.hostname.clone(),
                status: ServerStatus::Running,
                plan: spec.plan.clone(),
                zone: spec.zone.clone(),
                os: spec.os.clone(),
                public_ip: wants_public.then(|| public_ip.to_string()),
                private_ip: Some(private_ip.to_string()),
                tags: tags.clone(),
                firewall_rules: spec.firewall_rules.clone(),
                storage: spec.storage.clone(),
                network: spec.network.clone(),
                ssh_keys: spec.ssh_keys.clone(),
                created_at: fsutil::now_rfc3339(),
                boots: 1,
                slot: Some(slot),
            };
            if fsutil::create_json_exclusive(&path, &server).map_err(io_err(&path))? {
                return Ok(server);
            }
            // Another process published the same id in the meantime: give the slot back, retry.
            self.release_slot(slot, &id);
        }
    }

    /// Reads, changes and writes one server under its lock; `NotFound` when it does not exist.
    pub fn modify_server(
        &self,
        id: &str,
        change: impl FnOnce(&mut SimServer) -> WorldResult<()>,
    ) -> WorldResult<SimServer> {
        let missing = || WorldError::NotFound(format!("server {id:?}"));
        if !fsutil::is_safe_component(id) {
            return Err(missing());
        }
        let _lock = self.lock(&Layout::server_key(id))?;
        let path = self.server_path(id);
        let mut server = self.read_server_file(&path)?.ok_or_else(missing)?;
        change(&mut server)?;
        // The id names the file: it cannot change.
        server.id = id.to_string();
        fsutil::write_json_atomic(&path, &server).map_err(io_err(&path))?;
        Ok(server)
    }

    /// Deletes one server, its address claim and its taskservs; `NotFound` when it does not exist.
    pub fn remove_server(&self, id: &str) -> WorldResult<SimServer> {
        let missing = || WorldError::NotFound(format!("server {id:?}"));
        if !fsutil::is_safe_component(id) {
            return Err(missing());
        }
        let server = {
            let _lock = self.lock(&Layout::server_key(id))?;
            let path = self.server_path(id);
            let server = self.read_server_file(&path)?.ok_or_else(missing)?;
            fsutil::remove_file(&path).map_err(io_err(&path))?;
            server
        };
        if let Some(slot) = server.slot {
            self.release_slot(slot, id);
        }
        // A deleted server's software goes with it.
        let ts = self.inner.layout.taskservs_dir(id);
        fsutil::remove_dir_all(&ts).map_err(io_err(&ts))?;
        Ok(server)
    }

    // --- out-of-band edits ---------------------------------------------------------------------

    /// Deletes a server behind prov's back (by id, or by a unique hostname).
    pub fn delete_server_out_of_band(&self, id_or_hostname: &str) -> WorldResult<SimServer> {
        let s = self.resolve(id_or_hostname)?;
        self.remove_server(&s.id)
    }

    /// Sets one attribute of a server behind prov's back. `key` is one of
    /// [`SETTABLE_ATTRIBUTES`] or `tags.<name>` (a string, number or bool; `null` removes the
    /// tag); the value must have the attribute's type (e.g. `status` is `"running"`,
    /// `"stopped"`, ...). Plan and zone are not checked against the catalogue.
    pub fn set_server_attribute(
        &self,
        id_or_hostname: &str,
        key: &str,
        value: Value,
    ) -> WorldResult<SimServer> {
        let id = self.resolve(id_or_hostname)?.id;
        self.modify_server(&id, |server| {
            if let Some(tag) = key.strip_prefix("tags.") {
                if tag.is_empty() {
                    return Err(WorldError::Invalid("empty tag name in \"tags.\"".into()));
                }
                match value {
                    Value::Null => {
                        server.tags.remove(tag);
                    }
                    Value::String(s) => {
                        server.tags.insert(tag.to_string(), s);
                    }
                    Value::Number(_) | Value::Bool(_) => {
                        server.tags.insert(tag.to_string(), value.to_string());
                    }
                    other => {
                        return Err(WorldError::Invalid(format!(
                            "{key}: a tag value is a string, got {other}"
                        )))
                    }
                }
                return Ok(());
            }
            if !SETTABLE_ATTRIBUTES.contains(&key) {
                return Err(WorldError::Invalid(format!(
                    "cannot set {key:?} (settable: {}, tags.<name>)",
                    SETTABLE_ATTRIBUTES.join(", ")
                )));
            }
            let mut v = serde_json::to_value(&*server)
                .map_err(|e| WorldError::Failed(format!("cannot encode server: {e}")))?;
            v[key] = value;
            *server = serde_json::from_value(v)
                .map_err(|e| WorldError::Invalid(format!("{key}: {e}")))?;
            Ok(())
        })
    }

    /// Adds a running server that prov did not create (no ownership tags unless `tags` has
    /// them): plan `small`, zone `sim-a`, os `ubuntu-22.04`.
    pub fn add_unmanaged_server(
        &self,
        hostname: &str,
        tags: BTreeMap<String, String>,
    ) -> WorldResult<SimServer> {
        let spec = ServerSpec {
            hostname: hostname.to_string(),
            plan: "small".into(),
            zone: "sim-a".into(),
            os: "ubuntu-22.04".into(),
            ssh_keys: vec![],
            tags,
            firewall_rules: vec![],
            storage: Value::Null,
            network: Value::Null,
        };
        self.create_server(&spec, None)
    }

    fn taskserv_path(&self, server_id: &str, name: &str) -> WorldResult<PathBuf> {
        self.inner
            .layout
            .taskserv_file(server_id, name)
            .map_err(WorldError::Invalid)
    }

    /// Changes one field of an installed taskserv file under its lock.
    fn modify_taskserv(
        &self,
        server: &str,
        name: &str,
        field: &str,
        value: &str,
    ) -> WorldResult<()> {
        let s = self.resolve(server)?;
        let path = self.taskserv_path(&s.id, name)?;
        let _lock = self.lock(&Layout::taskserv_key(&s.id, name))?;
        let mut record: Value = fsutil::read_json(&path)
            .map_err(io_err(&path))?
            .ok_or_else(|| {
                WorldError::NotFound(format!("taskserv {name:?} on server {server:?}"))
            })?;
        let obj = record
            .as_object_mut()
            .ok_or_else(|| WorldError::Failed(format!("{}: not a JSON object", path.display())))?;
        obj.insert(field.into(), Value::String(value.into()));
        obj.insert("updated_at".into(), Value::String(fsutil::now_rfc3339()));
        fsutil::write_json_atomic(&path, &record).map_err(io_err(&path))
    }

    /// Stops an installed taskserv behind prov's back.
    pub fn stop_taskserv(&self, server: &str, name: &str) -> WorldResult<()> {
        self.modify_taskserv(server, name, "status", "stopped")
    }

    /// Changes an installed taskserv's version behind prov's back.
    pub fn set_taskserv_version(&self, server: &str, name: &str, version: &str) -> WorldResult<()> {
        self.modify_taskserv(server, name, "version", version)
    }

    /// The taskserv records installed on a server, sorted by name.
    pub fn list_taskservs(&self, server: &str) -> WorldResult<Vec<Value>> {
        let s = self.resolve(server)?;
        let dir = self.inner.layout.taskservs_dir(&s.id);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut out: Vec<(String, Value)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !fsutil::is_data_file(&name) {
                continue;
            }
            let path = entry.path();
            if let Some(v) = fsutil::read_json(&path).map_err(io_err(&path))? {
                out.push((name, v));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    // --- the address pool ----------------------------------------------------------------------

    fn claim_slot(&self, id: &str) -> WorldResult<u32> {
        let ips = self.inner.layout.ips_dir();
        let hint_path = ips.join(".next");
        let cursor = self.inner.next_slot.get_or_init(|| {
            let hint = fsutil::read_json::<u64>(&hint_path).ok().flatten();
            AtomicU64::new(hint.unwrap_or(0))
        });
        for _ in 0..POOL_SIZE {
            let slot = (cursor.fetch_add(1, Ordering::Relaxed) % u64::from(POOL_SIZE)) as u32;
            let path = ips.join(slot.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    // The content only guards the release; a torn claim merely leaks one slot.
                    let _ = f.write_all(id.as_bytes());
                    // The hint spares the next process a probe through every claimed slot. It
                    // is refreshed every HINT_EVERY claims (a stale hint only costs that many
                    // probes), and a failed write is ignored for the same reason.
                    if slot & (HINT_EVERY - 1) == 0 {
                        let _ = fsutil::write_json_atomic(&hint_path, &(u64::from(slot) + 1));
                    }
                    return Ok(slot);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Err(WorldError::Failed(format!(
            "the simulated address pool is exhausted ({POOL_SIZE} servers exist)"
        )))
    }

    /// Frees a slot if `id` still holds it (an out-of-band IP edit does not move claims).
    fn release_slot(&self, slot: u32, id: &str) {
        let path = self.inner.layout.ips_dir().join(slot.to_string());
        if fs::read_to_string(&path).is_ok_and(|owner| owner == id) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// The (public, private) addresses of an address-pool slot.
pub fn slot_addresses(slot: u32) -> (Ipv4Addr, Ipv4Addr) {
    let net = slot / HOSTS_PER_NET;
    let host = (slot % HOSTS_PER_NET + 1) as u8;
    let mut n = net;
    let mut public = Ipv4Addr::UNSPECIFIED;
    for &(base, count) in PUBLIC_RANGES {
        if n < count {
            let base = u32::from_be_bytes([base[0], base[1], base[2], 0]);
            public = Ipv4Addr::from(base + (n << 8) + u32::from(host));
            break;
        }
        n -= count;
    }
    let private = Ipv4Addr::new(10, (net >> 8) as u8, (net & 0xff) as u8, host);
    (public, private)
}

/// A fresh server id: `sim-` + 12 hex chars. Uniqueness is enforced by the no-clobber publish;
/// the hash inputs only make collisions rare (pid, time and a counter differ between calls).
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(nanos.to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("sim-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_addresses() {
        assert_eq!(
            slot_addresses(0),
            (Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(slot_addresses(253).0, Ipv4Addr::new(203, 0, 113, 254));
        assert_eq!(slot_addresses(254).0, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(slot_addresses(508).0, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(slot_addresses(762).0, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(
            slot_addresses(POOL_SIZE - 1),
            (
                Ipv4Addr::new(198, 19, 255, 254),
                Ipv4Addr::new(10, 2, 2, 254)
            )
        );
        let mut seen = std::collections::HashSet::new();
        for s in 0..POOL_SIZE {
            assert!(seen.insert(slot_addresses(s)), "slot {s} repeats");
        }
    }

    #[test]
    fn ids_look_right() {
        let id = new_id();
        assert_eq!(id.len(), 16);
        assert!(id.starts_with("sim-"));
        assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_id(), new_id());
    }
}
