//! The command line: clap derive types, turned into a plain [`Config`] by
//! [`construct_config`]. This is the only module that imports clap.
//!
//! Exit codes: `0` success; `1` outputs were written but some files could not be read or
//! decoded (the first 20 are named on stderr, all in `diagnostics.jsonl`); `2` fatal error or
//! bad usage (nothing written).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::build::{self, BuildReport};
use crate::config::{Config, DEFAULT_CACHE_DIR, DEFAULT_MAX_FILE_BYTES, DEFAULT_OUT_DIR};
use crate::diagnostics::{Problem, ProblemKind};

/// Exit code: some files could not be read or decoded; everything else was written.
pub const EXIT_FILE_ERRORS: u8 = 1;
/// Exit code: fatal error or bad usage; nothing was written.
pub const EXIT_FATAL: u8 = 2;

/// Turn a Python repository into code-intelligence artifacts, incrementally.
#[derive(Debug, Parser)]
#[command(name = "codeintel-enrich", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Repository to scan.
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,

    /// Output directory [default: <root>/.codeintel]. Never scanned.
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Stage cache directory [default: <root>/.codeintel-cache]. Never scanned.
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Do not read or write the stage cache: compute everything.
    #[arg(long, global = true, conflicts_with = "cache_dir")]
    pub no_cache: bool,

    /// Only process files whose repo-relative path matches GLOB (repeatable; any match wins).
    #[arg(long, global = true, value_name = "GLOB")]
    pub only: Vec<String>,

    /// Skip files and directories whose repo-relative path matches GLOB (repeatable).
    #[arg(long, global = true, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Skip (and report) source files larger than this many bytes.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,

    /// Worker threads [default: number of CPUs].
    #[arg(long, short = 'j', global = true, value_name = "N")]
    pub jobs: Option<usize>,

    /// Compute everything, write nothing, and say what would be written.
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Descend into symlinked directories (symlink loops are detected and reported).
    #[arg(long, global = true)]
    pub follow_links: bool,

    /// Python version that `sys.version_info` conditions are decided for [default: 3.13].
    #[arg(long, global = true, value_name = "X.Y")]
    pub python_version: Option<String>,

    /// `sys.platform` that platform conditions are decided for (linux, darwin, win32, …)
    /// [default: linux].
    #[arg(long, global = true, value_name = "PLATFORM")]
    pub python_platform: Option<String>,

    /// Manual tags, tag rules and user pattern tags (YAML; see the README).
    #[arg(long, global = true, value_name = "FILE")]
    pub tags_yaml: Option<PathBuf>,

    /// Named sets of modules that get overlays (YAML; see the README).
    #[arg(long, global = true, value_name = "FILE")]
    pub overlays_config: Option<PathBuf>,

    /// The set of --overlays-config to use [default: the file's `default`].
    #[arg(long, global = true, value_name = "NAME")]
    pub overlays_set: Option<String>,

    /// Exports (every path or some) that make a module an export hub, which gets an overlay
    /// [default: 50].
    #[arg(long, global = true, value_name = "N")]
    pub export_hub_threshold: Option<u32>,

    /// Write one compact JSON slice per module under `slices/` (record, outline, neighbours).
    #[arg(long, global = true)]
    pub emit_slices: bool,

    /// Only modules whose repo-relative path matches GLOB get slices (repeatable; implies
    /// --emit-slices).
    #[arg(long, global = true, value_name = "GLOB")]
    pub slices_filter: Vec<String>,

    /// Write each module's tree-sitter syntax tree as JSON under `ast/` (only for files whose
    /// tree changed).
    #[arg(long, global = true)]
    pub emit_ast: bool,

    /// A SCIP index to join (the protobuf `index.scip` scip-python writes, or its JSON form).
    #[arg(long, global = true, value_name = "FILE")]
    pub scip: Option<PathBuf>,

    /// A pyrefly report to join (`pyrefly check --output-format json`).
    #[arg(long, global = true, value_name = "FILE")]
    pub pyrefly_json: Option<PathBuf>,

    /// A coverage.py Cobertura XML report to join (`coverage xml`).
    #[arg(long, global = true, value_name = "FILE")]
    pub coverage_xml: Option<PathBuf>,

    /// Line rate under which a module is tagged low-coverage [default: 0.5].
    #[arg(long, global = true, value_name = "RATE")]
    pub low_coverage_threshold: Option<f64>,

    /// Join the owners from CODEOWNERS (.github/, the root or docs/).
    #[arg(long, global = true)]
    pub owners: bool,

    /// Join git history: commits in the last N days before HEAD's commit date.
    #[arg(long, global = true, value_name = "N")]
    pub history_window_days: Option<u32>,

    /// Join git history: the last N commits (with --history-window-days, both limits apply).
    #[arg(long, global = true, value_name = "N")]
    pub commits_window: Option<u32>,

    /// Do not write the Parquet dataset (nor, then, the database, which is loaded from it).
    #[arg(long, global = true)]
    pub no_parquet: bool,

    /// Do not write the embedded DuckDB database `codeintel.duckdb`.
    #[arg(long, global = true)]
    pub no_database: bool,

    /// More log output (-v: info, -vv: debug, -vvv: trace).
    #[arg(long, short = 'v', global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors: no progress bar, no summary line.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan the repository and write the artifacts.
    Build,
    /// Explain the last build: which nodes reran and why (reads the run log; builds nothing).
    Explain {
        /// Only nodes whose subject starts with one of these repo-relative paths.
        paths: Vec<String>,
        /// Only nodes of this stage (outline, imports, module_scope, write, …).
        #[arg(long)]
        stage: Option<String>,
        /// Print the stable JSON schema instead of text.
        #[arg(long)]
        json: bool,
        /// Also print per-phase timings of the last build.
        #[arg(long)]
        timings: bool,
        /// Predict what a build would recompute now (runs a dry build: writes nothing).
        #[arg(long)]
        plan: bool,
    },
    /// Run SQL against the database of the output directory (`codeintel.duckdb`) and print the
    /// result as an aligned table.
    Query {
        /// The SQL: a query over the tables modules, symbols, imports, tags, diagnostics,
        /// cycles and the views (`--views` lists them).
        #[arg(required_unless_present = "views")]
        sql: Option<String>,
        /// Print a JSON array of objects.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV with a header.
        #[arg(long)]
        csv: bool,
        /// List the views, one line each.
        #[arg(long, conflicts_with_all = ["json", "csv"])]
        views: bool,
    },
    /// Inspect or maintain the stage cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// The floor for benchmarks: walk, read, hash and parse every file, nothing else.
    #[command(hide = true)]
    Floor,
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to generate completions for.
        shell: Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Entries, size, and the hit rate of the last run.
    Stats,
    /// Check every entry's checksum.
    Verify,
    /// Drop entries no node of the last run uses.
    Gc,
    /// Delete the cache.
    Clear,
}

/// Turn parsed arguments into a [`Config`], resolving paths against `cwd`.
pub fn construct_config(cli: &Cli, cwd: &Path) -> Result<Config> {
    let root = cwd.join(&cli.root);
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot open root directory {}", root.display()))?;
    if !root.is_dir() {
        bail!("root {} is not a directory", root.display());
    }
    let (out, out_is_default) = match &cli.out {
        Some(out) => (absolute(&cwd.join(out)), false),
        None => (root.join(DEFAULT_OUT_DIR), true),
    };
    if let Some(0) = cli.jobs {
        bail!("--jobs must be at least 1");
    }
    for glob in cli.only.iter().chain(&cli.exclude).chain(&cli.slices_filter) {
        globset::Glob::new(glob).with_context(|| format!("invalid glob {glob:?}"))?;
    }
    let mut config = Config::new(root, out);
    config.out_is_default = out_is_default;
    config.only = cli.only.clone();
    config.exclude = cli.exclude.clone();
    config.max_file_bytes = cli.max_file_bytes;
    if let Some(jobs) = cli.jobs {
        config.jobs = jobs;
    }
    config.dry_run = cli.dry_run;
    config.cache_dir = (!cli.no_cache).then(|| match &cli.cache_dir {
        Some(dir) => absolute(&cwd.join(dir)),
        None => config.root.join(DEFAULT_CACHE_DIR),
    });
    config.follow_links = cli.follow_links;
    config.emit_slices = cli.emit_slices || !cli.slices_filter.is_empty();
    config.slices_filter = cli.slices_filter.clone();
    config.emit_ast = cli.emit_ast;
    config.parquet = !cli.no_parquet;
    config.database = !cli.no_parquet && !cli.no_database;
    let existing = |path: &Option<PathBuf>, flag: &str| -> Result<Option<PathBuf>> {
        match path {
            None => Ok(None),
            Some(path) => {
                let path = absolute(&cwd.join(path));
                if !path.is_file() {
                    bail!("{flag}: {} is not a readable file", path.display());
                }
                Ok(Some(path))
            }
        }
    };
    config.inputs.scip = existing(&cli.scip, "--scip")?;
    config.inputs.pyrefly_json = existing(&cli.pyrefly_json, "--pyrefly-json")?;
    config.inputs.coverage_xml = existing(&cli.coverage_xml, "--coverage-xml")?;
    config.inputs.owners = cli.owners;
    config.inputs.history_window_days = cli.history_window_days;
    config.inputs.commits_window = cli.commits_window;
    if let Some(rate) = cli.low_coverage_threshold {
        if !(0.0..=1.0).contains(&rate) {
            bail!("--low-coverage-threshold: {rate} is not a line rate between 0 and 1");
        }
        config.inputs.low_coverage = rate;
    }
    // `[tool.codeintel-enrich]` in pyproject.toml, then the command line.
    let tool = crate::inputs::pyproject::load(&config.root)?;
    let pyproject = config.root.join("pyproject.toml");
    let version = cli.python_version.as_ref().map(|v| ("--python-version", v)).or(tool.python_version.as_ref().map(|v| ("python-version", v)));
    if let Some((from, version)) = version {
        config.target.version = crate::config::PythonTarget::parse_version(version).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
    }
    let platform = cli.python_platform.clone().or(tool.python_platform.clone());
    let thresholds = &mut config.thresholds;
    thresholds.export_hub = cli.export_hub_threshold.or(tool.export_hub_threshold).unwrap_or(thresholds.export_hub);
    thresholds.reexport_hub = tool.reexport_hub_threshold.unwrap_or(thresholds.reexport_hub);
    thresholds.fan_in = tool.fan_in_threshold.unwrap_or(thresholds.fan_in);
    thresholds.params = tool.param_count_threshold.unwrap_or(thresholds.params);
    if let Some(path) = cli.tags_yaml.as_ref().map(|p| cwd.join(p)).or(tool.tags_yaml.clone()) {
        config.tags = crate::inputs::tags_yaml::load(&path)?;
    }
    if let Some(path) = cli.overlays_config.as_ref().map(|p| cwd.join(p)).or(tool.overlays_config.clone()) {
        let set = cli.overlays_set.clone().or(tool.overlays_set.clone());
        config.overlay_set = crate::inputs::overlays_config::load(&path, set.as_deref())?;
    } else if cli.overlays_set.is_some() {
        bail!("--overlays-set needs --overlays-config (or overlays-config in {})", pyproject.display());
    }
    if let Some(platform) = &platform {
        if platform.is_empty() || !platform.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("--python-platform: expected a sys.platform value such as linux, darwin or win32, got {platform:?}");
        }
        config.target.platform = platform.clone();
    }
    config.progress = !cli.quiet && std::io::stderr().is_terminal();
    Ok(config)
}

/// Make `path` absolute and lexically normalized (it may not exist yet).
fn absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    // Resolve symlinks in the part that exists, so that comparisons with walked paths work.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_owned()),
            None => break,
        }
        existing.pop();
    }
    let mut resolved = existing.canonicalize().unwrap_or(existing);
    resolved.extend(rest.iter().rev());
    resolved
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODEINTEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("codeintel_enrich={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("codeintel-enrich: error: {err:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Floor => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let config = construct_config(cli, &cwd)?;
            let floor = crate::floor::measure(&config)?;
            println!("floor: {} files, {} bytes, {:.3}s", floor.files, floor.bytes, floor.seconds);
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(*shell, &mut Cli::command(), "codeintel-enrich", &mut out);
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { paths, stage, json, timings, plan } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let mut config = construct_config(cli, &cwd)?;
            let dir = config.cache_dir.clone().context("explain reads the stage cache; --no-cache leaves nothing to explain")?;
            let log = if *plan {
                config.dry_run = true;
                config.progress = false;
                let report = build::build(&config)?;
                report.run_log.context("no stage cache yet: a build would compute every node")?
            } else {
                crate::explain::read_run_log(&dir)?
            };
            let log = log.filtered(paths, stage.as_deref());
            let text = if *json { log.render_json() } else { log.render_text(*timings) };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query { sql, json, csv, views } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let out = match &cli.out {
                Some(out) => absolute(&cwd.join(out)),
                None => absolute(&cwd.join(&cli.root)).join(DEFAULT_OUT_DIR),
            };
            let conn = crate::query::open(&out)?;
            let mut stdout = std::io::stdout().lock();
            if *views {
                crate::query::views(&conn, &mut stdout)?;
            } else {
                let format = match (json, csv) {
                    (true, _) => crate::query::Format::Json,
                    (_, true) => crate::query::Format::Csv,
                    _ => crate::query::Format::Table,
                };
                crate::query::run(&conn, sql.as_deref().unwrap_or_default(), format, &mut stdout)?;
            }
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache { action } => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let config = construct_config(cli, &cwd)?;
            let dir = config.cache_dir.context("--no-cache: there is no cache to act on")?;
            let mut out = std::io::stdout().lock();
            match action {
                CacheAction::Stats => out.write_all(crate::cache::stats(&dir)?.as_bytes())?,
                CacheAction::Verify => {
                    let (checked, corrupt) = crate::cache::verify(&dir)?;
                    writeln!(out, "{checked} entries checked, {corrupt} corrupt")?;
                    if corrupt > 0 {
                        return Ok(ExitCode::from(EXIT_FILE_ERRORS));
                    }
                }
                CacheAction::Gc => writeln!(out, "{} entries dropped", crate::cache::gc(&dir)?)?,
                CacheAction::Clear => {
                    crate::cache::clear(&dir)?;
                    writeln!(out, "cleared {}", dir.display())?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            let config = construct_config(cli, &cwd)?;
            // One build: its memos are freed once no sink reads them (`Workspace::release`).
            let mut workspace = crate::db::Workspace::one_shot();
            let report = build::build_in(&mut workspace, &config)?;
            // The process exits next: freeing what is left (the inputs of every file, and every
            // memo when the build stopped early — a no-op's were a quarter of it) is left to
            // the operating system.
            std::mem::forget(workspace);
            print_report(cli, &config, &report)?;
            let code = if report.file_errors() > 0 { ExitCode::from(EXIT_FILE_ERRORS) } else { ExitCode::SUCCESS };
            // Its run log too (a node list as long as the tree's).
            std::mem::forget(report);
            Ok(code)
        }
    }
}

fn print_report(cli: &Cli, config: &Config, report: &BuildReport) -> Result<()> {
    let mut err = std::io::stderr().lock();
    // Point at the diagnostics file as the user named the output directory.
    let diagnostics = (!config.dry_run).then(|| {
        let out = cli.out.clone().unwrap_or_else(|| cli.root.join(DEFAULT_OUT_DIR));
        out.join("diagnostics.jsonl").display().to_string()
    });
    let detail = if cli.quiet {
        Detail::Quiet
    } else if cli.verbose > 0 {
        Detail::Verbose
    } else {
        Detail::Normal
    };
    for line in problem_lines(&report.problems, detail, diagnostics.as_deref()) {
        writeln!(err, "codeintel-enrich: {line}")?;
    }
    if config.dry_run {
        let mut out = std::io::stdout().lock();
        for artifact in &report.artifacts {
            writeln!(
                out,
                "would write {} ({} rows, {} bytes)",
                artifact.path, artifact.rows, artifact.bytes
            )?;
        }
    }
    if !cli.quiet {
        writeln!(err, "codeintel-enrich: {}", report.summary_line())?;
        if let Some(log) = &report.run_log {
            for note in &log.notes {
                writeln!(err, "codeintel-enrich: {note}")?;
            }
            writeln!(err, "codeintel-enrich: {}", log.summary_line())?;
        }
    }
    Ok(())
}

/// How much of the problem list a build prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// `--quiet`: file errors only.
    Quiet,
    /// Default: file errors (bounded), then one grouped line per other kind.
    Normal,
    /// `-v`: every problem on its own line, then the grouped lines.
    Verbose,
}

/// File errors printed one per line by default; the rest are counted in one line.
const FILE_ERROR_LINES: usize = 20;
/// Unresolved import targets named in the grouped line.
const TOP_TARGETS: usize = 5;
/// Example paths named in the grouped line of the other kinds.
const EXAMPLE_PATHS: usize = 3;

/// The stderr lines (without the `codeintel-enrich: ` prefix) that report `problems`
/// (sorted by path). File errors are named one by one because a user must see which files
/// were lost; everything else is grouped per kind, most frequent first, pointing at
/// `diagnostics` (absent in a dry run), which always holds every problem.
fn problem_lines(problems: &[Problem], detail: Detail, diagnostics: Option<&str>) -> Vec<String> {
    let see = diagnostics.map(|path| format!(" — see {path}")).unwrap_or_default();
    let one = |p: &Problem| match p.line {
        Some(line) => format!("{}: {}:{line}: {}", p.kind.label(), p.path, p.message),
        None => format!("{}: {}: {}", p.kind.label(), p.path, p.message),
    };
    let mut lines = Vec::new();
    if detail == Detail::Verbose {
        lines.extend(problems.iter().map(one));
    } else {
        let errors: Vec<&Problem> = problems.iter().filter(|p| p.kind.is_file_error()).collect();
        lines.extend(errors.iter().take(FILE_ERROR_LINES).map(|p| one(p)));
        if errors.len() > FILE_ERROR_LINES {
            let rest = &errors[FILE_ERROR_LINES..];
            let kinds = ranked(rest.iter().map(|p| p.kind.label()))
                .into_iter()
                .map(|(label, count)| format!("{count} {label}"))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!("and {} more file errors ({kinds}){see}", rest.len()));
        }
    }
    if detail == Detail::Quiet {
        return lines;
    }
    let mut groups: Vec<(usize, &str, String)> = Vec::new();
    let kinds: std::collections::BTreeSet<ProblemKind> =
        problems.iter().map(|p| p.kind).filter(|k| !k.is_file_error()).collect();
    for kind in kinds {
        let of_kind: Vec<&Problem> = problems.iter().filter(|p| p.kind == kind).collect();
        let (mut examples, more) = if kind == ProblemKind::UnresolvedImport {
            let targets = ranked(of_kind.iter().map(|p| p.import_target().unwrap_or(&p.message)));
            let shown: Vec<String> =
                targets.iter().take(TOP_TARGETS).map(|(target, count)| format!("{target} ×{count}")).collect();
            (shown, targets.len() > TOP_TARGETS)
        } else {
            let shown: Vec<String> = of_kind
                .iter()
                .take(EXAMPLE_PATHS)
                .map(|p| match p.line {
                    Some(line) => format!("{}:{line}", p.path),
                    None => p.path.clone(),
                })
                .collect();
            (shown, of_kind.len() > EXAMPLE_PATHS)
        };
        if more {
            examples.push("…".to_string());
        }
        let noun = plural(kind, of_kind.len());
        groups.push((of_kind.len(), noun, format!("{} {noun} ({}){see}", of_kind.len(), examples.join(", "))));
    }
    groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    lines.extend(groups.into_iter().map(|(_, _, line)| line));
    lines
}

/// Distinct values with their counts, most frequent first, then by value.
fn ranked<'a>(values: impl Iterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
}

/// What `count` problems of `kind` are, for the grouped line.
fn plural(kind: ProblemKind, count: usize) -> &'static str {
    let (one, many) = match kind {
        ProblemKind::Oversized => ("oversized file skipped", "oversized files skipped"),
        ProblemKind::Unreadable => ("unreadable file", "unreadable files"),
        ProblemKind::Undecodable => ("undecodable file", "undecodable files"),
        ProblemKind::SymlinkLoop => ("symlink loop not followed", "symlink loops not followed"),
        ProblemKind::InvalidPath => ("file with an invalid path", "files with invalid paths"),
        ProblemKind::Syntax => ("module with syntax errors", "modules with syntax errors"),
        ProblemKind::UnresolvedImport => ("unresolved import", "unresolved imports"),
        ProblemKind::AllUnbound => ("__all__ name never bound", "__all__ names never bound"),
        ProblemKind::AllDuplicate => ("duplicate __all__ entry", "duplicate __all__ entries"),
        ProblemKind::MissingDocstring => ("public module without a docstring", "public modules without a docstring"),
        ProblemKind::StubMismatch => ("stub that differs from its module's exports", "stubs that differ from their module's exports"),
        ProblemKind::InputUnmatched => ("input with paths matching no module", "inputs with paths matching no module"),
        ProblemKind::CodeownersLine => ("CODEOWNERS line skipped", "CODEOWNERS lines skipped"),
        ProblemKind::InputNote => ("input not joined", "inputs not joined"),
    };
    if count == 1 { one } else { many }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
