//! Discovery: walk the root with the `ignore` crate (honouring `.gitignore`, `.ignore` and
//! hidden files, plus `--exclude` globs) and list the `.py` files to process, sorted by
//! repo-relative path; `--only` globs narrow the files (not the directories walked).
//!
//! Never descends into the output directory, the cache directory, any directory holding the output marker (an
//! output directory of an earlier run, wherever it was), or the root-level `stubs/` and
//! `overlays/` directories. Oversized files, unreadable entries and symlink loops become
//! [`Problem`]s; they never stop the walk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::{DirEntry, WalkBuilder, WalkState};

use crate::config::Config;
use crate::diagnostics::{Problem, ProblemKind};

/// File written into every output directory; a directory holding it is never scanned.
pub const OUTPUT_MARKER: &str = ".codeintel-enrich-output";

/// Root-level directories that hold generated stubs and are never scanned.
const GENERATED_TOP_LEVEL_DIRS: &[&str] = &["stubs", "overlays"];

/// A source file to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// Repo-relative path with `/` separators.
    pub rel_path: String,
    /// Where to read it.
    pub abs_path: PathBuf,
    /// Its stat during the walk: the load phase trusts or re-reads the file by it instead of
    /// taking a second one (on the generated 100k tree the second stat pass took ~0.2 s).
    pub stat: crate::stat::Stat,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Sorted by `rel_path`.
    pub files: Vec<FoundFile>,
    pub problems: Vec<Problem>,
    /// `<root>/src` exists and is not itself a package: modules under it drop the `src/` prefix.
    pub src_layout: bool,
    /// Stubs beside sources: the `.py` path a `.pyi` sits next to (`pkg/mod.pyi` for
    /// `pkg/mod.py`) → where to read the stub. Never modules of their own.
    pub stubs: std::collections::BTreeMap<String, PathBuf>,
    /// Compiled extension modules beside sources: the `.py` path an extension shadows
    /// (`pkg/cd.py` for `pkg/cd.cpython-311-x86_64-linux-gnu.so`) → the extension's file name.
    /// CPython imports the extension, not the source.
    pub extensions: std::collections::BTreeMap<String, String>,
    /// Wall-clock nanoseconds just before the walk: every file's `stat` was taken after it
    /// (the racy-timestamp rule of [`crate::stat`] counts from here, which is conservative).
    pub stat_taken_ns: i128,
}

/// Walk `config.root` and list the Python sources to process.
pub fn discover(config: &Config) -> Result<Discovery> {
    let root = config.root.clone();
    let only = build_globset(&config.only)?;
    let out = config.out.clone();
    let cache = config.cache_dir.clone();
    let exclude = build_globset(&config.exclude)?;

    let stat_taken_ns = crate::stat::now_ns();
    let mut builder = WalkBuilder::new(&root);
    builder
        .follow_links(config.follow_links)
        .require_git(false)
        .threads(config.jobs)
        .filter_entry({
            let root = root.clone();
            move |entry| keep_entry(entry, &root, &out, cache.as_deref(), exclude.as_ref())
        });

    let files = Mutex::new(Vec::new());
    let problems = Mutex::new(Vec::new());
    builder.build_parallel().run(|| {
        let (root, only, files, problems) = (&root, &only, &files, &problems);
        Box::new(move |result| {
            match result {
                Ok(entry) => {
                    match classify(entry, root, only.as_ref(), config.max_file_bytes) {
                        Some(Ok(file)) => files.lock().unwrap().push(file),
                        Some(Err(problem)) => problems.lock().unwrap().push(problem),
                        None => {}
                    }
                }
                Err(err) => problems.lock().unwrap().push(walk_problem(&err, root)),
            }
            WalkState::Continue
        })
    });

    let (extension_files, files): (Vec<FoundFile>, Vec<FoundFile>) =
        files.into_inner().unwrap().into_iter().partition(|f| f.rel_path.ends_with(".so") || f.rel_path.ends_with(".pyd"));
    let extensions = extension_files
        .into_iter()
        .filter_map(|f| {
            let (dir, name) = f.rel_path.rsplit_once('/').map_or(("", f.rel_path.as_str()), |(d, n)| (d, n));
            let stem = name.split('.').next()?;
            let source = if dir.is_empty() { format!("{stem}.py") } else { format!("{dir}/{stem}.py") };
            Some((source, name.to_string()))
        })
        .collect();
    let (stub_files, mut files): (Vec<FoundFile>, Vec<FoundFile>) =
        files.into_iter().partition(|f| f.rel_path.ends_with(".pyi"));
    // Paths are unique but for a file reached twice (the same path: either copy will do).
    files.sort_unstable_by(|a, b| a.rel_path.cmp(&b.rel_path));
    files.dedup_by(|a, b| a.rel_path == b.rel_path);
    let stubs = stub_files
        .into_iter()
        .map(|f| (f.rel_path.strip_suffix('i').unwrap_or(&f.rel_path).to_string(), f.abs_path))
        .collect();
    let mut problems = problems.into_inner().unwrap();
    problems.sort();
    let src = root.join("src");
    let src_layout = src.is_dir() && !src.join("__init__.py").exists();
    Ok(Discovery { files, problems, src_layout, stubs, extensions, stat_taken_ns })
}

fn build_globset(globs: &[String]) -> Result<Option<GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        builder.add(Glob::new(glob).with_context(|| format!("invalid glob {glob:?}"))?);
    }
    Ok(Some(builder.build()?))
}

fn keep_entry(entry: &DirEntry, root: &Path, out: &Path, cache: Option<&Path>, exclude: Option<&GlobSet>) -> bool {
    if entry.depth() == 0 {
        return true;
    }
    let path = entry.path();
    if let Some(exclude) = exclude {
        let rel = path.strip_prefix(root).unwrap_or(path);
        if portable_path(rel).is_some_and(|rel| exclude.is_match(rel)) {
            return false;
        }
    }
    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
    if !is_dir {
        return true;
    }
    if path == out || Some(path) == cache || path.join(OUTPUT_MARKER).exists() {
        return false;
    }
    if entry.depth() == 1
        && path.parent() == Some(root)
        && entry.file_name().to_str().is_some_and(|n| GENERATED_TOP_LEVEL_DIRS.contains(&n))
    {
        return false;
    }
    true
}

fn classify(
    entry: DirEntry,
    root: &Path,
    only: Option<&GlobSet>,
    max_file_bytes: u64,
) -> Option<Result<FoundFile, Problem>> {
    let path = entry.path();
    if path.extension().is_none_or(|ext| ext != "py" && ext != "pyi" && ext != "so" && ext != "pyd") {
        return None;
    }
    let file_type = entry.file_type()?;
    // A symlink that is not followed still names a module when it points at a file.
    let metadata = if file_type.is_symlink() { std::fs::metadata(path) } else { entry.metadata().map_err(std::io::Error::other) };
    let rel = path.strip_prefix(root).unwrap_or(path);
    let Some(rel_path) = portable_path(rel) else {
        return Some(Err(Problem::new(
            rel.to_string_lossy(),
            ProblemKind::InvalidPath,
            "path is not valid UTF-8",
        )));
    };
    if only.is_some_and(|set| !set.is_match(&rel_path)) {
        return None;
    }
    let metadata = match metadata {
        Ok(m) => m,
        Err(err) => return Some(Err(Problem::new(rel_path, ProblemKind::Unreadable, err.to_string()))),
    };
    if !metadata.is_file() {
        return None;
    }
    // Compiled extensions and stubs are only noted beside sources: their size does not matter.
    let source = rel_path.ends_with(".py");
    if source && metadata.len() > max_file_bytes {
        let message = format!("{} bytes is over --max-file-bytes {}", metadata.len(), max_file_bytes);
        return Some(Err(Problem::new(rel_path, ProblemKind::Oversized, message)));
    }
    Some(Ok(FoundFile { rel_path, abs_path: path.to_path_buf(), stat: crate::stat::Stat::of(&metadata) }))
}

/// A repo-relative path as a `/`-separated string, or `None` when it is not valid UTF-8.
pub fn portable_path(rel: &Path) -> Option<String> {
    let mut out = String::new();
    for component in rel.components() {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(component.as_os_str().to_str()?);
    }
    Some(out)
}

fn walk_problem(err: &ignore::Error, root: &Path) -> Problem {
    fn rel(path: &Path, root: &Path) -> String {
        let rel = path.strip_prefix(root).unwrap_or(path);
        portable_path(rel).unwrap_or_else(|| rel.to_string_lossy().into_owned())
    }
    let mut err = err;
    loop {
        match err {
            ignore::Error::WithDepth { err: inner, .. } | ignore::Error::WithLineNumber { err: inner, .. } => {
                err = inner;
            }
            ignore::Error::Loop { ancestor, child } => {
                return Problem::new(
                    rel(child, root),
                    ProblemKind::SymlinkLoop,
                    format!("links back to its ancestor {}", rel(ancestor, root)),
                );
            }
            ignore::Error::WithPath { err: inner, .. } if matches!(**inner, ignore::Error::Loop { .. }) => {
                err = inner;
            }
            ignore::Error::WithPath { path, err: inner } => {
                return Problem::new(rel(path, root), ProblemKind::Unreadable, inner.to_string());
            }
            other => return Problem::new("", ProblemKind::Unreadable, other.to_string()),
        }
    }
}
