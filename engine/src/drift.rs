//! Drift: reads the real state of every recorded resource concurrently (never writing anything) and compares it with the records.

use crate::diff::diff;
use crate::diff::AttrDiff;
use crate::error::{Diagnostic, EngineError};
use crate::model::Address;
use crate::records;
use crate::registry::Bound;
use crate::traits::{
    ClusterRequest, ComponentRequest, ErrorKind, ExtError, ServerInfo, ServerStatus, ServerTarget,
    TaskservRequest,
};
use prov_state::{ResourceRecord, Snapshot};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Clone, Debug)]
pub struct RefreshOptions {
    /// Read-only queries running at once (`--refresh-parallelism`).
    pub parallelism: usize,
    /// Per-call time limit.
    pub timeout: Duration,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        RefreshOptions {
            parallelism: 32,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How one recorded resource differs from the real world.
#[derive(Clone, Debug, PartialEq)]
pub enum DriftKind {
    /// Deleted outside prov.
    Gone,
    /// Attributes differ: recorded (before) vs real (after).
    Changed(Vec<AttrDiff>),
    /// A server, taskserv or component that exists but is not running.
    Stopped,
    /// Installed at another version than recorded.
    Version {
        recorded: Option<String>,
        real: Option<String>,
    },
    /// A server carrying this workspace's ownership tag that the state does not know.
    Unmanaged {
        provider: String,
        id: String,
        hostname: String,
    },
    /// The query failed: nothing can be said.
    Error(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Drift {
    pub address: String,
    pub kind: DriftKind,
}

/// What refresh learned about one record.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub address: Address,
    /// When `drift` is not empty: the record as it would be if the real world were accepted
    /// (None: gone). Not meaningful without drift.
    pub refreshed: Option<ResourceRecord>,
    pub drift: Vec<Drift>,
}

/// Server attributes a provider reports; the others (ssh_keys, storage, network) cannot be observed.
const OBSERVED_SERVER_ATTRS: &[&str] =
    &["hostname", "plan", "zone", "os", "tags", "firewall_rules"];

fn observed_server_attrs(info: &ServerInfo) -> Map<String, Value> {
    let tags: Map<String, Value> = info
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("prov:"))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut m = Map::new();
    m.insert("hostname".into(), json!(info.hostname));
    m.insert("plan".into(), json!(info.plan));
    m.insert("zone".into(), json!(info.zone));
    m.insert("os".into(), json!(info.os));
    m.insert("tags".into(), Value::Object(tags));
    m.insert(
        "firewall_rules".into(),
        serde_json::to_value(&info.firewall_rules).unwrap_or(Value::Null),
    );
    m
}

fn only(v: &Value, keys: &[&str]) -> Value {
    Value::Object(
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| keys.contains(&k.as_str()))
                    .map(|(k, x)| (k.clone(), x.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// A failed query: the extension's error kind when it answered, and the message.
struct QueryError {
    kind: Option<ErrorKind>,
    message: String,
}

async fn timed<T>(
    t: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, ExtError>>,
) -> Result<T, QueryError> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(e)) => Err(QueryError {
            kind: Some(e.kind),
            message: e.to_string(),
        }),
        Err(_) => Err(QueryError {
            kind: None,
            message: format!("{what}: no answer within {}s", t.as_secs_f64()),
        }),
    }
}

fn target_for(addr: &Address, snap: &Snapshot, bound: &Bound) -> Option<ServerTarget> {
    records::server_target(addr, snap.resources.get(&addr.to_string()), bound).ok()
}

fn cluster_req(
    addr: &Address,
    attrs: &Value,
    snap: &Snapshot,
    bound: &Bound,
) -> Result<ClusterRequest, String> {
    records::cluster_request(addr, attrs, |a| snap.resources.get(&a.to_string()), bound)
}

/// Computed server attributes (recorded as outputs, referable with `${server.NAME.ATTR}`) that
/// refresh compares: what the provider assigns may change outside prov (an address re-assigned),
/// and whatever references it must follow. `extra` holds volatile facts (pids, boot counts) and
/// is only carried along when something else changed.
pub const COMPUTED_SERVER_ATTRS: &[&str] = &["id", "public_ip", "private_ip"];

fn computed_of(outputs: &Value) -> Value {
    let mut m = Map::new();
    for k in COMPUTED_SERVER_ATTRS {
        m.insert(
            k.to_string(),
            outputs.get(*k).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

/// Whether a refreshed server record's computed attributes differ from the recorded ones: the
/// record as it should be stored before apply (the recorded one with the provider's computed
/// attributes), so references resolve to what the provider reports now. `None`: they agree.
pub fn accept_computed(rec: &ResourceRecord, refreshed: &ResourceRecord) -> Option<ResourceRecord> {
    if rec.kind != "server" || computed_of(&rec.outputs) == computed_of(&refreshed.outputs) {
        return None;
    }
    let mut new = rec.clone();
    if let (Value::Object(o), Some(r)) = (&mut new.outputs, refreshed.outputs.as_object()) {
        for k in COMPUTED_SERVER_ATTRS.iter().chain(&["extra"]) {
            if let Some(v) = r.get(*k) {
                o.insert(k.to_string(), v.clone());
            }
        }
    } else {
        new.outputs = refreshed.outputs.clone();
    }
    Some(new)
}

/// Whether the recorded attributes already say what the provider reports: the common case,
/// decided without building the observed attributes. `false` only means "diff them".
fn unchanged(recorded: &Value, outputs: &Value, info: &ServerInfo) -> bool {
    let Some(r) = recorded.as_object() else {
        return false;
    };
    let out = |k: &str| outputs.get(k).unwrap_or(&Value::Null);
    if out("id").as_str() != Some(info.id.as_str())
        || out("public_ip").as_str() != info.public_ip.as_deref()
        || out("private_ip").as_str() != info.private_ip.as_deref()
    {
        return false;
    }
    let same = |k: &str, v: &str| r.get(k).and_then(Value::as_str) == Some(v);
    if !(same("hostname", &info.hostname)
        && same("plan", &info.plan)
        && same("zone", &info.zone)
        && same("os", &info.os))
    {
        return false;
    }
    let Some(Value::Object(tags)) = r.get("tags") else {
        return false;
    };
    let real = info.tags.iter().filter(|(k, _)| !k.starts_with("prov:"));
    if tags.len() != real.clone().count()
        || !real
            .into_iter()
            .all(|(k, v)| tags.get(k).and_then(Value::as_str) == Some(v.as_str()))
    {
        return false;
    }
    match r.get("firewall_rules") {
        Some(Value::Array(a)) if a.is_empty() => info.firewall_rules.is_empty(),
        Some(v) => serde_json::to_value(&info.firewall_rules).is_ok_and(|x| &x == v),
        None => false,
    }
}

/// What one get-server-info answer says about a server's record.
fn server_observation(
    rec: &ResourceRecord,
    address: &str,
    r: Result<Option<ServerInfo>, QueryError>,
) -> (Option<ResourceRecord>, Vec<Drift>) {
    match r {
        Err(e) => (
            Some(rec.clone()),
            drift_of(address, DriftKind::Error(e.message)),
        ),
        Ok(None) => (None, drift_of(address, DriftKind::Gone)),
        Ok(Some(info)) => {
            // A server not running (stopped or broken outside prov) is drift too, unless a stop
            // was already accepted into the state (refresh-only).
            let stopped = matches!(info.status, ServerStatus::Stopped | ServerStatus::Error)
                && !recorded_stopped(rec);
            // Unchanged: nothing to carry (callers only read `refreshed` on drift).
            if !stopped && unchanged(&rec.attributes, &rec.outputs, &info) {
                return (None, Vec::new());
            }
            let real = observed_server_attrs(&info);
            let recorded = only(&rec.attributes, OBSERVED_SERVER_ATTRS);
            let mut diffs = diff(
                &recorded,
                &Value::Object(real.clone()),
                &Value::Bool(false),
                &[],
            );
            let real_outputs = crate::records::server_outputs(&info);
            diffs.extend(diff(
                &computed_of(&rec.outputs),
                &computed_of(&real_outputs),
                &Value::Bool(false),
                &[],
            ));
            if diffs.is_empty() && !stopped {
                return (None, Vec::new());
            }
            let mut new = rec.clone();
            new.outputs = real_outputs;
            let mut d = Vec::new();
            if !diffs.is_empty() {
                if let Value::Object(attrs) = &mut new.attributes {
                    attrs.extend(real);
                }
                d.extend(drift_of(address, DriftKind::Changed(diffs)));
            }
            if stopped {
                note_stopped(&mut new, &mut d, address);
            }
            (Some(new), d)
        }
    }
}

/// Reads a batch of servers from a provider that answers many per call (`read_batch` > 1):
/// one call, one time limit, one observation per record.
async fn observe_servers(
    batch: Vec<(Address, String)>,
    p: Arc<dyn crate::traits::Provider>,
    snap: Arc<Snapshot>,
    t: Duration,
) -> Vec<Observation> {
    let ids: Vec<String> = batch
        .iter()
        .map(|(_, k)| snap.resources[k].provider_id.clone().unwrap_or_default())
        .collect();
    let failed = |message: String| -> Vec<Result<Option<ServerInfo>, QueryError>> {
        ids.iter()
            .map(|_| {
                Err(QueryError {
                    kind: None,
                    message: message.clone(),
                })
            })
            .collect()
    };
    let answers = match tokio::time::timeout(t, p.get_servers_info(&ids)).await {
        Ok(v) if v.len() == ids.len() => v
            .into_iter()
            .map(|r| {
                r.map_err(|e| QueryError {
                    kind: Some(e.kind),
                    message: e.to_string(),
                })
            })
            .collect(),
        Ok(v) => failed(format!(
            "provider {:?}: get-servers-info answered {} of {} servers",
            p.name(),
            v.len(),
            ids.len()
        )),
        Err(_) => failed(format!(
            "get-server-info: no answer within {}s",
            t.as_secs_f64()
        )),
    };
    batch
        .into_iter()
        .zip(answers)
        .map(|((address, key), r)| {
            let (refreshed, drift) = server_observation(&snap.resources[&key], &key, r);
            Observation {
                address,
                refreshed,
                drift,
            }
        })
        .collect()
}

/// What a query found about one record: the record as refresh would accept it (None: gone;
/// callers read it only on drift) and the drift.
type Found = (Option<ResourceRecord>, Vec<Drift>);

/// One drift of the record at `address`.
fn drift_of(address: &str, kind: DriftKind) -> Vec<Drift> {
    vec![Drift {
        address: address.to_string(),
        kind,
    }]
}

/// A stop already accepted into the state (`apply --refresh-only`) is no longer drift.
fn recorded_stopped(rec: &ResourceRecord) -> bool {
    rec.outputs.get("status").and_then(Value::as_str) == Some("stopped")
}

/// A stop outside prov: drift, and `status` "stopped" in the refreshed record's outputs (which
/// the plan then starts again: `plan::make::start_stopped`).
fn note_stopped(new: &mut ResourceRecord, drift: &mut Vec<Drift>, address: &str) {
    drift.extend(drift_of(address, DriftKind::Stopped));
    if let Value::Object(o) = &mut new.outputs {
        o.insert("status".into(), json!("stopped"));
    }
}

/// Observes one record.
async fn observe_one(
    addr: Address,
    key: String,
    snap: Arc<Snapshot>,
    bound: Arc<Bound>,
    t: Duration,
) -> Observation {
    let o = Observer {
        snap: &snap,
        bound: &bound,
        t,
    };
    let rec = &snap.resources[&key];
    let (refreshed, drift) = match &addr {
        Address::Server(_) => o.server(rec, &key).await,
        Address::Taskserv(..) => o.taskserv(&addr, rec, &key).await,
        Address::Cluster(_) => o.cluster(&addr, rec, &key).await,
        Address::Component(..) => o.component(&addr, rec, &key).await,
    };
    Observation {
        address: addr,
        refreshed,
        drift,
    }
}

/// The read-only queries of one record, one method per kind of resource.
struct Observer<'a> {
    snap: &'a Snapshot,
    bound: &'a Bound,
    /// Each query's time limit.
    t: Duration,
}

impl Observer<'_> {
    async fn server(&self, rec: &ResourceRecord, a: &str) -> Found {
        let id = rec.provider_id.clone().unwrap_or_default();
        let r = match self.bound.provider(&rec.implementation) {
            Ok(p) => {
                timed(self.t, "get-server-info", async move {
                    p.get_server_info(&id).await
                })
                .await
            }
            Err(e) => Err(QueryError {
                kind: Some(e.kind),
                message: e.to_string(),
            }),
        };
        server_observation(rec, a, r)
    }

    /// A taskserv: gone with its server or when not installed; its version and whether it runs.
    async fn taskserv(&self, addr: &Address, rec: &ResourceRecord, a: &str) -> Found {
        let server = addr.parent().expect("taskserv has a server");
        let (target, ts) = match (
            target_for(&server, self.snap, self.bound),
            self.bound.taskserv(&rec.implementation),
        ) {
            (None, _) => return (None, drift_of(a, DriftKind::Gone)),
            (_, Err(e)) => {
                return (
                    Some(rec.clone()),
                    drift_of(a, DriftKind::Error(e.to_string())),
                )
            }
            (Some(target), Ok(ts)) => (target, ts),
        };
        let req = TaskservRequest::from_attributes(
            a.to_string(),
            addr.name().to_string(),
            &rec.attributes,
            target,
        );
        let s = match timed(self.t, "status", ts.status(&req)).await {
            Err(e) if e.kind == Some(ErrorKind::NotFound) => {
                return (None, drift_of(a, DriftKind::Gone))
            }
            Err(e) => return (Some(rec.clone()), drift_of(a, DriftKind::Error(e.message))),
            Ok(s) if !s.installed => return (None, drift_of(a, DriftKind::Gone)),
            Ok(s) => s,
        };
        // The version the taskserv reports itself, else the one its status names.
        let real = match timed(self.t, "get-current-version", ts.get_current_version(&req)).await {
            Ok(v) => v.or(s.version.clone()),
            Err(_) => s.version.clone(),
        };
        taskserv_observation(rec, a, real, s.running)
    }

    /// A cluster: only whether it still exists (its components carry the versions and states).
    async fn cluster(&self, addr: &Address, rec: &ResourceRecord, a: &str) -> Found {
        let asked = self
            .bound
            .cluster(&rec.implementation)
            .map_err(|e| e.to_string())
            .and_then(|cl| {
                Ok((
                    cl,
                    cluster_req(addr, &rec.attributes, self.snap, self.bound)?,
                ))
            });
        let (cl, req) = match asked {
            Err(e) => return (Some(rec.clone()), drift_of(a, DriftKind::Error(e))),
            Ok(x) => x,
        };
        match tokio::time::timeout(self.t, cl.status(&req)).await {
            Ok(Ok(_)) => (Some(rec.clone()), Vec::new()),
            Ok(Err(e)) if e.kind == ErrorKind::NotFound => (None, drift_of(a, DriftKind::Gone)),
            Ok(Err(e)) => (
                Some(rec.clone()),
                drift_of(a, DriftKind::Error(e.to_string())),
            ),
            Err(_) => (
                Some(rec.clone()),
                drift_of(a, DriftKind::Error("status: timed out".into())),
            ),
        }
    }

    /// A cluster component: gone with its cluster or when not deployed; its version and status.
    async fn component(&self, addr: &Address, rec: &ResourceRecord, a: &str) -> Found {
        let parent = addr.parent().expect("component has a cluster");
        let (crec, cl) = match (
            self.snap.resources.get(&parent.to_string()),
            self.bound.cluster(&rec.implementation),
        ) {
            (None, _) => return (None, drift_of(a, DriftKind::Gone)),
            (_, Err(e)) => {
                return (
                    Some(rec.clone()),
                    drift_of(a, DriftKind::Error(e.to_string())),
                )
            }
            (Some(crec), Ok(cl)) => (crec, cl),
        };
        let cluster = match cluster_req(&parent, &crec.attributes, self.snap, self.bound) {
            Err(e) => return (Some(rec.clone()), drift_of(a, DriftKind::Error(e))),
            Ok(c) => c,
        };
        let req = ComponentRequest {
            address: a.to_string(),
            cluster,
            name: addr.name().to_string(),
            config: rec.attributes.clone(),
        };
        match tokio::time::timeout(self.t, cl.component_status(&req)).await {
            Ok(Ok(None)) => (None, drift_of(a, DriftKind::Gone)),
            Ok(Err(e)) if e.kind == ErrorKind::NotFound => (None, drift_of(a, DriftKind::Gone)),
            Ok(Err(e)) => (
                Some(rec.clone()),
                drift_of(a, DriftKind::Error(e.to_string())),
            ),
            Err(_) => (
                Some(rec.clone()),
                drift_of(a, DriftKind::Error("component-status: timed out".into())),
            ),
            Ok(Ok(Some(s))) => component_observation(rec, a, &s.version, s.status != "running"),
        }
    }
}

/// What an installed taskserv's version (`real`, when it tells one) and state say about its record.
fn taskserv_observation(
    rec: &ResourceRecord,
    a: &str,
    real: Option<String>,
    running: bool,
) -> Found {
    let mut d = Vec::new();
    let mut new = rec.clone();
    let recorded = rec
        .outputs
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_string);
    if real.is_some() && real != recorded {
        d.extend(drift_of(
            a,
            DriftKind::Version {
                recorded: recorded.clone(),
                real: real.clone(),
            },
        ));
        if let Value::Object(o) = &mut new.outputs {
            o.insert("version".into(), json!(real));
        }
        if let Value::Object(o) = &mut new.attributes {
            o.insert("version".into(), json!(real));
        }
    }
    if !running && !recorded_stopped(rec) {
        note_stopped(&mut new, &mut d, a);
    }
    (Some(new), d)
}

/// What a deployed component's version (`real`, empty when it tells none) and state say about
/// its record.
fn component_observation(rec: &ResourceRecord, a: &str, real: &str, stopped: bool) -> Found {
    let mut d = Vec::new();
    let mut new = rec.clone();
    // What deploy reported installed (`outputs.version`); the configured one when an older
    // record has none.
    let configured = rec
        .attributes
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let recorded = rec
        .outputs
        .get("version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| configured.clone());
    if !real.is_empty() && !recorded.is_empty() && real != recorded {
        d.extend(drift_of(
            a,
            DriftKind::Version {
                recorded: Some(recorded),
                real: Some(real.to_string()),
            },
        ));
        // The plan then upgrades it back to the configured version.
        if let Value::Object(o) = &mut new.outputs {
            o.insert("version".into(), json!(real));
        }
        if let (false, Value::Object(o)) = (configured.is_empty(), &mut new.attributes) {
            o.insert("version".into(), json!(real));
        }
    }
    if stopped && !recorded_stopped(rec) {
        note_stopped(&mut new, &mut d, a);
    }
    (Some(new), d)
}

/// Observes every record (or those in `only`), at most `parallelism` queries at once.
pub async fn observe(
    snap: Arc<Snapshot>,
    bound: &Arc<Bound>,
    opts: &RefreshOptions,
    only: Option<&BTreeSet<Address>>,
) -> Vec<Observation> {
    let sem = Arc::new(Semaphore::new(opts.parallelism.max(1)));
    let mut set = tokio::task::JoinSet::new();
    // Servers of providers that answer many per call, by provider, in address order.
    let mut batched: std::collections::BTreeMap<&str, Vec<(Address, String)>> =
        std::collections::BTreeMap::new();
    for (k, rec) in &snap.resources {
        let Ok(addr) = k.parse::<Address>() else {
            continue;
        };
        if only.is_some_and(|o| !o.contains(&addr)) {
            continue;
        }
        if matches!(addr, Address::Server(_))
            && bound
                .provider(&rec.implementation)
                .is_ok_and(|p| p.read_batch() > 1)
        {
            batched
                .entry(rec.implementation.as_str())
                .or_default()
                .push((addr, k.clone()));
            continue;
        }
        let (sem, snap, bound, key, t) = (
            sem.clone(),
            snap.clone(),
            bound.clone(),
            k.clone(),
            opts.timeout,
        );
        set.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore open");
            vec![observe_one(addr, key, snap, bound, t).await]
        });
    }
    for (implementation, servers) in batched {
        let p = bound
            .provider(implementation)
            .expect("checked while grouping");
        let size = p.read_batch();
        let mut servers = servers.into_iter().peekable();
        while servers.peek().is_some() {
            let batch: Vec<(Address, String)> = servers.by_ref().take(size).collect();
            let (sem, snap, p, t) = (sem.clone(), snap.clone(), p.clone(), opts.timeout);
            set.spawn(async move {
                let _p = sem.acquire_owned().await.expect("semaphore open");
                observe_servers(batch, p, snap, t).await
            });
        }
    }
    let mut out = Vec::with_capacity(snap.resources.len());
    while let Some(r) = set.join_next().await {
        if let Ok(o) = r {
            out.extend(o);
        }
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}

/// Servers that carry this workspace's ownership tag but are not in the state (nor pending).
pub async fn unmanaged(
    snap: &Snapshot,
    bound: &Bound,
    providers: &BTreeSet<String>,
    t: Duration,
) -> Vec<Drift> {
    let known = crate::ownership::known_ids(snap);
    // Ours by the state's identity (the directory-name tag of older versions does not count:
    // it may be another workspace's).
    let me = crate::ownership::Identity::of(&snap.meta, bound);
    let mut out = Vec::new();
    for name in providers {
        let p = match bound.provider(name) {
            Ok(p) => p,
            Err(e) => {
                out.push(Drift {
                    address: format!("provider.{name}"),
                    kind: DriftKind::Error(e.to_string()),
                });
                continue;
            }
        };
        match timed(t, "list-servers", p.list_servers()).await {
            Err(e) => out.push(Drift {
                address: format!("provider.{name}"),
                kind: DriftKind::Error(e.message),
            }),
            Ok(list) => {
                for s in list {
                    if known.contains(s.id.as_str())
                        || me.claim(&s, &snap.resources) != crate::ownership::Claim::Ours
                    {
                        continue;
                    }
                    let pending = s
                        .tags
                        .get(crate::traits::Ownership::TAG_ADDRESS)
                        .is_some_and(|a| snap.pending.contains_key(a));
                    if pending {
                        continue;
                    }
                    let address = s
                        .tags
                        .get(crate::traits::Ownership::TAG_ADDRESS)
                        .cloned()
                        .unwrap_or_else(|| format!("server.{}", s.hostname));
                    out.push(Drift {
                        address,
                        kind: DriftKind::Unmanaged {
                            provider: name.clone(),
                            id: s.id.clone(),
                            hostname: s.hostname.clone(),
                        },
                    });
                }
            }
        }
    }
    out
}

/// Every drift an observation set found, plus unmanaged servers, in address order.
pub fn collect(obs: &[Observation], unmanaged: Vec<Drift>) -> Vec<Drift> {
    let mut v: Vec<Drift> = obs
        .iter()
        .flat_map(|o| o.drift.clone())
        .chain(unmanaged)
        .collect();
    v.sort_by(|a, b| a.address.cmp(&b.address));
    v
}

/// The snapshot with the real world accepted: what a refreshing plan diffs against.
pub fn refreshed_view(mut s: Snapshot, obs: &[Observation]) -> Snapshot {
    // Only what drifted differs; everything else stays as recorded.
    for o in obs.iter().filter(|o| !o.drift.is_empty()) {
        let k = o.address.to_string();
        match &o.refreshed {
            Some(r) => {
                s.resources.insert(k, r.clone());
            }
            None => {
                s.resources.remove(&k);
            }
        }
    }
    s
}

/// Providers that recorded servers use, for the unmanaged-server scan.
pub fn providers_in_use(
    snap: &Snapshot,
    extra: impl IntoIterator<Item = String>,
) -> BTreeSet<String> {
    snap.resources
        .values()
        .filter(|r| r.kind == "server")
        .map(|r| r.implementation.clone())
        .chain(extra)
        .collect()
}

/// Acknowledged drift (`--ignore FILE`): JSON `[{"address", "attribute"?, "reason", "expires"?}]`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct IgnoreRule {
    pub address: String,
    #[serde(default)]
    pub attribute: Option<String>,
    pub reason: String,
    /// `YYYY-MM-DD`; from that day on the entry no longer hides anything.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Whether `s` is a calendar date `YYYY-MM-DD` (month 1-12, day within that month).
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// The 1-based line on which each element of a top-level JSON array starts (for messages).
fn entry_lines(text: &str) -> Vec<usize> {
    let (mut depth, mut in_str, mut esc, mut line) = (0usize, false, false, 1usize);
    let mut out = Vec::new();
    let mut want = false;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if want && !c.is_whitespace() && c != ',' && c != ']' {
            out.push(line);
            want = false;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 && c == '[' {
                    want = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => want = true,
            _ => {}
        }
    }
    out
}

/// Reads an ignore file (`--ignore FILE`): a JSON list of rules. Every problem is reported,
/// each naming the file, the entry (and its line) and the field: an `expires` that is not a
/// date (it would otherwise never expire, or expire at once), an address that is not one.
/// An error, never a silence: an entry that hides drift must say exactly what and until when.
pub fn parse_ignore(bytes: &[u8], file: &str) -> Result<Vec<IgnoreRule>, EngineError> {
    const SHAPE: &str = "expected a JSON list of {\"address\", \"attribute\" (optional), \"reason\", \"expires\" (optional, YYYY-MM-DD)}";
    let fail = |m: String| EngineError::Invalid(vec![Diagnostic::new(None, None, m)]);
    let text =
        std::str::from_utf8(bytes).map_err(|e| fail(format!("{file}: not UTF-8 text: {e}")))?;
    let entries: Vec<Value> =
        serde_json::from_str(text).map_err(|e| fail(format!("{file}: {e}; {SHAPE}")))?;
    let lines = entry_lines(text);
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, v) in entries.into_iter().enumerate() {
        let at = match lines.get(i) {
            Some(l) => format!("{file}: entry {} (line {l})", i + 1),
            None => format!("{file}: entry {}", i + 1),
        };
        let r: IgnoreRule = match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                errors.push(Diagnostic::new(None, None, format!("{at}: {e}; {SHAPE}")));
                continue;
            }
        };
        if let Err(e) = r.address.parse::<Address>() {
            errors.push(Diagnostic::new(
                None,
                None,
                format!(
                    "{at}: field \"address\": {:?} is not an address: {e}",
                    r.address
                ),
            ));
        }
        if let Some(x) = r.expires.as_deref().filter(|x| !is_date(x)) {
            errors.push(Diagnostic::new(None, None, format!("{at}: field \"expires\": {x:?} is not a date (YYYY-MM-DD, e.g. 2027-01-31); leave the field out for an entry that never expires")));
        }
        if r.attribute.as_deref().is_some_and(|a| a.is_empty()) {
            errors.push(Diagnostic::new(None, None, format!("{at}: field \"attribute\": empty; leave the field out to cover the whole resource")));
        }
        rules.push((at, r));
    }
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    Ok(rules.into_iter().map(|(_, r)| r).collect())
}

/// Refuses ignore rules whose address prov does not know (`known`: declared, recorded, or found
/// by this drift run, such as an unmanaged server): a typo would otherwise hide nothing, for ever,
/// without a word.
pub fn check_ignore_addresses(
    rules: &[IgnoreRule],
    file: &str,
    known: impl Fn(&str) -> bool,
) -> Result<(), EngineError> {
    let errors: Vec<Diagnostic> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| !known(&r.address))
        .map(|(i, r)| {
            Diagnostic::new(
                None,
                None,
                format!(
                    "{file}: entry {}: field \"address\": {} is unknown: not declared in the configuration, not in the state and not found by this drift run",
                    i + 1,
                    r.address
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// Whether a rule covers a drift, and whether it has expired (`today` is `YYYY-MM-DD`).
pub fn rule_for<'a>(
    rules: &'a [IgnoreRule],
    d: &Drift,
    attribute: Option<&str>,
    today: &str,
) -> Option<(&'a IgnoreRule, bool)> {
    rules
        .iter()
        .find(|r| {
            r.address == d.address
                && match (&r.attribute, attribute) {
                    (None, _) => true,
                    (Some(ra), Some(a)) => a == ra || a.starts_with(&format!("{ra}.")),
                    (Some(_), None) => false,
                }
        })
        .map(|r| (r, r.expires.as_deref().is_some_and(|e| e <= today)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attributes: Value, outputs: Value) -> ResourceRecord {
        ResourceRecord {
            attributes,
            outputs,
            ..ResourceRecord::default()
        }
    }

    fn kinds(found: &Found) -> Vec<&DriftKind> {
        found.1.iter().map(|d| &d.kind).collect()
    }

    #[test]
    fn a_taskserv_drifts_by_version_and_by_a_stop_outside_prov() {
        let running = record(json!({"version": "1.0"}), json!({"version": "1.0"}));
        // (recorded, real version, running) → the drift kinds and the refreshed version.
        let cases = [
            (&running, Some("1.0"), true, vec![], "1.0"),
            (&running, None, true, vec![], "1.0"),
            (
                &running,
                Some("1.1"),
                true,
                vec![DriftKind::Version {
                    recorded: Some("1.0".into()),
                    real: Some("1.1".into()),
                }],
                "1.1",
            ),
            (
                &running,
                Some("1.0"),
                false,
                vec![DriftKind::Stopped],
                "1.0",
            ),
        ];
        for (rec, real, run, want, version) in cases {
            let found =
                taskserv_observation(rec, "taskserv.web.redis", real.map(str::to_string), run);
            assert_eq!(
                kinds(&found),
                want.iter().collect::<Vec<_>>(),
                "{real:?} {run}"
            );
            let new = found.0.unwrap();
            assert_eq!(new.outputs["version"], json!(version));
            assert_eq!(new.attributes["version"], json!(version));
            assert_eq!(new.outputs.get("status") == Some(&json!("stopped")), !run);
        }
        // A stop accepted into the state (refresh-only) is no longer drift.
        let stopped = record(json!({}), json!({"status": "stopped"}));
        let found = taskserv_observation(&stopped, "taskserv.web.redis", None, false);
        assert!(found.1.is_empty());
    }

    #[test]
    fn a_component_drifts_from_what_deploy_reported_else_its_configured_version() {
        let deployed = record(json!({"version": "2.0"}), json!({"version": "2.1"}));
        let older = record(json!({"version": "2.0"}), json!({}));
        let unversioned = record(json!({}), json!({}));
        let version = |rec, real| {
            let found = component_observation(rec, "cluster.bk.registry", real, false);
            (kinds(&found).len(), found.0.unwrap())
        };
        // Deploy reported 2.1: the same is no drift, 2.0 is (and the plan upgrades it back).
        assert_eq!(version(&deployed, "2.1").0, 0);
        let (n, new) = version(&deployed, "2.0");
        assert_eq!(n, 1);
        assert_eq!(new.outputs["version"], json!("2.0"));
        // An older record without outputs.version compares with the configured one.
        assert_eq!(version(&older, "2.0").0, 0);
        assert_eq!(version(&older, "2.2").0, 1);
        // Nothing to compare: no drift, and no version written into the configuration.
        assert_eq!(version(&deployed, "").0, 0);
        let (n, new) = version(&unversioned, "3.0");
        assert_eq!(n, 0);
        assert_eq!(new.attributes.get("version"), None);
        let found = component_observation(&deployed, "cluster.bk.registry", "2.1", true);
        assert_eq!(kinds(&found), [&DriftKind::Stopped]);
    }

    #[test]
    fn dates_are_calendar_dates() {
        for ok in ["2026-01-31", "2024-02-29", "2000-02-29", "2999-12-31"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "never",
            "2026-13-45",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-00-10",
            "2026-01-00",
            "2026-1-05",
            "20260105",
            "",
            "2026-01-05T00:00:00Z",
            "２０２６-01-05",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    fn message(r: Result<Vec<IgnoreRule>, EngineError>) -> String {
        r.expect_err("an error").to_string()
    }

    #[test]
    fn ignore_files_name_file_entry_line_and_field() {
        let text = "[\n  {\"address\": \"server.a\", \"reason\": \"r\", \"expires\": \"2027-01-01\"},\n  {\"address\": \"server.b\", \"reason\": \"r\",\n   \"expires\": \"never\"}\n]";
        let m = message(parse_ignore(text.as_bytes(), "ig.json"));
        assert_eq!(
            m,
            "ig.json: entry 2 (line 3): field \"expires\": \"never\" is not a date (YYYY-MM-DD, e.g. 2027-01-31); leave the field out for an entry that never expires"
        );
        let m = message(parse_ignore(
            br#"[{"address": "srv a", "reason": "r", "expires": "2026-13-45"}, {"reason": "r"}]"#,
            "ig.json",
        ));
        assert!(m.contains("entry 1 (line 1): field \"address\""), "{m}");
        assert!(
            m.contains("entry 1 (line 1): field \"expires\": \"2026-13-45\""),
            "{m}"
        );
        assert!(
            m.contains("entry 2 (line 1): missing field `address`"),
            "{m}"
        );
        assert!(message(parse_ignore(b"{}", "ig.json")).starts_with("ig.json: "));
        let ok = parse_ignore(
            br#"[{"address": "server.a", "attribute": "tags", "reason": "r"}]"#,
            "ig.json",
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        let e = check_ignore_addresses(&ok, "ig.json", |a| a == "server.b")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ig.json: entry 1: field \"address\": server.a is unknown"),
            "{e}"
        );
        check_ignore_addresses(&ok, "ig.json", |a| a == "server.a").unwrap();
    }

    #[test]
    fn entry_lines_skip_strings_and_nesting() {
        let text = "[{\"a\": \"[x, {y}]\"},\n {\"b\": [1, 2]}, \n\n {}]";
        assert_eq!(entry_lines(text), vec![1, 2, 4]);
        assert_eq!(entry_lines("[]"), Vec::<usize>::new());
    }
}

#[cfg(test)]
mod computed_tests {
    use super::*;

    fn record() -> ResourceRecord {
        serde_json::from_value(json!({
            "address": "server.app-01", "kind": "server", "implementation": "sim",
            "provider_id": "sim-1", "config": null,
            "attributes": {"hostname": "app-01", "plan": "small", "zone": "sim-a", "os": "ubuntu",
                           "tags": {}, "firewall_rules": []},
            "outputs": {"id": "sim-1", "public_ip": "203.0.113.1", "private_ip": "10.0.0.1",
                        "extra": {"boots": 1}, "status": "stopped"},
            "dependencies": [], "updated_at": 0, "sensitive_paths": []
        }))
        .unwrap()
    }

    fn info(private_ip: &str, boots: u64) -> ServerInfo {
        ServerInfo {
            id: "sim-1".into(),
            hostname: "app-01".into(),
            status: ServerStatus::Running,
            plan: "small".into(),
            zone: "sim-a".into(),
            os: "ubuntu".into(),
            public_ip: Some("203.0.113.1".into()),
            private_ip: Some(private_ip.into()),
            tags: Default::default(),
            firewall_rules: Vec::new(),
            extra: json!({"boots": boots}),
        }
    }

    #[test]
    fn a_computed_attribute_changed_outside_prov_is_drift_and_is_accepted() {
        let rec = record();
        // Volatile provider facts alone are not drift.
        let (_, d) = server_observation(&rec, "server.app-01", Ok(Some(info("10.0.0.1", 7))));
        assert!(d.is_empty(), "{d:?}");

        let (new, d) = server_observation(&rec, "server.app-01", Ok(Some(info("10.0.0.42", 1))));
        let [Drift {
            kind: DriftKind::Changed(diffs),
            ..
        }] = d.as_slice()
        else {
            panic!("{d:?}")
        };
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].path, "private_ip");
        assert_eq!(diffs[0].after, Some(json!("10.0.0.42")));
        let new = new.unwrap();
        assert_eq!(new.outputs["private_ip"], "10.0.0.42");

        // What a normal apply records first: the recorded record with the provider's computed
        // attributes, nothing else (a stop stays what the state says).
        let accepted = accept_computed(&rec, &new).unwrap();
        assert_eq!(accepted.outputs["private_ip"], "10.0.0.42");
        assert_eq!(accepted.outputs["status"], "stopped");
        assert_eq!(accepted.attributes, rec.attributes);
        assert!(accept_computed(&rec, &rec).is_none());
    }
}
