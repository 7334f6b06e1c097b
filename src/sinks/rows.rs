//! `modules.jsonl`, `symbols.jsonl`, `imports.jsonl` (each file's rows, assembled in path
//! order: unchanged files' rows copied, an unchanged artifact left alone) and
//! `diagnostics.jsonl`.

use anyhow::Result;

use crate::diagnostics::Problem;
use crate::rows::{Assembled, FileOutput, PreviousRows, ROW_ARTIFACTS, assemble};
use crate::writers::{Artifact, jsonl};

use super::{Context, Sink};

pub struct Rows;

impl Sink for Rows {
    fn name(&self) -> &'static str {
        "rows"
    }

    fn render(&self, cx: &mut Context<'_>, _: &[Artifact]) -> Result<Vec<Artifact>> {
        render(cx.outputs, cx.previous, cx.problems)
    }
}

/// Render every artifact; `outputs` are sorted by path.
fn render(outputs: &[FileOutput], previous: Option<&PreviousRows>, problems: &[Problem]) -> Result<Vec<Artifact>> {
    let counts = [outputs.len(), outputs.iter().map(|o| o.entry.symbols).sum(), outputs.iter().map(|o| o.entry.imports).sum()];
    let parts = assemble(outputs, previous)?;
    // Hashing a changed artifact reads all of it: the three side by side.
    use rayon::prelude::*;
    let mut artifacts: Vec<Artifact> = parts
        .into_par_iter()
        .zip(ROW_ARTIFACTS)
        .zip(counts)
        .map(|((part, name), rows)| match part {
            Assembled::Unchanged(rows, bytes, hash) => Artifact::on_disk(name, rows, bytes, hash),
            Assembled::Kept(rows, bytes, hash, source) => Artifact::linked(name, rows, bytes, hash, source),
            Assembled::Changed(bytes) => Artifact::new(name, rows, bytes),
        })
        .collect();
    let (rows, diagnostics) = jsonl::render(problems);
    artifacts.push(Artifact::new("diagnostics.jsonl", rows, diagnostics));
    Ok(artifacts)
}
