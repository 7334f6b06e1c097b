//! `slices/<path>.json` (`--emit-slices`): per-module documents for AI tools, from the
//! assembled artifacts.

use anyhow::Result;

use crate::cache::BuildRecord;
use crate::config::Config;
use crate::writers::Artifact;

use super::{Context, Sink, artifact_bytes, previous_artifact};

pub struct Slices;

impl Sink for Slices {
    fn name(&self) -> &'static str {
        "slices"
    }

    fn wanted(&self, config: &Config) -> bool {
        config.emit_slices
    }

    fn reads_artifacts(&self) -> bool {
        true
    }

    fn render(&self, cx: &mut Context<'_>, so_far: &[Artifact]) -> Result<Vec<Artifact>> {
        let kept = cx.kept();
        render_slices(cx.config, so_far, cx.last, kept.as_deref())
    }
}

/// The slices (`--emit-slices`), from the assembled artifacts; an unchanged slice stays on disk.
fn render_slices(config: &Config, artifacts: &[Artifact], last: Option<&BuildRecord>, kept: Option<&std::path::Path>) -> Result<Vec<Artifact>> {
    let find = |name: &str| artifacts.iter().find(|a| a.path == name).expect("row and graph artifacts are rendered first");
    let modules = artifact_bytes(&config.out, find("modules.jsonl"))?;
    let symbols = artifact_bytes(&config.out, find("symbols.jsonl"))?;
    let graph = artifact_bytes(&config.out, find("graphs/imports.json"))?;
    let filter = (!config.slices_filter.is_empty()).then(|| {
        let mut builder = globset::GlobSetBuilder::new();
        for glob in &config.slices_filter {
            builder.add(globset::Glob::new(glob).expect("validated by the CLI"));
        }
        builder.build().expect("validated by the CLI")
    });
    let slices = crate::writers::slices::render(&modules, &symbols, &graph, filter.as_ref());
    Ok(slices
        .into_iter()
        .map(|(path, bytes)| {
            let hash = *blake3::hash(&bytes).as_bytes();
            let previous = last.and_then(|l| l.artifact(&path)).filter(|(_, _, h)| *h == hash).and_then(|_| {
                previous_artifact(&config.out, kept.unwrap_or(std::path::Path::new("/nonexistent")), last?, &path)
            });
            previous.unwrap_or_else(|| Artifact::new(path, 1, bytes))
        })
        .collect())
}
