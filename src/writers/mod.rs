//! Writers: turn rows into deterministic bytes and write them atomically.
//!
//! An artifact is rendered in memory ([`Body::Contents`]) or, when large, streamed to a
//! temporary file beside its place ([`stage`], [`Body::Staged`]); either way a failure never
//! leaves a half-written file: every file is written to a temporary file in the same
//! directory and renamed over the old one.

pub mod ast;
pub mod duckdb;
pub mod jsonl;
pub mod parquet;
pub mod slices;

use std::io::{Read as _, Write};
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
    /// Already in the output directory (verified): nothing to write. `vouched`: verified by
    /// the stat the last build recorded (then that stat is still the file's, see
    /// [`crate::sinks::artifact_stats`]), not by reading it.
    OnDisk { vouched: bool },
    /// In this file elsewhere (verified): linked, or copied, into place.
    Linked(std::path::PathBuf),
    /// Written by this build to a temporary file beside its place (a row artifact, a syntax
    /// tree, see [`stage`]): renamed into place, unless the file there has these bytes.
    Staged(std::path::PathBuf),
}

impl Artifact {
    pub fn new(path: impl Into<String>, rows: usize, contents: Vec<u8>) -> Self {
        let hash = hash_large(&contents);
        Artifact { path: path.into(), rows, bytes: contents.len(), hash, body: Body::Contents(contents) }
    }

    /// An artifact the output directory already holds, as the last build recorded it, as
    /// [`BuildRecord::intact`](crate::cache::BuildRecord::intact) found it.
    pub fn on_disk(path: impl Into<String>, rows: usize, bytes: usize, hash: [u8; 32], found: Intact) -> Self {
        Artifact { path: path.into(), rows, bytes, hash, body: Body::OnDisk { vouched: found == Intact::ByStat } }
    }

    /// An artifact whose bytes are those of the file `source`.
    pub fn linked(path: impl Into<String>, rows: usize, bytes: usize, hash: [u8; 32], source: std::path::PathBuf) -> Self {
        Artifact { path: path.into(), rows, bytes, hash, body: Body::Linked(source) }
    }
}

/// Write an artifact through `write` into a temporary file beside its place `out/path`,
/// hashing the bytes as they go: an artifact for [`Body::Staged`], renamed into place with the
/// others. Large artifacts are streamed this way rather than held in memory: copying a 395 MB
/// `symbols.jsonl` through a buffer of its size faulted in as many fresh pages again.
pub fn stage(out: &Path, path: &str, rows: usize, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<Artifact> {
    let target = out.join(path);
    let mut file = temporary_beside(&target)?;
    let mut writer =
        HashingWriter { inner: std::io::BufWriter::with_capacity(1 << 16, file.as_file_mut()), hasher: blake3::Hasher::new(), bytes: 0, sent: 0 };
    write(&mut writer).with_context(|| format!("cannot write {path}"))?;
    writer.inner.flush().with_context(|| format!("cannot write {path}"))?;
    let (hash, bytes) = (*writer.hasher.finalize().as_bytes(), writer.bytes);
    writer.send(0);
    drop(writer);
    let (_, staged) = file.keep().with_context(|| format!("cannot keep the staged {path}"))?;
    Ok(Artifact { path: path.to_string(), rows, bytes, hash, body: Body::Staged(staged) })
}

/// Hashes what passes through to the file, and starts writing it to the device every
/// [`WRITEBACK_BYTES`] (see [`start_writeback`]).
struct HashingWriter<'a> {
    inner: std::io::BufWriter<&'a mut std::fs::File>,
    hasher: blake3::Hasher,
    bytes: usize,
    /// Bytes handed to the device so far.
    sent: usize,
}

/// How much of a staged file is written before its writeback starts.
const WRITEBACK_BYTES: usize = 8 << 20;

impl HashingWriter<'_> {
    /// Start the writeback of what reached the file since the last call, once that is at least
    /// `least` bytes.
    fn send(&mut self, least: usize) {
        let written = self.bytes - self.inner.buffer().len();
        if written - self.sent >= least.max(1) {
            start_writeback(self.inner.get_ref(), self.sent, written - self.sent);
            self.sent = written;
        }
    }
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Runs copied from a previous artifact come in large chunks: hashed on every core.
        if n >= 1 << 17 {
            self.hasher.update_rayon(&buf[..n]);
        } else {
            self.hasher.update(&buf[..n]);
        }
        self.bytes += n;
        self.send(WRITEBACK_BYTES);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary file (`.tmp-*`, removed by the next build if this one is killed) in the
/// directory of `target`, which is created if missing, with the mode `target` has (a new
/// file: 0644; temporary files are created 0600, outputs are ordinary readable files).
fn temporary_beside(target: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = target.parent().context("output path has no parent directory")?;
    let existing = std::fs::metadata(target).ok();
    if existing.is_none() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = existing.map_or(0o644, |m| m.permissions().mode() & 0o777);
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    builder.tempfile_in(dir).with_context(|| format!("cannot create a temporary file in {}", dir.display()))
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

/// Where the cache's `kept` directory holds its copy of artifact `name`: one flat directory
/// (`/` escaped as `%2F`, `%` as `%25`), so keeping a thousand partition files creates no
/// directories — `mkdir` was a third of a cold standard-library build's write phase.
pub fn kept_path(kept: &Path, name: &str) -> std::path::PathBuf {
    kept.join(name.replace('%', "%25").replace('/', "%2F"))
}

/// Whether `file` still holds the `bytes` bytes hashing to `hash` that the last build
/// wrote: trusted by its recorded `stat` when that vouches for it, else read and hashed.
pub fn artifact_intact(file: &Path, bytes: usize, hash: [u8; 32], stat: Option<&crate::stat::StatEntry>) -> Intact {
    let Ok(meta) = std::fs::metadata(file) else { return Intact::No };
    if meta.len() != bytes as u64 {
        return Intact::No;
    }
    if stat.is_some_and(|e| e.hash.0 == hash && e.trusted_for(&crate::stat::Stat::of(&meta))) {
        return Intact::ByStat;
    }
    match hash_file(file) {
        Some(read) if read == hash => Intact::ByHash,
        _ => Intact::No,
    }
}

/// blake3 of the file `path`, read a chunk at a time (no buffer of its size: row artifacts
/// reach hundreds of megabytes); `None` when it cannot be read.
pub fn hash_file(path: &Path) -> Option<[u8; 32]> {
    let file = std::fs::File::open(path).ok()?;
    Some(*blake3::Hasher::new().update_reader(file).ok()?.finalize().as_bytes())
}

/// Start writing `len` bytes of `file` from `offset` to its device, without waiting for them
/// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`; a hint: failures are ignored). Staged
/// files are renamed over the last build's, and ext4 (`auto_da_alloc`) flushes a file renamed
/// over another inside `rename`: on the 100k-module tree, renaming the three row artifacts of
/// an edit (700 MB) waited 0.25-0.44 s there with the cores idle (perf: `ext4_rename` →
/// `filemap_fdatawrite`). Started as the bytes are written, that I/O overlaps the writing and
/// the sinks after it; [`sync_file_system`] waits for what is left before the build record
/// names the outputs (0.05-0.3 s in single runs of the same edit: the device is the limit).
pub fn start_writeback(file: &std::fs::File, offset: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        // SAFETY: the descriptor is open for the call (`file` is borrowed); no memory is passed.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset as libc::off64_t, len as libc::off64_t, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
    }
}

/// Flush everything written to the file system that holds `dir` to its device (`syncfs`),
/// so the build record committed next never names outputs a power loss could take back.
/// One call after all of a build's writes: on the standard library, one `fsync` per file
/// (1,300 files) took 0.83 s summed over threads, one `syncfs` 0.06 s (strace, this machine).
pub fn sync_file_system(dir: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let handle = std::fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        // SAFETY: `syncfs` only reads the descriptor, which `handle` keeps open.
        if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot sync the file system of {}", dir.display()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
    }
    Ok(())
}

/// Put a copy of the file `source` at `path` atomically: a hard link at `path` when nothing
/// is there, else a hard link (or a copy when linking is impossible) to a temporary name
/// renamed over `path`.
pub fn link_atomic(source: &Path, path: &Path) -> Result<()> {
    let dir = path.parent().context("output path has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    // Nothing there yet (a cold build): the link appears whole or not at all.
    if std::fs::hard_link(source, path).is_ok() {
        return Ok(());
    }
    let tmp = dir.join(format!(".tmp-link-{}-{}", std::process::id(), TEMPORARY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(source, &tmp).is_err() {
        std::fs::copy(source, &tmp).with_context(|| format!("cannot copy {} to {}", source.display(), path.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Prefix of the links [`set_aside`] makes.
pub const SET_ASIDE_PREFIX: &str = ".tmp-aside-";

/// A second link to `path` in `dir` (same file system; a temporary name), so that replacing
/// `path` does not free its blocks; `None` when it cannot be made (the replacement then frees
/// them).
pub fn set_aside(path: &Path, dir: &Path) -> Option<std::path::PathBuf> {
    let aside = dir.join(format!("{SET_ASIDE_PREFIX}{}-{}", std::process::id(), TEMPORARY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::hard_link(path, &aside).ok().map(|()| aside)
}

/// Numbers this process's temporary link names (unique with the process id).
static TEMPORARY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Write `contents` to `path` atomically (temporary file in the same directory, renamed over
/// `path`): a killed build leaves the old file or the new one, never a mix. Not synced here:
/// one [`sync_file_system`] after all of a build's writes costs one flush instead of one per
/// file. An existing file with identical bytes is left untouched.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    if let Ok(mut file) = std::fs::File::open(path) {
        // Different lengths, different bytes: nothing to read.
        if file.metadata().is_ok_and(|m| m.len() == contents.len() as u64) {
            let mut old = Vec::with_capacity(contents.len());
            if file.read_to_end(&mut old).is_ok() && old == contents {
                return Ok(());
            }
        }
    }
    replace_atomic(path, contents)
}

/// [`write_atomic`] for bytes known to differ from the file's (the last build recorded another
/// hash for it): the old file is not read. Rewriting a 7.5 MB `graphs/imports.json` read it
/// first.
pub fn write_atomic_changed(path: &Path, contents: &[u8]) -> Result<()> {
    replace_atomic(path, contents)
}

/// Write `contents` to a temporary file beside `path` and rename it over `path`, keeping the
/// mode of the file there.
fn replace_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut tmp = temporary_beside(path)?;
    tmp.write_all(contents).with_context(|| format!("cannot write {}", path.display()))?;
    if contents.len() >= 1 << 20 {
        start_writeback(tmp.as_file(), 0, contents.len());
    }
    tmp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
