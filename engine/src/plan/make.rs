//! Makes the plan: desired model vs recorded state, resource by resource in dependency order.

use super::decide::{decide, Decision, Facts};
use super::{Action, OutputChange, Plan, PlanMode, ResourceChange};
use crate::error::{Diagnostic, EngineError};
use crate::graph::Graph;
use crate::load::{resolve_ref, Model};
use crate::model::{Address, Resource};
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

fn prior_deps(rec: &ResourceRecord) -> Vec<Address> {
    rec.dependencies
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect()
}

/// Makes the plan against a snapshot the caller keeps. The `before` and `computed` of no-op
/// changes and deletes are copies of the record's; [`make_plan_from`] moves them instead.
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
        if takes_record(&c.action) {
            let rec = snap.resources.get(&c.address.to_string());
            c.before = rec.map(|r| r.attributes.clone());
            c.computed = rec.map(|r| r.outputs.clone());
        }
    }
    Ok(plan)
}

/// [`make_plan`] on a snapshot nobody needs afterwards: the records' attributes and outputs move
/// into the no-op changes and deletes instead of being copied (at 10,000 unchanged or destroyed
/// resources, the largest part of a plan's memory and time).
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
        if takes_record(&c.action) {
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

/// Changes whose `before` and `computed` are the record's as it stands, filled in after
/// [`plan_changes`]: no-ops and deletes.
fn takes_record(action: &Action) -> bool {
    action.is_noop() || matches!(action, Action::Delete { .. })
}

/// The plan, with the `before` and `computed` of no-op changes and deletes left for the caller
/// to fill.
fn plan_changes(
    model: &Model,
    graph: &Graph,
    snap: &Snapshot,
    bound: &Bound,
    opts: &PlanOptions,
    config_hash: &str,
) -> Result<Plan, EngineError> {
    let records = parse_records(snap)?;
    check_named(model, &records, opts)?;
    let mut p = Planner {
        model,
        bound,
        opts,
        records: &records,
        addrs: model.resources.keys().cloned().collect(),
        scope: scope(model, graph, &records, opts),
        planned: HashMap::with_capacity(graph.order.len()),
        changes: Vec::with_capacity(graph.order.len()),
        // Every declared resource gets an action: sized once (growing it rehashed 10,000
        // addresses several times over).
        actions: HashMap::with_capacity(graph.order.len()),
    };
    if !opts.destroy {
        let presumed = presumed_unchanged(model, &records, &p.addrs, opts, &graph.order);
        for (a, presumed) in graph.order.iter().zip(presumed) {
            p.plan_declared(a, presumed)?;
        }
    }
    // Outputs read the planned values through `changes` indices: before the sort below.
    let output_changes = if opts.targets.is_empty() {
        output_changes(&p, snap)
    } else {
        Vec::new()
    };
    let mut changes = std::mem::take(&mut p.changes);
    let in_scope = |a: &Address| p.in_scope(a);
    changes.extend(delete_changes(model, &records, opts, &in_scope));
    changes.sort_by(|x, y| x.address.cmp(&y.address));
    let errors = protection_errors(&changes, &records);
    if !errors.is_empty() {
        return Err(EngineError::Invalid(errors));
    }
    Ok(Plan {
        deposed: deposed_changes(&records, &in_scope),
        protect: newly_protected(&changes, &records),
        output_changes,
        changes,
        ..frame(model, snap, opts, config_hash)
    })
}

/// Per resource of `order`, its no-op entry when it is unchanged provided everything it refers
/// to is: its configuration substitutes, with every reference read from the records, to
/// exactly its recorded attributes (what [`Planner::unchanged`] finds when the resources it
/// refers to are planned unchanged). Decided on both cores before the planning in dependency
/// order, which then only checks those dependencies (at 10,000 resources, recognising the
/// unchanged ones was most of the diff). None where it does not hold or was not tried
/// (a targeted plan decides everything in order).
fn presumed_unchanged(
    model: &Model,
    records: &BTreeMap<Address, &ResourceRecord>,
    addrs: &BTreeSet<Address>,
    opts: &PlanOptions,
    order: &[Address],
) -> Vec<Option<ResourceChange>> {
    if !opts.targets.is_empty() {
        return order.iter().map(|_| None).collect();
    }
    let one = |a: &Address| -> Option<ResourceChange> {
        let r = &model.resources[a];
        let rec = records.get(a).copied()?;
        let lookup = &mut |rp: &RefPath| record_lookup(records, addrs, rp);
        unchanged_with(a, r, rec, opts, lookup).then(|| noop_change(a, r, rec))
    };
    // Below this, a second thread costs more than it saves.
    const SPLIT_FROM: usize = 2048;
    if order.len() < SPLIT_FROM {
        return order.iter().map(one).collect();
    }
    let (first, second) = order.split_at(order.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| second.iter().map(one).collect::<Vec<_>>());
        let mut out: Vec<Option<ResourceChange>> = first.iter().map(one).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            // (Never: `one` does not panic.) Decided in order instead.
            Err(_) => out.extend(second.iter().map(|_| None)),
        }
        out
    })
}

/// Whether `a` is unchanged, its references resolved by `lookup`: its configuration
/// substitutes to exactly its recorded attributes, and nothing else asks for a replacement.
fn unchanged_with(
    a: &Address,
    r: &Resource,
    rec: &ResourceRecord,
    opts: &PlanOptions,
    lookup: &mut dyn FnMut(&RefPath) -> Result<Resolved, String>,
) -> bool {
    r.lifecycle.ignore_changes.is_empty()
        && rec.implementation == r.implementation
        && !opts.replace.contains(a)
        && substitutes_to(&r.config, &rec.attributes, lookup)
}

/// A reference resolved against the records alone, as [`Planner::lookup`] resolves one to
/// a resource planned unchanged.
fn record_lookup(
    records: &BTreeMap<Address, &ResourceRecord>,
    addrs: &BTreeSet<Address>,
    rp: &RefPath,
) -> Result<Resolved, String> {
    let (target, attr) = resolve_ref(rp, addrs)?;
    let Some(tr) = records.get(&target) else {
        return Ok(Resolved::Unknown);
    };
    if let Some(v) = get_path(&tr.attributes, &attr).filter(|v| !v.is_null()) {
        return Ok(Resolved::Known(v.clone()));
    }
    record_attr(tr, &attr)
        .cloned()
        .map(Resolved::Known)
        .ok_or_else(|| format!("{target} has no attribute {:?}", attr.join(".")))
}

/// Refuses `--target`/`--replace` addresses that name nothing.
fn check_named(
    model: &Model,
    records: &BTreeMap<Address, &ResourceRecord>,
    opts: &PlanOptions,
) -> Result<(), EngineError> {
    let errors: Vec<Diagnostic> = opts
        .targets
        .iter()
        .chain(&opts.replace)
        .filter(|a| !model.resources.contains_key(a) && !records.contains_key(a))
        .map(|a| {
            Diagnostic::new(
                Some(a.to_string()),
                None,
                "is neither declared nor in the state",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// The planning of declared resources in dependency order: what is planned so far is what
/// the references of the next ones resolve against.
struct Planner<'a> {
    model: &'a Model,
    bound: &'a Bound,
    opts: &'a PlanOptions,
    records: &'a BTreeMap<Address, &'a ResourceRecord>,
    addrs: BTreeSet<Address>,
    /// A targeted plan's addresses (None: everything).
    scope: Option<BTreeSet<Address>>,
    planned: HashMap<Address, Planned>,
    changes: Vec<ResourceChange>,
    /// The action of every resource in scope, for the placement rule.
    actions: HashMap<Address, Action>,
}

impl<'a> Planner<'a> {
    fn in_scope(&self, a: &Address) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(a))
    }

    /// Plans one declared resource: recognised as unchanged cheaply when it can be (at once
    /// when it was `presumed` unchanged and everything it refers to is), else substituted
    /// and [`decide`]d.
    fn plan_declared(
        &mut self,
        a: &Address,
        presumed: Option<ResourceChange>,
    ) -> Result<(), EngineError> {
        let model = self.model;
        let r = &model.resources[a];
        let rec = self.records.get(a).copied();
        let placement_replaced = self.placement_replaced(a, r);
        if let Some(rec) = rec {
            let same = || match &presumed {
                Some(_) if self.dependencies_unchanged(r) => true,
                _ => self.unchanged(a, r, rec),
            };
            if placement_replaced.is_none() && same() {
                if matches!(a, Address::Server(_)) {
                    // As below: a server's provider must be usable, changed or not.
                    self.bound.provider(&r.implementation)?;
                }
                self.planned.insert(a.clone(), Planned::Same);
                if self.in_scope(a) {
                    self.actions.insert(a.clone(), Action::NoOp);
                    let entry = presumed.unwrap_or_else(|| noop_change(a, r, rec));
                    self.changes.push(entry);
                }
                return Ok(());
            }
        }
        let sub = substitute(&r.config, &mut |rp: &RefPath| self.lookup(rp)).map_err(|e| {
            EngineError::Invalid(vec![Diagnostic::new(
                Some(a.to_string()),
                r.declared_at.clone(),
                e,
            )])
        })?;
        // Only a server's provider has replacement rules and computed attributes.
        let provider = match a {
            Address::Server(_) => Some(self.bound.provider(&r.implementation)?),
            _ => None,
        };
        let facts = Facts {
            implementation: &r.implementation,
            lifecycle: &r.lifecycle,
            record: rec,
            replace_requested: self.opts.replace.contains(a),
            placement_replaced,
            force_new: provider.as_ref().map_or(&[], |p| p.replace_on_change()),
            computed: provider.as_ref().map_or(&[], |p| p.computed_attributes()),
        };
        let d = decide(&facts, sub);
        self.record_decision(a, r, rec, d);
        Ok(())
    }

    /// The common case, an unchanged resource, recognised without building its substituted
    /// value or diffing it: its configuration substitutes to exactly its recorded attributes,
    /// and nothing else asks for a replacement.
    fn unchanged(&self, a: &Address, r: &Resource, rec: &ResourceRecord) -> bool {
        unchanged_with(a, r, rec, self.opts, &mut |rp: &RefPath| self.lookup(rp))
    }

    /// Everything `r` refers to (each a desired dependency) is planned unchanged: its
    /// references then resolve to the records, as [`presumed_unchanged`] resolved them.
    fn dependencies_unchanged(&self, r: &Resource) -> bool {
        r.depends_on
            .iter()
            .all(|d| matches!(self.planned.get(d), Some(Planned::Same)))
    }

    /// What `a` is placed on (its parent; a server a cluster depends on) that this plan creates
    /// or replaces.
    fn placement_replaced<'r>(&self, a: &Address, r: &'r Resource) -> Option<&'r Address> {
        r.depends_on.iter().find(|d| {
            let placement = a.parent().as_ref() == Some(*d)
                || (matches!(a, Address::Cluster(_)) && matches!(d, Address::Server(_)));
            placement
                && matches!(
                    self.actions.get(*d),
                    Some(Action::Replace { .. }) | Some(Action::Create)
                )
        })
    }

    /// Keeps what was decided: as a change when in scope, else only for the lookups of its
    /// dependents.
    fn record_decision(
        &mut self,
        a: &Address,
        r: &Resource,
        rec: Option<&ResourceRecord>,
        d: Decision,
    ) {
        let fresh = d.fresh();
        if !self.in_scope(a) {
            let aside = Planned::Aside {
                after: d.after,
                unknown: d.after_unknown,
                fresh,
            };
            self.planned.insert(a.clone(), aside);
            return;
        }
        self.actions.insert(a.clone(), d.action.clone());
        if let (true, Some(rec)) = (d.action.is_noop(), rec) {
            self.planned.insert(a.clone(), Planned::Same);
            self.changes.push(noop_change(a, r, rec));
            return;
        }
        let at = self.changes.len();
        self.planned
            .insert(a.clone(), Planned::Change { at, fresh });
        self.changes.push(ResourceChange {
            address: a.clone(),
            implementation: r.implementation.clone(),
            action: d.action,
            before: rec.map(|x| x.attributes.clone()),
            after: Some(d.after),
            after_unknown: d.after_unknown,
            config: Some(r.config.clone()),
            diffs: d.diffs,
            depends_on: r.depends_on.clone(),
            prior_dependencies: rec.map(prior_deps).unwrap_or_default(),
            provider_id: rec.and_then(|x| x.provider_id.clone()),
            lifecycle: r.lifecycle.clone(),
            declared_at: r.declared_at.clone(),
            sensitive: r.sensitive.clone(),
            defaults: r.defaults.clone(),
            computed: rec.map(|x| x.outputs.clone()),
            references: r.references.clone(),
        });
    }

    /// Resolves a reference while planning: from the planned value of its target where known,
    /// else unknown when the target is (re)created, else from the target's record.
    fn lookup(&self, rp: &RefPath) -> Result<Resolved, String> {
        let (target, attr) = resolve_ref(rp, &self.addrs)?;
        let known = |after: &Value, unknown: &Value| -> Option<Value> {
            let v = get_path(after, &attr)?;
            let unk = get_path(unknown, &attr).is_some_and(|u| u != &Value::Bool(false));
            (!unk && !v.is_null()).then(|| v.clone())
        };
        let (found, fresh) = match self.planned.get(&target) {
            None => (None, false),
            // A no-op's desired attributes are its recorded ones.
            Some(Planned::Same) => match self.records.get(&target) {
                Some(tr) => (known(&tr.attributes, &Value::Bool(false)), false),
                None => (None, false),
            },
            Some(Planned::Change { at, fresh }) => {
                let c = &self.changes[*at];
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
        match self.records.get(&target) {
            Some(tr) => record_attr(tr, &attr)
                .cloned()
                .map(Resolved::Known)
                .ok_or_else(|| format!("{target} has no attribute {:?}", attr.join("."))),
            None => Ok(Resolved::Unknown),
        }
    }
}

/// The deletes: records no longer declared (every record in scope for a destroy plan).
fn delete_changes(
    model: &Model,
    records: &BTreeMap<Address, &ResourceRecord>,
    opts: &PlanOptions,
    in_scope: &dyn Fn(&Address) -> bool,
) -> Vec<ResourceChange> {
    let reason = if opts.destroy {
        "destroy requested"
    } else {
        "no longer in the configuration"
    };
    let gone = |a: &Address| (opts.destroy || !model.resources.contains_key(a)) && in_scope(a);
    records
        .iter()
        .filter(|(a, _)| gone(a))
        .map(|(a, rec)| {
            let declared = model.resources.get(a);
            ResourceChange {
                address: a.clone(),
                implementation: rec.implementation.clone(),
                action: Action::Delete {
                    reason: reason.into(),
                },
                // Filled in by the caller of `plan_changes`, from the record.
                before: None,
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
                computed: None,
                references: Vec::new(),
            }
        })
        .collect()
}

/// Unchanged resources whose configuration protects them and whose record does not yet: the
/// plan records the protection (see `Plan::protect`).
fn newly_protected(
    changes: &[ResourceChange],
    records: &BTreeMap<Address, &ResourceRecord>,
) -> Vec<Address> {
    changes
        .iter()
        .filter(|c| c.action.is_noop() && c.lifecycle.prevent_destroy)
        .filter(|c| records.get(&c.address).is_some_and(|r| !r.protected))
        .map(|c| c.address.clone())
        .collect()
}

/// Deletes and replaces of protected resources: by the configuration's prevent_destroy, or by
/// the protection the record keeps.
fn protection_errors(
    changes: &[ResourceChange],
    records: &BTreeMap<Address, &ResourceRecord>,
) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    for c in changes {
        let what = match &c.action {
            Action::Replace { reason, .. } => format!("replace it ({reason})"),
            Action::Delete { .. } => "destroy it".to_string(),
            _ => continue,
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
    errors
}

/// Everything of a plan but what it changes: what it was made from, when, and with what.
fn frame(model: &Model, snap: &Snapshot, opts: &PlanOptions, config_hash: &str) -> Plan {
    Plan {
        deposed: Vec::new(),
        protect: Vec::new(),
        cost: None,
        resolutions: Vec::new(),
        tagged: Vec::new(),
        tagged_searched: false,
        drift: Vec::new(),
        refreshed: Vec::new(),
        output_changes: Vec::new(),
        prior_outputs: if opts.targets.is_empty() {
            snap.outputs.clone()
        } else {
            Default::default()
        },
        timestamp: crate::fsutil::now_rfc3339(),
        untrusted: false,
        unrefreshed: Vec::new(),
        backend: None,
        prov_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: if opts.destroy {
            PlanMode::Destroy
        } else {
            PlanMode::Normal
        },
        lineage: snap.meta.lineage.clone(),
        serial: snap.meta.serial,
        config_hash: config_hash.to_string(),
        changes: Vec::new(),
        outputs: if opts.destroy {
            Default::default()
        } else {
            model.outputs.clone()
        },
        sensitive_outputs: model.sensitive_outputs.iter().cloned().collect(),
        providers: model.providers.clone(),
        targets: opts.targets.clone(),
    }
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
fn noop_change(a: &Address, r: &crate::model::Resource, rec: &ResourceRecord) -> ResourceChange {
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
        references: r.references.clone(),
    }
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
fn output_changes(p: &Planner<'_>, snap: &Snapshot) -> Vec<OutputChange> {
    let (model, destroy) = (p.model, p.opts.destroy);
    let mut out = Vec::new();
    if !destroy {
        for (name, v) in &model.outputs {
            let before = snap.outputs.get(name).cloned();
            let after = substitute(v, &mut |rp: &RefPath| p.lookup(rp))
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
