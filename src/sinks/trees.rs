//! `ast/<path>.json` (`--emit-ast`): syntax trees streamed to temporary files.

use anyhow::Result;

use crate::cache::BuildRecord;
use crate::config::Config;
use crate::db::{SourceFile, Workspace};
use crate::rows::{FileOutput, PreviousRows};
use crate::writers::Artifact;

use super::{Context, Sink, previous_artifact};

/// Files per chunk of trees rendered between LRU evictions.
const CHUNK_FILES: usize = 1024;

pub struct Trees;

impl Sink for Trees {
    fn name(&self) -> &'static str {
        "ast"
    }

    fn wanted(&self, config: &Config) -> bool {
        config.emit_ast && !config.dry_run
    }

    fn render(&self, cx: &mut Context<'_>, _: &[Artifact]) -> Result<Vec<Artifact>> {
        let kept = cx.kept();
        render_asts(cx.workspace, cx.pool, cx.files, cx.outputs, cx.previous, cx.config, kept.as_deref(), cx.last)
    }
}

/// The syntax trees (`--emit-ast`): rendered for the files whose source changed since the
/// last build or whose previous tree is gone, streamed to temporary files; the others stay.
#[allow(clippy::too_many_arguments)]
fn render_asts(
    workspace: &mut Workspace,
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    outputs: &[FileOutput],
    previous: Option<&PreviousRows>,
    config: &Config,
    kept: Option<&std::path::Path>,
    last: Option<&BuildRecord>,
) -> Result<Vec<Artifact>> {
    use crate::writers::ast::AstSink;
    let mut artifacts = Vec::new();
    let mut to_render = Vec::new();
    for (file, output) in files.iter().zip(outputs) {
        let path = &output.entry.path;
        let name = AstSink::artifact_path(path);
        let same_source = previous.and_then(|p| p.entry(path)).is_some_and(|e| e.source == output.entry.source);
        let kept_one = same_source.then(|| last.zip(kept).and_then(|(last, kept)| previous_artifact(&config.out, kept, last, &name))).flatten();
        match kept_one {
            Some(artifact) => artifacts.push(artifact),
            None => to_render.push(*file),
        }
    }
    let sink = AstSink::new(&config.out);
    for chunk in to_render.chunks(CHUNK_FILES) {
        let results = workspace.for_each_file(pool, chunk, |db, file| {
            let tree = crate::stages::parse::parsed_module(db, file);
            sink.stage(file.path(db), tree.root(), crate::db::source_text(db, file))
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
        salsa::Database::trigger_lru_eviction(&mut workspace.db);
    }
    artifacts.extend(sink.into_staged());
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(artifacts)
}
