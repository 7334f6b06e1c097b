//! The persistent, portable stage cache: one crash-safe redb file under the cache directory.
//!
//! A node `(stage, subject)` is keyed by blake3 over the engine fingerprint (crate version,
//! cache schema, decoding version), the stage and its version constant, the subject (a
//! repo-relative path) and its ordered, *named* inputs (content hash, module name, …) — never
//! absolute paths, times or host names, so a cache restored in another checkout on another
//! machine is a full hit. A value is the stage output encoded with rmp-serde followed by its
//! own blake3; a checksum or decoding failure is a miss with the reason "corrupt", never a
//! wrong output.
//!
//! Lookups are concurrent read transactions; new entries are queued and written in one write
//! transaction at the end of the build, so a build killed at any moment leaves the previous
//! cache intact. An exclusive lock file makes a second build on the same cache wait.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::explain::{ArtifactSize, NodeEvent, Reason, RunLog, StageTiming, Status};

/// Bump when the layout of the cache file or the encoding of its values changes.
pub const CACHE_SCHEMA: u32 = 12;

pub use crate::digest::update_parts;
pub use crate::explain::RUN_LOG_FILE;

const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");
/// Node records by subject: one entry holds every node of its subject (see [`SubjectNodes`]).
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The row index's entries by path (its head is `meta` "row_index"): an edit rewrites the
/// entries that changed, not the whole index (31 MB on the 100k-module tree).
const ROWS: TableDefinition<&str, &[u8]> = TableDefinition::new("rows");
/// The stat entries by path (see [`crate::stat`]), written entry by entry like the rows.
const STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("stats");
/// The graph facts of the last build that wrote them, by path (their head, in `meta`, says
/// how many there are).
const FACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("facts");

/// The cache file inside the cache directory.
pub const CACHE_FILE: &str = "stages.redb";
/// The last build's artifacts, kept in the cache (hard links when the output directory is on
/// the same file system, flat: see [`crate::writers::kept_path`]): a cache restored without
/// the outputs still has every file's rows.
pub const ARTIFACTS_DIR: &str = "artifacts";
const LOCK_FILE: &str = "lock";

/// What changes every key: the crate version, the cache schema and the decoding version
/// (every stage reads decoded text, and the stat fast path records each file's encoding).
pub fn engine_fingerprint() -> String {
    format!(
        "codeintel-enrich {} schema {CACHE_SCHEMA} decode {}",
        env!("CARGO_PKG_VERSION"),
        crate::source::DECODE_VERSION
    )
}

/// What a node was computed from last time: its key, named inputs (hashes shortened to the 12
/// hex digits `explain` shows: they explain, the key decides) and output hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    #[serde(with = "crate::digest::bytes")]
    pub key: [u8; 32],
    /// Named inputs; the names are the stages' own constants while a node is computed (queued,
    /// the inputs are packed: see `QueuedRecord`).
    pub inputs: Vec<(std::borrow::Cow<'static, str>, String)>,
    #[serde(with = "crate::digest::bytes")]
    pub output: [u8; 32],
}

impl NodeRecord {
    /// The record of a node computed now from `inputs`.
    fn new(key: [u8; 32], inputs: &[(&'static str, String)], output: [u8; 32]) -> Self {
        NodeRecord { key, inputs: inputs.iter().map(|(n, v)| (std::borrow::Cow::Borrowed(*n), short(v))).collect(), output }
    }
}

/// The records of every node of one subject, sorted by stage: the `nodes` table keeps one entry
/// per subject rather than per node (a cold build of the generated 20k tree has 208k nodes on
/// 20k files: one B-tree insert, seal and encoding per file instead of ten).
type SubjectNodes = Vec<(String, NodeRecord)>;

fn decode_nodes(sealed: &[u8]) -> Option<SubjectNodes> {
    rmp_serde::from_slice(unseal(sealed)?).ok()
}

/// The stages of a subject's stored records, without decoding the records.
fn decode_stages(sealed: &[u8]) -> Vec<String> {
    let stages: Option<Vec<(String, serde::de::IgnoredAny)>> = unseal(sealed).and_then(|payload| rmp_serde::from_slice(payload).ok());
    stages.unwrap_or_default().into_iter().map(|(stage, _)| stage).collect()
}

/// What the last complete build produced, for the whole-build shortcut: when the next build's
/// key (engine, every file's path, module name and content hash, every discovery problem) is
/// the same and every artifact still has its recorded hash, nothing needs to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildRecord {
    pub key: [u8; 32],
    /// (path, rows, bytes, blake3) of each artifact.
    pub artifacts: Vec<(String, usize, usize, [u8; 32])>,
    pub modules: usize,
    pub symbols: usize,
    pub imports: usize,
    pub syntax_error_modules: usize,
    pub problems: Vec<crate::diagnostics::Problem>,
    /// Each artifact's stat after the build, so the next one can trust it without reading
    /// it (git's racy rule, see [`crate::stat`]).
    #[serde(default)]
    pub artifact_stats: Vec<crate::stat::StatEntry>,
    /// The dataset digest the database was brought to, when the build kept one.
    #[serde(default)]
    pub database: Option<String>,
}

impl BuildRecord {
    /// Sort the artifacts and their stats by path: lookups are binary searches (a build checks
    /// every artifact, and the 100k-module tree has thousands). Recorded sorted, sorted again
    /// when read; an unsorted record only makes a lookup miss (the artifact is then rebuilt).
    pub fn sort(&mut self) {
        self.artifacts.sort_by(|a, b| a.0.cmp(&b.0));
        self.artifact_stats.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// (rows, bytes, blake3) of artifact `name` as recorded.
    pub fn artifact(&self, name: &str) -> Option<(usize, usize, [u8; 32])> {
        let i = self.artifacts.binary_search_by(|(path, ..)| path.as_str().cmp(name)).ok()?;
        let (_, rows, bytes, hash) = &self.artifacts[i];
        Some((*rows, *bytes, *hash))
    }

    /// The recorded stat of artifact `name`.
    pub fn artifact_stat(&self, name: &str) -> Option<&crate::stat::StatEntry> {
        let i = self.artifact_stats.binary_search_by(|e| e.path.as_str().cmp(name)).ok()?;
        Some(&self.artifact_stats[i])
    }

    /// Whether `dir` still holds artifact `name` as recorded (by its stat, else its hash).
    pub fn intact(&self, dir: &Path, name: &str) -> crate::writers::Intact {
        self.intact_at(&dir.join(name), name)
    }

    /// Whether the file `file` holds artifact `name` as recorded (by its stat, else its hash).
    pub fn intact_at(&self, file: &Path, name: &str) -> crate::writers::Intact {
        match self.artifact(name) {
            Some((_, bytes, hash)) => {
                crate::writers::artifact_intact(file, bytes, hash, self.artifact_stat(name))
            }
            None => crate::writers::Intact::No,
        }
    }
}

/// What a build writes of a table kept by path — its row index ([`crate::rows::RowIndex`]) or
/// its graph facts ([`crate::rows::GraphFacts`]): the encoded head, and the encoded entries by
/// path — all of them (`replace`), or those that changed, with the paths gone.
pub struct ByPathUpdate {
    pub head: Vec<u8>,
    pub replace: bool,
    pub put: Vec<(String, Vec<u8>)>,
    pub remove: Vec<String>,
}

/// A write transaction holding the entries a build queued before it wrote its outputs (see
/// [`StageCache::write_early`]).
pub struct EarlyWrite {
    txn: redb::WriteTransaction,
    entries: usize,
}

/// Bytes that wait for the cache's write, appended to large chunks of their own instead of
/// allocated one by one: queued while every file's memos are allocated, small allocations of
/// their own (a node's subject, packed inputs and sealed value) were spread over nearly every
/// page of the memos' heap, so the memos' pages could not go back to the system when the memos
/// were freed. On the standard library with its site-packages (14,401 files), a cold build
/// writing the cache held ~520 MB more than one without it once its outputs were written,
/// ~100 MB of it the queued bytes themselves (69 MB of values).
#[derive(Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    /// The chunk small pushes go to.
    open: Option<usize>,
}

/// Where [`Arena::push`] put some bytes.
#[derive(Clone, Copy)]
struct Span {
    chunk: u32,
    start: u32,
    len: u32,
}

impl Arena {
    /// The size of a chunk; bytes larger than an eighth of it get a chunk of their own.
    const CHUNK: usize = 4 << 20;

    /// Append the concatenation of `parts`.
    fn push(&mut self, parts: &[&[u8]]) -> Span {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let open = self.open.filter(|&at| self.chunks[at].capacity() - self.chunks[at].len() >= len);
        let chunk = match open {
            Some(at) if len <= Self::CHUNK / 8 => at,
            _ => {
                let small = len <= Self::CHUNK / 8;
                self.chunks.push(Vec::with_capacity(if small { Self::CHUNK } else { len }));
                let at = self.chunks.len() - 1;
                if small {
                    self.open = Some(at);
                }
                at
            }
        };
        let bytes = &mut self.chunks[chunk];
        let start = bytes.len();
        parts.iter().for_each(|part| bytes.extend_from_slice(part));
        Span { chunk: chunk as u32, start: start as u32, len: len as u32 }
    }

    fn get(&self, span: Span) -> &[u8] {
        &self.chunks[span.chunk as usize][span.start as usize..][..span.len as usize]
    }

    fn str(&self, span: Span) -> &str {
        std::str::from_utf8(self.get(span)).expect("pushed from a string")
    }
}

/// The entries queued for the cache's write.
#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    bytes: Arena,
}

impl Queue {
    /// Queue `record` of node `(stage, subject)` with its sealed value, if it has one.
    fn push(&mut self, stage: &'static str, subject: &str, record: NodeRecord, value: Option<(&[u8], &[u8; 32])>) {
        let subject = self.bytes.push(&[subject.as_bytes()]);
        let record = QueuedRecord::pack(record, &mut self.bytes);
        let value = value.map(|(payload, hash)| self.bytes.push(&[payload, hash]));
        self.pending.push(Pending { stage, subject, record, value });
    }
}

/// Nodes new in this build with nothing recorded before them (see `StageCache::plain_new`):
/// the stage and the subject, kept in bytes of their own.
#[derive(Default)]
struct PlainNew {
    nodes: Vec<(&'static str, Span)>,
    subjects: Arena,
}

struct Pending {
    stage: &'static str,
    subject: Span,
    record: QueuedRecord,
    /// The sealed value (see [`seal`]).
    value: Option<Span>,
}

/// A [`NodeRecord`] as it waits in the queue: its named inputs packed in the queue's bytes,
/// each string after its length (a cold build of the 100k-module tree queues a million
/// records; as vectors of string pairs they held ~400 bytes each).
struct QueuedRecord {
    key: [u8; 32],
    output: [u8; 32],
    inputs: Span,
}

impl QueuedRecord {
    fn pack(record: NodeRecord, bytes: &mut Arena) -> Self {
        // Packed in a buffer that lives only for this call, then copied into the queue's bytes.
        let mut inputs = Vec::with_capacity(record.inputs.iter().map(|(n, v)| 8 + n.len() + v.len()).sum());
        for part in record.inputs.iter().flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()]) {
            inputs.extend_from_slice(&(part.len() as u32).to_le_bytes());
            inputs.extend_from_slice(part);
        }
        QueuedRecord { key: record.key, output: record.output, inputs: bytes.push(&[&inputs]) }
    }

    fn unpack(&self, bytes: &Arena) -> NodeRecord {
        let mut rest = bytes.get(self.inputs);
        let mut next = || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let (part, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
            rest = tail;
            Some(String::from_utf8(part.to_vec()).expect("packed from strings"))
        };
        let mut inputs = Vec::new();
        while let (Some(name), Some(value)) = (next(), next()) {
            inputs.push((std::borrow::Cow::Owned(name), value));
        }
        NodeRecord { key: self.key, inputs, output: self.output }
    }
}

/// An open cache for the duration of one build.
pub struct StageCache {
    dir: PathBuf,
    db: redb::Database,
    /// Read views opened once for the whole build (a read transaction per lookup cost more
    /// than the lookup): the cache as it was when the build started.
    values: Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>,
    nodes: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    /// The recorded graph facts, for readers that outlive a borrow of the cache (see
    /// [`StageCache::graph_fact_reader`]: the workspace's inputs keep one after the build);
    /// emptied when the cache is dropped, so that such a reader keeps no read transaction, and
    /// with it the closed database's file and pages, alive.
    facts: Arc<std::sync::RwLock<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>>>,
    _lock: File,
    queue: Mutex<Queue>,
    events: Mutex<Vec<NodeEvent>>,
    /// Nodes new in this build with nothing recorded before them (status new, reason new, no
    /// cut-off), kept apart from `events` as a stage and a subject: a cold build of the
    /// 100k-module tree has a million, which as events held ~300 MB until the run log was
    /// written, and the run log folds a stage that is new for every file into `grid_new`.
    plain_new: Mutex<PlainNew>,
    stages: Mutex<BTreeMap<&'static str, StageTiming>>,
    files_read: Mutex<Option<(usize, usize)>>,
    /// The subjects and artifacts of the last complete build, when the build knows them (see
    /// [`StageCache::set_previously`]).
    previously: Mutex<Option<(Vec<String>, Vec<String>)>>,
    /// One-line reports about the cache itself (rebuilt after corruption, …).
    pub notes: Vec<String>,
}

/// A node `(stage, subject)`.
type Node = (String, String);

/// Take the cache directory's lock, waiting for another build that holds it.
pub fn lock(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create cache directory {}", dir.display()))?;
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "# Written by codeintel-enrich.\n*\n")
            .with_context(|| format!("cannot write {}", gitignore.display()))?;
    }
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!("codeintel-enrich: waiting for another build using {}", dir.display());
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(file)
}

/// Open (or create) the cache file; a corrupt, truncated or foreign file is replaced.
fn open_database(dir: &Path, notes: &mut Vec<String>) -> Result<redb::Database> {
    let path = dir.join(CACHE_FILE);
    let opened = std::panic::catch_unwind(|| create_database(&path));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(err)) => {
            notes.push(format!("cache {} is unreadable ({err}); starting a new one", path.display()));
            return fresh_database(&path);
        }
        Err(_) => {
            notes.push(format!("cache {} is unreadable; starting a new one", path.display()));
            return fresh_database(&path);
        }
    };
    let schema = read_meta(&db, "schema");
    match schema.as_deref() {
        Some(value) if value == engine_fingerprint().as_bytes() => Ok(db),
        None if is_empty(&db) => {
            write_meta(&db, "schema", engine_fingerprint().as_bytes())?;
            Ok(db)
        }
        _ => {
            drop(db);
            notes.push(format!("cache {} was written by another version; starting a new one", path.display()));
            fresh_database(&path)
        }
    }
}

/// The memory redb may hold for the cache file: its read cache and the write transaction's
/// dirty pages (at most half of it; the rest goes to the file before the commit). redb's
/// default, 1 GiB, let a cold build of the 100k-module tree hold ~450 MB more while it inserted
/// a million entries, at its peak; 64 MiB cost a cold 20k build writing the cache ~7% more
/// CPU (the dirty pages of its 114 MB file flushed and written again). See ARCHITECTURE.md.
const CACHE_MEMORY_BYTES: usize = 256 << 20;

/// Open or create the cache file with [`CACHE_MEMORY_BYTES`].
fn create_database(path: &Path) -> Result<redb::Database, redb::DatabaseError> {
    redb::Builder::new().set_cache_size(CACHE_MEMORY_BYTES).create(path)
}

/// A new, empty cache file; the artifacts kept for the old one's builds go with it.
fn fresh_database(path: &Path) -> Result<redb::Database> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir.join(ARTIFACTS_DIR));
    }
    let db = create_database(path).with_context(|| format!("cannot create cache {}", path.display()))?;
    write_meta(&db, "schema", engine_fingerprint().as_bytes())?;
    Ok(db)
}

fn read_meta(db: &redb::Database, key: &str) -> Option<Vec<u8>> {
    let txn = db.begin_read().ok()?;
    let table = txn.open_table(META).ok()?;
    table.get(key).ok()?.map(|v| v.value().to_vec())
}

fn is_empty(db: &redb::Database) -> bool {
    let Ok(txn) = db.begin_read() else { return true };
    match txn.open_table(NODES) {
        Ok(table) => table.is_empty().unwrap_or(true),
        Err(_) => true,
    }
}

fn write_meta(db: &redb::Database, key: &str, value: &[u8]) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(META)?;
        table.insert(key, value)?;
        txn.open_table(VALUES)?;
        txn.open_table(NODES)?;
    }
    txn.commit()?;
    Ok(())
}

/// A value followed by its blake3.
fn seal(payload: Vec<u8>) -> Vec<u8> {
    let mut sealed = payload;
    let hash = blake3::hash(&sealed);
    sealed.extend_from_slice(hash.as_bytes());
    sealed
}

fn unseal(sealed: &[u8]) -> Option<&[u8]> {
    let split = sealed.len().checked_sub(32)?;
    let (payload, hash) = sealed.split_at(split);
    (blake3::hash(payload).as_bytes() == hash).then_some(payload)
}

fn short(value: &str) -> String {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) { value[..12].to_string() } else { value.to_string() }
}

impl StageCache {
    /// Lock and open the cache in `dir`.
    pub fn open(dir: &Path) -> Result<StageCache> {
        let lock = lock(dir)?;
        // Older artifact copies a killed build set aside (see `sinks::keep_artifacts`).
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(crate::writers::SET_ASIDE_PREFIX)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let mut notes = Vec::new();
        let db = open_database(dir, &mut notes)?;
        let txn = db.begin_read().ok();
        let values = txn.as_ref().and_then(|t| t.open_table(VALUES).ok());
        let nodes = txn.as_ref().and_then(|t| t.open_table(NODES).ok());
        let facts = Arc::new(std::sync::RwLock::new(txn.as_ref().and_then(|t| t.open_table(FACTS).ok())));
        Ok(StageCache {
            dir: dir.to_path_buf(),
            db,
            values,
            nodes,
            facts,
            _lock: lock,
            queue: Mutex::default(),
            events: Mutex::new(Vec::new()),
            plain_new: Mutex::default(),
            stages: Mutex::new(BTreeMap::new()),
            files_read: Mutex::new(None),
            previously: Mutex::new(None),
            notes,
        })
    }

    /// The subjects (files) and artifacts of the last complete build: when the subjects
    /// change, the nodes of those gone are then looked up by name instead of found by scanning
    /// every node (a million on a 100k-file tree). Without it, `finish` scans.
    pub fn set_previously(&self, subjects: Vec<String>, artifacts: Vec<String>) {
        *self.previously.lock().unwrap() = Some((subjects, artifacts));
    }

    /// Where the cache keeps the last build's artifacts.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.join(ARTIFACTS_DIR)
    }

    /// The key of node `(stage, subject)` with these named inputs.
    pub fn key(stage: &str, version: u32, subject: &str, inputs: &[(&'static str, String)]) -> [u8; 32] {
        // The engine fingerprint absorbed once per process (a cold 20k-file build makes 230k keys).
        static ENGINE: std::sync::OnceLock<blake3::Hasher> = std::sync::OnceLock::new();
        let mut hasher = ENGINE
            .get_or_init(|| {
                let mut hasher = blake3::Hasher::new();
                update_parts(&mut hasher, [engine_fingerprint()]);
                hasher
            })
            .clone();
        update_parts(&mut hasher, [stage, &version.to_string(), subject]);
        update_parts(&mut hasher, inputs.iter().flat_map(|(name, value)| [*name, value.as_str()]));
        *hasher.finalize().as_bytes()
    }

    fn lookup(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        self.values.as_ref()?.get(key.as_slice()).ok()?.map(|v| v.value().to_vec())
    }

    /// The record of node `(stage, subject)` as the last build left it.
    fn previous(&self, stage: &str, subject: &str) -> Option<NodeRecord> {
        let nodes = decode_nodes(self.nodes.as_ref()?.get(subject).ok()??.value())?;
        nodes.into_iter().find(|(s, _)| s == stage).map(|(_, record)| record)
    }

    /// The cached output of `(stage, subject)` for these inputs, or `compute()` — recorded in
    /// the run log with the reasons it had to run.
    pub fn get_or_compute<T: Serialize + DeserializeOwned>(
        &self,
        stage: &'static str,
        version: u32,
        subject: &str,
        inputs: Vec<(&'static str, String)>,
        compute: impl FnOnce() -> T,
    ) -> T {
        self.get_or_compute_downstream(stage, version, subject, inputs, None::<fn() -> Vec<String>>, compute)
    }

    /// [`StageCache::get_or_compute`] for a node whose inputs are digests of other nodes'
    /// outputs: when it reruns because an input changed, its reason is [`Reason::Upstream`]
    /// with the nodes `upstream()` names, not a root cause.
    pub fn get_or_compute_downstream<T: Serialize + DeserializeOwned>(
        &self,
        stage: &'static str,
        version: u32,
        subject: &str,
        inputs: Vec<(&'static str, String)>,
        upstream: Option<impl FnOnce() -> Vec<String>>,
        compute: impl FnOnce() -> T,
    ) -> T {
        let key = Self::key(stage, version, subject, &inputs);
        let mut corrupt = false;
        if let Some(sealed) = self.lookup(&key) {
            match unseal(&sealed).and_then(|payload| rmp_serde::from_slice::<T>(payload).ok()) {
                Some(value) => {
                    self.note_reused(stage);
                    // Grid nodes reused are implicit in the run log; an artifact's or an
                    // input's are not, so they are listed (else the summary would miss them).
                    if ARTIFACT_STAGES.contains(&stage) || INPUT_STAGES.contains(&stage) {
                        self.event(stage, subject, Status::Reused, Vec::new(), false);
                    }
                    return value;
                }
                None => corrupt = true,
            }
        }
        let previous = self.previous(stage, subject);
        let started = std::time::Instant::now();
        let value = compute();
        let elapsed = started.elapsed().as_secs_f64();
        let payload = rmp_serde::to_vec(&value).expect("stage outputs serialize");
        {
            let mut stages = self.stages.lock().unwrap();
            let timing = stages.entry(stage).or_default();
            timing.computed += 1;
            timing.compute_seconds += elapsed;
            timing.bytes += payload.len();
        }
        let output = *blake3::hash(&payload).as_bytes();
        let record = NodeRecord::new(key, &inputs, output);
        let (status, mut reasons, cutoff) = rerun_reasons(subject, previous.as_ref(), &record, corrupt);
        if let Some(upstream) = upstream
            && reasons.iter().any(|r| matches!(r, Reason::Input { .. }))
        {
            reasons.retain(|r| !matches!(r, Reason::Input { .. }));
            reasons.insert(0, Reason::Upstream { nodes: upstream() });
        }
        self.event_of(stage, subject, status, reasons, cutoff);
        // Queued until the cache's write (a cold build of the 100k-module tree queues a million),
        // sealed in the queue's bytes.
        self.queue.lock().unwrap().push(stage, subject, record, Some((payload.as_slice(), &output)));
        value
    }

    /// Count a per-file node of `stage` as reused (reused grid nodes have no event).
    pub fn note_reused(&self, stage: &'static str) {
        self.stages.lock().unwrap().entry(stage).or_default().reused += 1;
    }

    /// Record a node whose value is not kept in the cache but whose key decides whether it
    /// is the last build's (`exports(path)`: the build keeps what others read of it, its face,
    /// in the row index). Same key as last time: reused. Otherwise recomputed, and a change
    /// of its input `upstream_input` is reported as the `upstream` nodes that changed it.
    #[allow(clippy::too_many_arguments)]
    pub fn note_node(
        &self,
        stage: &'static str,
        subject: &str,
        inputs: &[(&'static str, String)],
        key: [u8; 32],
        output: [u8; 32],
        upstream_input: &str,
        upstream: Vec<String>,
    ) {
        let previous = self.previous(stage, subject);
        if previous.as_ref().is_some_and(|p| p.key == key) {
            self.note_reused(stage);
            return;
        }
        let record = NodeRecord::new(key, inputs, output);
        let (status, mut reasons, cutoff) = rerun_reasons(subject, previous.as_ref(), &record, false);
        let changed = format!("{upstream_input}({subject})");
        if !upstream.is_empty() && let Some(at) = reasons.iter().position(|r| matches!(r, Reason::Input { name, .. } if *name == changed)) {
            reasons[at] = Reason::Upstream { nodes: upstream };
        }
        self.stages.lock().unwrap().entry(stage).or_default().computed += 1;
        self.event_of(stage, subject, status, reasons, cutoff);
        self.queue.lock().unwrap().push(stage, subject, record, None);
    }

    /// Record a node whose value lives outside the cache (a file's rows live in the previous
    /// artifacts) and that ran: its new output hashes to `output`.
    pub fn note_rerun(&self, stage: &'static str, subject: &str, inputs: &[(&'static str, String)], key: [u8; 32], output: [u8; 32]) {
        let record = NodeRecord::new(key, inputs, output);
        let (status, mut reasons, cutoff) = rerun_reasons(subject, self.previous(stage, subject).as_ref(), &record, false);
        for reason in &mut reasons {
            if *reason == Reason::EntryMissing {
                *reason = Reason::OutputMissing;
            }
        }
        self.stages.lock().unwrap().entry(stage).or_default().computed += 1;
        self.event_of(stage, subject, status, reasons, cutoff);
        self.queue.lock().unwrap().push(stage, subject, record, None);
    }

    /// [`StageCache::event`] of a node queued for the cache.
    fn event_of(&self, stage: &'static str, subject: &str, status: Status, reasons: Vec<Reason>, cutoff: bool) {
        if status == Status::New && reasons == [Reason::New] && !cutoff {
            let mut plain = self.plain_new.lock().unwrap();
            let subject = plain.subjects.push(&[subject.as_bytes()]);
            plain.nodes.push((stage, subject));
        } else {
            self.event(stage, subject, status, reasons, cutoff);
        }
    }

    fn event(&self, stage: &str, subject: &str, status: Status, reasons: Vec<Reason>, cutoff: bool) {
        self.events.lock().unwrap().push(NodeEvent {
            stage: stage.to_string(),
            subject: subject.to_string(),
            status,
            reasons,
            cutoff,
        });
    }

    /// The record of the last complete build, if any.
    pub fn last_build(&self) -> Option<BuildRecord> {
        let bytes = read_meta(&self.db, "last_build")?;
        let mut record: BuildRecord = rmp_serde::from_slice(unseal(&bytes)?).ok()?;
        record.sort();
        Some(record)
    }

    /// The stat entries of the last complete build (see [`crate::stat`]); `None` when one
    /// fails its checksum or the table is missing.
    pub fn stat_entries(&self) -> Option<Vec<crate::stat::StatEntry>> {
        read_entries(&self.db, STATS)
    }

    /// Replace the record of the last build (its artifact stats were refreshed).
    pub fn update_build_record(&self, record: &BuildRecord) -> Result<()> {
        let mut record = record.clone();
        record.sort();
        write_meta(&self.db, "last_build", &seal(rmp_serde::to_vec_named(&record).expect("records serialize")))
    }

    /// Write the stat entries that changed (a build that changed nothing else).
    pub fn record_stats(&self, stats: &crate::stat::StatsUpdate<'_>) -> Result<()> {
        let txn = self.db.begin_write()?;
        write_stats(&txn, stats)?;
        txn.commit()?;
        Ok(())
    }

    /// The row index of the last complete build (see [`crate::rows`]): its head and its
    /// entries in path order. `None` when any part is missing or fails its checksum.
    pub fn row_index<H: DeserializeOwned, E: DeserializeOwned + Send>(&self) -> Option<(H, Vec<E>)> {
        let head = rmp_serde::from_slice(unseal(&read_meta(&self.db, "row_index")?)?).ok()?;
        Some((head, read_entries(&self.db, ROWS)?))
    }

    /// The graph facts recorded by the last build that wrote them (see `rows::GraphFacts`):
    /// their head and the facts in path order. `None` when any part is missing or fails its
    /// checksum.
    pub fn graph_facts<H: DeserializeOwned, E: DeserializeOwned + Send>(&self) -> Option<(H, Vec<E>)> {
        let head = rmp_serde::from_slice(unseal(&read_meta(&self.db, "graph_facts")?)?).ok()?;
        Some((head, read_entries(&self.db, FACTS)?))
    }

    /// The head of the recorded graph facts, how many facts the cache holds, and a reader of
    /// one fact by path (`None` when it is missing or fails its checksum), over the cache as
    /// it was when the reader was made.
    pub fn graph_fact_reader<H: DeserializeOwned, E: DeserializeOwned>(&self) -> Option<(H, usize, impl Fn(&str) -> Option<E> + Send + Sync + 'static)> {
        let head = rmp_serde::from_slice(unseal(&read_meta(&self.db, "graph_facts")?)?).ok()?;
        let entries = usize::try_from(self.facts.read().unwrap().as_ref()?.len().ok()?).ok()?;
        let facts = Arc::clone(&self.facts);
        let read = move |path: &str| -> Option<E> {
            let facts = facts.read().unwrap();
            let sealed = facts.as_ref()?.get(path).ok()??;
            rmp_serde::from_slice(unseal(sealed.value())?).ok()
        };
        Some((head, entries, read))
    }

    /// Remember this build, for the whole-build shortcut, with its row index and stat
    /// entries, in one transaction: the index always describes the artifacts the record names.
    /// `graph_facts`, when given, are written in the same transaction.
    pub fn record_build(
        &self,
        mut record: BuildRecord,
        rows: ByPathUpdate,
        stats: &crate::stat::StatsUpdate<'_>,
        graph_facts: Option<ByPathUpdate>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        record.sort();
        // Named encoding: `Problem` skips absent fields, which a positional encoding cannot.
        let record = seal(rmp_serde::to_vec_named(&record).expect("records serialize"));
        tracing::debug!(
            elapsed = ?started.elapsed(),
            record = record.len(),
            rows_written = rows.put.len(),
            rows_removed = rows.remove.len(),
            stats_written = stats.put.len(),
            facts_written = graph_facts.as_ref().map_or(0, |f| f.put.len()),
            "build record encoded"
        );
        let txn = self.db.begin_write()?;
        {
            write_by_path(&txn, ROWS, rows.replace, &rows.remove, rows.put)?;
            write_stats(&txn, stats)?;
            let facts_head = match graph_facts {
                Some(facts) => {
                    write_by_path(&txn, FACTS, facts.replace, &facts.remove, facts.put)?;
                    Some(facts.head)
                }
                None => None,
            };
            let mut table = txn.open_table(META)?;
            table.insert("last_build", record.as_slice())?;
            table.insert("row_index", seal(rows.head).as_slice())?;
            if let Some(head) = facts_head {
                table.insert("graph_facts", seal(head).as_slice())?;
            }
        }
        txn.commit()?;
        tracing::debug!(elapsed = ?started.elapsed(), "build record committed");
        Ok(())
    }

    /// The run log of a build that the whole-build shortcut skipped: every node of the last
    /// run, reused. `None` when the last run log is unreadable.
    pub fn reuse_build(&self, timings: Vec<(String, f64)>) -> Option<RunLog> {
        let previous = crate::explain::read_run_log(&self.dir).ok()?;
        let nodes = previous
            .nodes
            .into_iter()
            .filter(|n| n.status != Status::Removed && !previous.grid_stages.contains(&n.stage))
            .map(|n| NodeEvent { status: Status::Reused, reasons: Vec::new(), cutoff: false, ..n })
            .collect();
        let log = RunLog {
            schema: crate::explain::RUN_LOG_SCHEMA,
            nodes,
            notes: self.notes.clone(),
            timings,
            stages: Vec::new(),
            artifacts: previous.artifacts,
            files_read: *self.files_read.lock().unwrap(),
            grid_stages: previous.grid_stages,
            grid_subjects: previous.grid_subjects,
            grid_new: Vec::new(),
        };
        let bytes = serde_json::to_vec(&log).expect("run logs serialize");
        crate::writers::write_atomic(&self.dir.join(RUN_LOG_FILE), &bytes).ok()?;
        Some(log)
    }

    /// Record how many of the build's files had to be read (the run log shows it).
    pub fn set_files_read(&self, read: usize, total: usize) {
        *self.files_read.lock().unwrap() = Some((read, total));
    }

    /// Nodes recomputed or new so far in this build.
    pub fn recomputed_so_far(&self) -> usize {
        self.plain_new.lock().unwrap().nodes.len()
            + self.events.lock().unwrap().iter().filter(|e| matches!(e.status, Status::Recomputed | Status::New)).count()
    }

    /// Per-stage counts and compute time so far.
    fn stage_timings(&self) -> Vec<StageTiming> {
        self.stages
            .lock()
            .unwrap()
            .iter()
            .map(|(stage, timing)| StageTiming { stage: stage.to_string(), ..timing.clone() })
            .collect()
    }

    /// Record the outcome of a writer node (an artifact), keyed by its own bytes.
    pub fn record_artifact(&self, path: &str, output: [u8; 32], upstream_recomputed: usize) {
        let previous = self.previous("write", path);
        let (status, reasons) = match &previous {
            None => (Status::New, vec![Reason::New]),
            Some(old) if old.output == output => (Status::Reused, Vec::new()),
            Some(_) => (Status::Recomputed, vec![Reason::Cascade { count: upstream_recomputed }]),
        };
        self.event("write", path, status, reasons, false);
        // A reused artifact's record is the stored one already.
        if status != Status::Reused {
            let record = NodeRecord { key: output, inputs: Vec::new(), output };
            self.queue.lock().unwrap().push("write", path, record, None);
        }
    }

    /// The run log a build would have, without writing anything (plan mode): queued entries are
    /// dropped, nodes of vanished subjects are reported removed.
    pub fn plan(&self, stages: &[&str], subjects: &BTreeSet<String>) -> Result<RunLog> {
        *self.queue.lock().unwrap() = Queue::default();
        let mut events = std::mem::take(&mut *self.events.lock().unwrap());
        if self.subjects_changed(subjects) {
            let removed = removed_nodes(self.nodes.as_ref().context("the cache has no node table")?, &events, subjects)?;
            events.extend(removed.iter().map(removed_event));
        }
        Ok(self.run_log(events, stages, subjects, Vec::new(), Vec::new()))
    }

    /// The run log of this build: `events` sorted, and every other node of the grid
    /// `stages` × `subjects` reused (memoized in the database or never looked at).
    fn run_log(
        &self,
        mut events: Vec<NodeEvent>,
        stages: &[&str],
        subjects: &BTreeSet<String>,
        timings: Vec<(String, f64)>,
        artifacts: Vec<ArtifactSize>,
    ) -> RunLog {
        // A node's events within one build share its recorded past, so a node is in
        // `plain_new` or in `events`; should one be in both, its event is what is listed.
        let taken = std::mem::take(&mut *self.plain_new.lock().unwrap());
        let mut plain: Vec<(&str, &str)> = taken.nodes.iter().map(|&(stage, subject)| (stage, taken.subjects.str(subject))).collect();
        plain.sort_unstable();
        plain.dedup();
        events.sort_by(|a, b| (&a.stage, &a.subject).cmp(&(&b.stage, &b.subject)));
        // A node computed twice (a package re-keyed as an overlay parent) is reported once, as
        // its last computation (the record the cache keeps).
        events.reverse();
        events.dedup_by(|a, b| a.stage == b.stage && a.subject == b.subject);
        events.reverse();
        // Reused grid nodes are implicit: listing them explicitly would double them.
        events.retain(|e| !(e.status == Status::Reused && stages.contains(&e.stage.as_str()) && subjects.contains(&e.subject)));
        // So are the nodes of a grid stage that is new for every subject (a cold build).
        let grid_new: Vec<&str> = stages
            .iter()
            .copied()
            .filter(|stage| {
                let of_stage = plain.iter().filter(|(s, _)| s == stage);
                !subjects.is_empty()
                    && !events.iter().any(|e| e.stage == *stage)
                    && of_stage.clone().count() == subjects.len()
                    && of_stage.zip(subjects).all(|((_, subject), s)| **subject == **s)
            })
            .collect();
        // `events` is sorted and deduplicated by node here.
        let evented = |stage: &str, subject: &str| events.binary_search_by(|e| (e.stage.as_str(), e.subject.as_str()).cmp(&(stage, subject))).is_ok();
        plain.retain(|(stage, subject)| !grid_new.contains(stage) && !evented(stage, subject));
        events.extend(plain.into_iter().map(|(stage, subject)| NodeEvent {
            stage: stage.to_string(),
            subject: subject.to_string(),
            status: Status::New,
            reasons: vec![Reason::New],
            cutoff: false,
        }));
        events.sort_by(|a, b| (&a.stage, &a.subject).cmp(&(&b.stage, &b.subject)));
        let grid_new: Vec<String> = grid_new.into_iter().map(str::to_string).collect();
        RunLog {
            schema: crate::explain::RUN_LOG_SCHEMA,
            nodes: events,
            notes: self.notes.clone(),
            timings,
            stages: self.stage_timings(),
            artifacts,
            files_read: *self.files_read.lock().unwrap(),
            grid_stages: stages.iter().map(|s| s.to_string()).collect(),
            grid_subjects: subjects.iter().cloned().collect(),
            grid_new,
        }
    }

    /// Whether the set of subjects differs from the last finished build's (only then can
    /// nodes have been removed).
    fn subjects_changed(&self, subjects: &BTreeSet<String>) -> bool {
        read_meta(&self.db, "subjects").is_none_or(|digest| digest != subjects_digest(subjects))
    }

    /// Insert the entries queued so far into a write transaction that [`StageCache::finish`]
    /// completes and commits: a build calls it once its rows are rendered, on a thread of its
    /// own, so that the bulk of a cold build's entries (208k on the generated 20k tree, ~0.6 s)
    /// goes in while the outputs are written instead of after. Nothing is committed here: a
    /// build that fails or is killed later leaves the previous cache.
    pub fn write_early(&self) -> Result<EarlyWrite> {
        let started = std::time::Instant::now();
        let txn = self.db.begin_write().context("cannot write the cache")?;
        let entries = self.insert_pending(&txn)?;
        tracing::debug!(entries, elapsed = ?started.elapsed(), "cache entries inserted early");
        Ok(EarlyWrite { txn, entries })
    }

    /// Insert (and drop) the queued entries; returns how many.
    fn insert_pending(&self, txn: &redb::WriteTransaction) -> Result<usize> {
        let Queue { pending, bytes } = std::mem::take(&mut *self.queue.lock().unwrap());
        let count = pending.len();
        let mut values = txn.open_table(VALUES)?;
        let mut nodes = txn.open_table(NODES)?;
        // Values in key order: B-tree pages fill sequentially instead of splitting at random
        // places (a cold 20k-file build inserts 163k values).
        let mut sealed: Vec<([u8; 32], Span)> = Vec::with_capacity(count);
        // Records grouped by subject, in the order they were queued within a node: a node
        // queued twice (a package re-keyed as an overlay parent) keeps its last record.
        let mut records: Vec<(usize, &'static str, &str, QueuedRecord)> = Vec::with_capacity(count);
        for (at, Pending { stage, subject, record, value }) in pending.into_iter().enumerate() {
            if let Some(value) = value {
                sealed.push((record.key, value));
            }
            records.push((at, stage, bytes.str(subject), record));
        }
        sealed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in sealed {
            values.insert(key.as_slice(), bytes.get(value))?;
        }
        records.sort_unstable_by(|a, b| (a.2, a.1, a.0).cmp(&(b.2, b.1, b.0)));
        let mut entries = records.into_iter().map(|(_, stage, subject, record)| (stage, subject, record)).peekable();
        while let Some((stage, subject, record)) = entries.next() {
            let mut group = match nodes.get(subject)? {
                Some(stored) => decode_nodes(stored.value()).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut put = |stage: &str, record: QueuedRecord| match group.binary_search_by(|(s, _)| s.as_str().cmp(stage)) {
                Ok(at) => group[at].1 = record.unpack(&bytes),
                Err(at) => group.insert(at, (stage.to_string(), record.unpack(&bytes))),
            };
            put(stage, record);
            while let Some((stage, _, record)) = entries.next_if(|e| e.1 == subject) {
                put(stage, record);
            }
            nodes.insert(subject, seal(rmp_serde::to_vec(&group).expect("records serialize")).as_slice())?;
        }
        Ok(count)
    }

    /// Write the queued entries, mark nodes of vanished subjects removed, and return the run
    /// log (also written to the cache directory for `explain`). `stages` are the per-file
    /// stages, `subjects` the files of this build: a stage not evaluated for a live subject in
    /// this process was memoized, and is reported reused.
    /// `timings` is called after the commit: work that runs beside it adds its own timing.
    pub fn finish(
        &self,
        stages: &[&str],
        subjects: &BTreeSet<String>,
        timings: impl FnOnce() -> Result<Vec<(String, f64)>>,
        artifacts: Vec<ArtifactSize>,
        early: Option<EarlyWrite>,
    ) -> Result<RunLog> {
        let started = std::time::Instant::now();
        let (txn, early) = match early {
            Some(EarlyWrite { txn, entries }) => (txn, entries),
            None => (self.db.begin_write().context("cannot write the cache")?, 0),
        };
        let inserted = early + self.insert_pending(&txn)?;
        let mut events = std::mem::take(&mut *self.events.lock().unwrap());
        let subjects_changed = self.subjects_changed(subjects);
        // Removed nodes are found in the cache as the build found it: what this build inserted
        // is live.
        if subjects_changed {
            let removed = match (self.nodes.as_ref(), self.previously.lock().unwrap().take()) {
                (None, _) => Vec::new(),
                (Some(nodes), Some((old_subjects, old_artifacts))) => gone_nodes(nodes, &events, stages, subjects, &old_subjects, &old_artifacts)?,
                (Some(nodes), None) => removed_nodes(nodes, &events, subjects)?,
            };
            remove_nodes(&mut txn.open_table(NODES)?, &removed)?;
            events.extend(removed.iter().map(removed_event));
            txn.open_table(META)?.insert("subjects", subjects_digest(subjects).as_slice())?;
        }
        tracing::debug!(entries = inserted, elapsed = ?started.elapsed(), "cache entries inserted");
        txn.commit().context("cannot commit the cache")?;
        tracing::debug!(elapsed = ?started.elapsed(), "cache committed");
        let log = self.run_log(events, stages, subjects, timings()?, artifacts);
        let bytes = serde_json::to_vec(&log).expect("run logs serialize");
        crate::writers::write_atomic(&self.dir.join(RUN_LOG_FILE), &bytes)?;
        tracing::debug!(elapsed = ?started.elapsed(), "run log written");
        Ok(log)
    }
}

impl Drop for StageCache {
    fn drop(&mut self) {
        // Readers made by `graph_fact_reader` may outlive the cache: they find nothing now.
        if let Ok(mut facts) = self.facts.write() {
            facts.take();
        }
    }
}

/// Every sealed entry of a by-path table, in path order; `None` when one fails its checksum
/// or the table is missing. Read in order, decoded on every core (the 100k-module tree's row
/// index and graph facts are 100k entries each).
fn read_entries<E: DeserializeOwned + Send>(db: &redb::Database, table: TableDefinition<&str, &[u8]>) -> Option<Vec<E>> {
    use rayon::prelude::*;
    let txn = db.begin_read().ok()?;
    let table = txn.open_table(table).ok()?;
    let values: Vec<redb::AccessGuard<'_, &[u8]>> = table.iter().ok()?.map(|item| item.ok().map(|(_, value)| value)).collect::<Option<_>>()?;
    values.par_iter().map(|value| rmp_serde::from_slice(unseal(value.value())?).ok()).collect()
}

/// Apply a [`crate::stat::StatsUpdate`] in `txn`.
fn write_stats(txn: &redb::WriteTransaction, stats: &crate::stat::StatsUpdate<'_>) -> Result<()> {
    let put = stats.put.iter().map(|entry| (entry.path.as_str(), rmp_serde::to_vec(entry).expect("stat entries serialize")));
    write_by_path(txn, STATS, stats.replace, &stats.remove, put)
}

/// Update a by-path table in `txn`: emptied first when `replace`, the `remove` paths deleted,
/// each `put` entry sealed and inserted.
fn write_by_path(
    txn: &redb::WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    replace: bool,
    remove: &[String],
    put: impl IntoIterator<Item = (impl AsRef<str>, Vec<u8>)>,
) -> Result<()> {
    if replace {
        txn.delete_table(table)?;
    }
    let mut table = txn.open_table(table)?;
    for path in remove {
        table.remove(path.as_str())?;
    }
    for (path, entry) in put {
        table.insert(path.as_ref(), seal(entry).as_slice())?;
    }
    Ok(())
}

fn subjects_digest(subjects: &BTreeSet<String>) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    update_parts(&mut hasher, subjects);
    hasher.finalize().as_bytes().to_vec()
}


/// Inputs that are the same for every node reading them: `target` (the Python target and the
/// tag and overlay settings).
pub const PROJECT_INPUTS: &[&str] = &["target"];

/// Status, reasons and cutoff of a node that ran, against its previous record.
fn rerun_reasons(subject: &str, previous: Option<&NodeRecord>, record: &NodeRecord, corrupt: bool) -> (Status, Vec<Reason>, bool) {
    let Some(old) = previous else {
        return (Status::New, vec![Reason::New], false);
    };
    let old_inputs: BTreeMap<&str, &str> = old.inputs.iter().map(|(n, v)| (n.as_ref(), v.as_str())).collect();
    let mut reasons: Vec<Reason> = record
        .inputs
        .iter()
        .filter(|(name, value)| old_inputs.get(name.as_ref()) != Some(&value.as_str()))
        .map(|(name, value)| Reason::Input {
            // A project-wide input is one cause for every node that reads it.
            name: if PROJECT_INPUTS.contains(&name.as_ref()) { format!("{name}(project)") } else { format!("{name}({subject})") },
            old: old_inputs.get(name.as_ref()).map(|v| short(v)),
            new: short(value),
        })
        .collect();
    if corrupt {
        reasons.push(Reason::EntryCorrupt);
    } else if reasons.is_empty() && old.key != record.key {
        reasons.push(Reason::VersionChanged);
    } else if reasons.is_empty() {
        reasons.push(Reason::EntryMissing);
    }
    (Status::Recomputed, reasons, old.output == record.output)
}

/// Nodes in the table whose subject is gone: a file no longer in the build, or an artifact
/// this build did not produce.
/// Stages whose subject is an external input file, not a module.
pub const INPUT_STAGES: &[&str] = &["coverage", "history", "owners", "pyrefly", "scip"];

/// Stages whose subject is an artifact (`write(modules.jsonl)`, `parquet(parquet/…/part-0.parquet)`,
/// `parquet-input(…)`: the digest of that file's rows).
pub const ARTIFACT_STAGES: &[&str] = &["parquet", "parquet-input", "write"];

fn removed_nodes(
    nodes: &impl ReadableTable<&'static str, &'static [u8]>,
    events: &[NodeEvent],
    subjects: &BTreeSet<String>,
) -> Result<Vec<Node>> {
    let artifacts: BTreeSet<&str> = events.iter().filter(|e| e.stage == "write").map(|e| e.subject.as_str()).collect();
    let mut removed = Vec::new();
    for item in nodes.iter()? {
        let (subject, stored) = item?;
        let subject = subject.value();
        for stage in decode_stages(stored.value()) {
            // External inputs (`coverage(coverage.xml)`) are not files of the build: their nodes
            // stay, so a changed input is explained against its previous content.
            if INPUT_STAGES.contains(&stage.as_str()) {
                continue;
            }
            // Artifact nodes (a write, a dataset file's encoding) live while the artifact does.
            let live = if ARTIFACT_STAGES.contains(&stage.as_str()) { artifacts.contains(subject) } else { subjects.contains(subject) };
            if !live {
                removed.push((stage, subject.to_string()));
            }
        }
    }
    removed.sort();
    Ok(removed)
}

/// [`removed_nodes`] when the last build's subjects and artifacts are known: the nodes of
/// the per-file `stages` of each subject gone, and of the artifact stages of each artifact
/// gone, looked up by subject. (A node written by a build that was killed before recording its
/// subjects is not found this way; it stays, as an older record of its subject.)
fn gone_nodes(
    nodes: &impl ReadableTable<&'static str, &'static [u8]>,
    events: &[NodeEvent],
    stages: &[&str],
    subjects: &BTreeSet<String>,
    old_subjects: &[String],
    old_artifacts: &[String],
) -> Result<Vec<Node>> {
    let artifacts: BTreeSet<&str> = events.iter().filter(|e| e.stage == "write").map(|e| e.subject.as_str()).collect();
    let mut removed = Vec::new();
    let mut check = |of: &[&str], subject: &str| -> Result<()> {
        if let Some(stored) = nodes.get(subject)? {
            for stage in decode_stages(stored.value()) {
                if of.contains(&stage.as_str()) {
                    removed.push((stage, subject.to_string()));
                }
            }
        }
        Ok(())
    };
    for subject in old_subjects.iter().filter(|s| !subjects.contains(*s)) {
        check(stages, subject)?;
    }
    for artifact in old_artifacts.iter().filter(|a| !artifacts.contains(a.as_str())) {
        check(ARTIFACT_STAGES, artifact)?;
    }
    removed.sort();
    removed.dedup();
    Ok(removed)
}

/// Delete `removed` (sorted) from their subjects' records; a subject left with none goes.
fn remove_nodes(nodes: &mut redb::Table<&'static str, &'static [u8]>, removed: &[Node]) -> Result<()> {
    let mut by_subject: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (stage, subject) in removed {
        by_subject.entry(subject.as_str()).or_default().push(stage.as_str());
    }
    for (subject, stages) in by_subject {
        let Some(mut group) = nodes.get(subject)?.and_then(|stored| decode_nodes(stored.value())) else { continue };
        group.retain(|(stage, _)| !stages.contains(&stage.as_str()));
        if group.is_empty() {
            nodes.remove(subject)?;
        } else {
            nodes.insert(subject, seal(rmp_serde::to_vec(&group).expect("records serialize")).as_slice())?;
        }
    }
    Ok(())
}

fn removed_event((stage, subject): &Node) -> NodeEvent {
    NodeEvent {
        stage: stage.clone(),
        subject: subject.clone(),
        status: Status::Removed,
        reasons: Vec::new(),
        cutoff: false,
    }
}

/// `cache stats`: entries and bytes of the cache, and the hit rate of the last run.
pub fn stats(dir: &Path) -> Result<String> {
    let path = dir.join(CACHE_FILE);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _lock = lock(dir)?;
    let mut notes = Vec::new();
    let db = open_database(dir, &mut notes)?;
    let txn = db.begin_read()?;
    let values = txn.open_table(VALUES)?.len()?;
    let mut nodes = 0;
    for item in txn.open_table(NODES)?.iter()? {
        nodes += decode_stages(item?.1.value()).len();
    }
    let mut out = format!("{}: {values} values, {nodes} nodes, {bytes} bytes\n", path.display());
    if let Ok(log) = crate::explain::read_run_log(dir) {
        let summary = log.summary();
        let looked_up = summary.reused + summary.recomputed + summary.new;
        let rate = if looked_up == 0 { 0.0 } else { 100.0 * summary.reused as f64 / looked_up as f64 };
        out.push_str(&format!("last run: {} reused, {} recomputed, {} new: hit rate {rate:.1}%\n", summary.reused, summary.recomputed, summary.new));
    }
    Ok(out)
}

/// `cache verify`: check every value's checksum; returns (checked, corrupt).
pub fn verify(dir: &Path) -> Result<(u64, u64)> {
    let _lock = lock(dir)?;
    let mut notes = Vec::new();
    let db = open_database(dir, &mut notes)?;
    for note in notes {
        eprintln!("codeintel-enrich: {note}");
    }
    let txn = db.begin_read()?;
    let table = txn.open_table(VALUES)?;
    let (mut checked, mut corrupt) = (0, 0);
    for item in table.iter()? {
        let (_, value) = item?;
        checked += 1;
        if unseal(value.value()).is_none() {
            corrupt += 1;
        }
    }
    Ok((checked, corrupt))
}

/// `cache gc`: drop values that no node of the last runs points to; returns how many.
pub fn gc(dir: &Path) -> Result<u64> {
    let _lock = lock(dir)?;
    let mut notes = Vec::new();
    let mut db = open_database(dir, &mut notes)?;
    let txn = db.begin_write()?;
    let mut dropped = 0;
    {
        let nodes = txn.open_table(NODES)?;
        let mut live: BTreeSet<[u8; 32]> = BTreeSet::new();
        for item in nodes.iter()? {
            let (_, value) = item?;
            live.extend(decode_nodes(value.value()).unwrap_or_default().into_iter().map(|(_, record)| record.key));
        }
        let mut values = txn.open_table(VALUES)?;
        let mut dead = Vec::new();
        for item in values.iter()? {
            let (key, _) = item?;
            let key = key.value().to_vec();
            if key.len() != 32 || !live.contains(&<[u8; 32]>::try_from(key.as_slice()).unwrap()) {
                dead.push(key);
            }
        }
        for key in dead {
            values.remove(key.as_slice())?;
            dropped += 1;
        }
    }
    txn.commit()?;
    db.compact().ok();
    Ok(dropped)
}

/// `cache clear`: delete the cache file, the run log and the kept artifacts.
pub fn clear(dir: &Path) -> Result<()> {
    let _lock = lock(dir)?;
    for file in [CACHE_FILE, RUN_LOG_FILE] {
        match std::fs::remove_file(dir.join(file)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("cannot remove {}", dir.join(file).display())),
        }
    }
    match std::fs::remove_dir_all(dir.join(ARTIFACTS_DIR)) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", dir.join(ARTIFACTS_DIR).display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outline_of(cache: &StageCache, version: u32, content: &str, runs: &mut u32) -> String {
        cache.get_or_compute("outline", version, "pkg/a.py", vec![("content", content.to_string())], || {
            *runs += 1;
            format!("outline of {content}")
        })
    }

    fn reasons(log: &RunLog) -> Vec<(Status, Vec<Reason>)> {
        log.expanded().nodes.iter().map(|n| (n.status, n.reasons.clone())).collect()
    }

    #[test]
    fn keys_reasons_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let subjects: BTreeSet<String> = ["pkg/a.py".to_string()].into();
        let mut runs = 0;
        let run = |version: u32, content: &str, runs: &mut u32| {
            let cache = StageCache::open(dir.path()).unwrap();
            let value = outline_of(&cache, version, content, runs);
            assert_eq!(value, format!("outline of {content}"));
            cache.finish(&["outline"], &subjects, || Ok(Vec::new()), Vec::new(), None).unwrap()
        };
        assert_eq!(reasons(&run(1, "aaa", &mut runs)), [(Status::New, vec![Reason::New])]);
        assert_eq!(reasons(&run(1, "aaa", &mut runs)), [(Status::Reused, vec![])]);
        assert_eq!(runs, 1, "the second process reused the value");
        let changed = run(1, "bbb", &mut runs);
        assert_eq!(
            reasons(&changed),
            [(Status::Recomputed, vec![Reason::Input { name: "content(pkg/a.py)".into(), old: Some("aaa".into()), new: "bbb".into() }])]
        );
        // A stage version bump: same inputs, another key.
        assert_eq!(reasons(&run(2, "bbb", &mut runs)), [(Status::Recomputed, vec![Reason::VersionChanged])]);
        assert_eq!(runs, 3);
        // A node whose subject disappears is removed.
        let cache = StageCache::open(dir.path()).unwrap();
        let log = cache.finish(&["outline"], &BTreeSet::new(), || Ok(Vec::new()), Vec::new(), None).unwrap();
        assert_eq!(reasons(&log), [(Status::Removed, vec![])]);
    }

    /// Graph facts are written by path: an update removes the paths gone before it puts the
    /// refreshed ones, so a path both gone and refreshed (a file whose module name changed)
    /// keeps its new fact; the table read back is in path order with its head.
    #[test]
    fn graph_facts_update_removes_before_it_puts() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StageCache::open(dir.path()).unwrap();
        let record = BuildRecord {
            key: [0; 32],
            artifacts: Vec::new(),
            modules: 0,
            symbols: 0,
            imports: 0,
            syntax_error_modules: 0,
            problems: Vec::new(),
            artifact_stats: Vec::new(),
            database: None,
        };
        let rows = || ByPathUpdate { head: rmp_serde::to_vec(&0u32).unwrap(), replace: true, put: Vec::new(), remove: Vec::new() };
        let stats = crate::stat::StatsUpdate { replace: true, put: Vec::new(), remove: Vec::new() };
        let facts = |head: u32, replace: bool, put: &[(&str, &str)], remove: &[&str]| ByPathUpdate {
            head: rmp_serde::to_vec(&head).unwrap(),
            replace,
            put: put.iter().map(|(path, fact)| (path.to_string(), rmp_serde::to_vec(fact).unwrap())).collect(),
            remove: remove.iter().map(|p| p.to_string()).collect(),
        };
        cache.record_build(record.clone(), rows(), &stats, Some(facts(3, true, &[("b.py", "b1"), ("a.py", "a1"), ("c.py", "c1")], &[]))).unwrap();
        assert_eq!(cache.graph_facts::<u32, String>(), Some((3, vec!["a1".to_string(), "b1".to_string(), "c1".to_string()])));
        cache.record_build(record, rows(), &stats, Some(facts(2, false, &[("b.py", "b2")], &["b.py", "c.py"]))).unwrap();
        assert_eq!(cache.graph_facts::<u32, String>(), Some((2, vec!["a1".to_string(), "b2".to_string()])));
    }

    /// Nodes are stored grouped by subject: a build that recomputes one stage of a subject keeps
    /// the records of its other stages, a subject gone takes only its per-file stages, and the
    /// counts `cache stats` prints are of nodes, not of groups.
    #[test]
    fn node_records_grouped_by_subject() {
        let dir = tempfile::tempdir().unwrap();
        let files: BTreeSet<String> = ["a.py".to_string(), "b.py".to_string()].into();
        let stages = ["imports", "outline"];
        let build = |subjects: &BTreeSet<String>, content: &str, write_artifact: bool| {
            let cache = StageCache::open(dir.path()).unwrap();
            for subject in subjects {
                for stage in stages {
                    let inputs = vec![("content", if subject == "a.py" && stage == "outline" { content.to_string() } else { "same".to_string() })];
                    cache.get_or_compute(stage, 1, subject, inputs, || format!("{stage} of {subject}"));
                }
            }
            if write_artifact {
                cache.record_artifact("a.py", [7; 32], 0);
            }
            cache.finish(&stages, subjects, || Ok(Vec::new()), Vec::new(), None).unwrap()
        };
        let nodes = |log: &RunLog| -> Vec<(String, String, Status)> {
            log.expanded().nodes.into_iter().map(|n| (n.stage, n.subject, n.status)).collect()
        };
        build(&files, "v1", true);
        assert!(stats(dir.path()).unwrap().contains("4 values, 5 nodes"), "{}", stats(dir.path()).unwrap());
        // One stage of a.py reruns; its other stage and the artifact node of the same name stay.
        let log = build(&files, "v2", false);
        let ran: Vec<_> = nodes(&log).into_iter().filter(|n| n.2 != Status::Reused).collect();
        assert_eq!(ran, [("outline".to_string(), "a.py".to_string(), Status::Recomputed)]);
        let log = build(&files, "v2", true);
        let summary = log.summary();
        assert_eq!((summary.new, summary.recomputed, summary.reused), (0, 0, 5), "every record was kept");
        // b.py goes: its two nodes are removed, a.py's three stay.
        let only_a: BTreeSet<String> = ["a.py".to_string()].into();
        let log = build(&only_a, "v2", true);
        let removed: Vec<_> = nodes(&log).into_iter().filter(|n| n.2 == Status::Removed).map(|n| (n.0, n.1)).collect();
        assert_eq!(removed, [("imports".to_string(), "b.py".to_string()), ("outline".to_string(), "b.py".to_string())]);
        assert!(stats(dir.path()).unwrap().contains(" 3 nodes"), "{}", stats(dir.path()).unwrap());
        let log = build(&only_a, "v2", true);
        assert_eq!((log.summary().reused, log.summary().new, log.summary().recomputed), (3, 0, 0), "two grid nodes and the artifact, reused");
    }

    /// A node computed twice in one build (a package re-keyed as an overlay parent) is one
    /// node: one event, and the cache keeps its last computation.
    #[test]
    fn a_node_computed_twice_is_reported_once_and_kept_as_its_last() {
        let dir = tempfile::tempdir().unwrap();
        let subjects: BTreeSet<String> = ["p/__init__.py".to_string()].into();
        let cache = StageCache::open(dir.path()).unwrap();
        for parent in ["false", "true"] {
            cache.get_or_compute("tags", 1, "p/__init__.py", vec![("parent", parent.to_string())], || parent.to_string());
        }
        let log = cache.finish(&["tags"], &subjects, || Ok(Vec::new()), Vec::new(), None).unwrap();
        assert_eq!(log.summary().new, 1);
        assert_eq!(log.expanded().nodes.len(), 1);
        drop(cache);
        let cache = StageCache::open(dir.path()).unwrap();
        assert_eq!(cache.previous("tags", "p/__init__.py").unwrap().inputs, [("parent".into(), "true".to_string())]);
    }

    /// A cold build's run log names the grid stages that are new for every file instead of
    /// listing each node; expanded, it is the same log.
    #[test]
    fn an_all_new_grid_stage_is_listed_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let subjects: BTreeSet<String> = ["a.py".to_string(), "b.py".to_string()].into();
        let cache = StageCache::open(dir.path()).unwrap();
        for subject in &subjects {
            cache.get_or_compute("outline", 1, subject, vec![("content", "x".to_string())], || 1);
        }
        cache.get_or_compute("imports", 1, "a.py", vec![("content", "x".to_string())], || 1);
        let log = cache.finish(&["imports", "outline"], &subjects, || Ok(Vec::new()), Vec::new(), None).unwrap();
        assert_eq!(log.grid_new, ["outline"], "imports is not new for b.py (never computed: reused)");
        assert_eq!(log.nodes.len(), 1, "only imports(a.py) is listed");
        let expanded: Vec<_> = log.expanded().nodes.into_iter().map(|n| (n.stage, n.subject, n.status, n.reasons)).collect();
        assert_eq!(
            expanded,
            [
                ("imports".to_string(), "a.py".to_string(), Status::New, vec![Reason::New]),
                ("imports".to_string(), "b.py".to_string(), Status::Reused, vec![]),
                ("outline".to_string(), "a.py".to_string(), Status::New, vec![Reason::New]),
                ("outline".to_string(), "b.py".to_string(), Status::New, vec![Reason::New]),
            ]
        );
        let summary = log.summary();
        assert_eq!((summary.new, summary.reused), (3, 1));
        // Read back from the file, the same.
        assert_eq!(crate::explain::read_run_log(dir.path()).unwrap().summary(), summary);
    }

    /// An artifact's node reused through a cache hit is counted: every build of the same
    /// inputs reports the same number of nodes.
    #[test]
    fn a_reused_artifact_node_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let subjects: BTreeSet<String> = ["a.py".to_string()].into();
        let build = || {
            let cache = StageCache::open(dir.path()).unwrap();
            cache.get_or_compute("outline", 1, "a.py", vec![("content", "x".to_string())], || 1);
            cache.get_or_compute("parquet", 1, "parquet/a/part-0.parquet", vec![("jsonl", "d".to_string())], || 2);
            cache.finish(&["outline"], &subjects, || Ok(Vec::new()), Vec::new(), None).unwrap().summary()
        };
        let cold = build();
        assert_eq!(cold.new, 2);
        let warm = build();
        assert_eq!((warm.reused, warm.new, warm.recomputed), (2, 0, 0));
    }

    #[test]
    fn queued_records_unpack_to_the_record() {
        let record = NodeRecord {
            key: [1; 32],
            inputs: vec![("content".into(), "0123456789ab".to_string()), ("module".into(), String::new()), ("odd\0name".into(), "é\0".to_string())],
            output: [2; 32],
        };
        let mut bytes = Arena::default();
        let packed = QueuedRecord::pack(record.clone(), &mut bytes);
        let empty = NodeRecord { key: [3; 32], inputs: Vec::new(), output: [4; 32] };
        let packed_empty = QueuedRecord::pack(empty.clone(), &mut bytes);
        assert_eq!(packed.unpack(&bytes), record);
        assert_eq!(packed_empty.unpack(&bytes), empty);
    }

    #[test]
    fn arena_keeps_every_push_where_it_said() {
        let mut bytes = Arena::default();
        let big = vec![7u8; Arena::CHUNK / 8 + 1];
        let mut pushed = Vec::new();
        for i in 0..20_000usize {
            let small = i.to_string().repeat(i % 300);
            // Small pushes fill chunks; a large one between them gets its own.
            let span = if i % 5_000 == 0 { bytes.push(&[&big, b"!"]) } else { bytes.push(&[small.as_bytes(), b"|", b"end"]) };
            pushed.push((span, if i % 5_000 == 0 { [big.as_slice(), b"!"].concat() } else { format!("{small}|end").into_bytes() }));
        }
        assert!(bytes.chunks.len() > 2, "{} chunks", bytes.chunks.len());
        assert!(bytes.chunks.iter().all(|chunk| chunk.len() <= chunk.capacity()));
        for (span, expected) in pushed {
            assert_eq!(bytes.get(span), expected.as_slice());
        }
    }

    #[test]
    fn sealed_values_detect_corruption() {
        let sealed = seal(b"payload".to_vec());
        assert_eq!(unseal(&sealed), Some(&b"payload"[..]));
        let mut bytes = Arena::default();
        let queued = bytes.push(&[b"payload", blake3::hash(b"payload").as_bytes()]);
        assert_eq!(bytes.get(queued), sealed.as_slice());
        let mut flipped = sealed.clone();
        flipped[2] ^= 1;
        assert_eq!(unseal(&flipped), None);
        assert_eq!(unseal(&sealed[..10]), None);
    }
}
