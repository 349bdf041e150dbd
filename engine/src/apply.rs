//! Apply: a tokio DAG walker that carries out a plan step by step and records each finished step in the state before its dependents start.

use crate::error::{Diagnostic, EngineError};
use crate::events::{Event, EventSink, Step};
use crate::load::resolve_ref;
use crate::model::Address;
use crate::plan::{Action, Plan, PlanMode, ResourceChange};
use crate::refs::{substitute, RefPath, Resolved};
use crate::registry::Bound;
use crate::targets::{cluster_request, server_target};
use crate::traits::{
    ClusterRequest, ComponentRequest, ErrorKind, ExtError, Ownership, ServerSpec, ServerTarget,
    ServerUpdate, TaskservRequest,
};
use prov_state::{Change, PendingOp, ResourceRecord, StateStore};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 10,
            interrupt: Arc::new(AtomicBool::new(false)),
            run_id: String::new(),
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
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.interrupted.is_empty()
    }
}

/// Refuses a saved plan made against another state (foreign) or an older version of this one (stale).
pub fn check_plan_current(
    plan: &Plan,
    meta: &prov_state::StateMeta,
    plan_path: &std::path::Path,
) -> Result<(), EngineError> {
    if plan.lineage.is_empty() {
        // Made before any state existed: only valid while none has been written.
        if meta.serial != 0 {
            return Err(EngineError::StalePlan {
                path: plan_path.into(),
                plan_serial: 0,
                state_serial: meta.serial,
            });
        }
        return Ok(());
    }
    if meta.lineage != plan.lineage {
        return Err(EngineError::ForeignPlan {
            path: plan_path.into(),
            plan_lineage: plan.lineage.clone(),
            state_lineage: if meta.lineage.is_empty() {
                "(no state)".into()
            } else {
                meta.lineage.clone()
            },
        });
    }
    if meta.serial != plan.serial {
        return Err(EngineError::StalePlan {
            path: plan_path.into(),
            plan_serial: plan.serial,
            state_serial: meta.serial,
        });
    }
    Ok(())
}

struct Op {
    change: usize,
    step: Step,
}

/// Orders the plan's steps. Creates and updates follow desired dependencies; destroys follow
/// recorded dependencies in reverse; a replace is destroy-then-create (or the other way round
/// with create_before_destroy).
fn build_ops(plan: &Plan) -> Result<(Vec<Op>, Vec<Vec<usize>>), EngineError> {
    let mut ops = Vec::new();
    let mut forward: HashMap<&Address, usize> = HashMap::new();
    let mut destroy: HashMap<&Address, usize> = HashMap::new();
    let mut deps: Vec<Vec<usize>> = Vec::new();
    let push = |ops: &mut Vec<Op>, deps: &mut Vec<Vec<usize>>, change, step| {
        ops.push(Op { change, step });
        deps.push(Vec::new());
        ops.len() - 1
    };
    for (i, c) in plan.changes.iter().enumerate() {
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
    for c in &plan.changes {
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
                let x_deleted = plan
                    .changes
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
            for o in &plan.changes {
                if o.depends_on.contains(&c.address) {
                    if let Some(&fo) = forward.get(&o.address) {
                        deps[dx].push(fo);
                    }
                }
            }
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
            .map(|i| {
                format!(
                    "{} {}",
                    ops[i].step.verb(),
                    plan.changes[ops[i].change].address
                )
            })
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Everything a step needs, prepared by the coordinator (which owns the records).
struct StepInput {
    change: ResourceChange,
    step: Step,
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
    let mut records: HashMap<Address, ResourceRecord> = crate::plan::make::parse_records(&snap)?
        .into_iter()
        .map(|(a, r)| (a, r.clone()))
        .collect();
    let mut addrs: BTreeSet<Address> = records.keys().cloned().collect();
    addrs.extend(plan.changes.iter().map(|c| c.address.clone()));

    let (ops, dependents) = build_ops(plan)?;
    let mut waiting: Vec<usize> = vec![0; ops.len()];
    for d in &dependents {
        for &k in d {
            waiting[k] += 1;
        }
    }
    events(Event::ApplyStarted { steps: ops.len() });
    for op in &ops {
        events(Event::Waiting {
            address: plan.changes[op.change].address.clone(),
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

    loop {
        // Every step about to start is recorded as pending first (one commit for the round), so
        // a crash mid-step leaves a note the next run resolves by asking the provider.
        let mut starting = Vec::new();
        while fatal.is_none() && !opts.interrupt.load(Ordering::SeqCst) {
            let Some(i) = ready.pop_front() else { break };
            launched[i] = true;
            let op = &ops[i];
            let change = &plan.changes[op.change];
            match prepare(change, op.step, &records, &addrs, &bound) {
                Ok(input) => {
                    let sem = provider_semaphore(change, &bound, &mut per_provider);
                    starting.push((i, input, sem));
                }
                Err(msg) => fail(
                    i,
                    msg,
                    &ops,
                    plan,
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
            let workspace = bound.workspace_name.clone();
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
        let mut changes = Vec::new();
        for joined in batch {
            let (i, result, elapsed) =
                joined.map_err(|e| EngineError::Internal(format!("apply task failed: {e}")))?;
            let address = plan.changes[ops[i].change].address.to_string();
            match result {
                Ok(r) => {
                    match &r {
                        StepResult::Put(rec) => changes.push(Change::Put((**rec).clone())),
                        StepResult::Delete(a) => changes.push(Change::Delete(a.to_string())),
                        StepResult::Nothing => {}
                    }
                    changes.push(Change::ClearPending(address));
                    done.push((i, r, elapsed));
                }
                Err(e) => {
                    // A timeout leaves the outcome unknown: keep the note for the next run. So
                    // does a failed delete of the server a create_before_destroy replace left
                    // behind: the record already names its successor, so the note is all that
                    // remembers the old one (the next run finishes the delete).
                    let old_left_behind = ops[i].step == Step::Destroy
                        && matches!(plan.changes[ops[i].change].address, Address::Server(_))
                        && matches!(
                            plan.changes[ops[i].change].action,
                            Action::Replace {
                                create_before_destroy: true,
                                ..
                            }
                        );
                    if e.kind != ErrorKind::Timeout && !old_left_behind {
                        changes.push(Change::ClearPending(address));
                    }
                    if continues_on_error(&plan.changes[ops[i].change]) {
                        let address = plan.changes[ops[i].change].address.clone();
                        let msg = format!("{e} (on_error = Continue: dependents still run)");
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
                        plan,
                        &dependents,
                        &mut skipped,
                        &mut report,
                        &events,
                    )
                }
            }
        }
        if !changes.is_empty() && fatal.is_none() {
            let n = changes
                .iter()
                .filter(|c| matches!(c, Change::Put(_) | Change::Delete(_)))
                .count();
            match commit(&store, changes).await {
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
            let address = plan.changes[ops[i].change].address.clone();
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
                StepResult::Nothing => {}
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
            let address = plan.changes[op.change].address.clone();
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

    // Outputs: resolved from the final records; ones that cannot be resolved are left out.
    let mut outputs = Map::new();
    if plan.mode == PlanMode::Normal {
        for (k, v) in &plan.outputs {
            let mut lookup = |rp: &RefPath| lookup_record(rp, &records, &addrs);
            if let Ok(s) = substitute(v, &mut lookup) {
                if s.is_fully_known() {
                    outputs.insert(k.clone(), s.value);
                }
            }
        }
    }
    let s = store.clone();
    let o = outputs.clone();
    report.serial = tokio::task::spawn_blocking(move || s.set_outputs(o))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    report.outputs = outputs;
    report.sensitive_outputs = plan.sensitive_outputs.clone();
    report.elapsed = started.elapsed();
    Ok(report)
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
        started_at: now(),
        run_id: run_id.to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn fail(
    i: usize,
    msg: String,
    ops: &[Op],
    plan: &Plan,
    dependents: &[Vec<usize>],
    skipped: &mut [bool],
    report: &mut ApplyReport,
    events: &EventSink,
) {
    let address = plan.changes[ops[i].change].address.clone();
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
        let a = plan.changes[ops[k].change].address.clone();
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
    crate::plan::make::record_attr(rec, &attr)
        .cloned()
        .map(Resolved::Known)
        .ok_or_else(|| format!("{target} has no attribute {:?}", attr.join(".")))
}

fn prepare(
    change: &ResourceChange,
    step: Step,
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
                crate::plan::diff::keep_ignored(
                    &mut v,
                    &p.attributes,
                    &change.lifecycle.ignore_changes,
                );
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
    ResourceRecord {
        address: c.address.to_string(),
        kind: c.address.kind().as_str().to_string(),
        implementation: c.implementation.clone(),
        provider_id,
        config: c.config.clone().unwrap_or(Value::Null),
        attributes,
        outputs,
        dependencies: c.depends_on.iter().map(|d| d.to_string()).collect(),
        updated_at: now(),
        sensitive_paths: c.sensitive.clone(),
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
    // A create_before_destroy replace destroys the old object, whose record was already overwritten.
    let old_id = || {
        c.provider_id
            .clone()
            .or_else(|| input.prior.as_ref().and_then(|p| p.provider_id.clone()))
    };
    let destroy_result = || {
        if matches!(
            c.action,
            Action::Replace {
                create_before_destroy: true,
                ..
            }
        ) {
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
            let outputs = json!({"id": info.id, "public_ip": info.public_ip, "private_ip": info.private_ip, "extra": info.extra});
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
            let outputs = json!({"id": info.id, "public_ip": info.public_ip, "private_ip": info.private_ip, "extra": info.extra});
            Ok(put(record(input, resolved, outputs, Some(info.id))))
        }
        (Address::Server(_), Step::Destroy) => {
            let p = bound.provider(&c.implementation)?;
            if let Some(id) = old_id() {
                already_gone_ok(p.delete_server(&id).await)?;
            }
            Ok(destroy_result())
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
                address: addr.to_string(),
                name: addr.name().to_string(),
                version: source
                    .get("version")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                settings: source.get("settings").cloned().unwrap_or(json!({})),
                server: input.server.clone().expect("prepared"),
                health_check: source.get("health_check").cloned(),
                output: Some(output_sink(addr, events)),
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
                    let replicas =
                        |v: &Value| v.pointer("/resources/replicas").and_then(Value::as_u64);
                    let version =
                        |v: &Value| v.get("version").and_then(Value::as_str).map(str::to_string);
                    let only = |k: &str| {
                        let (mut b, mut a) = (before.clone(), config.clone());
                        for v in [&mut b, &mut a] {
                            if let Some(o) = v.as_object_mut() {
                                o.remove(k);
                                if k == "resources" {
                                    o.remove("version");
                                }
                            }
                        }
                        b == a
                    };
                    if version(&before) != version(&config) && only("version") {
                        cl.upgrade(&req, &version(&config).unwrap_or_default())
                            .await?
                    } else if replicas(&before) != replicas(&config)
                        && only("resources")
                        && version(&before) == version(&config)
                    {
                        cl.scale(&req, replicas(&config).unwrap_or(1) as u32)
                            .await?
                    } else {
                        cl.deploy_component(&req).await?
                    }
                }
            };
            let outputs = serde_json::to_value(&status).unwrap_or(Value::Null);
            Ok(put(record(input, resolved, outputs, None)))
        }
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
