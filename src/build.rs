//! The build: discover → load (read, hash, decode) → sync the salsa inputs → evaluate the
//! per-file queries in parallel → render the artifacts → write them atomically.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use std::sync::Arc;

use crate::cache::{BuildRecord, StageCache, update_parts};
use crate::config::Config;
use crate::explain::RunLog;
use crate::stages::cached::CACHED_STAGES;
use crate::db::{LoadedFile, SourceFile, Workspace};
use crate::diagnostics::{Problem, ProblemKind};
use crate::discover::{FoundFile, OUTPUT_MARKER, discover};
use crate::module_path::module_path;
use crate::source;
use crate::stat::{Stat, StatCache, StatEntry};
use crate::db::Project;
use crate::stages::graph::{Fan, import_graph, module_fan};
use crate::stages::tags::{Labels, TagSettings};
use crate::stages::imports::imports;
use crate::stages::resolve::resolved_imports;
use crate::stages::outline::outline;
use crate::stages::parse::syntax_errors;
use crate::stages::record::{module_docstring, module_record, module_summary};
use crate::stages::scope::module_scope;
use crate::rows::{
    Assembled, FileOutput, PreviousRows, ROW_ARTIFACTS, ROWS_VERSION, RowEntry, RowIndex, assemble, facts_digest, labels, layout_digest, rows_inputs,
    source_digest,
};
use crate::source::ContentHash;
use crate::writers::{Artifact, Body, Intact, jsonl, link_atomic, write_atomic};

/// Files evaluated between two LRU evictions of parse trees: bounds the memory held by trees.
const CHUNK_FILES: usize = 1024;

/// What a build did.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub modules: usize,
    pub symbols: usize,
    pub imports: usize,
    /// Modules with at least one syntax error (still in the outputs).
    pub syntax_error_modules: usize,
    /// Every problem, sorted by path.
    pub problems: Vec<Problem>,
    /// The artifacts written (or, with `--dry-run`, that would have been written).
    pub artifacts: Vec<ArtifactSummary>,
    pub dry_run: bool,
    pub elapsed: Duration,
    /// What the stage cache saw (absent without a cache or in a dry run).
    pub run_log: Option<RunLog>,
}

/// Name and size of one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSummary {
    pub path: String,
    pub rows: usize,
    pub bytes: usize,
}

impl BuildReport {
    /// Files that could not be read or decoded (exit code 1 when non-zero).
    pub fn file_errors(&self) -> usize {
        self.problems.iter().filter(|p| p.kind.is_file_error()).count()
    }

    /// Files skipped by policy (too large).
    pub fn skipped(&self) -> usize {
        self.problems.iter().filter(|p| p.kind == ProblemKind::Oversized).count()
    }

    pub fn summary_line(&self) -> String {
        format!(
            "{} modules, {} symbols, {} imports; {} skipped, {} errors, {} with syntax errors, {} warnings; {:.2}s{}",
            self.modules,
            self.symbols,
            self.imports,
            self.skipped(),
            self.file_errors(),
            self.syntax_error_modules,
            self.problems.iter().filter(|p| p.kind.is_warning()).count(),
            self.elapsed.as_secs_f64(),
            if self.dry_run { " (dry run: nothing written)" } else { "" },
        )
    }
}

/// Run a build with a fresh database.
pub fn build(config: &Config) -> Result<BuildReport> {
    build_in(&mut Workspace::default(), config)
}

/// Run a build in `workspace`, reusing whatever its database already computed.
pub fn build_in(workspace: &mut Workspace, config: &Config) -> Result<BuildReport> {
    let started = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.jobs)
        .thread_name(|i| format!("codeintel-worker-{i}"))
        .build()
        .context("cannot start worker threads")?;

    // The cache is opened (and locked) first: a second build waits here for the first.
    // A dry run reads an existing cache but never creates or writes one.
    let cache = match &config.cache_dir {
        Some(dir) if !config.dry_run || dir.join(crate::cache::CACHE_FILE).exists() => {
            let cache = Arc::new(StageCache::open(dir)?);
            for note in &cache.notes {
                tracing::warn!("{note}");
            }
            Some(cache)
        }
        _ => None,
    };
    workspace.db.set_stage_cache(cache.clone());
    workspace.db.set_root(&config.root);
    let result = run_build(workspace, config, &pool, cache.as_deref(), started);
    workspace.db.set_stage_cache(None);
    result
}

fn run_build(
    workspace: &mut Workspace,
    config: &Config,
    pool: &rayon::ThreadPool,
    cache: Option<&StageCache>,
    started: Instant,
) -> Result<BuildReport> {
    let mut timings = Vec::new();
    let mut phase = {
        let mut last = started;
        move |name: &str, timings: &mut Vec<(String, f64)>| {
            let now = Instant::now();
            timings.push((name.to_string(), (now - last).as_secs_f64()));
            tracing::info!(elapsed = ?started.elapsed(), "{name} done");
            last = now;
        }
    };
    let _out_lock = if config.dry_run { None } else { Some(lock_output_dir(config)?) };
    let discovery = discover(config)?;
    phase("discover", &mut timings);
    let mut problems = discovery.problems;
    let src_layout = discovery.src_layout;
    let stats = StatCache::new(cache.and_then(|c| c.stat_entries()).unwrap_or_default());
    let loaded: Vec<Result<(LoadedFile, StatEntry), Problem>> = pool.install(|| {
        discovery
            .files
            .par_iter()
            .map(|file| {
                let stub = discovery.stubs.get(&file.rel_path).and_then(|path| read_stub(path));
                let compiled = discovery.extensions.get(&file.rel_path).cloned();
                load(file, src_layout, config.max_file_bytes, &stats).map(|(mut loaded, entry)| {
                    loaded.stub = stub;
                    loaded.compiled = compiled;
                    (loaded, entry)
                })
            })
            .collect()
    });
    drop(stats);
    let mut files_to_sync = Vec::with_capacity(loaded.len());
    let mut stat_entries = Vec::with_capacity(loaded.len());
    for result in loaded {
        match result {
            Ok((file, entry)) => {
                files_to_sync.push(file);
                stat_entries.push(entry);
            }
            Err(problem) => problems.push(problem),
        }
    }
    let files_read = files_to_sync.iter().filter(|f| f.text.is_some()).count();
    tracing::debug!(files_read, "stat fast path");
    if let Some(cache) = cache {
        cache.set_files_read(files_read, files_to_sync.len());
    }
    let settings = TagSettings::new(config);
    // External inputs: read and validated now, before anything is written.
    let module_paths: std::collections::BTreeSet<String> = files_to_sync.iter().map(|f| f.path.clone()).collect();
    let joins = crate::inputs::joins::load(&config.inputs, &config.root, &module_paths)?;
    problems.extend(joins.problems.iter().cloned());
    let settings_digest = format!("{} inputs={}", settings.digest(), joins.digest);
    let outputs_asked =
        format!("{settings_digest} slices={}:{:?} ast={}", config.emit_slices, config.slices_filter, config.emit_ast);
    let build_key = build_key(&files_to_sync, &problems, &config.target, &outputs_asked);
    workspace.set_target(&config.target);
    let queries: Vec<(String, String)> = config.tags.queries.iter().map(|q| (q.tag.clone(), q.source.clone())).collect();
    let compiled: Option<Arc<dyn crate::db::PatternTagger>> = if queries.is_empty() {
        None
    } else {
        Some(Arc::new(crate::stages::patterns::PatternSet::compile(&queries).map_err(|e| anyhow::anyhow!("tags YAML: {e}"))?))
    };
    workspace.set_user_patterns(compiled);
    let files = workspace.sync(files_to_sync);
    phase("load", &mut timings);

    // The whole-build shortcut: same inputs as the last complete build, artifacts intact.
    let last_build = cache.and_then(StageCache::last_build);
    if let Some(cache) = cache.filter(|_| !config.dry_run)
        && let Some(last) = last_build.as_ref().filter(|last| last.key == build_key)
        && let Some(hashed) = artifacts_intact(&config.out, last)
    {
        let mut last = last.clone();
        phase("verify", &mut timings);
        let artifacts = last_artifacts(&last);
        let kept_any = keep_artifacts(&config.out, &cache.artifacts_dir(), &artifacts)?;
        if hashed || kept_any {
            last.artifact_stats = artifact_stats(&config.out, &artifacts);
            cache.update_build_record(&last)?;
        }
        // Files re-read (new stats, or racy ones) get entries the next build can trust.
        if files_read > 0 {
            cache.record_stats(&stat_entries)?;
        }
        if let Some(log) = cache.reuse_build(timings.clone()) {
            return Ok(BuildReport {
                modules: last.modules,
                symbols: last.symbols,
                imports: last.imports,
                syntax_error_modules: last.syntax_error_modules,
                problems: last.problems,
                artifacts: last
                    .artifacts
                    .iter()
                    .map(|(path, rows, bytes, _)| ArtifactSummary { path: path.clone(), rows: *rows, bytes: *bytes })
                    .collect(),
                dry_run: false,
                elapsed: started.elapsed(),
                run_log: Some(log),
            });
        }
    }

    // The previous build's rows, when its artifacts are intact: unchanged files are copied.
    let previous = cache.zip(last_build.as_ref()).and_then(|(cache, last)| {
        PreviousRows::load(&config.out, &cache.artifacts_dir(), cache.row_index()?, last)
    });
    phase("previous", &mut timings);
    let progress = progress_bar(config, files.len());
    if let Some(cache) = cache {
        for (stage, subject, inputs) in &joins.nodes {
            cache.get_or_compute(stage, crate::inputs::joins::JOINS_VERSION, subject, inputs.clone(), || ());
        }
    }
    let labelling = Labelling { settings: &settings, joins: &joins, digest: &settings_digest };
    let (outputs, firewall_held) = evaluate(workspace, pool, &files, &progress, cache, previous.as_ref(), &labelling);
    let layout = layout_digest(&workspace.db, &files, &settings_digest);
    progress.finish_and_clear();
    phase("evaluate", &mut timings);

    let mut report = BuildReport { dry_run: config.dry_run, ..BuildReport::default() };
    for output in outputs.iter().map(|o| &o.entry) {
        if let Some((line, col)) = output.syntax_first {
            report.syntax_error_modules += 1;
            let mut problem = Problem::new(
                output.path.clone(),
                ProblemKind::Syntax,
                format!("{} syntax error(s), first at line {line} column {col}", output.parse_errors),
            );
            problem.line = Some(line);
            problems.push(problem);
        }
        for warning in &output.warnings {
            let mut problem = Problem::new(output.path.clone(), warning.kind, warning.message.clone());
            problem.line = warning.line;
            problems.push(problem);
        }
        for (line, target) in &output.unresolved {
            problems.push(Problem::unresolved_import(output.path.clone(), *line, target));
        }
    }
    problems.sort();
    report.modules = outputs.len();
    report.symbols = outputs.iter().map(|o| o.entry.symbols).sum();
    report.imports = outputs.iter().map(|o| o.entry.imports).sum();

    let mut artifacts = render(&outputs, previous.as_ref(), &problems)?;
    artifacts.push(render_tags(&outputs));
    let overlays = {
        let kept = cache.map(StageCache::artifacts_dir);
        render_overlays(workspace, pool, &files, &outputs, &config.out, kept.as_deref(), last_build.as_ref())
    };
    artifacts.extend(overlays);
    // Behind the project firewall the import graph is the previous build's: its artifacts are
    // reused when still intact (the graph is never evaluated).
    let previous_graphs = cache.zip(last_build.as_ref()).filter(|_| firewall_held).and_then(|(cache, last)| {
        let kept = cache.artifacts_dir();
        GRAPH_ARTIFACTS.iter().map(|name| previous_artifact(&config.out, &kept, last, name)).collect::<Option<Vec<_>>>()
    });
    match previous_graphs {
        Some(graphs) => artifacts.extend(graphs),
        None => artifacts.extend(render_graphs(import_graph(&workspace.db, Project::get(&workspace.db)))),
    }
    if config.emit_ast && !config.dry_run {
        let kept = cache.map(StageCache::artifacts_dir);
        artifacts.extend(render_asts(workspace, pool, &files, &outputs, previous.as_ref(), config, kept.as_deref(), last_build.as_ref())?);
    }
    if config.emit_slices {
        artifacts.extend(render_slices(config, &artifacts, last_build.as_ref(), cache.map(StageCache::artifacts_dir).as_deref())?);
    }
    report.artifacts = artifacts
        .iter()
        .map(|a| ArtifactSummary { path: a.path.clone(), rows: a.rows, bytes: a.bytes })
        .collect();
    report.problems = problems;
    phase("render", &mut timings);
    if !config.dry_run {
        write_outputs(config, &artifacts)?;
        remove_stale_artifacts(config, cache.map(StageCache::artifacts_dir).as_deref(), last_build.as_ref(), &artifacts);
        if let Some(cache) = cache {
            keep_artifacts(&config.out, &cache.artifacts_dir(), &artifacts)?;
        }
        phase("write", &mut timings);
    }
    if let Some(cache) = cache {
        let upstream = cache.recomputed_so_far();
        for artifact in &artifacts {
            cache.record_artifact(&artifact.path, artifact.hash, upstream);
        }
        let subjects = files.iter().map(|f| f.path(&workspace.db).clone()).collect();
        report.run_log = Some(if config.dry_run {
            cache.plan(CACHED_STAGES, &subjects)?
        } else {
            let sizes = artifacts
                .iter()
                .map(|a| crate::explain::ArtifactSize { path: a.path.clone(), rows: a.rows, bytes: a.bytes })
                .collect();
            let log = cache.finish(CACHED_STAGES, &subjects, timings, sizes)?;
            cache.record_build(&BuildRecord {
                key: build_key,
                artifacts: artifacts
                    .iter()
                    .map(|a| (a.path.clone(), a.rows, a.bytes, a.hash))
                    .collect(),
                modules: report.modules,
                symbols: report.symbols,
                imports: report.imports,
                syntax_error_modules: report.syntax_error_modules,
                problems: report.problems.clone(),
                artifact_stats: artifact_stats(&config.out, &artifacts),
            }, &RowIndex {
                layout,
                entries: outputs.into_iter().map(|o| o.entry).collect(),
                load_cycles: crate::stages::exports::load_cycles(&workspace.db, Project::get(&workspace.db)).clone(),
            }, &stat_entries)?;
            tracing::debug!(elapsed = ?started.elapsed(), "build recorded");
            log
        });
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Everything the artifacts are a function of, besides the engine: each file's path, module
/// name, package flag, encoding and content hash, every discovery or loading problem, the
/// Python target, and the tag and overlay settings.
fn build_key(files: &[LoadedFile], problems: &[Problem], target: &crate::config::PythonTarget, settings: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(crate::cache::engine_fingerprint().as_bytes());
    update_parts(&mut hasher, ["target", target.describe().as_str(), "settings", settings]);
    let mut files: Vec<&LoadedFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for file in files {
        update_parts(&mut hasher, [file.path.as_str(), file.module.as_str(), if file.is_package { "1" } else { "0" }, file.encoding.as_str()]);
        hasher.update(&file.hash.0);
        update_parts(&mut hasher, [file.stub.as_deref().unwrap_or("\u{0}no stub"), file.compiled.as_deref().unwrap_or("")]);
    }
    let mut problems: Vec<&Problem> = problems.iter().collect();
    problems.sort();
    hasher.update(&serde_json::to_vec(&problems).expect("problems serialize"));
    *hasher.finalize().as_bytes()
}

/// Every artifact of the last build is still in `out` with its recorded bytes: `Some(true)`
/// when some had to be hashed (their stats are worth recording again), `None` when one is not.
fn artifacts_intact(out: &std::path::Path, last: &BuildRecord) -> Option<bool> {
    let checks: Vec<Intact> = last.artifacts.par_iter().map(|(path, ..)| last.intact(out, path)).collect();
    checks.iter().all(|c| c.yes()).then(|| checks.contains(&Intact::ByHash))
}

/// The artifacts a build record names, as already on disk.
fn last_artifacts(last: &BuildRecord) -> Vec<Artifact> {
    last.artifacts.iter().map(|(path, rows, bytes, hash)| Artifact::on_disk(path.clone(), *rows, *bytes, *hash)).collect()
}

/// The stat of each artifact now in `out`, for the next build's [`artifact_intact`].
///
/// The build wrote these files a moment ago, so their mtimes are inside any racy window
/// measured from now: it waits until the newest is older than the output directory's window
/// (a few milliseconds where the file system stamps finely, see
/// [`crate::stat::artifact_window_ns`]) before taking the stats, so the next build can trust
/// them instead of hashing every artifact again.
fn artifact_stats(out: &std::path::Path, artifacts: &[Artifact]) -> Vec<StatEntry> {
    let window_ns = crate::stat::artifact_window_ns(out);
    let newest = artifacts
        .par_iter()
        .filter_map(|a| std::fs::metadata(out.join(&a.path)).ok())
        .map(|m| Stat::of(&m).mtime_ns)
        .max()
        .unwrap_or(0);
    let wait = newest + window_ns + 1 - crate::stat::now_ns();
    if wait > 0 && wait < crate::stat::RACY_NANOS {
        std::thread::sleep(std::time::Duration::from_nanos(wait as u64));
    }
    let taken_ns = crate::stat::now_ns();
    artifacts
        .par_iter()
        .filter_map(|a| {
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

/// The text of a `.pyi` stub beside a source (UTF-8 as stubs must be), or `None` when it
/// cannot be read — the module then simply has no stub.
fn read_stub(path: &std::path::Path) -> Option<Arc<str>> {
    let bytes = std::fs::read(path).ok()?;
    String::from_utf8(bytes).ok().map(Arc::from)
}

/// Stat, then read, size-check and decode one file — or, when the stat cache vouches for
/// it, take its hash and encoding from there without reading it (see [`crate::stat`]).
fn load(file: &FoundFile, src_layout: bool, max_file_bytes: u64, stats: &StatCache) -> Result<(LoadedFile, StatEntry), Problem> {
    let problem = |kind, message: String| Problem::new(file.rel_path.clone(), kind, message);
    // Checked on the stat, and again on the bytes read (the file may have grown since).
    let size_ok = |len: u64| {
        if len > max_file_bytes {
            return Err(problem(ProblemKind::Oversized, format!("{len} bytes is over --max-file-bytes {max_file_bytes}")));
        }
        Ok(())
    };
    let meta = std::fs::metadata(&file.abs_path).map_err(|err| problem(ProblemKind::Unreadable, err.to_string()))?;
    let stat = Stat::of(&meta);
    let taken_ns = crate::stat::now_ns();
    size_ok(meta.len())?;
    let module = module_path(&file.rel_path, src_layout);
    let loaded = |hash, encoding: String, text| LoadedFile {
        path: file.rel_path.clone(),
        module: module.module.clone(),
        is_package: module.is_package,
        encoding,
        hash,
        text,
        stub: None,
        compiled: None,
    };
    if let Some(entry) = stats.get(&file.rel_path).filter(|e| e.trusted_for(&stat)) {
        return Ok((loaded(entry.hash, entry.encoding.clone(), None), entry.clone()));
    }
    let bytes = std::fs::read(&file.abs_path).map_err(|err| problem(ProblemKind::Unreadable, err.to_string()))?;
    size_ok(bytes.len() as u64)?;
    let decoded = source::decode(&bytes).map_err(|err| problem(ProblemKind::Undecodable, err.to_string()))?;
    let entry = StatEntry {
        path: file.rel_path.clone(),
        stat,
        taken_ns,
        hash: decoded.hash,
        encoding: decoded.encoding.clone(),
        window_ns: crate::stat::RACY_NANOS,
    };
    Ok((loaded(decoded.hash, decoded.encoding, Some(decoded.text)), entry))
}

/// What every module's tags, overlay decision and joined values are computed with.
#[derive(Clone, Copy)]
struct Labelling<'a> {
    settings: &'a TagSettings,
    joins: &'a crate::inputs::joins::Joins,
    /// Digest of both (part of the layout digest).
    digest: &'a str,
}

/// The named inputs of a file's `rows` node, its key, and the labels its rows show.
type RowsKey = (Vec<(&'static str, String)>, [u8; 32], Labels);

/// Evaluate every file: per-file stages, cross-module stages, and the rows of each file —
/// rendered, or reused from the previous artifacts when its `rows` key is unchanged.
///
/// The project firewall: when the module layout is the previous build's and every file whose
/// source changed still has the same imports and bindings, no cross-module value can have
/// changed (they read nothing else), so unchanged files are not evaluated at all and changed
/// ones carry over their fan-in/out — a one-file edit costs one file.
fn evaluate(
    workspace: &mut Workspace,
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    progress: &ProgressBar,
    cache: Option<&StageCache>,
    previous: Option<&PreviousRows>,
    labelling: &Labelling<'_>,
) -> (Vec<FileOutput>, bool) {
    let Labelling { settings, joins, digest: settings_digest } = *labelling;
    let phase_started = Instant::now();
    let db = &workspace.db;
    let previous_entries: Vec<Option<&RowEntry>> =
        files.iter().map(|f| previous.and_then(|p| p.entry(f.path(db)))).collect();
    // Files whose source (content, module name, package flag, encoding) is the last build's.
    let same_source: Vec<bool> =
        files.iter().zip(&previous_entries).map(|(f, e)| e.is_some_and(|e| e.source == source_digest(db, *f))).collect();
    let (unchanged, changed): (Vec<_>, Vec<_>) = files.iter().zip(&same_source).partition(|(_, same)| **same);
    let unchanged: Vec<SourceFile> = unchanged.into_iter().map(|(f, _)| *f).collect();
    let changed: Vec<SourceFile> = changed.into_iter().map(|(f, _)| *f).collect();
    let firewall = previous.is_some_and(|p| p.layout() == layout_digest(db, files, settings_digest));
    // Phase 1: everything that needs a tree, file by file, in chunks with the trees evicted
    // between chunks. Cross-module queries read only these facts, so after this phase no
    // file is parsed again (evaluating both together re-parsed files whose trees a
    // cross-module query had needed early and the LRU had dropped since). A file whose
    // source is unchanged since the last build needs only what cross-module stages read.
    let per_file = |db: &crate::db::Database, file: SourceFile, all: bool| {
        imports(db, file);
        module_scope(db, file);
        crate::stages::patterns::pattern_tags(db, file);
        if all {
            syntax_errors(db, file);
            outline(db, file);
            module_docstring(db, file);
            module_summary(db, file);
        }
    };
    for chunk in changed.chunks(CHUNK_FILES) {
        for_each_file(workspace, pool, chunk, |db, file| per_file(db, file, true));
        salsa::Database::trigger_lru_eviction(&mut workspace.db);
    }
    let held = firewall
        && for_each_file(workspace, pool, &changed, |db, file| {
            previous.and_then(|p| p.entry(file.path(db))).is_some_and(|e| e.facts == facts_digest(db, file))
        })
        .into_iter()
        .all(|same| same);
    tracing::debug!(elapsed = ?phase_started.elapsed(), changed = changed.len(), firewall = held, "changed files evaluated");
    // Behind the firewall no file's loads changed: the previous load cycles hold.
    workspace.set_known_load_cycles(previous.filter(|_| held).map(|p| std::sync::Arc::new(p.load_cycles().clone())));
    let fans: Vec<Option<Fan>> = if held {
        previous_entries.iter().map(|e| e.map(|e| e.fan)).collect()
    } else {
        for chunk in unchanged.chunks(CHUNK_FILES) {
            for_each_file(workspace, pool, chunk, |db, file| per_file(db, file, false));
            salsa::Database::trigger_lru_eviction(&mut workspace.db);
        }
        for_each_file(workspace, pool, files, |db, file| Some(module_fan(db, file)))
    };
    tracing::debug!(elapsed = ?phase_started.elapsed(), "cross-module stages evaluated");
    // Phase 2: each file's `rows` key — behind the firewall, only for changed files: the
    // others' keys are their previous ones.
    let was_parent: Vec<bool> = previous_entries.iter().map(|e| e.is_some_and(|e| e.labels.overlay.is_parent())).collect();
    let key_file = |db: &crate::db::Database, file: SourceFile, fan: Fan, parent: bool| {
        let labels = labels(db, file, fan, false, parent, settings, joins);
        let mut inputs = rows_inputs(db, file, fan, &labels);
        inputs.push(("joins", joins.digest_of(file.path(db))));
        let key = StageCache::key("rows", ROWS_VERSION, file.path(db), &inputs);
        (inputs, key, labels)
    };
    let mut keyed: Vec<Option<RowsKey>> = {
        let items: Vec<(SourceFile, bool, Fan, bool)> = files
            .iter()
            .zip(&same_source)
            .zip(&fans)
            .zip(&was_parent)
            .map(|(((f, same), fan), parent)| (*f, *same, fan.unwrap_or_default(), *parent))
            .collect();
        for_each_item(workspace, pool, &items, |db, &(file, same_source, fan, parent)| {
            progress.inc(1);
            if held && same_source {
                return None;
            }
            Some(key_file(db, file, fan, parent))
        })
    };
    // The packages above every module selected for itself get overlays too (mypy reads a stub
    // package only through its `__init__.pyi`): re-key the modules whose parent status changed.
    {
        let db = &workspace.db;
        let decision = |i: usize| keyed[i].as_ref().map(|k| &k.2.overlay).or(previous_entries[i].map(|e| &e.labels.overlay));
        let mut parents: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for (i, file) in files.iter().enumerate() {
            if decision(i).is_some_and(|d| d.selected_for_itself()) {
                let module = file.module(db);
                let mut parts: Vec<&str> = module.split('.').collect();
                while parts.len() > 1 {
                    parts.pop();
                    parents.insert(parts.join("."));
                }
            }
        }
        let changed: Vec<(usize, SourceFile, Fan, bool)> = files
            .iter()
            .enumerate()
            .filter_map(|(i, file)| {
                let wanted = file.is_package(db) && parents.contains(file.module(db));
                let has = decision(i).is_some_and(|d| d.is_parent());
                (wanted != has).then(|| (i, *file, fans[i].unwrap_or_default(), wanted))
            })
            .collect();
        let rekeyed = for_each_item(workspace, pool, &changed, |db, &(_, file, fan, parent)| key_file(db, file, fan, parent));
        for ((i, ..), key) in changed.iter().zip(rekeyed) {
            keyed[*i] = Some(key);
        }
    }
    // Phase 3: render the rows whose key changed.
    let reused: Vec<Option<&RowEntry>> = previous_entries
        .iter()
        .zip(&keyed)
        .map(|(entry, keyed)| match keyed {
            None => *entry,
            Some((_, key, _)) => entry.filter(|e| e.key == *key),
        })
        .collect();
    let to_render: Vec<(SourceFile, &RowsKey, Fan)> = files
        .iter()
        .zip(&keyed)
        .zip(&reused)
        .zip(&fans)
        .filter(|((_, reused), _)| reused.is_none())
        .map(|(((f, keyed), _), fan)| (*f, keyed.as_ref().expect("a key for every file to render"), fan.unwrap_or_default()))
        .collect();
    let mut rendered = for_each_item(workspace, pool, &to_render, |db, &(file, (inputs, key, labels), fan)| {
        let output = FileOutput::render(
            *key,
            source_digest(db, file),
            facts_digest(db, file),
            fan,
            labels.clone(),
            module_record(db, file),
            &outline(db, file).symbols,
            &imports(db, file).imports,
            resolved_imports(db, file),
            syntax_errors(db, file).first,
            crate::stages::validate::module_warnings(db, file).clone(),
            joins.of(file.path(db)),
        );
        if let Some(cache) = cache {
            cache.note_rerun("rows", file.path(db), inputs, *key, output.output_hash);
        }
        output
    })
    .into_iter();
    let outputs: Vec<FileOutput> = reused
        .iter()
        .map(|reused| match reused {
            Some(entry) => {
                if let Some(cache) = cache {
                    cache.note_reused("rows");
                }
                FileOutput { entry: (*entry).clone(), rendered: None, output_hash: [0; 32] }
            }
            None => rendered.next().expect("one rendering per file to render"),
        })
        .collect();
    tracing::debug!(elapsed = ?phase_started.elapsed(), rendered = to_render.len(), "rows rendered");
    (outputs, held)
}

/// Run `f` for every file on the worker pool, each worker with its own database clone
/// (`Database` is `Send` but not `Sync`: workers clone it through a mutex). Results keep the
/// order of `files`.
fn for_each_file<T: Send>(
    workspace: &Workspace,
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    f: impl Fn(&crate::db::Database, SourceFile) -> T + Sync,
) -> Vec<T> {
    for_each_item(workspace, pool, files, |db, file| f(db, *file))
}

/// [`for_each_file`] over any items.
fn for_each_item<I: Sync, T: Send>(
    workspace: &Workspace,
    pool: &rayon::ThreadPool,
    items: &[I],
    f: impl Fn(&crate::db::Database, &I) -> T + Sync,
) -> Vec<T> {
    let db = std::sync::Mutex::new(workspace.db.clone());
    pool.install(|| items.par_iter().map_init(|| db.lock().unwrap().clone(), |db, item| f(db, item)).collect())
}

/// Render every artifact; `outputs` are sorted by path.
fn render(outputs: &[FileOutput], previous: Option<&PreviousRows>, problems: &[Problem]) -> Result<Vec<Artifact>> {
    let counts = [outputs.len(), outputs.iter().map(|o| o.entry.symbols).sum(), outputs.iter().map(|o| o.entry.imports).sum()];
    let parts = assemble(outputs, previous)?;
    let mut artifacts: Vec<Artifact> = parts
        .into_iter()
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

/// `tags.json`: each tag with the sorted paths of its modules.
fn render_tags(outputs: &[FileOutput]) -> Artifact {
    let mut by_tag: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for output in outputs {
        for tag in &output.entry.labels.tags {
            by_tag.entry(tag).or_default().push(&output.entry.path);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&by_tag).expect("tags serialize");
    bytes.push(b'\n');
    Artifact::new("tags.json", by_tag.len(), bytes)
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
    let generated = for_each_item(workspace, pool, &to_generate, |db, (file, path)| {
        let text = crate::stages::stub::overlay_stub(db, *file);
        let unchanged = last.and_then(|l| l.artifact(path)).filter(|(_, _, hash)| *hash == *blake3::hash(text.as_bytes()).as_bytes());
        match unchanged {
            Some((rows, bytes, hash)) if last.is_some_and(|l| l.intact(out, path).yes()) => Artifact::on_disk(path.clone(), rows, bytes, hash),
            _ => Artifact::new(path.clone(), 1, text.as_bytes().to_vec()),
        }
    });
    let mut artifacts: Vec<Artifact> = reused.into_iter().chain(generated).collect();
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    artifacts
}

/// The bytes of an artifact, wherever they are.
fn artifact_bytes<'a>(out: &std::path::Path, artifact: &'a Artifact) -> Result<std::borrow::Cow<'a, [u8]>> {
    Ok(match &artifact.body {
        Body::Contents(bytes) => std::borrow::Cow::Borrowed(bytes.as_slice()),
        Body::OnDisk => std::borrow::Cow::Owned(std::fs::read(out.join(&artifact.path)).with_context(|| format!("cannot read {}", artifact.path))?),
        Body::Linked(source) | Body::Staged(source) => {
            std::borrow::Cow::Owned(std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?)
        }
    })
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
        let results = for_each_file(workspace, pool, chunk, |db, file| {
            let tree = crate::stages::parse::parsed_module(db, file);
            sink.stage(file.path(db), tree.root(), crate::db::source_text(db, file))
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
        salsa::Database::trigger_lru_eviction(&mut workspace.db);
    }
    artifacts.extend(sink.into_staged().into_iter().map(|t| Artifact {
        path: t.path,
        rows: 1,
        bytes: t.bytes,
        hash: t.hash,
        body: Body::Staged(t.staged),
    }));
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(artifacts)
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
        for dir in std::iter::once(config.out.as_path()).chain(kept) {
            let file = dir.join(path);
            if std::fs::remove_file(&file).is_ok() {
                let mut parent = file.parent();
                while let Some(p) = parent.filter(|p| p.starts_with(dir) && *p != dir) {
                    if std::fs::remove_dir(p).is_err() {
                        break;
                    }
                    parent = p.parent();
                }
            }
        }
    }
}

/// The artifacts [`render_graphs`] writes.
const GRAPH_ARTIFACTS: [&str; 3] = ["graphs/imports.json", "graphs/imports_runtime.json", "graphs/cycles.json"];

/// The artifact `name` of the last build: as it is in `out` when intact there, else linked
/// from the cache's copy `kept` when intact there.
fn previous_artifact(out: &std::path::Path, kept: &std::path::Path, last: &BuildRecord, name: &str) -> Option<Artifact> {
    let (rows, bytes, hash) = last.artifact(name)?;
    if last.intact(out, name).yes() {
        return Some(Artifact::on_disk(name, rows, bytes, hash));
    }
    last.intact(kept, name).yes().then(|| Artifact::linked(name, rows, bytes, hash, kept.join(name)))
}

/// Keep the artifacts now in `out` in the cache's `kept` directory: a hard link when both are
/// on one file system (free), else a copy of those that changed (a copy is verified by its
/// hash whenever it is used). Returns whether anything was linked or copied (a new link
/// changes the file's ctime, so its recorded stat is stale).
fn keep_artifacts(out: &std::path::Path, kept: &std::path::Path, artifacts: &[Artifact]) -> Result<bool> {
    // Independent files (hundreds of overlays on a large tree): linked in parallel.
    let linked: Vec<bool> = artifacts
        .par_iter()
        .map(|artifact| -> Result<bool> {
            let (from, to) = (out.join(&artifact.path), kept.join(&artifact.path));
            let (Ok(source), target) = (std::fs::metadata(&from), std::fs::metadata(&to)) else { return Ok(false) };
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt as _;
                if target.as_ref().is_ok_and(|t| (t.dev(), t.ino()) == (source.dev(), source.ino())) {
                    return Ok(false);
                }
            }
            if matches!(artifact.body, Body::OnDisk) && target.as_ref().is_ok_and(|t| t.len() == source.len()) {
                return Ok(false);
            }
            link_atomic(&from, &to)?;
            Ok(true)
        })
        .collect::<Result<_>>()?;
    Ok(linked.into_iter().any(|l| l))
}

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

/// Write the artifacts, except those the output directory already holds.
fn write_outputs(config: &Config, artifacts: &[Artifact]) -> Result<()> {
    let out = &config.out;
    if config.out_is_default {
        write_atomic(&out.join(".gitignore"), b"# Written by codeintel-enrich.\n*\n")?;
    }
    // Many small artifacts (overlays) are written in parallel: each write is independent.
    artifacts.par_iter().try_for_each(|artifact| match &artifact.body {
        Body::Contents(contents) => write_atomic(&out.join(&artifact.path), contents),
        Body::Linked(source) => link_atomic(source, &out.join(&artifact.path)),
        Body::Staged(staged) => std::fs::rename(staged, out.join(&artifact.path))
            .with_context(|| format!("cannot move {} into place", artifact.path)),
        Body::OnDisk => Ok(()),
    })
}

/// Create the output directory and take its lock (on the marker file): builds writing one
/// output directory, even with different caches, take turns — from before one reads the
/// previous artifacts (it copies rows out of them) until its own are written.
fn lock_output_dir(config: &Config) -> Result<std::fs::File> {
    let out = &config.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    write_atomic(&out.join(OUTPUT_MARKER), b"codeintel-enrich output directory: never scanned\n")?;
    let marker = std::fs::File::open(out.join(OUTPUT_MARKER))
        .with_context(|| format!("cannot open {}", out.join(OUTPUT_MARKER).display()))?;
    marker.lock().with_context(|| format!("cannot lock {}", out.display()))?;
    remove_stale_temporaries(out);
    Ok(marker)
}

/// Remove temporary files that a killed build left behind (`write_atomic` names them `.tmp-*`).
/// The output directory's lock held by this build means no other build is writing them now.
fn remove_stale_temporaries(dir: &std::path::Path) {
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn progress_bar(config: &Config, total: usize) -> ProgressBar {
    if !config.progress || total < 200 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} modules {wide_bar} {elapsed}")
            .expect("valid progress template"),
    );
    bar
}
