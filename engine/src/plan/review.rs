//! The reviewed plan: what a plan will do, in a form a later plan is compared with (`prov apply --expect-plan`), with every secret replaced by a keyed hash.
//!
//! `prov plan --json` and `prov show --json PLAN` carry it under `prov.review`. Apply plans
//! again and refuses unless the new plan does the same things with the same values: every
//! resource change (action, before, after, unknowns, configuration as written), deposed object,
//! output change, protection recorded, pending operation settled, record refreshed, and the
//! provider settings. The serial is not compared: that the state moved on is fine as long as
//! the plan did not.
//!
//! Secrets (values at sensitive paths, sensitive outputs, provider credentials) are compared by
//! HMAC under a key derived from the encryption key and the state lineage
//! (`crate::crypt::Keys::hash_secret`): a plan JSON posted in a pull request does not let anyone
//! test guesses of a short password against it. Without an encryption key secrets cannot be
//! hashed; a plan holding some cannot then be checked, and apply says so.

use super::{Action, Plan, PlanMode};
use crate::crypt::Keys;
use crate::sensitive::{is_credential_key, REDACTED};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The version of the `prov.review` member.
pub const REVIEW_FORMAT_VERSION: u32 = 1;
/// The start of a hashed secret's stand-in: `(sensitive value, hmac HEX)`.
const HASHED_PREFIX: &str = "(sensitive value, hmac ";
/// A secret's stand-in when no key was configured to hash it.
const UNHASHED: &str = "(sensitive value, not hashed: no encryption key was configured)";

/// What a plan does, by subject (`server.web`, `output url`, `provider sim`, ...), with
/// secrets replaced by keyed hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    /// The state the plan was made against ("" when none existed).
    pub lineage: String,
    pub mode: String,
    /// The id of the key secrets were hashed with; None when no key was configured.
    pub key_id: Option<String>,
    pub items: BTreeMap<String, Value>,
}

/// One way a fresh plan differs from the reviewed one. Values hold no secrets (stand-ins only).
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// The plans were made against different states.
    Lineage {
        reviewed: String,
        now: String,
    },
    Mode {
        reviewed: String,
        now: String,
    },
    /// The reviewed plan did this (a summary such as `update`); the fresh plan does not.
    OnlyReviewed {
        subject: String,
        reviewed: String,
    },
    /// The fresh plan does this; the reviewed plan did not.
    OnlyNow {
        subject: String,
        now: String,
    },
    /// A value differs at `path` (`after.plan`, `before.tags.env`); None: absent on that side.
    Value {
        subject: String,
        path: String,
        reviewed: Option<Value>,
        now: Option<Value>,
    },
}

impl Difference {
    /// Whether either side is a secret (shown as a stand-in, never as the value).
    pub fn is_secret(&self) -> bool {
        match self {
            Difference::Value { reviewed, now, .. } => [reviewed, now]
                .into_iter()
                .flatten()
                .any(|v| v.as_str().is_some_and(is_stand_in)),
            _ => false,
        }
    }
}

/// Why the comparison could not be made at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unverifiable {
    /// The reviewed plan holds secrets but no key was configured when it was made.
    ReviewedUnhashed,
    /// The reviewed plan's secrets were hashed with a key that is not configured now.
    KeyMissing { key_id: String },
}

impl std::fmt::Display for Unverifiable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unverifiable::ReviewedUnhashed => f.write_str(
                "the reviewed plan holds sensitive values but was made without an encryption key, so they could not be hashed and cannot be compared: configure PROV_ENCRYPTION_KEY (or a key file) for both the plan and the apply",
            ),
            Unverifiable::KeyMissing { key_id } => write!(
                f,
                "the reviewed plan's sensitive values were hashed with encryption key id {key_id}, which is not configured: configure that key (as PROV_ENCRYPTION_KEY, or PROV_ENCRYPTION_KEY_OLD during a rotation)"
            ),
        }
    }
}

fn is_stand_in(s: &str) -> bool {
    s.starts_with(HASHED_PREFIX) || s == UNHASHED
}

/// Replaces secrets with their stand-ins: hashed with the key `key_id` when it is configured.
struct Hider<'a> {
    keys: &'a Keys,
    key_id: Option<&'a str>,
    lineage: &'a str,
}

impl Hider<'_> {
    fn stand_in(&self, context: &str, v: &Value) -> Value {
        let hash = self
            .key_id
            .and_then(|id| self.keys.hash_secret(id, self.lineage, context, v));
        match hash {
            Some(h) => Value::String(format!("{HASHED_PREFIX}{h})")),
            None => Value::String(UNHASHED.into()),
        }
    }

    /// `v` with the value at each of `paths` replaced by its stand-in.
    fn hide_paths(&self, subject: &str, v: Option<&Value>, paths: &[String]) -> Value {
        let Some(v) = v else {
            return Value::Null;
        };
        let mut v = v.clone();
        for p in paths {
            let parts: Vec<&str> = p.split('.').collect();
            let mut cur = Some(&mut v);
            for part in &parts {
                cur = match cur {
                    Some(Value::Object(o)) => o.get_mut(*part),
                    Some(Value::Array(a)) => part.parse::<usize>().ok().and_then(|n| a.get_mut(n)),
                    _ => None,
                };
            }
            if let Some(x) = cur {
                // A value already replaced (a path under another sensitive path) stays so.
                if !x.as_str().is_some_and(is_stand_in) {
                    *x = self.stand_in(&format!("{subject} {p}"), x);
                }
            }
        }
        v
    }

    /// Provider settings with every value under a credential key replaced.
    fn hide_credentials(&self, context: &str, v: &Value) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let ctx = format!("{context}.{k}");
                        let shown = if k != "method" && is_credential_key(k) && !x.is_null() {
                            self.stand_in(&ctx, x)
                        } else {
                            self.hide_credentials(&ctx, x)
                        };
                        (k.clone(), shown)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| self.hide_credentials(&format!("{context}.{i}"), x))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::NoOp => "no-op",
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace {
            create_before_destroy: false,
            ..
        } => "replace",
        Action::Replace {
            create_before_destroy: true,
            ..
        } => "replace (create before destroy)",
        Action::Delete { .. } => "delete",
    }
}

fn mode_name(m: PlanMode) -> &'static str {
    match m {
        PlanMode::Normal => "normal",
        PlanMode::Destroy => "destroy",
        PlanMode::RefreshOnly => "refresh-only",
    }
}

impl Review {
    /// The review of `plan`, its secrets hashed with the current key (if any).
    pub fn of(plan: &Plan, keys: &Keys) -> Review {
        Review::with_key(plan, keys, keys.review_key_id(), &plan.lineage)
    }

    fn with_key(plan: &Plan, keys: &Keys, key_id: Option<&str>, lineage: &str) -> Review {
        let h = Hider {
            keys,
            key_id,
            lineage,
        };
        let mut items = BTreeMap::new();
        for c in plan.changes.iter().filter(|c| !c.action.is_noop()) {
            let subject = c.address.to_string();
            let s = &c.sensitive;
            let item = json!({
                "action": action_name(&c.action),
                "implementation": c.implementation,
                "before": h.hide_paths(&subject, c.before.as_ref(), s),
                "after": h.hide_paths(&subject, c.after.as_ref(), s),
                "after_unknown": c.after_unknown,
                "config": h.hide_paths(&subject, c.config.as_deref(), s),
            });
            items.insert(subject, item);
        }
        for d in &plan.deposed {
            let subject = format!("{} (deposed object {})", d.address, d.provider_id);
            let before = h.hide_paths(&subject, Some(&d.before), &d.sensitive);
            items.insert(subject, json!({"action": "delete", "before": before}));
        }
        for o in &plan.output_changes {
            let subject = format!("output {}", o.name);
            let secret = plan.sensitive_outputs.contains(&o.name);
            let side = |v: &Option<Value>| match v {
                Some(v) if secret => h.stand_in(&subject, v),
                Some(v) => v.clone(),
                None => Value::Null,
            };
            items.insert(
                subject.clone(),
                json!({"before": side(&o.before), "after": side(&o.after)}),
            );
        }
        for a in &plan.protect {
            items.insert(format!("{a} (protection)"), json!("record"));
        }
        for r in &plan.resolutions {
            use crate::pending::Outcome;
            let outcome = match &r.outcome {
                Outcome::Adopt(_) => "adopt the object found",
                Outcome::Clear => "clear the pending note",
                Outcome::DeleteRecord => "delete the record",
                Outcome::FinishDelete { .. } => "finish the delete",
                Outcome::DeposedGone(_) => "forget the deposed object",
            };
            items.insert(
                format!("{} (pending {})", r.pending.address, r.pending.operation),
                json!(outcome),
            );
        }
        for (a, rec) in &plan.refreshed {
            let subject = format!("{a} (refreshed)");
            let v = match rec {
                Some(r) => json!({
                    "provider_id": r.provider_id,
                    "attributes": h.hide_paths(&subject, Some(&r.attributes), &r.sensitive_paths),
                    "outputs": h.hide_paths(&subject, Some(&r.outputs), &r.sensitive_paths),
                }),
                None => json!("gone"),
            };
            items.insert(subject, v);
        }
        // Only when the plan does something: the settings apply uses then.
        if !items.is_empty() {
            for (name, settings) in &plan.providers {
                let subject = format!("provider {name}");
                let v = h.hide_credentials(&subject, settings);
                items.insert(subject, v);
            }
        }
        Review {
            lineage: lineage.to_string(),
            mode: mode_name(plan.mode).into(),
            key_id: key_id.map(str::to_string),
            items,
        }
    }

    /// Whether a secret is held without a hash (no key was configured).
    fn has_unhashed(&self) -> bool {
        fn any(v: &Value) -> bool {
            match v {
                Value::String(s) => s == UNHASHED,
                Value::Object(o) => o.values().any(any),
                Value::Array(a) => a.iter().any(any),
                _ => false,
            }
        }
        self.items.values().any(any)
    }

    /// Whether it holds any secret (hashed or not).
    fn has_secrets(&self) -> bool {
        fn any(v: &Value) -> bool {
            match v {
                Value::String(s) => is_stand_in(s),
                Value::Object(o) => o.values().any(any),
                Value::Array(a) => a.iter().any(any),
                _ => false,
            }
        }
        self.items.values().any(any)
    }
}

/// How `fresh` differs from the reviewed plan (empty: it does exactly what was reviewed).
/// Secrets are hashed with the key the reviewed plan names, so a rotation in between still
/// compares (the old key configured as `PROV_ENCRYPTION_KEY_OLD`).
pub fn compare(
    reviewed: &Review,
    fresh: &Plan,
    keys: &Keys,
) -> Result<Vec<Difference>, Unverifiable> {
    if reviewed.has_secrets() {
        match &reviewed.key_id {
            _ if reviewed.has_unhashed() => return Err(Unverifiable::ReviewedUnhashed),
            Some(id) if keys.by_id(id).is_none() => {
                return Err(Unverifiable::KeyMissing { key_id: id.clone() })
            }
            _ => {}
        }
    }
    // Reviewed before any state existed: the state apply just created (nothing written to it
    // yet, serial 0) is that state, as for a saved plan (`apply::check_plan_current`).
    let lineage = if reviewed.lineage.is_empty() && fresh.serial == 0 {
        ""
    } else {
        fresh.lineage.as_str()
    };
    let now = Review::with_key(fresh, keys, reviewed.key_id.as_deref(), lineage);
    let mut out = Vec::new();
    if reviewed.lineage != now.lineage {
        out.push(Difference::Lineage {
            reviewed: reviewed.lineage.clone(),
            now: now.lineage.clone(),
        });
    }
    if reviewed.mode != now.mode {
        out.push(Difference::Mode {
            reviewed: reviewed.mode.clone(),
            now: now.mode.clone(),
        });
    }
    let summary = |v: &Value| match v.get("action").and_then(Value::as_str) {
        Some(a) => a.to_string(),
        None => match v {
            Value::String(s) => s.clone(),
            _ => "change".to_string(),
        },
    };
    let subjects: std::collections::BTreeSet<&String> =
        reviewed.items.keys().chain(now.items.keys()).collect();
    for subject in subjects {
        match (reviewed.items.get(subject), now.items.get(subject)) {
            (Some(r), None) => out.push(Difference::OnlyReviewed {
                subject: subject.clone(),
                reviewed: summary(r),
            }),
            (None, Some(n)) => out.push(Difference::OnlyNow {
                subject: subject.clone(),
                now: summary(n),
            }),
            (Some(r), Some(n)) if r != n => {
                let mut diffs = Vec::new();
                leaves("", Some(r), Some(n), &mut diffs);
                out.extend(
                    diffs
                        .into_iter()
                        .map(|(path, reviewed, now)| Difference::Value {
                            subject: subject.clone(),
                            path,
                            reviewed,
                            now,
                        }),
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

type Leaf = (String, Option<Value>, Option<Value>);

/// The differing leaves of two values, by dotted path (objects key by key, arrays of equal
/// length element by element).
fn leaves(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Leaf>) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                leaves(&join(k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                leaves(&join(&i.to_string()), Some(p), Some(q), out);
            }
        }
        _ => out.push((path.to_string(), a.cloned(), b.cloned())),
    }
}

/// A value fit to show in a difference: stand-ins of secrets shown as `(sensitive value)`.
pub fn shown(v: &Value) -> Value {
    match v {
        Value::String(s) if is_stand_in(s) => Value::String(REDACTED.into()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), shown(x))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shown).collect()),
        other => other.clone(),
    }
}

/// The persisted form (`prov.review` in the plan JSON).
#[derive(Serialize, Deserialize)]
struct ReviewV1 {
    format_version: u32,
    lineage: String,
    mode: String,
    key_id: Option<String>,
    items: BTreeMap<String, Value>,
}

/// The review as the plan JSON carries it.
pub fn to_value(r: &Review) -> Value {
    serde_json::to_value(ReviewV1 {
        format_version: REVIEW_FORMAT_VERSION,
        lineage: r.lineage.clone(),
        mode: r.mode.clone(),
        key_id: r.key_id.clone(),
        items: r.items.clone(),
    })
    .expect("the review serialises")
}

/// Reads the review from plan JSON (`prov plan --json`, `prov show --json PLAN`): its
/// `prov.review` member.
pub fn from_plan_json(v: &Value) -> Result<Review, String> {
    let r = v.get("prov").and_then(|p| p.get("review")).ok_or(
        "it has no reviewed-plan record (prov.review): expected the output of `prov plan --json` or `prov show --json PLAN`, or a saved plan file",
    )?;
    let version = r.get("format_version").and_then(Value::as_u64).unwrap_or(0);
    if version != u64::from(REVIEW_FORMAT_VERSION) {
        return Err(format!(
            "its reviewed-plan record has format version {version}; this prov reads version {REVIEW_FORMAT_VERSION}: make the plan JSON again with this prov"
        ));
    }
    let f: ReviewV1 = serde_json::from_value(r.clone())
        .map_err(|e| format!("its reviewed-plan record (prov.review) is malformed: {e}"))?;
    Ok(Review {
        lineage: f.lineage,
        mode: f.mode,
        key_id: f.key_id,
        items: f.items,
    })
}

/// Reads what was reviewed from `path`: plan JSON (`prov plan --json`, `prov show --json
/// PLAN`), or a saved plan file (encrypted or not), whose review is made here with the
/// configured keys.
pub fn read(path: &std::path::Path, keys: &Keys) -> Result<Review, crate::error::EngineError> {
    let fail = |detail: String| crate::error::EngineError::ReviewedPlan {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if crate::crypt::is_encrypted(&bytes) {
        return Ok(Review::of(&super::file::read(path, keys)?, keys));
    }
    let v: Value = prov_state::from_slice(&bytes).map_err(|e| {
        fail(format!(
            "it is neither plan JSON nor a saved plan (invalid JSON: {e})"
        ))
    })?;
    if v.get("checksum").is_some() && v.get("plan").is_some() {
        return Ok(Review::of(&super::file::read(path, keys)?, keys));
    }
    from_plan_json(&v).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_name_each_differing_path() {
        let mut out = Vec::new();
        leaves(
            "",
            Some(&json!({"after": {"plan": "small", "tags": {"a": 1}}, "x": [1, 2]})),
            Some(&json!({"after": {"plan": "large", "tags": {"a": 1, "b": 2}}, "x": [1, 3]})),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                (
                    "after.plan".into(),
                    Some(json!("small")),
                    Some(json!("large"))
                ),
                ("after.tags.b".into(), None, Some(json!(2))),
                ("x.1".into(), Some(json!(2)), Some(json!(3))),
            ]
        );
        assert_eq!(
            shown(&json!({"pw": format!("{HASHED_PREFIX}abc)")})),
            json!({"pw": REDACTED})
        );
    }
}
