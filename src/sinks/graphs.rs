//! `graphs/imports.json`, `graphs/imports_runtime.json`, `graphs/cycles.json`.

use anyhow::Result;

use crate::db::Project;
use crate::stages::graph::import_graph;
use crate::writers::Artifact;

use super::{Context, Sink};

pub struct Graphs;

impl Sink for Graphs {
    fn name(&self) -> &'static str {
        "graphs"
    }

    fn render(&self, cx: &mut Context<'_>, _: &[Artifact]) -> Result<Vec<Artifact>> {
        // Behind the graph firewall the import graph is the previous build's: its artifacts
        // are reused when still intact (the graph is never evaluated).
        if cx.firewall_held
            && let Some(graphs) = GRAPH_ARTIFACTS.iter().map(|name| cx.previous_artifact(name)).collect::<Option<Vec<_>>>()
        {
            return Ok(graphs);
        }
        Ok(render_graphs(match cx.import_graph {
            Some(graph) => graph,
            None => import_graph(&cx.workspace.db, Project::get(&cx.workspace.db)),
        }))
    }
}

/// The artifacts [`render_graphs`] writes.
pub const GRAPH_ARTIFACTS: [&str; 3] = ["graphs/imports.json", "graphs/imports_runtime.json", "graphs/cycles.json"];

/// `graphs/imports.json` (every edge), `graphs/imports_runtime.json` (without edges that exist
/// only under `if TYPE_CHECKING:`) and `graphs/cycles.json` (import cycles of both).
///
/// Serialized straight from sorted maps: the bytes `serde_json::Value`'s sorted map would give,
/// without building one (on the 100k-module tree the `Value`s were most of this sink's 0.12 s).
fn render_graphs(graph: &crate::stages::graph::ImportGraph) -> Vec<Artifact> {
    use std::collections::BTreeMap;
    fn pretty(value: &impl serde::Serialize) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(value).expect("graphs serialize");
        bytes.push(b'\n');
        bytes
    }
    /// `cycles.json`: its keys in sorted order.
    #[derive(serde::Serialize)]
    struct Cycles<'a> {
        all: &'a [Vec<String>],
        runtime: &'a [Vec<String>],
    }
    let all: BTreeMap<&String, Vec<&String>> = graph.edges.iter().map(|(m, e)| (m, e.keys().collect())).collect();
    let runtime: BTreeMap<&String, Vec<&String>> =
        graph.edges.iter().map(|(m, e)| (m, e.iter().filter(|(_, r)| **r).map(|(t, _)| t).collect())).collect();
    let edges = |g: &BTreeMap<&String, Vec<&String>>| g.values().map(Vec::len).sum::<usize>();
    vec![
        Artifact::new(GRAPH_ARTIFACTS[0], edges(&all), pretty(&all)),
        Artifact::new(GRAPH_ARTIFACTS[1], edges(&runtime), pretty(&runtime)),
        Artifact::new(
            GRAPH_ARTIFACTS[2],
            graph.cycles.len() + graph.runtime_cycles.len(),
            pretty(&Cycles { all: &graph.cycles, runtime: &graph.runtime_cycles }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct serialization gives the bytes the `serde_json::Value` form gave (sorted keys,
    /// pretty, empty lists as `[]`), for a module with no edges and a type-checking-only edge.
    #[test]
    fn graph_json_is_the_sorted_value_form() {
        let mut graph = crate::stages::graph::ImportGraph::default();
        let edges = |pairs: &[(&str, bool)]| pairs.iter().map(|(t, r)| (t.to_string(), *r)).collect();
        graph.edges.insert("b".into(), edges(&[("a", true), ("c", false)]));
        graph.edges.insert("a".into(), edges(&[("b", true)]));
        graph.edges.insert("c".into(), edges(&[]));
        graph.cycles = vec![vec!["a".into(), "b".into()]];
        let value = |v: serde_json::Value| {
            let mut bytes = serde_json::to_vec_pretty(&v).unwrap();
            bytes.push(b'\n');
            bytes
        };
        let expected = [
            value(serde_json::json!({"b": ["a", "c"], "a": ["b"], "c": []})),
            value(serde_json::json!({"a": ["b"], "b": ["a"], "c": []})),
            value(serde_json::json!({"runtime": [], "all": [["a", "b"]]})),
        ];
        for (artifact, expected) in render_graphs(&graph).iter().zip(expected) {
            let crate::writers::Body::Contents(bytes) = &artifact.body else { panic!("graphs are rendered in memory") };
            assert_eq!(String::from_utf8_lossy(bytes), String::from_utf8_lossy(&expected), "{}", artifact.path);
        }
    }
}
