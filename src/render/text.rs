//! The human plan: one line per changed resource with its symbol and reason, then attribute diffs; multi-line strings diffed line by line.

use super::Paint;
use prov_engine::model::Address;
use prov_engine::plan::{Action, AttrDiff, Plan, PlanMode, ResourceChange};
use prov_engine::refresh::{Outcome, Resolution};
use serde_json::Value;
use std::fmt::Write;

pub fn plan(p: &Plan, paint: Paint) -> String {
    let redacted;
    let p = if p.has_sensitive() {
        redacted = p.redacted();
        &redacted
    } else {
        p
    };
    let mut out = String::new();
    let changed: Vec<&ResourceChange> = p.changes.iter().filter(|c| !c.action.is_noop()).collect();
    let (adopted, interrupted): (Vec<Resolution>, Vec<Resolution>) = p
        .resolutions
        .iter()
        .cloned()
        .partition(|r| r.pending.operation == "adopt");
    if !interrupted.is_empty() {
        out.push_str(&resolutions(&interrupted, paint));
    }
    if !adopted.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.bold("Tagged servers adopted into the state (--adopt):")
        );
        for r in &adopted {
            let _ = writeln!(out, "  {}: {}", r.pending.address, r.note);
        }
        out.push('\n');
    }
    if !p.tagged.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.yellow(&paint.bold(&format!(
                "Warning: {} live server(s) are already tagged for addresses this plan creates, \
                 and no record holds them:",
                p.tagged.len()
            )))
        );
        for t in &p.tagged {
            let _ = writeln!(
                out,
                "  {}: {} ({}) at {}, tagged{}",
                t.address,
                t.id,
                t.hostname,
                t.provider,
                prov_engine::ops::tagged_by(t)
            );
        }
        out.push_str(
            "  Apply refuses to create these addresses while they exist. Adopt them with \
             `prov plan --adopt` / `prov apply --adopt`, or one by one with \
             `prov import ADDRESS ID`; or delete them first. If they are another \
             workspace's that declares the same addresses, apply with --ignore-tagged.\n\n",
        );
    }
    if !p.drift.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.bold("Changed outside prov (found by refresh):")
        );
        out.push_str(&drift(&p.drift, paint));
        out.push('\n');
    }
    if p.mode == PlanMode::RefreshOnly {
        if p.refreshed.is_empty() {
            out.push_str("No changes outside prov: the state matches the real world.\n");
        } else {
            let _ = writeln!(
                out,
                "{}",
                paint.bold(&format!(
                    "Refresh: {} record(s) to update from the real world.",
                    p.refreshed.len()
                ))
            );
        }
        return out;
    }
    let accepted = p.refreshed.iter().filter(|(_, r)| r.is_some()).count();
    let nothing_else = changed.is_empty()
        && p.output_changes.is_empty()
        && p.deposed.is_empty()
        && p.protect.is_empty();
    if nothing_else && accepted > 0 {
        // Computed attributes changed outside prov: apply records them, nothing else.
        let _ = writeln!(
            out,
            "Refresh: {accepted} record(s) to update from the real world; nothing else changes."
        );
        return out;
    }
    if nothing_else {
        out.push_str("No changes. The infrastructure matches the configuration.\n");
        return out;
    }
    let head = match p.mode {
        PlanMode::Destroy => "prov will destroy the following resources:",
        PlanMode::Normal => "prov will perform the following actions:",
        PlanMode::RefreshOnly => "prov will accept these changes made outside prov into the state (nothing else changes):",
    };
    let _ = writeln!(out, "{head}\n");
    for c in changed {
        resource(&mut out, c, paint);
        out.push('\n');
    }
    for d in &p.deposed {
        // Objects a create_before_destroy replace left behind: not the address's current one.
        let _ = writeln!(
            out,
            "  {} {} {}\n",
            paint.red("-"),
            paint.bold(&format!("{} (deposed {})", d.address, d.provider_id)),
            paint.dim(&format!(
                "({}) will be destroyed: an earlier replace left it behind",
                d.implementation
            ))
        );
    }
    for a in &p.protect {
        let _ = writeln!(
            out,
            "  {} {} {}\n",
            paint.yellow("~"),
            paint.bold(&a.to_string()),
            paint.dim("lifecycle.prevent_destroy will be kept in the state (only `prov state unprotect` lifts it)")
        );
    }
    if !p.output_changes.is_empty() {
        out.push_str("Changes to outputs:\n");
        for o in &p.output_changes {
            let line = match (&o.before, &o.after) {
                (None, Some(a)) => format!("{} {} = {}", paint.green("+"), o.name, value(a)),
                (None, None) => format!("{} {} = (known after apply)", paint.green("+"), o.name),
                (Some(_), Some(a)) if changed_secret(a) => {
                    format!("{} {} = {}", paint.yellow("~"), o.name, value(a))
                }
                (Some(b), Some(a)) => format!(
                    "{} {} = {} -> {}",
                    paint.yellow("~"),
                    o.name,
                    value(b),
                    value(a)
                ),
                (Some(b), None)
                    if p.mode == PlanMode::Normal && !p.outputs.contains_key(&o.name) =>
                {
                    format!("{} {} = {}", paint.red("-"), o.name, value(b))
                }
                (Some(b), None) if p.mode == PlanMode::Destroy => {
                    format!("{} {} = {}", paint.red("-"), o.name, value(b))
                }
                (Some(b), None) => format!(
                    "{} {} = {} -> (known after apply)",
                    paint.yellow("~"),
                    o.name,
                    value(b)
                ),
            };
            let _ = writeln!(out, "  {line}");
        }
        out.push('\n');
    }
    let s = p.summary();
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&format!(
            "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
            s.add, s.change, s.replace, s.destroy
        ))
    );
    if let Some(c) = &p.cost {
        let section = super::cost::text(c, paint);
        if !section.is_empty() {
            out.push('\n');
            out.push_str(&section);
        }
    }
    out
}

/// Operations an earlier apply left unfinished, and what apply will record about each.
pub fn resolutions(res: &[Resolution], paint: Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint.yellow(&paint.bold("Interrupted operations from an earlier apply:"))
    );
    for r in res {
        let what = match &r.outcome {
            Outcome::Adopt(_) => "will be adopted into the state",
            Outcome::Clear => "the pending note will be cleared",
            Outcome::DeleteRecord => "its record will be removed",
            Outcome::FinishDelete { .. } => "the delete will be finished",
            Outcome::DeposedGone(_) => "its record will forget it",
        };
        let _ = writeln!(
            out,
            "  {} {} (started {}, run {}): {}; {what}",
            r.pending.address,
            r.pending.operation,
            prov_state::format_utc(r.pending.started_at),
            r.pending.run_id,
            r.note
        );
    }
    out.push('\n');
    out
}

/// Drift lines: what differs between the records and the real world.
pub fn drift(items: &[prov_engine::drift::Drift], paint: Paint) -> String {
    use prov_engine::drift::DriftKind;
    let mut out = String::new();
    for d in items {
        let (sym, what) = match &d.kind {
            DriftKind::Gone => (paint.red("-"), "deleted outside prov".to_string()),
            DriftKind::Changed(_) => (paint.yellow("~"), "changed outside prov (recorded -> real)".to_string()),
            DriftKind::Stopped => (paint.yellow("~"), "stopped outside prov".to_string()),
            DriftKind::Version { recorded, real } => (
                paint.yellow("~"),
                format!(
                    "version {} recorded, {} installed",
                    recorded.as_deref().unwrap_or("(none)"),
                    real.as_deref().unwrap_or("(none)")
                ),
            ),
            DriftKind::Unmanaged { provider, id, hostname } => (
                paint.magenta("?"),
                format!("server {id} ({hostname}) at {provider} carries this workspace's ownership tag but is not in the state"),
            ),
            DriftKind::Error(m) => (paint.red("!"), format!("could not be checked: {m}")),
        };
        let _ = writeln!(out, "  {sym} {}: {what}", d.address);
        if let DriftKind::Changed(diffs) = &d.kind {
            let w = diffs.iter().map(|x| x.path.len()).max().unwrap_or(0);
            for x in diffs {
                attr(&mut out, x, w, paint);
            }
        }
    }
    out
}

fn symbol(a: &Action, paint: Paint) -> String {
    let s = a.symbol();
    match a {
        Action::Create => paint.green(s),
        Action::Update => paint.yellow(s),
        Action::Replace { .. } => paint.magenta(s),
        Action::Delete { .. } => paint.red(s),
        Action::NoOp => s.to_string(),
    }
}

/// A taskserv update says what apply runs: `upgrade` when the version changes, `configure`
/// when anything else (settings, health check) does, both in that order.
fn taskserv_update(c: &ResourceChange) -> String {
    if c.diffs.iter().all(|d| d.path == "status") {
        return "will be restarted (stopped outside prov)".to_string();
    }
    let version = c.diffs.iter().any(|d| d.path == "version");
    let other = c.diffs.iter().any(|d| d.path != "version");
    match (version, other) {
        (true, true) => "will be upgraded, then configured (upgrade + configure)".to_string(),
        (true, false) => "will be upgraded (upgrade)".to_string(),
        _ => "will be configured (configure, restarts it)".to_string(),
    }
}

fn resource(out: &mut String, c: &ResourceChange, paint: Paint) {
    let what = match &c.action {
        Action::Create => "will be created".to_string(),
        Action::Update if matches!(c.address, Address::Taskserv(..)) => taskserv_update(c),
        Action::Update if c.diffs.iter().all(|d| d.path == "status") => {
            "will be started (stopped outside prov)".to_string()
        }
        Action::Update => "will be updated in place".to_string(),
        Action::Replace {
            reason,
            create_before_destroy,
        } => format!(
            "will be replaced{}: {reason}",
            if *create_before_destroy {
                " (new one first)"
            } else {
                ""
            }
        ),
        Action::Delete { reason } => format!("will be destroyed: {reason}"),
        Action::NoOp => "unchanged".to_string(),
    };
    let _ = writeln!(
        out,
        "  {} {} {}",
        symbol(&c.action, paint),
        paint.bold(&c.address.to_string()),
        paint.dim(&format!("({}) {what}", c.implementation))
    );
    match &c.action {
        Action::Create => {
            let after = c.after.clone().unwrap_or(Value::Null);
            let mut rows = Vec::new();
            flatten("", &after, &c.after_unknown, &mut rows);
            let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                let _ = writeln!(out, "      {}{k:<w$} = {v}", paint.green("+ "));
            }
        }
        Action::Delete { .. } => {}
        _ => {
            let w = c.diffs.iter().map(|d| d.path.len()).max().unwrap_or(0);
            for d in &c.diffs {
                attr(out, d, w, paint);
            }
        }
    }
}

fn flatten(prefix: &str, v: &Value, unknown: &Value, rows: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, unknown.get(k).unwrap_or(&Value::Bool(false)), rows);
            }
        }
        _ if unknown == &Value::Bool(true) => {
            rows.push((prefix.to_string(), "(known after apply)".into()))
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            let items: String = a.iter().map(|x| format!("\n          {x},")).collect();
            rows.push((prefix.to_string(), format!("[{items}\n        ]")));
        }
        _ => rows.push((prefix.to_string(), value(v))),
    }
}

/// A workspace output's value as a listing shows it: `(sensitive value)` when it shows a secret.
pub fn output_value(v: &Value, sensitive: bool) -> String {
    if sensitive {
        prov_engine::plan::redact::REDACTED.to_string()
    } else {
        value(v)
    }
}

/// A value as a reviewer reads it: strings quoted, the rest as compact JSON; a redacted value
/// as its bare marker.
pub fn value(v: &Value) -> String {
    match v {
        Value::String(s) if prov_engine::plan::redact::is_marker(s) => s.clone(),
        Value::String(s) if s.contains('\n') => format!("<<{} lines>>", s.lines().count()),
        other => other.to_string(),
    }
}

/// Values a reviewer reads best line by line: multi-line strings, and lists of records (one
/// record per line), so a change to one firewall rule shows as that rule's line.
fn as_lines(before: Option<&Value>, after: Option<&Value>) -> Option<(String, String)> {
    let lines = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if s.contains('\n') => Some(if s.ends_with('\n') {
                s.clone()
            } else {
                format!("{s}\n")
            }),
            Value::Array(a) if a.iter().any(Value::is_object) => {
                Some(a.iter().map(|x| format!("{x}\n")).collect())
            }
            _ => None,
        }
    };
    match (lines(before), lines(after)) {
        (None, None) => None,
        (b, a) => Some((
            b.or_else(|| before.filter(|v| !v.is_null()).map(|v| format!("{v}\n")))
                .unwrap_or_default(),
            a.or_else(|| after.filter(|v| !v.is_null()).map(|v| format!("{v}\n")))
                .unwrap_or_default(),
        )),
    }
}

/// A redacted new value that differs from the old one: shown alone, "(sensitive value changed)".
fn changed_secret(v: &Value) -> bool {
    v.as_str() == Some(prov_engine::plan::redact::REDACTED_CHANGED)
}

fn attr(out: &mut String, d: &AttrDiff, w: usize, paint: Paint) {
    let note = if d.forces_replacement {
        paint.red("  # forces replacement")
    } else {
        String::new()
    };
    let before = d.before.as_ref();
    let after = d.after.as_ref();
    if let Some((b, a)) = as_lines(before, after).filter(|_| !d.unknown) {
        let _ = writeln!(out, "      {} {}:{note}", paint.yellow("~"), d.path);
        let diff = similar::TextDiff::from_lines(&b, &a);
        for change in diff.iter_all_changes() {
            let line = change.value().trim_end_matches('\n');
            let _ = match change.tag() {
                similar::ChangeTag::Equal => writeln!(out, "            {line}"),
                similar::ChangeTag::Delete => {
                    writeln!(out, "          {}", paint.red(&format!("- {line}")))
                }
                similar::ChangeTag::Insert => {
                    writeln!(out, "          {}", paint.green(&format!("+ {line}")))
                }
            };
        }
        return;
    }
    let (sym, text) = match (before, after, d.unknown) {
        (_, _, true) => (
            paint.yellow("~"),
            format!(
                "{} -> (known after apply)",
                before.map(value).unwrap_or("null".into())
            ),
        ),
        (None, Some(a), _) => (paint.green("+"), value(a)),
        (Some(b), None, _) => (paint.red("-"), format!("{} -> null", value(b))),
        (Some(_), Some(a), _) if changed_secret(a) => (paint.yellow("~"), value(a)),
        (Some(b), Some(a), _) => (paint.yellow("~"), format!("{} -> {}", value(b), value(a))),
        (None, None, _) => (paint.yellow("~"), "null".into()),
    };
    let _ = writeln!(out, "      {sym} {:<w$} = {text}{note}", d.path);
}
