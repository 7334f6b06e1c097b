//! The build: discover → load (read, hash, decode) → sync the salsa inputs → evaluate the
//! per-file queries in parallel → render the artifacts → write them atomically.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use std::sync::Arc;

use crate::cache::{BuildRecord, StageCache};
use crate::config::Config;
use crate::explain::RunLog;
use crate::stages::cached::CACHED_STAGES;
use crate::db::{LoadedFile, SourceFile, Workspace};
use crate::diagnostics::{Problem, ProblemKind};
use crate::discover::{FoundFile, OUTPUT_MARKER, discover};
use crate::module_path::module_path;
use crate::source;
use crate::db::Project;
use crate::stages::graph::import_graph;
use crate::stages::imports::{Import, imports};
use crate::stages::resolve::{ImportResolution, resolved_imports};
use crate::stages::outline::{ParamKind, Symbol, SymbolKind, outline};
use crate::stages::parse::syntax_errors;
use crate::stages::record::{ModuleRecord, module_docstring, module_record};
use crate::stages::scope::module_scope;
use crate::writers::{Artifact, jsonl, write_atomic};

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
            "{} modules, {} symbols, {} imports; {} skipped, {} errors, {} with syntax errors; {:.2}s{}",
            self.modules,
            self.symbols,
            self.imports,
            self.skipped(),
            self.file_errors(),
            self.syntax_error_modules,
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
    let discovery = discover(config)?;
    phase("discover", &mut timings);
    let mut problems = discovery.problems;
    let src_layout = discovery.src_layout;
    let loaded: Vec<Result<LoadedFile, Problem>> = pool.install(|| {
        discovery.files.par_iter().map(|file| load(file, src_layout, config.max_file_bytes)).collect()
    });
    let mut files_to_sync = Vec::with_capacity(loaded.len());
    for result in loaded {
        match result {
            Ok(file) => files_to_sync.push(file),
            Err(problem) => problems.push(problem),
        }
    }
    let build_key = build_key(&files_to_sync, &problems);
    let files = workspace.sync(files_to_sync);
    phase("load", &mut timings);

    // The whole-build shortcut: same inputs as the last complete build, artifacts intact.
    if let Some(cache) = cache.filter(|_| !config.dry_run)
        && let Some(last) = cache.last_build().filter(|last| last.key == build_key)
        && artifacts_intact(&config.out, &last.artifacts)
    {
        phase("verify", &mut timings);
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

    let progress = progress_bar(config, files.len());
    let outputs = evaluate(workspace, pool, &files, &progress);
    progress.finish_and_clear();
    phase("evaluate", &mut timings);

    let mut report = BuildReport { dry_run: config.dry_run, ..BuildReport::default() };
    for output in &outputs {
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
        for (line, target) in &output.unresolved {
            let mut problem = Problem::new(
                output.path.clone(),
                ProblemKind::UnresolvedImport,
                format!("cannot resolve import of {target}"),
            );
            problem.line = Some(*line);
            problems.push(problem);
        }
    }
    problems.sort();
    report.modules = outputs.len();
    report.symbols = outputs.iter().map(|o| o.symbols).sum();
    report.imports = outputs.iter().map(|o| o.imports).sum();

    let mut artifacts = render(&outputs, &problems);
    artifacts.extend(render_graphs(import_graph(&workspace.db, Project::get(&workspace.db))));
    report.artifacts = artifacts
        .iter()
        .map(|a| ArtifactSummary { path: a.path.clone(), rows: a.rows, bytes: a.bytes })
        .collect();
    report.problems = problems;
    phase("render", &mut timings);
    if !config.dry_run {
        write_outputs(config, &artifacts)?;
        phase("write", &mut timings);
    }
    if let Some(cache) = cache {
        let upstream = cache.recomputed_so_far();
        for artifact in &artifacts {
            cache.record_artifact(&artifact.path, &artifact.contents, upstream);
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
                    .map(|a| (a.path.clone(), a.rows, a.bytes, *blake3::hash(&a.contents).as_bytes()))
                    .collect(),
                modules: report.modules,
                symbols: report.symbols,
                imports: report.imports,
                syntax_error_modules: report.syntax_error_modules,
                problems: report.problems.clone(),
            })?;
            log
        });
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Everything the artifacts are a function of, besides the engine: each file's path, module
/// name, package flag, encoding and content hash, and every discovery or loading problem.
fn build_key(files: &[LoadedFile], problems: &[Problem]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(crate::cache::engine_fingerprint().as_bytes());
    let mut files: Vec<&LoadedFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for file in files {
        for part in [file.path.as_str(), file.module.as_str(), if file.is_package { "1" } else { "0" }, file.encoding.as_str()] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.update(&file.hash.0);
    }
    let mut problems: Vec<&Problem> = problems.iter().collect();
    problems.sort();
    hasher.update(&serde_json::to_vec(&problems).expect("problems serialize"));
    *hasher.finalize().as_bytes()
}

/// Every artifact of the last build is still in `out` with its recorded bytes.
fn artifacts_intact(out: &std::path::Path, artifacts: &[(String, usize, usize, [u8; 32])]) -> bool {
    artifacts.par_iter().all(|(path, _, bytes, hash)| {
        std::fs::read(out.join(path)).is_ok_and(|contents| contents.len() == *bytes && blake3::hash(&contents).as_bytes() == hash)
    })
}

fn load(file: &FoundFile, src_layout: bool, max_file_bytes: u64) -> Result<LoadedFile, Problem> {
    let problem = |kind, message: String| Problem::new(file.rel_path.clone(), kind, message);
    let bytes = std::fs::read(&file.abs_path).map_err(|err| problem(ProblemKind::Unreadable, err.to_string()))?;
    if bytes.len() as u64 > max_file_bytes {
        let message = format!("{} bytes is over --max-file-bytes {max_file_bytes}", bytes.len());
        return Err(problem(ProblemKind::Oversized, message));
    }
    let decoded = source::decode(&bytes).map_err(|err| problem(ProblemKind::Undecodable, err.to_string()))?;
    let module = module_path(&file.rel_path, src_layout);
    Ok(LoadedFile {
        path: file.rel_path.clone(),
        module: module.module,
        is_package: module.is_package,
        encoding: decoded.encoding,
        hash: decoded.hash,
        text: decoded.text,
    })
}

/// Everything one file contributes to the outputs, rendered to JSON Lines by the worker
/// that computed it (rendering is a large share of a cold build and parallelizes per file).
struct FileOutput {
    path: String,
    /// (line, target) of imports that could not be resolved.
    unresolved: Vec<(u32, String)>,
    parse_errors: u32,
    syntax_first: Option<(u32, u32)>,
    module_jsonl: Vec<u8>,
    symbols: usize,
    symbols_jsonl: Vec<u8>,
    imports: usize,
    imports_jsonl: Vec<u8>,
}

impl FileOutput {
    fn render(
        record: &ModuleRecord,
        symbols: &[Symbol],
        imports: &[Import],
        resolutions: &[ImportResolution],
        syntax_first: Option<(u32, u32)>,
    ) -> Self {
        let path = record.path.as_str();
        let mut symbols: Vec<&Symbol> = symbols.iter().collect();
        symbols.sort_by_key(|s| (s.line, s.col));
        let mut imports: Vec<ImportRow<'_>> = imports
            .iter()
            .zip(resolutions)
            .map(|(import, resolution)| ImportRow::new(path, import, resolution))
            .collect();
        imports.sort_by(|a, b| (a.line, a.target, a.col).cmp(&(b.line, b.target, b.col)));
        let unresolved: Vec<(u32, String)> =
            imports.iter().filter(|r| r.unresolved).map(|r| (r.line, r.target.to_string())).collect();
        let (_, module_jsonl) = jsonl::render([record]);
        let (symbol_rows, symbols_jsonl) = jsonl::render_in_key_order(symbols.into_iter().map(|s| SymbolRow::new(path, s)));
        let (import_rows, imports_jsonl) = jsonl::render_in_key_order(imports.iter());
        FileOutput {
            path: record.path.clone(),
            unresolved,
            parse_errors: record.parse_errors,
            syntax_first,
            module_jsonl,
            symbols: symbol_rows,
            symbols_jsonl,
            imports: import_rows,
            imports_jsonl,
        }
    }
}

fn evaluate(
    workspace: &mut Workspace,
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    progress: &ProgressBar,
) -> Vec<FileOutput> {
    let phase_started = Instant::now();
    // Phase 1: everything that needs a tree, file by file, in chunks with the trees evicted
    // between chunks. Cross-module queries read only these facts, so after this phase no
    // file is parsed again (evaluating both together re-parsed files whose trees a
    // cross-module query had needed early and the LRU had dropped since).
    for chunk in files.chunks(CHUNK_FILES) {
        for_each_file(workspace, pool, chunk, |db, file| {
            syntax_errors(db, file);
            outline(db, file);
            imports(db, file);
            module_docstring(db, file);
            module_scope(db, file);
        });
        salsa::Database::trigger_lru_eviction(&mut workspace.db);
    }
    tracing::debug!(elapsed = ?phase_started.elapsed(), "per-file stages evaluated");
    // Phase 2: cross-module stages, records and rendering.
    for_each_file(workspace, pool, files, |db, file| {
        let output = FileOutput::render(
            module_record(db, file),
            &outline(db, file).symbols,
            &imports(db, file).imports,
            resolved_imports(db, file),
            syntax_errors(db, file).first,
        );
        progress.inc(1);
        output
    })
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
    let db = std::sync::Mutex::new(workspace.db.clone());
    pool.install(|| files.par_iter().map_init(|| db.lock().unwrap().clone(), |db, &file| f(db, file)).collect())
}

/// An `imports.jsonl` row: the import and its resolution. Fields are declared in key order
/// (rows are serialized directly; the determinism test checks every line's key order).
#[derive(Serialize)]
struct ImportRow<'a> {
    asname: Option<&'a str>,
    col: u32,
    conditional: bool,
    external: Option<&'a str>,
    in_function: bool,
    in_try: bool,
    level: u32,
    line: u32,
    names: Vec<NameRow<'a>>,
    path: &'a str,
    resolved_path: Option<&'a str>,
    star: bool,
    target: &'a str,
    type_checking: bool,
    unresolved: bool,
}

#[derive(Serialize)]
struct NameRow<'a> {
    asname: Option<&'a str>,
    name: &'a str,
    /// The file of the submodule `target.name`, when the name is one.
    resolved_path: Option<&'a str>,
}

impl<'a> ImportRow<'a> {
    fn new(path: &'a str, import: &'a Import, resolution: &'a ImportResolution) -> Self {
        ImportRow {
            asname: import.asname.as_deref(),
            col: import.col,
            conditional: import.conditional,
            external: resolution.external.as_deref(),
            in_function: import.in_function,
            in_try: import.in_try,
            level: import.level,
            line: import.line,
            names: import
                .names
                .iter()
                .zip(&resolution.name_paths)
                .map(|(name, resolved)| NameRow {
                    asname: name.asname.as_deref(),
                    name: &name.name,
                    resolved_path: resolved.as_deref(),
                })
                .collect(),
            path,
            resolved_path: resolution.resolved_path.as_deref(),
            star: import.star,
            target: &import.target,
            type_checking: import.type_checking,
            unresolved: resolution.unresolved,
        }
    }
}

/// A `symbols.jsonl` row, fields in key order (see [`ImportRow`]).
#[derive(Serialize)]
struct SymbolRow<'a> {
    bases: &'a [String],
    col: u32,
    decorators: &'a [String],
    docstring: Option<&'a str>,
    end_col: u32,
    end_line: u32,
    is_async: bool,
    is_public: bool,
    kind: SymbolKind,
    line: u32,
    name: &'a str,
    params: Vec<ParamRow<'a>>,
    path: &'a str,
    qualname: &'a str,
    returns: Option<&'a str>,
}

#[derive(Serialize)]
struct ParamRow<'a> {
    annotation: Option<&'a str>,
    has_default: bool,
    kind: ParamKind,
    name: &'a str,
}

impl<'a> SymbolRow<'a> {
    fn new(path: &'a str, symbol: &'a Symbol) -> Self {
        SymbolRow {
            bases: &symbol.bases,
            col: symbol.col,
            decorators: &symbol.decorators,
            docstring: symbol.docstring.as_deref(),
            end_col: symbol.end_col,
            end_line: symbol.end_line,
            is_async: symbol.is_async,
            is_public: symbol.is_public,
            kind: symbol.kind,
            line: symbol.line,
            name: &symbol.name,
            params: symbol
                .params
                .iter()
                .map(|p| ParamRow { annotation: p.annotation.as_deref(), has_default: p.has_default, kind: p.kind, name: &p.name })
                .collect(),
            path,
            qualname: &symbol.qualname,
            returns: symbol.returns.as_deref(),
        }
    }
}

/// Render every artifact; `outputs` are sorted by path.
fn render(outputs: &[FileOutput], problems: &[Problem]) -> Vec<Artifact> {
    let concat = |part: fn(&FileOutput) -> &[u8]| {
        let mut bytes = Vec::with_capacity(outputs.iter().map(|o| part(o).len()).sum());
        for output in outputs {
            bytes.extend_from_slice(part(output));
        }
        bytes
    };
    let mut artifacts = vec![
        Artifact::new("modules.jsonl", outputs.len(), concat(|o| &o.module_jsonl)),
        Artifact::new("symbols.jsonl", outputs.iter().map(|o| o.symbols).sum(), concat(|o| &o.symbols_jsonl)),
        Artifact::new("imports.jsonl", outputs.iter().map(|o| o.imports).sum(), concat(|o| &o.imports_jsonl)),
    ];
    let (rows, diagnostics) = jsonl::render(problems);
    artifacts.push(Artifact::new("diagnostics.jsonl", rows, diagnostics));
    artifacts
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
        Artifact::new("graphs/imports.json", edges(&all), pretty(serde_json::json!(all))),
        Artifact::new("graphs/imports_runtime.json", edges(&runtime), pretty(serde_json::json!(runtime))),
        Artifact::new(
            "graphs/cycles.json",
            graph.cycles.len() + graph.runtime_cycles.len(),
            pretty(serde_json::json!({"all": graph.cycles, "runtime": graph.runtime_cycles})),
        ),
    ]
}

fn write_outputs(config: &Config, artifacts: &[Artifact]) -> Result<()> {
    let out = &config.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create output directory {}", out.display()))?;
    write_atomic(&out.join(OUTPUT_MARKER), b"codeintel-enrich output directory: never scanned\n")?;
    // Builds writing one output directory (even with different caches) take turns.
    let marker = std::fs::File::open(out.join(OUTPUT_MARKER))
        .with_context(|| format!("cannot open {}", out.join(OUTPUT_MARKER).display()))?;
    marker.lock().with_context(|| format!("cannot lock {}", out.display()))?;
    remove_stale_temporaries(out);
    if config.out_is_default {
        write_atomic(&out.join(".gitignore"), b"# Written by codeintel-enrich.\n*\n")?;
    }
    for artifact in artifacts {
        write_atomic(&out.join(&artifact.path), &artifact.contents)?;
    }
    Ok(())
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
