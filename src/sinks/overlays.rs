//! `overlays/<module path>.pyi`: the `.pyi` overlays of the modules the overlay decision
//! selects.

use anyhow::Result;

use crate::cache::BuildRecord;
use crate::db::{SourceFile, Workspace};
use crate::rows::FileOutput;
use crate::writers::Artifact;

use super::{Context, Sink, previous_artifact};

pub struct Overlays;

impl Sink for Overlays {
    fn name(&self) -> &'static str {
        "overlays"
    }

    fn render(&self, cx: &mut Context<'_>, _: &[Artifact]) -> Result<Vec<Artifact>> {
        let kept = cx.kept();
        Ok(render_overlays(cx.workspace, cx.pool, cx.files, cx.outputs, &cx.config.out, kept.as_deref(), cx.last))
    }
}

/// Where the overlay of a module goes: its dotted name as a path under `overlays/`
/// (`pkg/__init__.pyi` for a package), as type checkers look stubs up — not the source path,
/// which may have a `src/` prefix.
pub fn overlay_path(module: &str, is_package: bool) -> Option<String> {
    if module.is_empty() {
        return None;
    }
    let base = module.replace('.', "/");
    Some(if is_package { format!("overlays/{base}/__init__.pyi") } else { format!("overlays/{base}.pyi") })
}

/// The overlays of the modules whose decision says so: a module whose rows were reused keeps
/// its previous stub (nothing it reads changed); the others' stubs are generated.
fn render_overlays(
    workspace: &Workspace,
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    outputs: &[FileOutput],
    out: &std::path::Path,
    kept: Option<&std::path::Path>,
    last: Option<&BuildRecord>,
) -> Vec<Artifact> {
    let db = &workspace.db;
    let mut reused = Vec::new();
    let mut to_generate = Vec::new();
    for (file, output) in files.iter().zip(outputs) {
        if !output.entry.labels.overlay.needed {
            continue;
        }
        let Some(path) = overlay_path(file.module(db), file.is_package(db)) else { continue };
        let previous = (output.rendered.is_none())
            .then(|| last.zip(kept).and_then(|(last, kept)| previous_artifact(out, kept, last, &path)))
            .flatten();
        match previous {
            Some(artifact) => reused.push(artifact),
            None => to_generate.push((*file, path)),
        }
    }
    let generated = workspace.for_each_item(pool, &to_generate, |db, (file, path)| {
        let text = crate::stages::stub::overlay_stub(db, *file);
        let unchanged = last.and_then(|l| l.artifact(path)).filter(|(_, _, hash)| *hash == *blake3::hash(text.as_bytes()).as_bytes());
        match unchanged.zip(last).map(|(found, last)| (found, last.intact(out, path))) {
            Some(((rows, bytes, hash), intact)) if intact.yes() => Artifact::on_disk(path.clone(), rows, bytes, hash, intact),
            _ => Artifact::new(path.clone(), 1, text.as_bytes().to_vec()),
        }
    });
    let mut artifacts: Vec<Artifact> = reused.into_iter().chain(generated).collect();
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    artifacts
}
