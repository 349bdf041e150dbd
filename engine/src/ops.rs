//! The engine's entry points, one per CLI command: load a workspace, plan, apply; commands call these and only render.

use crate::apply::{self, ApplyOptions, ApplyReport};
use crate::config::EvalOptions;
use crate::drift;
use crate::error::{Diagnostic, EngineError};
use crate::events::EventSink;
use crate::load::Model;
use crate::model::Address;
use crate::pending;
use crate::plan::make::{make_plan_from, PlanOptions};
use crate::plan::Plan;
use crate::registry::{Bound, Registry};
use crate::workspace::{load, Loaded, Workspace};
use prov_state::{StateRead, StateStore};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// Untrusted plans run no code from the repository. A server of a provider implemented by an
/// extension program (`WORKSPACE/extensions/providers`, `PROV_EXTENSIONS_PATH`), which the pull
/// request may have changed, is refused: every call would run it. That holds for the servers
/// the configuration declares and for those `recorded` (the plan's snapshot) or left pending
/// there: refreshing, pricing or settling them would run the program even when the pull
/// request removed them from the configuration. Extension taskservs only run scripts on
/// servers, which an untrusted plan does not do; their schemas and templates are not evaluated
/// either: their names are returned to be skipped. The built-in catalog is prov's.
fn refuse_workspace_code(
    loaded: &Loaded,
    recorded: Option<&prov_state::Snapshot>,
) -> Result<std::collections::BTreeSet<String>, EngineError> {
    use crate::extension::{discover, search_path, ExtensionKind};
    let roots = search_path(&loaded.workspace.dir);
    let ext = |kind| discover(&roots, kind).map_err(|e| EngineError::Internal(e.to_string()));
    let providers = ext(ExtensionKind::Provider)?;
    // (address, provider, where declared, how the plan has it)
    let declared = loaded
        .model
        .resources
        .values()
        .filter(|r| matches!(r.addr, crate::model::Address::Server(_)))
        .map(|r| {
            (
                r.addr.to_string(),
                &r.implementation,
                r.declared_at.clone(),
                "uses",
            )
        });
    let in_state = recorded.into_iter().flat_map(|snap| {
        let records = snap
            .resources
            .values()
            .filter(|r| r.kind == "server")
            .map(|r| {
                (
                    r.address.clone(),
                    &r.implementation,
                    None,
                    "is recorded with",
                )
            });
        let pending = snap
            .pending
            .values()
            .filter(|p| p.kind == "server")
            .map(|p| {
                (
                    p.address.clone(),
                    &p.implementation,
                    None,
                    "is left pending with",
                )
            });
        records.chain(pending)
    });
    let mut errors = Vec::new();
    let mut named = BTreeSet::new();
    for (address, implementation, declared_at, how) in declared.chain(in_state) {
        // A declared server is named once, as declared.
        if !named.insert(address.clone()) {
            continue;
        }
        if let Some(e) = providers.iter().find(|e| e.name.as_str() == implementation) {
            errors.push(Diagnostic::new(
                Some(address),
                declared_at,
                format!(
                    "{how} the provider extension {} ({}): its program is code from the repository, which an untrusted plan does not run; plan this change in a trusted job (docs/ci-security.md)",
                    e.name,
                    e.dir.display()
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    Ok(ext(ExtensionKind::Taskserv)?
        .into_iter()
        .map(|e| e.name.to_string())
        .collect())
}

/// `prov output`: the workspace outputs as the last apply resolved them, and which of them show a
/// sensitive value according to the configuration.
pub struct Outputs {
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Names to redact when listing. When the configuration does not evaluate, which outputs
    /// are sensitive is unknown, and every one is listed here.
    pub sensitive: std::collections::BTreeSet<String>,
    /// Why sensitivity is unknown (the configuration's error), when it is.
    pub unknown_because: Option<String>,
}

/// Reads the outputs and, from the configuration, which of them are sensitive.
pub fn outputs(
    ws: &Workspace,
    registry: &Registry,
    eval: &EvalOptions,
    state: &dyn StateRead,
) -> Result<Outputs, EngineError> {
    let values = state.snapshot_without_configs()?.outputs;
    Ok(match load(ws, registry, eval) {
        Ok(loaded) => Outputs {
            values,
            sensitive: loaded.model.sensitive_outputs,
            unknown_because: None,
        },
        // A runaway evaluation is still running: end, do not carry on beside it.
        Err(EngineError::Config(e)) if e.is_limit() => return Err(e.into()),
        Err(e) => Outputs {
            sensitive: values.keys().cloned().collect(),
            values,
            unknown_because: Some(e.to_string()),
        },
    })
}

/// Binds the registry for applying a saved plan (no evaluation: the plan is the whole contract).
pub fn bind_for_plan(ws: &Workspace, registry: &Registry, plan: &Plan) -> Arc<Bound> {
    Arc::new(registry.bind(ws.dir.clone(), &plan.providers))
}

/// `prov validate`: the configuration evaluates, the model is consistent, and every provider
/// in use accepts its settings.
pub async fn validate(loaded: &Loaded) -> Result<Vec<String>, EngineError> {
    crate::taskserv_ops::check_settings(loaded).await?;
    crate::cluster_ops::check(loaded, true).await?;
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut used: Vec<&str> = loaded
        .model
        .resources
        .values()
        .filter(|r| matches!(r.addr, crate::model::Address::Server(_)))
        .map(|r| r.implementation.as_str())
        .collect();
    used.sort_unstable();
    used.dedup();
    for name in used {
        let p = loaded.bound.provider(name)?;
        let v = p
            .validate_config(&loaded.bound.provider_settings(name))
            .await?;
        errors.extend(
            v.errors
                .into_iter()
                .map(|e| Diagnostic::new(None, None, format!("providers.{name}: {e}"))),
        );
        warnings.extend(
            v.warnings
                .into_iter()
                .map(|w| format!("providers.{name}: {w}")),
        );
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// `prov plan`: diff the loaded configuration against the state. Operations an earlier apply
/// left pending are resolved first (read-only queries), and the plan diffs against the state as
/// it will be once they are settled.
pub async fn plan(
    loaded: &Loaded,
    state: &dyn StateRead,
    opts: &PlanOptions,
) -> Result<Plan, EngineError> {
    // Records without their configurations: a plan never reads them (refreshed records, which
    // apply may write back, get theirs again below).
    let snap = state.snapshot_without_configs()?;
    plan_from(loaded, state, snap, opts).await
}

/// [`plan`] from a snapshot already read (`snapshot_without_configs`, as [`load_with_state`]
/// reads it).
pub async fn plan_from(
    loaded: &Loaded,
    state: &dyn StateRead,
    snap: prov_state::Snapshot,
    opts: &PlanOptions,
) -> Result<Plan, EngineError> {
    plan_started(loaded, state, PlanStart::Snapshot(snap), opts).await
}

/// How a plan begins: from the snapshot, or with its questions to the providers already asked.
pub enum PlanStart {
    /// Everything is asked once the model is built.
    Snapshot(prov_state::Snapshot),
    /// Pending operations resolved and the records refreshed while the model was built
    /// ([`start_plan`]).
    Started(Started),
}

/// A plan's questions to the providers, running on the runtime since before the model was
/// built; aborted when dropped unanswered (a configuration error, say).
pub struct Started {
    task: tokio::task::JoinHandle<Result<Asked, EngineError>>,
    /// The configured servers (address, provider), sent once the model is built: the search
    /// for tagged servers is for those without a record.
    servers: Option<tokio::sync::oneshot::Sender<Vec<(String, String)>>>,
    /// The providers of the recorded servers (what the cost estimate prices besides the
    /// configured ones).
    recorded_providers: BTreeSet<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a plan asks the providers that the model does not decide: the view after pending
/// operations are resolved, what the refresh observed of its records, and the tagged servers.
struct Asked {
    view: prov_state::Snapshot,
    resolutions: Vec<pending::Resolution>,
    observed: Vec<drift::Observation>,
    tagged: Vec<crate::ownership::TaggedServer>,
    searched: bool,
}

/// Whether a plan's questions to the providers can be asked before its model is built: they
/// then depend on the snapshot and the providers' settings alone. Not when the model decides
/// what is refreshed (`--refresh=changed`) or adopted (`--adopt`), without a refresh, and
/// never for an untrusted plan (the model is where extension providers are refused: nothing
/// may call one first).
fn asks_before_model(opts: &PlanOptions) -> bool {
    (opts.refresh || opts.refresh_only) && !opts.refresh_changed && !opts.adopt && !opts.untrusted
}

/// Starts a plan's questions to the providers on `rt` as soon as the state is read and the
/// providers are bound, before the model is built: at 10,000 servers the refresh and the model
/// are each tens of milliseconds, and neither needs the other. Asks only what the plan would
/// ask (read-only calls); [`plan_started`] goes on from it. Returns the snapshot as it is when
/// the plan has to decide first ([`asks_before_model`]).
pub fn start_plan(
    rt: &tokio::runtime::Handle,
    bound: &Arc<Bound>,
    state: &dyn StateRead,
    snap: prov_state::Snapshot,
    opts: &PlanOptions,
) -> Result<PlanStart, EngineError> {
    if !asks_before_model(opts) {
        return Ok(PlanStart::Snapshot(snap));
    }
    let mut snap = snap;
    let in_flight = set_aside_in_flight(state, &mut snap)?;
    let recorded_providers = recorded_server_providers(&snap);
    let (tx, servers) = tokio::sync::oneshot::channel::<Vec<(String, String)>>();
    let (bound, opts) = (bound.clone(), opts.clone());
    let checking = recorded_providers.clone();
    let task = rt.spawn(async move {
        // Through the workspace's settings cache, as loading checks them: building a provider
        // would otherwise evaluate its schema with Nickel beside that check.
        let checker = bound.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for name in &checking {
                let _ = checker.check_provider_settings(name, false);
            }
        })
        .await;
        let (view, resolutions) = resolved(snap, in_flight, &bound).await?;
        let shared = Arc::new(view);
        let search = async {
            // No servers: the plan stopped before it searched.
            let Ok(servers) = servers.await else {
                return Ok((Vec::new(), false));
            };
            match tagged_query_of(servers.into_iter(), &opts, &shared, &bound) {
                Some(q) => q.ask(&bound).await.map(|t| (t, true)),
                None => Ok((Vec::new(), false)),
            }
        };
        let observing = drift::observe(shared.clone(), &bound, &opts.refresh_opts, None);
        let (observed, searched) = tokio::join!(observing, search);
        let (tagged, searched) = searched?;
        // Both are done: the view is this task's alone again.
        let view = Arc::try_unwrap(shared).unwrap_or_else(|a| (*a).clone());
        Ok(Asked {
            view,
            resolutions,
            observed,
            tagged,
            searched,
        })
    });
    Ok(PlanStart::Started(Started {
        task,
        servers: Some(tx),
        recorded_providers,
    }))
}

/// [`plan_from`], or the plan of questions [`start_plan`] asked already.
pub async fn plan_started(
    loaded: &Loaded,
    state: &dyn StateRead,
    start: PlanStart,
    opts: &PlanOptions,
) -> Result<Plan, EngineError> {
    // An untrusted plan never starts early (`asks_before_model`): its records are checked with
    // the configuration, before any provider is asked anything.
    let recorded = match &start {
        PlanStart::Snapshot(snap) => Some(snap),
        PlanStart::Started(_) => None,
    };
    check_before_planning(loaded, opts, recorded).await?;
    // Prices do not depend on what the refresh finds: asked meanwhile, one latency fewer.
    let to_price = pricing_providers(loaded, &start, opts);
    let pricing = async {
        Ok(match to_price {
            Some(providers) => {
                let timeout = opts.refresh_opts.timeout;
                crate::plan::cost::ask(providers, &loaded.bound, timeout).await
            }
            None => Default::default(),
        })
    };
    let planning = async {
        match start {
            PlanStart::Snapshot(snap) => plan_refreshed(loaded, state, snap, opts).await,
            PlanStart::Started(started) => plan_asked(loaded, state, started, opts).await,
        }
    };
    let (asked, (mut plan, record_providers)) = tokio::try_join!(pricing, planning)?;
    if opts.cost {
        // Pricing failures leave prices unknown (said in the plan); they never fail it.
        plan.cost = crate::plan::cost::estimate(
            &plan,
            &loaded.bound,
            &record_providers,
            opts.refresh_opts.timeout,
            asked,
        )
        .await;
    }
    Ok(plan)
}

/// The providers a plan's cost estimate asks for prices: those of the configuration's servers
/// (not for a destroy) and of the recorded ones. None without an estimate, or with no server
/// to price.
fn pricing_providers(
    loaded: &Loaded,
    start: &PlanStart,
    opts: &PlanOptions,
) -> Option<BTreeSet<String>> {
    if !opts.cost || opts.refresh_only {
        return None;
    }
    let configured = loaded
        .model
        .resources
        .values()
        .filter(|r| !opts.destroy && r.kind() == crate::model::ResourceKind::Server)
        .map(|r| r.implementation.clone());
    let mut providers: BTreeSet<String> = configured.collect();
    match start {
        PlanStart::Snapshot(snap) => providers.extend(recorded_server_providers(snap)),
        PlanStart::Started(s) => providers.extend(s.recorded_providers.iter().cloned()),
    }
    (!providers.is_empty()).then_some(providers)
}

/// The providers of the servers `snap` records.
fn recorded_server_providers(snap: &prov_state::Snapshot) -> BTreeSet<String> {
    snap.resources
        .values()
        .filter(|r| r.kind == "server")
        .map(|r| r.implementation.clone())
        .collect()
}

/// The plan before its cost: pending operations resolved, tagged servers found, refreshed,
/// diffed, drift attached; with the recorded providers of servers whose provider changes.
async fn plan_refreshed(
    loaded: &Loaded,
    state: &dyn StateRead,
    snap: prov_state::Snapshot,
    opts: &PlanOptions,
) -> Result<(Plan, std::collections::HashMap<String, String>), EngineError> {
    let mut snap = snap;
    let unrefreshed = hold_for_trusted(&mut snap, opts);
    let in_flight = set_aside_in_flight(state, &mut snap)?;
    let (mut view, mut resolutions) = resolved(snap, in_flight, &loaded.bound).await?;
    let query = tagged_query(loaded, opts, &view);
    // Adopting changes what is refreshed and diffed, so its search comes first; otherwise the
    // search (one list call per provider) runs while the records are refreshed and diffed.
    let mut adopting = None;
    if let (true, Some(q)) = (opts.adopt, &query) {
        let found = q.ask(&loaded.bound).await?;
        adopting = Some(adopt(loaded, found, &mut view, &mut resolutions)?);
    }
    let ask = async {
        match (&adopting, &query) {
            (None, Some(q)) => q.ask(&loaded.bound).await,
            _ => Ok(Vec::new()),
        }
    };
    let diffing = async {
        let seen = if opts.refresh || opts.refresh_only {
            refresh_for_plan(loaded, state, view, opts).await?
        } else {
            Seen {
                view,
                found: Vec::new(),
                refreshed: Vec::new(),
            }
        };
        diffed(loaded, seen, opts)
    };
    let (asked, (seen, record_providers, plan)) = tokio::try_join!(ask, diffing)?;
    let tagged = adopting.unwrap_or(asked);
    let outcome = Outcome {
        resolutions,
        unrefreshed,
        tagged,
        searched: query.is_some(),
    };
    finished(loaded, state, plan, seen, outcome, opts).map(|p| (p, record_providers))
}

/// [`plan_refreshed`] from what [`start_plan`] asked while the model was built.
async fn plan_asked(
    loaded: &Loaded,
    state: &dyn StateRead,
    mut started: Started,
    opts: &PlanOptions,
) -> Result<(Plan, std::collections::HashMap<String, String>), EngineError> {
    let servers = configured_servers(loaded).collect();
    if let Some(tx) = started.servers.take() {
        // The task gone means it failed: awaited next, it says why.
        let _ = tx.send(servers);
    }
    let asked = (&mut started.task)
        .await
        .map_err(|e| EngineError::Internal(format!("the plan's refresh stopped: {e}")))??;
    let seen = seen_from(loaded, state, asked.view, asked.observed)?;
    let (seen, record_providers, plan) = diffed(loaded, seen, opts)?;
    let outcome = Outcome {
        resolutions: asked.resolutions,
        unrefreshed: BTreeSet::new(),
        tagged: asked.tagged,
        searched: asked.searched,
    };
    finished(loaded, state, plan, seen, outcome, opts).map(|p| (p, record_providers))
}

/// What a plan records of how it was asked: pending operations resolved, what it left
/// unrefreshed, the tagged servers found and whether it searched for them.
struct Outcome {
    resolutions: Vec<pending::Resolution>,
    unrefreshed: BTreeSet<Address>,
    tagged: Vec<crate::ownership::TaggedServer>,
    searched: bool,
}

/// The plan with what it was asked attached: resolutions, the tagged servers it would
/// otherwise duplicate, and the drift (or, refresh-only, the refreshed records).
fn finished(
    loaded: &Loaded,
    state: &dyn StateRead,
    mut plan: Plan,
    seen: Seen,
    outcome: Outcome,
    opts: &PlanOptions,
) -> Result<Plan, EngineError> {
    plan.resolutions = outcome.resolutions;
    plan.untrusted = opts.untrusted;
    plan.tagged_searched = outcome.searched;
    plan.unrefreshed = outcome.unrefreshed.into_iter().collect();
    plan.tagged = outcome
        .tagged
        .into_iter()
        .filter(|t| {
            plan.changes.iter().any(|c| {
                c.action == crate::plan::Action::Create && c.address.to_string() == t.address
            })
        })
        .collect();
    if opts.refresh_only {
        as_refresh_only(&mut plan, seen.found, seen.refreshed);
    } else {
        with_drift(&mut plan, loaded, state, seen.found, seen.refreshed)?;
    }
    Ok(plan)
}

/// Taskserv settings are checked against their schemas before anything is planned (in an
/// untrusted plan, only those of prov's own taskservs). Cluster requirements (providers'
/// get-plans) always; the extensions' schemas only when the repository's code may run.
async fn check_before_planning(
    loaded: &Loaded,
    opts: &PlanOptions,
    recorded: Option<&prov_state::Snapshot>,
) -> Result<(), EngineError> {
    let skip = if opts.untrusted {
        refuse_workspace_code(loaded, recorded)?
    } else {
        Default::default()
    };
    crate::taskserv_ops::check_settings_except(loaded, &skip).await?;
    crate::cluster_ops::check(loaded, !opts.untrusted).await
}

/// Untrusted: only what provider APIs answer is read. Taskservs, clusters and components
/// are asked through scripts and commands on the servers, so they are planned against their
/// records (and operations left pending on them wait for a trusted plan, taken out of `snap`
/// here). Returns what the plan leaves unrefreshed.
fn hold_for_trusted(snap: &mut prov_state::Snapshot, opts: &PlanOptions) -> BTreeSet<Address> {
    let mut unrefreshed = BTreeSet::new();
    if !opts.untrusted {
        return unrefreshed;
    }
    let held: Vec<String> = snap
        .pending
        .iter()
        .filter(|(_, p)| p.kind != "server")
        .map(|(k, _)| k.clone())
        .collect();
    for k in held {
        snap.pending.remove(&k);
        if let Ok(a) = k.parse() {
            unrefreshed.insert(a);
        }
    }
    if opts.refresh || opts.refresh_only {
        unrefreshed.extend(
            snap.resources
                .keys()
                .filter_map(|k| k.parse::<Address>().ok())
                .filter(|a| !matches!(a, Address::Server(_))),
        );
    }
    unrefreshed
}

/// The view a plan diffs against once `snap`'s pending operations are resolved, the notes of
/// steps live applies are running (`in_flight`, [`set_aside_in_flight`]) kept as they are; and
/// the resolutions.
async fn resolved(
    snap: prov_state::Snapshot,
    in_flight: Vec<(String, prov_state::PendingOp)>,
    bound: &Bound,
) -> Result<(prov_state::Snapshot, Vec<pending::Resolution>), EngineError> {
    let resolutions = pending::resolve_pending(&snap, bound).await?;
    let mut view = pending::resolved_view(snap, &resolutions);
    view.pending.extend(in_flight);
    Ok((view, resolutions))
}

/// Pending notes of resources another live apply holds are its steps running now, not
/// leftovers of a crash: taken out of `snap` and left alone (that apply records their
/// outcome; a plan touching them is stale by then).
fn set_aside_in_flight(
    state: &dyn StateRead,
    snap: &mut prov_state::Snapshot,
) -> Result<Vec<(String, prov_state::PendingOp)>, EngineError> {
    let busy = state.resource_locks()?;
    let in_flight: Vec<(String, prov_state::PendingOp)> = snap
        .pending
        .iter()
        .filter(|(a, _)| busy.contains_key(*a))
        .map(|(a, p)| (a.clone(), p.clone()))
        .collect();
    for (a, _) in &in_flight {
        snap.pending.remove(a);
    }
    Ok(in_flight)
}

/// The search for live servers tagged for addresses this plan would create (state lost or
/// records removed): they are reported, adopted with --adopt, and never duplicated by apply
/// (see `check_tagged`). None when the plan does not search (no refresh, a destroy).
fn tagged_query(
    loaded: &Loaded,
    opts: &PlanOptions,
    view: &prov_state::Snapshot,
) -> Option<crate::ownership::TaggedQuery> {
    tagged_query_of(configured_servers(loaded), opts, view, &loaded.bound)
}

/// [`tagged_query`] for the configured servers `servers` (address, provider).
fn tagged_query_of(
    servers: impl Iterator<Item = (String, String)>,
    opts: &PlanOptions,
    view: &prov_state::Snapshot,
    bound: &Bound,
) -> Option<crate::ownership::TaggedQuery> {
    if opts.destroy || opts.refresh_only || !(opts.refresh || opts.adopt) {
        return None;
    }
    let creates = server_creates(servers, view);
    Some(crate::ownership::TaggedQuery::of(creates, view, bound))
}

/// The configuration's servers: (address, provider).
fn configured_servers(loaded: &Loaded) -> impl Iterator<Item = (String, String)> + '_ {
    loaded
        .model
        .resources
        .values()
        .filter(|r| r.kind() == crate::model::ResourceKind::Server)
        .map(|r| (r.addr.to_string(), r.implementation.clone()))
}

/// `--adopt`: the tagged servers found are adopted into `view` (their resolutions added);
/// returns those that remain (an address several servers are tagged for is an error).
fn adopt(
    loaded: &Loaded,
    mut tagged: Vec<crate::ownership::TaggedServer>,
    view: &mut prov_state::Snapshot,
    resolutions: &mut Vec<pending::Resolution>,
) -> Result<Vec<crate::ownership::TaggedServer>, EngineError> {
    let adopted = adoptions(loaded, &tagged)?;
    tagged.retain(|t| !adopted.iter().any(|r| r.address() == t.address));
    *view = pending::resolved_view(std::mem::take(view), &adopted);
    resolutions.extend(adopted);
    Ok(tagged)
}

/// The recorded providers of servers (for the cost estimate) and the plan diffed against what
/// the refresh saw (its view moved into the plan).
fn diffed(
    loaded: &Loaded,
    mut seen: Seen,
    opts: &PlanOptions,
) -> Result<(Seen, std::collections::HashMap<String, String>, Plan), EngineError> {
    let record_providers = if opts.cost {
        record_providers(&seen.view, loaded)
    } else {
        Default::default()
    };
    let plan = make_plan_from(
        &loaded.model,
        &loaded.graph,
        std::mem::take(&mut seen.view),
        &loaded.bound,
        opts,
        &loaded.config_hash,
    )?;
    Ok((seen, record_providers, plan))
}

/// What a refresh saw: the view the plan diffs against, the drift found (redacted), and the
/// records as the real world has them (None: gone) for what drifted.
struct Seen {
    view: prov_state::Snapshot,
    found: Vec<drift::Drift>,
    refreshed: Vec<(Address, Option<prov_state::ResourceRecord>)>,
}

/// Asks the real world about the records of `view` (all, or those `refresh_scope` picks) and
/// returns what it saw. A record that could not be read fails the plan.
async fn refresh_for_plan(
    loaded: &Loaded,
    state: &dyn StateRead,
    view: prov_state::Snapshot,
    opts: &PlanOptions,
) -> Result<Seen, EngineError> {
    let only = refresh_targets(loaded, &view, opts)?;
    let shared = Arc::new(view);
    let observed = drift::observe(
        shared.clone(),
        &loaded.bound,
        &opts.refresh_opts,
        only.as_ref(),
    )
    .await;
    // Every observation task has finished: the snapshot is ours alone again.
    let unshared = Arc::try_unwrap(shared).unwrap_or_else(|a| (*a).clone());
    seen_from(loaded, state, unshared, observed)
}

/// What the refresh's observations of `view`'s records say: an error for a record that could
/// not be read; else the drift (redacted as the configuration says), the refreshed records of
/// what drifted, and the view as refreshed.
fn seen_from(
    loaded: &Loaded,
    state: &dyn StateRead,
    view: prov_state::Snapshot,
    obs: Vec<drift::Observation>,
) -> Result<Seen, EngineError> {
    let errors: Vec<Diagnostic> = obs
        .iter()
        .flat_map(|o| &o.drift)
        .filter_map(|d| match &d.kind {
            drift::DriftKind::Error(m) => Some(Diagnostic::new(
                Some(d.address.clone()),
                None,
                format!("refresh failed: {m}"),
            )),
            _ => None,
        })
        .collect();
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    let refreshed = refreshed_records(&obs, loaded, state)?;
    let mut found = drift::collect(&obs, Vec::new());
    for d in &mut found {
        let paths = sensitive_paths(&d.address, view.resources.get(&d.address), &loaded.model);
        crate::plan::redact::redact_drift(d, &paths);
    }
    Ok(Seen {
        view: drift::refreshed_view(view, &obs),
        found,
        refreshed,
    })
}

/// The records a refresh asks about, None for all. `--refresh=changed`: only what a plan
/// without refresh would change, and what that depends on; untrusted: only servers.
fn refresh_targets(
    loaded: &Loaded,
    view: &prov_state::Snapshot,
    opts: &PlanOptions,
) -> Result<Option<BTreeSet<Address>>, EngineError> {
    let scope = if opts.refresh_changed && !opts.refresh_only {
        let quick = PlanOptions {
            refresh: false,
            cost: false,
            ..opts.clone()
        };
        let first = make_plan_from(
            &loaded.model,
            &loaded.graph,
            view.clone(),
            &loaded.bound,
            &quick,
            &loaded.config_hash,
        )?;
        Some(crate::concurrency::refresh_scope(&first))
    } else {
        None
    };
    let servers: Option<BTreeSet<Address>> = opts.untrusted.then(|| {
        view.resources
            .keys()
            .filter_map(|k| k.parse::<Address>().ok())
            .filter(|a| matches!(a, Address::Server(_)))
            .collect()
    });
    Ok(match (servers, scope) {
        (Some(s), Some(c)) => Some(s.intersection(&c).cloned().collect()),
        (s, c) => s.or(c),
    })
}

/// The records as the real world has them, of what drifted: with their configuration (the
/// snapshot was read without), and keeping what the configuration declares secret now as
/// well as what they recorded.
fn refreshed_records(
    obs: &[drift::Observation],
    loaded: &Loaded,
    state: &dyn StateRead,
) -> Result<Vec<(Address, Option<prov_state::ResourceRecord>)>, EngineError> {
    let mut refreshed: Vec<(Address, Option<prov_state::ResourceRecord>)> = obs
        .iter()
        .filter(|o| !o.drift.is_empty())
        .map(|o| (o.address.clone(), o.refreshed.clone()))
        .collect();
    for (a, r) in &mut refreshed {
        if let Some(r) = r.as_mut().filter(|r| r.config.is_null()) {
            if let Some(full) = state.record(&a.to_string())? {
                r.config = full.config;
            }
        }
    }
    for (a, r) in &mut refreshed {
        if let (Some(r), Some(res)) = (r.as_mut(), loaded.model.resources.get(a)) {
            for p in &res.sensitive {
                if !r.sensitive_paths.contains(p) {
                    r.sensitive_paths.push(p.clone());
                }
            }
        }
    }
    Ok(refreshed)
}

/// Servers whose provider the configuration changes: their price before is the old one's.
fn record_providers(
    view: &prov_state::Snapshot,
    loaded: &Loaded,
) -> std::collections::HashMap<String, String> {
    view.resources
        .iter()
        .filter(|(a, r)| {
            r.kind == "server"
                && a.parse::<Address>().is_ok_and(|addr| {
                    loaded
                        .model
                        .resources
                        .get(&addr)
                        .is_some_and(|m| m.implementation != r.implementation)
                })
        })
        .map(|(a, r)| (a.clone(), r.implementation.clone()))
        .collect()
}

/// A refresh-only plan changes nothing: it accepts what the refresh found.
fn as_refresh_only(
    plan: &mut Plan,
    found: Vec<drift::Drift>,
    refreshed: Vec<(Address, Option<prov_state::ResourceRecord>)>,
) {
    plan.mode = crate::plan::PlanMode::RefreshOnly;
    plan.changes.clear();
    plan.output_changes.clear();
    plan.deposed.clear();
    plan.protect.clear();
    plan.drift = found;
    plan.refreshed = refreshed;
}

/// A normal plan and what the refresh found: what was stopped outside prov is started again
/// (servers: start-server; taskservs: restart); records of objects deleted outside prov are
/// dropped at apply (a create that brings one back writes a new record anyway); computed
/// attributes the provider changed (an address re-assigned) are recorded before any step, so
/// the dependents this plan updates to the new values read them at apply too.
fn with_drift(
    plan: &mut Plan,
    loaded: &Loaded,
    state: &dyn StateRead,
    found: Vec<drift::Drift>,
    refreshed: Vec<(Address, Option<prov_state::ResourceRecord>)>,
) -> Result<(), EngineError> {
    let stopped: BTreeSet<Address> = found
        .iter()
        .filter(|d| matches!(d.kind, drift::DriftKind::Stopped))
        .filter_map(|d| d.address.parse().ok())
        .collect();
    crate::plan::make::start_stopped(plan, &loaded.model, &stopped);
    let mut dropped = BTreeSet::new();
    for (a, r) in refreshed {
        match r {
            None => {
                dropped.insert(a.to_string());
                plan.refreshed.push((a, None));
            }
            Some(r) => {
                if let Some(new) = state
                    .record(&a.to_string())?
                    .and_then(|rec| drift::accept_computed(&rec, &r))
                {
                    plan.refreshed.push((a, Some(new)));
                }
            }
        }
    }
    // Only the drift that matters here: resources the configuration declares, and records
    // that apply will drop.
    plan.drift = found
        .into_iter()
        .filter(|d| {
            dropped.contains(&d.address)
                || d.address
                    .parse::<Address>()
                    .is_ok_and(|a| loaded.model.resources.contains_key(&a))
        })
        .collect();
    Ok(())
}

/// Of `servers` (address, provider), those with neither a record nor a pending operation in
/// `snap`: what a plan creates.
fn server_creates(
    servers: impl Iterator<Item = (String, String)>,
    snap: &prov_state::Snapshot,
) -> std::collections::BTreeMap<String, String> {
    servers
        .filter(|(a, _)| !snap.resources.contains_key(a) && !snap.pending.contains_key(a))
        .collect()
}

/// `--adopt`: a resolution adopting each address that exactly one tagged server names (several:
/// an error listing them, for `prov import` to choose).
fn adoptions(
    loaded: &Loaded,
    tagged: &[crate::ownership::TaggedServer],
) -> Result<Vec<pending::Resolution>, EngineError> {
    let mut by_addr: std::collections::BTreeMap<&str, Vec<&crate::ownership::TaggedServer>> =
        Default::default();
    for t in tagged {
        by_addr.entry(t.address.as_str()).or_default().push(t);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (address, found) in by_addr {
        let Ok(addr) = address.parse::<crate::model::Address>() else {
            continue;
        };
        let Some(r) = loaded.model.resources.get(&addr) else {
            continue;
        };
        if let [t] = found.as_slice() {
            let rec = imported_record(&addr, r, &t.info);
            out.push(pending::Resolution {
                pending: prov_state::PendingOp {
                    address: address.to_string(),
                    operation: "adopt".into(),
                    kind: "server".into(),
                    implementation: t.provider.clone(),
                    provider_id: Some(t.id.clone()),
                    spec: serde_json::Value::Null,
                    dependencies: rec.dependencies.clone(),
                    started_at: rec.updated_at,
                    run_id: "--adopt".into(),
                },
                outcome: pending::Outcome::Adopt(Box::new(rec)),
                note: format!("found {} tagged by workspace {:?}", t.id, t.workspace_tag),
            });
        } else {
            errors.push(Diagnostic::new(
                Some(address.to_string()),
                None,
                format!(
                    "--adopt: {} servers are tagged for this address ({}); choose one with `prov \
                     import {address} ID`",
                    found.len(),
                    found
                        .iter()
                        .map(|t| format!("{} by workspace {:?}", t.id, t.workspace_tag))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// Refuses to apply creates of server addresses for which tagged live servers exist that no
/// record holds (the state was lost or the records removed): applying would duplicate them.
/// Asks the providers again, so a saved plan is checked as of now — unless `plan_just_made`
/// (this process made the plan moments ago: `ApplyOptions::plan_just_made`) and the plan
/// searched itself: then what that search found is as current.
pub async fn check_tagged(
    plan: &Plan,
    bound: &Bound,
    store: &Arc<dyn StateStore>,
    plan_just_made: bool,
) -> Result<(), EngineError> {
    if plan.mode != crate::plan::PlanMode::Normal {
        return Ok(());
    }
    if plan_just_made && plan.tagged_searched {
        return refuse_tagged(&plan.tagged);
    }
    let mut creates = plan.changes.iter().filter(|c| {
        c.action == crate::plan::Action::Create
            && matches!(c.address, crate::model::Address::Server(_))
    });
    if creates.next().is_none() {
        return Ok(());
    }
    let snap = pending::resolved_view(store.snapshot_without_configs()?, &plan.resolutions);
    let creates = server_creates(
        plan.changes
            .iter()
            .filter(|c| {
                c.action == crate::plan::Action::Create
                    && matches!(c.address, crate::model::Address::Server(_))
            })
            .map(|c| (c.address.to_string(), c.implementation.clone())),
        &snap,
    );
    if creates.is_empty() {
        return Ok(());
    }
    let tagged = crate::ownership::tagged_for(&creates, &snap, bound).await?;
    refuse_tagged(&tagged)
}

/// Refuses the creates of `tagged`'s addresses (see [`check_tagged`]), or Ok when it is empty.
fn refuse_tagged(tagged: &[crate::ownership::TaggedServer]) -> Result<(), EngineError> {
    if tagged.is_empty() {
        return Ok(());
    }
    Err(EngineError::Invalid(
        tagged
            .iter()
            .map(|t| {
                Diagnostic::new(
                    Some(t.address.clone()),
                    None,
                    format!(
                        "not created: server {} ({}) at {} is already tagged for this address{}; \
                         creating it again would duplicate it. Adopt it with `prov apply --adopt` \
                         or `prov import {} {}`, or delete it first; if it is another \
                         workspace's that declares the same address, apply with \
                         --ignore-tagged. Nothing was applied.",
                        t.id,
                        t.hostname,
                        t.provider,
                        tagged_by(t),
                        t.address,
                        t.id
                    ),
                )
            })
            .collect(),
    ))
}

/// " by this workspace" / " by workspace W (another workspace, or this one before its state was
/// lost)".
pub fn tagged_by(t: &crate::ownership::TaggedServer) -> String {
    if t.ours {
        " by this workspace".into()
    } else {
        format!(
            " by workspace {:?} (another workspace, or this one before its state was lost)",
            t.workspace_tag
        )
    }
}

/// `prov drift`: what changed outside prov, read-only. The state is never written.
pub async fn drift(
    loaded: &Loaded,
    state: &dyn StateRead,
    opts: &drift::RefreshOptions,
) -> Result<DriftReport, EngineError> {
    let snap = state.snapshot()?;
    let snap = Arc::new(snap);
    let obs = drift::observe(snap.clone(), &loaded.bound, opts, None).await;
    let providers = drift::providers_in_use(
        &snap,
        loaded
            .model
            .resources
            .values()
            .filter(|r| r.kind() == crate::model::ResourceKind::Server)
            .map(|r| r.implementation.clone()),
    );
    let unmanaged = drift::unmanaged(&snap, &loaded.bound, &providers, opts.timeout).await;
    let mut obs = obs;
    for o in &mut obs {
        let a = o.address.to_string();
        let paths = sensitive_paths(&a, snap.resources.get(&a), &loaded.model);
        for d in &mut o.drift {
            crate::plan::redact::redact_drift(d, &paths);
        }
    }
    Ok(DriftReport {
        checked: obs.len(),
        drift: drift::collect(&obs, unmanaged),
        workspace: loaded.bound.workspace_name.clone(),
    })
}

/// What is secret about a resource: the paths its record names and those the configuration
/// declares now (either alone may lag behind: a record written before a path was declared, a
/// block removed from the configuration).
pub fn sensitive_paths(
    address: &str,
    rec: Option<&prov_state::ResourceRecord>,
    model: &Model,
) -> Vec<String> {
    let mut paths: Vec<String> = rec.map(|r| r.sensitive_paths.clone()).unwrap_or_default();
    if let Some(r) = address
        .parse::<crate::model::Address>()
        .ok()
        .and_then(|a| model.resources.get(&a))
    {
        for p in &r.sensitive {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
    }
    paths
}

/// The result of `prov drift`.
pub struct DriftReport {
    pub workspace: String,
    /// How many recorded resources were checked.
    pub checked: usize,
    pub drift: Vec<drift::Drift>,
}

/// Records what the plan found about pending operations, finishing interrupted deletes of
/// servers nothing refers to. Runs before any step of an apply, and as `prov refresh`.
pub async fn settle(
    resolutions: &[pending::Resolution],
    bound: &Bound,
    store: &Arc<dyn StateStore>,
) -> Result<u64, EngineError> {
    let mut changes = pending::changes(resolutions);
    for r in resolutions {
        if let pending::Outcome::FinishDelete { provider_id } = &r.outcome {
            let p = bound.provider(&r.pending.implementation)?;
            match p.delete_server(provider_id).await {
                Ok(()) => {}
                Err(e) if e.kind == crate::traits::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            changes.push(prov_state::Change::ClearPending(r.pending.address.clone()));
        }
    }
    if changes.is_empty() {
        return Ok(store.meta()?.serial);
    }
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.commit(&changes))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(EngineError::State)
}

/// `prov refresh`: resolve pending operations and record the outcome. Operations of resources
/// another live apply holds are its running steps: left to it. The rest are locked first
/// (waiting up to `lock_timeout`), and read again under the locks.
pub async fn refresh(
    bound: &Bound,
    store: &Arc<dyn StateStore>,
    lock_timeout: std::time::Duration,
) -> Result<Vec<pending::Resolution>, EngineError> {
    let busy = store.resource_locks()?;
    let leftover: std::collections::BTreeSet<String> = store
        .snapshot_without_configs()?
        .pending
        .into_keys()
        .filter(|a| !busy.contains_key(a))
        .collect();
    let (s, l) = (store.clone(), leftover.clone());
    tokio::task::spawn_blocking(move || s.lock_resources(&l, lock_timeout))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    let mut snap = store.snapshot()?;
    snap.pending.retain(|a, _| leftover.contains(a));
    let res = pending::resolve_pending(&snap, bound).await?;
    settle(&res, bound, store).await?;
    Ok(res)
}

/// `prov apply`: carry out a plan (fresh or saved) against the state it was made from.
pub async fn apply(
    plan: &Plan,
    plan_path: Option<&Path>,
    bound: Arc<Bound>,
    store: Arc<dyn StateStore>,
    opts: &ApplyOptions,
    events: EventSink,
) -> Result<ApplyReport, EngineError> {
    // Only what this plan changes or reads is locked (waiting up to --lock-timeout for another
    // writer of it); the plan must still be current for exactly those resources.
    let touched = crate::concurrency::lock_for(plan, &store, opts.lock_timeout).await?;
    {
        let (s, t) = (store.clone(), touched);
        let p = crate::concurrency::PlanOrigin::of(plan);
        let path = plan_path.map(Path::to_path_buf);
        tokio::task::spawn_blocking(move || {
            crate::concurrency::check_current(&p, &*s, &t, path.as_deref())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    }
    if !opts.ignore_tagged {
        check_tagged(plan, &bound, &store, opts.plan_just_made).await?;
    }
    settle(&plan.resolutions, &bound, &store).await?;
    accept_refreshed(plan, &store).await?;
    if plan.mode == crate::plan::PlanMode::RefreshOnly {
        let mut report = apply::ApplyReport {
            serial: store.meta()?.serial,
            sensitive_outputs: plan.sensitive_outputs.clone(),
            ..Default::default()
        };
        report.outputs = store.snapshot()?.outputs;
        return Ok(report);
    }
    let secrets = Arc::new(plan.secrets());
    let events = scrubbing(events, &secrets);
    let mut report = apply::apply(plan, bound, store, opts, events).await?;
    for (_, _, e) in &mut report.failed {
        *e = crate::sensitive::scrub_text(e, &secrets);
    }
    Ok(report)
}

/// The real world a plan's refresh saw is accepted into the state (a refresh-only plan's
/// whole effect; a normal plan's dropped records and re-assigned computed attributes).
async fn accept_refreshed(plan: &Plan, store: &Arc<dyn StateStore>) -> Result<(), EngineError> {
    if plan.refreshed.is_empty() {
        return Ok(());
    }
    let changes: Vec<prov_state::Change> = plan
        .refreshed
        .iter()
        .map(|(a, r)| match r {
            Some(r) => prov_state::Change::Put(r.clone()),
            None => prov_state::Change::Delete(a.to_string()),
        })
        .collect();
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.commit(&changes))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok(())
}

/// What an apply shows beyond the plan (script output, error messages) passes through here:
/// the plan's secrets are scrubbed from it, whichever extension produced the text.
fn scrubbing(events: EventSink, secrets: &Arc<Vec<String>>) -> EventSink {
    if secrets.is_empty() {
        return events;
    }
    let s = secrets.clone();
    Arc::new(move |e| {
        use crate::events::Event;
        use crate::sensitive::scrub_text;
        events(match e {
            Event::Output { address, line } => Event::Output {
                address,
                line: scrub_text(&line, &s),
            },
            Event::Failed {
                address,
                step,
                error,
            } => Event::Failed {
                address,
                step,
                error: scrub_text(&error, &s),
            },
            other => other,
        })
    })
}

/// `prov state push`: refuses a dump that names a malformed address, a record whose kind is not
/// its address's, or one server under two addresses (a replace of either would destroy the
/// other's server). Nothing is written when it fails.
pub fn check_dump(dump: &prov_state::StateDump) -> Result<(), EngineError> {
    let mut errors = Vec::new();
    let mut ids: std::collections::BTreeMap<(&str, &str), &str> = Default::default();
    for r in &dump.resources {
        let bad = |m: String| Diagnostic::new(Some(r.address.clone()), None, m);
        match r.address.parse::<crate::model::Address>() {
            Err(e) => errors.push(bad(format!("malformed address: {e}"))),
            Ok(a) if a.kind().as_str() != r.kind => errors.push(bad(format!(
                "its record is a {} but the address names a {}",
                r.kind,
                a.kind().as_str()
            ))),
            Ok(_) => {}
        }
        if let (Some(id), "server") = (r.provider_id.as_deref(), r.kind.as_str()) {
            if let Some(first) = ids.insert((r.implementation.as_str(), id), &r.address) {
                errors.push(bad(format!(
                    "server {id:?} is also recorded as {first}: one server under two addresses"
                )));
            }
        }
    }
    for p in &dump.pending {
        if let Err(e) = p.address.parse::<crate::model::Address>() {
            errors.push(Diagnostic::new(
                Some(p.address.clone()),
                None,
                format!("pending operation with a malformed address: {e}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// Refuses (the message says why) a server tagged by another workspace, or tagged for another
/// address than `address`: taking it over needs `--force`.
pub fn foreign(
    info: &crate::traits::ServerInfo,
    address: &str,
    snap: &prov_state::Snapshot,
    bound: &Bound,
) -> Result<(), String> {
    use crate::ownership::{Claim, Identity};
    let tagged_for = info.tags.get(crate::traits::Ownership::TAG_ADDRESS);
    match Identity::of(&snap.meta, bound).claim(info, &snap.resources) {
        Claim::Other(w) => Err(format!(
            "server {:?} is tagged by another workspace ({w:?}{}): another workspace's server, or \
             this workspace's from before its state was lost; rerun with --force if this \
             workspace is to manage it",
            info.id,
            tagged_for.map(|a| format!(", as {a}")).unwrap_or_default()
        )),
        _ => match tagged_for {
            Some(a) if a != address => Err(format!(
                "server {:?} is tagged for {a}, not {address}; rerun with --force to record it \
                 as {address}",
                info.id
            )),
            _ => Ok(()),
        },
    }
}

/// `prov import`: adopts an existing server into the state under a declared address. The record
/// holds what the provider reports, so the next plan shows how it differs from the configuration.
///
/// Refused, with the state unchanged: an address that is not a declared server or is already in
/// the state, an id the provider does not know, an id another address already records (two
/// records of one object: a replace of either would destroy the other's server), and, unless
/// `force`, a server tagged by another workspace or for another address.
pub async fn import(
    loaded: &Loaded,
    store: &Arc<dyn StateStore>,
    addr: &crate::model::Address,
    id: &str,
    force: bool,
    lock_timeout: std::time::Duration,
) -> Result<prov_state::ResourceRecord, EngineError> {
    store.lock_resources(&[addr.to_string()].into_iter().collect(), lock_timeout)?;
    let invalid =
        |m: String| EngineError::Invalid(vec![Diagnostic::new(Some(addr.to_string()), None, m)]);
    let r = loaded.model.resources.get(addr).ok_or_else(|| {
        invalid("is not declared in the configuration: declare it first, then import".into())
    })?;
    if !matches!(addr, crate::model::Address::Server(_)) {
        return Err(invalid("only servers can be imported".into()));
    }
    if store.record(&addr.to_string())?.is_some() {
        return Err(invalid(
            "is already in the state (see `prov state show`)".into(),
        ));
    }
    let snap = store.snapshot_without_configs()?;
    if let Some(other) = snap.resources.values().find(|o| {
        o.kind == "server"
            && o.implementation == r.implementation
            && o.provider_id.as_deref() == Some(id)
    }) {
        return Err(invalid(format!(
            "server {id:?} is already recorded as {}: a second record of it would let a replace \
             of either address destroy the other's server (to rename the record, use `prov state \
             mv {} {addr}`)",
            other.address, other.address
        )));
    }
    let p = loaded.bound.provider(&r.implementation)?;
    let info = p.get_server_info(id).await?.ok_or_else(|| {
        invalid(format!(
            "provider {:?} has no server with id {id:?}",
            r.implementation
        ))
    })?;
    if !force {
        foreign(&info, &addr.to_string(), &snap, &loaded.bound).map_err(invalid)?;
    }
    let rec = imported_record(addr, r, &info);
    let s = store.clone();
    let put = rec.clone();
    tokio::task::spawn_blocking(move || s.commit(&[prov_state::Change::Put(put)]))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok(rec)
}

/// The record of an existing server taken over at `addr`: observed values where the provider
/// reports them, the rest as configured, so the next plan shows how it differs.
fn imported_record(
    addr: &crate::model::Address,
    r: &crate::model::Resource,
    info: &crate::traits::ServerInfo,
) -> prov_state::ResourceRecord {
    // Observed values where the provider reports them; the rest as configured.
    let mut attrs = r.config.as_object().cloned().unwrap_or_default();
    let tags: serde_json::Map<String, serde_json::Value> = info
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("prov:"))
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    attrs.insert("hostname".into(), info.hostname.clone().into());
    attrs.insert("plan".into(), info.plan.clone().into());
    attrs.insert("zone".into(), info.zone.clone().into());
    attrs.insert("os".into(), info.os.clone().into());
    attrs.insert("tags".into(), serde_json::Value::Object(tags));
    attrs.insert(
        "firewall_rules".into(),
        serde_json::to_value(&info.firewall_rules).unwrap_or_default(),
    );
    prov_state::ResourceRecord {
        address: addr.to_string(),
        kind: "server".into(),
        implementation: r.implementation.clone(),
        provider_id: Some(info.id.clone()),
        config: (*r.config).clone(),
        attributes: serde_json::Value::Object(attrs),
        outputs: crate::records::server_outputs(info),
        dependencies: r.depends_on.iter().map(|d| d.to_string()).collect(),
        updated_at: prov_state::now_secs(),
        // What the configuration declares secret (and what references secrets) stays hidden.
        sensitive_paths: r.sensitive.clone(),
        ..Default::default()
    }
}
