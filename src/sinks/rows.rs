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
/// nothing). `streamed`: the row artifacts, when the evaluation wrote them while it rendered
/// (see [`RowStreams`]).
pub fn render(
    config: &Config,
    outputs: &[FileOutput],
    previous: Option<&PreviousRows>,
    problems: &[Problem],
    streamed: Option<Result<[Artifact; 3]>>,
) -> Result<Vec<Artifact>> {
    let staging = (!config.dry_run).then_some(config.out.as_path());
    let counts = [outputs.len(), outputs.iter().map(|o| o.entry.symbols).sum(), outputs.iter().map(|o| o.entry.imports).sum()];
    let mut artifacts: Vec<Artifact> = match streamed {
        Some(streamed) => streamed?.into_iter().zip(counts).map(|(artifact, rows)| Artifact { rows, ..artifact }).collect(),
        None => assembled_artifacts(staging, outputs, previous, counts)?,
    };
    let (rows, diagnostics) = jsonl::render(problems);
    artifacts.push(Artifact::new("diagnostics.jsonl", rows, diagnostics));
    Ok(artifacts)
}

/// The three row artifacts assembled from the previous ones and the rendered rows: unchanged,
/// linked from the cache's copy, or staged in `staging` (in memory for a dry run).
fn assembled_artifacts(staging: Option<&std::path::Path>, outputs: &[FileOutput], previous: Option<&PreviousRows>, counts: [usize; 3]) -> Result<Vec<Artifact>> {
    let parts = assemble(outputs, previous)?;
    // Copying and hashing a changed artifact touches all of it: the three side by side.
    use rayon::prelude::*;
    parts
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
        .collect()
}

/// The row artifacts written while the rows are rendered, when every file's rows are (no
/// previous rows to copy or compare): each file's rendered rows go, a chunk of files at a time
/// and in path order, to a thread per artifact that streams them into its staged file. A cold
/// build then never holds the rows of every file: on the 100k-module tree 706 MB of JSONL,
/// rendered in the evaluation and written only after it.
pub struct RowStreams {
    senders: Vec<std::sync::mpsc::SyncSender<Vec<Vec<u8>>>>,
    writers: Vec<std::thread::JoinHandle<Result<Artifact>>>,
}

impl RowStreams {
    /// Start the three writers, staging in `out`.
    pub fn start(out: &std::path::Path) -> RowStreams {
        let (mut senders, mut writers) = (Vec::new(), Vec::new());
        for name in ROW_ARTIFACTS {
            // Two chunks in flight: rendering runs ahead of the writes by at most that much.
            let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(2);
            let out = out.to_path_buf();
            let writer = std::thread::Builder::new()
                .name("rows-writer".into())
                .spawn(move || {
                    crate::writers::stage(&out, name, 0, |file| {
                        for chunk in receive {
                            for rows in chunk {
                                file.write_all(&rows)?;
                            }
                        }
                        Ok(())
                    })
                })
                .expect("a thread can be started");
            senders.push(send);
            writers.push(writer);
        }
        RowStreams { senders, writers }
    }

    /// Hand over the rows of the next files in path order (their rendered rows are taken).
    pub fn send(&self, outputs: &[FileOutput]) {
        for (part, sender) in self.senders.iter().enumerate() {
            let chunk: Vec<Vec<u8>> = outputs.iter().filter_map(|o| o.rendered.as_ref()).map(|r| r.take(part)).filter(|rows| !rows.is_empty()).collect();
            // A writer that failed stopped receiving: its error comes from `finish`.
            let _ = sender.send(chunk);
        }
    }

    /// The three staged artifacts (their row counts are the caller's to set).
    pub fn finish(self) -> Result<[Artifact; 3]> {
        drop(self.senders);
        let artifacts: Vec<Artifact> =
            self.writers.into_iter().map(|writer| writer.join().expect("writing the rows does not panic")).collect::<Result<_>>()?;
        Ok(artifacts.try_into().unwrap_or_else(|_| unreachable!("three row artifacts")))
    }
}
