//! `prov show --json`: the plan in the shape of `terraform show -json`, so OPA/conftest policies for Terraform read it unchanged.

use prov_engine::plan::{Action, Plan, PlanMode};
use serde_json::{json, Value};

/// Terraform's plan representation version this output follows.
pub const FORMAT_VERSION: &str = "1.2";

pub fn plan(p: &Plan) -> Value {
    let redacted;
    let p = if p.has_sensitive() {
        redacted = p.redacted();
        &redacted
    } else {
        p
    };
    let changes: Vec<Value> = p
        .changes
        .iter()
        .map(|c| {
            let addr = c.address.to_string();
            let (ty, name) = addr.split_once('.').unwrap_or((addr.as_str(), ""));
            let mut rc = json!({
                "address": addr,
                "mode": "managed",
                "type": if c.address.kind().as_str() == "component" { "component" } else { ty },
                "name": name,
                "provider_name": c.implementation,
                "change": {
                    "actions": c.action.terraform_actions(),
                    "before": c.before.clone().unwrap_or(Value::Null),
                    "after": c.after_values().cloned().unwrap_or(Value::Null),
                    "after_unknown": if c.after_values().is_some() { c.after_unknown.clone() } else { json!({}) },
                    "before_sensitive": marks(&c.sensitive),
                    "after_sensitive": marks(&c.sensitive),
                    "replace_paths": c.diffs.iter().filter(|d| d.forces_replacement).map(|d| vec![d.path.clone()]).collect::<Vec<_>>(),
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
    let changes: Vec<Value> = changes
        .into_iter()
        .chain(p.deposed.iter().map(|d| {
            let addr = d.address.to_string();
            let (ty, name) = addr.split_once('.').unwrap_or((addr.as_str(), ""));
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
        .collect();
    let planned: Vec<Value> = p
        .changes
        .iter()
        .filter(|c| !matches!(c.action, Action::Delete { .. }))
        .zip(
            changes
                .iter()
                .filter(|rc| rc["change"]["actions"] != json!(["delete"])),
        )
        .map(|(c, rc)| {
            json!({
                "address": rc["address"], "mode": "managed", "type": rc["type"], "name": rc["name"],
                "provider_name": rc["provider_name"],
                "values": c.after_values().or(c.before.as_ref()).cloned().unwrap_or(Value::Null),
                "sensitive_values": {},
            })
        })
        .collect();
    let mut v = json!({
        "format_version": FORMAT_VERSION,
        "terraform_version": format!("prov-{}", p.prov_version),
        "prov": { "lineage": p.lineage, "serial": p.serial, "config_hash": p.config_hash, "mode": if p.mode == PlanMode::Destroy { "destroy" } else { "normal" } },
        "planned_values": { "root_module": { "resources": planned } },
        "resource_changes": changes,
        "applyable": p.has_changes(),
        "complete": true,
        "errored": false,
    });
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
