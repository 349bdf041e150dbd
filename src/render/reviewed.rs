//! `prov apply --expect-plan`: how the fresh plan differs from the reviewed one, one line per difference, secrets shown as stand-ins.

use prov_engine::plan::review::{shown, Difference};
use serde_json::Value;

/// The refusal: what differs, and what to do.
pub fn differences(reviewed: &str, diffs: &[Difference]) -> String {
    let mut s = format!(
        "the plan differs from the reviewed plan {reviewed} ({} difference{}); nothing was applied:\n",
        diffs.len(),
        if diffs.len() == 1 { "" } else { "s" }
    );
    for d in diffs {
        s.push_str("  ");
        s.push_str(&line(d));
        s.push('\n');
    }
    s.push_str(
        "Review the plan as it is now (prov plan) and apply that, or find out what changed since the review.",
    );
    s
}

fn line(d: &Difference) -> String {
    match d {
        Difference::Lineage { reviewed, now } => format!(
            "state lineage: reviewed {}, now {} (the plans were made against different states)",
            or_none(reviewed),
            or_none(now)
        ),
        Difference::Mode { reviewed, now } => {
            format!("plan mode: reviewed {reviewed}, now {now}")
        }
        Difference::OnlyReviewed { subject, reviewed } => {
            format!("{subject}: reviewed {reviewed}; now nothing to do")
        }
        Difference::OnlyNow { subject, now } => {
            format!("{subject}: not in the reviewed plan; now {now}")
        }
        Difference::Value { subject, path, .. } if d.is_secret() => {
            format!("{subject}: {path}: (sensitive value) differs from the reviewed one")
        }
        Difference::Value {
            subject,
            path,
            reviewed,
            now,
        } => format!(
            "{subject}: {path}: reviewed {}, now {}",
            value(reviewed.as_ref()),
            value(now.as_ref())
        ),
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(no state yet)"
    } else {
        s
    }
}

/// A value on one line, cut at 120 characters.
fn value(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "(absent)".into();
    };
    let s = serde_json::to_string(&shown(v)).unwrap_or_default();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(119).collect::<String>())
    } else {
        s
    }
}
