//! `modules.jsonl`, `symbols.jsonl`, `imports.jsonl` (each file's rows, assembled in path
//! order: unchanged files' rows copied from the previous artifact into a staged file, an
//! unchanged artifact left alone) and `diagnostics.jsonl`.

use anyhow::Result;

use crate::config::Config;

use crate::diagnostics::Problem;
use crate::rows::{Assembled, FileOutput, PreviousRows, ROW_ARTIFACTS, assemble, write_pieces};
use crate::writers::{Artifact, jsonl};

/// Render every artifact; `outputs` are sorted by path. Changed row artifacts are streamed
/// into temporary files in the output directory, or kept in memory by a dry run (which writes
/// nothing).
pub fn render(config: &Config, outputs: &[FileOutput], previous: Option<&PreviousRows>, problems: &[Problem]) -> Result<Vec<Artifact>> {
    let staging = (!config.dry_run).then_some(config.out.as_path());
    let counts = [outputs.len(), outputs.iter().map(|o| o.entry.symbols).sum(), outputs.iter().map(|o| o.entry.imports).sum()];
    let parts = assemble(outputs, previous)?;
    // Copying and hashing a changed artifact touches all of it: the three side by side.
    use rayon::prelude::*;
    let mut artifacts: Vec<Artifact> = parts
        .into_par_iter()
        .enumerate()
        .map(|(part, assembled)| -> Result<Artifact> {
            let (name, rows) = (ROW_ARTIFACTS[part], counts[part]);
            Ok(match assembled {
                // How the previous rows found it is not kept: taken as read, its stat is taken again
                // (three files).
                Assembled::Unchanged(rows, bytes, hash) => Artifact::on_disk(name, rows, bytes, hash, crate::writers::Intact::ByHash),
                Assembled::Kept(rows, bytes, hash, source) => Artifact::linked(name, rows, bytes, hash, source),
                Assembled::Changed(pieces) => match staging {
                    Some(out) => crate::writers::stage(out, name, rows, |file| write_pieces(pieces, previous, part, file))?,
                    None => {
                        let mut bytes = Vec::new();
                        write_pieces(pieces, previous, part, &mut bytes)?;
                        Artifact::new(name, rows, bytes)
                    }
                },
            })
        })
        .collect::<Result<_>>()?;
    let (rows, diagnostics) = jsonl::render(problems);
    artifacts.push(Artifact::new("diagnostics.jsonl", rows, diagnostics));
    Ok(artifacts)
}
