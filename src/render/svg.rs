//! The dependency graph of a plan's changed resources as inline SVG, laid out here (layers and barycentre ordering; no Graphviz).
//!
//! Layout: each node's column is the length of the longest dependency chain below it (so every
//! edge points right, dependencies first, as apply runs them); within a column, nodes are
//! ordered by a few sweeps of the barycentre heuristic (the mean row of their neighbours in the
//! previous column), which removes most crossings of typical plans. Coordinates are integers
//! and the output depends only on the input, so the report is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// One node: its label (an address), a CSS class (the action), the anchor it links to.
pub struct Node {
    pub label: String,
    pub class: String,
    pub href: String,
}

/// Where each node is drawn.
pub struct Layout {
    /// (column, row) per node, in input order.
    pub at: Vec<(usize, usize)>,
    pub columns: usize,
    pub rows: usize,
}

/// Columns and rows for `n` nodes and `edges` (dependency → dependent, by index). Edges that
/// would close a cycle are ignored for the layering (a plan's graph has none).
pub fn layout(n: usize, edges: &[(usize, usize)]) -> Layout {
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b && a < n && b < n {
            deps[b].push(a);
            dependents[a].push(b);
        }
    }
    // Longest-path layering, iteratively (no recursion on deep chains).
    let mut column = vec![usize::MAX; n];
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    for start in 0..n {
        if state[start] == 2 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some(top) = stack.last_mut() {
            let v = top.0;
            if top.1 < deps[v].len() {
                let d = deps[v][top.1];
                top.1 += 1;
                if state[d] == 0 {
                    state[d] = 1;
                    stack.push((d, 0));
                }
                continue;
            }
            column[v] = deps[v]
                .iter()
                .filter(|&&d| state[d] == 2)
                .map(|&d| column[d] + 1)
                .max()
                .unwrap_or(0);
            state[v] = 2;
            stack.pop();
        }
    }
    let columns = column.iter().map(|c| c + 1).max().unwrap_or(0);
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (v, &c) in column.iter().enumerate() {
        cols[c].push(v);
    }
    let mut row = vec![0f64; n];
    for col in &cols {
        for (r, &v) in col.iter().enumerate() {
            row[v] = r as f64;
        }
    }
    // Barycentre sweeps: left to right by dependencies, right to left by dependents.
    for sweep in 0..4 {
        let forward = sweep % 2 == 0;
        let order: Vec<usize> = if forward {
            (1..columns).collect()
        } else {
            (0..columns.saturating_sub(1)).rev().collect()
        };
        for c in order {
            let nbrs = if forward { &deps } else { &dependents };
            let mut keyed: Vec<(f64, usize)> = cols[c]
                .iter()
                .map(|&v| {
                    let ns = &nbrs[v];
                    let key = if ns.is_empty() {
                        row[v]
                    } else {
                        ns.iter().map(|&u| row[u]).sum::<f64>() / ns.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            cols[c] = keyed.into_iter().map(|(_, v)| v).collect();
            for (r, &v) in cols[c].iter().enumerate() {
                row[v] = r as f64;
            }
        }
    }
    let mut at = vec![(0, 0); n];
    for (c, col) in cols.iter().enumerate() {
        for (r, &v) in col.iter().enumerate() {
            at[v] = (c, r);
        }
    }
    let rows = cols.iter().map(Vec::len).max().unwrap_or(0);
    Layout { at, columns, rows }
}

const ROW_H: usize = 34;
const BOX_H: usize = 24;
const CHAR_W: usize = 7;
const GAP: usize = 60;
const PAD: usize = 10;

fn esc(s: &str) -> String {
    escape(s)
}

/// The graph as an `<svg>` element (no namespace attribute: inline SVG in HTML needs none).
pub fn render(nodes: &[Node], edges: &[(usize, usize)]) -> String {
    let l = layout(nodes.len(), edges);
    // Column widths from the longest label in each.
    let mut width = vec![0usize; l.columns];
    for (v, &(c, _)) in l.at.iter().enumerate() {
        width[c] = width[c].max(nodes[v].label.chars().count() * CHAR_W + 2 * PAD);
    }
    let mut x0 = vec![PAD; l.columns];
    for c in 1..l.columns {
        x0[c] = x0[c - 1] + width[c - 1] + GAP;
    }
    let total_w = x0.last().copied().unwrap_or(0) + width.last().copied().unwrap_or(0) + PAD;
    let total_h = l.rows * ROW_H + 2 * PAD;
    let pos = |v: usize| {
        let (c, r) = l.at[v];
        (x0[c], PAD + r * ROW_H, width[c])
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"graph\" width=\"{total_w}\" height=\"{total_h}\" viewBox=\"0 0 {total_w} {total_h}\" role=\"img\" aria-label=\"dependency graph of the changed resources\">"
    );
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" class=\"arrowhead\"/></marker></defs>");
    let unique: BTreeSet<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| a != b && a < nodes.len() && b < nodes.len())
        .collect();
    for (a, b) in unique {
        let (ax, ay, aw) = pos(a);
        let (bx, by, _) = pos(b);
        let (x1, y1) = (ax + aw, ay + BOX_H / 2);
        let (x2, y2) = (bx, by + BOX_H / 2);
        let mid = (x1 + x2) / 2;
        let _ = write!(
            out,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M{x1},{y1}C{mid},{y1} {mid},{y2} {x2},{y2}\" marker-end=\"url(#arrow)\"/>",
            esc(&nodes[a].label),
            esc(&nodes[b].label)
        );
    }
    for (v, n) in nodes.iter().enumerate() {
        let (x, y, w) = pos(v);
        let _ = write!(
            out,
            "<a href=\"{}\" class=\"node {}\" data-action=\"{1}\" data-address=\"{}\"><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{BOX_H}\" rx=\"4\"/><text x=\"{}\" y=\"{}\">{}</text></a>",
            esc(&n.href),
            esc(&n.class),
            esc(&n.label),
            x + PAD,
            y + BOX_H / 2 + 4,
            esc(&n.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// Dependency edges among `labels` from (label, its dependencies) pairs, by index.
pub fn edges_among(labels: &[String], deps: &[Vec<String>]) -> Vec<(usize, usize)> {
    let index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for (b, ds) in deps.iter().enumerate() {
        for d in ds {
            if let Some(&a) = index.get(d.as_str()) {
                out.push((a, b));
            }
        }
    }
    out
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first_and_crossings_are_undone() {
        // 0 -> 2, 1 -> 3, 0 -> 4: rows in column 1 follow their dependencies' rows.
        let l = layout(5, &[(1, 3), (0, 2), (0, 4), (2, 4)]);
        assert_eq!(l.columns, 3);
        assert_eq!(l.at[0].0, 0);
        assert_eq!(l.at[2].0, 1);
        assert_eq!(l.at[4].0, 2, "longest path: 0 -> 2 -> 4");
        assert!(l.at[2].1 < l.at[3].1, "2 (after 0) above 3 (after 1)");
    }

    #[test]
    fn cycles_and_deep_chains_do_not_hang_or_overflow() {
        let l = layout(3, &[(0, 1), (1, 2), (2, 0)]);
        assert_eq!(l.at.len(), 3);
        let n = 50_000;
        let chain: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        let l = layout(n, &chain);
        assert_eq!(l.columns, n);
    }

    #[test]
    fn svg_escapes_labels_and_has_no_namespace_url() {
        let nodes = vec![
            Node {
                label: "server.a<b>".into(),
                class: "create".into(),
                href: "#r-a".into(),
            },
            Node {
                label: "server.c".into(),
                class: "update".into(),
                href: "#r-c".into(),
            },
        ];
        let svg = render(&nodes, &[(0, 1)]);
        assert!(svg.contains("server.a&lt;b&gt;"));
        assert!(!svg.contains("http"));
        assert_eq!(svg.matches("class=\"edge\"").count(), 1);
    }
}
