//! Plans and drift fit to show: every value at a sensitive path replaced (the rules are in `crate::sensitive`).

use super::Plan;
use crate::drift::{Drift, DriftKind};
use crate::sensitive::{
    provider_secrets, redact_diff, redact_value, secret_values, REDACTED, REDACTED_CHANGED,
};
use serde_json::Value;

fn redact_opt(v: &mut Option<Value>, paths: &[String]) {
    if let Some(x) = v {
        redact_value(x, paths);
    }
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
            if let Some(config) = &mut c.config {
                redact_value(std::sync::Arc::make_mut(config), &paths);
            }
            redact_opt(&mut c.computed, &paths);
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
        for d in &mut p.deposed {
            redact_value(&mut d.before, &d.sensitive);
        }
        for (name, v) in p.prior_outputs.iter_mut() {
            if self.sensitive_outputs.contains(name) {
                *v = Value::String(REDACTED.into());
            }
        }
        for o in &mut p.output_changes {
            if self.sensitive_outputs.contains(&o.name) {
                let changed = o.before.is_some() && o.after.is_some();
                if let Some(v) = &mut o.before {
                    *v = Value::String(REDACTED.into());
                }
                if let Some(v) = &mut o.after {
                    let shown = if changed { REDACTED_CHANGED } else { REDACTED };
                    *v = Value::String(shown.into());
                }
            }
        }
        p
    }

    /// Every secret the plan holds: values at its changes' sensitive paths and the providers'
    /// credentials, to scrub from text an apply shows (script output, error messages).
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.changes.iter().filter(|c| !c.sensitive.is_empty()) {
            let config = c.config.as_deref();
            for v in [c.before.as_ref(), c.after.as_ref(), config]
                .into_iter()
                .flatten()
            {
                secret_values(v, &c.sensitive, &mut out);
            }
        }
        provider_secrets(&self.providers, &mut out);
        // Longest first: a secret that contains another is replaced whole.
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out
    }

    /// Whether anything in the plan is sensitive (showing it needs [`Plan::redacted`]).
    pub fn has_sensitive(&self) -> bool {
        !self.sensitive_outputs.is_empty()
            || self.changes.iter().any(|c| !c.sensitive.is_empty())
            || self.deposed.iter().any(|d| !d.sensitive.is_empty())
    }
}
