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
        }
    }
}
