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
fn render_graphs(graph: &crate::stages::graph::ImportGraph) -> Vec<Artifact> {
    use std::collections::BTreeMap;
    let pretty = |value: serde_json::Value| {
        let mut bytes = serde_json::to_vec_pretty(&value).expect("graphs serialize");
        bytes.push(b'\n');
        bytes
    };
    let all: BTreeMap<&String, Vec<&String>> = graph.edges.iter().map(|(m, e)| (m, e.keys().collect())).collect();
    let runtime: BTreeMap<&String, Vec<&String>> =
        graph.edges.iter().map(|(m, e)| (m, e.iter().filter(|(_, r)| **r).map(|(t, _)| t).collect())).collect();
    let edges = |g: &BTreeMap<&String, Vec<&String>>| g.values().map(Vec::len).sum::<usize>();
    vec![
        Artifact::new(GRAPH_ARTIFACTS[0], edges(&all), pretty(serde_json::json!(all))),
        Artifact::new(GRAPH_ARTIFACTS[1], edges(&runtime), pretty(serde_json::json!(runtime))),
        Artifact::new(
            GRAPH_ARTIFACTS[2],
            graph.cycles.len() + graph.runtime_cycles.len(),
            pretty(serde_json::json!({"all": graph.cycles, "runtime": graph.runtime_cycles})),
        ),
    ]
}
