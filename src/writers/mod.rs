//! Writers: turn rows into deterministic bytes and write them atomically.
//!
//! Every artifact is rendered in memory first ([`Artifact`]), so `--dry-run` can report what
//! would be written and a failure never leaves a half-written file: each file is written to a
//! temporary file in the same directory and renamed over the old one.

pub mod ast;
pub mod duckdb;
pub mod jsonl;
pub mod parquet;
pub mod slices;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// One output file.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    pub rows: usize,
    pub bytes: usize,
    /// blake3 of the bytes.
    pub hash: [u8; 32],
    pub body: Body,
}

/// Where an artifact's bytes are.
#[derive(Debug, Clone)]
pub enum Body {
    /// Rendered in memory, to be written.
    Contents(Vec<u8>),
    /// Already in the output directory (verified): nothing to write.
    OnDisk,
    /// In this file elsewhere (verified): linked, or copied, into place.
    Linked(std::path::PathBuf),
    /// Written by this build to a temporary file beside its place (a syntax tree): renamed
    /// into place.
    Staged(std::path::PathBuf),
}

impl Artifact {
    pub fn new(path: impl Into<String>, rows: usize, contents: Vec<u8>) -> Self {
        let hash = hash_large(&contents);
        Artifact { path: path.into(), rows, bytes: contents.len(), hash, body: Body::Contents(contents) }
    }

    /// An artifact the output directory already holds, as the last build recorded it.
    pub fn on_disk(path: impl Into<String>, rows: usize, bytes: usize, hash: [u8; 32]) -> Self {
        Artifact { path: path.into(), rows, bytes, hash, body: Body::OnDisk }
    }

    /// An artifact whose bytes are those of the file `source`.
    pub fn linked(path: impl Into<String>, rows: usize, bytes: usize, hash: [u8; 32], source: std::path::PathBuf) -> Self {
        Artifact { path: path.into(), rows, bytes, hash, body: Body::Linked(source) }
    }
}

/// blake3 of a possibly large buffer, on every core for large ones (artifacts reach 100 MB).
pub fn hash_large(bytes: &[u8]) -> [u8; 32] {
    if bytes.len() < 1 << 20 {
        return *blake3::hash(bytes).as_bytes();
    }
    *blake3::Hasher::new().update_rayon(bytes).finalize().as_bytes()
}

/// How an artifact in the output directory compared with what the last build recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intact {
    /// Its stat is the recorded one, outside the racy window: not read.
    ByStat,
    /// Read and hashed: the recorded bytes.
    ByHash,
    /// Absent, or other bytes.
    No,
}

impl Intact {
    pub fn yes(self) -> bool {
        self != Intact::No
    }
}

/// Whether `dir/path` still holds the `bytes` bytes hashing to `hash` that the last build
/// wrote: trusted by its recorded `stat` when that vouches for it, else read and hashed.
pub fn artifact_intact(dir: &Path, path: &str, bytes: usize, hash: [u8; 32], stat: Option<&crate::stat::StatEntry>) -> Intact {
    let file = dir.join(path);
    let Ok(meta) = std::fs::metadata(&file) else { return Intact::No };
    if meta.len() != bytes as u64 {
        return Intact::No;
    }
    if stat.is_some_and(|e| e.hash.0 == hash && e.trusted_for(&crate::stat::Stat::of(&meta))) {
        return Intact::ByStat;
    }
    match std::fs::read(&file) {
        Ok(contents) if contents.len() == bytes && hash_large(&contents) == hash => Intact::ByHash,
        _ => Intact::No,
    }
}

/// Put a copy of the file `source` at `path` atomically: a hard link to a temporary name
/// renamed over `path`, or a copy when linking is impossible.
pub fn link_atomic(source: &Path, path: &Path) -> Result<()> {
    let dir = path.parent().context("output path has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?
        .into_temp_path();
    let tmp_path = tmp.to_path_buf();
    std::fs::remove_file(&tmp_path).with_context(|| format!("cannot replace {}", tmp_path.display()))?;
    if std::fs::hard_link(source, &tmp_path).is_err() {
        std::fs::copy(source, &tmp_path).with_context(|| format!("cannot copy {} to {}", source.display(), path.display()))?;
    }
    tmp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Write `contents` to `path` atomically (temporary file in the same directory, fsync,
/// rename). An existing file with identical bytes is left untouched.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    let dir = path.parent().context("output path has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(contents).with_context(|| format!("cannot write {}", path.display()))?;
    // Temporary files are created 0600; outputs are ordinary readable files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o777);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    tmp.as_file().sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    tmp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
