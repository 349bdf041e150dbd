//! `prov show --format html`: the plan as one self-contained HTML file (inline CSS, JS and SVG; no network) for CI artifacts.
//!
//! Above everything: the counts, every destroy and replace with its reason, the cost delta.
//! Then drift, the cost table, the dependency graph of the changed resources (drawn by
//! [`super::svg`]), a toolbar (filter by action, search by address, expand/collapse) and one
//! collapsible `<details>` per changed resource. Everything shown comes from the review model
//! (`super::review`, the same as text and Markdown): the report lays it out and never diffs or
//! redacts itself. A Content-Security-Policy forbids every fetch, so the file works offline and
//! leaks nothing when opened.

use super::review::{self, ResourceView, Review};
use super::svg::escape;
use prov_engine::plan::cost::{cents_text, delta_text};
use prov_engine::plan::view::{Body, Entry, Line as DiffLine, Op};
use prov_engine::plan::{Plan, PlanMode};
use std::fmt::Write;

/// Graphs with more changed resources than this are not drawn (they would not be readable);
/// the report says so.
pub const MAX_GRAPH_NODES: usize = 200;

/// Up to this many changed resources the diffs are in the page itself (readable without
/// JavaScript); above, they are rendered when an entry is opened.
pub const INLINE_DIFFS_UP_TO: usize = 1000;

/// The anchor of a resource's entry.
fn anchor(address: &str) -> String {
    format!("r-{address}")
}

const STYLE: &str = r#"
:root{--add:#1a7f37;--del:#cf222e;--chg:#9a6700;--rep:#8250df;--mut:#57606a;--bg:#fff;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--mut);margin:0 0 12px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.counts{display:flex;gap:10px;flex-wrap:wrap;margin:8px 0}
.count{border:1px solid var(--line);border-radius:6px;padding:6px 12px;font-weight:600}
.count.create{color:var(--add)}.count.update{color:var(--chg)}.count.replace{color:var(--rep)}.count.destroy{color:var(--del)}
.danger{border:1px solid var(--del);background:#fff5f5;border-radius:6px;padding:8px 12px;margin:8px 0}
.danger h3{margin:0 0 4px;font-size:14px;color:var(--del)}
.danger ul{margin:0;padding-left:20px}
.costline{font-weight:600}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.toolbar{position:sticky;top:0;background:var(--bg);border-bottom:1px solid var(--line);padding:8px 0;display:flex;gap:14px;flex-wrap:wrap;align-items:center;z-index:1}
.toolbar input[type=search]{padding:4px 8px;min-width:260px;border:1px solid var(--line);border-radius:6px}
.toolbar button{padding:3px 10px;border:1px solid var(--line);border-radius:6px;background:#f6f8fa;cursor:pointer}
#shown{color:var(--mut)}
details.res{border:1px solid var(--line);border-radius:6px;margin:6px 0;content-visibility:auto;contain-intrinsic-size:auto 32px}
details.res>summary{cursor:pointer;padding:5px 10px;list-style-position:inside}
details.res[open]>summary{border-bottom:1px solid var(--line)}
.sym{display:inline-block;min-width:2.2em;font-weight:700;font-family:ui-monospace,monospace}
.create .sym{color:var(--add)}.update .sym{color:var(--chg)}.replace .sym{color:var(--rep)}.destroy .sym{color:var(--del)}
.what{color:var(--mut)}
pre.diff{margin:0;padding:8px 12px;overflow-x:auto;white-space:pre}
.diff .add{color:var(--add)}.diff .del{color:var(--del)}.diff .chg{color:var(--chg)}.diff .ctx{color:var(--mut)}
.diff .note{color:var(--del);font-style:italic}
.graphbox{overflow:auto;border:1px solid var(--line);border-radius:6px;max-height:70vh}
svg.graph .edge{fill:none;stroke:#8c959f;stroke-width:1.2}
svg.graph .arrowhead{fill:#8c959f}
svg.graph .node rect{fill:#f6f8fa;stroke:#8c959f}
svg.graph .node text{font:12px ui-monospace,monospace;fill:#1f2328}
svg.graph .node.create rect{stroke:var(--add);fill:#dafbe1}svg.graph .node.update rect{stroke:var(--chg);fill:#fff8c5}
svg.graph .node.replace rect{stroke:var(--rep);fill:#fbefff}svg.graph .node.destroy rect{stroke:var(--del);fill:#ffebe9}
svg.graph .node.dim{opacity:.2}
.unknown{color:var(--chg)}
footer{color:var(--mut);margin-top:32px;font-size:12px}
"#;

const SCRIPT: &str = r#"
(function(){
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("details.res"));
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.filter"));
  var nodes = Array.prototype.slice.call(document.querySelectorAll("svg.graph .node"));
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  function visible(el, on, q) {
    return on[el.getAttribute("data-action")] === true &&
      (q === "" || el.getAttribute("data-address").toLowerCase().indexOf(q) >= 0);
  }
  function apply() {
    var on = {};
    boxes.forEach(function(b){ on[b.value] = b.checked; });
    var q = search.value.trim().toLowerCase();
    var n = 0;
    rows.forEach(function(r){ var ok = visible(r, on, q); r.hidden = !ok; if (ok) { n++; } });
    nodes.forEach(function(g){ g.classList.toggle("dim", !visible(g, on, q)); });
    shown.textContent = "showing " + n + " of " + rows.length;
  }
  var timer = null;
  search.addEventListener("input", function(){ clearTimeout(timer); timer = setTimeout(apply, 80); });
  boxes.forEach(function(b){ b.addEventListener("change", apply); });
  document.getElementById("expand").addEventListener("click", function(){
    rows.forEach(function(r){ if (!r.hidden) { r.open = true; } });
  });
  document.getElementById("collapse").addEventListener("click", function(){
    rows.forEach(function(r){ r.open = false; });
  });
  var data = null;
  function fill(d) {
    var pre = d.querySelector("pre.diff");
    var src = document.getElementById("diff-data");
    if (!src || !pre || pre.childNodes.length > 0) { return; }
    if (data === null) { data = JSON.parse(src.textContent); }
    var lines = data[Number(d.getAttribute("data-i"))] || [];
    var frag = document.createDocumentFragment();
    lines.forEach(function(l){
      var span = document.createElement("span");
      span.className = l[0];
      span.textContent = l[1] + "\n";
      frag.appendChild(span);
    });
    pre.appendChild(frag);
  }
  document.getElementById("resources").addEventListener("toggle", function(e){
    if (e.target.open) { fill(e.target); }
  }, true);
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") { el.hidden = false; el.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  // Everything is shown at first: only the counter needs writing (10,000 rows need no pass).
  shown.textContent = "showing " + rows.length + " of " + rows.length;
})();
"#;

/// One line of a resource's diff: a CSS class (`add`, `del`, `chg`, `ctx`) and its text.
type Line = (&'static str, String);

fn op_class(op: Op) -> &'static str {
    match op {
        Op::Add => "add",
        Op::Remove => "del",
        Op::Change => "chg",
    }
}

/// The review model's entries laid out as the text plan lays them out: `~ path = before ->
/// after`, aligned on `=`; multi-line strings as their changed lines below `~ path:`.
fn entry_lines(list: &[Entry]) -> Vec<Line> {
    let w = list
        .iter()
        .filter(|e| !matches!(e.body, Body::Lines { .. }))
        .map(|e| e.path.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for e in list {
        let note = if e.forces_replacement {
            "  # forces replacement"
        } else {
            ""
        };
        let (class, sym) = (op_class(e.op), review::op_symbol(e.op));
        match &e.body {
            Body::Value { before, after } => {
                let text = review::value_text(before.as_ref(), after.as_ref());
                out.push((class, format!("{sym} {:<w$} = {text}{note}", e.path)));
            }
            Body::Elided { summary } => {
                out.push((class, format!("{sym} {:<w$} = ({summary}){note}", e.path)));
            }
            Body::Lines { lines } => {
                out.push((class, format!("{sym} {}:{note}", e.path)));
                for l in lines {
                    out.push(match l {
                        DiffLine::Same(t) => ("ctx", format!("      {t}")),
                        DiffLine::Removed(t) => ("del", format!("    - {t}")),
                        DiffLine::Added(t) => ("add", format!("    + {t}")),
                        DiffLine::Skipped(n) => (
                            "ctx",
                            format!("    … {n} unchanged line{}", if *n == 1 { "" } else { "s" }),
                        ),
                    });
                }
            }
        }
    }
    out
}

fn lines_html(out: &mut String, lines: &[Line]) {
    out.push_str("<pre class=\"diff\">");
    for (class, text) in lines {
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(text));
    }
    out.push_str("</pre>");
}

/// Whether an entry has an anchor (deposed objects share their address with its current one).
fn anchored(r: &ResourceView) -> bool {
    !r.address.contains(" (deposed ")
}

/// The whole report.
pub fn plan(p: &Plan) -> String {
    let r = Review::new(p);
    let p: &Plan = &r.plan;
    let mut out = String::with_capacity(4096 + r.resources.len() * 400);
    head(&mut out, p);
    summary_section(&mut out, &r);
    found_sections(&mut out, &r);
    if let Some(c) = &p.cost {
        cost_section(&mut out, c);
    }
    graph_section(&mut out, &r.resources);
    changes_section(&mut out, &r);
    recorded_sections(&mut out, &r);
    let _ = write!(
        out,
        "<footer>Made by prov {}. This file is self-contained: it loads nothing from the network.</footer>",
        escape(&p.prov_version)
    );
    let _ = writeln!(out, "</main><script>{SCRIPT}</script></body></html>");
    out
}

/// The document's head, its title and the line naming prov's version, the lineage and the configuration.
fn head(out: &mut String, p: &Plan) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    // No fetch of any kind: the report is one file and stays one.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let title = match p.mode {
        PlanMode::Destroy => "prov destroy plan",
        PlanMode::RefreshOnly => "prov refresh-only plan",
        PlanMode::Normal => "prov plan",
    };
    let _ = write!(
        out,
        "<title>{title}</title><style>{STYLE}</style></head><body><main>"
    );
    let _ = write!(out, "<h1>{title}</h1>");
    let _ = write!(
        out,
        "<p class=\"meta\">prov {} · state lineage <code>{}</code> serial {} · configuration <code>{}</code></p>",
        escape(&p.prov_version),
        escape(if p.lineage.is_empty() { "(new)" } else { &p.lineage }),
        p.serial,
        escape(p.config_hash.get(..12).unwrap_or(&p.config_hash))
    );
}

/// Summary: counts, every destroy and replace with its reason, the cost delta.
fn summary_section(out: &mut String, r: &Review) {
    let p: &Plan = &r.plan;
    let s = r.summary;
    out.push_str("<section id=\"summary\"><h2>Summary</h2><div class=\"counts\">");
    for (class, n, label) in [
        ("create", s.add, "to add"),
        ("update", s.change, "to change"),
        ("replace", s.replace, "to replace"),
        ("destroy", s.destroy, "to destroy"),
    ] {
        let _ = write!(
            out,
            "<span class=\"count {class}\" data-count=\"{class}\">{n} {label}</span>"
        );
    }
    out.push_str("</div>");
    let gone: Vec<String> = r
        .resources
        .iter()
        .filter(|v| v.is_destructive())
        .map(|v| {
            let name = if anchored(v) {
                format!(
                    "<a href=\"#{}\"><code>{}</code></a>",
                    escape(&anchor(&v.address)),
                    escape(&v.address)
                )
            } else {
                format!("<code>{}</code>", escape(&v.address))
            };
            let verb = if matches!(v.action, prov_engine::plan::Action::Replace { .. }) {
                "replaced"
            } else {
                "destroyed"
            };
            format!(
                "<li>{name} {verb}: {}</li>",
                escape(v.reason().unwrap_or_default())
            )
        })
        .collect();
    if !gone.is_empty() {
        let _ = write!(
            out,
            "<div class=\"danger\" id=\"destroys\"><h3>{} destroyed or replaced</h3><ul>{}</ul></div>",
            gone.len(),
            gone.concat()
        );
    }
    if let Some(c) = &p.cost {
        for t in &c.totals {
            let _ = write!(
                out,
                "<p class=\"costline\">Monthly cost: {} → {} {} ({})</p>",
                cents_text(t.before_cents),
                cents_text(t.after_cents),
                escape(&t.currency),
                delta_text(t.delta_cents())
            );
        }
    }
    if !p.has_changes() {
        out.push_str("<p>No changes. The infrastructure matches the configuration.</p>");
    }
    out.push_str("</section>");
}

/// What refresh found changed outside prov, and the interrupted operations.
fn found_sections(out: &mut String, r: &Review) {
    let p: &Plan = &r.plan;
    if !r.drift.is_empty() {
        out.push_str("<section id=\"drift\"><h2>Changed outside prov (found by refresh)</h2><pre class=\"diff\">");
        for d in &r.drift {
            let _ = writeln!(
                out,
                "<span class=\"chg\">{}</span>",
                escape(&format!("{} {}: {}", d.symbol, d.address, d.what))
            );
            for (class, text) in entry_lines(&d.entries) {
                let _ = writeln!(out, "<span class=\"{class}\">    {}</span>", escape(&text));
            }
        }
        out.push_str("</pre></section>");
    }
    if !p.resolutions.is_empty() {
        out.push_str("<section id=\"resolutions\"><h2>Interrupted operations</h2>");
        let text = super::text::resolutions(&p.resolutions, super::Paint { on: false });
        let _ = write!(out, "<pre class=\"diff\">{}</pre></section>", escape(&text));
    }
}

/// The resources: toolbar, then one collapsible entry each.
fn changes_section(out: &mut String, r: &Review) {
    let _ = write!(
        out,
        "<section id=\"changes\"><h2>Changes ({})</h2>",
        r.resources.len()
    );
    out.push_str("<div class=\"toolbar\">");
    for class in ["create", "update", "replace", "destroy"] {
        let n = r
            .resources
            .iter()
            .filter(|v| v.action_name() == class)
            .count();
        let _ = write!(
            out,
            "<label><input type=\"checkbox\" class=\"filter\" value=\"{class}\" autocomplete=\"off\" checked> {class} ({n})</label>"
        );
    }
    out.push_str("<input type=\"search\" id=\"search\" autocomplete=\"off\" placeholder=\"search by address\" aria-label=\"search by address\">");
    out.push_str("<button type=\"button\" id=\"expand\">expand all</button><button type=\"button\" id=\"collapse\">collapse all</button><span id=\"shown\"></span></div>");
    out.push_str("<div id=\"resources\">");
    // Large plans: the diffs wait in one JSON block and are rendered when an entry is opened,
    // so the browser parses and lays out only the summaries (a 10,000-resource report opens
    // in well under 2 s).
    let lazy = r.resources.len() > INLINE_DIFFS_UP_TO;
    let mut data: Vec<Vec<Line>> = Vec::new();
    for (i, v) in r.resources.iter().enumerate() {
        let action = v.action_name();
        let id = if anchored(v) {
            format!(" id=\"{}\"", escape(&anchor(&v.address)))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<details class=\"res {action}\"{id} data-action=\"{action}\" data-address=\"{}\" data-i=\"{i}\"><summary><b class=\"sym\">{}</b> <code>{}</code> <span class=\"what\">({}) {}</span></summary>",
            escape(&v.address),
            escape(v.symbol),
            escape(&v.address),
            escape(&v.implementation),
            escape(&v.headline)
        );
        let lines = entry_lines(&v.entries);
        if lazy {
            out.push_str("<pre class=\"diff\"></pre>");
            data.push(lines);
        } else {
            lines_html(out, &lines);
        }
        out.push_str("</details>");
    }
    out.push_str("</div></section>");
    if lazy {
        // `<` escaped so no diff text can close the script element.
        let json = serde_json::to_string(&data)
            .expect("strings serialise")
            .replace('<', "\\u003c");
        let _ = write!(
            out,
            "<script type=\"application/json\" id=\"diff-data\">{json}</script>"
        );
    }
}

/// Protections the apply records, and output changes.
fn recorded_sections(out: &mut String, r: &Review) {
    let p: &Plan = &r.plan;
    if !p.protect.is_empty() {
        out.push_str("<section id=\"protect\"><h2>Protections recorded</h2><ul>");
        for a in &p.protect {
            let _ = write!(
                out,
                "<li><code>{}</code>: lifecycle.prevent_destroy will be kept in the state</li>",
                escape(&a.to_string())
            );
        }
        out.push_str("</ul></section>");
    }
    if !r.outputs.is_empty() {
        out.push_str("<section id=\"outputs\"><h2>Changes to outputs</h2>");
        lines_html(out, &entry_lines(&r.outputs));
        out.push_str("</section>");
    }
}

fn cost_section(out: &mut String, c: &prov_engine::plan::cost::Cost) {
    if c.totals.is_empty() && c.unknown.is_empty() {
        return;
    }
    out.push_str("<section id=\"cost\"><h2>Monthly cost</h2>");
    let (rows, more) = super::cost::shown(c);
    if !rows.is_empty() {
        out.push_str("<table><thead><tr><th></th><th>resource</th><th>before</th><th>after</th><th>change</th><th>plan</th></tr></thead><tbody>");
        for r in rows {
            let delta = r
                .delta()
                .map(|d| format!("{} {}", delta_text(d.cents), d.currency))
                .unwrap_or_else(|| "unknown".into());
            let _ = write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                super::cost::symbol(r),
                escape(&r.label()),
                escape(&super::cost::side(&r.before)),
                escape(&super::cost::side(&r.after)),
                escape(&delta),
                escape(&super::cost::what(r))
            );
        }
        out.push_str("</tbody></table>");
        if more > 0 {
            let _ = write!(out, "<p>{}</p>", escape(&super::cost::more_note(more)));
        }
    }
    for t in super::cost::totals_lines(c) {
        let _ = write!(out, "<p><strong>Total:</strong> {}</p>", escape(&t));
    }
    if let Some(n) = super::cost::unpriced_note(c) {
        let _ = write!(out, "<p>({})</p>", escape(&n));
    }
    if !c.unknown.is_empty() {
        out.push_str("<ul class=\"unknown\">");
        for u in &c.unknown {
            let _ = write!(out, "<li>unknown: {}</li>", escape(u));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

fn graph_section(out: &mut String, resources: &[ResourceView]) {
    let total = resources.len();
    if total == 0 {
        return;
    }
    out.push_str("<section id=\"graph\"><h2>Dependency graph of the changed resources</h2>");
    if total > MAX_GRAPH_NODES {
        let _ = write!(
            out,
            "<p>{total} changed resources: more than {MAX_GRAPH_NODES}, too many to draw readably. Filter the list below instead.</p></section>"
        );
        return;
    }
    let labels: Vec<String> = resources.iter().map(|v| v.address.clone()).collect();
    let deps: Vec<Vec<String>> = resources.iter().map(|v| v.depends_on.clone()).collect();
    let nodes: Vec<super::svg::Node> = resources
        .iter()
        .map(|v| super::svg::Node {
            label: v.address.clone(),
            class: v.action_name().into(),
            href: if anchored(v) {
                format!("#{}", anchor(&v.address))
            } else {
                "#changes".into()
            },
        })
        .collect();
    let edges = super::svg::edges_among(&labels, &deps);
    out.push_str("<p class=\"meta\">Dependencies on the left, what depends on them to the right (the order apply creates them in). Click a resource to open its diff.</p><div class=\"graphbox\">");
    out.push_str(&super::svg::render(&nodes, &edges));
    out.push_str("</div></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
