//! The import graph of the repository: internal module → the internal modules it imports,
//! its strongly connected components (import cycles), and fan-in/fan-out per module.
//!
//! Edges that exist only under `if TYPE_CHECKING:` are kept and flagged; the run-time graph
//! leaves them out, so a user can pick either.

use std::collections::{BTreeMap, BTreeSet};

use crate::db::{Db, Project, SourceFile};
use crate::stages::resolve::import_edges;

/// Bump when the graph changes.
pub const GRAPH_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportGraph {
    /// module → imported module → `true` when some edge runs at run time.
    pub edges: BTreeMap<String, BTreeMap<String, bool>>,
    /// Import cycles of the full graph: each sorted, the list sorted.
    pub cycles: Vec<Vec<String>>,
    /// Import cycles of the run-time graph.
    pub runtime_cycles: Vec<Vec<String>>,
    /// module → number of modules importing it.
    pub fan_in: BTreeMap<String, u32>,
    /// Modules in an import cycle of runtime edges.
    pub in_runtime_cycle: BTreeSet<String>,
}

/// A module's place in the import graph: (fan-in, fan-out, in a runtime import cycle).
pub type Fan = (u32, u32, bool);

/// The import graph over every module of the project.
#[salsa::tracked(returns(ref))]
pub fn import_graph(db: &dyn Db, project: Project) -> ImportGraph {
    build_import_graph(project.files(db).iter().map(|&file| (file.module(db).as_str(), import_edges(db, file))))
}

/// The import graph of files given as (module, import edges), in path order.
pub fn build_import_graph<'a>(files: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, bool>)>) -> ImportGraph {
    let mut graph = ImportGraph::default();
    // Counted by name and keyed once per target: an edit on the 100k-module tree rebuilds the
    // graph from every file's edges (half a million).
    let mut fan_in: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
    for (module, edges) in files {
        for target in edges.keys() {
            *fan_in.entry(target.as_str()).or_default() += 1;
        }
        match graph.edges.get_mut(module) {
            // Files sharing a module name merge their edges.
            Some(merged) => {
                for (target, runtime) in edges {
                    *merged.entry(target.clone()).or_default() |= *runtime;
                }
            }
            None => {
                graph.edges.insert(module.to_string(), edges.clone());
            }
        }
    }
    graph.fan_in = fan_in.into_iter().map(|(module, n)| (module.to_string(), n)).collect();
    let [cycles, runtime_cycles] = [false, true].map(|runtime_only| strongly_connected(&graph.edges, runtime_only));
    graph.cycles = cycles;
    graph.runtime_cycles = runtime_cycles;
    graph.in_runtime_cycle = graph.runtime_cycles.iter().flatten().cloned().collect();
    graph
}

impl ImportGraph {
    /// (fan-in, fan-out, in a runtime cycle) of a file of `module` with `edges`.
    pub fn fan(&self, module: &str, edges: &BTreeMap<String, bool>) -> Fan {
        (self.fan_in.get(module).copied().unwrap_or(0), edges.len() as u32, self.in_runtime_cycle.contains(module))
    }
}

/// `(fan_in, fan_out)` of `file`: a narrow view so a record re-runs only when its own counts move.
#[salsa::tracked(returns(copy))]
pub fn module_fan(db: &dyn Db, file: SourceFile) -> Fan {
    import_graph(db, Project::get(db)).fan(file.module(db), import_edges(db, file))
}

/// Components with more than one module (a module importing itself has no self edge here),
/// by Tarjan's algorithm, iteratively. Deterministic: nodes and edges are visited in order.
pub(crate) fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, bool>>, runtime_only: bool) -> Vec<Vec<String>> {
    let nodes: Vec<&String> = edges.keys().collect();
    let id: rustc_hash::FxHashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let successors: Vec<Vec<usize>> = edges
        .values()
        .map(|targets| {
            targets
                .iter()
                .filter(|(_, runtime)| !runtime_only || **runtime)
                .filter_map(|(target, _)| id.get(target.as_str()).copied())
                .collect()
        })
        .collect();
    components_of(&successors).into_iter().map(|c| c.into_iter().map(|m| nodes[m].clone()).collect()).collect()
}

/// [`strongly_connected`] over node ids (`successors[node]`, each list in the order to visit):
/// the components with more than one node, each sorted, in order of their first node.
pub(crate) fn components_of(successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = successors.len();
    let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next_index, mut components) = (Vec::new(), 0, Vec::new());
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[node] == usize::MAX {
                index[node] = next_index;
                low[node] = next_index;
                next_index += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&next) = successors[node].get(*edge) {
                *edge += 1;
                if index[next] == usize::MAX {
                    work.push((next, 0));
                } else if on_stack[next] {
                    low[node] = low[node].min(index[next]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                loop {
                    let member = stack.pop().expect("the component's root is on the stack");
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    components.push(component);
                }
            }
        }
    }
    components.sort();
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str, bool)]) -> BTreeMap<String, BTreeMap<String, bool>> {
        let mut out: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
        for (a, b, runtime) in edges {
            out.entry(a.to_string()).or_default().insert(b.to_string(), *runtime);
            out.entry(b.to_string()).or_default();
        }
        out
    }

    #[test]
    fn cycles_and_runtime_cycles() {
        let g = graph(&[("a", "b", true), ("b", "c", true), ("c", "a", false), ("d", "e", true), ("e", "d", true), ("c", "f", true)]);
        assert_eq!(strongly_connected(&g, false), vec![vec!["a", "b", "c"], vec!["d", "e"]]);
        assert_eq!(strongly_connected(&g, true), vec![vec!["d", "e"]]);
    }
}
