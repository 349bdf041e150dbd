//! The one shared fake for tests of the engine and of extension crates: an in-memory cloud (`FakeProvider`), taskserv and cluster that log every call, plus a `World` that plans and applies a Nickel workspace against them and an in-memory state.
//!
//! The provider keeps servers in memory and answers the operations a plan/apply/refresh needs;
//! pricing, plans, zones and SSH access answer `Unsupported` unless a test sets them. Calls can
//! be made to fail (`fail`) or to take time (`latency`), and a hook (`on_call`) sees each call
//! as it starts — to check, say, what the state holds at that moment.

use crate::apply::{ApplyOptions, ApplyReport};
use crate::config::EvalOptions;
use crate::error::EngineError;
use crate::events::{Event, EventSink};
use crate::plan::make::PlanOptions;
use crate::plan::Plan;
use crate::registry::{ExtContext, Registry};
use crate::traits::{
    Cluster, ClusterRequest, ClusterResult, ClusterStatus, ComponentRequest, ComponentStatus,
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, Ownership, PlanInfo, Pricing,
    Provider, ProviderInfo, ServerInfo, ServerSpec, ServerStatus, ServerUpdate, SshAccess,
    TaskServ, TaskservRequest, TaskservResult, TaskservStatus, UpdateCheck, Validation, Zone,
};
use crate::workspace::{self, Loaded, Workspace};
use async_trait::async_trait;
use prov_state::{
    BackendErrorKind, Change, HistoryEntry, LockInfo, MemoryStore, ReadOptions, ResourceRecord,
    Snapshot, StateDump, StateError, StateMeta, StateRead, StateStore, StateWrite,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The implementation name every fake registers under (`provider = "fake"`).
pub const FAKE: &str = "fake";

/// A hook called as each logged call starts, with the call as logged (`create-server web`).
pub type CallHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What the fakes share: the call log, failures to inject, latency and the in-flight count.
#[derive(Default)]
pub struct Calls {
    log: Mutex<Vec<String>>,
    /// `operation target` → error message; a call whose logged form matches fails.
    fail: Mutex<BTreeMap<String, String>>,
    latency: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    hook: Mutex<Option<CallHook>>,
}

impl Calls {
    /// Every call so far, in the order they started: `operation target`.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// The calls of one operation (`create-server`), their targets in order.
    pub fn of(&self, operation: &str) -> Vec<String> {
        self.log()
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("{operation} ")).map(str::to_string))
            .collect()
    }
    /// Clears the log (not the failures).
    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.max_in_flight.store(0, Ordering::SeqCst);
    }
    /// Makes `operation` on `target` fail (`fail("create-server", "web")`; targets are
    /// hostnames for servers, `NAME@SERVER` for taskservs, names for clusters and components).
    pub fn fail(&self, operation: &str, target: &str) {
        self.fail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{operation} {target}"), "injected failure".into());
    }
    /// Removes every injected failure.
    pub fn heal(&self) {
        self.fail.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    /// How long every call takes.
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }
    /// The most calls that were running at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    /// Calls `hook` as each call starts.
    pub fn on_call(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(hook));
    }

    /// Logs a call, waits the latency, and answers the injected failure if there is one.
    async fn call(&self, implementation: &str, operation: &str, target: &str) -> ExtResult<()> {
        let entry = format!("{operation} {target}");
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry.clone());
        let hook = self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(h) = hook {
            h(&entry);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap_or_else(|p| p.into_inner());
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let failure = self
            .fail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&entry)
            .cloned();
        match failure {
            Some(msg) => Err(ExtError::new(
                implementation,
                operation,
                Some(target),
                ErrorKind::Failed,
                msg,
            )),
            None => Ok(()),
        }
    }
}

fn unsupported<T>(implementation: &str, operation: &str) -> ExtResult<T> {
    Err(ExtError::new(
        implementation,
        operation,
        None,
        ErrorKind::Unsupported,
        "not implemented by the fake",
    ))
}

/// An in-memory cloud. Server ids are `fake-1`, `fake-2`, ... in creation order; zone changes
/// force replacement (`replace_on_change`), everything else updates in place.
pub struct FakeProvider {
    pub calls: Arc<Calls>,
    servers: Mutex<BTreeMap<String, ServerInfo>>,
    next_id: AtomicUsize,
    /// Answers of get-pricing (None: unsupported).
    pub pricing: Mutex<Option<Vec<Pricing>>>,
}

impl FakeProvider {
    pub fn new(calls: Arc<Calls>) -> FakeProvider {
        FakeProvider {
            calls,
            servers: Mutex::new(BTreeMap::new()),
            next_id: AtomicUsize::new(1),
            pricing: Mutex::new(None),
        }
    }
    /// A provider of its own (own call log) holding one running server that exists already.
    pub fn with_server(id: &str, hostname: &str) -> Arc<FakeProvider> {
        let p = FakeProvider::new(Arc::new(Calls::default()));
        p.insert(ServerInfo {
            id: id.into(),
            hostname: hostname.into(),
            status: ServerStatus::Running,
            plan: "small".into(),
            zone: "sim-a".into(),
            os: "ubuntu-22.04".into(),
            public_ip: Some("203.0.113.1".into()),
            private_ip: Some("10.0.0.1".into()),
            tags: BTreeMap::new(),
            firewall_rules: vec![],
            extra: Value::Null,
        });
        Arc::new(p)
    }
    /// Adds a server that exists outside prov.
    pub fn insert(&self, info: ServerInfo) {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.id.clone(), info);
    }
    /// The servers that exist, by id.
    pub fn servers(&self) -> BTreeMap<String, ServerInfo> {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Changes a server outside prov (drift), as `edit` does to it.
    pub fn edit(&self, id: &str, edit: impl FnOnce(&mut ServerInfo)) {
        if let Some(s) = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            edit(s);
        }
    }
    /// Deletes a server outside prov.
    pub fn remove(&self, id: &str) {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
    fn hostname_of(&self, id: &str) -> String {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map_or_else(|| id.to_string(), |s| s.hostname.clone())
    }
    fn info(&self, id: String, spec: &ServerSpec, tags: BTreeMap<String, String>) -> ServerInfo {
        let n = id.trim_start_matches("fake-").to_string();
        ServerInfo {
            id,
            hostname: spec.hostname.clone(),
            status: ServerStatus::Running,
            plan: spec.plan.clone(),
            zone: spec.zone.clone(),
            os: spec.os.clone(),
            public_ip: Some(format!("203.0.113.{n}")),
            private_ip: Some(format!("10.0.0.{n}")),
            tags,
            firewall_rules: spec.firewall_rules.clone(),
            extra: json!({}),
        }
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &str {
        FAKE
    }
    fn replace_on_change(&self) -> &[&str] {
        &["zone"]
    }
    async fn info(&self) -> ExtResult<ProviderInfo> {
        Ok(ProviderInfo {
            name: FAKE.into(),
            version: "0.0.0".into(),
            interface: "1".into(),
            supported_operations: vec![],
            required_auth: vec![],
            supported_os: vec![],
            regions: vec![],
        })
    }
    async fn validate_config(&self, _: &Value) -> ExtResult<Validation> {
        Ok(Validation::default())
    }
    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        Ok(ConnectionTest {
            success: true,
            message: "in memory".into(),
        })
    }
    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        self.calls
            .call(FAKE, "create-server", &spec.hostname)
            .await?;
        let id = format!("fake-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let mut tags = spec.tags.clone();
        tags.insert(Ownership::TAG_WORKSPACE.into(), owner.workspace.clone());
        tags.insert(Ownership::TAG_ADDRESS.into(), owner.address.clone());
        let info = self.info(id.clone(), spec, tags);
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, info.clone());
        Ok(info)
    }
    async fn delete_server(&self, id: &str) -> ExtResult<()> {
        self.calls
            .call(FAKE, "delete-server", &self.hostname_of(id))
            .await?;
        self.remove(id);
        Ok(())
    }
    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        Ok(self.servers().into_values().collect())
    }
    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>> {
        Ok(self.servers().get(id).cloned())
    }
    async fn start_server(&self, id: &str) -> ExtResult<()> {
        self.calls
            .call(FAKE, "start-server", &self.hostname_of(id))
            .await?;
        self.edit(id, |s| s.status = ServerStatus::Running);
        Ok(())
    }
    async fn stop_server(&self, id: &str) -> ExtResult<()> {
        self.calls
            .call(FAKE, "stop-server", &self.hostname_of(id))
            .await?;
        self.edit(id, |s| s.status = ServerStatus::Stopped);
        Ok(())
    }
    async fn reboot_server(&self, id: &str) -> ExtResult<()> {
        self.calls
            .call(FAKE, "reboot-server", &self.hostname_of(id))
            .await
    }
    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo> {
        self.calls
            .call(FAKE, "update-server", &self.hostname_of(id))
            .await?;
        let mut guard = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = guard.get_mut(id) else {
            return Err(ExtError::new(
                FAKE,
                "update-server",
                Some(id),
                ErrorKind::NotFound,
                "no such server",
            ));
        };
        let owner: BTreeMap<String, String> = s
            .tags
            .iter()
            .filter(|(k, _)| k.starts_with("prov:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        s.hostname = update.after.hostname.clone();
        s.plan = update.after.plan.clone();
        s.os = update.after.os.clone();
        s.tags = update.after.tags.clone();
        s.tags.extend(owner);
        s.firewall_rules = update.after.firewall_rules.clone();
        Ok(s.clone())
    }
    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        match self
            .pricing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(p) => Ok(p),
            None => unsupported(FAKE, "get-pricing"),
        }
    }
    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        unsupported(FAKE, "get-plans")
    }
    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        unsupported(FAKE, "get-zones")
    }
    async fn get_ssh_access(&self, _: &str) -> ExtResult<SshAccess> {
        unsupported(FAKE, "get-ssh-access")
    }
    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()> {
        self.calls
            .call(FAKE, "configure-firewall", &self.hostname_of(id))
            .await?;
        self.edit(id, |s| s.firewall_rules = rules.to_vec());
        Ok(())
    }
}

/// A taskserv that installs into memory: `NAME@SERVER-HOSTNAME` → version.
pub struct FakeTaskserv {
    pub calls: Arc<Calls>,
    installed: Mutex<BTreeMap<String, Option<String>>>,
}

impl FakeTaskserv {
    pub fn new(calls: Arc<Calls>) -> FakeTaskserv {
        FakeTaskserv {
            calls,
            installed: Mutex::new(BTreeMap::new()),
        }
    }
    /// What is installed: `NAME@HOSTNAME` → version.
    pub fn installed(&self) -> BTreeMap<String, Option<String>> {
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn key(req: &TaskservRequest) -> String {
        format!("{}@{}", req.name, req.server.hostname)
    }
}

#[async_trait]
impl TaskServ for FakeTaskserv {
    fn name(&self) -> &str {
        FAKE
    }
    async fn install(&self, req: &TaskservRequest) -> ExtResult<TaskservResult> {
        let key = Self::key(req);
        self.calls.call(FAKE, "install", &key).await?;
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, req.version.clone());
        Ok(TaskservResult {
            version: req.version.clone(),
            status: "running".into(),
            outputs: json!({}),
        })
    }
    async fn uninstall(&self, req: &TaskservRequest) -> ExtResult<()> {
        let key = Self::key(req);
        self.calls.call(FAKE, "uninstall", &key).await?;
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        Ok(())
    }
    async fn configure(&self, req: &TaskservRequest) -> ExtResult<()> {
        self.calls.call(FAKE, "configure", &Self::key(req)).await
    }
    async fn status(&self, req: &TaskservRequest) -> ExtResult<TaskservStatus> {
        let version = self.installed().get(&Self::key(req)).cloned();
        Ok(TaskservStatus {
            installed: version.is_some(),
            running: version.is_some(),
            version: version.flatten(),
            healthy: Some(true),
            detail: json!({}),
        })
    }
    async fn restart(&self, req: &TaskservRequest) -> ExtResult<()> {
        self.calls.call(FAKE, "restart", &Self::key(req)).await
    }
    async fn upgrade(&self, req: &TaskservRequest, version: &str) -> ExtResult<TaskservResult> {
        let key = Self::key(req);
        self.calls.call(FAKE, "upgrade", &key).await?;
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Some(version.to_string()));
        Ok(TaskservResult {
            version: Some(version.to_string()),
            status: "running".into(),
            outputs: json!({}),
        })
    }
    async fn get_current_version(&self, req: &TaskservRequest) -> ExtResult<Option<String>> {
        Ok(self.installed().get(&Self::key(req)).cloned().flatten())
    }
    async fn get_available_versions(&self, _: &TaskservRequest) -> ExtResult<Vec<String>> {
        unsupported(FAKE, "get-available-versions")
    }
    async fn check_updates(&self, _: &TaskservRequest) -> ExtResult<UpdateCheck> {
        unsupported(FAKE, "check-updates")
    }
}

/// A cluster kept in memory: its components' names per cluster.
pub struct FakeCluster {
    pub calls: Arc<Calls>,
    clusters: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl FakeCluster {
    pub fn new(calls: Arc<Calls>) -> FakeCluster {
        FakeCluster {
            calls,
            clusters: Mutex::new(BTreeMap::new()),
        }
    }
    /// The clusters that exist, with their components.
    pub fn clusters(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn component(req: &ComponentRequest, status: &str) -> ComponentStatus {
        ComponentStatus {
            name: req.name.clone(),
            kind: req.config["type"].as_str().unwrap_or("application").into(),
            version: req.config["version"].as_str().unwrap_or("").into(),
            status: status.into(),
            replicas: req.config["replicas"].as_u64().unwrap_or(1) as u32,
        }
    }
}

#[async_trait]
impl Cluster for FakeCluster {
    fn name(&self) -> &str {
        FAKE
    }
    async fn create(&self, req: &ClusterRequest) -> ExtResult<ClusterResult> {
        self.calls.call(FAKE, "create", &req.name).await?;
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(req.name.clone())
            .or_default();
        Ok(ClusterResult {
            status: "running".into(),
            endpoints: vec![],
            outputs: json!({}),
        })
    }
    async fn delete(&self, req: &ClusterRequest) -> ExtResult<()> {
        self.calls.call(FAKE, "delete", &req.name).await?;
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req.name);
        Ok(())
    }
    async fn status(&self, req: &ClusterRequest) -> ExtResult<ClusterStatus> {
        let exists = self.clusters().contains_key(&req.name);
        Ok(ClusterStatus {
            status: if exists { "running" } else { "missing" }.into(),
            components: vec![],
        })
    }
    async fn scale(&self, req: &ComponentRequest, _: u32) -> ExtResult<ComponentStatus> {
        self.calls.call(FAKE, "scale", &req.name).await?;
        Ok(Self::component(req, "running"))
    }
    async fn upgrade(&self, req: &ComponentRequest, _: &str) -> ExtResult<ComponentStatus> {
        self.calls.call(FAKE, "upgrade", &req.name).await?;
        Ok(Self::component(req, "running"))
    }
    async fn list_components(&self, _: &ClusterRequest) -> ExtResult<Vec<ComponentStatus>> {
        unsupported(FAKE, "list-components")
    }
    async fn component_status(&self, _: &ComponentRequest) -> ExtResult<Option<ComponentStatus>> {
        Ok(None)
    }
    async fn restart_component(&self, req: &ComponentRequest) -> ExtResult<()> {
        self.calls.call(FAKE, "restart-component", &req.name).await
    }
    async fn deploy_component(&self, req: &ComponentRequest) -> ExtResult<ComponentStatus> {
        self.calls.call(FAKE, "deploy-component", &req.name).await?;
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(req.cluster.name.clone())
            .or_default()
            .insert(req.name.clone());
        Ok(Self::component(req, "running"))
    }
    async fn remove_component(&self, req: &ComponentRequest) -> ExtResult<()> {
        self.calls.call(FAKE, "remove-component", &req.name).await?;
        if let Some(c) = self
            .clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&req.cluster.name)
        {
            c.remove(&req.name);
        }
        Ok(())
    }
}

/// A state store that fails its `fail_at`-th commit (1-based) and commits everything else to
/// `inner`: a state write failing mid-walk, as a full disk or a lost database connection would.
/// The failed commit writes nothing (the contract of `StateWrite::commit` on error). With
/// [`FailingStore::slow`] every commit also takes that long first, as a slow disk or a distant
/// database would.
pub struct FailingStore {
    inner: Arc<dyn StateStore>,
    fail_at: usize,
    commits: AtomicUsize,
    delay: Duration,
    panic_at: usize,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn StateStore>, fail_at: usize) -> FailingStore {
        FailingStore {
            inner,
            fail_at,
            commits: AtomicUsize::new(0),
            delay: Duration::ZERO,
            panic_at: usize::MAX,
        }
    }
    /// The `n`th commit panics instead (a bug in a backend), for what must survive one.
    pub fn panicking_at(mut self, n: usize) -> FailingStore {
        self.panic_at = n;
        self
    }
    /// Every commit takes `delay` before it writes (or fails).
    pub fn slow(mut self, delay: Duration) -> FailingStore {
        self.delay = delay;
        self
    }
    /// Commits attempted so far, the failed one included.
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }
}

impl StateRead for FailingStore {
    fn snapshot_with(&self, opts: ReadOptions) -> Result<Snapshot, StateError> {
        self.inner.snapshot_with(opts)
    }
    fn meta(&self) -> Result<StateMeta, StateError> {
        self.inner.meta()
    }
    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError> {
        self.inner.record(address)
    }
    fn history(&self, address: &str) -> Result<Vec<HistoryEntry>, StateError> {
        self.inner.history(address)
    }
    fn changed_since(
        &self,
        addresses: &BTreeSet<String>,
        serial: u64,
    ) -> Result<BTreeSet<String>, StateError> {
        self.inner.changed_since(addresses, serial)
    }
    fn resource_locks(&self) -> Result<BTreeMap<String, LockInfo>, StateError> {
        self.inner.resource_locks()
    }
}

impl StateWrite for FailingStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(self.delay);
        assert!(n != self.panic_at, "commit {n} panicked (injected)");
        if n == self.fail_at {
            return Err(StateError::Backend {
                backend: "failing test store".into(),
                kind: BackendErrorKind::ConnectionLost,
                detail: format!("commit {n} failed (injected)"),
                what_to_do: "nothing: a test asked for it".into(),
            });
        }
        self.inner.commit(changes)
    }
    fn set_outputs(&self, outputs: serde_json::Map<String, Value>) -> Result<u64, StateError> {
        self.inner.set_outputs(outputs)
    }
    fn replace_all(&self, dump: &StateDump, force: bool) -> Result<u64, StateError> {
        self.inner.replace_all(dump, force)
    }
    fn lock_resources(
        &self,
        addresses: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<(), StateError> {
        self.inner.lock_resources(addresses, timeout)
    }
    fn update_outputs(
        &self,
        compute: &mut dyn FnMut(&Snapshot) -> serde_json::Map<String, Value>,
    ) -> Result<u64, StateError> {
        self.inner.update_outputs(compute)
    }
}

/// An in-memory state as [`workspace::load_with_state`] opens it.
pub struct Opened(pub Arc<MemoryStore>);

impl workspace::OpenedState for Opened {
    fn reader(&self) -> &dyn StateRead {
        &*self.0
    }
}

/// A workspace directory of its own (removed on drop), the fakes registered as `fake`, and an
/// in-memory state: plan and apply a configuration as the CLI would, without a process.
pub struct World {
    pub workspace: Workspace,
    pub calls: Arc<Calls>,
    pub provider: Arc<FakeProvider>,
    pub taskserv: Arc<FakeTaskserv>,
    pub cluster: Arc<FakeCluster>,
    pub registry: Registry,
    pub store: Arc<MemoryStore>,
    /// Every event the last applies emitted.
    pub events: Arc<Mutex<Vec<Event>>>,
    rt: tokio::runtime::Runtime,
}

impl World {
    pub fn new() -> World {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "prov-world-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the world's workspace directory");
        let calls = Arc::new(Calls::default());
        let provider = Arc::new(FakeProvider::new(calls.clone()));
        let taskserv = Arc::new(FakeTaskserv::new(calls.clone()));
        let cluster = Arc::new(FakeCluster::new(calls.clone()));
        let mut registry = Registry::new();
        let (p, t, c) = (provider.clone(), taskserv.clone(), cluster.clone());
        registry.provider(
            FAKE,
            Arc::new(move |_: &ExtContext| Ok(p.clone() as Arc<dyn Provider>)),
        );
        registry.taskserv(
            FAKE,
            Arc::new(move |_: &ExtContext| Ok(t.clone() as Arc<dyn TaskServ>)),
        );
        registry.cluster(
            FAKE,
            Arc::new(move |_: &ExtContext| Ok(c.clone() as Arc<dyn Cluster>)),
        );
        World {
            workspace: Workspace::new(dir),
            calls,
            provider,
            taskserv,
            cluster,
            registry,
            store: Arc::new(MemoryStore::new()),
            events: Arc::new(Mutex::new(Vec::new())),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        }
    }

    /// Writes the workspace's `main.ncl`.
    pub fn write(&self, main_ncl: &str) -> &World {
        std::fs::write(self.workspace.dir.join("main.ncl"), main_ncl).expect("write main.ncl");
        self
    }

    /// Evaluates and loads the workspace (no evaluation cache).
    pub fn load(&self) -> Result<Loaded, EngineError> {
        let eval = EvalOptions {
            cache: false,
            ..EvalOptions::default()
        };
        workspace::load(&self.workspace, &self.registry, &eval)
    }

    /// `prov plan` with `opts`, as the CLI makes it: the state read beside the evaluation and
    /// the providers asked while the model is built (`ops::start_plan`).
    pub fn plan_with(&self, opts: &PlanOptions) -> Result<Plan, EngineError> {
        let eval = EvalOptions {
            cache: false,
            ..EvalOptions::default()
        };
        let loaded = workspace::load_with_state(
            &self.workspace,
            &self.registry,
            &eval,
            true,
            |_| Ok(Opened(self.store.clone())),
            |bound, state, snap| {
                crate::ops::start_plan(self.rt.handle(), bound, &*state.0, snap, opts)
            },
        )?;
        self.rt.block_on(crate::ops::plan_started(
            &loaded.loaded,
            &*self.store,
            loaded.started,
            opts,
        ))
    }

    /// [`World::plan_with`] the other way: the workspace loaded, then everything asked
    /// (`ops::plan`, as `prov apply` plans).
    pub fn plan_loaded_with(&self, opts: &PlanOptions) -> Result<Plan, EngineError> {
        let loaded = self.load()?;
        self.rt
            .block_on(crate::ops::plan(&loaded, &*self.store, opts))
    }

    /// `prov plan` as the CLI runs it by default: refreshing every record first.
    pub fn plan(&self) -> Result<Plan, EngineError> {
        self.plan_with(&World::cli_defaults())
    }

    /// The plan options of a bare `prov plan` (refresh on, cost on).
    pub fn cli_defaults() -> PlanOptions {
        PlanOptions {
            refresh: true,
            cost: true,
            ..PlanOptions::default()
        }
    }

    /// `prov apply` of `plan` with `opts`, events kept in [`World::events`].
    pub fn apply_plan(&self, plan: &Plan, opts: &ApplyOptions) -> Result<ApplyReport, EngineError> {
        self.apply_plan_on(self.store.clone(), plan, opts)
    }

    /// [`World::apply_plan`] through another handle of the state: a second writer
    /// (`store.reopen("apply", LockScope::Resources)`), as a concurrent `prov apply` is.
    /// Callable from several threads at once.
    pub fn apply_plan_on(
        &self,
        store: Arc<dyn StateStore>,
        plan: &Plan,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport, EngineError> {
        let bound = crate::ops::bind_for_plan(&self.workspace, &self.registry, plan);
        let kept = self.events.clone();
        let sink: EventSink = Arc::new(move |e| {
            kept.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        });
        self.rt
            .block_on(crate::ops::apply(plan, None, bound, store, opts, sink))
    }

    /// Plans and applies with default options (`--auto-approve`).
    pub fn apply(&self) -> Result<ApplyReport, EngineError> {
        let plan = self.plan()?;
        self.apply_plan(&plan, &ApplyOptions::default())
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.workspace.dir);
    }
}
