//! Makes the plan: desired model vs recorded state, resource by resource in dependency order.

use super::{diff::diff, Action, OutputChange, Plan, PlanMode, ResourceChange};
use crate::error::{Diagnostic, EngineError};
use crate::graph::Graph;
use crate::load::{resolve_ref, Model};
use crate::model::Address;
use crate::refs::{get_path, substitute, RefPath, Resolved};
use crate::registry::Bound;
use prov_state::{ResourceRecord, Snapshot};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    pub destroy: bool,
    /// Ask the real world first and plan against what it has (default in the CLI).
    pub refresh: bool,
    /// Only accept the real world into the state.
    pub refresh_only: bool,
    pub refresh_opts: crate::drift::RefreshOptions,
    /// Limit the plan to these resources and what they depend on.
    pub targets: Vec<Address>,
    /// Force these resources to be replaced.
    pub replace: Vec<Address>,
}

/// What is known about a resource while planning its dependents.
struct Planned {
    after: Value,
    unknown: Value,
    fresh: bool,
}

/// Resolves a reference while planning: from the planned value of its target where known, else
/// unknown when the target is (re)created, else from the target's record.
fn plan_lookup(
    rp: &RefPath,
    planned: &HashMap<Address, Planned>,
    records: &BTreeMap<Address, &ResourceRecord>,
    addrs: &BTreeSet<Address>,
) -> Result<Resolved, String> {
    let (target, attr) = resolve_ref(rp, addrs)?;
    if let Some(p) = planned.get(&target) {
        if let Some(v) = get_path(&p.after, &attr) {
            let unk = get_path(&p.unknown, &attr).is_some_and(|u| u != &Value::Bool(false));
            if !unk && !v.is_null() {
                return Ok(Resolved::Known(v.clone()));
            }
        }
        if p.fresh {
            return Ok(Resolved::Unknown);
        }
    }
    match records.get(&target) {
        Some(tr) => record_attr(tr, &attr)
            .cloned()
            .map(Resolved::Known)
            .ok_or_else(|| format!("{target} has no attribute {:?}", attr.join("."))),
        None => Ok(Resolved::Unknown),
    }
}

/// Parses the records' addresses; a record whose address does not parse is corrupt state.
pub fn parse_records(snap: &Snapshot) -> Result<BTreeMap<Address, &ResourceRecord>, EngineError> {
    let mut out = BTreeMap::new();
    for (k, r) in &snap.resources {
        let a: Address = k.parse().map_err(|e: String| {
            EngineError::Invalid(vec![Diagnostic::new(
                Some(k.clone()),
                None,
                format!("state record has an invalid address: {e}"),
            )])
        })?;
        out.insert(a, r);
    }
    Ok(out)
}

fn prior_deps(rec: &ResourceRecord) -> Vec<Address> {
    rec.dependencies
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect()
}

/// What `${...}` finds at `attr` in a record: its outputs first, then its attributes (the same
/// precedence as `referable`, without building the merged value on every lookup).
pub fn record_attr<'a>(rec: &'a ResourceRecord, attr: &[String]) -> Option<&'a Value> {
    get_path(&rec.outputs, attr).or_else(|| get_path(&rec.attributes, attr))
}

/// Merges recorded outputs under the attributes: what `${...}` can refer to.
pub fn referable(attributes: &Value, outputs: &Value) -> Value {
    let mut m = outputs.as_object().cloned().unwrap_or_default();
    if let Some(a) = attributes.as_object() {
        for (k, v) in a {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(m)
}

pub fn make_plan(
    model: &Model,
    graph: &Graph,
    snap: &Snapshot,
    bound: &Bound,
    opts: &PlanOptions,
    config_hash: &str,
) -> Result<Plan, EngineError> {
    let records = parse_records(snap)?;
    let mut errors = Vec::new();
    for a in opts.targets.iter().chain(&opts.replace) {
        if !model.resources.contains_key(a) && !records.contains_key(a) {
            errors.push(Diagnostic::new(
                Some(a.to_string()),
                None,
                "is neither declared nor in the state",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    let scope = scope(model, graph, &records, opts);
    let in_scope = |a: &Address| scope.as_ref().is_none_or(|s| s.contains(a));
    let addrs: BTreeSet<Address> = model.resources.keys().cloned().collect();

    let mut planned: HashMap<Address, Planned> = HashMap::new();
    let mut changes: Vec<ResourceChange> = Vec::new();
    let mut actions: HashMap<Address, Action> = HashMap::new();

    if !opts.destroy {
        for a in &graph.order {
            let r = &model.resources[a];
            let rec = records.get(a).copied();
            let mut lookup = |rp: &RefPath| plan_lookup(rp, &planned, &records, &addrs);
            let mut sub = substitute(&r.config, &mut lookup).map_err(|e| {
                EngineError::Invalid(vec![Diagnostic::new(
                    Some(a.to_string()),
                    r.declared_at.clone(),
                    e,
                )])
            })?;
            if let Some(rec) = rec {
                super::diff::keep_ignored(
                    &mut sub.value,
                    &rec.attributes,
                    &r.lifecycle.ignore_changes,
                );
            }
            let placement_replaced = r.depends_on.iter().find(|d| {
                let placement = a.parent().as_ref() == Some(*d)
                    || (matches!(a, Address::Cluster(_)) && matches!(d, Address::Server(_)));
                placement
                    && matches!(
                        actions.get(*d),
                        Some(Action::Replace { .. }) | Some(Action::Create)
                    )
            });
            let cbd = r.lifecycle.create_before_destroy;
            let (action, diffs) = match rec {
                None => (Action::Create, Vec::new()),
                Some(rec) => {
                    let mut diffs = diff(
                        &rec.attributes,
                        &sub.value,
                        &sub.unknown,
                        &r.lifecycle.ignore_changes,
                    );
                    let forcing: Vec<String> = if matches!(a, Address::Server(_)) {
                        let p = bound.provider(&r.implementation)?;
                        let force = p.replace_on_change();
                        diffs
                            .iter_mut()
                            .filter(|d| force.contains(&d.path.split('.').next().unwrap_or("")))
                            .map(|d| {
                                d.forces_replacement = true;
                                d.path.clone()
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let replace = |reason: String| Action::Replace {
                        reason,
                        create_before_destroy: cbd,
                    };
                    let action = if opts.replace.contains(a) {
                        replace("requested with --replace".into())
                    } else if rec.implementation != r.implementation {
                        replace(format!(
                            "implementation changes from {:?} to {:?}",
                            rec.implementation, r.implementation
                        ))
                    } else if let Some(p) = placement_replaced {
                        replace(format!("{p} is replaced"))
                    } else if !forcing.is_empty() {
                        replace(format!("{} forces replacement", forcing.join(", ")))
                    } else if !diffs.is_empty() {
                        Action::Update
                    } else {
                        Action::NoOp
                    };
                    (action, diffs)
                }
            };
            let fresh = matches!(action, Action::Create | Action::Replace { .. });
            let (mut after, mut after_unknown) = (sub.value, sub.unknown);
            if fresh && matches!(a, Address::Server(_)) {
                // What the provider computes is unknown until the server exists.
                let p = bound.provider(&r.implementation)?;
                if let (Value::Object(v), Value::Object(u)) = (&mut after, &mut after_unknown) {
                    for k in p.computed_attributes() {
                        if !v.contains_key(*k) {
                            v.insert(k.to_string(), Value::Null);
                            u.insert(k.to_string(), Value::Bool(true));
                        }
                    }
                }
            }
            planned.insert(
                a.clone(),
                Planned {
                    after: after.clone(),
                    unknown: after_unknown.clone(),
                    fresh,
                },
            );
            if !in_scope(a) {
                continue;
            }
            actions.insert(a.clone(), action.clone());
            changes.push(ResourceChange {
                address: a.clone(),
                implementation: r.implementation.clone(),
                action,
                before: rec.map(|x| x.attributes.clone()),
                after: Some(after),
                after_unknown,
                config: Some(r.config.clone()),
                diffs,
                depends_on: r.depends_on.clone(),
                prior_dependencies: rec.map(prior_deps).unwrap_or_default(),
                provider_id: rec.and_then(|x| x.provider_id.clone()),
                lifecycle: r.lifecycle.clone(),
                declared_at: r.declared_at.clone(),
                sensitive: r.sensitive.clone(),
            });
        }
    }

    for (a, rec) in &records {
        if (!opts.destroy && model.resources.contains_key(a)) || !in_scope(a) {
            continue;
        }
        let declared = model.resources.get(a);
        let reason = if opts.destroy {
            "destroy requested"
        } else {
            "no longer in the configuration"
        };
        changes.push(ResourceChange {
            address: a.clone(),
            implementation: rec.implementation.clone(),
            action: Action::Delete {
                reason: reason.into(),
            },
            before: Some(rec.attributes.clone()),
            after: None,
            after_unknown: Value::Bool(false),
            config: None,
            diffs: Vec::new(),
            depends_on: Vec::new(),
            prior_dependencies: prior_deps(rec),
            provider_id: rec.provider_id.clone(),
            lifecycle: declared.map(|r| r.lifecycle.clone()).unwrap_or_default(),
            declared_at: declared.and_then(|r| r.declared_at.clone()),
            sensitive: rec.sensitive_paths.clone(),
        });
    }
    changes.sort_by(|x, y| x.address.cmp(&y.address));

    for c in &changes {
        if c.lifecycle.prevent_destroy
            && matches!(c.action, Action::Delete { .. } | Action::Replace { .. })
        {
            let what = match &c.action {
                Action::Replace { reason, .. } => format!("replace it ({reason})"),
                _ => "destroy it".to_string(),
            };
            errors.push(Diagnostic::new(
                Some(c.address.to_string()),
                c.declared_at.clone(),
                format!("lifecycle.prevent_destroy is set, but the plan would {what}; remove prevent_destroy first if this is intended"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    let output_changes = if opts.targets.is_empty() {
        output_changes(model, snap, opts.destroy, &planned, &records, &addrs)
    } else {
        Vec::new()
    };
    Ok(Plan {
        resolutions: Vec::new(),
        drift: Vec::new(),
        refreshed: Vec::new(),
        output_changes,
        prov_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: if opts.destroy {
            PlanMode::Destroy
        } else {
            PlanMode::Normal
        },
        lineage: snap.meta.lineage.clone(),
        serial: snap.meta.serial,
        config_hash: config_hash.to_string(),
        changes,
        outputs: if opts.destroy {
            Default::default()
        } else {
            model.outputs.clone()
        },
        providers: model.providers.clone(),
        targets: opts.targets.clone(),
    })
}

/// The addresses a targeted plan covers (None: everything).
fn scope(
    model: &Model,
    graph: &Graph,
    records: &BTreeMap<Address, &ResourceRecord>,
    opts: &PlanOptions,
) -> Option<BTreeSet<Address>> {
    if opts.targets.is_empty() {
        return None;
    }
    let mut out = BTreeSet::new();
    let mut stack: Vec<Address> = opts.targets.clone();
    while let Some(a) = stack.pop() {
        if !out.insert(a.clone()) {
            continue;
        }
        if opts.destroy || !model.resources.contains_key(&a) {
            // Destroying a resource destroys what was built on it first.
            for (b, rec) in records {
                if prior_deps(rec).contains(&a) {
                    stack.push(b.clone());
                }
            }
        } else {
            stack.extend(graph.dependencies(&a));
        }
    }
    Some(out)
}

/// Outputs whose value would change: new, removed, different, or not known until apply.
fn output_changes(
    model: &Model,
    snap: &Snapshot,
    destroy: bool,
    planned: &HashMap<Address, Planned>,
    records: &BTreeMap<Address, &ResourceRecord>,
    addrs: &BTreeSet<Address>,
) -> Vec<OutputChange> {
    let mut out = Vec::new();
    if !destroy {
        for (name, v) in &model.outputs {
            let mut lookup = |rp: &RefPath| plan_lookup(rp, planned, records, addrs);
            let before = snap.outputs.get(name).cloned();
            let after = substitute(v, &mut lookup)
                .ok()
                .filter(|s| s.is_fully_known())
                .map(|s| s.value);
            if after.is_none() || after != before {
                out.push(OutputChange {
                    name: name.clone(),
                    before,
                    after,
                });
            }
        }
    }
    for (name, v) in &snap.outputs {
        if destroy || !model.outputs.contains_key(name) {
            out.push(OutputChange {
                name: name.clone(),
                before: Some(v.clone()),
                after: None,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}
