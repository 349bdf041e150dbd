//! The engine's entry points, one per CLI command: load a workspace, plan, apply; commands call these and only render.

use crate::apply::{self, ApplyOptions, ApplyReport};
use crate::config::{self, EvalOptions, Evaluated};
use crate::error::{Diagnostic, EngineError};
use crate::events::EventSink;
use crate::graph::Graph;
use crate::load::{build_model, Model};
use crate::plan::make::{make_plan, PlanOptions};
use crate::plan::Plan;
use crate::registry::{Bound, Registry};
use prov_state::{StateRead, StateStore};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
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
    pub evaluated: Evaluated,
    pub model: Model,
    pub graph: Graph,
    pub bound: Arc<Bound>,
    /// sha256 of the evaluated configuration.
    pub config_hash: String,
}

fn hash_json(v: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(v).expect("JSON serialises");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Evaluates the configuration and builds the model and graph; every problem found is reported.
pub fn load(
    ws: &Workspace,
    registry: &Registry,
    eval: &EvalOptions,
) -> Result<Loaded, EngineError> {
    let evaluated = config::evaluate(&ws.dir, eval)?;
    let providers = evaluated
        .value
        .get("providers")
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    let bound = Arc::new(registry.bind(ws.dir.clone(), &providers));
    let model = build_model(&evaluated.value, &evaluated.positions, &bound)
        .map_err(EngineError::Invalid)?;
    let graph = Graph::build(&model).map_err(|d| EngineError::Invalid(vec![d]))?;
    let config_hash = hash_json(&evaluated.value);
    Ok(Loaded {
        workspace: ws.clone(),
        evaluated,
        model,
        graph,
        bound,
        config_hash,
    })
}

/// Binds the registry for applying a saved plan (no evaluation: the plan is the whole contract).
pub fn bind_for_plan(ws: &Workspace, registry: &Registry, plan: &Plan) -> Arc<Bound> {
    Arc::new(registry.bind(ws.dir.clone(), &plan.providers))
}

/// `prov validate`: the configuration evaluates, the model is consistent, and every provider
/// in use accepts its settings.
pub async fn validate(loaded: &Loaded) -> Result<Vec<String>, EngineError> {
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

/// `prov plan`: diff the loaded configuration against the state.
pub fn plan(
    loaded: &Loaded,
    state: &dyn StateRead,
    opts: &PlanOptions,
) -> Result<Plan, EngineError> {
    let snap = state.snapshot()?;
    make_plan(
        &loaded.model,
        &loaded.graph,
        &snap,
        &loaded.bound,
        opts,
        &loaded.config_hash,
    )
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
    if let Some(path) = plan_path {
        apply::check_plan_current(plan, &store.meta()?, path)?;
    }
    apply::apply(plan, bound, store, opts, events).await
}
