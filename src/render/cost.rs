//! The plan's monthly cost (`prov_engine::plan::cost`) as text, JSON (prov's `cost` key) and Markdown.

use super::Paint;
use prov_engine::plan::cost::{cents_text, delta_text, Cost, Money, Priced, ResourceCost};
use serde_json::{json, Value};
use std::fmt::Write;

/// `+`, `-` or `~`: what happens to the server's price.
pub fn symbol(r: &ResourceCost) -> &'static str {
    match (&r.before, &r.after) {
        (None, _) => "+",
        (_, None) => "-",
        _ => "~",
    }
}

/// `5.00 SIM`, `unknown`, or `none` (nothing exists on that side).
pub fn side(p: &Option<Priced>) -> String {
    match p {
        None => "none".into(),
        Some(Priced { price: Some(m), .. }) => m.display(),
        Some(Priced { price: None, .. }) => "unknown".into(),
    }
}

/// `sim small -> large`, `aws t3.micro (us-east-1a)`: what the price is of.
pub fn what(r: &ResourceCost) -> String {
    let one = |p: &Priced| format!("{} {} ({})", p.provider, p.plan, p.zone);
    match (&r.before, &r.after) {
        (Some(b), Some(a)) if b.provider == a.provider && b.zone == a.zone => {
            if b.plan == a.plan {
                one(a)
            } else {
                format!("{} {} -> {} ({})", a.provider, b.plan, a.plan, a.zone)
            }
        }
        (Some(b), Some(a)) => format!("{} -> {}", one(b), one(a)),
        (Some(p), None) | (None, Some(p)) => one(p),
        (None, None) => String::new(),
    }
}

/// At most this many servers are listed by name in a cost section (JSON lists them all).
pub const MAX_LISTED: usize = 50;

/// The servers a reviewer should look at: those whose price changes or is unknown, in plan
/// order; of more than [`MAX_LISTED`], the unknown ones and the largest changes. Also how many
/// such servers are left out.
pub fn shown(c: &Cost) -> (Vec<&ResourceCost>, usize) {
    let mut all: Vec<(usize, &ResourceCost)> = c
        .resources
        .iter()
        .filter(|r| r.delta().is_none_or(|d| d.cents != 0))
        .enumerate()
        .collect();
    if all.len() <= MAX_LISTED {
        return (all.into_iter().map(|(_, r)| r).collect(), 0);
    }
    let more = all.len() - MAX_LISTED;
    // Unknown first, then by size of the change; ties keep plan order.
    all.sort_by_key(|(i, r)| (r.delta().map_or(i64::MIN, |d| -d.cents.abs()), *i));
    all.truncate(MAX_LISTED);
    all.sort_by_key(|(i, _)| *i);
    (all.into_iter().map(|(_, r)| r).collect(), more)
}

/// "and N more servers whose price changes (all of them in `--json`)".
pub fn more_note(more: usize) -> String {
    format!(
        "and {more} more server{} whose price changes (the largest changes are listed; all of them in --json)",
        if more == 1 { "" } else { "s" }
    )
}

/// `10.00 -> 65.00 SIM per month (+55.00)` for each currency.
pub fn totals_lines(c: &Cost) -> Vec<String> {
    c.totals
        .iter()
        .map(|t| {
            let delta = match t.delta_cents() {
                0 => "no change".to_string(),
                d => delta_text(d),
            };
            format!(
                "{} -> {} {} per month ({delta})",
                cents_text(t.before_cents),
                cents_text(t.after_cents),
                t.currency,
            )
        })
        .collect()
}

/// What the totals leave out, if anything.
pub fn unpriced_note(c: &Cost) -> Option<String> {
    (c.unpriced > 0).then(|| {
        format!(
            "not counting {} server{} whose price is unknown",
            c.unpriced,
            if c.unpriced == 1 { "" } else { "s" }
        )
    })
}

/// The human plan's cost section (empty when the plan has no servers to price).
pub fn text(c: &Cost, paint: Paint) -> String {
    let mut out = String::new();
    if c.totals.is_empty() && c.unknown.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{}",
        paint.bold("Monthly cost (estimated from the providers' prices):")
    );
    let (listed, more) = shown(c);
    let rows: Vec<[String; 6]> = listed
        .into_iter()
        .map(|r| {
            [
                symbol(r).to_string(),
                r.label(),
                side(&r.before),
                side(&r.after),
                r.delta()
                    .map(|d| format!("{} {}", delta_text(d.cents), d.currency))
                    .unwrap_or_default(),
                what(r),
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w1, w2, w3, w4) = (width(1), width(2), width(3), width(4));
    for r in &rows {
        let sym = match r[0].as_str() {
            "+" => paint.green("+"),
            "-" => paint.red("-"),
            _ => paint.yellow("~"),
        };
        let line = format!(
            "  {sym} {:<w1$}  {:>w2$} -> {:<w3$}  {:>w4$}  {}",
            r[1],
            r[2],
            r[3],
            r[4],
            paint.dim(&r[5])
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if more > 0 {
        let _ = writeln!(out, "  {}", more_note(more));
    }
    let same = c.resources.len() - rows.len() - more;
    if same > 0 {
        let _ = writeln!(
            out,
            "  {same} other changed server{} cost the same as before",
            if same == 1 { "" } else { "s" }
        );
    }
    for t in totals_lines(c) {
        let _ = writeln!(out, "  {} {t}", paint.bold("Total:"));
    }
    if let Some(n) = unpriced_note(c) {
        let _ = writeln!(out, "  ({n})");
    }
    for u in &c.unknown {
        let _ = writeln!(out, "  {} {u}", paint.yellow("unknown:"));
    }
    out
}

fn money(m: &Money) -> Value {
    json!({"monthly": m.cents as f64 / 100.0, "currency": m.currency})
}

fn priced(p: &Option<Priced>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => {
            let mut v = json!({"provider": p.provider, "plan": p.plan, "zone": p.zone});
            match &p.price {
                Some(m) => {
                    v["monthly"] = json!(m.cents as f64 / 100.0);
                    v["currency"] = json!(m.currency);
                }
                None => {
                    v["monthly"] = Value::Null;
                    v["currency"] = Value::Null;
                }
            }
            v
        }
    }
}

/// The top-level `cost` key of `prov plan --json` / `prov show --json` (prov's own; schema in
/// docs/cost.md): every changed server, totals per currency, what is unknown.
pub fn json(c: &Cost) -> Value {
    json!({
        "resources": c.resources.iter().map(|r| {
            let mut v = json!({
                "address": r.address.to_string(),
                "before": priced(&r.before),
                "after": priced(&r.after),
                "delta": r.delta().map(|d| money(&d)).unwrap_or(Value::Null),
            });
            if let Some(id) = &r.deposed {
                v["deposed"] = json!(id);
            }
            v
        }).collect::<Vec<_>>(),
        "totals": c.totals.iter().map(|t| json!({
            "currency": t.currency,
            "before": t.before_cents as f64 / 100.0,
            "after": t.after_cents as f64 / 100.0,
            "delta": t.delta_cents() as f64 / 100.0,
        })).collect::<Vec<_>>(),
        "unpriced": c.unpriced,
        "unknown": c.unknown,
    })
}

/// Markdown: a table of the servers whose price changes, the totals, what is unknown.
pub fn markdown(c: &Cost) -> String {
    let mut out = String::new();
    if c.totals.is_empty() && c.unknown.is_empty() {
        return out;
    }
    let _ = writeln!(out, "### Monthly cost\n");
    let (rows, more) = shown(c);
    if !rows.is_empty() {
        out.push_str("| | resource | before | after | change | plan |\n");
        out.push_str("|---|---|--:|--:|--:|---|\n");
        for r in rows {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} |",
                symbol(r),
                r.label(),
                side(&r.before),
                side(&r.after),
                r.delta()
                    .map(|d| format!("{} {}", delta_text(d.cents), d.currency))
                    .unwrap_or_else(|| "unknown".into()),
                md_escape(&what(r))
            );
        }
        if more > 0 {
            let _ = writeln!(out, "\n{}", more_note(more));
        }
        out.push('\n');
    }
    for t in totals_lines(c) {
        let _ = writeln!(out, "**Total:** {t}  ");
    }
    if let Some(n) = unpriced_note(c) {
        let _ = writeln!(out, "({n})  ");
    }
    for u in &c.unknown {
        let _ = writeln!(out, "- unknown: {}", md_escape(u));
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('<', "&lt;")
}
