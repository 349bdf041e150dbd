//! Apply: a tokio DAG walker that carries out a plan step by step and records each finished step in the state before its dependents start.

use crate::error::{Diagnostic, EngineError};
use crate::events::{Event, EventSink, Step};
use crate::load::resolve_ref;
use crate::model::Address;
use crate::plan::{Action, Plan, PlanMode, ResourceChange};
use crate::records::{cluster_request, server_target};
use crate::refs::{substitute, RefPath, Resolved};
use crate::registry::Bound;
use crate::traits::{
    ClusterRequest, ComponentRequest, ErrorKind, ExtError, Ownership, ServerSpec, ServerTarget,
    ServerUpdate, TaskservRequest,
};
use prov_state::{Change, PendingOp, ResourceRecord, StateStore};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Steps running at once (global).
    pub parallelism: usize,
    /// Set (e.g. on SIGINT/SIGTERM) to stop starting steps; running ones finish and are recorded.
    pub interrupt: Arc<AtomicBool>,
    /// Identifies this apply in pending notes (the state lock's id).
    pub run_id: String,
    /// How long to wait for resources another writer holds (`--lock-timeout`).
    pub lock_timeout: Duration,
    /// Create servers even where live servers tagged for their addresses exist that no record
    /// holds (`ops::check_tagged`): another workspace's that share the addresses.
    pub ignore_tagged: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 10,
            interrupt: Arc::new(AtomicBool::new(false)),
            run_id: String::new(),
            lock_timeout: Duration::ZERO,
            ignore_tagged: false,
        }
    }
}

/// What happened, step by step.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    pub succeeded: Vec<(Address, Step)>,
    pub failed: Vec<(Address, Step, String)>,
    pub skipped: Vec<(Address, Step, Address)>,
    /// Not started because the apply was interrupted.
    pub interrupted: Vec<(Address, Step)>,
    pub serial: u64,
    pub outputs: Map<String, Value>,
    /// Outputs that show a sensitive value (the plan's): redact them when showing `outputs`.
    pub sensitive_outputs: Vec<String>,
    pub elapsed: Duration,
    /// Clusters with `on_error = 'rollback` that a failure rolled back, with the components
    /// removed again (latest first).
    pub rolled_back: Vec<(Address, Vec<Address>)>,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.interrupted.is_empty()
    }
}

struct Op {
    /// Index into the walk's changes: the plan's, then one per deposed object.
    change: usize,
    step: Step,
}

/// The plan's deposed objects as the walker sees them: a destroy of `provider_id` at their
/// address (the change's `provider_id`).
fn deposed_changes(plan: &Plan) -> Vec<ResourceChange> {
    plan.deposed
        .iter()
        .map(|d| ResourceChange {
            address: d.address.clone(),
            implementation: d.implementation.clone(),
            action: Action::Delete {
                reason: DEPOSED.into(),
            },
            before: Some(d.before.clone()),
            after: None,
            after_unknown: Value::Bool(false),
            config: None,
            diffs: Vec::new(),
            depends_on: Vec::new(),
            prior_dependencies: Vec::new(),
            provider_id: Some(d.provider_id.clone()),
            lifecycle: Default::default(),
            declared_at: None,
            sensitive: d.sensitive.clone(),
            defaults: Vec::new(),
            computed: None,
            references: Vec::new(),
        })
        .collect()
}

/// The reason of the walker's own deletes of deposed objects (never a plan's).
const DEPOSED: &str = "deposed";

/// Orders the walk's steps. Creates and updates follow desired dependencies; destroys follow
/// recorded dependencies in reverse; a replace is destroy-then-create (or the other way round
/// with create_before_destroy). `changes` are the plan's, then its deposed objects' (from
/// index `planned` on).
fn build_ops(
    changes: &[&ResourceChange],
    planned: usize,
) -> Result<(Vec<Op>, Vec<Vec<usize>>), EngineError> {
    let mut ops = Vec::new();
    let mut forward: HashMap<&Address, usize> = HashMap::new();
    let mut destroy: HashMap<&Address, usize> = HashMap::new();
    let mut deposed: HashMap<&Address, Vec<usize>> = HashMap::new();
    let mut deps: Vec<Vec<usize>> = Vec::new();
    let push = |ops: &mut Vec<Op>, deps: &mut Vec<Vec<usize>>, change, step| {
        ops.push(Op { change, step });
        deps.push(Vec::new());
        ops.len() - 1
    };
    for (i, c) in changes.iter().enumerate() {
        if i >= planned {
            let d = push(&mut ops, &mut deps, i, Step::Destroy);
            deposed.entry(&c.address).or_default().push(d);
            continue;
        }
        match &c.action {
            Action::NoOp => {}
            Action::Create => {
                forward.insert(&c.address, push(&mut ops, &mut deps, i, Step::Create));
            }
            Action::Update => {
                forward.insert(&c.address, push(&mut ops, &mut deps, i, Step::Update));
            }
            Action::Delete { .. } => {
                destroy.insert(&c.address, push(&mut ops, &mut deps, i, Step::Destroy));
            }
            Action::Replace {
                create_before_destroy,
                ..
            } => {
                let d = push(&mut ops, &mut deps, i, Step::Destroy);
                let f = push(&mut ops, &mut deps, i, Step::Create);
                if *create_before_destroy {
                    deps[d].push(f);
                } else {
                    deps[f].push(d);
                }
                destroy.insert(&c.address, d);
                forward.insert(&c.address, f);
            }
        }
    }
    let plan_changes = &changes[..planned];
    for c in plan_changes {
        if let Some(&f) = forward.get(&c.address) {
            for d in &c.depends_on {
                if let Some(&df) = forward.get(d) {
                    deps[f].push(df);
                }
            }
        }
        // Whatever was built on X is torn down (or moved off it) before X is destroyed.
        for x in &c.prior_dependencies {
            if let Some(&dx) = destroy.get(x) {
                if let Some(&dc) = destroy.get(&c.address) {
                    deps[dx].push(dc);
                }
                let x_deleted = plan_changes
                    .iter()
                    .any(|o| &o.address == x && matches!(o.action, Action::Delete { .. }));
                if x_deleted {
                    if let Some(&fc) = forward.get(&c.address) {
                        deps[dx].push(fc);
                    }
                }
            }
        }
        if let Action::Replace {
            create_before_destroy: true,
            ..
        } = c.action
        {
            let dx = destroy[&c.address];
            for o in plan_changes {
                if o.depends_on.contains(&c.address) {
                    if let Some(&fo) = forward.get(&o.address) {
                        deps[dx].push(fo);
                    }
                }
            }
        }
    }
    // A deposed object goes once its address has its new object and whatever refers to the
    // address has moved to it, like the old object of a create_before_destroy replace (which
    // then goes after it). When the address itself is destroyed first (a delete, or a replace
    // that destroys before it creates), the deposed objects go before that destroy, which
    // removes the record that remembers them. Steps at one address run one at a time: each
    // records its pending note under the address.
    for (x, ds) in &deposed {
        let destroyed_first = destroy
            .get(x)
            .filter(|&&dx| !forward.get(x).is_some_and(|f| deps[dx].contains(f)));
        for (k, &d) in ds.iter().enumerate() {
            if k > 0 {
                deps[d].push(ds[k - 1]);
            }
            if destroyed_first.is_some() {
                continue;
            }
            if let Some(&f) = forward.get(x) {
                deps[d].push(f);
            }
            for o in plan_changes {
                if o.depends_on.contains(x) {
                    if let Some(&fo) = forward.get(&o.address) {
                        deps[d].push(fo);
                    }
                }
            }
        }
        let last = *ds.last().expect("at least one");
        if let Some(&dx) = destroy.get(x) {
            deps[dx].push(last);
        }
    }
    for d in deps.iter_mut() {
        d.sort_unstable();
        d.dedup();
    }
    // Kahn's algorithm: an order must exist, or the plan is contradictory.
    let mut indeg: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut rev: Vec<Vec<usize>> = vec![Vec::new(); ops.len()];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            rev[j].push(i);
        }
    }
    let mut q: VecDeque<usize> = (0..ops.len()).filter(|&i| indeg[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = q.pop_front() {
        seen += 1;
        for &k in &rev[i] {
            indeg[k] -= 1;
            if indeg[k] == 0 {
                q.push_back(k);
            }
        }
    }
    if seen != ops.len() {
        let stuck: Vec<String> = (0..ops.len())
            .filter(|&i| indeg[i] > 0)
            .map(|i| format!("{} {}", ops[i].step.verb(), changes[ops[i].change].address))
            .collect();
        return Err(EngineError::Invalid(vec![Diagnostic::new(
            None,
            None,
            format!(
                "the plan's steps cannot be ordered (they wait on each other): {}",
                stuck.join(", ")
            ),
        )]));
    }
    Ok((ops, rev))
}

/// Everything a step needs, prepared by the coordinator (which owns the records).
struct StepInput {
    change: ResourceChange,
    step: Step,
    /// Destroys a deposed object (`change.provider_id`), not the address's current one.
    deposed: bool,
    resolved: Option<Value>,
    prior: Option<ResourceRecord>,
    server: Option<ServerTarget>,
    cluster: Option<ClusterRequest>,
}

fn put(r: ResourceRecord) -> StepResult {
    StepResult::Put(Box::new(r))
}

enum StepResult {
    Put(Box<ResourceRecord>),
    Delete(Address),
    /// The deposed object with this id at this address is gone (the coordinator rewrites the
    /// record, which it owns).
    DropDeposed(Address, String),
    Nothing,
}

/// Carries out `plan`. Returns Err only when the apply cannot proceed at all (state write
/// failure, plan out of date); step failures are in the report.
pub async fn apply(
    plan: &Plan,
    bound: Arc<Bound>,
    store: Arc<dyn StateStore>,
    opts: &ApplyOptions,
    events: EventSink,
) -> Result<ApplyReport, EngineError> {
    let started = Instant::now();
    let snap = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.snapshot())
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??
    };
    // What created servers are tagged with (the state's identity, see `ownership`).
    let owner_id = crate::ownership::Identity::of(&snap.meta, &bound).id;
    let mut records: HashMap<Address, ResourceRecord> = crate::records::parse_records(&snap)?
        .into_iter()
        .map(|(a, r)| (a, r.clone()))
        .collect();
    let mut addrs: BTreeSet<Address> = records.keys().cloned().collect();
    addrs.extend(plan.changes.iter().map(|c| c.address.clone()));

    if !plan.protect.is_empty() {
        // Protections first, in one commit: they guard against what follows.
        let mut writes = Vec::new();
        for a in &plan.protect {
            if let Some(r) = records.get_mut(a) {
                r.protected = true;
                writes.push(Change::Put(r.clone()));
            }
        }
        let n = writes.len();
        let serial = commit(&store, writes).await?;
        events(Event::StateWritten { serial, records: n });
    }
    let extra = deposed_changes(plan);
    let planned = plan.changes.len();
    let changes: Vec<&ResourceChange> = plan.changes.iter().chain(&extra).collect();
    let (ops, dependents) = build_ops(&changes, planned)?;
    let mut waiting: Vec<usize> = vec![0; ops.len()];
    for d in &dependents {
        for &k in d {
            waiting[k] += 1;
        }
    }
    events(Event::ApplyStarted { steps: ops.len() });
    for op in &ops {
        events(Event::Waiting {
            address: changes[op.change].address.clone(),
            step: op.step,
        });
    }
    let global = Arc::new(Semaphore::new(opts.parallelism.max(1)));
    let mut per_provider: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut ready: VecDeque<usize> = (0..ops.len()).filter(|&i| waiting[i] == 0).collect();
    let mut skipped = vec![false; ops.len()];
    let mut launched = vec![false; ops.len()];
    let mut report = ApplyReport {
        serial: snap.meta.serial,
        ..Default::default()
    };
    let mut running: JoinSet<(usize, Result<StepResult, ExtError>, Duration)> = JoinSet::new();
    let mut fatal: Option<EngineError> = None;
    let cluster_errors = cluster_on_error(&changes, &records);

    loop {
        // Every step about to start is recorded as pending first (one commit for the round), so
        // a crash mid-step leaves a note the next run resolves by asking the provider.
        let mut starting = Vec::new();
        while fatal.is_none() && !opts.interrupt.load(Ordering::SeqCst) {
            let Some(i) = ready.pop_front() else { break };
            launched[i] = true;
            let op = &ops[i];
            let change = changes[op.change];
            let deposed = op.change >= planned;
            match prepare(change, op.step, deposed, &records, &addrs, &bound) {
                Ok(input) => {
                    let sem = provider_semaphore(change, &bound, &mut per_provider);
                    starting.push((i, input, sem));
                }
                Err(msg) => fail(
                    i,
                    msg,
                    &ops,
                    &changes,
                    &dependents,
                    &mut skipped,
                    &mut report,
                    &events,
                ),
            }
        }
        if !starting.is_empty() {
            let notes: Vec<Change> = starting
                .iter()
                .map(|(_, input, _)| Change::PutPending(pending_note(input, &opts.run_id)))
                .collect();
            if let Err(e) = commit(&store, notes).await {
                fatal = Some(e);
                for (i, _, _) in &starting {
                    launched[*i] = false;
                }
                starting.clear();
            }
        }
        for (i, input, sem) in starting {
            let global = global.clone();
            let bound = bound.clone();
            let events = events.clone();
            let workspace = owner_id.clone();
            running.spawn(async move {
                let _g = global.acquire_owned().await.expect("semaphore open");
                let _p = match sem {
                    Some(s) => Some(s.acquire_owned().await.expect("semaphore open")),
                    None => None,
                };
                events(Event::Running {
                    address: input.change.address.clone(),
                    step: input.step,
                });
                let t = Instant::now();
                let r = run_step(&input, &bound, &workspace, &events).await;
                (i, r, t.elapsed())
            });
        }
        let Some(first) = running.join_next().await else {
            break;
        };
        let mut batch = vec![first];
        while let Some(more) = running.try_join_next() {
            batch.push(more);
        }
        let mut done = Vec::new();
        let mut continued = Vec::new();
        let mut writes = Vec::new();
        for joined in batch {
            let (i, result, elapsed) =
                joined.map_err(|e| EngineError::Internal(format!("apply task failed: {e}")))?;
            let change = changes[ops[i].change];
            let address = change.address.to_string();
            match result {
                Ok(r) => {
                    // A deposed object is gone: its record forgets it (the coordinator owns the
                    // records, and no other step at this address runs meanwhile).
                    let r = match r {
                        StepResult::DropDeposed(a, id) => match records.get(&a) {
                            Some(rec) => {
                                let mut rec = rec.clone();
                                rec.deposed.retain(|d| d.provider_id != id);
                                put(rec)
                            }
                            None => StepResult::Nothing,
                        },
                        other => other,
                    };
                    match &r {
                        StepResult::Put(rec) => writes.push(Change::Put((**rec).clone())),
                        StepResult::Delete(a) => writes.push(Change::Delete(a.to_string())),
                        StepResult::Nothing | StepResult::DropDeposed(..) => {}
                    }
                    writes.push(Change::ClearPending(address));
                    done.push((i, r, elapsed));
                }
                Err(e) => {
                    // A timeout leaves the outcome unknown: keep the note for the next run. (The
                    // old object of a create_before_destroy replace whose delete failed needs no
                    // note: its record keeps it as deposed, and the next plan destroys it.)
                    // A failed server create may have left a server behind (created, then its
                    // wait failed): the note makes the next run look for it by its ownership
                    // tags and record it, so destroy can remove it.
                    let create_left_behind = ops[i].step == Step::Create
                        && matches!(change.address, Address::Server(_))
                        && e.kind != ErrorKind::Invalid;
                    if e.kind != ErrorKind::Timeout && !create_left_behind {
                        writes.push(Change::ClearPending(address));
                    }
                    let component_continues = matches!(&change.address,
                        Address::Component(c, _) if cluster_errors.get(c).map(String::as_str) == Some("continue"));
                    if continues_on_error(change) || component_continues {
                        let address = change.address.clone();
                        let msg = if component_continues {
                            format!(
                                "{e} (its cluster's on_error = 'continue: dependents still run)"
                            )
                        } else {
                            format!("{e} (on_error = Continue: dependents still run)")
                        };
                        report
                            .failed
                            .push((address.clone(), ops[i].step, msg.clone()));
                        events(Event::Failed {
                            address,
                            step: ops[i].step,
                            error: msg,
                        });
                        continued.push(i);
                        continue;
                    }
                    fail(
                        i,
                        e.to_string(),
                        &ops,
                        &changes,
                        &dependents,
                        &mut skipped,
                        &mut report,
                        &events,
                    )
                }
            }
        }
        if !writes.is_empty() && fatal.is_none() {
            let n = writes
                .iter()
                .filter(|c| matches!(c, Change::Put(_) | Change::Delete(_)))
                .count();
            match commit(&store, writes).await {
                Ok(serial) => {
                    report.serial = serial;
                    events(Event::StateWritten { serial, records: n });
                }
                Err(e) => fatal = Some(e),
            }
        }
        for i in continued {
            for &k in &dependents[i] {
                waiting[k] -= 1;
                if waiting[k] == 0 && !skipped[k] {
                    ready.push_back(k);
                }
            }
        }
        for (i, r, elapsed) in done {
            let address = changes[ops[i].change].address.clone();
            if fatal.is_some() {
                let msg = "finished, but the state could not be written".to_string();
                report
                    .failed
                    .push((address.clone(), ops[i].step, msg.clone()));
                events(Event::Failed {
                    address,
                    step: ops[i].step,
                    error: msg,
                });
                continue;
            }
            match r {
                StepResult::Put(rec) => {
                    records.insert(address.clone(), *rec);
                }
                StepResult::Delete(a) => {
                    records.remove(&a);
                }
                StepResult::Nothing | StepResult::DropDeposed(..) => {}
            }
            report.succeeded.push((address.clone(), ops[i].step));
            events(Event::Succeeded {
                address,
                step: ops[i].step,
                elapsed,
            });
            for &k in &dependents[i] {
                waiting[k] -= 1;
                if waiting[k] == 0 && !skipped[k] {
                    ready.push_back(k);
                }
            }
        }
    }
    // Interrupted: whatever never started is reported, and stays planned for the next run.
    for (i, op) in ops.iter().enumerate() {
        if !launched[i] && !skipped[i] {
            let address = changes[op.change].address.clone();
            report.interrupted.push((address.clone(), op.step));
            events(Event::Interrupted {
                address,
                step: op.step,
            });
        }
    }
    events(Event::ApplyFinished {
        succeeded: report.succeeded.len(),
        failed: report.failed.len(),
        skipped: report.skipped.len(),
    });
    if let Some(e) = fatal {
        return Err(e);
    }
    rollback(
        &cluster_errors,
        &mut report,
        &mut records,
        &bound,
        &store,
        &events,
    )
    .await?;

    // Outputs: resolved from the records as they are when written (other applies may have
    // changed records meanwhile), in one atomic step; ones that cannot be resolved are left out.
    let declared = if plan.mode == PlanMode::Normal {
        plan.outputs.clone()
    } else {
        Map::new()
    };
    let planned: Vec<Address> = plan.changes.iter().map(|c| c.address.clone()).collect();
    let s = store.clone();
    let (serial, outputs) = tokio::task::spawn_blocking(move || {
        let mut written = Map::new();
        let serial = s.update_outputs(&mut |snap| {
            written = resolve_outputs(&declared, snap, &planned);
            written.clone()
        })?;
        Ok::<_, prov_state::StateError>((serial, written))
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))??;
    report.serial = serial;
    report.outputs = outputs;
    report.sensitive_outputs = plan.sensitive_outputs.clone();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The workspace outputs `declared` resolves to from the records of `snap` (the addresses of
/// `planned` count as declared for references); unknown or unresolvable ones are left out.
fn resolve_outputs(
    declared: &Map<String, Value>,
    snap: &prov_state::Snapshot,
    planned: &[Address],
) -> Map<String, Value> {
    let mut outputs = Map::new();
    if declared.is_empty() {
        return outputs;
    }
    let Ok(parsed) = crate::records::parse_records(snap) else {
        return outputs;
    };
    let records: HashMap<Address, ResourceRecord> =
        parsed.into_iter().map(|(a, r)| (a, r.clone())).collect();
    let mut addrs: BTreeSet<Address> = records.keys().cloned().collect();
    addrs.extend(planned.iter().cloned());
    for (k, v) in declared {
        let mut lookup = |rp: &RefPath| lookup_record(rp, &records, &addrs);
        if let Ok(s) = substitute(v, &mut lookup) {
            if s.is_fully_known() {
                outputs.insert(k.clone(), s.value);
            }
        }
    }
    outputs
}

async fn commit(store: &Arc<dyn StateStore>, changes: Vec<Change>) -> Result<u64, EngineError> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.commit(&changes))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(EngineError::State)
}

/// The note recorded before a step starts: enough to find or undo its effect after a crash.
fn pending_note(input: &StepInput, run_id: &str) -> PendingOp {
    let c = &input.change;
    let operation = match input.step {
        Step::Create => "create",
        Step::Update => "update",
        Step::Destroy => "delete",
    };
    let attributes = match input.step {
        Step::Destroy if input.deposed => c.before.clone(),
        Step::Destroy => input
            .prior
            .as_ref()
            .map(|p| p.attributes.clone())
            .or_else(|| c.before.clone()),
        _ => input.resolved.clone(),
    };
    PendingOp {
        address: c.address.to_string(),
        operation: operation.to_string(),
        kind: c.address.kind().as_str().to_string(),
        implementation: c.implementation.clone(),
        provider_id: match input.step {
            Step::Destroy => c
                .provider_id
                .clone()
                .or_else(|| input.prior.as_ref().and_then(|p| p.provider_id.clone())),
            _ => input.prior.as_ref().and_then(|p| p.provider_id.clone()),
        },
        spec: json!({"config": c.config, "attributes": attributes, "sensitive": c.sensitive}),
        dependencies: c.depends_on.iter().map(|d| d.to_string()).collect(),
        started_at: prov_state::now_secs(),
        run_id: run_id.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn fail(
    i: usize,
    msg: String,
    ops: &[Op],
    changes: &[&ResourceChange],
    dependents: &[Vec<usize>],
    skipped: &mut [bool],
    report: &mut ApplyReport,
    events: &EventSink,
) {
    let address = changes[ops[i].change].address.clone();
    report
        .failed
        .push((address.clone(), ops[i].step, msg.clone()));
    events(Event::Failed {
        address: address.clone(),
        step: ops[i].step,
        error: msg,
    });
    let mut stack: Vec<usize> = dependents[i].clone();
    while let Some(k) = stack.pop() {
        if skipped[k] {
            continue;
        }
        skipped[k] = true;
        let a = changes[ops[k].change].address.clone();
        report
            .skipped
            .push((a.clone(), ops[k].step, address.clone()));
        events(Event::Skipped {
            address: a,
            step: ops[k].step,
            because: address.clone(),
        });
        stack.extend(dependents[k].iter().copied());
    }
}

fn provider_semaphore(
    change: &ResourceChange,
    bound: &Bound,
    cache: &mut HashMap<String, Arc<Semaphore>>,
) -> Option<Arc<Semaphore>> {
    // Servers call their provider directly; the limit applies to them.
    if !matches!(change.address, Address::Server(_)) {
        return None;
    }
    let name = &change.implementation;
    if let Some(s) = cache.get(name) {
        return Some(s.clone());
    }
    let n = bound.provider(name).ok()?.parallelism()?;
    let s = Arc::new(Semaphore::new(n.max(1)));
    cache.insert(name.clone(), s.clone());
    Some(s)
}

fn lookup_record(
    rp: &RefPath,
    records: &HashMap<Address, ResourceRecord>,
    addrs: &BTreeSet<Address>,
) -> Result<Resolved, String> {
    let (target, attr) = resolve_ref(rp, addrs)?;
    let rec = records
        .get(&target)
        .ok_or_else(|| format!("{target} is not in the state (it was not applied)"))?;
    crate::records::record_attr(rec, &attr)
        .cloned()
        .map(Resolved::Known)
        .ok_or_else(|| format!("{target} has no attribute {:?}", attr.join(".")))
}

fn prepare(
    change: &ResourceChange,
    step: Step,
    deposed: bool,
    records: &HashMap<Address, ResourceRecord>,
    addrs: &BTreeSet<Address>,
    bound: &Bound,
) -> Result<StepInput, String> {
    let prior = records.get(&change.address).cloned();
    let resolved = match (step, &change.config) {
        (Step::Destroy, _) | (_, None) => None,
        (_, Some(cfg)) => {
            let mut lookup = |rp: &RefPath| lookup_record(rp, records, addrs);
            let mut v = substitute(cfg, &mut lookup)?.value;
            if let (Step::Update, Some(p)) = (step, &prior) {
                crate::diff::keep_ignored(&mut v, &p.attributes, &change.lifecycle.ignore_changes);
            }
            Some(v)
        }
    };
    let attrs_for_placement = resolved
        .clone()
        .or_else(|| prior.as_ref().map(|p| p.attributes.clone()))
        .unwrap_or(Value::Null);
    let lookup = |a: &Address| records.get(a);
    let server = match &change.address {
        Address::Taskserv(..) => {
            let s = change.address.parent().expect("taskserv has a server");
            Some(server_target(&s, records.get(&s), bound)?)
        }
        _ => None,
    };
    let cluster = match &change.address {
        Address::Cluster(_) => Some(cluster_request(
            &change.address,
            &attrs_for_placement,
            lookup,
            bound,
        )?),
        Address::Component(..) => {
            let parent = change.address.parent().expect("component has a cluster");
            let crec = records
                .get(&parent)
                .ok_or_else(|| format!("{parent} is not in the state"))?;
            Some(cluster_request(&parent, &crec.attributes, lookup, bound)?)
        }
        _ => None,
    };
    Ok(StepInput {
        change: change.clone(),
        step,
        deposed,
        resolved,
        prior,
        server,
        cluster,
    })
}

fn is_not_found(e: &ExtError) -> bool {
    e.kind == ErrorKind::NotFound
}

/// A destroy of something already gone has reached its goal.
fn already_gone_ok(r: Result<(), ExtError>) -> Result<(), ExtError> {
    match r {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}

fn record(
    input: &StepInput,
    attributes: Value,
    outputs: Value,
    provider_id: Option<String>,
) -> ResourceRecord {
    let c = &input.change;
    let prior = input.prior.as_ref();
    // Deposed objects stay with the address until destroyed. A new object taking a server's
    // address from one that still exists (create_before_destroy) deposes the old one in this
    // very record, so the commit that names the new object also remembers the old.
    let mut deposed = prior.map(|p| p.deposed.clone()).unwrap_or_default();
    if let (Address::Server(_), Step::Create, Some(p)) = (&c.address, input.step, prior) {
        if p.provider_id.is_some() && p.provider_id != provider_id {
            deposed.extend(p.as_deposed(prov_state::now_secs()));
        }
    }
    ResourceRecord {
        address: c.address.to_string(),
        kind: c.address.kind().as_str().to_string(),
        implementation: c.implementation.clone(),
        provider_id,
        config: c.config.clone().unwrap_or(Value::Null),
        attributes,
        outputs,
        dependencies: c.depends_on.iter().map(|d| d.to_string()).collect(),
        updated_at: prov_state::now_secs(),
        sensitive_paths: c.sensitive.clone(),
        deposed,
        // Once protected, protected until `prov state unprotect` lifts it.
        protected: c.lifecycle.prevent_destroy || prior.is_some_and(|p| p.protected),
    }
}

fn spec(v: &Value, addr: &Address) -> Result<ServerSpec, ExtError> {
    serde_json::from_value(v.clone()).map_err(|e| {
        ExtError::new(
            "prov",
            "create-server",
            Some(&addr.to_string()),
            ErrorKind::Invalid,
            format!("server attributes: {e}"),
        )
    })
}

/// Turns a taskserv's output lines into `Event::Output` for `addr`.
fn output_sink(addr: &Address, events: &EventSink) -> crate::traits::OutputFn {
    let (addr, events) = (addr.clone(), events.clone());
    Arc::new(move |line: &str| {
        events(Event::Output {
            address: addr.clone(),
            line: line.to_string(),
        })
    })
}

/// Each cluster's `on_error` ("stop", "continue", "rollback") among the changes: its planned
/// configuration, else its record (a cluster unchanged by the plan).
fn cluster_on_error(
    changes: &[&ResourceChange],
    records: &HashMap<Address, ResourceRecord>,
) -> HashMap<crate::model::Name, String> {
    let mut out = HashMap::new();
    for c in changes {
        let Address::Component(cluster, _) = &c.address else {
            continue;
        };
        if out.contains_key(cluster) {
            continue;
        }
        let caddr = Address::Cluster(cluster.clone());
        let planned = changes
            .iter()
            .find(|x| x.address == caddr)
            .and_then(|x| x.config.as_ref().or(x.after.as_ref()))
            .and_then(|v| v.get("on_error"))
            .and_then(Value::as_str);
        let recorded = records
            .get(&caddr)
            .and_then(|r| r.attributes.get("on_error"))
            .and_then(Value::as_str);
        if let Some(v) = planned.or(recorded) {
            out.insert(cluster.clone(), v.to_string());
        }
    }
    out
}

/// `on_error = 'rollback` on a cluster (the seed's rollback-cluster-deployment): when one of its
/// steps failed, the components this apply deployed for it are removed again, latest first,
/// and their records dropped, each removal committed as it finishes.
async fn rollback(
    cluster_errors: &HashMap<crate::model::Name, String>,
    report: &mut ApplyReport,
    records: &mut HashMap<Address, ResourceRecord>,
    bound: &Arc<Bound>,
    store: &Arc<dyn StateStore>,
    events: &EventSink,
) -> Result<(), EngineError> {
    let failed: BTreeSet<crate::model::Name> = report
        .failed
        .iter()
        .filter_map(|(a, ..)| match a {
            Address::Component(c, _) | Address::Cluster(c) => Some(c.clone()),
            _ => None,
        })
        .filter(|c| cluster_errors.get(c).map(String::as_str) == Some("rollback"))
        .collect();
    for cluster in failed {
        let created: Vec<Address> = report
            .succeeded
            .iter()
            .rev()
            .filter(|(a, s)| {
                *s == Step::Create && matches!(a, Address::Component(c, _) if *c == cluster)
            })
            .map(|(a, _)| a.clone())
            .collect();
        let caddr = Address::Cluster(cluster.clone());
        let Some(crec) = records.get(&caddr) else {
            continue;
        };
        if created.is_empty() {
            continue;
        }
        let cl = bound.cluster(&crec.implementation)?;
        let req = cluster_request(&caddr, &crec.attributes, |a| records.get(a), bound)
            .map_err(|m| EngineError::Internal(format!("{caddr}: rollback: {m}")))?;
        let mut removed = Vec::new();
        for a in created {
            let Some(rec) = records.get(&a) else {
                continue;
            };
            let creq = ComponentRequest {
                address: a.to_string(),
                cluster: req.clone(),
                name: a.name().to_string(),
                config: rec.attributes.clone(),
            };
            match already_gone_ok(cl.remove_component(&creq).await) {
                Ok(()) => {
                    let serial = commit(store, vec![Change::Delete(a.to_string())]).await?;
                    report.serial = serial;
                    events(Event::StateWritten { serial, records: 1 });
                    records.remove(&a);
                    removed.push(a);
                }
                Err(e) => {
                    let msg = format!("rollback: {e}");
                    report.failed.push((a.clone(), Step::Destroy, msg.clone()));
                    events(Event::Failed {
                        address: a,
                        step: Step::Destroy,
                        error: msg,
                    });
                }
            }
        }
        events(Event::Output {
            address: caddr.clone(),
            line: format!(
                "rolled back (on_error = 'rollback): removed {}",
                removed
                    .iter()
                    .map(Address::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        report.rolled_back.push((caddr, removed));
    }
    Ok(())
}

/// `on_error = 'Continue` on a taskserv: its failure is reported (the apply still exits 1 and
/// nothing is recorded for it), but the resources that depend on it run anyway, as if it had
/// succeeded. Stop (the default) and Retry (after its last attempt) skip them.
fn continues_on_error(change: &ResourceChange) -> bool {
    matches!(change.address, Address::Taskserv(..))
        && change
            .config
            .as_ref()
            .and_then(|c| c.get("on_error"))
            .and_then(Value::as_str)
            == Some("Continue")
}

async fn run_step(
    input: &StepInput,
    bound: &Bound,
    workspace: &str,
    events: &EventSink,
) -> Result<StepResult, ExtError> {
    let c = &input.change;
    let addr = &c.address;
    let resolved = input.resolved.clone().unwrap_or(Value::Null);
    // A create_before_destroy replace destroys the old object, whose record was already
    // overwritten (it is deposed there); so does the destroy of a deposed object.
    let old_id = || {
        c.provider_id
            .clone()
            .or_else(|| input.prior.as_ref().and_then(|p| p.provider_id.clone()))
    };
    let cbd = matches!(
        c.action,
        Action::Replace {
            create_before_destroy: true,
            ..
        }
    );
    let destroy_result = || {
        if cbd {
            StepResult::Nothing
        } else {
            StepResult::Delete(addr.clone())
        }
    };
    match (addr, input.step) {
        (Address::Server(_), Step::Create) => {
            let p = bound.provider(&c.implementation)?;
            let owner = Ownership {
                workspace: workspace.to_string(),
                address: addr.to_string(),
            };
            let info = p.create_server(&spec(&resolved, addr)?, &owner).await?;
            let outputs = crate::records::server_outputs(&info);
            Ok(put(record(input, resolved, outputs, Some(info.id))))
        }
        (Address::Server(_), Step::Update) => {
            let p = bound.provider(&c.implementation)?;
            let prior = input.prior.as_ref().ok_or_else(|| {
                ExtError::new(
                    &c.implementation,
                    "update-server",
                    Some(&addr.to_string()),
                    ErrorKind::NotFound,
                    "not in the state",
                )
            })?;
            let id = prior.provider_id.clone().unwrap_or_default();
            if crate::plan::make::starts_stopped(c) {
                p.start_server(&id).await?;
            }
            // The plan's `before` is the refreshed view when the plan refreshed: compare with that.
            let before = spec(c.before.as_ref().unwrap_or(&prior.attributes), addr)?;
            let after = spec(&resolved, addr)?;
            if before.firewall_rules != after.firewall_rules {
                p.configure_firewall(&id, &after.firewall_rules).await?;
            }
            let mut rest_before = before.clone();
            rest_before.firewall_rules = after.firewall_rules.clone();
            let info = if rest_before != after {
                p.update_server(&id, &ServerUpdate { before, after })
                    .await?
            } else {
                p.get_server_info(&id).await?.ok_or_else(|| {
                    ExtError::new(
                        &c.implementation,
                        "get-server-info",
                        Some(&id),
                        ErrorKind::NotFound,
                        "server is gone",
                    )
                })?
            };
            let outputs = crate::records::server_outputs(&info);
            Ok(put(record(input, resolved, outputs, Some(info.id))))
        }
        (Address::Server(_), Step::Destroy) => {
            let p = bound.provider(&c.implementation)?;
            let id = old_id();
            if let Some(id) = &id {
                already_gone_ok(p.delete_server(id).await)?;
            }
            match id {
                Some(id) if cbd || input.deposed => Ok(StepResult::DropDeposed(addr.clone(), id)),
                _ if input.deposed => Ok(StepResult::Nothing),
                _ => Ok(destroy_result()),
            }
        }
        (Address::Taskserv(..), step) => {
            let t = bound.taskserv(&c.implementation)?;
            let source = if step == Step::Destroy {
                input
                    .prior
                    .as_ref()
                    .map(|p| p.attributes.clone())
                    .or(c.before.clone())
                    .unwrap_or(Value::Null)
            } else {
                resolved.clone()
            };
            let req = TaskservRequest {
                output: Some(output_sink(addr, events)),
                ..TaskservRequest::from_attributes(
                    addr.to_string(),
                    addr.name().to_string(),
                    &source,
                    input.server.clone().expect("prepared"),
                )
            };
            let retries = if source.get("on_error").and_then(Value::as_str) == Some("Retry") {
                source
                    .get("max_retries")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            } else {
                0
            };
            let mut attempt = 0;
            loop {
                let r = taskserv_step(&*t, &req, step, input, &resolved).await;
                match r {
                    Err(e) if attempt < retries && !is_not_found(&e) => attempt += 1,
                    Ok(None) => return Ok(destroy_result()),
                    Ok(Some(outputs)) => return Ok(put(record(input, resolved, outputs, None))),
                    Err(e) => return Err(e),
                }
            }
        }
        (Address::Cluster(_), step) => {
            let cl = bound.cluster(&c.implementation)?;
            let req = input.cluster.clone().expect("prepared");
            if step == Step::Destroy {
                already_gone_ok(cl.delete(&req).await)?;
                return Ok(destroy_result());
            }
            let r = cl.create(&req).await?;
            let outputs =
                json!({"status": r.status, "endpoints": r.endpoints, "outputs": r.outputs});
            Ok(put(record(input, resolved, outputs, None)))
        }
        (Address::Component(..), step) => {
            let cl = bound.cluster(&c.implementation)?;
            let config = if step == Step::Destroy {
                input
                    .prior
                    .as_ref()
                    .map(|p| p.attributes.clone())
                    .unwrap_or(Value::Null)
            } else {
                resolved.clone()
            };
            let req = ComponentRequest {
                address: addr.to_string(),
                cluster: input.cluster.clone().expect("prepared"),
                name: addr.name().to_string(),
                config: config.clone(),
            };
            let status = match step {
                Step::Destroy => {
                    already_gone_ok(cl.remove_component(&req).await)?;
                    return Ok(destroy_result());
                }
                Step::Create => cl.deploy_component(&req).await?,
                Step::Update => {
                    let before = c
                        .before
                        .clone()
                        .or_else(|| input.prior.as_ref().map(|p| p.attributes.clone()))
                        .unwrap_or(Value::Null);
                    component_update(&*cl, &req, c, &before, &config).await?
                }
            };
            let outputs = serde_json::to_value(&status).unwrap_or(Value::Null);
            Ok(put(record(input, resolved, outputs, None)))
        }
    }
}

/// A component's update: restart-component when it was stopped outside prov, upgrade when its
/// version changes, scale when only its replicas do, deploy-component (configure) for anything
/// else; in that order, each only when needed.
async fn component_update(
    cl: &dyn crate::traits::Cluster,
    req: &ComponentRequest,
    c: &ResourceChange,
    before: &Value,
    config: &Value,
) -> Result<crate::traits::ComponentStatus, ExtError> {
    let replicas = |v: &Value| v.pointer("/resources/replicas").and_then(Value::as_u64);
    let version = |v: &Value| v.get("version").and_then(Value::as_str).map(str::to_string);
    // The two values without the fields the dedicated operations change.
    let rest = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("version");
            if let Some(Value::Object(r)) = o.get_mut("resources") {
                r.remove("replicas");
            }
        }
        v
    };
    let mut status = None;
    if crate::plan::make::starts_stopped(c) {
        cl.restart_component(req).await?;
    }
    if version(before) != version(config) {
        // Upgrading deploys the configured replicas too.
        status = Some(
            cl.upgrade(req, &version(config).unwrap_or_default())
                .await?,
        );
    } else if replicas(before) != replicas(config) {
        status = Some(cl.scale(req, replicas(config).unwrap_or(1) as u32).await?);
    }
    if rest(before) != rest(config) {
        status = Some(cl.deploy_component(req).await?);
    }
    match status {
        Some(s) => Ok(s),
        None => cl.component_status(req).await?.ok_or_else(|| {
            ExtError::new(
                cl.name(),
                "component-status",
                Some(&req.address),
                ErrorKind::NotFound,
                "restarted, but it is not deployed",
            )
        }),
    }
}

/// One taskserv step; `Ok(None)` when it is gone afterwards.
async fn taskserv_step(
    t: &dyn crate::traits::TaskServ,
    req: &TaskservRequest,
    step: Step,
    input: &StepInput,
    resolved: &Value,
) -> Result<Option<Value>, ExtError> {
    let outputs = |r: crate::traits::TaskservResult| {
        let mut m = r.outputs.as_object().cloned().unwrap_or_default();
        m.insert("version".into(), json!(r.version));
        m.insert("status".into(), json!(r.status));
        Value::Object(m)
    };
    match step {
        Step::Create => Ok(Some(outputs(t.install(req).await?))),
        Step::Destroy => already_gone_ok(t.uninstall(req).await).map(|()| None),
        Step::Update => {
            let before = input
                .change
                .before
                .clone()
                .or_else(|| input.prior.as_ref().map(|p| p.attributes.clone()))
                .unwrap_or(Value::Null);
            let mut out = input
                .prior
                .as_ref()
                .map(|p| p.outputs.clone())
                .unwrap_or(json!({}));
            if crate::plan::make::starts_stopped(&input.change) {
                t.restart(req).await?;
                if let Value::Object(o) = &mut out {
                    o.insert("status".into(), json!("running"));
                }
            }
            if before.get("version") != resolved.get("version") {
                if let Some(v) = &req.version {
                    out = outputs(t.upgrade(req, v).await?);
                }
            }
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("version");
                }
                v
            };
            if strip(&before) != strip(resolved) {
                t.configure(req).await?;
                if let (Some(Value::Object(new)), Value::Object(o)) =
                    (t.configured_outputs(req).await?, &mut out)
                {
                    o.extend(new);
                }
            }
            Ok(Some(out))
        }
    }
}
