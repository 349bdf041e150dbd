//! Loading a workspace: the directory, its evaluation, model and graph (`Loaded`), and the state opened beside them.

use crate::config::{self, EvalOptions, Evaluated};
use crate::error::EngineError;
use crate::graph::Graph;
use crate::load::{build_model_from, Model};
use crate::registry::{Bound, Registry};
use prov_state::StateRead;
use std::path::PathBuf;
use std::sync::Arc;

/// A workspace directory: `main.ncl` plus `.prov/` (state, simulated worlds, library copy).
#[derive(Clone, Debug)]
pub struct Workspace {
    pub dir: PathBuf,
}

impl Workspace {
    pub fn new(dir: impl Into<PathBuf>) -> Workspace {
        Workspace { dir: dir.into() }
    }
    /// The default sled state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".prov").join("state")
    }
}

/// An evaluated, validated workspace ready to plan.
pub struct Loaded {
    pub workspace: Workspace,
    /// The evaluation; its `value.servers` is null, moved into `model` (`hash` still covers it).
    pub evaluated: Evaluated,
    pub model: Model,
    pub graph: Graph,
    pub bound: Arc<Bound>,
    /// sha256 of the evaluated configuration.
    pub config_hash: String,
}

/// Evaluates the configuration and builds the model and graph; every problem found is reported.
pub fn load(
    ws: &Workspace,
    registry: &Registry,
    eval: &EvalOptions,
) -> Result<Loaded, EngineError> {
    let evaluated = config::evaluate(&ws.dir, eval)?;
    let bound = bind(ws, registry, &evaluated);
    build(ws, evaluated, bound)
}

/// A state store the caller opened (the CLI owns backends, locks and their errors).
pub trait OpenedState: Send {
    /// What the engine reads through.
    fn reader(&self) -> &dyn StateRead;
}

/// What `prov plan` needs before it diffs: the loaded workspace, the opened state and what its
/// `start` made of the snapshot (records without their configurations, as [`plan`] reads them).
pub struct LoadedWithState<S, T = prov_state::Snapshot> {
    pub loaded: Loaded,
    pub state: S,
    /// What the caller's `start` made of the snapshot.
    pub started: T,
}

/// What [`load_with_state`]'s caller does with the snapshot as soon as the providers are bound,
/// before the model is built (a plan starts its refresh: [`crate::ops::start_plan`]); `|_, _,
/// snapshot| Ok(snapshot)` keeps it.
pub trait Start<S, T>:
    FnOnce(&Arc<Bound>, &S, prov_state::Snapshot) -> Result<T, EngineError> + Send
{
}
impl<S, T, F> Start<S, T> for F where
    F: FnOnce(&Arc<Bound>, &S, prov_state::Snapshot) -> Result<T, EngineError> + Send
{
}

/// [`load`] and the state's snapshot, for a read-only plan. The state is opened and its snapshot
/// read on a second thread while the model and graph are built: the two do not depend on each
/// other, and at 10,000 resources each is tens of milliseconds (most of it first-touch page
/// faults, which two cores take in parallel). `open` sees only the configuration's `backend`
/// section. A configuration error wins over an error opening the state, as it would if the two
/// ran one after the other.
///
/// With `early` (the caller's backend depends on nothing but the configuration's `backend`
/// section, and opening it for reading writes nothing), a `main.ncl` that imports nothing and
/// never mentions `backend` has the default backend: the state is then opened and read while
/// the configuration is evaluated, not after. Should the evaluation say otherwise after all,
/// that read is dropped and the state opened again with what it says; a configuration error
/// still wins.
///
/// `start` gets the snapshot as soon as it is read and the providers are bound, on the reading
/// thread while this one builds the model, and what it returns comes back instead of the
/// snapshot: a plan starts asking its providers there ([`crate::ops::start_plan`]). A
/// configuration error wins over `start`'s too.
pub fn load_with_state<S: OpenedState, T: Send>(
    ws: &Workspace,
    registry: &Registry,
    eval: &EvalOptions,
    early: bool,
    open: impl Fn(&serde_json::Value) -> Result<S, EngineError> + Send + Sync,
    start: impl Start<S, T>,
) -> Result<LoadedWithState<S, T>, EngineError> {
    let guess = if early { default_backend(ws) } else { None };
    let Some(guess) = guess else {
        let evaluated = config::evaluate(&ws.dir, eval)?;
        return build_with_state(ws, registry, evaluated, open, start);
    };
    // The reading thread starts the caller's work as soon as it has the snapshot and this
    // one has bound the registry, while this one builds the model; it is sent no registry when
    // the evaluation fails or names another backend, and then hands `start` back.
    let (send_bound, bound_sent) = std::sync::mpsc::channel::<Arc<Bound>>();
    let (outcome, reading) = std::thread::scope(|scope| {
        let (open, guess) = (&open, &guess);
        let reader = std::thread::Builder::new()
            .name("prov-state-read".into())
            .spawn_scoped(scope, move || {
                let opened = read_state(open, guess);
                Ok(match bound_sent.recv() {
                    Ok(bound) => Reading::Started(opened.and_then(|(state, snapshot)| {
                        Ok((start(&bound, &state, snapshot)?, state))
                    })),
                    Err(_) => Reading::Unstarted(start),
                })
            });
        let outcome = config::evaluate(&ws.dir, eval).map(|evaluated| {
            if backend_section(&evaluated) != *guess {
                return Err(Box::new(evaluated));
            }
            let bound = bind(ws, registry, &evaluated);
            let _ = send_bound.send(bound.clone());
            Ok(build(ws, evaluated, bound))
        });
        drop(send_bound);
        (outcome, joined(reader))
    });
    let outcome = outcome?;
    match (outcome, reading?) {
        (Err(evaluated), Reading::Unstarted(start)) => {
            build_with_state(ws, registry, *evaluated, open, start)
        }
        (Ok(built), Reading::Started(started)) => {
            // A configuration error wins over the state's.
            let loaded = built?;
            let (started, state) = started?;
            Ok(LoadedWithState {
                loaded,
                state,
                started,
            })
        }
        _ => Err(EngineError::Internal(
            "the state was read for another backend than the configuration's".into(),
        )),
    }
}

/// What the thread that read the state early did with it.
enum Reading<S, T, F> {
    /// The caller's `start` ran on the snapshot (or the state could not be read).
    Started(Result<(T, S), EngineError>),
    /// Not started (the configuration did not evaluate, or names another backend): `start` back.
    Unstarted(F),
}

/// The `backend` section a `main.ncl` that imports nothing and never mentions `backend`
/// evaluates to (the `Workspace` contract's default); None for any other `main.ncl`.
fn default_backend(ws: &Workspace) -> Option<serde_json::Value> {
    let bytes = std::fs::read(ws.dir.join("main.ncl")).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("backend") || text.contains("import") {
        return None;
    }
    Some(serde_json::json!({ "backend": { "type": "sled" } }))
}

/// The configuration's `backend` section, as `open` sees it.
fn backend_section(evaluated: &Evaluated) -> serde_json::Value {
    let mut backend = serde_json::Map::new();
    if let Some(b) = evaluated.value.get("backend") {
        backend.insert("backend".into(), b.clone());
    }
    serde_json::Value::Object(backend)
}

/// Opens the state and reads its snapshot (records without their configurations), decoded on
/// this thread alone: the other core evaluates or builds the model meanwhile.
fn read_state<S: OpenedState>(
    open: &(impl Fn(&serde_json::Value) -> Result<S, EngineError> + Sync),
    backend: &serde_json::Value,
) -> Result<(S, prov_state::Snapshot), EngineError> {
    let state = open(backend)?;
    let snapshot = state.reader().snapshot_with(prov_state::ReadOptions {
        without_configs: true,
        one_thread: true,
    })?;
    Ok((state, snapshot))
}

/// The result of a state-reading thread (its panic goes on in this one).
fn joined<T>(
    reader: std::io::Result<std::thread::ScopedJoinHandle<'_, Result<T, EngineError>>>,
) -> Result<T, EngineError> {
    match reader {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        Err(e) => Err(EngineError::Internal(format!(
            "cannot start a thread to read the state: {e}"
        ))),
    }
}

/// [`load_with_state`] after the evaluation (the benchmark probe times the two apart).
pub fn build_with_state<S: OpenedState, T: Send>(
    ws: &Workspace,
    registry: &Registry,
    evaluated: Evaluated,
    open: impl Fn(&serde_json::Value) -> Result<S, EngineError> + Send + Sync,
    start: impl Start<S, T>,
) -> Result<LoadedWithState<S, T>, EngineError> {
    let backend = backend_section(&evaluated);
    let bound = bind(ws, registry, &evaluated);
    let (built, opened) = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("prov-state-read".into())
            .spawn_scoped(scope, || {
                let (state, snapshot) = read_state(&open, &backend)?;
                Ok((start(&bound, &state, snapshot)?, state))
            });
        let built = build(ws, evaluated, bound.clone());
        (built, joined(reader))
    });
    let loaded = built?;
    let (started, state) = opened?;
    Ok(LoadedWithState {
        loaded,
        state,
        started,
    })
}

/// The settings of every provider the servers use, checked against the provider's schema
/// (`Registry::provider_schema`): every problem of every provider, each naming
/// `providers.NAME.KEY` and where `providers.NAME` is declared. An extension directory's schema
/// is not evaluated for a confined evaluation (an untrusted plan refuses such providers).
fn check_provider_settings(bound: &Bound, evaluated: &Evaluated) -> Vec<crate::error::Diagnostic> {
    let used: std::collections::BTreeSet<&str> = evaluated
        .value
        .get("servers")
        .and_then(|s| s.as_object())
        .into_iter()
        .flat_map(|s| s.values())
        .filter_map(|s| s.get("provider").and_then(|p| p.as_str()))
        .collect();
    let mut out = Vec::new();
    for name in used {
        if let Some(Err(problems)) = bound.check_provider_settings(name, evaluated.confined) {
            let at = evaluated
                .positions
                .get(&format!("providers.{name}"))
                .cloned();
            out.extend(problems.iter().map(|p| {
                crate::error::Diagnostic::new(
                    None,
                    at.clone(),
                    p.under(&format!("providers.{name}")),
                )
            }));
        }
    }
    out
}

/// The registry bound to the evaluation's provider settings.
fn bind(ws: &Workspace, registry: &Registry, evaluated: &Evaluated) -> Arc<Bound> {
    let empty = serde_json::Map::new();
    let providers = evaluated
        .value
        .get("providers")
        .and_then(|p| p.as_object())
        .unwrap_or(&empty);
    Arc::new(registry.bind(ws.dir.clone(), providers))
}

/// The model and graph of an evaluation, with `bound` ([`bind`]).
fn build(
    ws: &Workspace,
    mut evaluated: Evaluated,
    bound: Arc<Bound>,
) -> Result<Loaded, EngineError> {
    let mut problems = check_provider_settings(&bound, &evaluated);
    // The servers' attributes move into the model (nothing reads them from the value later).
    let model = build_model_from(
        &mut evaluated.value,
        &evaluated.positions,
        &evaluated.defaults,
        &bound,
    );
    let model = match model {
        Ok(model) if problems.is_empty() => model,
        Ok(_) => return Err(EngineError::Invalid(problems)),
        Err(more) => {
            problems.extend(more);
            return Err(EngineError::Invalid(problems));
        }
    };
    let graph = Graph::build(&model).map_err(|d| EngineError::Invalid(vec![d]))?;
    let config_hash = evaluated.hash.clone();
    Ok(Loaded {
        workspace: ws.clone(),
        evaluated,
        model,
        graph,
        bound,
        config_hash,
    })
}
