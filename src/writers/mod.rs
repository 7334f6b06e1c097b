//! Writers: turn rows into deterministic bytes and write them atomically.
//!
//! Every artifact is rendered in memory first ([`Artifact`]), so `--dry-run` can report what
//! would be written and a failure never leaves a half-written file: each file is written to a
//! temporary file in the same directory and renamed over the old one.

pub mod jsonl;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// One rendered output file.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    pub rows: usize,
    pub bytes: usize,
    pub contents: Vec<u8>,
    /// blake3 of `contents`.
    pub hash: [u8; 32],
}

impl Artifact {
    pub fn new(path: impl Into<String>, rows: usize, contents: Vec<u8>) -> Self {
        let hash = *blake3::hash(&contents).as_bytes();
        Artifact { path: path.into(), rows, bytes: contents.len(), contents, hash }
    }
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
