//! The plain, documented configuration every layer below the CLI reads.
//!
//! Built by `cli::construct_config` (or directly by tests and embedders); nothing here knows
//! about clap.

use std::path::PathBuf;

/// Default limit on the size of a source file, in bytes: larger files are skipped and reported.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Name of the output directory used when `--out` is not given, relative to the root.
pub const DEFAULT_OUT_DIR: &str = ".codeintel";

/// Name of the cache directory used when `--cache-dir` is not given, relative to the root.
pub const DEFAULT_CACHE_DIR: &str = ".codeintel-cache";

/// The Python a build evaluates conditions for: `sys.version_info`, `sys.platform` and
/// `os.name` tests at module level are decided against it (as pyright's `pythonVersion` and
/// `pythonPlatform` do). Part of the cache keys; never read from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PythonTarget {
    /// (major, minor).
    pub version: (u32, u32),
    /// `sys.platform`: `linux`, `darwin`, `win32`, `cygwin`, `emscripten`, `wasi`, …
    pub platform: String,
}

/// The default target: documented in the README (`--python-version`, `--python-platform`).
pub const DEFAULT_PYTHON_VERSION: (u32, u32) = (3, 13);
/// The default `sys.platform`.
pub const DEFAULT_PYTHON_PLATFORM: &str = "linux";

impl Default for PythonTarget {
    fn default() -> Self {
        PythonTarget { version: DEFAULT_PYTHON_VERSION, platform: DEFAULT_PYTHON_PLATFORM.to_string() }
    }
}

impl PythonTarget {
    /// `os.name` on this platform.
    pub fn os_name(&self) -> &'static str {
        if self.platform == "win32" { "nt" } else { "posix" }
    }

    /// `3.11 linux`, as the cache keys and `explain` show it.
    pub fn describe(&self) -> String {
        format!("{}.{} {}", self.version.0, self.version.1, self.platform)
    }

    /// Parse `--python-version` (`3.11`).
    pub fn parse_version(text: &str) -> Result<(u32, u32), String> {
        let (major, minor) = text.trim().split_once('.').ok_or_else(|| format!("expected MAJOR.MINOR, got {text:?}"))?;
        let major: u32 = major.parse().map_err(|_| format!("invalid major version in {text:?}"))?;
        let minor: u32 = minor.parse().map_err(|_| format!("invalid minor version in {text:?}"))?;
        if major != 3 {
            return Err(format!("only Python 3 is supported, got {text:?}"));
        }
        Ok((major, minor))
    }
}

/// Thresholds of the computed tags and the overlay decision (`[tool.codeintel-enrich]` in
/// `pyproject.toml`, or the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Thresholds {
    /// `export-hub`: a module whose exports (every path or some) number at least this; such a
    /// module gets an overlay.
    pub export_hub: u32,
    /// `reexport-hub`: a module re-exporting at least this many names.
    pub reexport_hub: u32,
    /// `fan-in-hub`: a module at least this many internal modules import.
    pub fan_in: u32,
    /// `many-params`: a module with a function of at least this many parameters.
    pub params: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { export_hub: 50, reexport_hub: 20, fan_in: 20, params: 10 }
    }
}

/// A record field a tag rule compares (counts of `modules.jsonl` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleField {
    FanIn,
    FanOut,
    Exports,
    ExportsMaybe,
    Reexports,
    StarImports,
    Lines,
    Symbols,
    Imports,
    ParseErrors,
}

impl RuleField {
    pub const ALL: [(&'static str, RuleField); 10] = [
        ("fan_in", RuleField::FanIn),
        ("fan_out", RuleField::FanOut),
        ("exports", RuleField::Exports),
        ("exports_maybe", RuleField::ExportsMaybe),
        ("reexports", RuleField::Reexports),
        ("star_imports", RuleField::StarImports),
        ("lines", RuleField::Lines),
        ("symbols", RuleField::Symbols),
        ("imports", RuleField::Imports),
        ("parse_errors", RuleField::ParseErrors),
    ];
}

/// A comparison operator of a tag rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RuleOp {
    Lt,
    Le,
    Eq,
    Ne,
    Gt,
    Ge,
}

/// One condition of a tag rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RuleCondition {
    /// `fan_in >= 20`
    Compare { field: RuleField, op: RuleOp, value: u64 },
    /// `tags contains star-import`
    HasTag(String),
    /// `not tags contains test`
    LacksTag(String),
}

/// A manual tag: given to modules whose path matches one of `paths` (when given) and that
/// meet every condition of `when` (when given).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TagRule {
    pub tag: String,
    /// Repo-relative path globs (any matches).
    pub paths: Vec<String>,
    pub when: Vec<RuleCondition>,
}

/// A user pattern tag: a tree-sitter query; a module whose tree matches gets the tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct UserQuery {
    pub tag: String,
    pub source: String,
}

/// Manual tags from `--tags-yaml` (see the README for the schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TagsConfig {
    pub rules: Vec<TagRule>,
    pub queries: Vec<UserQuery>,
}

/// A named set of modules that get overlays besides the ones the decision always selects:
/// a module is in the set when it meets every criterion given (a list: any of its items).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct OverlaySet {
    pub name: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub min_exports: Option<u32>,
    pub min_fan_in: Option<u32>,
    pub min_params: Option<u32>,
}

/// Which external inputs a build joins (`--scip`, `--coverage-xml`, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputsConfig {
    pub scip: Option<PathBuf>,
    pub pyrefly_json: Option<PathBuf>,
    pub coverage_xml: Option<PathBuf>,
    /// Join CODEOWNERS (found where GitHub looks).
    pub owners: bool,
    /// Git history in the last N days before HEAD's commit date…
    pub history_window_days: Option<u32>,
    /// …and/or the last N commits.
    pub commits_window: Option<u32>,
    /// `low-coverage` tag under this line rate.
    pub low_coverage: f64,
}

/// The default `--low-coverage-threshold`.
pub const DEFAULT_LOW_COVERAGE: f64 = 0.5;

impl InputsConfig {
    /// Whether any external input is joined.
    pub fn any(&self) -> bool {
        self.scip.is_some() || self.pyrefly_json.is_some() || self.coverage_xml.is_some() || self.owners || self.history()
    }

    pub fn history(&self) -> bool {
        self.history_window_days.is_some() || self.commits_window.is_some()
    }
}

/// Everything a build needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The repository to scan (absolute, canonical).
    pub root: PathBuf,
    /// Where artifacts are written (absolute). Never scanned.
    pub out: PathBuf,
    /// Whether `out` is the default directory (then it gets a `.gitignore` of its own).
    pub out_is_default: bool,
    /// Repo-relative globs; when non-empty only matching `.py` files are processed.
    pub only: Vec<String>,
    /// Repo-relative globs; matching files and directories are skipped (directories are not
    /// descended into).
    pub exclude: Vec<String>,
    /// Files larger than this many bytes are skipped and reported.
    pub max_file_bytes: u64,
    /// Worker threads (>= 1).
    pub jobs: usize,
    /// Compute everything but write nothing; report what would be written.
    pub dry_run: bool,
    /// Descend into symlinked directories (loops are detected and reported).
    pub follow_links: bool,
    /// The persistent stage cache directory; `None` computes everything in memory.
    pub cache_dir: Option<PathBuf>,
    /// Show a progress bar (only honoured when stderr is a terminal).
    pub progress: bool,
    /// The Python version and platform conditions are decided for.
    pub target: PythonTarget,
    /// Thresholds of computed tags and of the overlay decision.
    pub thresholds: Thresholds,
    /// Manual tags and user pattern tags (`--tags-yaml`).
    pub tags: TagsConfig,
    /// The overlay set chosen with `--overlays-set` from `--overlays-config`, if any.
    pub overlay_set: Option<OverlaySet>,
    /// Write `slices/<path>.json` for the modules `slices_filter` selects (all when empty).
    pub emit_slices: bool,
    /// Repo-relative globs selecting the modules that get slices.
    pub slices_filter: Vec<String>,
    /// Write each module's syntax tree as JSON under `ast/`.
    pub emit_ast: bool,
    /// External inputs joined with the modules.
    pub inputs: InputsConfig,
    /// Write the Parquet dataset (`parquet/<table>/package=<name>/`).
    pub parquet: bool,
    /// Keep the embedded database `codeintel.duckdb` in step (loaded from the dataset, so it
    /// needs `parquet`).
    pub database: bool,
}

impl Config {
    /// A configuration with the defaults for `root`, writing to `out`.
    pub fn new(root: PathBuf, out: PathBuf) -> Self {
        Config {
            root,
            out,
            out_is_default: false,
            only: Vec::new(),
            exclude: Vec::new(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            dry_run: false,
            follow_links: false,
            progress: false,
            cache_dir: None,
            target: PythonTarget::default(),
            thresholds: Thresholds::default(),
            tags: TagsConfig::default(),
            overlay_set: None,
            emit_slices: false,
            slices_filter: Vec::new(),
            emit_ast: false,
            inputs: InputsConfig { low_coverage: DEFAULT_LOW_COVERAGE, ..InputsConfig::default() },
            parquet: true,
            database: true,
        }
    }
}
