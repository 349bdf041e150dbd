//! The human plan: one line per changed resource with its symbol and reason, then its entries from the review model (`review.rs`).

use super::review::{self, DriftView, ResourceView, Review};
use super::Paint;
use prov_engine::pending::{Outcome, Resolution};
use prov_engine::plan::view::{Body, Entry, Line, Op};
use prov_engine::plan::{Action, Plan, PlanMode};
use serde_json::Value;
use std::fmt::Write;

pub fn plan(p: &Plan, paint: Paint) -> String {
    let mut out = String::new();
    write_plan(&mut out, p, paint);
    out
}

/// [`plan`], written to `out` as it is laid out: the text of 10,000 resources is megabytes,
/// and a String grown to hold it was, with its copies while growing, part of an apply's peak
/// memory.
pub fn write_plan(out: &mut impl Write, p: &Plan, paint: Paint) {
    let review = Review::without_resources(p);
    let p = &review.plan;
    unfinished(out, p, paint);
    tagged(out, p, paint);
    if !review.drift.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.bold("Changed outside prov (found by refresh):")
        );
        let _ = out.write_str(&drift_views(&review.drift, paint));
        let _ = out.write_char('\n');
    }
    if p.mode == PlanMode::RefreshOnly {
        refresh_only(out, p, paint);
        return;
    }
    let accepted = p.refreshed.iter().filter(|(_, r)| r.is_some()).count();
    let nothing_else =
        !review.changes_resources() && review.outputs.is_empty() && p.protect.is_empty();
    if nothing_else && accepted > 0 {
        // Computed attributes changed outside prov: apply records them, nothing else.
        let _ = writeln!(
            out,
            "Refresh: {accepted} record(s) to update from the real world; nothing else changes."
        );
        return;
    }
    if nothing_else {
        let _ = out.write_str("No changes. The infrastructure matches the configuration.\n");
        return;
    }
    changes(out, &review, paint);
}

/// Interrupted operations an earlier apply left, then the tagged servers `--adopt` takes in.
fn unfinished(out: &mut impl Write, p: &Plan, paint: Paint) {
    let (adopted, interrupted): (Vec<Resolution>, Vec<Resolution>) = p
        .resolutions
        .iter()
        .cloned()
        .partition(|r| r.pending.operation == "adopt");
    if !interrupted.is_empty() {
        let _ = out.write_str(&resolutions(&interrupted, paint));
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
        let _ = out.write_char('\n');
    }
}

/// Live servers tagged for addresses this plan creates that no record holds, and the ways out.
fn tagged(out: &mut impl Write, p: &Plan, paint: Paint) {
    if p.tagged.is_empty() {
        return;
    }
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
    let _ = out.write_str(
        "  Apply refuses to create these addresses while they exist. Adopt them with \
         `prov plan --adopt` / `prov apply --adopt`, or one by one with \
         `prov import ADDRESS ID`; or delete them first. If they are another \
         workspace's that declares the same addresses, apply with --ignore-tagged.\n\n",
    );
}

/// A refresh-only plan's last line: how many records the real world updates, if any.
fn refresh_only(out: &mut impl Write, p: &Plan, paint: Paint) {
    if p.refreshed.is_empty() {
        let _ = out.write_str("No changes outside prov: the state matches the real world.\n");
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
}

/// The changes: each resource with its entries, kept protections, outputs, the summary line
/// and the cost section.
fn changes(out: &mut impl Write, review: &Review, paint: Paint) {
    let p = &review.plan;
    let head = match p.mode {
        PlanMode::Destroy => "prov will destroy the following resources:",
        PlanMode::Normal => "prov will perform the following actions:",
        PlanMode::RefreshOnly => "prov will accept these changes made outside prov into the state (nothing else changes):",
    };
    let _ = writeln!(out, "{head}\n");
    for r in review.resource_views() {
        resource(out, &r, paint);
        let _ = out.write_char('\n');
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
    if !review.outputs.is_empty() {
        let _ = out.write_str("Changes to outputs:\n");
        // One line each, unaligned: as apply prints the resolved outputs.
        for e in &review.outputs {
            entries(out, std::slice::from_ref(e), "  ", paint);
        }
        let _ = out.write_char('\n');
    }
    let s = review.summary;
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
            let _ = out.write_char('\n');
            let _ = out.write_str(&section);
        }
    }
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

/// Drift lines: what differs between the records and the real world (redacted findings).
pub fn drift(items: &[prov_engine::drift::Drift], paint: Paint) -> String {
    drift_views(&review::drift(items), paint)
}

fn drift_views(items: &[DriftView], paint: Paint) -> String {
    let mut out = String::new();
    for d in items {
        let sym = match d.symbol {
            "-" | "!" => paint.red(d.symbol),
            "?" => paint.magenta(d.symbol),
            s => paint.yellow(s),
        };
        let _ = writeln!(out, "  {sym} {}: {}", d.address, d.what);
        entries(&mut out, &d.entries, "      ", paint);
    }
    out
}

fn symbol(a: &Action, paint: Paint) -> String {
    let s = super::review::action_symbol(a);
    match a {
        Action::Create => paint.green(s),
        Action::Update => paint.yellow(s),
        Action::Replace { .. } => paint.magenta(s),
        Action::Delete { .. } => paint.red(s),
        Action::NoOp => s.to_string(),
    }
}

fn resource(out: &mut impl Write, r: &ResourceView, paint: Paint) {
    let _ = writeln!(
        out,
        "  {} {} {}",
        symbol(&r.action, paint),
        paint.bold(&r.address),
        paint.dim(&format!("({}) {}", r.implementation, r.headline))
    );
    entries(out, &r.entries, "      ", paint);
}

fn op_symbol(op: Op, paint: Paint) -> String {
    match op {
        Op::Add => paint.green("+"),
        Op::Remove => paint.red("-"),
        Op::Change => paint.yellow("~"),
    }
}

/// Lays out entries one per line (`~ path = before -> after`), values aligned on `=`;
/// multi-line strings as their lines below `~ path:`.
fn entries(out: &mut impl Write, list: &[Entry], indent: &str, paint: Paint) {
    let w = list
        .iter()
        .filter(|e| !matches!(e.body, Body::Lines { .. }))
        .map(|e| e.path.chars().count())
        .max()
        .unwrap_or(0);
    for e in list {
        let note = if e.forces_replacement {
            paint.red("  # forces replacement")
        } else {
            String::new()
        };
        let sym = op_symbol(e.op, paint);
        match &e.body {
            Body::Value { before, after } => {
                let text = review::value_text(before.as_ref(), after.as_ref());
                let _ = writeln!(out, "{indent}{sym} {:<w$} = {text}{note}", e.path);
            }
            Body::Elided { summary } => {
                let _ = writeln!(out, "{indent}{sym} {:<w$} = ({summary}){note}", e.path);
            }
            Body::Lines { lines } => {
                let _ = writeln!(out, "{indent}{sym} {}:{note}", e.path);
                for l in lines {
                    let _ = match l {
                        Line::Same(t) => writeln!(out, "{indent}      {t}"),
                        Line::Removed(t) => {
                            writeln!(out, "{indent}    {}", paint.red(&format!("- {t}")))
                        }
                        Line::Added(t) => {
                            writeln!(out, "{indent}    {}", paint.green(&format!("+ {t}")))
                        }
                        Line::Skipped(n) => writeln!(
                            out,
                            "{indent}    {}",
                            paint.dim(&format!(
                                "… {n} unchanged line{}",
                                if *n == 1 { "" } else { "s" }
                            ))
                        ),
                    };
                }
            }
        }
    }
}

/// A workspace output's value as a listing shows it: `(sensitive value)` when it shows a secret.
pub fn output_value(v: &Value, sensitive: bool) -> String {
    if sensitive {
        prov_engine::sensitive::REDACTED.to_string()
    } else {
        value(v)
    }
}

/// A value as a listing shows it on one line: strings quoted, the rest as compact JSON, a
/// multi-line string as its line count; redaction markers bare.
pub fn value(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains('\n') => format!("<<{} lines>>", s.lines().count()),
        other => review::shown(other),
    }
}

/// What an untrusted plan (`prov plan --untrusted`) did not look at; empty for other plans.
pub fn untrusted_note(p: &Plan, paint: Paint) -> String {
    if !p.untrusted {
        return String::new();
    }
    let mut s = format!(
        "\n{} refreshed through provider APIs only; nothing ran on servers or from the repository.\n",
        paint.yellow("Untrusted plan:")
    );
    if !p.unrefreshed.is_empty() {
        s.push_str(&format!(
            "Not checked (status is read on the servers; planned against the state): {}\n",
            p.unrefreshed
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push_str("Settings of the repository's own extension taskservs were not checked against their schemas. This plan is for review only: prov apply refuses it.\n");
    s
}
