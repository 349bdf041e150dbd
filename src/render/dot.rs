//! `prov graph`: the resource graph in Graphviz DOT, dependencies pointing at their dependents.

use prov_engine::graph::Graph;
use std::fmt::Write;

/// The graph as DOT: every resource in apply order, then every edge.
pub fn graph(g: &Graph) -> String {
    let mut s = String::from("digraph prov {\n  rankdir = LR;\n  node [shape = box];\n");
    for a in &g.order {
        let _ = writeln!(s, "  \"{a}\";");
    }
    for (f, t) in g.edges() {
        let _ = writeln!(s, "  \"{f}\" -> \"{t}\";");
    }
    s.push_str("}\n");
    s
}
