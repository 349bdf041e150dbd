//! The `local` provider: servers on this machine. A server is a sandbox directory under the
//! workspace (`.prov/local/ID`) with its processes. As root (isolation `netns`) it also gets its
//! own network namespace, a veth pair on a host bridge with its own address, outbound NAT, its
//! own sshd on that address and an nftables firewall built from `firewall_rules`; without root
//! (isolation `none`) commands run as local processes in the directory, an sshd on 127.0.0.1
//! serves get-ssh-access when the sshd binary exists, and firewall rules are refused.
//!
//! Modules: [`options`] (settings), [`catalogue`] (plans, zone, prices), [`cgroup`] (plan sizes
//! as CPU/memory limits), [`firewall`] (rules →
//! nftables), [`net`] (bridge, NAT, leases, namespaces), [`sandbox`] (metadata, processes,
//! sshd), [`cmd`] (subprocesses). User documentation: docs/providers/local.md.

pub mod catalogue;
pub mod cgroup;
pub mod cmd;
pub mod firewall;
pub mod net;
pub mod options;
pub mod sandbox;

pub use options::{Isolation, LocalOptions};

use async_trait::async_trait;
use prov_engine::fsutil;
use prov_engine::registry::{ExtContext, ProviderFactory};
use prov_engine::traits::{
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, Ownership, PlanInfo, Pricing,
    Provider, ProviderInfo, ServerInfo, ServerSpec, ServerStatus, ServerUpdate, SshAccess,
    TransportSpec, Validation, Zone,
};
use sandbox::{Meta, State};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Attributes whose change needs a new sandbox; plan, tags, ssh_keys and firewall_rules change
/// in place.
const REPLACE_ON_CHANGE: &[&str] = &["zone", "os", "hostname", "storage", "network"];

/// The local provider for one workspace.
pub struct LocalProvider {
    name: String,
    /// `.prov/local` of the workspace (absolute).
    root: PathBuf,
    opts: LocalOptions,
    root_user: bool,
    /// The host tools this provider's sandboxes need that are not installed (looked up once:
    /// `check_server` runs for every server at load).
    missing: std::sync::OnceLock<Vec<String>>,
}

/// Which of the tools a sandbox needs are missing: programs searched on `path` (a PATH value),
/// and `sshd` as the path configured.
fn missing_tools(isolation: Isolation, sshd: &str, path: &std::ffi::OsStr) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let tools: &[&str] = match isolation {
        Isolation::Netns => &["ip", "nft", "ssh-keygen"],
        Isolation::None => &["ssh-keygen"],
    };
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let mut out: Vec<String> = tools
        .iter()
        .filter(|t| !std::env::split_paths(path).any(|d| executable(&d.join(t))))
        .map(|t| t.to_string())
        .collect();
    if isolation == Isolation::Netns && !executable(Path::new(sshd)) {
        out.push(sshd.to_string());
    }
    out
}

/// The factory registered under `local`.
pub fn factory() -> ProviderFactory {
    Arc::new(|ctx: &ExtContext| Ok(Arc::new(LocalProvider::new(ctx)?) as Arc<dyn Provider>))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn hex(bytes: &[u8], n: usize) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(n)
        .collect()
}

/// Six hex digits that differ between calls and processes (ids need not be secret).
fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    hex(&Sha256::digest(seed.as_bytes()), 6)
}

/// Hostnames become directory and id prefixes: letters, digits, '-', 1..=40 characters.
fn check_hostname(h: &str) -> Result<(), String> {
    let ok = !h.is_empty()
        && h.len() <= 40
        && !h.starts_with('-')
        && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "hostname: {h:?} must be 1-40 letters, digits and '-' (not starting with '-')"
        ))
    }
}

fn current_user(root: bool) -> String {
    if root {
        return "root".to_string();
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

/// get-ssh-access's answer for a sandbox with an sshd: its address (127.0.0.1 without a
/// namespace), its port, the user, prov's own key.
fn ssh_access(dir: &Path, meta: &Meta) -> Option<SshAccess> {
    let host = match (&meta.isolation, &meta.address) {
        (Isolation::Netns, Some(a)) => a.clone(),
        _ => "127.0.0.1".to_string(),
    };
    match (meta.sshd, meta.ssh_port) {
        (true, Some(port)) => Some(SshAccess {
            host,
            port,
            user: meta.ssh_user.clone(),
            key_path: Some(sandbox::client_key(dir).display().to_string()),
        }),
        _ => None,
    }
}

fn has_ref(s: &str) -> bool {
    s.contains("${")
}

impl LocalProvider {
    /// Builds the provider from `ctx.settings`; bad settings are an error naming the key.
    pub fn new(ctx: &ExtContext) -> ExtResult<LocalProvider> {
        let root_user = options::is_root();
        let opts = options::parse(&ctx.name, &ctx.settings, root_user).map_err(|errs| {
            ExtError::new(&ctx.name, "load", None, ErrorKind::Invalid, errs.join("; "))
        })?;
        let ws = ctx
            .workspace_dir
            .canonicalize()
            .unwrap_or_else(|_| ctx.workspace_dir.clone());
        Ok(LocalProvider {
            name: ctx.name.clone(),
            root: ws.join(".prov").join("local"),
            opts,
            root_user,
            missing: std::sync::OnceLock::new(),
        })
    }

    /// The tools a sandbox of this provider's isolation needs (ssh-keygen always; for netns
    /// also ip, nft and sshd) that cannot be found, so a plan refuses what apply would fail on
    /// half-way.
    fn missing_tools(&self) -> &[String] {
        self.missing.get_or_init(|| {
            missing_tools(
                self.opts.isolation,
                &self.opts.sshd,
                &std::env::var_os("PATH").unwrap_or_default(),
            )
        })
    }

    /// The options in effect.
    pub fn options(&self) -> &LocalOptions {
        &self.opts
    }

    /// The directory of the sandbox `id`.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn err(
        &self,
        op: &str,
        target: Option<&str>,
        kind: ErrorKind,
        msg: impl Into<String>,
    ) -> ExtError {
        ExtError::new(&self.name, op, target, kind, msg)
    }

    /// Every problem with a server's settings this provider can see without touching anything.
    fn spec_problems(
        &self,
        hostname: &str,
        plan: &str,
        zone: &str,
        rules: &[FirewallRule],
        keys: &[String],
    ) -> Vec<String> {
        let mut errs = Vec::new();
        if !has_ref(hostname) {
            if let Err(e) = check_hostname(hostname) {
                errs.push(e);
            }
        }
        if !has_ref(plan) {
            if let Err(e) = catalogue::check_plan(plan) {
                errs.push(e);
            }
        }
        if !has_ref(zone) {
            if let Err(e) = catalogue::check_zone(zone) {
                errs.push(e);
            }
        }
        for t in self.missing_tools() {
            errs.push(format!(
                "{t} is needed by providers.{} (isolation {}) but is not installed{}",
                self.name,
                self.opts.isolation.as_str(),
                match t.as_str() {
                    "ip" => " (package iproute2)",
                    "nft" => " (package nftables)",
                    "ssh-keygen" => " (package openssh-client)",
                    _ => " (package openssh-server, or set the provider's `sshd`)",
                }
            ));
        }
        errs.extend(firewall::check(rules));
        if !rules.is_empty() && self.opts.isolation == Isolation::None {
            errs.push(self.no_firewall_message());
        }
        for (i, k) in keys.iter().enumerate() {
            if k.trim().is_empty() {
                errs.push(format!("ssh_keys[{i}]: empty"));
            }
        }
        errs
    }

    fn no_firewall_message(&self) -> String {
        format!(
            "firewall_rules: isolation \"none\" cannot enforce firewall rules (they need a network \
             namespace and nftables, which need root); run prov as root with \
             providers.{}.isolation = \"netns\" (the default for root), or remove the rules",
            self.name
        )
    }

    /// The sandbox id from a caller, checked to be one path component.
    fn dir_of(&self, op: &str, id: &str) -> ExtResult<PathBuf> {
        if !fsutil::is_safe_component(id) || id.contains(':') {
            return Err(self.err(
                op,
                Some(id),
                ErrorKind::NotFound,
                format!("no sandbox {id:?} (not a local server id)"),
            ));
        }
        Ok(self.sandbox_dir(id))
    }

    fn load(&self, op: &str, id: &str) -> ExtResult<(PathBuf, Meta)> {
        let dir = self.dir_of(op, id)?;
        match sandbox::read_meta(&dir) {
            Ok(Some(m)) => Ok((dir, m)),
            Ok(None) => Err(self.err(
                op,
                Some(id),
                ErrorKind::NotFound,
                format!("no sandbox {} (deleted?)", dir.display()),
            )),
            Err(e) => Err(self.err(op, Some(id), ErrorKind::Failed, e)),
        }
    }

    fn save(&self, op: &str, dir: &Path, meta: &Meta) -> ExtResult<()> {
        sandbox::write_meta(dir, meta)
            .map_err(|e| self.err(op, Some(&meta.id), ErrorKind::Failed, e))
    }

    fn status(&self, dir: &Path, m: &Meta) -> (ServerStatus, Option<String>) {
        match m.state {
            State::Creating => match m.creator_pid {
                Some(pid) if !sandbox::process_alive(pid) => (
                    ServerStatus::Error,
                    Some(format!(
                        "the create was interrupted (prov process {pid} ended): start-server \
                         finishes it, delete-server removes it"
                    )),
                ),
                _ => (ServerStatus::Creating, None),
            },
            State::Stopped => (ServerStatus::Stopped, None),
            State::Deleting => (
                ServerStatus::Error,
                Some("a delete was interrupted: delete-server finishes it".to_string()),
            ),
            State::Running => {
                if let Some(ns) = &m.netns {
                    if !net::netns_exists(ns) {
                        return (
                            ServerStatus::Error,
                            Some(format!("network namespace {ns} is gone")),
                        );
                    }
                }
                if m.sshd && sandbox::sshd_pid(dir).is_none() {
                    return (
                        ServerStatus::Stopped,
                        Some("sshd is not running".to_string()),
                    );
                }
                (ServerStatus::Running, None)
            }
        }
    }

    fn info_of(&self, dir: &Path, m: &Meta) -> ServerInfo {
        let (status, note) = self.status(dir, m);
        let plan = catalogue::PLANS.iter().find(|p| p.0 == m.plan);
        ServerInfo {
            id: m.id.clone(),
            hostname: m.hostname.clone(),
            status,
            plan: m.plan.clone(),
            zone: m.zone.clone(),
            os: m.os.clone(),
            public_ip: None,
            private_ip: m.address.clone().or_else(|| Some("127.0.0.1".to_string())),
            tags: m.tags.clone(),
            firewall_rules: m.firewall_rules.clone(),
            extra: json!({
                "isolation": m.isolation.as_str(),
                "dir": dir.display().to_string(),
                "netns": m.netns,
                "veth": m.veth_host,
                "bridge": m.bridge,
                "ssh_port": m.ssh_port,
                "sshd_pid": sandbox::sshd_pid(dir),
                // What get-ssh-access answers, so `prov show` tells how to log in.
                "ssh": ssh_access(dir, m),
                "boots": m.boots,
                "cores": plan.map(|p| p.1),
                "memory_mb": plan.map(|p| p.2),
                "limits_enforced": !m.cgroups.is_empty(),
                "cgroups": m.cgroups,
                "limits_note": m.limits_note,
                "created_at": m.created_at,
                "note": note,
            }),
        }
    }

    /// Removes staging directories whose prov process is gone: `.creating-ID-PID` (a create
    /// killed before its sandbox directory existed) and `.deleting-ID-PID` (a delete killed while
    /// removing the directory, after everything else was gone).
    fn collect_interrupted(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name
                .strip_prefix(".creating-")
                .or_else(|| name.strip_prefix(".deleting-"))
            else {
                continue;
            };
            let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !sandbox::process_alive(p)) {
                let _ = fsutil::remove_dir_all(&e.path());
            }
        }
    }

    /// Builds (or finishes building) the sandbox's network and sshd; every step is idempotent.
    async fn build(&self, dir: &Path, meta: &mut Meta, keys: &[String]) -> Result<(), String> {
        let has_sshd = Path::new(&self.opts.sshd).exists();
        if meta.isolation == Isolation::Netns && !has_sshd {
            return Err(format!(
                "{} not found: install openssh-server (or set providers.{}.sshd)",
                self.opts.sshd, self.name
            ));
        }
        if meta.isolation == Isolation::Netns {
            self.ensure_network(dir, meta).await?;
        }
        sandbox::prepare_ssh(dir, keys).await?;
        meta.sshd = has_sshd;
        self.start_processes(dir, meta).await
    }

    /// Sets the plan's limits and starts sshd inside them (when the sandbox has one).
    async fn start_processes(&self, dir: &Path, meta: &mut Meta) -> Result<(), String> {
        if let Some((cores, mem)) = catalogue::size(&meta.plan) {
            cgroup::apply(&meta.cgroups, cores, mem)?;
        }
        if meta.sshd {
            sandbox::start_sshd(&self.opts.sshd, meta, dir).await?;
            if let Some(pid) = sandbox::sshd_pid(dir) {
                cgroup::join(&meta.cgroups, pid)?;
            }
        }
        Ok(())
    }

    /// Address lease, namespace, veth pair and firewall (netns mode).
    async fn ensure_network(&self, dir: &Path, meta: &mut Meta) -> Result<(), String> {
        let (Some(ns), Some(veth)) = (meta.netns.clone(), meta.veth_host.clone()) else {
            return Err("the sandbox has no namespace recorded".to_string());
        };
        let address = net::acquire(&self.opts, dir, &ns).await?;
        meta.address = Some(address.to_string());
        sandbox::write_meta(dir, meta)?;
        let peer = format!("pvn{}", meta.key);
        net::setup_netns(&self.opts, &ns, &veth, &peer, address).await?;
        net::apply_firewall(&ns, &meta.firewall_rules, self.opts.subnet, dir).await
    }

    /// Removes everything the sandbox has: processes, namespace, veth, lease (and the bridge
    /// with the last one), directory. Safe to repeat.
    async fn destroy(&self, dir: &Path, meta: Option<&Meta>) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(m) = meta {
            // Marked first, so a delete cut short is reported as such.
            let mut marked = m.clone();
            marked.state = State::Deleting;
            let _ = sandbox::write_meta(dir, &marked);
            if let Err(e) = sandbox::kill_all(m, dir).await {
                problems.push(e);
            }
            if let Err(e) = cgroup::remove(&m.cgroups).await {
                problems.push(e);
            }
            if let (Some(ns), Some(veth)) = (&m.netns, &m.veth_host) {
                if let Err(e) = net::teardown_netns(ns, veth).await {
                    problems.push(e);
                }
            }
        }
        // The lease (and with the last one the bridge) before the directory: killed in between,
        // the sandbox is still listed, and the delete is finished on the next run.
        if let Some(bridge) = meta.and_then(|m| m.bridge.as_deref()) {
            if let Err(e) = net::release(bridge, dir).await {
                problems.push(e);
            }
        }
        if problems.is_empty() {
            // Renamed out of the way first: a removal cut short must not leave a directory
            // that looks like a sandbox without its metadata.
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let doomed = self
                .root
                .join(format!(".deleting-{name}-{}", std::process::id()));
            let gone = match std::fs::rename(dir, &doomed) {
                Ok(()) => fsutil::remove_dir_all(&doomed),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(_) => fsutil::remove_dir_all(dir),
            };
            if let Err(e) = gone {
                problems.push(format!("cannot remove {}: {e}", dir.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    async fn start(&self, op: &str, id: &str) -> ExtResult<()> {
        let (dir, mut meta) = self.load(op, id)?;
        let fail = |e: String| self.err(op, Some(id), ErrorKind::Failed, e);
        let keys = sandbox::resolve_keys(&meta.ssh_keys)
            .map_err(|e| self.err(op, Some(id), ErrorKind::Invalid, e))?;
        // Whatever is missing is built again: a namespace lost when the machine rebooted (/run is
        // tmpfs), or the rest of a create that was interrupted.
        self.build(&dir, &mut meta, &keys).await.map_err(fail)?;
        if meta.state != State::Running {
            meta.boots += 1;
        }
        meta.state = State::Running;
        self.save(op, &dir, &meta)
    }

    async fn stop(&self, op: &str, id: &str) -> ExtResult<()> {
        let (dir, mut meta) = self.load(op, id)?;
        sandbox::kill_all(&meta, &dir)
            .await
            .map_err(|e| self.err(op, Some(id), ErrorKind::Failed, e))?;
        meta.state = State::Stopped;
        self.save(op, &dir, &meta)
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn replace_on_change(&self) -> &[&str] {
        REPLACE_ON_CHANGE
    }
    fn parallelism(&self) -> Option<usize> {
        self.opts.parallelism
    }

    fn check_server(&self, config: &Value) -> Vec<String> {
        let s = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("${}")
                .to_string()
        };
        let rules: Vec<FirewallRule> = match config.get("firewall_rules") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => match serde_json::from_value(v.clone()) {
                Ok(r) => r,
                Err(e) => return vec![format!("firewall_rules: {e}")],
            },
        };
        let keys: Vec<String> = config
            .get("ssh_keys")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        self.spec_problems(&s("hostname"), &s("plan"), &s("zone"), &rules, &keys)
    }

    async fn info(&self) -> ExtResult<ProviderInfo> {
        Ok(ProviderInfo {
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            interface: "prov-provider/1".to_string(),
            supported_operations: prov_engine::traits::PROVIDER_OPERATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            required_auth: vec![],
            // The sandbox runs the host's own system: `os` is a label.
            supported_os: vec!["any".to_string()],
            regions: vec![catalogue::ZONE.to_string()],
        })
    }

    async fn validate_config(&self, settings: &Value) -> ExtResult<Validation> {
        let errors = options::parse(&self.name, settings, self.root_user)
            .err()
            .unwrap_or_default();
        Ok(Validation {
            errors,
            ..Validation::default()
        })
    }

    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        let mut missing = Vec::new();
        let tools: &[&str] = match self.opts.isolation {
            Isolation::Netns => &["ip", "nft", "ssh-keygen"],
            Isolation::None => &["ssh-keygen"],
        };
        for t in tools {
            if cmd::Cmd::new(t).args(["-V"]).output().await.is_err() {
                missing.push(t.to_string());
            }
        }
        let sshd = Path::new(&self.opts.sshd).exists();
        if self.opts.isolation == Isolation::Netns && !sshd {
            missing.push(self.opts.sshd.clone());
        }
        let n = std::fs::read_dir(&self.root)
            .map(|d| d.count())
            .unwrap_or(0);
        let success = missing.is_empty();
        let message = if success {
            format!(
                "isolation {} at {} ({n} sandboxes){}",
                self.opts.isolation.as_str(),
                self.root.display(),
                match (self.opts.isolation, sshd) {
                    (Isolation::Netns, _) =>
                        format!(", bridge {} subnet {}", self.opts.bridge, self.opts.subnet),
                    (Isolation::None, true) => ", sshd on 127.0.0.1".to_string(),
                    (Isolation::None, false) =>
                        ", no sshd (get-ssh-access unsupported)".to_string(),
                }
            )
        } else {
            format!("missing: {}", missing.join(", "))
        };
        Ok(ConnectionTest { success, message })
    }

    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        const OP: &str = "create-server";
        let target = Some(spec.hostname.as_str());
        let invalid = |m: String| self.err(OP, target, ErrorKind::Invalid, m);
        let problems = self.spec_problems(
            &spec.hostname,
            &spec.plan,
            &spec.zone,
            &spec.firewall_rules,
            &spec.ssh_keys,
        );
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        let keys = sandbox::resolve_keys(&spec.ssh_keys).map_err(invalid)?;
        let id = format!("{}-{}", spec.hostname, suffix());
        let dir = self.sandbox_dir(&id);
        let fail = |m: String| self.err(OP, Some(&id), ErrorKind::Failed, m);
        self.collect_interrupted();
        let key = hex(&Sha256::digest(dir.display().to_string().as_bytes()), 10);
        let mut tags = spec.tags.clone();
        tags.insert(
            prov_engine::traits::Ownership::TAG_WORKSPACE.into(),
            owner.workspace.clone(),
        );
        tags.insert(
            prov_engine::traits::Ownership::TAG_ADDRESS.into(),
            owner.address.clone(),
        );
        let netns = self.opts.isolation == Isolation::Netns;
        let mut meta = Meta {
            id: id.clone(),
            hostname: spec.hostname.clone(),
            plan: spec.plan.clone(),
            zone: spec.zone.clone(),
            os: spec.os.clone(),
            ssh_keys: spec.ssh_keys.clone(),
            tags,
            firewall_rules: spec.firewall_rules.clone(),
            storage: spec.storage.clone(),
            network: spec.network.clone(),
            isolation: self.opts.isolation,
            netns: netns.then(|| format!("prov-{key}")),
            veth_host: netns.then(|| format!("pvh{key}")),
            bridge: netns.then(|| self.opts.bridge.clone()),
            key,
            address: None,
            sshd: false,
            ssh_port: None,
            ssh_user: current_user(self.root_user),
            state: State::Creating,
            created_at: fsutil::now_rfc3339(),
            boots: 0,
            cgroups: Vec::new(),
            limits_note: None,
            creator_pid: Some(std::process::id()),
        };
        meta.cgroups = cgroup::dirs_for(&meta.key);
        // Recorded before anything is built, so a crash leaves a sandbox delete can clean up:
        // the directory appears (renamed into place) with its metadata already in it.
        let staging = self
            .root
            .join(format!(".creating-{id}-{}", std::process::id()));
        std::fs::create_dir_all(staging.join("root"))
            .map_err(|e| fail(format!("cannot create {}: {e}", staging.display())))?;
        self.save(OP, &staging, &meta)?;
        std::fs::rename(&staging, &dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        if let Some((cores, mem)) = catalogue::size(&meta.plan) {
            // Limits are best effort: a hierarchy that refuses them (e.g. a container's
            // cgroup v2 root with processes in it) leaves the sizes as labels, said so in
            // get-server-info, rather than failing the server.
            if let Err(e) = cgroup::apply(&meta.cgroups, cores, mem) {
                let _ = cgroup::remove(&meta.cgroups).await;
                meta.cgroups.clear();
                meta.limits_note = Some(e);
            }
        }
        if let Err(e) = self.build(&dir, &mut meta, &keys).await {
            let cleanup = match self.destroy(&dir, Some(&meta)).await {
                Ok(()) => "the partial sandbox was removed".to_string(),
                Err(c) => format!("cleaning up the partial sandbox also failed: {c}"),
            };
            return Err(fail(format!("{e} ({cleanup})")));
        }
        meta.state = State::Running;
        meta.boots = 1;
        meta.creator_pid = None;
        self.save(OP, &dir, &meta)?;
        Ok(self.info_of(&dir, &meta))
    }

    async fn delete_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "delete-server";
        let dir = self.dir_of(OP, id)?;
        self.collect_interrupted();
        if !dir.exists() {
            return Err(self.err(
                OP,
                Some(id),
                ErrorKind::NotFound,
                format!("no sandbox {}", dir.display()),
            ));
        }
        let meta =
            sandbox::read_meta(&dir).map_err(|e| self.err(OP, Some(id), ErrorKind::Failed, e))?;
        self.destroy(&dir, meta.as_ref())
            .await
            .map_err(|e| self.err(OP, Some(id), ErrorKind::Failed, e))
    }

    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(self.err(
                    "list-servers",
                    None,
                    ErrorKind::Failed,
                    format!("cannot read {}: {e}", self.root.display()),
                ))
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                // A create still staging its directory.
                continue;
            }
            let dir = e.path();
            if let Ok(Some(m)) = sandbox::read_meta(&dir) {
                out.push(self.info_of(&dir, &m));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>> {
        const OP: &str = "get-server-info";
        let Ok(dir) = self.dir_of(OP, id) else {
            return Ok(None);
        };
        match sandbox::read_meta(&dir) {
            Ok(Some(m)) => Ok(Some(self.info_of(&dir, &m))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.err(OP, Some(id), ErrorKind::Failed, e)),
        }
    }

    async fn start_server(&self, id: &str) -> ExtResult<()> {
        self.start("start-server", id).await
    }

    async fn stop_server(&self, id: &str) -> ExtResult<()> {
        self.stop("stop-server", id).await
    }

    async fn reboot_server(&self, id: &str) -> ExtResult<()> {
        self.stop("reboot-server", id).await?;
        self.start("reboot-server", id).await
    }

    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo> {
        const OP: &str = "update-server";
        let invalid = |m: String| self.err(OP, Some(id), ErrorKind::Invalid, m);
        let (b, a) = (&update.before, &update.after);
        let pairs = [
            ("zone", json!(b.zone), json!(a.zone)),
            ("os", json!(b.os), json!(a.os)),
            ("hostname", json!(b.hostname), json!(a.hostname)),
            ("storage", b.storage.clone(), a.storage.clone()),
            ("network", b.network.clone(), a.network.clone()),
        ];
        if let Some((k, before, after)) = pairs.iter().find(|(_, x, y)| x != y) {
            return Err(invalid(format!(
                "{k} cannot change in place ({before} -> {after}); it forces a replacement"
            )));
        }
        let problems = self.spec_problems(
            &a.hostname,
            &a.plan,
            &a.zone,
            &a.firewall_rules,
            &a.ssh_keys,
        );
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        let keys = sandbox::resolve_keys(&a.ssh_keys).map_err(invalid)?;
        let (dir, mut meta) = self.load(OP, id)?;
        let fail = |e: String| self.err(OP, Some(id), ErrorKind::Failed, e);
        let mut tags: BTreeMap<String, String> = a.tags.clone();
        for (k, v) in &meta.tags {
            if k.starts_with("prov:") && !tags.contains_key(k) {
                tags.insert(k.clone(), v.clone());
            }
        }
        meta.tags = tags;
        if meta.plan != a.plan {
            // A resize in place: the running processes get the new limits at once.
            if let Some((cores, mem)) = catalogue::size(&a.plan) {
                cgroup::apply(&meta.cgroups, cores, mem).map_err(fail)?;
            }
        }
        meta.plan = a.plan.clone();
        meta.ssh_keys = a.ssh_keys.clone();
        sandbox::write_authorized_keys(&dir, &keys).map_err(fail)?;
        if meta.firewall_rules != a.firewall_rules {
            if let Some(ns) = &meta.netns {
                net::apply_firewall(ns, &a.firewall_rules, self.opts.subnet, &dir)
                    .await
                    .map_err(fail)?;
            }
            meta.firewall_rules = a.firewall_rules.clone();
        }
        self.save(OP, &dir, &meta)?;
        Ok(self.info_of(&dir, &meta))
    }

    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        Ok(catalogue::pricing())
    }

    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        Ok(catalogue::plans())
    }

    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        Ok(catalogue::zones())
    }

    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess> {
        const OP: &str = "get-ssh-access";
        let (dir, meta) = self.load(OP, id)?;
        match ssh_access(&dir, &meta) {
            Some(a) => Ok(a),
            None => Err(self.err(
                OP,
                Some(id),
                ErrorKind::Unsupported,
                format!(
                    "sandbox {id} has no sshd ({} was not found when it was created); its \
                     commands run as local processes",
                    self.opts.sshd
                ),
            )),
        }
    }

    async fn transport(&self, id: &str) -> ExtResult<TransportSpec> {
        let (dir, meta) = self.load("transport", id)?;
        match meta.isolation {
            // The sandbox has its own network but shares this machine's filesystem: its
            // taskservs' files go under its own root, as without a namespace.
            Isolation::Netns => Ok(TransportSpec::Ssh {
                access: self.get_ssh_access(id).await?,
                root: dir.join("root").to_string_lossy().into_owned(),
            }),
            Isolation::None => Ok(TransportSpec::Local {
                root: dir.join("root"),
                env: BTreeMap::from([
                    (sandbox::MARKER.to_string(), meta.key.clone()),
                    ("PROV_SERVER_ID".to_string(), meta.id.clone()),
                ]),
            }),
        }
    }

    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()> {
        const OP: &str = "configure-firewall";
        let invalid = |m: String| self.err(OP, Some(id), ErrorKind::Invalid, m);
        let mut problems = firewall::check(rules);
        if !rules.is_empty() && self.opts.isolation == Isolation::None {
            problems.push(self.no_firewall_message());
        }
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        let (dir, mut meta) = self.load(OP, id)?;
        if meta.isolation == Isolation::None && !rules.is_empty() {
            return Err(invalid(self.no_firewall_message()));
        }
        if let Some(ns) = &meta.netns {
            net::apply_firewall(ns, rules, self.opts.subnet, &dir)
                .await
                .map_err(|e| self.err(OP, Some(id), ErrorKind::Failed, e))?;
        }
        meta.firewall_rules = rules.to_vec();
        self.save(OP, &dir, &meta)
    }
}

#[cfg(test)]
mod tool_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn missing_tools_are_named_per_isolation() {
        let bin = tempfile::tempdir().unwrap();
        let add = |name: &str, mode: u32| {
            let p = bin.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let path = bin.path().as_os_str();
        assert_eq!(
            missing_tools(Isolation::None, "/nonexistent/sshd", path),
            vec!["ssh-keygen"]
        );
        add("ssh-keygen", 0o755);
        // Not executable: as good as missing.
        add("ip", 0o644);
        assert!(missing_tools(Isolation::None, "/nonexistent/sshd", path).is_empty());
        assert_eq!(
            missing_tools(Isolation::Netns, "/nonexistent/sshd", path),
            vec!["ip", "nft", "/nonexistent/sshd"]
        );
        add("ip", 0o755);
        add("nft", 0o755);
        let sshd = add("sshd", 0o755);
        assert!(missing_tools(Isolation::Netns, sshd.to_str().unwrap(), path).is_empty());
    }
}
