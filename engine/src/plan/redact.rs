//! Values marked sensitive (`sensitive = ["settings.password"]`) are replaced before anything is shown.

use super::{AttrDiff, Plan};
use crate::drift::{Drift, DriftKind};
use serde_json::Value;

/// What is shown instead of a sensitive value.
pub const REDACTED: &str = "(sensitive)";

/// Whether `path` is, or lies under, one of the sensitive `paths`.
pub fn is_sensitive(path: &str, paths: &[String]) -> bool {
    paths.iter().any(|p| {
        path == p
            || path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Replaces the value at every sensitive path that exists in `v`.
pub fn redact_value(v: &mut Value, paths: &[String]) {
    for p in paths {
        let parts: Vec<&str> = p.split('.').collect();
        redact_at(v, &parts);
    }
}

fn redact_at(v: &mut Value, parts: &[&str]) {
    let Some((head, rest)) = parts.split_first() else {
        *v = Value::String(REDACTED.into());
        return;
    };
    let next = match v {
        Value::Object(o) => o.get_mut(*head),
        Value::Array(a) => head.parse::<usize>().ok().and_then(|n| a.get_mut(n)),
        _ => None,
    };
    if let Some(n) = next {
        redact_at(n, rest);
    }
}

fn redact_opt(v: &mut Option<Value>, paths: &[String]) {
    if let Some(x) = v {
        redact_value(x, paths);
    }
}

/// Redacts one attribute diff, rooted at the resource.
pub fn redact_diff(d: &mut AttrDiff, paths: &[String]) {
    if is_sensitive(&d.path, paths) {
        for side in [&mut d.before, &mut d.after] {
            if side.is_some() {
                *side = Some(Value::String(REDACTED.into()));
            }
        }
        return;
    }
    // A diff on a parent (an object added or removed whole) may hold a sensitive child.
    let prefix = format!("{}.", d.path);
    let inner: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .collect();
    redact_opt(&mut d.before, &inner);
    redact_opt(&mut d.after, &inner);
}

/// Redacts drift findings with the sensitive paths of their records.
pub fn redact_drift(d: &mut Drift, paths: &[String]) {
    if let DriftKind::Changed(diffs) = &mut d.kind {
        for x in diffs {
            redact_diff(x, paths);
        }
    }
}

impl Plan {
    /// A copy fit to show: every sensitive value replaced. Apply uses the plan itself.
    pub fn redacted(&self) -> Plan {
        let mut p = self.clone();
        for c in &mut p.changes {
            let paths = c.sensitive.clone();
            if paths.is_empty() {
                continue;
            }
            redact_opt(&mut c.before, &paths);
            redact_opt(&mut c.after, &paths);
            redact_opt(&mut c.config, &paths);
            for d in &mut c.diffs {
                redact_diff(d, &paths);
            }
        }
        let sens: std::collections::HashMap<String, Vec<String>> = self
            .changes
            .iter()
            .map(|c| (c.address.to_string(), c.sensitive.clone()))
            .collect();
        for d in &mut p.drift {
            if let Some(paths) = sens.get(&d.address) {
                redact_drift(d, paths);
            }
        }
        for o in &mut p.output_changes {
            if self.sensitive_outputs.contains(&o.name) {
                for v in [&mut o.before, &mut o.after].into_iter().flatten() {
                    *v = Value::String(REDACTED.into());
                }
            }
        }
        p
    }

    /// Whether anything in the plan is sensitive (showing it needs [`Plan::redacted`]).
    pub fn has_sensitive(&self) -> bool {
        !self.sensitive_outputs.is_empty() || self.changes.iter().any(|c| !c.sensitive.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_paths_and_children() {
        let paths = vec!["settings.password".to_string(), "tags.token".to_string()];
        let mut v =
            json!({"settings": {"password": "hunter2", "user": "u"}, "tags": {"token": "t"}});
        redact_value(&mut v, &paths);
        assert_eq!(
            v,
            json!({"settings": {"password": REDACTED, "user": "u"}, "tags": {"token": REDACTED}})
        );
        assert!(is_sensitive("settings.password", &paths));
        assert!(is_sensitive("settings.password.x", &paths));
        assert!(!is_sensitive("settings.passwords", &paths));
        let mut d = AttrDiff {
            path: "settings".into(),
            before: None,
            after: Some(json!({"password": "p"})),
            unknown: false,
            forces_replacement: false,
        };
        redact_diff(&mut d, &paths);
        assert_eq!(d.after, Some(json!({"password": REDACTED})));
    }
}
