//! Apply: a tokio DAG walker that carries out a plan step by step and records each finished step in the state before its dependents start.

use crate::committer::{Committer, Written};
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
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// The plan was made by this process moments before, and nobody was waited for since (an
    /// approved-in-advance apply): when it searched for tagged servers, apply refuses from what
    /// that search found instead of asking the providers again — one provider round trip fewer
    /// before the first step. A saved plan, or one a person confirmed, is checked as of now.
    pub plan_just_made: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 10,
            interrupt: Arc::new(AtomicBool::new(false)),
            run_id: String::new(),
            lock_timeout: Duration::ZERO,
            ignore_tagged: false,
            plan_just_made: false,
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
    let extra = deposed_changes(plan);
    let steps = Steps::of(plan, &extra)?;
    let read = read_records(&store, plan, &steps).await?;
    let (meta, mut records) = (read.meta, read.records);
    protect(plan, &mut records, read.configless, &store, &events).await?;
    let mut walker = Walker::new(steps, records, &meta, bound, store.clone(), opts, events)?;
    walker.configless = read.configless;
    walker.walk().await?;
    let mut report = walker.finish().await?;
    let (serial, outputs) = write_outputs(plan, &store).await?;
    report.serial = serial;
    report.outputs = outputs;
    report.sensitive_outputs = plan.sensitive_outputs.clone();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The most records a walk reads one by one rather than decoding the whole state.
const POINT_READS: usize = 4096;

/// The records a walk starts from, as of `meta`.
struct ReadRecords {
    meta: prov_state::StateMeta,
    records: HashMap<Address, ResourceRecord>,
    /// The records were read without their `config`: no step reads a prior configuration,
    /// but a record written back as it is (a protection, a deposed object dropped) is read
    /// again whole first.
    configless: bool,
}

/// The state's meta and the records the walk reads (`record_readers`, and the plan's new
/// protections): read one by one when they are few (a small apply of a large state decoded
/// every record to keep a few: at 10,000 servers the 1 % apply's memory peak), else taken out
/// of one snapshot without configurations (one copy of the state, not two, and of its
/// attributes only: a destroy of 10,000 servers decoded 105 MB of records for 48 MB it
/// reads); a walk with clusters takes them all, whole (its rollback writes records back).
async fn read_records(
    store: &Arc<dyn StateStore>,
    plan: &Plan,
    steps: &Steps<'_>,
) -> Result<ReadRecords, EngineError> {
    let wanted: Option<Vec<Address>> = record_readers(steps).map(|readers| {
        let mut wanted: Vec<Address> = readers.into_keys().collect();
        wanted.extend(plan.protect.iter().cloned());
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    });
    let s = store.clone();
    tokio::task::spawn_blocking(move || read_wanted(&*s, wanted))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
}

/// `read_records`' reads: the `wanted` records one by one when they are few, else every
/// record of a snapshot (without configurations unless every record is wanted).
fn read_wanted(
    s: &dyn StateStore,
    wanted: Option<Vec<Address>>,
) -> Result<ReadRecords, EngineError> {
    let configless = match wanted {
        Some(wanted) if wanted.len() <= POINT_READS => {
            let meta = s.meta()?;
            let mut records = HashMap::with_capacity(wanted.len());
            for a in wanted {
                if let Some(r) = s.record(&a.to_string())? {
                    records.insert(a, r);
                }
            }
            return Ok(ReadRecords {
                meta,
                records,
                configless: false,
            });
        }
        Some(_) => true,
        None => false,
    };
    let snap = s.snapshot_with(prov_state::ReadOptions {
        without_configs: configless,
        ..Default::default()
    })?;
    let records = snap
        .resources
        .into_iter()
        .map(|(k, r)| Ok((crate::records::parse_address(&k)?, r)))
        .collect::<Result<_, EngineError>>()?;
    Ok(ReadRecords {
        meta: snap.meta,
        records,
        configless,
    })
}

/// A record whole, to write back (see [`ReadRecords::configless`]).
async fn whole_record(
    store: &Arc<dyn StateStore>,
    a: &Address,
) -> Result<Option<ResourceRecord>, EngineError> {
    let s = store.clone();
    let key = a.to_string();
    blocking(move || s.record(&key)).await
}

/// Protections first, in one commit: they guard against what follows.
async fn protect(
    plan: &Plan,
    records: &mut HashMap<Address, ResourceRecord>,
    configless: bool,
    store: &Arc<dyn StateStore>,
    events: &EventSink,
) -> Result<(), EngineError> {
    if plan.protect.is_empty() {
        return Ok(());
    }
    let mut writes = Vec::new();
    for a in &plan.protect {
        if let Some(r) = records.get_mut(a) {
            r.protected = true;
            // (Gone from the state meanwhile: not written back.)
            let whole = if configless {
                whole_record(store, a).await?
            } else {
                Some(r.clone())
            };
            if let Some(mut whole) = whole {
                whole.protected = true;
                writes.push(Change::Put(whole));
            }
        }
    }
    let n = writes.len();
    let serial = commit(store, writes).await?;
    events(Event::StateWritten { serial, records: n });
    Ok(())
}

/// Outputs: resolved from the records as they are when written (other applies may have
/// changed records meanwhile), in one atomic step; ones that cannot be resolved are left out.
async fn write_outputs(
    plan: &Plan,
    store: &Arc<dyn StateStore>,
) -> Result<(u64, Map<String, Value>), EngineError> {
    let declared = if plan.mode == PlanMode::Normal {
        plan.outputs.clone()
    } else {
        Map::new()
    };
    let s = store.clone();
    if declared.is_empty() {
        // Nothing to resolve: the outputs are cleared without reading the state (a full
        // snapshot at the end of the walk was the peak of a large apply's memory).
        return tokio::task::spawn_blocking(move || s.set_outputs(Map::new()))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map(|serial| (serial, Map::new()))
            .map_err(EngineError::from);
    }
    let planned: Vec<Address> = plan.changes.iter().map(|c| c.address.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let mut written = Map::new();
        let serial = s.update_outputs(&mut |snap| {
            written = resolve_outputs(&declared, snap, &planned);
            written.clone()
        })?;
        Ok::<_, prov_state::StateError>((serial, written))
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))?
    .map_err(EngineError::from)
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
/// index `planned` on). Returns the steps and, per step, the steps that wait for it.
fn build_ops(
    changes: &[&ResourceChange],
    planned: usize,
) -> Result<(Vec<Op>, Vec<Vec<usize>>), EngineError> {
    let mut g = StepGraph::default();
    for (i, &c) in changes.iter().enumerate() {
        g.add_steps(i, c, i >= planned);
    }
    let plan_changes = &changes[..planned];
    g.index(plan_changes);
    for &c in plan_changes {
        g.order_change(c);
    }
    g.order_deposed();
    for d in g.deps.iter_mut() {
        d.sort_unstable();
        d.dedup();
    }
    let dependents = g.dependents(changes)?;
    Ok((g.ops, dependents))
}

/// The walk's steps while they are being ordered.
#[derive(Default)]
struct StepGraph<'c> {
    ops: Vec<Op>,
    /// Per step, the steps it waits for.
    deps: Vec<Vec<usize>>,
    /// Each address's create or update step.
    forward: HashMap<&'c Address, usize>,
    /// Each address's destroy step (of its current object).
    destroy: HashMap<&'c Address, usize>,
    /// Each address's destroys of deposed objects, in the plan's order.
    deposed: HashMap<&'c Address, Vec<usize>>,
    /// The addresses the plan deletes.
    deleted: HashSet<&'c Address>,
    /// Per address, the planned changes that depend on it (so ordering stays linear in the
    /// plan's size: a scan of the plan per change made destroying 100,000 servers quadratic).
    depended_on_by: HashMap<&'c Address, Vec<&'c Address>>,
}

impl<'c> StepGraph<'c> {
    fn push(&mut self, change: usize, step: Step) -> usize {
        self.ops.push(Op { change, step });
        self.deps.push(Vec::new());
        self.ops.len() - 1
    }

    /// The steps of change `i`: one per action, two for a replace (ordered one way or the
    /// other), a destroy for a deposed object.
    fn add_steps(&mut self, i: usize, c: &'c ResourceChange, deposed: bool) {
        if deposed {
            let d = self.push(i, Step::Destroy);
            self.deposed.entry(&c.address).or_default().push(d);
            return;
        }
        match &c.action {
            Action::NoOp => {}
            Action::Create => {
                let f = self.push(i, Step::Create);
                self.forward.insert(&c.address, f);
            }
            Action::Update => {
                let f = self.push(i, Step::Update);
                self.forward.insert(&c.address, f);
            }
            Action::Delete { .. } => {
                let d = self.push(i, Step::Destroy);
                self.destroy.insert(&c.address, d);
            }
            Action::Replace {
                create_before_destroy,
                ..
            } => {
                let d = self.push(i, Step::Destroy);
                let f = self.push(i, Step::Create);
                if *create_before_destroy {
                    self.deps[d].push(f);
                } else {
                    self.deps[f].push(d);
                }
                self.destroy.insert(&c.address, d);
                self.forward.insert(&c.address, f);
            }
        }
    }

    /// Indexes the plan's changes for the ordering: deletions, and who depends on whom.
    fn index(&mut self, plan_changes: &[&'c ResourceChange]) {
        for &o in plan_changes {
            if matches!(o.action, Action::Delete { .. }) {
                self.deleted.insert(&o.address);
            }
            for d in &o.depends_on {
                self.depended_on_by.entry(d).or_default().push(&o.address);
            }
        }
    }

    /// What `c`'s steps wait for, and what waits for them, among the plan's changes.
    fn order_change(&mut self, c: &'c ResourceChange) {
        if let Some(&f) = self.forward.get(&c.address) {
            for d in &c.depends_on {
                if let Some(&df) = self.forward.get(d) {
                    self.deps[f].push(df);
                }
            }
        }
        // Whatever was built on X is torn down (or moved off it) before X is destroyed.
        for x in &c.prior_dependencies {
            if let Some(&dx) = self.destroy.get(x) {
                if let Some(&dc) = self.destroy.get(&c.address) {
                    self.deps[dx].push(dc);
                }
                if self.deleted.contains(x) {
                    if let Some(&fc) = self.forward.get(&c.address) {
                        self.deps[dx].push(fc);
                    }
                }
            }
        }
        // The old object of a create_before_destroy replace goes once its dependents have
        // moved to the new one.
        if let Action::Replace {
            create_before_destroy: true,
            ..
        } = c.action
        {
            let dx = self.destroy[&c.address];
            self.wait_for_dependents(dx, &c.address);
        }
    }

    /// Step `step` waits for the create or update of every planned change that depends on `x`.
    fn wait_for_dependents(&mut self, step: usize, x: &Address) {
        for o in self.depended_on_by.get(x).into_iter().flatten() {
            if let Some(&fo) = self.forward.get(o) {
                self.deps[step].push(fo);
            }
        }
    }

    /// A deposed object goes once its address has its new object and whatever refers to the
    /// address has moved to it, like the old object of a create_before_destroy replace (which
    /// then goes after it). When the address itself is destroyed first (a delete, or a replace
    /// that destroys before it creates), the deposed objects go before that destroy, which
    /// removes the record that remembers them. Steps at one address run one at a time: each
    /// records its pending note under the address.
    fn order_deposed(&mut self) {
        let deposed = std::mem::take(&mut self.deposed);
        for (x, ds) in &deposed {
            let destroyed_first = self.destroy.get(x).filter(|&&dx| {
                !self
                    .forward
                    .get(x)
                    .is_some_and(|f| self.deps[dx].contains(f))
            });
            let destroyed_first = destroyed_first.is_some();
            for (k, &d) in ds.iter().enumerate() {
                if k > 0 {
                    self.deps[d].push(ds[k - 1]);
                }
                if destroyed_first {
                    continue;
                }
                if let Some(&f) = self.forward.get(x) {
                    self.deps[d].push(f);
                }
                self.wait_for_dependents(d, x);
            }
            let last = *ds.last().expect("at least one");
            if let Some(&dx) = self.destroy.get(x) {
                self.deps[dx].push(last);
            }
        }
        self.deposed = deposed;
    }

    /// Per step, the steps that wait for it. Kahn's algorithm: an order must exist, or the
    /// plan is contradictory.
    fn dependents(&self, changes: &[&ResourceChange]) -> Result<Vec<Vec<usize>>, EngineError> {
        let n = self.ops.len();
        let mut indeg: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let mut rev: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, d) in self.deps.iter().enumerate() {
            for &j in d {
                rev[j].push(i);
            }
        }
        let mut q: VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
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
        if seen == n {
            return Ok(rev);
        }
        let stuck: Vec<String> = (0..n)
            .filter(|&i| indeg[i] > 0)
            .map(|i| {
                let op = &self.ops[i];
                format!("{} {}", op.step.verb(), changes[op.change].address)
            })
            .collect();
        Err(EngineError::Invalid(vec![Diagnostic::new(
            None,
            None,
            format!(
                "the plan's steps cannot be ordered (they wait on each other): {}",
                stuck.join(", ")
            ),
        )]))
    }
}

/// The walk's fixed part: its steps in the order `build_ops` numbered them, and who waits on
/// whom.
struct Steps<'p> {
    /// The plan's changes, then one per deposed object (from index `planned` on).
    changes: Vec<&'p ResourceChange>,
    planned: usize,
    ops: Vec<Op>,
    /// Per step, the steps that wait for it.
    dependents: Vec<Vec<usize>>,
}

impl<'p> Steps<'p> {
    fn of(plan: &'p Plan, deposed: &'p [ResourceChange]) -> Result<Steps<'p>, EngineError> {
        let changes: Vec<&ResourceChange> = plan.changes.iter().chain(deposed).collect();
        let planned = plan.changes.len();
        let (ops, dependents) = build_ops(&changes, planned)?;
        Ok(Steps {
            changes,
            planned,
            ops,
            dependents,
        })
    }

    fn change(&self, i: usize) -> &'p ResourceChange {
        self.changes[self.ops[i].change]
    }

    fn address(&self, i: usize) -> &'p Address {
        &self.change(i).address
    }

    fn step(&self, i: usize) -> Step {
        self.ops[i].step
    }

    /// Step `i` destroys a deposed object, not its address's current one.
    fn is_deposed(&self, i: usize) -> bool {
        self.ops[i].change >= self.planned
    }
}

/// A step about to be spawned: its index, its input and its provider's limit.
struct Starting {
    i: usize,
    input: StepInput,
    /// The slots it runs in: one of `parallelism`, and one of its provider's limit (servers).
    permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
}

/// What a spawned step hands back: its index, its outcome, how long it ran.
type Finished = (usize, Result<StepResult, ExtError>, Duration);

/// A round handed to the committer: the steps it records as done (reported once it is
/// written) and the steps it notes as pending (started once it is written).
struct Round {
    ticket: u64,
    done: Vec<(usize, Duration)>,
    starting: Vec<Starting>,
    /// How many records it writes (for `Event::StateWritten`).
    records: usize,
}

/// What the walk waits for next.
enum Next {
    Written(Written),
    Finished(Option<Result<Finished, tokio::task::JoinError>>),
}

/// The scheduling state of one apply: which steps wait, which run, what finished, and the
/// records as the walk has written them. It alone writes the state and emits step events;
/// spawned steps only call extensions and hand back what to record.
struct Walker<'p> {
    steps: Steps<'p>,
    bound: Arc<Bound>,
    store: Arc<dyn StateStore>,
    opts: &'p ApplyOptions,
    events: EventSink,
    /// What created servers are tagged with (the state's identity, see `ownership`).
    owner_id: String,
    /// The records as of the last commit that a step not yet over may still read (the
    /// coordinator owns them; steps get copies).
    records: HashMap<Address, ResourceRecord>,
    /// Per address, how many steps not yet over read its record (`reads`); a record nobody
    /// reads any more is dropped. None: every record is kept (a walk with clusters, whose
    /// requests and rollback look records up beyond `reads`).
    readers: Option<HashMap<Address, usize>>,
    /// The records were read without their `config` (see [`ReadRecords::configless`]): one is
    /// read again whole before it is written back. (The state holds each record as the walk
    /// holds it, so this is right for the records the walk wrote too.)
    configless: bool,
    /// Every address a reference may name: recorded or planned.
    addrs: BTreeSet<Address>,
    /// Each cluster's `on_error` among the changes.
    cluster_errors: HashMap<crate::model::Name, String>,
    global: Arc<Semaphore>,
    per_provider: HashMap<String, Arc<Semaphore>>,
    /// Per step, how many of the steps it waits for have not finished.
    waiting: Vec<usize>,
    ready: VecDeque<usize>,
    launched: Vec<bool>,
    skipped: Vec<bool>,
    running: JoinSet<Finished>,
    /// Writes the rounds (the walk's only writer while it runs).
    committer: Committer,
    /// Rounds handed to the committer and not yet written, in order.
    rounds: VecDeque<Round>,
    report: ApplyReport,
    /// A state write failed: nothing more starts, and the apply returns this error.
    fatal: Option<EngineError>,
}

impl<'p> Walker<'p> {
    fn new(
        steps: Steps<'p>,
        records: HashMap<Address, ResourceRecord>,
        meta: &prov_state::StateMeta,
        bound: Arc<Bound>,
        store: Arc<dyn StateStore>,
        opts: &'p ApplyOptions,
        events: EventSink,
    ) -> Result<Walker<'p>, EngineError> {
        let n = steps.ops.len();
        let mut waiting: Vec<usize> = vec![0; n];
        for d in &steps.dependents {
            for &k in d {
                waiting[k] += 1;
            }
        }
        let mut addrs: BTreeSet<Address> = records.keys().cloned().collect();
        addrs.extend(
            steps.changes[..steps.planned]
                .iter()
                .map(|c| c.address.clone()),
        );
        let cluster_errors = cluster_on_error(&steps.changes, &records);
        let readers = record_readers(&steps);
        let mut records = records;
        if let Some(readers) = &readers {
            // Records no step reads (the unchanged resources nothing planned refers to) are
            // not held through the walk: most of the state in a small apply of a large one.
            records.retain(|a, _| readers.contains_key(a));
        }
        Ok(Walker {
            owner_id: crate::ownership::Identity::of(meta, &bound).id,
            cluster_errors,
            readers,
            configless: false,
            ready: (0..n).filter(|&i| waiting[i] == 0).collect(),
            waiting,
            launched: vec![false; n],
            skipped: vec![false; n],
            global: Arc::new(Semaphore::new(opts.parallelism.max(1))),
            per_provider: HashMap::new(),
            running: JoinSet::new(),
            committer: Committer::start(store.clone())?,
            rounds: VecDeque::new(),
            report: ApplyReport {
                serial: meta.serial,
                ..Default::default()
            },
            fatal: None,
            steps,
            records,
            addrs,
            bound,
            store,
            opts,
            events,
        })
    }

    /// Runs every step it may: the first round notes what is ready as pending and starts it;
    /// each later round records the steps that finished and notes the steps they released in
    /// the same commit, then starts those once it is written. While rounds are being written
    /// the walk goes on recording the steps that finish meanwhile (a round's completion comes
    /// first: it starts steps). Err only when a step's task itself failed (a panic).
    async fn walk(&mut self) -> Result<(), EngineError> {
        (self.events)(Event::ApplyStarted {
            steps: self.steps.ops.len(),
        });
        for i in 0..self.steps.ops.len() {
            (self.events)(Event::Waiting {
                address: self.steps.address(i).clone(),
                step: self.steps.step(i),
            });
        }
        let first = self.take_ready();
        self.submit(Vec::new(), Vec::new(), first);
        while !(self.rounds.is_empty() && self.running.is_empty()) {
            let next = tokio::select! {
                biased;
                w = self.committer.next(), if !self.rounds.is_empty() => Next::Written(w),
                j = self.running.join_next(), if !self.running.is_empty() => Next::Finished(j),
                else => Next::Finished(None),
            };
            match next {
                Next::Written(w) => self.written(w),
                Next::Finished(Some(first)) => {
                    let mut batch = vec![first];
                    while let Some(more) = self.running.try_join_next() {
                        batch.push(more);
                    }
                    self.record_batch(batch).await?;
                }
                Next::Finished(None) => {}
            }
        }
        self.report_unstarted();
        (self.events)(Event::ApplyFinished {
            succeeded: self.report.succeeded.len(),
            failed: self.report.failed.len(),
            skipped: self.report.skipped.len(),
        });
        Ok(())
    }

    /// The report once the walk is over: a failed state write is the apply's error; else
    /// clusters with `on_error = 'rollback` are rolled back.
    async fn finish(mut self) -> Result<ApplyReport, EngineError> {
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        self.rollback().await?;
        Ok(self.report)
    }

    /// Takes the ready steps there are free slots for, in the order they became ready, and
    /// prepares them (references resolved from the records now), unless the walk is stopping:
    /// a failed state write or an interrupt. A step whose provider is at its own limit waits
    /// in place while later steps of other providers start. A step whose input cannot be
    /// prepared fails here. Taking slots here, not in the spawned tasks, keeps the start order
    /// the plan's (with `parallelism` 1, exactly it) and notes pending only what starts.
    fn take_ready(&mut self) -> Vec<Starting> {
        let mut starting = Vec::new();
        let mut waiting = Vec::new();
        while self.fatal.is_none() && !self.opts.interrupt.load(Ordering::SeqCst) {
            let Some(i) = self.ready.pop_front() else {
                break;
            };
            let change = self.steps.change(i);
            let provider = provider_semaphore(change, &self.bound, &mut self.per_provider);
            let provider = match provider.map(Semaphore::try_acquire_owned) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(_)) => {
                    waiting.push(i);
                    continue;
                }
            };
            let Ok(global) = self.global.clone().try_acquire_owned() else {
                self.ready.push_front(i);
                break;
            };
            self.launched[i] = true;
            let (step, deposed) = (self.steps.step(i), self.steps.is_deposed(i));
            match prepare(
                change,
                step,
                deposed,
                &self.records,
                &self.addrs,
                &self.bound,
            ) {
                Ok(input) => starting.push(Starting {
                    i,
                    input,
                    permits: (global, provider),
                }),
                Err(msg) => {
                    self.fail(i, msg);
                    self.done_reading(i);
                }
            }
        }
        // Those held back by their provider's limit go first next round, in their order.
        for i in waiting.into_iter().rev() {
            self.ready.push_front(i);
        }
        starting
    }

    /// The pending notes of the steps about to start.
    fn notes(&self, starting: &[Starting]) -> Vec<Change> {
        starting
            .iter()
            .map(|s| Change::PutPending(pending_note(&s.input, &self.opts.run_id)))
            .collect()
    }

    /// Steps taken to start whose notes could not be written: they never start (reported as
    /// not started).
    fn not_started(&mut self, starting: &[Starting]) {
        for s in starting {
            self.launched[s.i] = false;
        }
    }

    /// Runs a step in a task of its own, holding its slots until it is done.
    fn spawn(&mut self, s: Starting) {
        let bound = self.bound.clone();
        let events = self.events.clone();
        let workspace = self.owner_id.clone();
        self.running.spawn(async move {
            let _slots = s.permits;
            events(Event::Running {
                address: s.input.change.address.clone(),
                step: s.input.step,
            });
            let t = Instant::now();
            let r = s.input.run(&bound, &workspace, &events).await;
            (s.i, r, t.elapsed())
        });
    }

    /// Records a batch of finished steps: failures as they come; the successes' records go
    /// into the walk's records, which releases their dependents; the ready steps are taken
    /// (their references resolved from those records); then one round writes the successes'
    /// records, the cleared notes and the pending notes of the steps about to start. Only once
    /// it is written are the successes reported and the next steps started ([`Self::written`]):
    /// every finished step is in the state before its dependents start, and every step's note
    /// before it starts — with one commit per round on the critical path, not two.
    async fn record_batch(
        &mut self,
        batch: Vec<Result<Finished, tokio::task::JoinError>>,
    ) -> Result<(), EngineError> {
        let mut done = Vec::new();
        let mut continued = Vec::new();
        let mut writes = Vec::new();
        for joined in batch {
            let (i, result, elapsed) =
                joined.map_err(|e| EngineError::Internal(format!("apply task failed: {e}")))?;
            let address = self.steps.address(i).to_string();
            match result {
                Ok(r) => {
                    let r = match self.drop_deposed(r).await {
                        Ok(r) => r,
                        Err(e) => {
                            // Its record could not be read to write back: as a failed write.
                            self.fatal.get_or_insert(e);
                            StepResult::Nothing
                        }
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
                    if !self.keeps_note(i, &e) {
                        writes.push(Change::ClearPending(address));
                    }
                    match self.continuing_failure(i, &e) {
                        Some(msg) => {
                            self.record_failure(
                                self.steps.address(i).clone(),
                                self.steps.step(i),
                                msg,
                            );
                            continued.push(i);
                        }
                        None => self.fail(i, e.to_string()),
                    }
                    self.done_reading(i);
                }
            }
        }
        if self.fatal.is_some() {
            // An earlier write failed: nothing more is written, and nothing more starts.
            for (i, _, _) in done {
                self.not_written(i);
            }
            return Ok(());
        }
        for i in continued {
            self.release(i);
        }
        let done: Vec<(usize, Duration)> = done
            .into_iter()
            .map(|(i, r, elapsed)| {
                self.keep(i, r);
                (i, elapsed)
            })
            .collect();
        let starting = self.take_ready();
        self.submit(writes, done, starting);
        Ok(())
    }

    /// Hands a round to the committer. (Every step is noted as pending in the state before it
    /// starts, so a crash mid-step leaves a note the next run resolves by asking the provider.)
    fn submit(
        &mut self,
        mut writes: Vec<Change>,
        done: Vec<(usize, Duration)>,
        starting: Vec<Starting>,
    ) {
        writes.extend(self.notes(&starting));
        // A done step clears its note and a starting one writes one: no writes, no round.
        if writes.is_empty() {
            return;
        }
        let records = writes
            .iter()
            .filter(|c| matches!(c, Change::Put(_) | Change::Delete(_)))
            .count();
        let round = |ticket| Round {
            ticket,
            done,
            starting,
            records,
        };
        if self.fatal.is_some() {
            return self.round_over(round(0), Some(None));
        }
        let ticket = self.committer.submit(writes);
        self.rounds.push_back(round(ticket));
    }

    /// Rounds the committer wrote (or failed to write), in the order they were handed over.
    fn written(&mut self, w: Written) {
        let mut rounds = Vec::with_capacity(w.tickets.len());
        for t in &w.tickets {
            let r = self.rounds.pop_front();
            debug_assert_eq!(r.as_ref().map(|r| r.ticket), Some(*t));
            rounds.extend(r);
        }
        match w.outcome {
            Ok(serial) => {
                self.report.serial = serial;
                let records = rounds.iter().map(|r| r.records).sum();
                (self.events)(Event::StateWritten { serial, records });
                for r in rounds {
                    self.round_over(r, None);
                }
            }
            Err(e) => {
                let mut e = Some(e);
                for r in rounds {
                    self.round_over(r, e.take().or(Some(None)));
                }
            }
        }
    }

    /// A round is over: written (`None`), or not (`Some(e)`: the write failed, `Some(None)`
    /// when an earlier one did). Written: its steps are done and the steps it noted start —
    /// unless a write has failed since, which starts nothing more. Not written: its steps are
    /// failures and the steps it noted never start.
    fn round_over(&mut self, r: Round, failed: Option<Option<EngineError>>) {
        match failed {
            None => {
                for (i, elapsed) in r.done {
                    self.succeeded(i, elapsed);
                }
                if self.fatal.is_some() {
                    self.not_started(&r.starting);
                } else {
                    for s in r.starting {
                        self.spawn(s);
                    }
                }
            }
            Some(e) => {
                if let Some(e) = e {
                    self.fatal.get_or_insert(e);
                }
                for (i, _) in r.done {
                    self.not_written(i);
                }
                self.not_started(&r.starting);
            }
        }
    }

    /// A deposed object is gone: its record forgets it (the coordinator owns the records, and
    /// no other step at this address runs meanwhile).
    async fn drop_deposed(&self, r: StepResult) -> Result<StepResult, EngineError> {
        let StepResult::DropDeposed(a, id) = r else {
            return Ok(r);
        };
        let rec = if self.configless {
            whole_record(&self.store, &a).await?
        } else {
            self.records.get(&a).cloned()
        };
        Ok(match rec {
            Some(mut rec) => {
                rec.deposed.retain(|d| d.provider_id != id);
                put(rec)
            }
            None => StepResult::Nothing,
        })
    }

    /// A failed step whose pending note stays for the next run. A timeout leaves the outcome
    /// unknown. A failed server create may have left a server behind (created, then its wait
    /// failed): the note makes the next run look for it by its ownership tags and record it,
    /// so destroy can remove it. (The old object of a create_before_destroy replace whose
    /// delete failed needs no note: its record keeps it as deposed, and the next plan
    /// destroys it.)
    fn keeps_note(&self, i: usize, e: &ExtError) -> bool {
        let create_left_behind = self.steps.step(i) == Step::Create
            && matches!(self.steps.address(i), Address::Server(_))
            && e.kind != ErrorKind::Invalid;
        e.kind == ErrorKind::Timeout || create_left_behind
    }

    /// The message of a failure whose dependents still run: a taskserv's `on_error =
    /// 'Continue`, a component of a cluster with `on_error = 'continue`. None for the others.
    fn continuing_failure(&self, i: usize, e: &ExtError) -> Option<String> {
        let change = self.steps.change(i);
        let component_continues = matches!(&change.address,
            Address::Component(c, _) if self.cluster_errors.get(c).map(String::as_str) == Some("continue"));
        if component_continues {
            Some(format!(
                "{e} (its cluster's on_error = 'continue: dependents still run)"
            ))
        } else if continues_on_error(change) {
            Some(format!("{e} (on_error = Continue: dependents still run)"))
        } else {
            None
        }
    }

    /// A step that finished: its record is the walk's, and its dependents may start (once
    /// the commit recording it is written: see `record_batch`).
    fn keep(&mut self, i: usize, r: StepResult) {
        match r {
            StepResult::Put(rec) => {
                self.records.insert(self.steps.address(i).clone(), *rec);
            }
            StepResult::Delete(a) => {
                self.records.remove(&a);
            }
            StepResult::Nothing | StepResult::DropDeposed(..) => {}
        }
        self.done_reading(i);
        self.release(i);
    }

    /// A step that finished, once the commit recording it is written.
    fn succeeded(&mut self, i: usize, elapsed: Duration) {
        let (address, step) = (self.steps.address(i).clone(), self.steps.step(i));
        self.report.succeeded.push((address.clone(), step));
        (self.events)(Event::Succeeded {
            address,
            step,
            elapsed,
        });
    }

    /// A step that finished when the commit that was to record it failed: a failure, and its
    /// dependents never start (they are reported as not started).
    fn not_written(&mut self, i: usize) {
        let (address, step) = (self.steps.address(i).clone(), self.steps.step(i));
        let msg = "finished, but the state could not be written".to_string();
        self.record_failure(address, step, msg);
    }

    /// Step `i` is over: the records it read are dropped once no other step will read them.
    /// (A step skipped or never started keeps what it would have read: held to the end.)
    fn done_reading(&mut self, i: usize) {
        let Some(readers) = &mut self.readers else {
            return;
        };
        for a in reads(&self.steps, i) {
            if let Some(n) = readers.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    readers.remove(&a);
                    self.records.remove(&a);
                }
            }
        }
    }

    /// Step `i` is over (done, or failed with dependents that still run): the steps that
    /// waited only for it become ready, unless a failure skipped them.
    fn release(&mut self, i: usize) {
        for &k in &self.steps.dependents[i] {
            self.waiting[k] -= 1;
            if self.waiting[k] == 0 && !self.skipped[k] {
                self.ready.push_back(k);
            }
        }
    }

    /// The one place a failure is reported: in the report and as an event.
    fn record_failure(&mut self, address: Address, step: Step, msg: String) {
        self.report
            .failed
            .push((address.clone(), step, msg.clone()));
        (self.events)(Event::Failed {
            address,
            step,
            error: msg,
        });
    }

    /// Step `i` failed: reported, and everything that depends on it (directly or not) is
    /// skipped and never runs.
    fn fail(&mut self, i: usize, msg: String) {
        let address = self.steps.address(i).clone();
        self.record_failure(address.clone(), self.steps.step(i), msg);
        let mut stack: Vec<usize> = self.steps.dependents[i].clone();
        while let Some(k) = stack.pop() {
            if self.skipped[k] {
                continue;
            }
            self.skipped[k] = true;
            let (a, step) = (self.steps.address(k).clone(), self.steps.step(k));
            self.report.skipped.push((a.clone(), step, address.clone()));
            (self.events)(Event::Skipped {
                address: a,
                step,
                because: address.clone(),
            });
            stack.extend(self.steps.dependents[k].iter().copied());
        }
    }

    /// Interrupted: whatever never started is reported, and stays planned for the next run.
    fn report_unstarted(&mut self) {
        for i in 0..self.steps.ops.len() {
            if !self.launched[i] && !self.skipped[i] {
                let (address, step) = (self.steps.address(i).clone(), self.steps.step(i));
                self.report.interrupted.push((address.clone(), step));
                (self.events)(Event::Interrupted { address, step });
            }
        }
    }

    /// `on_error = 'rollback` on a cluster (the seed's rollback-cluster-deployment): when one
    /// of its steps failed, the components this apply deployed for it are removed again,
    /// latest first, and their records dropped, each removal committed as it finishes.
    async fn rollback(&mut self) -> Result<(), EngineError> {
        let failed: BTreeSet<crate::model::Name> = self
            .report
            .failed
            .iter()
            .filter_map(|(a, ..)| match a {
                Address::Component(c, _) | Address::Cluster(c) => Some(c.clone()),
                _ => None,
            })
            .filter(|c| self.cluster_errors.get(c).map(String::as_str) == Some("rollback"))
            .collect();
        for cluster in failed {
            self.rollback_cluster(cluster).await?;
        }
        Ok(())
    }

    /// Removes the components this apply created for `cluster`, latest first.
    async fn rollback_cluster(&mut self, cluster: crate::model::Name) -> Result<(), EngineError> {
        let created: Vec<Address> = self
            .report
            .succeeded
            .iter()
            .rev()
            .filter(|(a, s)| {
                *s == Step::Create && matches!(a, Address::Component(c, _) if *c == cluster)
            })
            .map(|(a, _)| a.clone())
            .collect();
        let caddr = Address::Cluster(cluster);
        let Some(crec) = self.records.get(&caddr) else {
            return Ok(());
        };
        if created.is_empty() {
            return Ok(());
        }
        let cl = self.bound.cluster(&crec.implementation)?;
        let req = cluster_request(
            &caddr,
            &crec.attributes,
            |a| self.records.get(a),
            &self.bound,
        )
        .map_err(|m| EngineError::Internal(format!("{caddr}: rollback: {m}")))?;
        let mut removed = Vec::new();
        for a in created {
            let Some(rec) = self.records.get(&a) else {
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
                    let serial = commit(&self.store, vec![Change::Delete(a.to_string())]).await?;
                    self.report.serial = serial;
                    (self.events)(Event::StateWritten { serial, records: 1 });
                    self.records.remove(&a);
                    removed.push(a);
                }
                Err(e) => self.record_failure(a, Step::Destroy, format!("rollback: {e}")),
            }
        }
        let names: Vec<String> = removed.iter().map(Address::to_string).collect();
        (self.events)(Event::Output {
            address: caddr.clone(),
            line: format!(
                "rolled back (on_error = 'rollback): removed {}",
                names.join(", ")
            ),
        });
        self.report.rolled_back.push((caddr, removed));
        Ok(())
    }
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

/// The records step `i` may read: its own address's (the prior record), its parent's (a
/// taskserv's server), and those its configuration refers to (every reference is a desired
/// dependency, `load::resolve_references`). A destroy of what the configuration no longer
/// declares reads no record of its own: its plan entry holds what it needs (the object's id
/// and attributes), and a destroy of 10,000 servers held a second copy of all of them.
fn reads<'p>(steps: &Steps<'p>, i: usize) -> impl Iterator<Item = Address> + 'p {
    let c = steps.change(i);
    let planned_delete =
        matches!(c.action, Action::Delete { .. }) && !steps.is_deposed(i) && c.before.is_some();
    (!planned_delete)
        .then(|| c.address.clone())
        .into_iter()
        .chain(c.address.parent())
        .chain(c.depends_on.iter().cloned())
}

/// Per address, how many of the walk's steps read its record (`reads`); None when the walk has
/// a cluster or component step: cluster requests and rollback look up records `reads` does not
/// name, so such a walk keeps every record.
fn record_readers(steps: &Steps<'_>) -> Option<HashMap<Address, usize>> {
    let mut readers: HashMap<Address, usize> = HashMap::new();
    for i in 0..steps.ops.len() {
        let c = steps.change(i);
        if matches!(c.address, Address::Cluster(_) | Address::Component(..)) {
            return None;
        }
        for a in reads(steps, i) {
            *readers.entry(a).or_default() += 1;
        }
    }
    Some(readers)
}

/// A commit outside the walk's rounds (protections before it, a cluster's rollback after it),
/// on the caller's thread where the runtime allows it (multi-threaded: the CLI's `block_on`),
/// else on a blocking task. The walk's rounds go through [`Committer`].
async fn commit(store: &Arc<dyn StateStore>, changes: Vec<Change>) -> Result<u64, EngineError> {
    let s = store.clone();
    blocking(move || s.commit(&changes)).await
}

/// Runs a state operation where [`commit`] says.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, prov_state::StateError> + Send + 'static,
) -> Result<T, EngineError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(f).map_err(EngineError::State);
    }
    tokio::task::spawn_blocking(f)
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

/// The part of a plan entry a step carries out: what the plan only shows (its desired and
/// unknown values, computed values, references, defaults, where it was declared) stays behind
/// — for a create that is its configuration twice over again, most of what copying the whole
/// entry for every step copied. (The diffs stay: an update reads them, `starts_stopped`.)
fn for_step(c: &ResourceChange) -> ResourceChange {
    ResourceChange {
        address: c.address.clone(),
        implementation: c.implementation.clone(),
        action: c.action.clone(),
        before: c.before.clone(),
        after: None,
        after_unknown: Value::Null,
        config: c.config.clone(),
        diffs: c.diffs.clone(),
        depends_on: c.depends_on.clone(),
        prior_dependencies: c.prior_dependencies.clone(),
        provider_id: c.provider_id.clone(),
        lifecycle: c.lifecycle.clone(),
        declared_at: None,
        sensitive: c.sensitive.clone(),
        defaults: Vec::new(),
        computed: None,
        references: Vec::new(),
    }
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
    let lookup = |a: &Address| records.get(a);
    let server = match &change.address {
        Address::Taskserv(..) => {
            let s = change.address.parent().expect("taskserv has a server");
            Some(server_target(&s, records.get(&s), bound)?)
        }
        _ => None,
    };
    let cluster = match &change.address {
        Address::Cluster(_) => {
            let placement = resolved
                .as_ref()
                .or(prior.as_ref().map(|p| &p.attributes))
                .unwrap_or(&Value::Null);
            Some(cluster_request(&change.address, placement, lookup, bound)?)
        }
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
        change: for_step(change),
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
        config: c.config.as_deref().cloned().unwrap_or(Value::Null),
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
            .and_then(|x| x.config.as_deref().or(x.after.as_ref()))
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

/// A step's work, one function per resource kind. Runs in a task of its own: it calls the
/// extension and hands back what to record; the walker writes it.
impl StepInput {
    async fn run(
        &self,
        bound: &Bound,
        workspace: &str,
        events: &EventSink,
    ) -> Result<StepResult, ExtError> {
        match (&self.change.address, self.step) {
            (Address::Server(_), Step::Create) => self.create_server(bound, workspace).await,
            (Address::Server(_), Step::Update) => self.update_server(bound).await,
            (Address::Server(_), Step::Destroy) => self.destroy_server(bound).await,
            (Address::Taskserv(..), _) => self.taskserv(bound, events).await,
            (Address::Cluster(_), _) => self.cluster(bound).await,
            (Address::Component(..), _) => self.component(bound).await,
        }
    }

    /// The configuration with its references resolved (none for a destroy).
    fn resolved(&self) -> Value {
        self.resolved.clone().unwrap_or(Value::Null)
    }

    /// The attributes before the step: the plan's `before` (the refreshed view when the plan
    /// refreshed), else the record's.
    fn before(&self) -> Value {
        self.change
            .before
            .clone()
            .or_else(|| self.prior.as_ref().map(|p| p.attributes.clone()))
            .unwrap_or(Value::Null)
    }

    /// A create_before_destroy replace: its destroy removes the old object, whose record the
    /// create already overwrote (the old object is deposed there).
    fn creates_first(&self) -> bool {
        matches!(
            self.change.action,
            Action::Replace {
                create_before_destroy: true,
                ..
            }
        )
    }

    /// What a destroy leaves to record: no record, unless the create came first.
    fn destroyed(&self) -> StepResult {
        if self.creates_first() {
            StepResult::Nothing
        } else {
            StepResult::Delete(self.change.address.clone())
        }
    }

    async fn create_server(&self, bound: &Bound, workspace: &str) -> Result<StepResult, ExtError> {
        let (c, addr) = (&self.change, &self.change.address);
        let p = bound.provider(&c.implementation)?;
        let owner = Ownership {
            workspace: workspace.to_string(),
            address: addr.to_string(),
        };
        let resolved = self.resolved();
        let info = p.create_server(&spec(&resolved, addr)?, &owner).await?;
        let outputs = crate::records::server_outputs(&info);
        Ok(put(record(self, resolved, outputs, Some(info.id))))
    }

    /// Starts the server if it was stopped outside prov, configures its firewall when the
    /// rules change, and updates the rest when anything else does.
    async fn update_server(&self, bound: &Bound) -> Result<StepResult, ExtError> {
        let (c, addr) = (&self.change, &self.change.address);
        let p = bound.provider(&c.implementation)?;
        let prior = self.prior.as_ref().ok_or_else(|| {
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
        let resolved = self.resolved();
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
        Ok(put(record(self, resolved, outputs, Some(info.id))))
    }

    /// Deletes the server (already gone is fine). The old object of a create_before_destroy
    /// replace and a deposed object are dropped from the record's deposed ones.
    async fn destroy_server(&self, bound: &Bound) -> Result<StepResult, ExtError> {
        let c = &self.change;
        let p = bound.provider(&c.implementation)?;
        // A create_before_destroy replace destroys the old object, whose record was already
        // overwritten (it is deposed there); so does the destroy of a deposed object. The
        // change names that object.
        let id = c
            .provider_id
            .clone()
            .or_else(|| self.prior.as_ref().and_then(|p| p.provider_id.clone()));
        if let Some(id) = &id {
            already_gone_ok(p.delete_server(id).await)?;
        }
        match id {
            Some(id) if self.creates_first() || self.deposed => {
                Ok(StepResult::DropDeposed(c.address.clone(), id))
            }
            _ if self.deposed => Ok(StepResult::Nothing),
            _ => Ok(self.destroyed()),
        }
    }

    /// Installs, updates or uninstalls a taskserv, its output lines as events; with
    /// `on_error = 'Retry`, a failure is tried again up to `max_retries` times.
    async fn taskserv(&self, bound: &Bound, events: &EventSink) -> Result<StepResult, ExtError> {
        let (c, addr) = (&self.change, &self.change.address);
        let t = bound.taskserv(&c.implementation)?;
        let resolved = self.resolved();
        let source = if self.step == Step::Destroy {
            self.prior
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
                self.server.clone().expect("prepared"),
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
            match taskserv_step(&*t, &req, self.step, self, &resolved).await {
                Err(e) if attempt < retries && !is_not_found(&e) => attempt += 1,
                Ok(None) => return Ok(self.destroyed()),
                Ok(Some(outputs)) => return Ok(put(record(self, resolved, outputs, None))),
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates or deletes a cluster (an update re-runs its create).
    async fn cluster(&self, bound: &Bound) -> Result<StepResult, ExtError> {
        let cl = bound.cluster(&self.change.implementation)?;
        let req = self.cluster.clone().expect("prepared");
        if self.step == Step::Destroy {
            already_gone_ok(cl.delete(&req).await)?;
            return Ok(self.destroyed());
        }
        let r = cl.create(&req).await?;
        let outputs = json!({"status": r.status, "endpoints": r.endpoints, "outputs": r.outputs});
        Ok(put(record(self, self.resolved(), outputs, None)))
    }

    /// Deploys, updates (`component_update`) or removes a cluster component.
    async fn component(&self, bound: &Bound) -> Result<StepResult, ExtError> {
        let (c, addr) = (&self.change, &self.change.address);
        let cl = bound.cluster(&c.implementation)?;
        let resolved = self.resolved();
        let config = if self.step == Step::Destroy {
            self.prior
                .as_ref()
                .map(|p| p.attributes.clone())
                .unwrap_or(Value::Null)
        } else {
            resolved.clone()
        };
        let req = ComponentRequest {
            address: addr.to_string(),
            cluster: self.cluster.clone().expect("prepared"),
            name: addr.name().to_string(),
            config: config.clone(),
        };
        let status = match self.step {
            Step::Destroy => {
                already_gone_ok(cl.remove_component(&req).await)?;
                return Ok(self.destroyed());
            }
            Step::Create => cl.deploy_component(&req).await?,
            Step::Update => component_update(&*cl, &req, c, &self.before(), &config).await?,
        };
        let outputs = serde_json::to_value(&status).unwrap_or(Value::Null);
        Ok(put(record(self, resolved, outputs, None)))
    }
}

/// A component's update: restart-component when it was stopped outside prov, upgrade when its
/// version changes, scale when only its replicas do, deploy-component (configure) for anything
/// else; in that order, each only when needed.
/// What bringing a deployed component from `before` to `config` takes, in order: a restart
/// when it was found stopped; an upgrade when the version changed (it deploys the configured
/// replicas too), else a scale when only the replicas changed; a deploy when anything else
/// changed. Empty: nothing (the plan's update was for the record only).
#[derive(Debug, Clone, PartialEq)]
enum ComponentOp {
    Restart,
    Upgrade(String),
    Scale(u32),
    Deploy,
}

fn component_ops(before: &Value, config: &Value, stopped: bool) -> Vec<ComponentOp> {
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
    let mut ops = Vec::new();
    if stopped {
        ops.push(ComponentOp::Restart);
    }
    if version(before) != version(config) {
        ops.push(ComponentOp::Upgrade(version(config).unwrap_or_default()));
    } else if replicas(before) != replicas(config) {
        ops.push(ComponentOp::Scale(replicas(config).unwrap_or(1) as u32));
    }
    if rest(before) != rest(config) {
        ops.push(ComponentOp::Deploy);
    }
    ops
}

/// Carries out [`component_ops`]; the status is the last operation's, or the component's own
/// after a restart alone.
async fn component_update(
    cl: &dyn crate::traits::Cluster,
    req: &ComponentRequest,
    c: &ResourceChange,
    before: &Value,
    config: &Value,
) -> Result<crate::traits::ComponentStatus, ExtError> {
    let mut status = None;
    for op in component_ops(before, config, crate::plan::make::starts_stopped(c)) {
        match op {
            ComponentOp::Restart => cl.restart_component(req).await?,
            ComponentOp::Upgrade(v) => status = Some(cl.upgrade(req, &v).await?),
            ComponentOp::Scale(n) => status = Some(cl.scale(req, n).await?),
            ComponentOp::Deploy => status = Some(cl.deploy_component(req).await?),
        }
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
            let before = input.before();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's copy of its plan entry keeps what steps read — the action, configuration,
    /// prior values, dependencies, ids, lifecycle, sensitive paths and the diffs (an update
    /// restarts what was found stopped) — and leaves what only the plan shows.
    #[test]
    fn a_steps_copy_keeps_what_steps_read() {
        let c = ResourceChange {
            address: "taskserv.web.app".parse().unwrap(),
            implementation: "fake".into(),
            action: Action::Update,
            before: Some(json!({"status": "stopped"})),
            after: Some(json!({"status": "running"})),
            after_unknown: json!({"id": true}),
            config: Some(std::sync::Arc::new(json!({"version": "1"}))),
            diffs: vec![crate::diff::AttrDiff {
                path: "status".into(),
                before: Some(json!("stopped")),
                after: Some(json!("running")),
                unknown: false,
                forces_replacement: false,
            }],
            depends_on: vec!["server.web".parse().unwrap()],
            prior_dependencies: vec!["server.web".parse().unwrap()],
            provider_id: Some("id-1".into()),
            lifecycle: Default::default(),
            declared_at: Some("main.ncl:3".into()),
            sensitive: vec!["password".into()],
            defaults: vec!["version".into()],
            computed: Some(json!({"ip": "10.0.0.1"})),
            references: vec![("server.web".into(), vec!["private_ip".into()])],
        };
        let s = for_step(&c);
        assert!(crate::plan::make::starts_stopped(&s));
        assert_eq!(
            (
                &s.address,
                &s.implementation,
                &s.action,
                &s.before,
                &s.config
            ),
            (
                &c.address,
                &c.implementation,
                &c.action,
                &c.before,
                &c.config
            )
        );
        assert_eq!(
            (&s.depends_on, &s.prior_dependencies),
            (&c.depends_on, &c.prior_dependencies)
        );
        assert_eq!(
            (&s.provider_id, &s.sensitive),
            (&c.provider_id, &c.sensitive)
        );
        assert_eq!(s.lifecycle, c.lifecycle);
        assert!(s.after.is_none() && s.computed.is_none() && s.references.is_empty());
    }

    #[test]
    fn component_changes_choose_their_operations() {
        let v = |version: &str, replicas: u64, msg: &str| json!({"version": version, "resources": {"replicas": replicas}, "config": {"msg": msg}});
        let base = v("1.0", 1, "a");
        let cases = [
            ("nothing", v("1.0", 1, "a"), false, vec![]),
            (
                "stopped only",
                v("1.0", 1, "a"),
                true,
                vec![ComponentOp::Restart],
            ),
            (
                "scale",
                v("1.0", 3, "a"),
                false,
                vec![ComponentOp::Scale(3)],
            ),
            // An upgrade deploys the configured replicas: no separate scale.
            (
                "upgrade and scale",
                v("1.1", 3, "a"),
                false,
                vec![ComponentOp::Upgrade("1.1".into())],
            ),
            ("config", v("1.0", 1, "b"), false, vec![ComponentOp::Deploy]),
            (
                "stopped, upgraded, reconfigured",
                v("2.0", 1, "b"),
                true,
                vec![
                    ComponentOp::Restart,
                    ComponentOp::Upgrade("2.0".into()),
                    ComponentOp::Deploy,
                ],
            ),
            (
                "scale and config",
                v("1.0", 2, "b"),
                false,
                vec![ComponentOp::Scale(2), ComponentOp::Deploy],
            ),
        ];
        for (name, config, stopped, want) in cases {
            assert_eq!(component_ops(&base, &config, stopped), want, "{name}");
        }
    }
}
