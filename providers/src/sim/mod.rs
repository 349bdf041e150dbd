//! The `sim` provider: a simulated cloud whose servers are files in the workspace (see [`world`]),
//! with latency, failure injection and out-of-band edits, for tests, benchmarks and drift demos.
//! It is never a real cloud: its addresses are documentation/benchmarking ranges and its
//! servers cannot be reached.
//!
//! Options are described in [`options`], the plan/zone catalogue in [`catalogue`]; the world's
//! files and out-of-band edits are prov-sim's.

pub mod catalogue;
pub mod options;

pub use options::SimOptions;
pub use prov_sim::{SimServer, World, WorldError, WorldResult};

use async_trait::async_trait;
use prov_engine::registry::{ExtContext, ProviderFactory};
use prov_engine::traits::{
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, Ownership, PlanInfo, Pricing,
    Provider, ProviderInfo, ServerInfo, ServerSpec, ServerStatus, ServerUpdate, SshAccess,
    Validation, Zone,
};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Attributes whose change needs a new server; everything else is changed in place.
const REPLACE_ON_CHANGE: &[&str] = &["zone", "os", "storage", "hostname"];

/// The sim provider. One instance per (process, workspace): its `fail_call` counter is local to
/// the instance.
pub struct SimProvider {
    name: String,
    world: World,
    opts: Arc<SimOptions>,
    mutating_calls: AtomicU64,
    /// Batched reads running at once: as many as there are CPUs (the reads are local file
    /// system work; more at once only keeps more answers in memory).
    batch_reads: Arc<tokio::sync::Semaphore>,
}

/// The factory registered under `sim`.
pub fn factory() -> ProviderFactory {
    Arc::new(|ctx: &ExtContext| Ok(Arc::new(SimProvider::new(ctx)?) as Arc<dyn Provider>))
}

impl SimProvider {
    /// Builds the provider for `ctx.workspace_dir` from `ctx.settings` and the environment.
    pub fn new(ctx: &ExtContext) -> ExtResult<SimProvider> {
        let load_err = |kind, msg: String| ExtError::new(&ctx.name, "load", None, kind, msg);
        let opts = options::parse(&ctx.settings, &options::SimEnv::from_process())
            .map_err(|errs| load_err(ErrorKind::Invalid, errs.join("; ")))?;
        let world = World::open(&ctx.workspace_dir)
            .map_err(|e| load_err(e.kind(), format!("cannot open the simulated world: {e}")))?;
        Ok(SimProvider {
            name: ctx.name.clone(),
            world,
            opts: Arc::new(opts),
            mutating_calls: AtomicU64::new(0),
            batch_reads: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        })
    }

    /// The world this provider acts on.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The options in effect (settings, then environment fallbacks).
    pub fn options(&self) -> &SimOptions {
        &self.opts
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

    /// Every call waits the configured latency first, like a remote API would.
    async fn pause(&self) {
        if !self.opts.latency.is_zero() {
            wait_until(Instant::now() + self.opts.latency).await;
        }
    }

    /// Counts a mutating call and fails it if it is the `fail_call`th.
    fn count_mutating(&self, op: &str, target: Option<&str>) -> ExtResult<()> {
        let n = self.mutating_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.opts.fail_call == Some(n) {
            return Err(self.err(
                op,
                target,
                ErrorKind::Failed,
                format!("injected failure (call {n})"),
            ));
        }
        Ok(())
    }

    /// One call that touches the world: it takes the configured latency in all, like a remote
    /// API's round trip, the server's work included (the world's file I/O runs within it; see
    /// [`wait_until`]). A mutating call is counted first (`fail_call`); a failed one still takes
    /// the latency.
    async fn run<T, F>(&self, op: &str, target: Option<&str>, mutating: bool, f: F) -> ExtResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&World, &SimOptions) -> WorldResult<T> + Send + 'static,
    {
        let deadline = Instant::now() + self.opts.latency;
        if mutating {
            if let Err(e) = self.count_mutating(op, target) {
                wait_until(deadline).await;
                return Err(e);
            }
        }
        let world = self.world.clone();
        let opts = self.opts.clone();
        let done = tokio::task::spawn_blocking(move || f(&world, &opts)).await;
        wait_until(deadline).await;
        done.map_err(|e| {
            self.err(
                op,
                target,
                ErrorKind::Failed,
                format!("sim world task failed: {e}"),
            )
        })?
        .map_err(|e| self.err(op, target, e.kind(), e.to_string()))
    }

    /// One page of a batched read: one latency, the files read within it on one blocking task
    /// (as many pages read at once as `batch_reads` allows).
    async fn read_page(&self, ids: &[String]) -> Vec<ExtResult<Option<ServerInfo>>> {
        const OP: &str = "get-server-info";
        let deadline = Instant::now() + self.opts.latency;
        let reading = self.batch_reads.acquire().await;
        let owned = ids.to_vec();
        let world = self.world.clone();
        let read = tokio::task::spawn_blocking(move || world.get_servers(&owned)).await;
        drop(reading);
        wait_until(deadline).await;
        match read {
            Ok(found) => found
                .into_iter()
                .zip(ids)
                .map(|(r, id)| {
                    r.map(|s| s.map(SimServer::into_info))
                        .map_err(|e| self.err(OP, Some(id), e.kind(), e.to_string()))
                })
                .collect(),
            Err(e) => ids
                .iter()
                .map(|id| {
                    Err(self.err(
                        OP,
                        Some(id),
                        ErrorKind::Failed,
                        format!("sim world task failed: {e}"),
                    ))
                })
                .collect(),
        }
    }

    /// A mutating call on an existing server: latency, call counting, the `fail_servers` check
    /// (by the server's hostname), then `change` under the server's lock.
    async fn modify<F>(&self, op: &'static str, id: &str, change: F) -> ExtResult<ServerInfo>
    where
        F: FnOnce(&mut SimServer) -> WorldResult<()> + Send + 'static,
    {
        let id_owned = id.to_string();
        let fail_on_host = matches!(op, "update-server" | "delete-server");
        self.run(op, Some(id), true, move |w, opts| {
            w.modify_server(&id_owned, |s| {
                if fail_on_host {
                    check_fail_servers(opts, &s.hostname)?;
                }
                change(s)
            })
            .map(|s| s.to_info())
        })
        .await
    }
}

fn check_fail_servers(opts: &SimOptions, hostname: &str) -> WorldResult<()> {
    if opts.fail_servers.contains(hostname) {
        return Err(WorldError::Failed(format!(
            "injected failure for server {hostname:?} (fail_servers)"
        )));
    }
    Ok(())
}

/// Checks rules the way the config schema does, for callers that bypass it.
fn check_rules(rules: &[FirewallRule]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        let bad = |field: &str, value: &str, valid: &str| {
            Err(format!(
                "firewall rule {i}: invalid {field} {value:?} (valid: {valid})"
            ))
        };
        if !matches!(r.direction.as_str(), "ingress" | "egress") {
            return bad("direction", &r.direction, "ingress, egress");
        }
        if !matches!(r.protocol.as_str(), "tcp" | "udp" | "icmp") {
            return bad("protocol", &r.protocol, "tcp, udp, icmp");
        }
        if !matches!(r.action.as_str(), "allow" | "deny") {
            return bad("action", &r.action, "allow, deny");
        }
        if let Some(port) = &r.port {
            let parts: Vec<Option<u16>> = port.split('-').map(|p| p.parse().ok()).collect();
            let ok = match parts.as_slice() {
                [Some(_)] => true,
                [Some(a), Some(b)] => a <= b,
                _ => false,
            };
            if !ok {
                return bad(
                    "port",
                    port,
                    "a port like \"22\" or a range like \"8000-8100\"",
                );
            }
        }
    }
    Ok(())
}

/// What `update_server` may not change (they force a replacement).
fn replaced_attribute(
    before: &ServerSpec,
    after: &ServerSpec,
) -> Option<(&'static str, String, String)> {
    let pairs = [
        (
            "zone",
            Value::from(before.zone.clone()),
            Value::from(after.zone.clone()),
        ),
        (
            "os",
            Value::from(before.os.clone()),
            Value::from(after.os.clone()),
        ),
        ("storage", before.storage.clone(), after.storage.clone()),
        (
            "hostname",
            Value::from(before.hostname.clone()),
            Value::from(after.hostname.clone()),
        ),
    ];
    pairs
        .into_iter()
        .find(|(_, b, a)| b != a)
        .map(|(k, b, a)| (k, b.to_string(), a.to_string()))
}

/// Waits until `deadline`, to within tens of microseconds: tokio's timer rounds every sleep up
/// to the next millisecond (a 50 ms latency took 51–52 ms; a benchmark of prov's own overhead
/// above the latency counted that against prov), so it sleeps on the timer until 2 ms before
/// and the rest on a blocking thread. Cancellable like any sleep, but for those last 2 ms.
async fn wait_until(deadline: Instant) {
    const TIMER_SLACK: Duration = Duration::from_millis(2);
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    if deadline - now > TIMER_SLACK {
        tokio::time::sleep_until((deadline - TIMER_SLACK).into()).await;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn replace_on_change(&self) -> &[&str] {
        REPLACE_ON_CHANGE
    }
    fn default_taskserv(&self) -> Option<&str> {
        Some("sim")
    }
    fn default_cluster(&self) -> Option<&str> {
        Some("sim")
    }
    fn parallelism(&self) -> Option<usize> {
        self.opts.parallelism
    }

    async fn info(&self) -> ExtResult<ProviderInfo> {
        self.pause().await;
        Ok(ProviderInfo {
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            interface: "prov-provider/1".to_string(),
            supported_operations: prov_engine::traits::PROVIDER_OPERATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            required_auth: vec![],
            // Any OS name is accepted: nothing is installed.
            supported_os: vec!["any".to_string()],
            regions: catalogue::ZONES.iter().map(|z| z.0.to_string()).collect(),
        })
    }

    async fn validate_config(&self, settings: &Value) -> ExtResult<Validation> {
        self.pause().await;
        // The environment is deliberately not consulted: this judges the settings themselves.
        let errors = options::parse(settings, &options::SimEnv::default())
            .err()
            .unwrap_or_default();
        Ok(Validation {
            errors,
            ..Validation::default()
        })
    }

    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        let root = self.world.root().display().to_string();
        self.run("test-connection", None, false, |w, _| w.server_count())
            .await
            .map(|n| ConnectionTest {
                success: true,
                message: format!("simulated cloud at {root} ({n} servers)"),
            })
    }

    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        const OP: &str = "create-server";
        let target = Some(spec.hostname.as_str());
        // Input checks happen client-side, before the (simulated) call.
        let invalid = |msg: String| self.err(OP, target, ErrorKind::Invalid, msg);
        catalogue::check_plan(&spec.plan).map_err(invalid)?;
        catalogue::check_zone(&spec.zone).map_err(invalid)?;
        check_rules(&spec.firewall_rules).map_err(invalid)?;
        let spec = spec.clone();
        let owner = owner.clone();
        self.run(OP, target, true, move |w, opts| {
            check_fail_servers(opts, &spec.hostname)?;
            w.create_server(&spec, Some(&owner)).map(|s| s.to_info())
        })
        .await
    }

    async fn delete_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "delete-server";
        let id_owned = id.to_string();
        self.run(OP, Some(id), true, move |w, opts| {
            if let Some(s) = w.get_server(&id_owned)? {
                check_fail_servers(opts, &s.hostname)?;
            }
            w.remove_server(&id_owned).map(|_| ())
        })
        .await
    }

    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        self.run("list-servers", None, false, |w, _| {
            Ok(w.list_servers()?.iter().map(SimServer::to_info).collect())
        })
        .await
    }

    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>> {
        let id_owned = id.to_string();
        self.run("get-server-info", Some(id), false, move |w, _| {
            Ok(w.get_server(&id_owned)?.map(|s| s.to_info()))
        })
        .await
    }

    /// A refresh reads a page of server files per call (`read_batch`, default 500: one latency
    /// pause, one blocking task) instead of one call and one blocking task per server.
    fn read_batch(&self) -> usize {
        self.opts.read_batch
    }

    /// Like a listing API: the ids are answered in pages of `read_batch`, one after another,
    /// each page one simulated latency (refresh asks for one page per call).
    async fn get_servers_info(&self, ids: &[String]) -> Vec<ExtResult<Option<ServerInfo>>> {
        let mut out = Vec::with_capacity(ids.len());
        for page in ids.chunks(self.opts.read_batch.max(1)) {
            out.extend(self.read_page(page).await);
        }
        out
    }

    async fn start_server(&self, id: &str) -> ExtResult<()> {
        self.modify("start-server", id, |s| {
            if s.status != ServerStatus::Running {
                s.status = ServerStatus::Running;
                s.boots += 1;
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn stop_server(&self, id: &str) -> ExtResult<()> {
        self.modify("stop-server", id, |s| {
            s.status = ServerStatus::Stopped;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn reboot_server(&self, id: &str) -> ExtResult<()> {
        self.modify("reboot-server", id, |s| {
            s.status = ServerStatus::Running;
            s.boots += 1;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo> {
        const OP: &str = "update-server";
        let invalid = |msg: String| self.err(OP, Some(id), ErrorKind::Invalid, msg);
        if let Some((attr, before, after)) = replaced_attribute(&update.before, &update.after) {
            return Err(invalid(format!(
                "{attr} cannot change in place ({before} -> {after}); it forces a replacement"
            )));
        }
        catalogue::check_plan(&update.after.plan).map_err(invalid)?;
        check_rules(&update.after.firewall_rules).map_err(invalid)?;
        let after = update.after.clone();
        self.modify(OP, id, move |s| {
            // Desired tags replace the current ones, except the ownership tags prov attached.
            let mut tags = after.tags.clone();
            for (k, v) in &s.tags {
                if k.starts_with("prov:") && !tags.contains_key(k) {
                    tags.insert(k.clone(), v.clone());
                }
            }
            s.tags = tags;
            s.plan = after.plan;
            s.firewall_rules = after.firewall_rules;
            s.ssh_keys = after.ssh_keys;
            s.network = after.network;
            Ok(())
        })
        .await
    }

    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        self.pause().await;
        Ok(catalogue::pricing())
    }

    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        self.pause().await;
        Ok(catalogue::plans())
    }

    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        self.pause().await;
        Ok(catalogue::zones())
    }

    /// The server's public address (private when it has none), port 22, user root, no key.
    /// Nothing listens there: this is a simulation.
    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess> {
        const OP: &str = "get-ssh-access";
        let id_owned = id.to_string();
        self.run(OP, Some(id), false, move |w, _| {
            let s = w
                .get_server(&id_owned)?
                .ok_or_else(|| WorldError::NotFound(format!("server {id_owned:?}")))?;
            let host = s
                .public_ip
                .or(s.private_ip)
                .ok_or_else(|| WorldError::Failed(format!("server {id_owned:?} has no address")))?;
            Ok(SshAccess {
                host,
                port: 22,
                user: "root".to_string(),
                key_path: None,
            })
        })
        .await
    }

    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()> {
        const OP: &str = "configure-firewall";
        check_rules(rules).map_err(|m| self.err(OP, Some(id), ErrorKind::Invalid, m))?;
        let rules = rules.to_vec();
        self.modify(OP, id, move |s| {
            s.firewall_rules = rules;
            Ok(())
        })
        .await
        .map(|_| ())
    }
}
