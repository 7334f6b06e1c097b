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
        }
    }
}
