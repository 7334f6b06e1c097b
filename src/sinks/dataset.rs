//! `parquet/<table>/package=<name>/part-0.parquet`: the Parquet dataset (see
//! [`crate::writers::parquet`]), each partition file a `parquet(<file>)` cache node.

use anyhow::{Context as _, Result};
use rayon::prelude::*;

use crate::cache::{BuildRecord, StageCache};
use crate::config::Config;
use crate::diagnostics::Problem;
use crate::rows::{FileOutput, ROW_ARTIFACTS};
use crate::writers::{Artifact, Body};

use super::{Context, Sink, previous_artifact};

pub struct Dataset;

/// The rows of the dataset files this build encoded, by file.
pub type Batches = std::collections::BTreeMap<String, Vec<arrow::array::RecordBatch>>;

impl Sink for Dataset {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn wanted(&self, config: &Config) -> bool {
        config.parquet
    }

    fn reads_artifacts(&self) -> bool {
        true
    }

    fn reads_memos(&self) -> bool {
        false
    }

    fn render(&self, cx: &mut Context<'_>, so_far: &[Artifact]) -> Result<Vec<Artifact>> {
        let kept = cx.kept();
        let (artifacts, batches) =
            render_dataset(cx.pool, cx.modules, cx.outputs, so_far, cx.problems, cx.cache, kept.as_deref(), cx.last, &cx.config.out)?;
        cx.batches = batches;
        Ok(artifacts)
    }
}

/// Which of [`ROW_ARTIFACTS`] holds the rows of dataset table `table` (modules, symbols, imports).
fn row_artifact(table: &str) -> usize {
    ROW_ARTIFACTS.iter().position(|a| a.strip_suffix(".jsonl") == Some(table)).expect("a row table")
}

/// The Parquet dataset: the partitions of each table, re-encoded only when their rows changed
/// (a `parquet(<table>/package=<name>)` node keyed by its files' rows keys) or its file is gone.
#[allow(clippy::too_many_arguments)]
fn render_dataset(
    pool: &rayon::ThreadPool,
    modules: &[String],
    outputs: &[FileOutput],
    artifacts: &[Artifact],
    problems: &[Problem],
    cache: Option<&StageCache>,
    kept: Option<&std::path::Path>,
    last: Option<&BuildRecord>,
    out: &std::path::Path,
) -> Result<(Vec<Artifact>, Batches)> {
    use crate::writers::parquet::{self, FileRows, PARQUET_VERSION, TABLES};
    use std::sync::OnceLock;
    let started = std::time::Instant::now();
    let rows: Vec<FileRows<'_>> = modules
        .iter()
        .zip(outputs)
        .map(|(module, output)| FileRows {
            path: &output.entry.path,
            module,
            key: output.entry.key,
            lens: output.entry.lens,
            tags: &output.entry.labels.tags,
        })
        .collect();
    let partitions = parquet::partitions(&rows, problems);
    tracing::debug!(elapsed = ?started.elapsed(), partitions = partitions.len(), "dataset partitions grouped");
    // Where each file's rows start in each row artifact.
    let mut starts = vec![[0usize; 3]; rows.len()];
    let mut offset = [0usize; 3];
    for (start, file) in starts.iter_mut().zip(&rows) {
        *start = offset;
        for t in 0..3 {
            offset[t] += file.lens[t] as usize;
        }
    }
    // A row artifact's bytes: in memory, or its file opened (when some partition needs it)
    // for positioned reads of the partitions' rows — an edit re-encodes a few partitions of a
    // 395 MB `symbols.jsonl`, which used to be read whole.
    enum RowSource<'a> {
        Memory(&'a [u8]),
        File(std::fs::File, std::path::PathBuf),
    }
    let sources: [OnceLock<Result<RowSource<'_>, String>>; 3] = Default::default();
    let source_of = |t: usize| -> Result<&RowSource<'_>> {
        let name = ROW_ARTIFACTS[t];
        let cell = sources[t].get_or_init(|| {
            let artifact = artifacts.iter().find(|a| a.path == name).ok_or_else(|| format!("{name} was not rendered"))?;
            let path = match &artifact.body {
                Body::Contents(bytes) => return Ok(RowSource::Memory(bytes)),
                Body::OnDisk { .. } => out.join(name),
                Body::Linked(path) | Body::Staged(path) => path.clone(),
            };
            let file = std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(RowSource::File(file, path))
        });
        cell.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    };
    let jsonl = |table: &str, partition: &parquet::Partition| -> Result<Vec<u8>> {
        Ok(match table {
            "tags" => parquet::tag_rows(partition.files.iter().map(|&i| &rows[i])),
            "diagnostics" => partition.diagnostics.clone(),
            _ => {
                let t = row_artifact(table);
                // The files' rows, as runs of the artifact (a package's files are consecutive).
                let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
                for &i in &partition.files {
                    let range = starts[i][t]..starts[i][t] + rows[i].lens[t] as usize;
                    match runs.last_mut() {
                        Some(run) if run.end == range.start => run.end = range.end,
                        _ => runs.push(range),
                    }
                }
                let mut out = Vec::with_capacity(runs.iter().map(|r| r.len()).sum());
                let shorter = || format!("{} is shorter than its rows", ROW_ARTIFACTS[t]);
                for run in runs {
                    match source_of(t)? {
                        RowSource::Memory(whole) => out.extend_from_slice(whole.get(run).with_context(shorter)?),
                        RowSource::File(file, path) => {
                            use std::os::unix::fs::FileExt as _;
                            let at = out.len();
                            out.resize(at + run.len(), 0);
                            file.read_exact_at(&mut out[at..], run.start as u64)
                                .with_context(|| format!("cannot read {}", path.display()))
                                .with_context(shorter)?;
                        }
                    }
                }
                out
            }
        })
    };
    let batches = std::sync::Mutex::new(std::collections::BTreeMap::new());
    // A partition has a file in a table when it has rows there; a table without any row keeps
    // the first partition's empty file, so readers still see its schema. (The standard
    // library's 202 partitions have diagnostics in 30: 172 files, each a directory and a file
    // created, saved.)
    let has_rows = |partition: &parquet::Partition, table: &str| -> bool {
        match table {
            "modules" => !partition.files.is_empty(),
            "tags" => partition.files.iter().any(|&i| !rows[i].tags.is_empty()),
            "diagnostics" => !partition.diagnostics.is_empty(),
            _ => {
                let t = row_artifact(table);
                partition.files.iter().any(|&i| rows[i].lens[t] > 0)
            }
        }
    };
    let mut jobs: Vec<(&parquet::Partition, &str)> = Vec::new();
    for table in TABLES {
        let with_rows: Vec<&parquet::Partition> = partitions.iter().filter(|p| has_rows(p, table)).collect();
        match (with_rows.is_empty(), partitions.first()) {
            (true, Some(first)) => jobs.push((first, table)),
            _ => jobs.extend(with_rows.into_iter().map(|p| (p, table))),
        }
    }
    let results: Vec<Result<Artifact>> = pool.install(|| {
        jobs.par_iter()
            .map(|(partition, table)| -> Result<Artifact> {
                let name = parquet::partition_file(table, &partition.name);
                // The file's JSONL rows, made at most once.
                let made: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
                let rows_of = || -> Result<&[u8]> {
                    made.get_or_init(|| jsonl(table, partition).map_err(|e| format!("{e:#}")))
                        .as_deref()
                        .map_err(|e| anyhow::anyhow!("{e}"))
                };
                let encode = || -> Result<Artifact> {
                    let started = std::time::Instant::now();
                    let rows = rows_of()?;
                    let assembled = started.elapsed();
                    let encoded = parquet::encode(table, rows).with_context(|| format!("cannot encode {name}"))?;
                    tracing::trace!(rows = encoded.rows, ?assembled, elapsed = ?started.elapsed(), "encoded {name}");
                    batches.lock().unwrap().insert(name.clone(), encoded.batches);
                    Ok(Artifact::new(name.clone(), encoded.rows, encoded.bytes))
                };
                let Some(cache) = cache else { return encode() };
                // The file is keyed by the digest of its JSONL rows, so an edit re-encodes only
                // the tables whose rows changed (a comment: `modules` alone). That digest is
                // itself a `parquet-input(<file>)` node keyed by the partition's rows keys:
                // unchanged partitions are never assembled or hashed.
                let (digest, upstream) = match *table {
                    "diagnostics" => (blake3::hash(&partition.diagnostics).to_hex().to_string(), None),
                    _ => {
                        // The rows nodes of the partition's files that reran.
                        let upstream = || -> Vec<String> {
                            partition.files.iter().filter(|&&i| outputs[i].rendered.is_some()).map(|&i| format!("rows({})", rows[i].path)).collect()
                        };
                        let digest: String = cache.get_or_compute_downstream(
                            "parquet-input",
                            PARQUET_VERSION,
                            &name,
                            vec![("rows", blake3::Hash::from(partition.rows_digest).to_hex().to_string())],
                            Some(upstream),
                            || {
                                rows_of().map_or_else(|_| String::new(), |bytes| blake3::hash(bytes).to_hex().to_string())
                            },
                        );
                        if digest.is_empty() {
                            // The rows could not be assembled: the error, with its cause.
                            rows_of()?;
                        }
                        (digest, Some(vec![format!("parquet-input({name})")]))
                    }
                };
                let mut fresh: Option<Result<Artifact>> = None;
                let (count, size, hash) = cache.get_or_compute_downstream("parquet", PARQUET_VERSION, &name, vec![("jsonl", digest)], upstream.map(|nodes| move || nodes), || {
                    let artifact = encode();
                    let summary = artifact.as_ref().map_or((0, 0, [0; 32]), |a| (a.rows, a.bytes, a.hash));
                    fresh = Some(artifact);
                    summary
                });
                if let Some(artifact) = fresh {
                    return artifact;
                }
                let previous = last
                    .zip(kept)
                    .and_then(|(last, kept)| previous_artifact(out, kept, last, &name))
                    .filter(|a| (a.rows, a.bytes, a.hash) == (count, size, hash));
                match previous {
                    Some(artifact) => Ok(artifact),
                    None => encode(),
                }
            })
            .collect()
    });
    let artifacts = results.into_iter().collect::<Result<Vec<Artifact>>>()?;
    let batches = batches.into_inner().unwrap();
    tracing::debug!(elapsed = ?started.elapsed(), files = artifacts.len(), encoded = batches.len(), "dataset files encoded or reused");
    Ok((artifacts, batches))
}
