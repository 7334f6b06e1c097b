//! `codeintel.duckdb`: brought to the dataset this build wrote after the files are written
//! (see [`crate::writers::duckdb`]); opened before anything is written, so a database another
//! process holds stops the build first.

use anyhow::{Context as _, Result};

use crate::cache::{BuildRecord, update_parts};
use crate::config::Config;
use crate::rows::{FileOutput, PreviousRows};
use crate::writers::Artifact;

use super::artifact_bytes;
use super::graphs::GRAPH_ARTIFACTS;

pub use crate::writers::duckdb::Database;

/// The database is as the last build left it (or the build keeps none): the whole-build
/// shortcut may skip it. A database changed by hand is repaired by the next real build.
pub fn database_intact(config: &Config, last: &BuildRecord) -> bool {
    let file = config.out.join(crate::writers::duckdb::DATABASE_FILE);
    if !config.database {
        return !file.exists();
    }
    let written = last.artifacts.iter().filter(|(path, ..)| path.starts_with(crate::writers::parquet::DATASET_DIR));
    last.database.as_deref() == Some(dataset_digest(written.map(|(path, _, _, hash)| (path.as_str(), hash))).as_str()) && file.is_file()
}

/// Digest of a dataset: its files' names and bytes, in name order (whatever order they come in).
pub fn dataset_digest<'a>(files: impl Iterator<Item = (&'a str, &'a [u8; 32])>) -> String {
    let mut files: Vec<(&str, &[u8; 32])> = files.collect();
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for (path, hash) in files {
        update_parts(&mut hasher, [path.as_bytes(), hash.as_slice()]);
    }
    hasher.finalize().to_hex().to_string()
}

/// What the database update reads from the build.
pub struct Store<'a> {
    pub config: &'a Config,
    pub artifacts: &'a [Artifact],
    pub outputs: &'a [FileOutput],
    /// The rows of the dataset files this build encoded.
    pub batches: &'a super::dataset::Batches,
}

impl<'a> Store<'a> {
    /// What the update needs from the build: the update can then run beside other work.
    pub fn prepare(&self, previous: Option<&PreviousRows>, last: Option<&BuildRecord>) -> Result<Prepared<'a>> {
        use crate::writers::parquet::DATASET_DIR;
        let Store { config, artifacts, outputs, batches } = *self;
        let dataset: Vec<&Artifact> = artifacts.iter().filter(|a| a.path.starts_with(DATASET_DIR)).collect();
        let digest = dataset_digest(dataset.iter().map(|a| (a.path.as_str(), &a.hash)));
        let previous_digest = last.zip(previous).map(|(last, _)| {
            dataset_digest(last.artifacts.iter().filter(|(p, ..)| p.starts_with(DATASET_DIR)).map(|(p, _, _, h)| (p.as_str(), h)))
        });
        let mut changed_paths: std::collections::BTreeSet<String> =
            outputs.iter().filter(|o| o.rendered.is_some()).map(|o| o.entry.path.clone()).collect();
        if let Some(previous) = previous {
            let current: std::collections::BTreeSet<&str> = outputs.iter().map(|o| o.entry.path.as_str()).collect();
            changed_paths.extend(previous.paths().filter(|p| !current.contains(p)).map(str::to_string));
        }
        // Dataset files whose bytes are not the last build's: new, changed, or gone.
        let was = |path: &str, hash: &[u8; 32]| last.and_then(|l| l.artifact(path)).is_some_and(|(_, _, h)| h == *hash);
        let mut changed_files: std::collections::BTreeSet<String> =
            dataset.iter().filter(|a| !was(&a.path, &a.hash)).map(|a| a.path.clone()).collect();
        let current: std::collections::BTreeSet<&str> = dataset.iter().map(|a| a.path.as_str()).collect();
        changed_files.extend(
            last.into_iter()
                .flat_map(|l| &l.artifacts)
                .filter(|(p, ..)| p.starts_with(DATASET_DIR) && !current.contains(p.as_str()))
                .map(|(p, ..)| p.clone()),
        );
        let cycles = artifacts.iter().find(|a| a.path == GRAPH_ARTIFACTS[2]).context("the graphs were not rendered")?;
        // Files to be linked into place from the cache's copy: DuckDB reads them (hive
        // partitions) only once they are.
        let reads_outputs = dataset.iter().any(|a| matches!(a.body, crate::writers::Body::Linked(_)));
        Ok(Prepared {
            reads_outputs,
            update: crate::writers::duckdb::Update {
                out: &config.out,
                dataset: dataset.iter().map(|a| a.path.as_str()).collect(),
                digest,
                previous_digest,
                changed_paths,
                changed_files,
                cycles: artifact_bytes(&config.out, cycles)?.into_owned(),
                cycles_changed: !was(&cycles.path, &cycles.hash),
                batches,
                threads: config.jobs.saturating_sub(1).max(1),
                commit_threads: config.jobs,
            },
        })
    }
}

/// A prepared database update.
pub struct Prepared<'a> {
    update: crate::writers::duckdb::Update<'a>,
    reads_outputs: bool,
}

impl Prepared<'_> {
    /// Whether the update reads dataset files this build has yet to put in the output
    /// directory; otherwise it can run while the outputs are written.
    pub fn reads_outputs(&self) -> bool {
        self.reads_outputs
    }

    /// The digest of the dataset the database will hold.
    pub fn digest(&self) -> &str {
        &self.update.digest
    }

    /// Bring `database` to the dataset.
    pub fn run(&self, database: Database) -> Result<()> {
        let outcome = database.update(&self.update)?;
        tracing::info!(?outcome, "database");
        Ok(())
    }
}

/// Remove the database of a build that keeps none (`--no-database`): it would be stale.
pub fn remove_database(out: &std::path::Path) -> Result<()> {
    crate::writers::duckdb::remove(out)
}
