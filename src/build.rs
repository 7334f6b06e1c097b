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
use crate::stat::{StatCache, StatEntry};
use crate::db::Project;
use crate::stages::graph::{Fan, module_fan};
use crate::stages::tags::{Labels, TagSettings};
use crate::stages::imports::imports;
use crate::stages::resolve::resolved_imports;
use crate::stages::outline::outline;
use crate::stages::parse::syntax_errors;
use crate::stages::record::{module_docstring, module_record, module_summary};
use crate::stages::scope::module_scope;
use crate::rows::{
    CrossModule, FileOutput, GraphFact, GraphFacts, PreviousRows, ROWS_VERSION, RowEntry, RowIndex, labels, layout_base, layout_digest,
    rows_inputs, source_digest,
};
use crate::stages::exports::exports_face;
use crate::sinks;
use crate::writers::write_atomic;

/// Files evaluated between two LRU evictions of parse trees: bounds the memory held by trees
/// (a chunk's trees all live until its end; see ARCHITECTURE.md for the measurements).
const CHUNK_FILES: usize = 256;

/// Files whose rows are rendered between two hand-overs to the row artifacts' writers, when
/// the rows are streamed (a cold build: see [`crate::sinks::rows::RowStreams`]).
const STREAM_FILES: usize = 1024;

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

/// Run a build with a fresh one-shot database, in a process that exits after it: what the
/// build holds at its end is not freed (see [`Workspace::one_shot`]). A process that goes on
/// builds in a [`Workspace::default`] with [`build_in`].
pub fn build(config: &Config) -> Result<BuildReport> {
    build_in(&mut Workspace::one_shot(), config)
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
            // Links a killed build left half made in the kept artifacts (the cache's lock is
            // held: no other build is making them now).
            if !config.dry_run {
                remove_stale_temporaries(&cache.artifacts_dir());
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
    let stats = StatCache::new(cache.and_then(|c| c.stat_entries()));
    let loaded: Vec<Result<(LoadedFile, StatEntry), Problem>> = pool.install(|| {
        discovery
            .files
            .par_iter()
            .map(|file| {
                let stub = discovery.stubs.get(&file.rel_path).and_then(|path| read_stub(path));
                let compiled = discovery.extensions.get(&file.rel_path).cloned();
                load(file, discovery.stat_taken_ns, src_layout, config.max_file_bytes, &stats).map(|(mut loaded, entry)| {
                    loaded.stub = stub;
                    loaded.compiled = compiled;
                    (loaded, entry)
                })
            })
            .collect()
    });
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
    // What the cache will record of the stat entries: the few an edit re-took.
    let stats_update = stats.update(&stat_entries);
    drop(stats);
    let files_read = files_to_sync.iter().filter(|f| f.text.is_some()).count();
    tracing::debug!(files_read, "stat fast path");
    if let Some(cache) = cache {
        cache.set_files_read(files_read, files_to_sync.len());
    }
    let settings = TagSettings::new(config);
    // External inputs: read and validated now, before anything is written.
    // (Only when some input is joined: 101k paths copied into a set were ~20 ms of every build
    // of the 100k-module tree, the no-op's included.)
    let module_paths: std::collections::BTreeSet<String> = match config.inputs.any() {
        true => files_to_sync.iter().map(|f| f.path.clone()).collect(),
        false => Default::default(),
    };
    let joins = crate::inputs::joins::load(&config.inputs, &config.root, &module_paths)?;
    problems.extend(joins.problems.iter().cloned());
    let settings_digest = format!("{} inputs={}", settings.digest(), joins.digest);
    let outputs_asked = format!(
        "{settings_digest} slices={}:{:?} ast={} parquet={} database={}",
        config.emit_slices, config.slices_filter, config.emit_ast, config.parquet, config.database
    );
    let build_key = build_key(&files_to_sync, &problems, &config.target, &outputs_asked);
    workspace.set_target(&config.target);
    let queries: Vec<(String, String)> = config.tags.queries.iter().map(|q| (q.tag.clone(), q.source.clone())).collect();
    let compiled: Option<Arc<dyn crate::db::PatternTagger>> = if queries.is_empty() {
        None
    } else {
        Some(Arc::new(crate::stages::patterns::PatternSet::compile(&queries).map_err(|e| anyhow::anyhow!("tags YAML: {e}"))?))
    };
    workspace.set_user_patterns(compiled);
    // The last build's record (7.5 MB on the 100k-module tree) decodes while the inputs sync.
    let (files, last_build) = std::thread::scope(|scope| {
        let record = scope.spawn(|| cache.and_then(StageCache::last_build));
        let files = workspace.sync(files_to_sync);
        (files, record.join().expect("decoding the build record does not panic"))
    });
    phase("load", &mut timings);

    // The whole-build shortcut: same inputs as the last complete build, artifacts intact.
    if let Some(cache) = cache.filter(|_| !config.dry_run)
        && let Some(last) = last_build.as_ref().filter(|last| last.key == build_key)
        && let Some(artifacts) = sinks::artifacts_intact(&config.out, last)
        && sinks::database::database_intact(config, last)
    {
        let mut last = last.clone();
        phase("verify", &mut timings);
        let hashed = artifacts.iter().any(|a| !matches!(a.body, crate::writers::Body::OnDisk { vouched: true }));
        let (kept_any, set_aside) = sinks::keep_artifacts(&config.out, &cache.artifacts_dir(), &artifacts)?;
        let written_ns = crate::stat::now_ns();
        sinks::remove_set_aside(set_aside);
        if hashed || kept_any {
            let window_ns = crate::stat::artifact_window_ns(&config.out);
            last.artifact_stats = sinks::artifact_stats(&config.out, &artifacts, Some(&last), window_ns, written_ns);
            cache.update_build_record(&last)?;
        }
        // Files re-read (new stats, or racy ones) get entries the next build can trust.
        if files_read > 0 {
            cache.record_stats(&stats_update)?;
        }
        if let Some(log) = cache.reuse_build(timings.clone()) {
            mark_finished(config);
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

    // The output directory's racy window, measured while the build evaluates and writes.
    let mut window = (!config.dry_run && cache.is_some()).then(|| crate::stat::WindowProbe::start(&config.out));
    // The previous build's rows, when its artifacts are intact: unchanged files are copied.
    // Decoding them is one thread's work (0.2-0.3 s on the 100k-module tree): the module index,
    // which nearly every edit's resolutions ask for first and which one worker builds while the
    // others wait (~0.09 s there), is built beside it on a handle of the database.
    let previous = cache.zip(last_build.as_ref()).and_then(|(cache, last)| {
        let db = workspace.db.clone();
        std::thread::scope(|scope| {
            let indexing = std::thread::Builder::new()
                .name("module-index".into())
                .spawn_scoped(scope, move || {
                    crate::stages::resolve::module_index(&db, Project::get(&db));
                })
                .expect("a thread can be started");
            let previous = RowIndex::from_parts(cache.row_index()?)
                .and_then(|index| PreviousRows::load(&config.out, &cache.artifacts_dir(), index, last));
            indexing.join().expect("building the module index does not panic");
            previous
        })
    });
    phase("previous", &mut timings);
    // The database is opened while the build evaluates (opening reads its catalog), and
    // before anything is written: one that another process holds stops the build then.
    let opening = (config.database && !config.dry_run).then(|| {
        let out = config.out.clone();
        std::thread::Builder::new()
            .name("database-open".into())
            .spawn(move || {
                let started = Instant::now();
                sinks::database::Database::open(&out, &crate::cache::engine_fingerprint()).map(|db| (db, started.elapsed().as_secs_f64()))
            })
            .expect("a thread can be started")
    });
    let progress = progress_bar(config, files.len());
    if let Some(cache) = cache {
        for (stage, subject, inputs) in &joins.nodes {
            cache.get_or_compute(stage, crate::inputs::joins::JOINS_VERSION, subject, inputs.clone(), || ());
        }
    }
    let labelling = Labelling { settings: &settings, joins: &joins, digest: &settings_digest };
    let stream_to = (!config.dry_run).then_some(config.out.as_path());
    let Evaluated { outputs, layout, held: firewall_held, import_graph, graph_facts, streamed, evaluated } =
        evaluate(workspace, pool, &files, &progress, cache, previous.as_ref(), &labelling, stream_to, !config.emit_ast);
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

    // What the rest of the build reads of the database: a one-shot build drops it once the
    // sinks that read it have rendered (see `sinks::Context::release_memos`).
    let subjects: std::collections::BTreeSet<String> = match cache {
        Some(_) => files.iter().map(|f| f.path(&workspace.db).clone()).collect(),
        None => Default::default(),
    };
    let load_cycles = cache.map(|_| std::sync::Arc::clone(crate::stages::exports::load_cycles(&workspace.db, Project::get(&workspace.db))));
    let modules: Vec<String> = files.iter().map(|f| f.module(&workspace.db).clone()).collect();
    let mut sinks = sinks::Context {
        modules: &modules,
        workspace,
        pool,
        config,
        files: &files,
        outputs: &outputs,
        problems: &problems,
        previous: previous.as_ref(),
        cache,
        last: last_build.as_ref(),
        firewall_held,
        import_graph: import_graph.as_ref(),
        batches: Default::default(),
        streamed_rows: streamed,
        // The memos are worth freeing when the build evaluated much of the tree (a cold build,
        // a large checkout); an edit's are a few files', and freeing every file's inputs with
        // them is work it need not do (on the 100k tree no difference measured either way).
        release_memos: evaluated * 4 >= files.len(),
    };
    let artifacts = sinks::render_all(&mut sinks, |name| phase(name, &mut timings))?;
    let batches = std::mem::take(&mut sinks.batches);
    sinks::release_free_memory();
    report.artifacts = artifacts
        .iter()
        .map(|a| ArtifactSummary { path: a.path.clone(), rows: a.rows, bytes: a.bytes })
        .collect();
    report.problems = problems;
    let mut store = None;
    if !config.dry_run {
        let database = opening.map(|opening| opening.join().expect("opening the database does not panic")).transpose()?;
        // Opening ran beside the evaluation; its time is the database's too (replaying a
        // write-ahead log is most of it).
        let database = database.map(|(database, seconds)| {
            timings.push(("database open".to_string(), seconds));
            database
        });
        match database {
            Some(database) => {
                let inputs = sinks::database::Store { config, artifacts: &artifacts, outputs: &outputs, batches: &batches };
                store = Some((database, inputs.prepare(previous.as_ref(), last_build.as_ref())?));
            }
            None => sinks::database::remove_database(&config.out)?,
        }
    }
    let database_digest = store.as_ref().map(|(_, prepared)| prepared.digest().to_string());
    // The database is updated while the outputs are written (unless it reads files yet to be
    // linked into place) and the cache commits; the build is recorded only once all three
    // succeeded.
    std::thread::scope(|scope| -> Result<()> {
        // The cache's entries go into its write transaction while the outputs are written.
        let early = cache.filter(|_| !config.dry_run).map(|cache| {
            std::thread::Builder::new()
                .name("cache".into())
                .spawn_scoped(scope, move || cache.write_early())
                .expect("a thread can be started")
        });
        let update_waits = store.as_ref().is_some_and(|(_, prepared)| prepared.reads_outputs());
        let mut written_ns = 0;
        let mut write = |timings: &mut Vec<(String, f64)>| -> Result<()> {
            let set_aside = sinks::write_all(config, cache, last_build.as_ref(), &artifacts)?;
            written_ns = crate::stat::now_ns();
            phase("write", timings);
            // Older kept copies are freed while the build is recorded.
            if !set_aside.is_empty() {
                std::thread::Builder::new()
                    .name("set-aside".into())
                    .spawn_scoped(scope, move || sinks::remove_set_aside(set_aside))
                    .expect("a thread can be started");
            }
            Ok(())
        };
        if update_waits {
            write(&mut timings)?;
        }
        let updating = store.map(|(database, prepared)| {
            // Named, so profiles tell its work from the main thread's.
            std::thread::Builder::new()
                .name("database".into())
                .spawn_scoped(scope, move || {
                    let started = Instant::now();
                    prepared.run(database).map(|()| started.elapsed().as_secs_f64())
                })
                .expect("a thread can be started")
        });
        if !config.dry_run && !update_waits {
            write(&mut timings)?;
        }
        let updated = move || -> Result<Vec<(String, f64)>> {
            if let Some(updating) = updating {
                let seconds = updating.join().expect("the database update does not panic")?;
                timings.push(("database".to_string(), seconds));
            }
            Ok(timings)
        };
        let Some(cache) = cache else {
            updated()?;
            return Ok(());
        };
        sinks::record_writes(cache, &artifacts);
        if let Some(digest) = &database_digest {
            cache.record_artifact(crate::writers::duckdb::DATABASE_FILE, *blake3::hash(digest.as_bytes()).as_bytes(), cache.recomputed_so_far());
        }
        if config.dry_run {
            report.run_log = Some(cache.plan(CACHED_STAGES, &subjects)?);
            return Ok(());
        }
        let sizes = artifacts
            .iter()
            .map(|a| crate::explain::ArtifactSize { path: a.path.clone(), rows: a.rows, bytes: a.bytes })
            .collect();
        let load_cycles = load_cycles.unwrap_or_default();
        let load_cycles = &*load_cycles;
        if let (Some(previous), Some(last)) = (previous.as_ref(), last_build.as_ref()) {
            let artifacts = last.artifacts.iter().map(|a| a.0.clone()).chain([crate::writers::duckdb::DATABASE_FILE.to_string()]);
            cache.set_previously(previous.paths().map(str::to_string).collect(), artifacts.collect());
        }
        let early = early.map(|early| early.join().expect("writing the cache does not panic")).transpose()?;
        let log = cache.finish(CACHED_STAGES, &subjects, updated, sizes, early)?;
        // After the cache's commit: the racy window since the writes has mostly passed.
        let window_ns = window.as_mut().map_or(crate::stat::RACY_NANOS, crate::stat::WindowProbe::window_ns);
        let artifact_stats = sinks::artifact_stats(&config.out, &artifacts, last_build.as_ref(), window_ns, written_ns);
        cache.record_build(
            BuildRecord {
                key: build_key,
                artifacts: artifacts.iter().map(|a| (a.path.clone(), a.rows, a.bytes, a.hash)).collect(),
                modules: report.modules,
                symbols: report.symbols,
                imports: report.imports,
                syntax_error_modules: report.syntax_error_modules,
                problems: report.problems.clone(),
                artifact_stats,
                database: database_digest.clone(),
            },
            RowIndex::update(layout, load_cycles, &outputs.iter().map(|o| &*o.entry).collect::<Vec<_>>(), previous.as_ref().map(PreviousRows::entries)),
            &stats_update,
            graph_facts,
        )?;
        tracing::debug!(elapsed = ?started.elapsed(), "build recorded");
        report.run_log = Some(log);
        Ok(())
    })?;
    if !config.dry_run {
        mark_finished(config);
    }
    // A one-shot build's process exits next: freeing its largest values (every file's rows
    // entry, the previous build's, the import graph) is left to the operating system — on the
    // 100k-module tree an edit spent ~0.2 s in those frees after its work was done.
    if workspace.is_one_shot() {
        std::mem::forget((outputs, previous, last_build, import_graph, files, modules, subjects, batches, artifacts));
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

/// The text of a `.pyi` stub beside a source (UTF-8 as stubs must be), or `None` when it
/// cannot be read — the module then simply has no stub.
fn read_stub(path: &std::path::Path) -> Option<Arc<str>> {
    let bytes = std::fs::read(path).ok()?;
    String::from_utf8(bytes).ok().map(Arc::from)
}

/// Read, size-check and decode one file — or, when the stat cache vouches for the stat the
/// walk took of it (at or after `taken_ns`), take its hash and encoding from there without
/// reading it (see [`crate::stat`]).
fn load(
    file: &FoundFile,
    taken_ns: i128,
    src_layout: bool,
    max_file_bytes: u64,
    stats: &StatCache,
) -> Result<(LoadedFile, StatEntry), Problem> {
    let problem = |kind, message: String| Problem::new(file.rel_path.clone(), kind, message);
    // Checked on the stat, and again on the bytes read (the file may have grown since).
    let size_ok = |len: u64| {
        if len > max_file_bytes {
            return Err(problem(ProblemKind::Oversized, format!("{len} bytes is over --max-file-bytes {max_file_bytes}")));
        }
        Ok(())
    };
    let stat = file.stat;
    size_ok(stat.size)?;
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

/// A file's `rows` node: its named inputs, its key, the labels its rows show, and what its
/// entry records of the other modules.
struct RowsKey {
    inputs: Vec<(&'static str, String)>,
    key: [u8; 32],
    labels: Labels,
    cross: CrossModule,
}

/// Record the `exports(path)` node of `file`: keyed by its scope, the target, what its exports
/// asked of the module index (each name probed, with what the index has under it), what it
/// reads of the load graph (its load-cycle companions, a package's submodule attributes) and
/// the faces of the modules it read; its output is its own face. When the faces it read
/// changed, the reason names their `exports` nodes.
fn note_exports(
    cache: &StageCache,
    db: &crate::db::Database,
    file: SourceFile,
    cross: &CrossModule,
    target: &str,
    companions: &rustc_hash::FxHashMap<&str, [u8; 32]>,
    previous: Option<&PreviousRows>,
) {
    let index = crate::stages::resolve::module_index(db, Project::get(db));
    let mut reads = blake3::Hasher::new();
    let mut upstream = Vec::new();
    for module in &cross.reads {
        let Some(read) = index.file(module) else { continue };
        let face = exports_face(db, read);
        update_parts(&mut reads, [module.as_str()]);
        reads.update(&face);
        if previous.and_then(|p| p.entry(read.path(db))).is_none_or(|e| e.face != face) {
            upstream.push(format!("exports({})", read.path(db)));
        }
    }
    let scope = blake3::hash(&rmp_serde::to_vec(module_scope(db, file)).expect("stage outputs serialize"));
    let mut loads = blake3::Hasher::new();
    loads.update(&companions.get(file.module(db).as_str()).copied().unwrap_or_default());
    let exports = crate::stages::exports::exports(db, file);
    loads.update(&exports.submodules.unwrap_or_default());
    let mut probed = blake3::Hasher::new();
    for name in &exports.probes {
        let place = match index.resolve(name) {
            crate::stages::resolve::Resolved::File(f) => f.path(db).as_str(),
            crate::stages::resolve::Resolved::Namespace => "namespace",
            crate::stages::resolve::Resolved::Missing => "missing",
            crate::stages::resolve::Resolved::External => "external",
        };
        update_parts(&mut probed, [name.as_str(), place]);
    }
    let inputs = vec![
        ("scope", scope.to_hex().to_string()),
        ("target", target.to_string()),
        ("index", probed.finalize().to_hex().to_string()),
        ("loads", loads.finalize().to_hex().to_string()),
        ("reads", reads.finalize().to_hex().to_string()),
    ];
    let key = StageCache::key("exports", crate::stages::exports::EXPORTS_VERSION, file.path(db), &inputs);
    cache.note_node("exports", file.path(db), &inputs, key, cross.face, "reads", upstream);
}

/// Evaluate every file: per-file stages, cross-module stages, and the rows of each file —
/// rendered, or reused from the previous artifacts when its `rows` key is unchanged.
///
/// The graph firewall: when the module layout is the previous build's and every file whose
/// source changed has the same graph digest (import edges, loads, registrations), the import
/// graph, fans and load cycles are the last build's; a file's rows key can then change only if
/// its source changed or a module whose exports it read changed its face, so only those files
/// are keyed (found by following the recorded reads from the changed faces) and the others
/// are not evaluated at all — a comment edit costs its file, a new public name its file and
/// its star importers. See ARCHITECTURE.md. `release_texts`: a one-shot build lets go of the
/// loaded texts once the cross-module stages are evaluated (the AST sink reads them all again).
#[allow(clippy::too_many_arguments)]
fn evaluate(
    workspace: &mut Workspace,
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    progress: &ProgressBar,
    cache: Option<&StageCache>,
    previous: Option<&PreviousRows>,
    labelling: &Labelling<'_>,
    stream_to: Option<&std::path::Path>,
    release_texts: bool,
) -> Evaluated {
    let Labelling { settings, joins, digest: settings_digest } = *labelling;
    let phase_started = Instant::now();
    // A one-shot build drops the module scopes before the rows render: their reads are tracked.
    if workspace.is_one_shot() {
        crate::stages::scope::track_module_scopes(&mut workspace.db);
    }
    let db = &workspace.db;
    let previous_entries: Vec<Option<&std::sync::Arc<RowEntry>>> =
        files.iter().map(|f| previous.and_then(|p| p.entry(f.path(db)))).collect();
    // Files whose source (content, module name, package flag, encoding) is the last build's.
    let same_source: Vec<bool> =
        files.iter().zip(&previous_entries).map(|(f, e)| e.is_some_and(|e| e.source == source_digest(db, *f))).collect();
    let (unchanged, changed): (Vec<_>, Vec<_>) = files.iter().zip(&same_source).partition(|(_, same)| **same);
    let unchanged: Vec<SourceFile> = unchanged.into_iter().map(|(f, _)| *f).collect();
    let changed: Vec<SourceFile> = changed.into_iter().map(|(f, _)| *f).collect();
    let base = layout_base(db, settings_digest);
    let layout = layout_digest(db, files, settings_digest);
    let firewall = previous.is_some_and(|p| p.layout() == layout);
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
        workspace.for_each_file(pool, chunk, |db, file| per_file(db, file, true));
        salsa::Database::trigger_lru_eviction(&mut workspace.db);
    }
    // The graph firewall: the layout is the last build's and every changed file has the same
    // import edges, loads and registrations, so the import graph, every fan, the load cycles
    // and every resolution are the last build's.
    let fresh: Vec<Option<GraphFact>> = workspace.for_each_file(pool, &changed, |db, file| {
        let fact = GraphFact::of(db, file);
        let same = previous.and_then(|p| p.entry(file.path(db))).is_some_and(|e| e.graph == fact.digest());
        (!same).then_some(fact)
    });
    let held = firewall && fresh.iter().all(Option::is_none);
    let mut fresh: Vec<GraphFact> = fresh.into_iter().flatten().collect();
    // Each file's index by path: the layout and edges paths find files by their facts' paths.
    let position: rustc_hash::FxHashMap<&str, usize> = match held {
        true => rustc_hash::FxHashMap::default(),
        false => files.iter().enumerate().map(|(i, f)| (f.path(&workspace.db).as_str(), i)).collect(),
    };
    // Files to key besides the changed ones (the edges and layout paths: resolutions, fans,
    // load cycles or package closures changed).
    let mut also_key: Vec<bool> = vec![false; files.len()];
    // The edges path: the layout held, but some changed files' import edges or loads did not
    // (their registrations did: those change other files' resolutions). The graph, the load
    // cycles and the closures' reach are rebuilt from the recorded facts of the others.
    let mut recorded: Option<GraphFacts> = match (previous, cache) {
        (Some(previous), Some(cache)) if !held => {
            cache.graph_facts().and_then(GraphFacts::from_parts).filter(|facts| facts.layout == previous.layout() && facts.base == base)
        }
        _ => None,
    };
    // The layout path: files were added or removed. The files whose resolutions may differ
    // are those that asked the index about a name whose place in it changed (each entry
    // records the names its file probed), and the packages above such a name; their graph
    // facts are recomputed, and the edges path goes on from there.
    let mut moved: Option<LayoutChange> = None;
    if !firewall && let Some(facts) = recorded.take() {
        if let Some((aligned, change)) = layout_change(&workspace.db, files, facts, layout) {
            let db = &workspace.db;
            let names: std::collections::HashSet<u32> = change.names.iter().map(|n| crate::digest::NameSet::hash(n)).collect();
            let refreshed: std::collections::HashSet<&str> = fresh.iter().map(|g| g.path.as_str()).collect();
            let mut hits: Vec<SourceFile> = Vec::new();
            for (i, (file, entry)) in files.iter().zip(&previous_entries).enumerate() {
                if change.added.contains(file.path(db).as_str()) && !refreshed.contains(file.path(db).as_str()) {
                    hits.push(*file);
                } else if entry.is_some_and(|e| e.probes.meets(&names)) {
                    also_key[i] = true;
                    if !refreshed.contains(file.path(db).as_str()) {
                        hits.push(*file);
                    }
                }
            }
            let index = crate::stages::resolve::module_index(db, Project::get(db));
            for name in &change.names {
                let ancestors = crate::stages::exports::with_ancestors(name);
                for package in ancestors[..ancestors.len() - 1].iter().filter_map(|a| index.file(a)) {
                    also_key[position[package.path(db).as_str()]] = true;
                }
            }
            tracing::debug!(names = change.names.len(), removed = change.removed.len(), probed = hits.len(), "layout path");
            fresh.extend(workspace.for_each_file(pool, &hits, |db, file| GraphFact::of(db, file)));
            recorded = Some(aligned);
            moved = Some(change);
        }
    }
    let recorded = recorded
        .filter(|facts| facts.files.len() == files.len() && files.iter().zip(&facts.files).all(|(f, g)| *f.path(&workspace.db) == g.path))
        // Registrations change other files' resolutions: the full path.
        .filter(|facts| {
            let by_path: rustc_hash::FxHashMap<&str, &GraphFact> = facts.files.iter().map(|g| (g.path.as_str(), g)).collect();
            fresh.iter().all(|g| by_path.get(g.path.as_str()).is_some_and(|old| old.registered == g.registered))
                && moved.as_ref().is_none_or(|m| m.removed.iter().all(|g| g.registered.is_empty()))
        })
        // Each refreshed file is the one its module name resolves to (a second file of the
        // same name is rare, and the closures read only the one the index picks).
        .filter(|_| {
            let db = &workspace.db;
            let index = crate::stages::resolve::module_index(db, Project::get(db));
            fresh.iter().all(|g| index.file(&g.module).is_some_and(|f| *f.path(db) == g.path))
        });
    tracing::debug!(elapsed = ?phase_started.elapsed(), changed = changed.len(), firewall = held, edges_path = recorded.is_some(), "changed files evaluated");
    // Packages whose closure passes through a changed module but is not keyed: their
    // closure's recorded size becomes an upper bound (it may have grown by what was gained).
    let mut closure_bounds: Vec<Option<u32>> = vec![None; files.len()];
    let mut new_graph: Option<crate::stages::graph::ImportGraph> = None;
    let mut facts_to_record: Option<crate::cache::ByPathUpdate> = None;
    // Each file's fan and graph digest (known from the entries or the facts: never computed
    // twice).
    let (fans, graph_digests): (Vec<Option<Fan>>, Vec<Option<[u8; 32]>>) = match (previous.filter(|_| held), recorded) {
        (Some(previous), _) => {
            // Behind the firewall no file's loads changed: the previous load cycles hold.
            workspace.set_known_load_cycles(Some(std::sync::Arc::clone(previous.load_cycles())));
            // A changed package's exports may walk its import closure (thousands of modules'
            // loads): every file's loads are the recorded ones (a change would have left the
            // firewall), so the walk reads those instead of evaluating them.
            let db = &workspace.db;
            let loads = changed
                .iter()
                .any(|f| f.is_package(db))
                .then(|| cache.and_then(|c| GraphFacts::reader(c, layout, base)))
                .flatten()
                .map(|read| std::sync::Arc::new(crate::db::RecordedLoads::Read(Box::new(move |path| read(path).map(|fact| fact.loads)))));
            workspace.set_known_loads(loads);
            (previous_entries.iter().map(|e| e.map(|e| e.fan)).collect(), previous_entries.iter().map(|e| e.map(|e| e.graph)).collect())
        }
        (None, Some(mut facts)) => {
            let previous = previous.expect("the edges path has a previous build");
            let db = &workspace.db;
            let mut changed_modules: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
            let mut old_loads: Vec<(String, Vec<String>)> = Vec::new();
            // A refreshed file's digest is its new fact's; the others' are their entries'.
            let mut digests: Vec<Option<[u8; 32]>> = previous_entries.iter().map(|e| e.map(|e| e.graph)).collect();
            let mut refreshed: Vec<usize> = Vec::with_capacity(fresh.len());
            for fact in fresh {
                let i = position[fact.path.as_str()];
                refreshed.push(i);
                changed_modules.insert(files[i].module(db).clone());
                old_loads.push((files[i].module(db).clone(), facts.files[i].loads.keys().cloned().collect()));
                digests[i] = Some(fact.digest());
                facts.files[i] = fact;
            }
            // The layout path: the files gone are changed modules that lost all their loads,
            // and every name whose place in the index changed may be reached now, or no longer.
            if let Some(change) = &moved {
                for gone in &change.removed {
                    changed_modules.insert(gone.module.clone());
                    old_loads.push((gone.module.clone(), gone.loads.keys().cloned().collect()));
                }
                changed_modules.extend(change.names.iter().cloned());
            }
            // The import graph and the fans are built on a second thread while this one walks the
            // load cycles and the closures: neither reads the other, and the graph reads no query
            // (on the 100k-module tree, 0.18 s beside 0.28 s).
            let modules: Vec<&str> = files.iter().map(|f| f.module(db).as_str()).collect();
            let (graph, fans, cycles, rekey_modules, reaching, gained, touched) = std::thread::scope(|scope| {
                let graphing = std::thread::Builder::new()
                    .name("import-graph".into())
                    .spawn_scoped(scope, || {
                        let graph = crate::stages::graph::build_import_graph(modules.iter().copied().zip(facts.files.iter().map(|g| &g.edges)));
                        let fans: Vec<Option<Fan>> = modules.iter().zip(&facts.files).map(|(m, g)| Some(graph.fan(m, &g.edges))).collect();
                        (graph, fans)
                    })
                    .expect("a thread can be started");
                let index = crate::stages::resolve::module_index(db, Project::get(db));
                // Each file's fact by the file (its place in `files`): asked once per module.
                let fact_of: rustc_hash::FxHashMap<SourceFile, usize> = files.iter().enumerate().map(|(i, f)| (*f, i)).collect();
                // Each file's loads as the index ids of their existing prefixes: resolved once for
                // the load cycles and the reach (each walk resolved all 721k loads of the
                // 100k-module tree on its own).
                let load_ids: Vec<Vec<u32>> = facts.files.iter().map(|g| index.load_ids(g.loads.keys())).collect();
                let cycles = crate::stages::exports::load_cycles_over(index, |file, add| {
                    load_ids[fact_of[&file]].iter().for_each(|&id| add(id));
                });
                // Modules whose load-cycle companions changed, and packages whose import closure
                // can reach a module whose loads changed (over the old loads or the new).
                let (old_members, new_members) = (cycle_companions(previous.load_cycles()), cycle_companions(&cycles));
                let rekey_modules: std::collections::BTreeSet<String> = old_members
                    .keys()
                    .chain(new_members.keys())
                    .filter(|module| old_members.get(*module) != new_members.get(*module))
                    .map(|module| module.to_string())
                    .collect();
                let old_load_ids: Vec<(u32, Vec<u32>)> =
                    old_loads.iter().filter_map(|(module, loads)| Some((index.id(module)?, index.load_ids(loads)))).collect();
                let reaching = crate::stages::exports::modules_reaching(
                    index,
                    modules
                        .iter()
                        .zip(&load_ids)
                        .filter_map(|(m, ids)| Some((index.id(m)?, ids.as_slice())))
                        .chain(old_load_ids.iter().map(|(from, ids)| (*from, ids.as_slice()))),
                    &changed_modules,
                );
                // What a closure through a changed module can gain or lose: the modules its added
                // loads reach (new loads) and its removed loads reached (old loads). Below the
                // limit, a package's submodule attributes can change only if one of those is below
                // it.
                // A module's loads as the closure walk sees them: those of the file the index picks.
                let new_loads = |module: &str| -> Vec<String> {
                    index.file(module).map(|f| facts.files[fact_of[&f]].loads.keys().cloned().collect()).unwrap_or_default()
                };
                let old_loads_of: rustc_hash::FxHashMap<&str, &Vec<String>> = old_loads.iter().map(|(m, l)| (m.as_str(), l)).collect();
                let mut added: Vec<String> = Vec::new();
                let mut removed: Vec<String> = Vec::new();
                for (module, old) in &old_loads {
                    let new = new_loads(module);
                    added.extend(new.iter().filter(|t| !old.contains(t)).cloned());
                    removed.extend(old.iter().filter(|t| !new.contains(t)).cloned());
                }
                let forward = |starts: Vec<String>, old: bool| {
                    crate::stages::exports::modules_reached(index, starts, |module: &str| -> Vec<String> {
                        match old_loads_of.get(module).filter(|_| old) {
                            Some(loads) => (*loads).clone(),
                            None => new_loads(module),
                        }
                    })
                };
                let mut gained = forward(added, false);
                // A name that now exists is gained where it is loaded (its ancestors were loaded
                // there already: a load marks every existing prefix); what it loads is among the
                // added loads.
                if let Some(change) = &moved {
                    gained.extend(change.names.iter().filter(|n| index.exists(n)).cloned());
                }
                let mut touched: std::collections::HashSet<String> = std::collections::HashSet::new();
                for module in gained.iter().cloned().chain(forward(removed, true)) {
                    let ancestors = crate::stages::exports::with_ancestors(&module);
                    touched.extend(ancestors[..ancestors.len() - 1].iter().cloned());
                }
                let (graph, fans) = graphing.join().expect("building the import graph does not panic");
                (graph, fans, cycles, rekey_modules, reaching, gained, touched)
            });
            let mut counts = [0usize; 3];
            for (i, file) in files.iter().enumerate() {
                let module = file.module(db).as_str();
                let reached = file.is_package(db) && crate::stages::exports::with_ancestors(module).iter().any(|m| reaching.contains(m));
                let bound = previous_entries[i].map_or(u32::MAX, |e| e.closure.saturating_add(gained.len() as u32));
                let reasons = [
                    fans[i] != previous_entries[i].map(|e| e.fan),
                    rekey_modules.contains(module),
                    // A closure that may reach the limit now (or did) holds what the order of
                    // its walk decides.
                    reached && (touched.contains(module) || bound as usize >= crate::stages::exports::CLOSURE_LIMIT),
                ];
                for (count, reason) in counts.iter_mut().zip(reasons) {
                    *count += usize::from(reason);
                }
                also_key[i] |= reasons.iter().any(|r| *r);
                if reached && !also_key[i] {
                    closure_bounds[i] = Some(bound);
                }
            }
            tracing::debug!(fan = counts[0], cycle = counts[1], closure = counts[2], "edges path: files to key");
            new_graph = Some(graph);
            // Recorded as they are now; the walks then take every file's loads from them.
            let gone = moved.as_ref().map_or_else(Vec::new, |m| m.removed.iter().map(|g| g.path.clone()).collect());
            facts_to_record = Some(facts.update(Some(&refreshed), gone));
            let loads = facts.files.into_iter().map(|g| (g.path, g.loads)).collect();
            workspace.set_known_load_cycles(Some(std::sync::Arc::new(cycles)));
            workspace.set_known_loads(Some(std::sync::Arc::new(crate::db::RecordedLoads::All(loads))));
            (fans, digests)
        }
        (None, None) => {
            workspace.set_known_load_cycles(None);
            workspace.set_known_loads(None);
            for chunk in unchanged.chunks(CHUNK_FILES) {
                workspace.for_each_file(pool, chunk, |db, file| per_file(db, file, false));
                salsa::Database::trigger_lru_eviction(&mut workspace.db);
            }
            let fans = workspace.for_each_file(pool, files, |db, file| Some(module_fan(db, file)));
            let facts = workspace.for_each_file(pool, files, |db, file| GraphFact::of(db, file));
            let digests = facts.iter().map(|g| Some(g.digest())).collect();
            facts_to_record = Some(GraphFacts { layout, base, files: facts }.update(None, Vec::new()));
            (fans, digests)
        }
    };
    tracing::debug!(elapsed = ?phase_started.elapsed(), "cross-module stages evaluated");
    // What reads a file's text has run but the changed files' warnings (a warning's line):
    // evaluated while a one-shot build still holds the texts (their exports are the rows
    // keys' anyway).
    if release_texts && workspace.is_one_shot() {
        workspace.for_each_file(pool, &changed, |db, file| {
            crate::stages::validate::module_warnings(db, file);
        });
        workspace.release_texts();
    }
    let db = &workspace.db;
    // Whose rows keys are computed: behind the firewall (or on the edges path), the changed
    // files, the files `also_key` marks and, transitively, the files that read the exports of
    // a file whose exports changed (each entry records the modules it read); the others' keys
    // are their previous ones. Otherwise every file.
    let partial = held || new_graph.is_some();
    let mut to_key: Vec<bool> = same_source.iter().zip(&also_key).map(|(same, also)| !partial || !*same || *also).collect();
    if partial {
        let mut readers: Option<rustc_hash::FxHashMap<&str, Vec<usize>>> = None;
        let mut check: Vec<usize> = (0..files.len()).filter(|&i| to_key[i]).collect();
        while !check.is_empty() {
            let items: Vec<SourceFile> = check.iter().map(|&i| files[i]).collect();
            let faces = workspace.for_each_file(pool, &items, |db, file| exports_face(db, file));
            let mut next = Vec::new();
            for (&i, face) in check.iter().zip(faces) {
                if previous_entries[i].is_some_and(|e| e.face == face) {
                    continue;
                }
                let readers = readers.get_or_insert_with(|| {
                    let mut readers: rustc_hash::FxHashMap<&str, Vec<usize>> = rustc_hash::FxHashMap::default();
                    for (reader, entry) in previous_entries.iter().enumerate() {
                        for module in entry.iter().flat_map(|e| &e.reads) {
                            readers.entry(module.as_str()).or_default().push(reader);
                        }
                    }
                    readers
                });
                for &reader in readers.get(files[i].module(db).as_str()).into_iter().flatten() {
                    if !to_key[reader] {
                        to_key[reader] = true;
                        next.push(reader);
                    }
                }
            }
            next.sort_unstable();
            check = next;
        }
    }
    // Phase 2: the rows key of each file to key, and its `exports(path)` node.
    let target_hex = blake3::Hash::from(base).to_hex().to_string();
    // Each module's load-cycle companions (what `exports` reads of the load cycles).
    let companions = match cache {
        Some(_) => cycle_companions(crate::stages::exports::load_cycles(db, Project::get(db))),
        None => rustc_hash::FxHashMap::default(),
    };
    let was_parent: Vec<bool> = previous_entries.iter().map(|e| e.is_some_and(|e| e.labels.overlay.is_parent())).collect();
    // `again`: the file was keyed already (its `exports` node is recorded).
    let key_file = |db: &crate::db::Database, i: usize, file: SourceFile, fan: Fan, parent: bool, again: bool| {
        let labels = labels(db, file, fan, false, parent, settings, joins);
        let cross = CrossModule::of(db, file, graph_digests[i]);
        if let Some(cache) = cache.filter(|_| !again) {
            note_exports(cache, db, file, &cross, &target_hex, &companions, previous);
        }
        let mut inputs = rows_inputs(db, file, fan, &labels, &cross);
        inputs.push(("joins", joins.digest_of(file.path(db))));
        let key = StageCache::key("rows", ROWS_VERSION, file.path(db), &inputs);
        RowsKey { inputs, key, labels, cross }
    };
    let mut keyed: Vec<Option<RowsKey>> = {
        let items: Vec<(usize, SourceFile, bool, Fan, bool)> = files
            .iter()
            .zip(&to_key)
            .zip(&fans)
            .zip(&was_parent)
            .enumerate()
            .map(|(i, (((f, to_key), fan), parent))| (i, *f, *to_key, fan.unwrap_or_default(), *parent))
            .collect();
        workspace.for_each_item(pool, &items, |db, &(i, file, to_key, fan, parent)| {
            progress.inc(1);
            to_key.then(|| key_file(db, i, file, fan, parent, false))
        })
    };
    // The packages above every module selected for itself get overlays too (mypy reads a stub
    // package only through its `__init__.pyi`): re-key the modules whose parent status changed.
    {
        let decision = |i: usize| keyed[i].as_ref().map(|k| &k.labels.overlay).or(previous_entries[i].map(|e| &e.labels.overlay));
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
        let changed: Vec<(usize, SourceFile, Fan, bool, bool)> = files
            .iter()
            .enumerate()
            .filter_map(|(i, file)| {
                let wanted = file.is_package(db) && parents.contains(file.module(db));
                let has = decision(i).is_some_and(|d| d.is_parent());
                (wanted != has).then(|| (i, *file, fans[i].unwrap_or_default(), wanted, keyed[i].is_some()))
            })
            .collect();
        let rekeyed =
            workspace.for_each_item(pool, &changed, |db, &(i, file, fan, parent, again)| key_file(db, i, file, fan, parent, again));
        for ((i, ..), key) in changed.iter().zip(rekeyed) {
            keyed[*i] = Some(key);
        }
    }
    // Phase 3: render the rows whose key changed.
    let reused: Vec<Option<&std::sync::Arc<RowEntry>>> = previous_entries
        .iter()
        .zip(&keyed)
        .map(|(entry, keyed)| match keyed {
            None => *entry,
            Some(keyed) => entry.filter(|e| e.key == keyed.key),
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
    // The module scopes are the largest memos, and once the rows are keyed only the rows'
    // warnings and star imports read them: a one-shot build evaluates those and drops the
    // scopes before the rows render (a cold build's peak). (An overlay for a file whose rows
    // were reused and whose kept overlay is missing computes exports later, and with them the
    // scopes it reads again.)
    if workspace.is_one_shot() {
        workspace.for_each_item(pool, &to_render, |db, &(file, ..)| {
            crate::stages::validate::module_warnings(db, file);
            crate::stages::scope::star_imports(db, file);
        });
        crate::stages::scope::release_module_scopes(&mut workspace.db);
    }
    let render_one = |db: &crate::db::Database, &(file, keyed, fan): &(SourceFile, &RowsKey, Fan)| {
        let output = FileOutput::render(
            keyed.key,
            source_digest(db, file),
            keyed.cross.clone(),
            fan,
            keyed.labels.clone(),
            module_record(db, file),
            &outline(db, file).decode().symbols,
            &imports(db, file).imports,
            resolved_imports(db, file),
            syntax_errors(db, file).first,
            crate::stages::validate::module_warnings(db, file).clone(),
            joins.of(file.path(db)),
        );
        if let Some(cache) = cache {
            let rows_hash = output.rendered.as_ref().expect("a rendered file's rows").hash();
            cache.note_rerun("rows", file.path(db), &keyed.inputs, keyed.key, rows_hash);
        }
        output
    };
    // Without previous rows nothing is reused and every file is rendered, in path order: the
    // rows are streamed into the row artifacts a chunk at a time instead of held until the
    // sinks run.
    let mut streamed = None;
    let rendered = match stream_to.filter(|_| previous.is_none()) {
        Some(out) => {
            let streams = crate::sinks::rows::RowStreams::start(out);
            let mut rendered = Vec::with_capacity(to_render.len());
            for chunk in to_render.chunks(STREAM_FILES) {
                let outputs = workspace.for_each_item(pool, chunk, render_one);
                // The records just rendered are read again by nothing (see `module_record`).
                salsa::Database::trigger_lru_eviction(&mut workspace.db);
                streams.send(&outputs);
                rendered.extend(outputs);
            }
            streamed = Some(streams.finish());
            rendered
        }
        None => workspace.for_each_item(pool, &to_render, render_one),
    };
    let mut rendered = rendered.into_iter();
    let outputs: Vec<FileOutput> = reused
        .iter()
        .zip(&keyed)
        .enumerate()
        .map(|(i, (reused, keyed))| match reused {
            Some(entry) => {
                if let Some(cache) = cache {
                    cache.note_reused("rows");
                }
                // Shared with the previous rows; copied only when a field changes.
                let mut entry = std::sync::Arc::clone(entry);
                if let Some(bound) = closure_bounds[i] {
                    std::sync::Arc::make_mut(&mut entry).closure = bound;
                }
                // Same rows; what they were computed from is this build's (the modules read
                // may differ although the rows do not).
                if let Some(keyed) = keyed {
                    let entry = std::sync::Arc::make_mut(&mut entry);
                    entry.graph = keyed.cross.graph;
                    entry.face = keyed.cross.face;
                    entry.reads = keyed.cross.reads.clone();
                    entry.probes = keyed.cross.probes.clone();
                    entry.closure = keyed.cross.closure;
                }
                FileOutput { entry, rendered: None }
            }
            None => rendered.next().expect("one rendering per file to render"),
        })
        .collect();
    tracing::debug!(elapsed = ?phase_started.elapsed(), rendered = to_render.len(), "rows rendered");
    Evaluated { outputs, layout, held, import_graph: new_graph, graph_facts: facts_to_record, streamed, evaluated: changed.len() }
}

/// What changed in the module layout since the graph facts were recorded (see the layout path
/// in [`evaluate`]).
struct LayoutChange {
    /// The module names whose place in the index changed: the file it resolves to, or being a
    /// namespace package, missing (its top-level name is in the repository) or external.
    names: std::collections::BTreeSet<String>,
    /// The recorded facts of the files gone from the layout.
    removed: Vec<GraphFact>,
    /// The paths of the files new to the layout (or with another module name or package flag).
    added: std::collections::HashSet<String>,
}

/// Where each of `names` is in a layout given as (module, path, package) of each file in path
/// order, as [`crate::stages::resolve::ModuleIndex::resolve`] sees it: the file the name
/// resolves to (a package wins over a plain module of the same name, else the last in path
/// order), or `namespace` (only submodules), `missing` (its top-level name is in the layout) or
/// `external`. The layout path compares the last build's places with this one's for the names
/// a change moved: one pass over the files, each module looked up with its prefixes among the
/// names asked (linear however many files a checkout adds), no map of every module.
fn places<'a>(names: &[String], files: impl Iterator<Item = (&'a str, &'a str, bool)>) -> Vec<&'a str> {
    let asked: rustc_hash::FxHashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut file: Vec<Option<(&str, bool)>> = vec![None; names.len()];
    let mut submodule = vec![false; names.len()];
    // Top-level names of the layout (a name is missing, not external, under one of them).
    let mut tops: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (module, path, package) in files.filter(|(m, ..)| !m.is_empty()) {
        if let Some(&i) = asked.get(module)
            && !file[i].is_some_and(|(_, p)| p)
        {
            file[i] = Some((path, package));
        }
        // Every proper prefix has `module` as a submodule.
        for (at, _) in module.match_indices('.') {
            if let Some(&i) = asked.get(&module[..at]) {
                submodule[i] = true;
            }
        }
        tops.insert(module.split('.').next().unwrap_or(module));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| match file[i] {
            Some((path, _)) => path,
            None if submodule[i] => "namespace",
            None if tops.contains(name.split('.').next().unwrap_or(name)) => "missing",
            None => "external",
        })
        .collect()
}

/// The layout change from the recorded `facts` to `files`, with the facts realigned to
/// `files` (a new file's are empty until refreshed). `None` when the change is not one the
/// layout path takes: a module name added or removed that two files claim (before or after),
/// or most of the layout changing at once (a `--src-layout` switch).
fn layout_change(db: &crate::db::Database, files: &[SourceFile], facts: GraphFacts, layout: [u8; 32]) -> Option<(GraphFacts, LayoutChange)> {
    let new: Vec<(&str, &str, bool)> = files.iter().map(|f| (f.module(db).as_str(), f.path(db).as_str(), f.is_package(db))).collect();
    // Both in path order: one merge walk moves each file's recorded fact into place when the
    // file kept its path, module name and package flag; the others' facts are removed.
    let mut kept: Vec<Option<GraphFact>> = Vec::with_capacity(new.len());
    let mut removed: Vec<GraphFact> = Vec::new();
    let mut old = facts.files.into_iter().peekable();
    for (module, path, package) in &new {
        while old.peek().is_some_and(|g| g.path.as_str() < *path) {
            removed.extend(old.next());
        }
        match old.next_if(|g| g.path == *path) {
            Some(g) if g.module == *module && g.package == *package => kept.push(Some(g)),
            Some(g) => {
                removed.push(g);
                kept.push(None);
            }
            None => kept.push(None),
        }
    }
    removed.extend(old);
    let added: Vec<(&str, &str)> = new.iter().zip(&kept).filter(|(_, g)| g.is_none()).map(|((m, p, _), _)| (*m, *p)).collect();
    if (added.len() + removed.len()) * 2 > files.len() {
        return None;
    }
    let moved: Vec<&str> = added.iter().map(|(m, _)| *m).chain(removed.iter().map(|g| g.module.as_str())).collect();
    // A module name added or removed that two files claim, before or after.
    let claims = |modules: &mut dyn Iterator<Item = &str>| -> rustc_hash::FxHashMap<&str, u32> {
        let mut count: rustc_hash::FxHashMap<&str, u32> = moved.iter().map(|m| (*m, 0)).collect();
        for module in modules {
            if let Some(n) = count.get_mut(module) {
                *n += 1;
            }
        }
        count
    };
    let old_claims = claims(&mut kept.iter().flatten().chain(&removed).map(|g| g.module.as_str()));
    let new_claims = claims(&mut new.iter().map(|(m, ..)| *m));
    if moved.iter().any(|m| m.is_empty() || old_claims[m] > 1 || new_claims[m] > 1) {
        return None;
    }
    // The recorded layout in path order (two sorted runs: one merge).
    let mut old_files: Vec<(&str, &str, bool)> = new.iter().zip(&kept).filter(|(_, g)| g.is_some()).map(|(f, _)| *f).collect();
    old_files.extend(removed.iter().map(|g| (g.module.as_str(), g.path.as_str(), g.package)));
    old_files.sort_by(|a, b| a.1.cmp(b.1));
    let asked: Vec<String> = moved.iter().flat_map(|m| crate::stages::exports::with_ancestors(m)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let (before, after) = (places(&asked, old_files.into_iter()), places(&asked, new.iter().copied()));
    let names: std::collections::BTreeSet<String> =
        asked.iter().zip(before.iter().zip(&after)).filter(|(_, (b, a))| b != a).map(|(name, _)| name.clone()).collect();
    let added = added.into_iter().map(|(_, p)| p.to_string()).collect();
    let aligned: Vec<GraphFact> = new
        .iter()
        .zip(kept)
        .map(|((m, p, k), g)| {
            g.unwrap_or_else(|| GraphFact {
                path: p.to_string(),
                module: m.to_string(),
                package: *k,
                edges: Default::default(),
                loads: Default::default(),
                registered: Default::default(),
            })
        })
        .collect();
    Some((GraphFacts { layout, base: facts.base, files: aligned }, LayoutChange { names, removed, added }))
}

/// Each module of a load cycle with a digest of the modules of its cycle (itself included):
/// one digest per cycle, so a cycle of thousands of modules stays linear.
fn cycle_companions(cycles: &std::collections::BTreeMap<String, u32>) -> rustc_hash::FxHashMap<&str, [u8; 32]> {
    let mut by_id: std::collections::HashMap<u32, blake3::Hasher> = std::collections::HashMap::new();
    // Sorted by module: each cycle's members are hashed in order.
    for (module, id) in cycles {
        update_parts(by_id.entry(*id).or_default(), [module.as_str()]);
    }
    let digests: std::collections::HashMap<u32, [u8; 32]> = by_id.into_iter().map(|(id, h)| (id, *h.finalize().as_bytes())).collect();
    cycles.iter().map(|(module, id)| (module.as_str(), digests[id])).collect()
}

/// What [`evaluate`] found.
struct Evaluated {
    outputs: Vec<FileOutput>,
    /// The layout digest the files were evaluated under.
    layout: [u8; 32],
    /// Behind the graph firewall: the import graph, fans and load cycles are the last build's.
    held: bool,
    /// The import graph, when the edges path rebuilt it from recorded facts.
    import_graph: Option<crate::stages::graph::ImportGraph>,
    /// What to record of the files' graph facts (absent behind the firewall: unchanged).
    graph_facts: Option<crate::cache::ByPathUpdate>,
    /// The row artifacts, when they were written while the rows were rendered.
    streamed: Option<Result<[crate::writers::Artifact; 3]>>,
    /// How many files were evaluated (their source changed since the last build).
    evaluated: usize,
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
    // The stamp says the last build finished: it left no temporary file, and the walk of the
    // whole directory (25k files on the 100k-module tree, 5% of a no-op there) is skipped.
    // Removed while this build writes.
    if std::fs::remove_file(out.join(FINISHED_STAMP)).is_err() {
        remove_stale_temporaries(out);
    }
    Ok(marker)
}

/// Beside the marker while no build is writing the output directory (see [`lock_output_dir`]).
const FINISHED_STAMP: &str = ".codeintel-enrich-finished";

/// Stamp the output directory: this build, which holds its lock, finished writing. A build
/// that failed or was killed leaves no stamp, so the next one looks for its temporary files.
fn mark_finished(config: &Config) {
    let _ = std::fs::write(config.out.join(FINISHED_STAMP), b"");
}

/// Remove temporary files that a killed build left behind (`write_atomic` and `link_atomic`
/// name them `.tmp-*`). The lock this build holds on `dir` means no other build is writing
/// them now.
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

#[cfg(test)]
mod tests {
    use super::places;

    /// A name's place: the file it resolves to (a package over a plain module of the same name,
    /// else the last in path order), a namespace, missing under a top-level name of the layout,
    /// or external.
    #[test]
    fn places_of_module_names() {
        let layout = [
            ("dup", "dup.py", false),
            ("dup", "dup/__init__.py", true),
            ("ns.x", "ns/x.py", false),
            ("pkg", "pkg/__init__.py", true),
            ("pkg.sub", "pkg/sub.py", false),
            ("twice", "a/twice.py", false),
            ("twice", "b/twice.py", false),
            ("", "setup.py", false),
        ];
        let names: Vec<String> = ["dup", "ns", "ns.x", "pkg", "pkg.gone", "twice", "other", ""].map(String::from).to_vec();
        let expected = ["dup/__init__.py", "namespace", "ns/x.py", "pkg/__init__.py", "missing", "b/twice.py", "external", "external"];
        assert_eq!(places(&names, layout.into_iter()), expected);
        // The package wins whichever comes first.
        assert_eq!(places(&names[..1], layout.into_iter().skip(1).chain(layout.into_iter().take(1))), ["dup/__init__.py"]);
    }
}
