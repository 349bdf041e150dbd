//! Terraform's JSON shapes, so policies and tools written for Terraform read prov's unchanged: the plan as `terraform show -json PLANFILE` prints it, the state as `terraform show -json`, outputs as `terraform output -json`.
//!
//! The shapes follow Terraform 1.x (checked key by key against Terraform's own output in
//! tests/e2e/tfjson.rs with the fixtures of tests/fixtures/tfjson/). Where prov differs on
//! purpose: sensitive values are shown as `(sensitive value)` (Terraform prints them in its
//! JSON), and a `prov` key carries what only prov has (lineage, serial, untrusted refresh).

use prov_engine::plan::{Action, Plan, PlanMode, ResourceChange};
use prov_engine::refs::find_refs;
use serde_json::{json, Map, Value};

/// Terraform's plan representation version this output follows.
pub const FORMAT_VERSION: &str = "1.2";
/// Terraform's state representation version (`prior_state`, `prov show --json`).
pub const STATE_FORMAT_VERSION: &str = "1.0";
/// The Terraform release whose JSON shapes prov's follow, as `terraform_version` (policies
/// compare it as a semantic version); prov's own version is `prov_version`.
pub const TERRAFORM_VERSION: &str = "1.11.4";

fn type_and_name(address: &str, kind: &str) -> (String, String) {
    let (ty, name) = address.split_once('.').unwrap_or((address, ""));
    let ty = if kind == "component" { "component" } else { ty };
    (ty.to_string(), name.to_string())
}

/// Configured attributes with what apply computed (`id`, addresses) added: a resource's
/// values as Terraform shows them. Configured values win where both have a key.
fn with_computed(values: Option<&Value>, computed: Option<&Value>) -> Option<Value> {
    let mut v = values.cloned()?;
    if let (Value::Object(m), Some(Value::Object(c))) = (&mut v, computed) {
        for (k, x) in c {
            m.entry(k.clone()).or_insert_with(|| x.clone());
        }
    }
    Some(v)
}

/// `v` without the values `unknown` marks (Terraform leaves unknown values out of `after`
/// and lists them in `after_unknown`); in lists they stay as null, keeping the positions.
fn without_unknown(v: &mut Value, unknown: &Value) {
    match (v, unknown) {
        (Value::Object(m), Value::Object(u)) => {
            for (k, marks) in u {
                if marks == &Value::Bool(true) {
                    m.shift_remove(k);
                } else if let Some(x) = m.get_mut(k) {
                    without_unknown(x, marks);
                }
            }
        }
        (Value::Array(a), Value::Array(u)) => {
            for (x, marks) in a.iter_mut().zip(u) {
                if marks == &Value::Bool(true) {
                    *x = Value::Null;
                } else {
                    without_unknown(x, marks);
                }
            }
        }
        _ => {}
    }
}

/// The change's `after` as Terraform shows it.
fn after_of(c: &ResourceChange) -> Value {
    let carried = match c.action {
        // An update keeps what the provider computed for the object; a new object has it unknown.
        Action::NoOp | Action::Update => c.computed.as_ref(),
        _ => None,
    };
    let Some(mut v) = with_computed(c.after_values(), carried) else {
        return Value::Null;
    };
    if !c.action.is_noop() {
        without_unknown(&mut v, &c.after_unknown);
    }
    v
}

fn before_of(c: &ResourceChange) -> Value {
    with_computed(c.before.as_ref(), c.computed.as_ref()).unwrap_or(Value::Null)
}

/// Terraform's type of a JSON value (`"string"`, `["object", {...}]`, `["tuple", [...]]`).
fn type_of(v: &Value) -> Value {
    match v {
        Value::Null => json!("dynamic"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => json!(["tuple", a.iter().map(type_of).collect::<Vec<_>>()]),
        Value::Object(o) => json!([
            "object",
            o.iter()
                .map(|(k, x)| (k.clone(), type_of(x)))
                .collect::<Map<_, _>>()
        ]),
    }
}

/// One output as Terraform's state and `terraform output -json` show it.
pub fn output_value(value: &Value, sensitive: bool) -> Value {
    json!({ "sensitive": sensitive, "type": type_of(value), "value": value })
}

/// `{name: {sensitive, type, value}}`: `terraform output -json` (values already redacted).
pub fn outputs(values: &Map<String, Value>, sensitive: &[String]) -> Value {
    Value::Object(
        values
            .iter()
            .map(|(k, v)| (k.clone(), output_value(v, sensitive.contains(k))))
            .collect(),
    )
}

/// A resource of `planned_values` or of a state's `root_module`.
fn state_resource(
    address: &str,
    kind: &str,
    provider: &str,
    values: Value,
    sensitive: &[String],
) -> Value {
    let (ty, name) = type_and_name(address, kind);
    json!({
        "address": address, "mode": "managed", "type": ty, "name": name,
        "provider_name": provider, "schema_version": 0,
        "values": values,
        "sensitive_values": object_marks(sensitive),
    })
}

/// Terraform's `sensitive_values`: the `*_sensitive` marks, an empty object when none.
fn object_marks(paths: &[String]) -> Value {
    match marks(paths) {
        Value::Bool(false) => json!({}),
        v => v,
    }
}

/// Terraform's `variables`: prov's configuration has no input variables.
fn variables() -> Value {
    json!({})
}

/// Terraform's `resource_changes`: one entry per planned change, then one per deposed object.
fn resource_changes(p: &Plan) -> Vec<Value> {
    let changes: Vec<Value> = p
        .changes
        .iter()
        .map(|c| {
            let addr = c.address.to_string();
            let (ty, name) = type_and_name(&addr, c.address.kind().as_str());
            let has_after = c.after_values().is_some();
            let mut rc = json!({
                "address": addr,
                "mode": "managed",
                "type": ty,
                "name": name,
                "provider_name": c.implementation,
                "change": {
                    "actions": c.action.terraform_actions(),
                    "before": before_of(c),
                    "after": after_of(c),
                    "after_unknown": if has_after && !c.action.is_noop() { c.after_unknown.clone() } else { json!({}) },
                    "before_sensitive": if c.before.is_some() { marks(&c.sensitive) } else { Value::Bool(false) },
                    "after_sensitive": if has_after { marks(&c.sensitive) } else { Value::Bool(false) },
                    "replace_paths": c.diffs.iter().filter(|d| d.forces_replacement).map(|d| d.path.split('.').collect::<Vec<_>>()).collect::<Vec<_>>(),
                },
            });
            let reason = match &c.action {
                Action::Replace { reason, .. } if reason.contains("--replace") => Some("replace_by_request"),
                Action::Replace { .. } => Some("replace_because_cannot_update"),
                Action::Delete { .. } if p.mode == PlanMode::Normal => Some("delete_because_no_resource_config"),
                _ => None,
            };
            if let Some(r) = reason {
                rc["action_reason"] = json!(r);
            }
            rc
        })
        .collect();
    // Terraform's shape for a deposed object: its own entry with the object's key in `deposed`.
    changes
        .into_iter()
        .chain(p.deposed.iter().map(|d| {
            let addr = d.address.to_string();
            let (ty, name) = type_and_name(&addr, d.address.kind().as_str());
            json!({
                "address": addr,
                "mode": "managed",
                "type": ty,
                "name": name,
                "provider_name": d.implementation,
                "deposed": d.provider_id,
                "change": {
                    "actions": ["delete"],
                    "before": d.before,
                    "after": Value::Null,
                    "after_unknown": {},
                    "before_sensitive": marks(&d.sensitive),
                    "after_sensitive": false,
                    "replace_paths": [],
                },
            })
        }))
        .collect()
}

/// Terraform's `planned_values.root_module.resources`: every resource the plan keeps, as it will be.
fn planned_resources(p: &Plan) -> Vec<Value> {
    p.changes
        .iter()
        .filter(|c| !matches!(c.action, Action::Delete { .. }))
        .map(|c| {
            state_resource(
                &c.address.to_string(),
                c.address.kind().as_str(),
                &c.implementation,
                after_of(c),
                &c.sensitive,
            )
        })
        .collect()
}

pub fn plan(p: &Plan) -> Value {
    let redacted;
    let p = if p.has_sensitive() {
        redacted = p.redacted();
        &redacted
    } else {
        p
    };
    let changes = resource_changes(p);
    let planned = planned_resources(p);
    let mut v = json!({
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "prov_version": p.prov_version,
        "prov": {
            "lineage": p.lineage, "serial": p.serial, "config_hash": p.config_hash,
            "mode": match p.mode { PlanMode::Destroy => "destroy", PlanMode::RefreshOnly => "refresh-only", PlanMode::Normal => "normal" },
            "untrusted": p.untrusted,
            "unrefreshed": p.unrefreshed.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        },
        "variables": variables(),
        "planned_values": {
            "outputs": planned_outputs(p),
            "root_module": { "resources": planned },
        },
        "resource_drift": resource_drift(p),
        "resource_changes": changes,
        "output_changes": output_changes(p),
        "prior_state": prior_state(p),
        "configuration": configuration(p),
        "applyable": p.has_changes(),
        // Terraform marks a targeted plan incomplete: applying it leaves other changes pending.
        "complete": p.targets.is_empty(),
        "errored": false,
    });
    if !p.timestamp.is_empty() {
        v["timestamp"] = json!(p.timestamp);
    }
    // prov's own key (Terraform has none like it): the monthly cost, absent with --no-cost.
    if let Some(c) = &p.cost {
        v["cost"] = super::cost::json(c);
    }
    v
}

/// [`plan`] with what a later `prov apply --expect-plan` compares against under `prov.review`
/// (secrets as keyed hashes, see `prov_engine::plan::review`).
pub fn reviewable(p: &Plan, review: &prov_engine::plan::review::Review) -> Value {
    let mut v = plan(p);
    v["prov"]["review"] = prov_engine::plan::review::to_value(review);
    v
}

/// Each output's value after apply: planned, unchanged, or unknown (None).
fn output_after(p: &Plan, name: &str) -> Option<Option<Value>> {
    if !p.outputs.contains_key(name) {
        return None;
    }
    Some(match p.output_changes.iter().find(|o| o.name == name) {
        Some(o) => o.after.clone(),
        None => p.prior_outputs.get(name).cloned(),
    })
}

fn planned_outputs(p: &Plan) -> Value {
    let mut m = Map::new();
    for name in p.outputs.keys() {
        let sensitive = p.sensitive_outputs.contains(name);
        m.insert(
            name.clone(),
            match output_after(p, name).flatten() {
                Some(v) => output_value(&v, sensitive),
                // Unknown until apply: Terraform gives only the sensitivity.
                None => json!({ "sensitive": sensitive }),
            },
        );
    }
    Value::Object(m)
}

fn output_changes(p: &Plan) -> Value {
    let mut names: Vec<&String> = p
        .outputs
        .keys()
        .chain(p.prior_outputs.keys())
        .chain(p.output_changes.iter().map(|o| &o.name))
        .collect();
    names.sort();
    names.dedup();
    let mut m = Map::new();
    for name in names {
        let declared = p.outputs.contains_key(name);
        let sensitive = p.sensitive_outputs.contains(name);
        let (before, after) = match p.output_changes.iter().find(|o| &o.name == name) {
            Some(o) => (o.before.clone(), o.after.clone()),
            None => {
                let v = p.prior_outputs.get(name).cloned();
                (v.clone(), v)
            }
        };
        let unknown = declared && after.is_none();
        let changed = p.output_changes.iter().any(|o| &o.name == name);
        let actions = match (&before, declared, changed) {
            (_, _, false) => vec!["no-op"],
            (_, false, true) => vec!["delete"],
            (None, true, true) => vec!["create"],
            (Some(_), true, true) => vec!["update"],
        };
        m.insert(
            name.clone(),
            json!({
                "actions": actions,
                "before": before,
                "after": after,
                "after_unknown": unknown,
                "before_sensitive": sensitive,
                "after_sensitive": sensitive,
            }),
        );
    }
    Value::Object(m)
}

/// Sets `path` (dotted) in `v` to `x`, creating objects on the way; None removes it.
fn set_path(v: &mut Value, path: &str, x: Option<Value>) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().expect("made an object");
        if i + 1 == parts.len() {
            match x {
                Some(x) => {
                    m.insert(part.to_string(), x);
                }
                None => {
                    m.shift_remove(*part);
                }
            }
            return;
        }
        cur = m.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

/// What refresh found changed outside prov, in Terraform's `resource_drift` shape: the
/// recorded object as `before`, the real one as `after`.
fn resource_drift(p: &Plan) -> Value {
    use prov_engine::drift::DriftKind;
    let mut out = Vec::new();
    for d in &p.drift {
        let change = p
            .changes
            .iter()
            .find(|c| c.address.to_string() == d.address);
        let (ty, name) = type_and_name(
            &d.address,
            change.map(|c| c.address.kind().as_str()).unwrap_or(""),
        );
        let real = change.map(before_of).unwrap_or(Value::Null);
        let (actions, before, after) = match &d.kind {
            DriftKind::Gone => (vec!["delete"], Value::Null, Value::Null),
            DriftKind::Changed(diffs) => {
                let mut recorded = real.clone();
                for x in diffs {
                    set_path(&mut recorded, &x.path, x.before.clone());
                }
                (vec!["update"], recorded, real)
            }
            DriftKind::Stopped => {
                let mut recorded = real.clone();
                let mut now = real;
                set_path(&mut recorded, "status", Some(json!("running")));
                set_path(&mut now, "status", Some(json!("stopped")));
                (vec!["update"], recorded, now)
            }
            DriftKind::Version { recorded, real: v } => {
                let mut was = real.clone();
                let mut now = real;
                set_path(&mut was, "version", Some(json!(recorded)));
                set_path(&mut now, "version", Some(json!(v)));
                (vec!["update"], was, now)
            }
            DriftKind::Unmanaged { .. } | DriftKind::Error(_) => continue,
        };
        let sensitive = change.map(|c| c.sensitive.clone()).unwrap_or_default();
        out.push(json!({
            "address": d.address, "mode": "managed", "type": ty, "name": name,
            "provider_name": change.map(|c| c.implementation.clone()).unwrap_or_default(),
            "change": {
                "actions": actions, "before": before, "after": after, "after_unknown": {},
                "before_sensitive": marks(&sensitive), "after_sensitive": marks(&sensitive),
            },
        }));
    }
    Value::Array(out)
}

/// The state the plan was made against (after refresh), in Terraform's state shape.
fn prior_state(p: &Plan) -> Value {
    let mut resources: Vec<Value> = p
        .changes
        .iter()
        .filter(|c| c.before.is_some())
        .map(|c| {
            let mut r = state_resource(
                &c.address.to_string(),
                c.address.kind().as_str(),
                &c.implementation,
                before_of(c),
                &c.sensitive,
            );
            if !c.prior_dependencies.is_empty() {
                r["depends_on"] = json!(c
                    .prior_dependencies
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>());
            }
            r
        })
        .collect();
    resources.extend(p.deposed.iter().map(|d| {
        let mut r = state_resource(
            &d.address.to_string(),
            d.address.kind().as_str(),
            &d.implementation,
            d.before.clone(),
            &d.sensitive,
        );
        r["deposed_key"] = json!(d.provider_id);
        r
    }));
    json!({
        "format_version": STATE_FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "values": {
            "outputs": outputs(&p.prior_outputs, &p.sensitive_outputs),
            "root_module": { "resources": resources },
        },
    })
}

/// Terraform's expression of one configured value: its references, or the constant.
fn expression(refs: Option<&Vec<String>>, constant: Option<&Value>) -> Value {
    match refs {
        Some(r) => json!({ "references": r }),
        None => json!({ "constant_value": constant.cloned().unwrap_or(Value::Null) }),
    }
}

/// The configuration as written: each configured resource with its provider and, per
/// attribute, the constant or the references; the outputs' expressions.
fn configuration(p: &Plan) -> Value {
    let mut providers = Map::new();
    let mut resources = Vec::new();
    for c in p
        .changes
        .iter()
        .filter(|c| !matches!(c.action, Action::Delete { .. }))
    {
        let addr = c.address.to_string();
        let (ty, name) = type_and_name(&addr, c.address.kind().as_str());
        providers
            .entry(c.implementation.clone())
            .or_insert_with(|| json!({ "name": c.implementation, "full_name": c.implementation }));
        let values = c.after_values();
        let keys: Vec<&String> = match (c.config.as_deref(), values) {
            (Some(Value::Object(cfg)), _) => cfg.keys().collect(),
            (_, Some(Value::Object(v))) => v.keys().collect(),
            _ => Vec::new(),
        };
        let expressions: Map<String, Value> = keys
            .into_iter()
            .map(|k| {
                let refs = c.references.iter().find(|(a, _)| a == k).map(|(_, r)| r);
                (k.clone(), expression(refs, values.and_then(|v| v.get(k))))
            })
            .collect();
        let mut r = json!({
            "address": addr, "mode": "managed", "type": ty, "name": name,
            "provider_config_key": c.implementation,
            "expressions": expressions,
            "schema_version": 0,
        });
        if !c.depends_on.is_empty() {
            r["depends_on"] = json!(c
                .depends_on
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>());
        }
        resources.push(r);
    }
    let outputs: Map<String, Value> = p
        .outputs
        .iter()
        .map(|(name, written)| {
            let mut found = Vec::new();
            let refs: Vec<String> = if find_refs(written, "", &mut found).is_ok() {
                let mut r: Vec<String> = Vec::new();
                for (_, rp) in found {
                    let text = rp.0.join(".");
                    if !r.contains(&text) {
                        r.push(text);
                    }
                }
                r
            } else {
                Vec::new()
            };
            let sensitive = p.sensitive_outputs.contains(name);
            let constant = if sensitive {
                Value::String(prov_engine::sensitive::REDACTED.into())
            } else {
                written.clone()
            };
            let mut o = json!({
                "expression": expression((!refs.is_empty()).then_some(&refs), Some(&constant)),
            });
            if sensitive {
                o["sensitive"] = json!(true);
            }
            (name.clone(), o)
        })
        .collect();
    json!({
        "provider_config": providers,
        "root_module": {
            "outputs": outputs,
            "resources": resources,
            "variables": variables(),
        },
    })
}

/// The state as `terraform show -json` prints it: `values.outputs` and
/// `values.root_module.resources` (each record's attributes with what apply computed),
/// secrets redacted. `records` are redacted already; `outputs` too.
pub fn state(
    lineage: &str,
    serial: u64,
    records: &[prov_state::ResourceRecord],
    outputs_: &Map<String, Value>,
    sensitive_outputs: &[String],
) -> Value {
    let mut resources = Vec::new();
    for r in records {
        let kind = r.kind.as_str();
        let mut x = state_resource(
            &r.address,
            kind,
            &r.implementation,
            with_computed(Some(&r.attributes), Some(&r.outputs)).unwrap_or(Value::Null),
            &r.sensitive_paths,
        );
        if !r.dependencies.is_empty() {
            x["depends_on"] = json!(r.dependencies);
        }
        resources.push(x);
        for d in &r.deposed {
            let mut x = state_resource(
                &r.address,
                kind,
                &r.implementation,
                with_computed(Some(&d.attributes), Some(&d.outputs)).unwrap_or(Value::Null),
                &r.sensitive_paths,
            );
            x["deposed_key"] = json!(d.provider_id);
            resources.push(x);
        }
    }
    json!({
        "format_version": STATE_FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "prov_version": env!("CARGO_PKG_VERSION"),
        "prov": { "lineage": lineage, "serial": serial },
        "values": {
            "outputs": outputs(outputs_, sensitive_outputs),
            "root_module": { "resources": resources },
        },
    })
}

/// Terraform's `*_sensitive` shape: `true` at each sensitive path, `false` when there are none.
fn marks(paths: &[String]) -> Value {
    if paths.is_empty() {
        return Value::Bool(false);
    }
    let mut root = serde_json::Map::new();
    for p in paths {
        let parts: Vec<&str> = p.split('.').collect();
        let mut cur = &mut root;
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur.insert(part.to_string(), Value::Bool(true));
            } else {
                let next = cur.entry(part.to_string()).or_insert_with(|| json!({}));
                if !next.is_object() {
                    break;
                }
                cur = next.as_object_mut().expect("checked");
            }
        }
    }
    Value::Object(root)
}
