//! Makes the plan: desired model vs recorded state, resource by resource in dependency order.

use super::{Action, OutputChange, Plan, PlanMode, ResourceChange};
use crate::diff::diff;
use crate::error::{Diagnostic, EngineError};
use crate::graph::Graph;
use crate::load::{resolve_ref, Model};
use crate::model::Address;
use crate::records::{parse_records, record_attr};
use crate::refs::{get_path, substitute, substitutes_to, RefPath, Resolved};
use crate::registry::Bound;
use prov_state::{ResourceRecord, Snapshot};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    pub destroy: bool,
    /// Ask the real world first and plan against what it has (default in the CLI).
    pub refresh: bool,
    /// With `refresh`: ask only about what a plan without refresh would change and what that
    /// depends on (`--refresh=changed`; see `concurrency::refresh_scope`).
    pub refresh_changed: bool,
    /// Only accept the real world into the state.
    pub refresh_only: bool,
    pub refresh_opts: crate::drift::RefreshOptions,
    /// Limit the plan to these resources and what they depend on.
    pub targets: Vec<Address>,
    /// Force these resources to be replaced.
    pub replace: Vec<Address>,
    /// Adopt live servers tagged for addresses the plan would create (see `ops::plan_from`).
    pub adopt: bool,
    /// Ask the providers' get-pricing and put the monthly cost in the plan (`plan::cost`); the
    /// CLI's default, off with `--no-cost`.
    pub cost: bool,
    /// A plan of code nobody has reviewed (a pull request): refresh through provider APIs
    /// only, run nothing on servers, refuse workspace extension programs (see `ops::plan_from`).
    pub untrusted: bool,
}

/// What is known about a resource while planning its dependents. Nothing is copied for it:
/// the values live in the record (no-op) or in the plan's change (everything else).
enum Planned {
    /// Unchanged: its desired attributes are its recorded ones, all known.
    Same,
    /// Planned at this index of `changes`: `after` and `after_unknown` there.
    Change { at: usize, fresh: bool },
    /// Outside a targeted plan's scope: kept here only for the lookups of its dependents.
    Aside {
        after: Value,
        unknown: Value,
        fresh: bool,
    },
}

/// Resolves a reference while planning: from the planned value of its target where known, else
/// unknown when the target is (re)created, else from the target's record.
fn plan_lookup(
    rp: &RefPath,
    planned: &HashMap<Address, Planned>,
    changes: &[ResourceChange],
    records: &BTreeMap<Address, &ResourceRecord>,
    addrs: &BTreeSet<Address>,
) -> Result<Resolved, String> {
    let (target, attr) = resolve_ref(rp, addrs)?;
    let known = |after: &Value, unknown: &Value| -> Option<Value> {
        let v = get_path(after, &attr)?;
        let unk = get_path(unknown, &attr).is_some_and(|u| u != &Value::Bool(false));
        (!unk && !v.is_null()).then(|| v.clone())
    };
    let (found, fresh) = match planned.get(&target) {
        None => (None, false),
        // A no-op's desired attributes are its recorded ones.
        Some(Planned::Same) => match records.get(&target) {
            Some(tr) => (known(&tr.attributes, &Value::Bool(false)), false),
            None => (None, false),
        },
        Some(Planned::Change { at, fresh }) => {
            let c = &changes[*at];
            (
                c.after.as_ref().and_then(|a| known(a, &c.after_unknown)),
                *fresh,
            )
        }
        Some(Planned::Aside {
            after,
            unknown,
            fresh,
        }) => (known(after, unknown), *fresh),
    };
    if let Some(v) = found {
        return Ok(Resolved::Known(v));
    }
    if fresh {
        return Ok(Resolved::Unknown);
    }
    match records.get(&target) {
        Some(tr) => record_attr(tr, &attr)
            .cloned()
            .map(Resolved::Known)
            .ok_or_else(|| format!("{target} has no attribute {:?}", attr.join("."))),
        None => Ok(Resolved::Unknown),
    }
}

fn prior_deps(rec: &ResourceRecord) -> Vec<Address> {
    rec.dependencies
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect()
}

/// Makes the plan against a snapshot the caller keeps. The `before` of no-op changes is a copy
/// of the record's attributes; [`make_plan_from`] moves them instead.
pub fn make_plan(
    model: &Model,
    graph: &Graph,
    snap: &Snapshot,
    bound: &Bound,
    opts: &PlanOptions,
    config_hash: &str,
) -> Result<Plan, EngineError> {
    let mut plan = plan_changes(model, graph, snap, bound, opts, config_hash)?;
    for c in &mut plan.changes {
        if c.action.is_noop() {
            let rec = snap.resources.get(&c.address.to_string());
            c.before = rec.map(|r| r.attributes.clone());
            c.computed = rec.map(|r| r.outputs.clone());
        }
    }
    Ok(plan)
}

/// [`make_plan`] on a snapshot nobody needs afterwards: the records' attributes move into the
/// no-op changes instead of being copied (at 10,000 unchanged resources, the largest part of a
/// plan's memory and time).
pub fn make_plan_from(
    model: &Model,
    graph: &Graph,
    mut snap: Snapshot,
    bound: &Bound,
    opts: &PlanOptions,
    config_hash: &str,
) -> Result<Plan, EngineError> {
    let mut plan = plan_changes(model, graph, &snap, bound, opts, config_hash)?;
    for c in &mut plan.changes {
        if c.action.is_noop() {
            if let Some(r) = snap.resources.get_mut(&c.address.to_string()) {
                c.before = Some(std::mem::take(&mut r.attributes));
                c.computed = Some(std::mem::take(&mut r.outputs));
            }
        }
    }
    // What is left (every record's config and outputs) is freed on another thread: at 10,000
    // records that is tens of milliseconds nobody needs to wait for.
    let _ = std::thread::Builder::new()
        .name("prov-free-snapshot".into())
        .spawn(move || drop(snap));
    Ok(plan)
}

/// The plan, with the `before` of no-op changes left for the caller to fill.
fn plan_changes(
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

    let mut planned: HashMap<Address, Planned> = HashMap::with_capacity(graph.order.len());
    let mut changes: Vec<ResourceChange> = Vec::with_capacity(graph.order.len());
    let mut actions: HashMap<Address, Action> = HashMap::new();

    if !opts.destroy {
        for a in &graph.order {
            let r = &model.resources[a];
            let rec = records.get(a).copied();
            let placement_replaced = r.depends_on.iter().find(|d| {
                let placement = a.parent().as_ref() == Some(*d)
                    || (matches!(a, Address::Cluster(_)) && matches!(d, Address::Server(_)));
                placement
                    && matches!(
                        actions.get(*d),
                        Some(Action::Replace { .. }) | Some(Action::Create)
                    )
            });
            let mut lookup = |rp: &RefPath| plan_lookup(rp, &planned, &changes, &records, &addrs);
            // The common case, an unchanged resource, is recognised without building its
            // substituted value or diffing it: its configuration substitutes to exactly its
            // recorded attributes, and nothing else asks for a replacement.
            if let Some(rec) = rec {
                if r.lifecycle.ignore_changes.is_empty()
                    && placement_replaced.is_none()
                    && rec.implementation == r.implementation
                    && !opts.replace.contains(a)
                    && substitutes_to(&r.config, &rec.attributes, &mut lookup)
                {
                    if matches!(a, Address::Server(_)) {
                        // As below: a server's provider must be usable, changed or not.
                        bound.provider(&r.implementation)?;
                    }
                    planned.insert(a.clone(), Planned::Same);
                    if in_scope(a) {
                        actions.insert(a.clone(), Action::NoOp);
                        changes.push(noop_change(a, r, rec, &addrs));
                    }
                    continue;
                }
            }
            let mut sub = substitute(&r.config, &mut lookup).map_err(|e| {
                EngineError::Invalid(vec![Diagnostic::new(
                    Some(a.to_string()),
                    r.declared_at.clone(),
                    e,
                )])
            })?;
            if let Some(rec) = rec {
                crate::diff::keep_ignored(
                    &mut sub.value,
                    &rec.attributes,
                    &r.lifecycle.ignore_changes,
                );
            }
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
            let noop = action.is_noop();
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
            if !in_scope(a) {
                planned.insert(
                    a.clone(),
                    Planned::Aside {
                        after,
                        unknown: after_unknown,
                        fresh,
                    },
                );
                continue;
            }
            actions.insert(a.clone(), action.clone());
            planned.insert(
                a.clone(),
                if noop {
                    Planned::Same
                } else {
                    Planned::Change {
                        at: changes.len(),
                        fresh,
                    }
                },
            );
            if let (true, Some(rec)) = (noop, rec) {
                changes.push(noop_change(a, r, rec, &addrs));
                continue;
            }
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
                defaults: r.defaults.clone(),
                computed: rec.map(|x| x.outputs.clone()),
                references: references(&r.config, &addrs),
            });
        }
    }
    // Outputs read the planned values through `changes` indices: before the sort below.
    let output_changes = if opts.targets.is_empty() {
        output_changes(
            model,
            snap,
            opts.destroy,
            &planned,
            &changes,
            &records,
            &addrs,
        )
    } else {
        Vec::new()
    };

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
            defaults: Vec::new(),
            computed: Some(rec.outputs.clone()),
            references: Vec::new(),
        });
    }
    changes.sort_by(|x, y| x.address.cmp(&y.address));
    let deposed = deposed_changes(&records, &in_scope);
    let protect: Vec<Address> = changes
        .iter()
        .filter(|c| c.action.is_noop() && c.lifecycle.prevent_destroy)
        .filter(|c| records.get(&c.address).is_some_and(|r| !r.protected))
        .map(|c| c.address.clone())
        .collect();

    for c in &changes {
        if !matches!(c.action, Action::Delete { .. } | Action::Replace { .. }) {
            continue;
        }
        let what = match &c.action {
            Action::Replace { reason, .. } => format!("replace it ({reason})"),
            _ => "destroy it".to_string(),
        };
        let recorded = records.get(&c.address).is_some_and(|r| r.protected);
        if c.lifecycle.prevent_destroy {
            errors.push(Diagnostic::new(
                Some(c.address.to_string()),
                c.declared_at.clone(),
                format!("lifecycle.prevent_destroy is set, but the plan would {what}; remove prevent_destroy first if this is intended"),
            ));
        } else if recorded {
            // The configuration no longer protects it (the setting or the whole block is gone),
            // but the state still does: losing the protection with the block is how a protected
            // server gets destroyed by a careless edit.
            errors.push(Diagnostic::new(
                Some(c.address.to_string()),
                c.declared_at.clone(),
                format!("is protected: lifecycle.prevent_destroy was set when it was applied and the state keeps the protection, but the plan would {what}; if this is intended, lift it with `prov state unprotect {}` first", c.address),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    Ok(Plan {
        deposed,
        protect,
        cost: None,
        resolutions: Vec::new(),
        tagged: Vec::new(),
        drift: Vec::new(),
        refreshed: Vec::new(),
        output_changes,
        prior_outputs: if opts.targets.is_empty() {
            snap.outputs.clone()
        } else {
            Default::default()
        },
        timestamp: crate::fsutil::now_rfc3339(),
        untrusted: false,
        unrefreshed: Vec::new(),
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
        sensitive_outputs: model.sensitive_outputs.iter().cloned().collect(),
        providers: model.providers.clone(),
        targets: opts.targets.clone(),
    })
}

/// Every deposed object of the records in scope: each is destroyed, whatever the plan does to
/// its address (they are ours and hold nothing any more).
fn deposed_changes(
    records: &BTreeMap<Address, &ResourceRecord>,
    in_scope: &dyn Fn(&Address) -> bool,
) -> Vec<super::DeposedChange> {
    let mut out = Vec::new();
    for (a, rec) in records {
        if !in_scope(a) {
            continue;
        }
        for d in &rec.deposed {
            out.push(super::DeposedChange {
                address: a.clone(),
                implementation: rec.implementation.clone(),
                provider_id: d.provider_id.clone(),
                before: d.attributes.clone(),
                sensitive: rec.sensitive_paths.clone(),
            });
        }
    }
    out
}

/// An unchanged resource's entry. It carries no copies: `after` is `before` (filled in by the
/// caller of [`plan_changes`]) and nothing of its configuration is applied.
fn noop_change(
    a: &Address,
    r: &crate::model::Resource,
    rec: &ResourceRecord,
    addrs: &BTreeSet<Address>,
) -> ResourceChange {
    ResourceChange {
        address: a.clone(),
        implementation: r.implementation.clone(),
        action: Action::NoOp,
        before: None,
        after: None,
        // A fully known value's mirror: no key is unknown.
        after_unknown: Value::Object(Default::default()),
        config: None,
        diffs: Vec::new(),
        depends_on: r.depends_on.clone(),
        prior_dependencies: prior_deps(rec),
        provider_id: rec.provider_id.clone(),
        lifecycle: r.lifecycle.clone(),
        declared_at: r.declared_at.clone(),
        sensitive: r.sensitive.clone(),
        defaults: r.defaults.clone(),
        computed: None,
        references: references(&r.config, addrs),
    }
}

/// The references of a configuration by top-level attribute (see
/// [`ResourceChange::references`]); one that names nothing declared is left out (load has
/// refused it already).
fn references(config: &Value, addrs: &BTreeSet<Address>) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    if crate::refs::find_refs(config, "", &mut found).is_err() {
        return Vec::new();
    }
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (path, rp) in found {
        let top = path
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        let i = match out.iter().position(|(k, _)| *k == top) {
            Some(i) => i,
            None => {
                out.push((top, Vec::new()));
                out.len() - 1
            }
        };
        let refs = &mut out[i].1;
        let text = rp.0.join(".");
        if !refs.contains(&text) {
            refs.push(text);
        }
        if let Ok((target, _)) = resolve_ref(&rp, addrs) {
            let t = target.to_string();
            if !refs.contains(&t) {
                refs.push(t);
            }
        }
    }
    out
}

/// Servers, taskservs and cluster components that refresh found stopped outside prov are started again: their
/// no-op change becomes an update whose one difference is `status` ("stopped" → "running"),
/// which apply carries out with start-server, the taskserv's restart or restart-component. (A stop accepted into
/// the state with `apply --refresh-only` is no longer drift, so it is left alone.)
pub fn start_stopped(plan: &mut Plan, model: &Model, stopped: &BTreeSet<Address>) {
    for c in plan.changes.iter_mut().filter(|c| {
        c.action.is_noop()
            && stopped.contains(&c.address)
            && matches!(
                c.address,
                Address::Server(_) | Address::Taskserv(..) | Address::Component(..)
            )
    }) {
        let Some(r) = model.resources.get(&c.address) else {
            continue;
        };
        c.action = Action::Update;
        c.after = c.before.clone();
        c.config = Some(r.config.clone());
        c.diffs = vec![super::AttrDiff {
            path: "status".into(),
            before: Some(Value::String("stopped".into())),
            after: Some(Value::String("running".into())),
            unknown: false,
            forces_replacement: false,
        }];
    }
}

/// Whether an update only starts again what was stopped outside prov (see [`start_stopped`]).
pub fn starts_stopped(c: &ResourceChange) -> bool {
    c.diffs.iter().any(|d| d.path == "status")
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
    changes: &[ResourceChange],
    records: &BTreeMap<Address, &ResourceRecord>,
    addrs: &BTreeSet<Address>,
) -> Vec<OutputChange> {
    let mut out = Vec::new();
    if !destroy {
        for (name, v) in &model.outputs {
            let mut lookup = |rp: &RefPath| plan_lookup(rp, planned, changes, records, addrs);
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
