//! The resource graph: a petgraph DAG over addresses, topological order and cycle reports.

use crate::error::Diagnostic;
use crate::load::Model;
use crate::model::Address;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

/// Edges point from a dependency to its dependent.
#[derive(Default)]
pub struct Graph {
    pub g: DiGraph<Address, ()>,
    pub index: HashMap<Address, NodeIndex>,
    /// Addresses in an order where every resource comes after its dependencies.
    pub order: Vec<Address>,
}

impl Graph {
    pub fn build(model: &Model) -> Result<Graph, Diagnostic> {
        let mut g = DiGraph::new();
        let mut index = HashMap::new();
        for a in model.resources.keys() {
            index.insert(a.clone(), g.add_node(a.clone()));
        }
        for r in model.resources.values() {
            for d in &r.depends_on {
                if let (Some(&from), Some(&to)) = (index.get(d), index.get(&r.addr)) {
                    g.add_edge(from, to, ());
                }
            }
        }
        match petgraph::algo::toposort(&g, None) {
            Ok(order) => Ok(Graph {
                order: order.into_iter().map(|n| g[n].clone()).collect(),
                g,
                index,
            }),
            Err(cycle) => {
                let path = cycle_path(&g, cycle.node_id());
                let first = &model.resources[&path[0]];
                let text: Vec<String> = path.iter().map(|a| a.to_string()).collect();
                Err(Diagnostic::new(
                    Some(first.addr.to_string()),
                    first.declared_at.clone(),
                    format!("dependency cycle: {} -> {}", text.join(" -> "), text[0]),
                ))
            }
        }
    }

    /// Direct dependencies of `a`.
    pub fn dependencies(&self, a: &Address) -> Vec<Address> {
        let n = self.index[a];
        self.g
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .map(|x| self.g[x].clone())
            .collect()
    }

    /// Every dependency edge as (dependency, dependent), sorted.
    pub fn edges(&self) -> Vec<(Address, Address)> {
        let mut edges: Vec<(Address, Address)> = self
            .g
            .edge_indices()
            .filter_map(|e| self.g.edge_endpoints(e))
            .map(|(f, t)| (self.g[f].clone(), self.g[t].clone()))
            .collect();
        edges.sort_by_key(|(f, t)| (f.to_string(), t.to_string()));
        edges
    }
}

/// The cycle through `start`, in dependency order (each depends on the one before it).
fn cycle_path(g: &DiGraph<Address, ()>, start: NodeIndex) -> Vec<Address> {
    // Tarjan gives the strongly connected component; a BFS inside it finds the shortest cycle.
    let sccs = petgraph::algo::tarjan_scc(g);
    let scc = sccs
        .into_iter()
        .find(|c| c.contains(&start) && (c.len() > 1 || g.contains_edge(start, start)));
    let Some(scc) = scc else {
        return vec![g[start].clone()];
    };
    let in_scc: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in g.neighbors(n) {
            if !in_scc.contains(&m) {
                continue;
            }
            if m == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                // Start at the smallest address so the same cycle always prints the same way.
                let mut out: Vec<Address> = path.into_iter().map(|x| g[x].clone()).collect();
                let min = (0..out.len()).min_by_key(|&i| &out[i]).unwrap_or(0);
                out.rotate_left(min);
                return out;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![g[start].clone()]
}
