//! Many writers on one state: what an apply locks (the resources it changes and the records it reads references from), and when a plan is stale (one of those changed since it was made).

use crate::error::EngineError;
use crate::model::Address;
use crate::plan::{Plan, ResourceChange};
use prov_state::StateStore;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Every address applying `plan` writes or reads: the resources it changes, deposes, protects,
/// settles (pending operations) or accepts from a refresh, and the records their steps read —
/// references and dependencies, a taskserv's server, a component's cluster. Unchanged
/// resources are left out: nothing is applied to them. Outputs are resolved separately, from
/// the records as they are at the end ([`prov_state::StateWrite::update_outputs`]).
pub fn touched(plan: &Plan) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in plan.changes.iter().filter(|c| !c.action.is_noop()) {
        add_change(&mut out, c);
    }
    out.extend(plan.protect.iter().map(Address::to_string));
    out.extend(plan.deposed.iter().map(|d| d.address.to_string()));
    out.extend(plan.resolutions.iter().map(|r| r.pending.address.clone()));
    out.extend(plan.refreshed.iter().map(|(a, _)| a.to_string()));
    out
}

fn add_change(out: &mut BTreeSet<String>, c: &ResourceChange) {
    out.insert(c.address.to_string());
    out.extend(c.depends_on.iter().map(Address::to_string));
    for (_, refs) in &c.references {
        // Each entry is the reference as written followed by the address it names.
        out.extend(
            refs.iter()
                .filter_map(|r| r.parse::<Address>().ok())
                .map(|a| a.to_string()),
        );
    }
    if let Some(parent) = c.address.parent() {
        out.insert(parent.to_string());
    }
}

/// Takes the locks applying `plan` needs, waiting up to `timeout` for resources another
/// writer holds (then failing, naming it and the overlapping addresses).
pub async fn lock_for(
    plan: &Plan,
    store: &Arc<dyn StateStore>,
    timeout: Duration,
) -> Result<BTreeSet<String>, EngineError> {
    let wanted = touched(plan);
    let (s, w) = (store.clone(), wanted.clone());
    tokio::task::spawn_blocking(move || s.lock_resources(&w, timeout))
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
    Ok(wanted)
}

/// What [`check_current`] reads of a plan: the state it was made against and how. Small, so
/// the check can run on a blocking thread without a copy of the whole plan (at 100,000
/// resources a plan is hundreds of megabytes).
#[derive(Clone, Debug)]
pub struct PlanOrigin {
    pub untrusted: bool,
    pub lineage: String,
    pub serial: u64,
}

impl PlanOrigin {
    pub fn of(plan: &Plan) -> PlanOrigin {
        PlanOrigin {
            untrusted: plan.untrusted,
            lineage: plan.lineage.clone(),
            serial: plan.serial,
        }
    }
}

/// Refuses a plan made against another state (foreign), an untrusted saved plan, and a stale
/// one: a plan is stale when a resource it changes or reads (`touched`) was written since it was
/// made. Commits to other resources (another apply's, in parallel) leave it current. A plan made
/// before any state existed stays current only while nothing has been written. `plan_path` is
/// the saved plan's file (None: a plan made by this command).
pub fn check_current(
    plan: &PlanOrigin,
    store: &dyn StateStore,
    touched: &BTreeSet<String>,
    plan_path: Option<&Path>,
) -> Result<(), EngineError> {
    let path = || plan_path.map(Path::to_path_buf);
    if plan.untrusted {
        if let Some(path) = plan_path {
            return Err(EngineError::UntrustedPlan { path: path.into() });
        }
    }
    let meta = store.meta()?;
    if plan.lineage.is_empty() {
        if meta.serial != 0 {
            return Err(EngineError::StalePlan {
                path: path(),
                plan_serial: 0,
                state_serial: meta.serial,
                changed: Vec::new(),
            });
        }
        return Ok(());
    }
    if meta.lineage != plan.lineage {
        return Err(EngineError::ForeignPlan {
            path: path().unwrap_or_default(),
            plan_lineage: plan.lineage.clone(),
            state_lineage: if meta.lineage.is_empty() {
                "(no state)".into()
            } else {
                meta.lineage.clone()
            },
        });
    }
    if meta.serial == plan.serial {
        return Ok(());
    }
    let changed = store.changed_since(touched, plan.serial)?;
    if changed.is_empty() {
        return Ok(());
    }
    Err(EngineError::StalePlan {
        path: path(),
        plan_serial: plan.serial,
        state_serial: meta.serial,
        changed: changed.into_iter().collect(),
    })
}

/// `--refresh=changed`: the addresses a refresh asks providers about, given a plan made without
/// refreshing: what it would change and what those depend on (directly or not, as recorded and
/// as configured), so a pull request's plan on a large workspace asks about its own resources
/// only. Drift of anything else is `prov drift`'s to find.
pub fn refresh_scope(plan: &Plan) -> BTreeSet<Address> {
    let by_addr: std::collections::HashMap<&Address, &ResourceChange> =
        plan.changes.iter().map(|c| (&c.address, c)).collect();
    let mut out: BTreeSet<Address> = BTreeSet::new();
    let mut stack: Vec<Address> = plan
        .changes
        .iter()
        .filter(|c| !c.action.is_noop())
        .map(|c| c.address.clone())
        .chain(plan.deposed.iter().map(|d| d.address.clone()))
        .collect();
    while let Some(a) = stack.pop() {
        if !out.insert(a.clone()) {
            continue;
        }
        if let Some(p) = a.parent() {
            stack.push(p);
        }
        if let Some(c) = by_addr.get(&a) {
            stack.extend(c.depends_on.iter().cloned());
            stack.extend(c.prior_dependencies.iter().cloned());
        }
    }
    out
}
