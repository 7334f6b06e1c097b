//! The outputs, one family. The row artifacts ([`rows`]) and each [`Sink`] render their
//! artifacts from what the build computed, reusing the previous build's bytes where what they
//! read is unchanged; the family then
//! writes them (each atomically: a temporary file renamed into place), keeps copies in the
//! cache, removes the artifacts a build no longer writes, and records a `write(<artifact>)`
//! node for each, so `explain` names every output with the reason it changed. The database
//! is the one output that is not a file: [`database`] updates it after the files are written.
//! `build.rs` only orchestrates: evaluate, [`render_all`], [`write_all`], [`database`].

pub mod database;
pub mod dataset;
pub mod graphs;
pub mod overlays;
pub mod rows;
pub mod slices;
pub mod tags;
pub mod trees;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use rayon::prelude::*;

use crate::cache::{BuildRecord, StageCache};
use crate::config::Config;
use crate::db::{SourceFile, Workspace};
use crate::diagnostics::Problem;
use crate::rows::{FileOutput, PreviousRows};
use crate::source::ContentHash;
use crate::stat::{Stat, StatEntry};
use crate::writers::{Artifact, Body, link_atomic, write_atomic};

/// What every sink may read: the evaluated files and their rows, the problems, and the last
/// build (its record, its rows, the cache's copy of its artifacts).
pub struct Context<'a> {
    pub workspace: &'a mut Workspace,
    pub pool: &'a rayon::ThreadPool,
    pub config: &'a Config,
    /// The build's files, sorted by path, and their outputs (same order).
    pub files: &'a [SourceFile],
    pub outputs: &'a [FileOutput],
    /// Every problem of the build, sorted.
    pub problems: &'a [Problem],
    pub previous: Option<&'a PreviousRows>,
    pub cache: Option<&'a StageCache>,
    pub last: Option<&'a BuildRecord>,
    /// Behind the graph firewall: the import graph, fans and load cycles are the last build's.
    pub firewall_held: bool,
    /// The import graph, when the build rebuilt it from recorded facts (else the sinks ask the
    /// database for it).
    pub import_graph: Option<&'a crate::stages::graph::ImportGraph>,
    /// The rows of the dataset files this build encoded (set by the dataset sink; the
    /// database appends them).
    pub batches: dataset::Batches,
    /// The row artifacts, when the evaluation streamed them (see [`rows::RowStreams`]).
    pub streamed_rows: Option<Result<[Artifact; 3]>>,
    /// Each file's module name (same order as `files`): the sinks after the release of the
    /// memos read them here.
    pub modules: &'a [String],
    /// Whether a one-shot workspace's memos are dropped once no sink reads them.
    pub release_memos: bool,
}

impl Context<'_> {
    /// Drop the memos of a one-shot workspace (see [`Workspace::release`]) on a worker when
    /// `release_memos` says so, then have every worker collect its heap: mimalloc returns a
    /// block another thread freed only when the thread that allocated it collects, and the
    /// workers allocated most memos.
    fn release_memos(&mut self) {
        if !self.release_memos {
            return;
        }
        if let Some(db) = self.workspace.release() {
            self.pool.spawn(move || {
                let started = std::time::Instant::now();
                drop(db);
                rayon::spawn_broadcast(|_| release_free_memory());
                tracing::debug!(elapsed = ?started.elapsed(), "memos freed");
            });
        }
    }

    /// The cache's copy of the last build's artifacts.
    pub fn kept(&self) -> Option<PathBuf> {
        self.cache.map(StageCache::artifacts_dir)
    }

    /// The artifact `name` of the last build, when intact in the output directory or the
    /// cache's copy.
    pub fn previous_artifact(&self, name: &str) -> Option<Artifact> {
        previous_artifact(&self.config.out, &self.kept()?, self.last?, name)
    }
}

/// One kind of output.
pub trait Sink {
    /// Its name in the build's phase timings.
    fn name(&self) -> &'static str;
    /// Whether this build asks for it.
    fn wanted(&self, _config: &Config) -> bool {
        true
    }
    /// Whether it reads the artifacts of the sinks before it (then the row artifacts are
    /// finished first).
    fn reads_artifacts(&self) -> bool {
        false
    }
    /// Whether it reads the workspace's database (the memos); the sinks after the last that
    /// does render while a one-shot build frees them.
    fn reads_memos(&self) -> bool {
        true
    }
    /// Its artifacts; `so_far` holds those of the sinks before it.
    fn render(&self, cx: &mut Context<'_>, so_far: &[Artifact]) -> Result<Vec<Artifact>>;
}

/// Every sink but the row artifacts ([`rows`]), in the order they render (a sink may read the
/// artifacts of those before it).
pub fn all() -> Vec<Box<dyn Sink>> {
    vec![
        Box::new(tags::Tags),
        Box::new(overlays::Overlays),
        Box::new(graphs::Graphs),
        Box::new(trees::Trees),
        Box::new(slices::Slices),
        Box::new(dataset::Dataset),
    ]
}

/// Render every wanted sink's artifacts (the row artifacts first in the list), calling
/// `done(sink name)` after each. The row artifacts are put together on their own thread
/// beside the sinks that do not read them: on a large tree they are copies of hundreds of
/// megabytes of previous rows, while the graphs are rendered.
pub fn render_all(cx: &mut Context<'_>, mut done: impl FnMut(&'static str)) -> Result<Vec<Artifact>> {
    let (config, outputs, previous, problems) = (cx.config, cx.outputs, cx.previous, cx.problems);
    let streamed = cx.streamed_rows.take();
    std::thread::scope(|scope| {
        let rendering = std::thread::Builder::new()
            .name("rows".into())
            .spawn_scoped(scope, move || rows::render(config, outputs, previous, problems, streamed))
            .expect("a thread can be started");
        /// The row artifacts at the head of the list, once.
        fn rows_done(
            artifacts: &mut Vec<Artifact>,
            rows: &mut Option<std::thread::ScopedJoinHandle<'_, Result<Vec<Artifact>>>>,
            done: &mut impl FnMut(&'static str),
        ) -> Result<()> {
            if let Some(rendering) = rows.take() {
                let rendered = rendering.join().expect("rendering the rows does not panic")?;
                artifacts.splice(0..0, rendered);
                done("rows");
            }
            Ok(())
        }
        let mut rows = Some(rendering);
        let mut artifacts = Vec::new();
        let sinks: Vec<Box<dyn Sink>> = all().into_iter().filter(|sink| sink.wanted(config)).collect();
        let last_reading = sinks.iter().rposition(|sink| sink.reads_memos());
        for (at, sink) in sinks.into_iter().enumerate() {
            if last_reading.is_none_or(|last| at > last) {
                cx.release_memos();
            }
            if sink.reads_artifacts() {
                rows_done(&mut artifacts, &mut rows, &mut done)?;
            }
            let rendered = sink.render(cx, &artifacts)?;
            artifacts.extend(rendered);
            done(sink.name());
        }
        rows_done(&mut artifacts, &mut rows, &mut done)?;
        cx.release_memos();
        Ok(artifacts)
    })
}

/// Hand the memory the allocator holds freed back to the system (on the calling thread's heap):
/// what the evaluation and the encoders freed would otherwise stay resident while the database
/// loads.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` only releases memory no allocation uses.
    #[cfg(feature = "mimalloc")]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}

/// Write the artifacts, remove those of the last build this one did not write, and keep a
/// copy of them in the cache.
/// Returns the older kept copies set aside (see [`keep_artifacts`]), for the caller to remove
/// while it records the build.
pub fn write_all(config: &Config, cache: Option<&StageCache>, last: Option<&BuildRecord>, artifacts: &[Artifact]) -> Result<Vec<PathBuf>> {
    let started = std::time::Instant::now();
    write_outputs(config, last, artifacts)?;
    tracing::debug!(elapsed = ?started.elapsed(), "outputs written");
    let kept = cache.map(StageCache::artifacts_dir);
    remove_stale_artifacts(config, kept.as_deref(), last, artifacts);
    let mut set_aside = Vec::new();
    if let Some(kept) = &kept {
        set_aside = keep_artifacts(&config.out, kept, artifacts)?.1;
    }
    tracing::debug!(elapsed = ?started.elapsed(), "artifacts kept");
    // Durable before the build record names them (the kept copies are hard links: same
    // file system, or copies the cache verifies by hash whenever it uses them).
    crate::writers::sync_file_system(&config.out)?;
    tracing::debug!(elapsed = ?started.elapsed(), "outputs synced");
    Ok(set_aside)
}

/// Record a `write(<artifact>)` node for each artifact, keyed by its bytes.
pub fn record_writes(cache: &StageCache, artifacts: &[Artifact]) {
    let upstream = cache.recomputed_so_far();
    for artifact in artifacts {
        cache.record_artifact(&artifact.path, artifact.hash, upstream);
    }
}

/// The bytes of an artifact, wherever they are.
pub fn artifact_bytes<'a>(out: &std::path::Path, artifact: &'a Artifact) -> Result<std::borrow::Cow<'a, [u8]>> {
    Ok(match &artifact.body {
        Body::Contents(bytes) => std::borrow::Cow::Borrowed(bytes.as_slice()),
        Body::OnDisk { .. } => std::borrow::Cow::Owned(std::fs::read(out.join(&artifact.path)).with_context(|| format!("cannot read {}", artifact.path))?),
        Body::Linked(source) | Body::Staged(source) => {
            std::borrow::Cow::Owned(std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?)
        }
    })
}

/// The artifact `name` of the last build: as it is in `out` when intact there, else linked
/// from the cache's copy `kept` when intact there.
pub fn previous_artifact(out: &std::path::Path, kept: &std::path::Path, last: &BuildRecord, name: &str) -> Option<Artifact> {
    let (rows, bytes, hash) = last.artifact(name)?;
    let intact = last.intact(out, name);
    if intact.yes() {
        return Some(Artifact::on_disk(name, rows, bytes, hash, intact));
    }
    let copy = crate::writers::kept_path(kept, name);
    last.intact_at(&copy, name).yes().then(|| Artifact::linked(name, rows, bytes, hash, copy))
}

/// Keep the artifacts now in `out` in the cache's `kept` directory: a hard link when both are
/// on one file system (free), else a copy of those that changed (a copy is verified by its
/// hash whenever it is used). Returns whether anything was linked or copied (a new link
/// changes the file's ctime, so its recorded stat is stale), and the older copies set aside
/// for [`remove_set_aside`].
pub fn keep_artifacts(out: &std::path::Path, kept: &std::path::Path, artifacts: &[Artifact]) -> Result<(bool, Vec<PathBuf>)> {
    // An artifact the last build's stat vouched for is linked there already when both are on
    // one file system: that stat was taken after the link, and it includes the ctime, which
    // any link made or removed since would have changed. Not even stat'ed (25k outputs on the
    // 100k-module tree: two stats each).
    let linking = same_device(out, kept);
    // Independent files (hundreds of overlays on a large tree): linked in parallel. Each
    // yields whether it was linked, and the older copy it set aside.
    let linked: Vec<(bool, Option<PathBuf>)> = artifacts
        .par_iter()
        .map(|artifact| -> Result<(bool, Option<PathBuf>)> {
            if linking && matches!(artifact.body, Body::OnDisk { vouched: true }) {
                return Ok((false, None));
            }
            let (from, to) = (out.join(&artifact.path), crate::writers::kept_path(kept, &artifact.path));
            let (Ok(source), target) = (std::fs::metadata(&from), std::fs::metadata(&to)) else { return Ok((false, None)) };
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt as _;
                if target.as_ref().is_ok_and(|t| (t.dev(), t.ino()) == (source.dev(), source.ino())) {
                    return Ok((false, None));
                }
            }
            if matches!(artifact.body, Body::OnDisk { .. }) && target.as_ref().is_ok_and(|t| t.len() == source.len()) {
                return Ok((false, None));
            }
            // Replacing the last link of the older copy frees its blocks inside the rename
            // (15 ms for a 20 MB `modules.jsonl`, strace): a second link (in the cache
            // directory, whose opening removes any a killed build left) keeps it alive until
            // `remove_set_aside` drops it off the build's critical path.
            let aside = match &target {
                Ok(old) if old.len() >= SET_ASIDE_BYTES => crate::writers::set_aside(&to, kept.parent().unwrap_or(kept)),
                _ => None,
            };
            link_atomic(&from, &to)?;
            Ok((true, aside))
        })
        .collect::<Result<_>>()?;
    let any = linked.iter().any(|(l, _)| *l);
    Ok((any, linked.into_iter().filter_map(|(_, aside)| aside).collect()))
}

/// Whether the directories `a` and `b` exist on one device.
fn same_device(a: &std::path::Path, b: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        matches!((std::fs::metadata(a), std::fs::metadata(b)), (Ok(a), Ok(b)) if a.dev() == b.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Older kept copies at least this large are set aside rather than freed in place.
const SET_ASIDE_BYTES: u64 = 1 << 20;

/// Remove the older copies [`keep_artifacts`] set aside.
pub fn remove_set_aside(paths: Vec<PathBuf>) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// Write the artifacts, except those the output directory already holds.
fn write_outputs(config: &Config, last: Option<&BuildRecord>, artifacts: &[Artifact]) -> Result<()> {
    let out = &config.out;
    if config.out_is_default {
        write_atomic(&out.join(".gitignore"), b"# Written by codeintel-enrich.\n*\n")?;
    }
    // Many small artifacts (overlays) are written in parallel: each write is independent.
    artifacts.par_iter().try_for_each(|artifact| match &artifact.body {
        // The last build wrote other bytes there: whatever the file holds now (those bytes, or
        // a user's edit), it is replaced; only an artifact recorded unchanged is compared.
        Body::Contents(contents) if last.and_then(|l| l.artifact(&artifact.path)).is_some_and(|(.., hash)| hash != artifact.hash) => {
            crate::writers::write_atomic_changed(&out.join(&artifact.path), contents)
        }
        Body::Contents(contents) => write_atomic(&out.join(&artifact.path), contents),
        Body::Linked(source) => link_atomic(source, &out.join(&artifact.path)),
        // A file with these bytes stays (its inode and times too): a build without the cache,
        // or without the previous rows, stages every row artifact.
        Body::Staged(staged) if staged_in_place(out, last, artifact) => {
            std::fs::remove_file(staged).with_context(|| format!("cannot remove {}", staged.display()))
        }
        Body::Staged(staged) => std::fs::rename(staged, out.join(&artifact.path))
            .with_context(|| format!("cannot move {} into place", artifact.path)),
        Body::OnDisk { .. } => Ok(()),
    })
}

/// Whether `out` already holds the bytes of the staged `artifact`: the file still holds what
/// the last build recorded (its stat vouches, or it is hashed) and that is these bytes; else,
/// it has this size and hashes to them.
fn staged_in_place(out: &std::path::Path, last: Option<&BuildRecord>, artifact: &Artifact) -> bool {
    if let Some((last, (.., hash))) = last.and_then(|l| Some((l, l.artifact(&artifact.path)?)))
        && last.intact(out, &artifact.path).yes()
    {
        return hash == artifact.hash;
    }
    let file = out.join(&artifact.path);
    std::fs::metadata(&file).is_ok_and(|m| m.len() == artifact.bytes as u64) && crate::writers::hash_file(&file) == Some(artifact.hash)
}

/// Remove the artifacts of the last build that this one did not write (overlays of modules no
/// longer selected, slices no longer asked for, files gone), in the output directory and the
/// cache's copy, and the directories they leave empty.
fn remove_stale_artifacts(config: &Config, kept: Option<&std::path::Path>, last: Option<&BuildRecord>, artifacts: &[Artifact]) {
    let Some(last) = last else { return };
    let current: std::collections::BTreeSet<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
    for (path, ..) in &last.artifacts {
        if current.contains(path.as_str()) {
            continue;
        }
        let file = config.out.join(path);
        if std::fs::remove_file(&file).is_ok() {
            let mut parent = file.parent();
            while let Some(p) = parent.filter(|p| p.starts_with(&config.out) && *p != config.out) {
                if std::fs::remove_dir(p).is_err() {
                    break;
                }
                parent = p.parent();
            }
        }
        if let Some(kept) = kept {
            let _ = std::fs::remove_file(crate::writers::kept_path(kept, path));
        }
    }
}

/// Every artifact of the last build, as still in `out` with its recorded bytes (how each was
/// found: some hashed make their stats worth recording again); `None` when one is not.
pub fn artifacts_intact(out: &std::path::Path, last: &BuildRecord) -> Option<Vec<Artifact>> {
    last.artifacts
        .par_iter()
        .map(|(path, rows, bytes, hash)| {
            let intact = last.intact(out, path);
            intact.yes().then(|| Artifact::on_disk(path.clone(), *rows, *bytes, *hash, intact))
        })
        .collect()
}

/// The stat of each artifact now in `out`, for the next build's [`artifact_intact`].
///
/// The build wrote these files a moment ago, by `written_ns` (no mtime is later: the file
/// system stamps with a clock that lags the one `now_ns` reads), so their mtimes are inside
/// any racy window measured from then: it waits until `written_ns` is older than the output
/// directory's window `window_ns` (a few milliseconds where the file system stamps finely, see
/// [`crate::stat::artifact_window_ns`]) before taking the stats, so the next build can trust
/// them instead of hashing every artifact again. An artifact the `last` build's stat vouched
/// for this build ([`Body::OnDisk`]) keeps that stat: nothing wrote it since, and
/// [`keep_artifacts`] did not link it (a stale stat would only make the next build hash it).
pub fn artifact_stats(out: &std::path::Path, artifacts: &[Artifact], last: Option<&BuildRecord>, window_ns: i128, written_ns: i128) -> Vec<StatEntry> {
    let wait = written_ns + window_ns + 1 - crate::stat::now_ns();
    if wait > 0 && wait < crate::stat::RACY_NANOS {
        std::thread::sleep(std::time::Duration::from_nanos(wait as u64));
    }
    let taken_ns = crate::stat::now_ns();
    artifacts
        .par_iter()
        .filter_map(|a| {
            if matches!(a.body, Body::OnDisk { vouched: true })
                && let Some(entry) = last.and_then(|l| l.artifact_stat(&a.path))
            {
                return Some(entry.clone());
            }
            let meta = std::fs::metadata(out.join(&a.path)).ok()?;
            Some(StatEntry {
                path: a.path.clone(),
                stat: Stat::of(&meta),
                taken_ns,
                hash: ContentHash(a.hash),
                encoding: String::new(),
                window_ns,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_older_copy_is_set_aside_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (out, kept) = (dir.path().join("out"), dir.path().join("kept"));
        let old = vec![b'a'; SET_ASIDE_BYTES as usize];
        let new = vec![b'b'; SET_ASIDE_BYTES as usize + 1];
        write_atomic(&out.join("rows.jsonl"), &old).unwrap();
        let (linked, aside) = keep_artifacts(&out, &kept, &[Artifact::new("rows.jsonl", 1, old.clone())]).unwrap();
        assert!(linked && aside.is_empty(), "a first copy replaces nothing");
        write_atomic(&out.join("rows.jsonl"), &new).unwrap();
        let (linked, aside) = keep_artifacts(&out, &kept, &[Artifact::new("rows.jsonl", 1, new.clone())]).unwrap();
        assert!(linked);
        assert_eq!(aside.len(), 1, "the older copy is set aside");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), old);
        assert_eq!(std::fs::read(crate::writers::kept_path(&kept, "rows.jsonl")).unwrap(), new);
        assert_eq!(aside[0].parent(), Some(dir.path()), "set aside in the cache directory");
        // A build killed before removing it: the next opening of the cache does.
        drop(crate::cache::StageCache::open(dir.path()).unwrap());
        assert!(!aside[0].exists());
        assert_eq!(std::fs::read(crate::writers::kept_path(&kept, "rows.jsonl")).unwrap(), new);
        // A small older copy is replaced in place.
        write_atomic(&out.join("small.json"), b"1").unwrap();
        keep_artifacts(&out, &kept, &[Artifact::new("small.json", 1, b"1".to_vec())]).unwrap();
        write_atomic(&out.join("small.json"), b"2").unwrap();
        let (_, aside) = keep_artifacts(&out, &kept, &[Artifact::new("small.json", 1, b"2".to_vec())]).unwrap();
        assert!(aside.is_empty());
    }

    #[test]
    fn an_artifact_its_recorded_stat_vouches_for_is_neither_linked_nor_stated_again() {
        let dir = tempfile::tempdir().unwrap();
        let (out, kept) = (dir.path().join("out"), dir.path().join("kept"));
        let written = Artifact::new("a.json", 1, b"[1]".to_vec());
        write_atomic(&out.join("a.json"), b"[1]").unwrap();
        keep_artifacts(&out, &kept, std::slice::from_ref(&written)).unwrap();
        // Written an hour ago: outside any racy window.
        let file = std::fs::File::options().append(true).open(out.join("a.json")).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600)).unwrap();
        let stats = artifact_stats(&out, std::slice::from_ref(&written), None, 0, 0);
        let mut last = BuildRecord {
            key: [0; 32],
            artifacts: vec![("a.json".to_string(), 1, 3, written.hash)],
            modules: 0,
            symbols: 0,
            imports: 0,
            syntax_error_modules: 0,
            problems: Vec::new(),
            artifact_stats: stats,
            database: None,
        };
        let vouched = previous_artifact(&out, &kept, &last, "a.json").unwrap();
        assert!(matches!(vouched.body, Body::OnDisk { vouched: true }), "{:?}", vouched.body);
        let hashed = Artifact::on_disk("a.json", 1, 3, written.hash, crate::writers::Intact::ByHash);

        // Vouched for: its link is not looked for. (Removing the link changed the file's ctime:
        // the next build's stat of it would not vouch.)
        std::fs::remove_file(crate::writers::kept_path(&kept, "a.json")).unwrap();
        assert!(!keep_artifacts(&out, &kept, std::slice::from_ref(&vouched)).unwrap().0);
        assert!(!crate::writers::kept_path(&kept, "a.json").exists());
        // One verified by reading it is.
        assert!(keep_artifacts(&out, &kept, std::slice::from_ref(&hashed)).unwrap().0);
        assert_eq!(std::fs::read(crate::writers::kept_path(&kept, "a.json")).unwrap(), b"[1]");

        // The next record keeps the vouched stat as recorded, and stats the other again.
        last.artifact_stats[0].stat.inode = 0;
        let recorded = last.artifact_stats[0].clone();
        assert_eq!(artifact_stats(&out, std::slice::from_ref(&vouched), Some(&last), 0, 0), vec![recorded]);
        let restated = artifact_stats(&out, std::slice::from_ref(&hashed), Some(&last), 0, 0);
        assert_ne!(restated[0].stat.inode, 0);
    }
}
