//! The plan as a pull-request comment (`--format markdown`): summary first, then drift, a Mermaid graph, one `<details>` per change, outputs; cut to fit `--max-bytes`.
//!
//! Layout, top to bottom: a title with the counts; the counts as a table; every destroy and
//! replace by address with its reason (reviewers miss destroys buried in long plans); the cost
//! section ([`cost_section`]); notes (operations left pending, tagged servers, protections);
//! drift found during refresh; a Mermaid graph of the changed resources ([`graph`]); one
//! collapsible `<details>` per resource, or per group of identical changes, with its entries
//! in a ```` ```diff ```` fence; the output changes. Everything comes from the review model
//! (`review.rs`), so it shows what the text plan shows, redacted the same way.
//!
//! GitHub rejects a comment over 65,536 characters. When the whole document is larger than
//! `max_bytes`, the parts are kept by priority — title, counts, the destroy/replace list,
//! cost, notes, drift, outputs, the details of destroys and replaces, the graph, then as many
//! other details as fit — and a closing note says exactly what was left out and where the
//! full plan is. The output is deterministic: the same plan gives the same bytes.

use super::review::{self, ResourceView, Review};
use prov_engine::plan::view::{Body, Entry, Line, Op};
use prov_engine::plan::{Plan, PlanMode};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The default `--max-bytes`: just below GitHub's 65,536-character comment limit, leaving room
/// for a marker line a commenting tool may add.
pub const DEFAULT_MAX_BYTES: usize = 65_000;
/// The smallest `--max-bytes` accepted: room for the title, the counts and the closing note.
pub const MIN_MAX_BYTES: usize = 1_024;
/// Nodes the Mermaid graph draws at most (changed resources and their direct dependencies).
pub const GRAPH_NODES: usize = 40;

pub struct Options {
    /// The document stays at or under this many bytes.
    pub max_bytes: usize,
    /// Where the full plan is, said when something is left out (a command or a URL).
    pub full_plan: String,
}

pub fn plan(p: &Plan, opts: &Options) -> String {
    let r = Review::new(p);
    let parts = Parts::new(&r);
    parts.fit(opts)
}

/// The rendered pieces, in document order; [`Parts::fit`] picks what fits.
struct Parts {
    head: String,
    destructive: Vec<String>,
    destructive_head: String,
    cost: Option<String>,
    /// The cost's totals alone, kept when the whole cost table does not fit.
    cost_totals: Option<String>,
    notes: Option<String>,
    drift: Option<String>,
    graph: Option<String>,
    changes_head: String,
    /// (addresses, block), destroys and replaces first.
    details: Vec<(Vec<String>, String)>,
    /// How many of `details` are destroys and replaces.
    destructive_details: usize,
    outputs: Option<String>,
}

/// The parts `Parts::fit` keeps when the whole document is too long.
struct Kept {
    /// Rows of the destroyed-or-replaced list.
    rows: usize,
    cost: bool,
    /// The cost totals stand in for the cost table.
    totals_only: bool,
    notes: bool,
    drift: bool,
    outputs: bool,
    graph: bool,
    /// One flag per entry of `Parts::details`.
    details: Vec<bool>,
}

impl Parts {
    fn new(r: &Review) -> Parts {
        let s = r.summary;
        let p = &r.plan;
        let mut head = String::new();
        let title = match p.mode {
            PlanMode::Normal => "prov plan",
            PlanMode::Destroy => "prov plan (destroy)",
            PlanMode::RefreshOnly => "prov plan (refresh only)",
        };
        let nothing = r.resources.is_empty() && r.outputs.is_empty() && p.protect.is_empty();
        if p.mode == PlanMode::RefreshOnly {
            let _ = writeln!(
                head,
                "### {title}: {} record(s) to update from the real world\n",
                p.refreshed.len()
            );
        } else if nothing {
            let _ = writeln!(
                head,
                "### {title}: no changes\n\nThe infrastructure matches the configuration.\n"
            );
        } else {
            let _ = writeln!(
                head,
                "### {title}: {} to add, {} to change, {} to replace, {} to destroy\n",
                s.add, s.change, s.replace, s.destroy
            );
            head.push_str("| Action | Resources |\n|:--|--:|\n");
            for (name, n) in [
                ("add", s.add),
                ("change", s.change),
                ("replace", s.replace),
                ("destroy", s.destroy),
            ] {
                let _ = writeln!(head, "| {name} | {n} |");
            }
            head.push('\n');
        }
        let destructive: Vec<String> = r
            .resources
            .iter()
            .filter(|v| v.is_destructive())
            .map(|v| {
                format!(
                    "| `{}` | {} | {} |\n",
                    v.symbol,
                    cell(&v.address),
                    cell(v.reason().unwrap_or_default())
                )
            })
            .collect();
        let destructive_head = format!(
            "**{} destroyed or replaced** — review these first:\n\n| | Address | Reason |\n|:--|:--|:--|\n",
            destructive.len()
        );
        let (details, destructive_details) = details(r);
        Parts {
            destructive_details,
            head,
            destructive,
            destructive_head,
            cost: cost_section(r),
            cost_totals: cost_totals(r),
            notes: notes(r),
            drift: drift(r),
            graph: graph(r),
            changes_head: "#### Changes\n\n".to_string(),
            details,
            outputs: outputs(r),
        }
    }

    /// The document within `opts.max_bytes`: everything when it fits, else by priority.
    fn fit(mut self, opts: &Options) -> String {
        let all: Vec<bool> = vec![true; self.details.len()];
        let whole = self.assemble(
            self.destructive.len(),
            true,
            true,
            true,
            true,
            true,
            &all,
            "",
        );
        if whole.len() <= opts.max_bytes {
            return whole;
        }
        // Room kept for the closing note; its list of left-out addresses is cut to fit it.
        let reserve = (opts.max_bytes / 4).min(1_500);
        let budget = opts.max_bytes.saturating_sub(reserve);
        let k = self.choose(budget);
        let note = self.closing_note(opts, reserve, &k);
        let mut cost = k.cost;
        if k.totals_only {
            // The totals stand where the table would.
            std::mem::swap(&mut self.cost, &mut self.cost_totals);
            cost = true;
        }
        self.assemble(
            k.rows, cost, k.notes, k.drift, k.graph, k.outputs, &k.details, &note,
        )
    }

    /// What fits in `budget` bytes, in order of priority: the head, the destroyed and
    /// replaced rows, the cost (else its totals), notes, drift, outputs, the details of
    /// destroys and replaces, the graph, then the other details.
    fn choose(&self, budget: usize) -> Kept {
        let mut used = self.head.len();
        let mut rows = 0;
        if !self.destructive.is_empty() {
            used += self.destructive_head.len() + 1;
            for row in &self.destructive {
                if used + row.len() > budget {
                    break;
                }
                used += row.len();
                rows += 1;
            }
        }
        let mut take = |part: &Option<String>| match part {
            Some(t) if used + t.len() <= budget => {
                used += t.len();
                true
            }
            _ => false,
        };
        let cost = take(&self.cost);
        let totals_only = !cost && take(&self.cost_totals);
        let notes = take(&self.notes);
        let drift = take(&self.drift);
        let outputs = take(&self.outputs);
        used += self.changes_head.len();
        // The details of destroys and replaces, then the graph, then the other details.
        let mut kept = vec![false; self.details.len()];
        let mut keep = |i: usize, used: &mut usize| {
            if *used + self.details[i].1.len() <= budget {
                *used += self.details[i].1.len();
                kept[i] = true;
            }
        };
        for i in 0..self.destructive_details {
            keep(i, &mut used);
        }
        let graph = match &self.graph {
            Some(t) if used + t.len() <= budget => {
                used += t.len();
                true
            }
            _ => false,
        };
        for i in self.destructive_details..self.details.len() {
            keep(i, &mut used);
        }
        Kept {
            rows,
            cost,
            totals_only,
            notes,
            drift,
            outputs,
            graph,
            details: kept,
        }
    }

    /// The closing note: exactly what is missing, and where the whole plan is.
    fn closing_note(&self, opts: &Options, reserve: usize, k: &Kept) -> String {
        let mut missing = Vec::new();
        if k.rows < self.destructive.len() {
            missing.push(format!(
                "{} of the {} destroyed or replaced resources in the list above (all are in the full plan)",
                self.destructive.len() - k.rows,
                self.destructive.len()
            ));
        }
        if k.totals_only {
            missing.push("the cost per resource (the totals are above)".to_string());
        }
        for (part, kept, what) in [
            (&self.cost, k.cost || k.totals_only, "the cost section"),
            (&self.notes, k.notes, "the notes"),
            (&self.drift, k.drift, "the drift found during refresh"),
            (&self.outputs, k.outputs, "the output changes"),
            (&self.graph, k.graph, "the dependency graph"),
        ] {
            if part.is_some() && !kept {
                missing.push(what.to_string());
            }
        }
        let left: Vec<&String> = self
            .details
            .iter()
            .zip(&k.details)
            .filter(|(_, k)| !**k)
            .flat_map(|((addrs, _), _)| addrs)
            .collect();
        let total: usize = self.details.iter().map(|(a, _)| a.len()).sum();
        let mut note = format!(
            "\n---\n**Cut to stay under {} bytes.** The full plan: {}.\nLeft out: ",
            opts.max_bytes, opts.full_plan
        );
        let mut items = missing.join("; ");
        if !left.is_empty() {
            if !items.is_empty() {
                items.push_str("; ");
            }
            let _ = write!(
                items,
                "the details of {} of {} changed resources:",
                left.len(),
                total
            );
            // As many addresses as the reserve holds, then how many more.
            let room = reserve.saturating_sub(note.len() + items.len() + 64);
            let mut listed = 0;
            let mut list = String::new();
            for a in &left {
                let piece = format!(" `{a}`,");
                if list.len() + piece.len() > room {
                    break;
                }
                list.push_str(&piece);
                listed += 1;
            }
            items.push_str(list.trim_end_matches(','));
            if listed < left.len() {
                let _ = write!(items, " and {} more", left.len() - listed);
            }
        }
        note.push_str(&items);
        note.push_str(".\n");
        note
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        rows: usize,
        cost: bool,
        notes: bool,
        drift: bool,
        graph: bool,
        outputs: bool,
        kept: &[bool],
        note: &str,
    ) -> String {
        let mut out = self.head.clone();
        if !self.destructive.is_empty() {
            out.push_str(&self.destructive_head);
            for row in &self.destructive[..rows] {
                out.push_str(row);
            }
            out.push('\n');
        }
        for (part, on) in [
            (&self.cost, cost),
            (&self.notes, notes),
            (&self.drift, drift),
            (&self.graph, graph),
        ] {
            if let (Some(t), true) = (part, on) {
                out.push_str(t);
            }
        }
        if !self.details.is_empty() {
            out.push_str(&self.changes_head);
            for ((_, block), k) in self.details.iter().zip(kept) {
                if *k {
                    out.push_str(block);
                }
            }
        }
        if let (Some(t), true) = (&self.outputs, outputs) {
            out.push_str(t);
        }
        out.push_str(note);
        out
    }
}

/// The cost section: monthly cost before → after, per resource and in total (`cost.rs`, from the
/// providers' get-pricing at plan time); none with `--no-cost`. It sits right below the
/// destroy/replace list and is kept before any detail when the comment is cut.
fn cost_section(r: &Review) -> Option<String> {
    let md = super::cost::markdown(r.plan.cost.as_ref()?);
    // One heading level for every section of the comment.
    let md = md
        .strip_prefix("### ")
        .map(|m| format!("#### {m}"))
        .unwrap_or(md);
    (!md.is_empty()).then(|| md + "\n")
}

/// The cost section cut to its totals: what a large plan's comment keeps of the cost.
fn cost_totals(r: &Review) -> Option<String> {
    let c = r.plan.cost.as_ref()?;
    let lines = super::cost::totals_lines(c);
    if lines.is_empty() {
        return None;
    }
    let mut out = "#### Monthly cost\n\n".to_string();
    for t in lines {
        let _ = writeln!(out, "**Total:** {t}  ");
    }
    if let Some(n) = super::cost::unpriced_note(c) {
        let _ = writeln!(out, "({n})  ");
    }
    out.push('\n');
    Some(out)
}

/// Operations left pending by an earlier apply, tagged servers, protections kept.
fn notes(r: &Review) -> Option<String> {
    let p = &r.plan;
    let mut out = String::new();
    for res in &p.resolutions {
        let _ = writeln!(
            out,
            "- Interrupted `{}` of {} (run {}): {}",
            res.pending.operation,
            code(&res.pending.address.to_string()),
            res.pending.run_id,
            inline(&res.note)
        );
    }
    for t in &p.tagged {
        let _ = writeln!(
            out,
            "- **Warning:** live server {} ({}) at {} is already tagged for {}, which this plan creates; apply refuses until it is adopted (`--adopt`, `prov import`) or deleted",
            code(&t.id),
            inline(&t.hostname),
            inline(&t.provider),
            code(&t.address.to_string())
        );
    }
    for a in &p.protect {
        let _ = writeln!(
            out,
            "- {}: `lifecycle.prevent_destroy` will be kept in the state",
            code(&a.to_string())
        );
    }
    (!out.is_empty()).then(|| format!("#### Notes\n\n{out}\n"))
}

fn drift(r: &Review) -> Option<String> {
    if r.drift.is_empty() {
        return None;
    }
    let mut out = "#### Changed outside prov (found by refresh)\n\n".to_string();
    for d in &r.drift {
        let _ = writeln!(
            out,
            "- `{}` {}: {}",
            d.symbol,
            code(&d.address),
            inline(&d.what)
        );
        if !d.entries.is_empty() {
            out.push_str(&indent(&fenced(&d.entries), "  "));
        }
    }
    out.push('\n');
    Some(out)
}

fn outputs(r: &Review) -> Option<String> {
    if r.outputs.is_empty() {
        return None;
    }
    Some(format!("#### Outputs\n\n{}\n", fenced(&r.outputs)))
}

/// One block per resource, identical changes (same action, implementation, headline and
/// entries) grouped under their first address; destroys and replaces first (their count is the
/// second value: a group never mixes them with other actions, its symbol is part of its key).
fn details(r: &Review) -> (Vec<(Vec<String>, String)>, usize) {
    let mut groups: Vec<(Vec<&ResourceView>, String)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let order = r
        .resources
        .iter()
        .filter(|v| v.is_destructive())
        .chain(r.resources.iter().filter(|v| !v.is_destructive()));
    for v in order {
        let diff = if v.entries.is_empty() {
            String::new()
        } else {
            fenced(&v.entries)
        };
        let key = format!("{}\n{}\n{}\n{diff}", v.symbol, v.implementation, v.headline);
        match index.get(&key) {
            // Entries that name nothing (an empty diff) are not grouped: each is one line.
            Some(&i) if !diff.is_empty() => groups[i].0.push(v),
            _ => {
                index.insert(key, groups.len());
                groups.push((vec![v], diff));
            }
        }
    }
    let destructive = groups.iter().filter(|(m, _)| m[0].is_destructive()).count();
    let blocks = groups
        .into_iter()
        .map(|(members, diff)| {
            let first = members[0];
            let addrs: Vec<String> = members.iter().map(|v| v.address.clone()).collect();
            let what = format!(
                "<code>{}</code> <b>{}</b>{} ({}) {}{}",
                html(first.symbol),
                html(&first.address),
                if members.len() > 1 {
                    format!(" and {} more", members.len() - 1)
                } else {
                    String::new()
                },
                html(&first.implementation),
                html(&first.headline),
                if members.len() > 1 {
                    ", the same change each"
                } else {
                    ""
                }
            );
            let block = if diff.is_empty() {
                format!("{what}<br>\n\n")
            } else {
                let mut body = String::new();
                if members.len() > 1 {
                    let list: Vec<String> = addrs.iter().map(|a| code(a)).collect();
                    let _ = writeln!(body, "{}\n", list.join(", "));
                }
                format!("<details><summary>{what}</summary>\n\n{body}{diff}\n</details>\n\n")
            };
            (addrs, block)
        })
        .collect();
    (blocks, destructive)
}

/// Entries in a diff fence: `+`/`-` lines as GitHub colours them, `!` for a change.
fn fenced(entries: &[Entry]) -> String {
    let mut body = String::new();
    let w = entries
        .iter()
        .filter(|e| !matches!(e.body, Body::Lines { .. }))
        .map(|e| e.path.chars().count())
        .max()
        .unwrap_or(0);
    for e in entries {
        let sym = match e.op {
            Op::Add => "+",
            Op::Remove => "-",
            Op::Change => "!",
        };
        let note = if e.forces_replacement {
            "  # forces replacement"
        } else {
            ""
        };
        match &e.body {
            Body::Value { before, after } => {
                let text = review::value_text(before.as_ref(), after.as_ref());
                let _ = writeln!(body, "{sym} {:<w$} = {text}{note}", e.path);
            }
            Body::Elided { summary } => {
                let _ = writeln!(body, "{sym} {:<w$} = ({summary}){note}", e.path);
            }
            Body::Lines { lines } => {
                let _ = writeln!(body, "{sym} {}:{note}", e.path);
                for l in lines {
                    let _ = match l {
                        Line::Same(t) => writeln!(body, "      {t}"),
                        Line::Removed(t) => writeln!(body, "-     {t}"),
                        Line::Added(t) => writeln!(body, "+     {t}"),
                        Line::Skipped(n) => writeln!(
                            body,
                            "      … {n} unchanged line{}",
                            if *n == 1 { "" } else { "s" }
                        ),
                    };
                }
            }
        }
    }
    // A fence longer than any run of backticks inside, so content cannot close it.
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}diff\n{body}{fence}\n")
}

/// A Mermaid flowchart of the changed resources (coloured by action) and the resources they
/// depend on, dependencies pointing at their dependents (apply order). At most
/// [`GRAPH_NODES`] nodes, destroys and replaces first; what is not drawn is said below it.
pub fn graph(r: &Review) -> Option<String> {
    if r.resources.is_empty() {
        return None;
    }
    let order: Vec<&ResourceView> = r
        .resources
        .iter()
        .filter(|v| v.is_destructive())
        .chain(r.resources.iter().filter(|v| !v.is_destructive()))
        .collect();
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut nodes: Vec<(String, &'static str)> = Vec::new();
    let mut drawn = 0;
    for v in &order {
        if nodes.len() >= GRAPH_NODES {
            break;
        }
        ids.insert(&v.address, nodes.len());
        nodes.push((format!("{} {}", v.symbol, v.address), v.action_name()));
        drawn += 1;
    }
    // Unchanged dependencies of drawn resources, while there is room.
    let changed: BTreeSet<&str> = r.resources.iter().map(|v| v.address.as_str()).collect();
    for v in &order[..drawn] {
        for d in &v.depends_on {
            if nodes.len() >= GRAPH_NODES {
                break;
            }
            if !changed.contains(d.as_str()) && !ids.contains_key(d.as_str()) {
                ids.insert(d, nodes.len());
                nodes.push((d.clone(), "unchanged"));
            }
        }
    }
    let mut out = "#### Dependency graph\n\n```mermaid\nflowchart LR\n".to_string();
    for (i, (label, class)) in nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  n{i}[\"{}\"]:::{class}",
            label.replace('"', "#quot;")
        );
    }
    let mut edges = BTreeSet::new();
    for v in &order[..drawn] {
        let to = ids[v.address.as_str()];
        for d in &v.depends_on {
            if let Some(&from) = ids.get(d.as_str()) {
                edges.insert((from, to));
            }
        }
    }
    for (from, to) in &edges {
        let _ = writeln!(out, "  n{from} --> n{to}");
    }
    out.push_str(
        "  classDef create fill:#dafbe1,stroke:#1a7f37\n  classDef update fill:#fff8c5,stroke:#9a6700\n  classDef replace fill:#fbefff,stroke:#8250df\n  classDef destroy fill:#ffebe9,stroke:#cf222e\n  classDef unchanged fill:#f6f8fa,stroke:#8c959f,stroke-dasharray:3 3\n```\n",
    );
    if drawn < r.resources.len() {
        let _ = writeln!(
            out,
            "\n{} of {} changed resources drawn (destroys and replaces first); the rest are in the changes below.",
            drawn,
            r.resources.len()
        );
    }
    out.push('\n');
    Some(out)
}

fn indent(s: &str, by: &str) -> String {
    s.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// Text for HTML (inside `<summary>`).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code, safe whatever backticks it holds.
fn code(s: &str) -> String {
    if s.contains('`') {
        format!("`` {} ``", s.replace('\n', " "))
    } else {
        format!("`{s}`")
    }
}

/// Inline text: no line breaks, HTML-looking text escaped.
fn inline(s: &str) -> String {
    html(&s.replace('\n', " "))
}

/// A table cell: inline text with `|` escaped.
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prov_engine::plan::view::Body;
    use serde_json::json;

    #[test]
    fn fences_outgrow_backticks_in_content() {
        let e = Entry {
            path: "readme".into(),
            op: Op::Add,
            body: Body::Lines {
                lines: vec![Line::Added("```".into()), Line::Added("````x".into())],
            },
            forces_replacement: false,
        };
        let f = fenced(&[e]);
        assert!(f.starts_with("`````diff\n"), "{f}");
        assert!(f.ends_with("\n`````\n"), "{f}");
        let v = Entry {
            path: "p".into(),
            op: Op::Change,
            body: Body::Value {
                before: Some(json!(1)),
                after: Some(json!(2)),
            },
            forces_replacement: true,
        };
        assert_eq!(
            fenced(&[v]),
            "```diff\n! p = 1 -> 2  # forces replacement\n```\n"
        );
        assert_eq!(cell("a|b <c>"), "a\\|b &lt;c&gt;");
    }
}
