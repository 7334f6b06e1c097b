//! The salsa database and its inputs.
//!
//! [`SourceFile`] is the one input: a file's path, module name and decoded text, whose
//! revision is its blake3 content hash — [`Workspace::sync`] calls a setter only when the hash
//! (or the module name) really changed, because every setter call bumps the revision.
//! Everything else is a tracked query in [`crate::stages`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use salsa::{Database as _, Setter as _};

use crate::cache::StageCache;
use crate::source::ContentHash;

/// The database trait every query takes.
#[salsa::db]
pub trait Db: salsa::Database {
    /// The persistent stage cache of the current build, if any (see [`crate::cache`]).
    fn stage_cache(&self) -> Option<&StageCache>;
    /// The directory the files' paths are relative to (never part of a key).
    fn root(&self) -> Option<&std::path::Path>;
    /// The user's pattern tags (`--tags-yaml` queries), compiled; read by `pattern_tags`
    /// together with the [`PatternConfig`] input that names them.
    fn user_patterns(&self) -> Option<&dyn PatternTagger>;
}

/// Compiled tree-sitter queries that tag a module (the user's, from `--tags-yaml`). Defined
/// here so the database can hold them without depending on the stage that compiles them
/// (`crate::stages::patterns::PatternSet` implements it).
pub trait PatternTagger: Send + Sync {
    /// The tags whose query matches in this tree, sorted.
    fn tags(&self, root: tree_sitter::Node<'_>, text: &str) -> Vec<String>;
    /// A digest of the queries, for cache keys.
    fn fingerprint(&self) -> &str;
}

/// The concrete database. Cloning is cheap and shares the storage: each rayon worker takes
/// its own clone.
#[salsa::db]
#[derive(Clone, Default)]
pub struct Database {
    storage: salsa::Storage<Self>,
    cache: Option<Arc<StageCache>>,
    root: Option<Arc<std::path::Path>>,
    patterns: Option<Arc<dyn PatternTagger>>,
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn stage_cache(&self) -> Option<&StageCache> {
        self.cache.as_deref()
    }

    fn root(&self) -> Option<&std::path::Path> {
        self.root.as_deref()
    }

    fn user_patterns(&self) -> Option<&dyn PatternTagger> {
        self.patterns.as_deref()
    }
}

impl Database {
    /// A database that records the name and subject of every query it executes, for tests
    /// and diagnostics (`"outline(pkg/a.py)"`).
    pub fn with_execution_log() -> (Self, ExecutionLog) {
        let log = ExecutionLog::default();
        let sink = log.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind {
                sink.0.lock().unwrap().push(database_key);
            }
        })));
        (Database { storage, cache: None, root: None, patterns: None }, log)
    }

    /// Attach (or detach) the persistent stage cache. Values are content-addressed, so
    /// memoized results stay valid whichever cache is attached.
    pub fn set_stage_cache(&mut self, cache: Option<Arc<StageCache>>) {
        self.cache = cache;
    }

    /// Set the directory files are read from when their text was not loaded.
    pub fn set_root(&mut self, root: &std::path::Path) {
        self.root = Some(Arc::from(root));
    }
}

/// Queries keyed by the [`Project`] rather than a file.
const PROJECT_QUERIES: &[&str] = &["module_index", "import_graph", "load_cycles"];

/// Query executions recorded by [`Database::with_execution_log`].
#[derive(Clone, Default)]
pub struct ExecutionLog(Arc<Mutex<Vec<salsa::DatabaseKeyIndex>>>);

impl ExecutionLog {
    /// Take the recorded executions as sorted `"query(path)"` strings.
    pub fn take(&self, db: &Database) -> Vec<String> {
        let keys = std::mem::take(&mut *self.0.lock().unwrap());
        let mut names: Vec<String> = keys
            .into_iter()
            .map(|key| {
                let query = db.ingredient_debug_name(key.ingredient_index()).into_owned();
                if PROJECT_QUERIES.contains(&query.as_str()) {
                    return format!("{query}(*)");
                }
                let file = SourceFile::lookup(db, key.key_index());
                format!("{query}({})", file.map_or("?".to_string(), |f| f.path(db).clone()))
            })
            .collect();
        names.sort();
        names
    }
}

/// One Python source file.
#[salsa::input(debug)]
pub struct SourceFile {
    /// Repo-relative `/` path.
    #[returns(ref)]
    pub path: String,
    /// Dotted module name.
    #[returns(ref)]
    pub module: String,
    /// `__init__.py` of a package.
    #[returns(copy)]
    pub is_package: bool,
    /// blake3 of the raw bytes: the input's revision.
    #[returns(copy)]
    pub content_hash: ContentHash,
    /// Name of the encoding the text was decoded from.
    #[returns(ref)]
    pub encoding: String,
    /// Decoded text (see [`crate::source::decode`]), or none when the stat fast path found
    /// the file unchanged and did not read it: [`source_text`] reads it if a stage needs it.
    #[returns(ref)]
    pub text: LoadedText,
    /// The text of the `.pyi` stub beside the file, if there is one (checkers read it instead
    /// of the source).
    #[returns(ref)]
    pub stub: Option<Arc<str>>,
    /// The compiled extension module beside the file (its file name), which CPython imports
    /// instead of the source.
    #[returns(ref)]
    pub compiled: Option<String>,
}

/// A file's text as the build loaded it, which a one-shot build lets go of once the stages
/// that read text have run, before the rows are keyed and rendered
/// ([`Workspace::release_texts`]; the generated 100k tree has 97 MB of source). A stage that
/// reads a text after that ([`source_text`]) reads the file again: the same text unless the
/// file was edited during the build, which it reports.
#[derive(Clone, Default)]
pub struct LoadedText(Arc<Mutex<Option<Arc<str>>>>);

impl LoadedText {
    pub fn new(text: Option<Arc<str>>) -> Self {
        LoadedText(Arc::new(Mutex::new(text)))
    }

    pub fn get(&self) -> Option<Arc<str>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn release(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }
}

/// The same slot (inputs are replaced, not compared, when a file's hash changes).
impl PartialEq for LoadedText {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LoadedText {}

impl std::fmt::Debug for LoadedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.get().map(|text| text.len());
        f.debug_tuple("LoadedText").field(&bytes).finish()
    }
}

/// The decoded text of `file`: loaded, or read now from the root. Memoized per content hash.
/// A file that changed or vanished since it was hashed is reported and read as it is now.
#[salsa::tracked(returns(ref), no_eq, lru = 128)]
pub fn source_text(db: &dyn Db, file: SourceFile) -> Arc<str> {
    if let Some(text) = file.text(db).get() {
        return text;
    }
    let Some(root) = db.root() else {
        tracing::warn!("{}: text not loaded and no root to read it from", file.path(db));
        return Arc::from("");
    };
    let path = root.join(file.path(db));
    match std::fs::read(&path).map_err(|err| err.to_string()).and_then(|bytes| crate::source::decode(&bytes).map_err(|err| err.to_string())) {
        Ok(decoded) => {
            if decoded.hash != file.content_hash(db) {
                tracing::warn!("{}: changed during the build", file.path(db));
            }
            decoded.text
        }
        Err(err) => {
            tracing::warn!("{}: cannot read it again: {err}", file.path(db));
            Arc::from("")
        }
    }
}

impl SourceFile {
    /// The file a query key names. Every tracked query here is keyed by a `SourceFile`.
    fn lookup(_db: &Database, id: salsa::Id) -> Option<SourceFile> {
        use salsa::plumbing::FromId as _;
        Some(SourceFile::from_id(id))
    }
}

/// The set of files in the build (a singleton). Set only when the list of files changed, so
/// project-wide queries (the module index, the import graph) re-run only then or when one of
/// their per-file inputs changed.
#[salsa::input(singleton, debug)]
pub struct Project {
    #[returns(ref)]
    pub files: Arc<[SourceFile]>,
}

/// The Python target conditions are decided for (a singleton). Queries read it only when a
/// module has a condition on `sys.version_info`, `sys.platform` or `os.name`, so changing it
/// re-runs exactly those modules' evaluations.
#[salsa::input(singleton, debug)]
pub struct Target {
    #[returns(copy)]
    pub python_version: (u32, u32),
    #[returns(ref)]
    pub platform: String,
}

/// The fingerprint of the user's pattern tags (empty when there are none), a singleton:
/// `pattern_tags` reads it, so new queries re-run exactly the pattern tags.
#[salsa::input(singleton, debug)]
pub struct PatternConfig {
    #[returns(ref)]
    pub fingerprint: String,
}

/// The load cycles of the previous build, when the graph firewall says they cannot have
/// changed (a singleton): `load_cycles` returns them instead of reading every file's loads.
#[salsa::input(singleton, debug)]
pub struct KnownLoadCycles {
    #[returns(ref)]
    pub cycles: Option<Arc<BTreeMap<String, u32>>>,
}

/// Every file's module-level loads (by path) as the build has them from the recorded graph
/// facts (a singleton): package closures read them instead of evaluating the loads of
/// thousands of modules from their cached scopes. `None` otherwise.
#[salsa::input(singleton, debug)]
pub struct KnownLoads {
    #[returns(ref)]
    pub loads: Option<Arc<RecordedLoads>>,
}

/// Files' module-level loads as the last build recorded them, by path.
pub enum RecordedLoads {
    /// Every file's, decoded: the edges and layout paths decode every graph fact anyway.
    All(rustc_hash::FxHashMap<String, BTreeMap<String, bool>>),
    /// Read from the cache a file at a time (`None` when a file has no readable fact): behind
    /// the graph firewall a changed package's closure walk reads at most
    /// [`crate::stages::exports::CLOSURE_LIMIT`] modules' loads, and decoding all of them
    /// first took ~0.2 s of a package's one-line edit on the 100k-module tree.
    Read(Box<dyn Fn(&str) -> Option<BTreeMap<String, bool>> + Send + Sync>),
}

impl PartialEq for RecordedLoads {
    /// Equal decoded loads; loads read on demand equal nothing (a setter then always runs).
    fn eq(&self, other: &Self) -> bool {
        matches!((self, other), (RecordedLoads::All(a), RecordedLoads::All(b)) if a == b)
    }
}

impl std::fmt::Debug for RecordedLoads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordedLoads::All(loads) => write!(f, "All({} files)", loads.len()),
            RecordedLoads::Read(_) => f.write_str("Read"),
        }
    }
}

/// A file ready to become (or update) a [`SourceFile`] input.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub path: String,
    pub module: String,
    pub is_package: bool,
    pub encoding: String,
    pub hash: ContentHash,
    /// `None` when the stat fast path trusted the recorded hash.
    pub text: Option<Arc<str>>,
    /// The stub beside the file (always read: stubs are small).
    pub stub: Option<Arc<str>>,
    /// A compiled extension module beside the file, by file name.
    pub compiled: Option<String>,
}

/// The database plus the inputs of the current file set, by path. Kept across builds in one
/// process, so a rebuild only re-executes the queries whose inputs changed.
#[derive(Default)]
pub struct Workspace {
    pub db: Database,
    files: BTreeMap<String, SourceFile>,
    /// It serves one build: its database may be dropped once no sink reads it (see
    /// [`Workspace::release`]).
    one_shot: bool,
}

impl Workspace {
    pub fn new(db: Database) -> Self {
        Workspace { db, files: BTreeMap::new(), one_shot: false }
    }

    /// A workspace for a single build in a process that exits after it (the command line's):
    /// its memos are dropped as soon as nothing reads them, and the largest values the build
    /// holds at its end are left to the operating system instead of freed (an edit of the
    /// 100k-module tree spent ~0.2 s freeing them).
    pub fn one_shot() -> Self {
        Workspace { one_shot: true, ..Workspace::default() }
    }

    /// Whether the workspace serves one build (see [`Workspace::one_shot`]).
    pub fn is_one_shot(&self) -> bool {
        self.one_shot
    }

    /// Let go of the loaded texts of a one-shot workspace (see [`LoadedText`]); a workspace
    /// kept across builds keeps them.
    pub fn release_texts(&self) {
        if self.one_shot {
            for file in self.files.values() {
                file.text(&self.db).release();
            }
        }
    }

    /// For a one-shot workspace, its database — every memoized value of every file — for the
    /// caller to drop, once; otherwise nothing. Once the last sink that reads the memos has
    /// rendered nothing does, while the dataset's encoding, the database update, the outputs'
    /// writes and the cache's inserts still allocate.
    pub fn release(&mut self) -> Option<Database> {
        if !std::mem::take(&mut self.one_shot) {
            return None;
        }
        self.files.clear();
        Some(std::mem::take(&mut self.db))
    }

    /// Use `compiled` as the user's pattern tags; the input changes only when their
    /// fingerprint does.
    pub fn set_user_patterns(&mut self, compiled: Option<Arc<dyn PatternTagger>>) {
        let fingerprint = compiled.as_ref().map(|p| p.fingerprint().to_string()).unwrap_or_default();
        match PatternConfig::try_get(&self.db) {
            Some(input) if *input.fingerprint(&self.db) == fingerprint => {}
            Some(input) => {
                input.set_fingerprint(&mut self.db).to(fingerprint);
                self.db.patterns = compiled;
            }
            None => {
                PatternConfig::new(&self.db, fingerprint);
                self.db.patterns = compiled;
            }
        }
    }

    /// Tell `load_cycles` the previous build's cycles (behind the graph firewall), or to
    /// compute them (`None`); a setter only when the value changed.
    pub fn set_known_load_cycles(&mut self, cycles: Option<Arc<BTreeMap<String, u32>>>) {
        match KnownLoadCycles::try_get(&self.db) {
            Some(input) if *input.cycles(&self.db) == cycles => {}
            Some(input) => {
                input.set_cycles(&mut self.db).to(cycles);
            }
            None => {
                KnownLoadCycles::new(&self.db, cycles);
            }
        }
    }

    /// Give the closure walks the recorded loads (decoded on the edges and layout paths, read
    /// on demand behind the firewall), or let them evaluate loads (`None`); a setter only when
    /// the value changed (loads read on demand always set it).
    pub fn set_known_loads(&mut self, loads: Option<Arc<RecordedLoads>>) {
        match KnownLoads::try_get(&self.db) {
            Some(input) if *input.loads(&self.db) == loads => {}
            Some(input) => {
                input.set_loads(&mut self.db).to(loads);
            }
            None => {
                KnownLoads::new(&self.db, loads);
            }
        }
    }

    /// Make the [`Target`] input match `target` (a setter only when a value changed).
    pub fn set_target(&mut self, target: &crate::config::PythonTarget) {
        match Target::try_get(&self.db) {
            Some(input) => {
                if input.python_version(&self.db) != target.version {
                    input.set_python_version(&mut self.db).to(target.version);
                }
                if *input.platform(&self.db) != target.platform {
                    input.set_platform(&mut self.db).to(target.platform.clone());
                }
            }
            None => {
                Target::new(&self.db, target.version, target.platform.clone());
            }
        }
    }

    /// Make the inputs match `loaded` (sorted or not): create new files, update changed ones
    /// (only when their hash or name changed), forget removed ones. Returns the current files
    /// sorted by path.
    pub fn sync(&mut self, loaded: Vec<LoadedFile>) -> Vec<SourceFile> {
        // Built from a vector (the files come in path order: a bulk build, where inserting one
        // by one compared paths all the way down the tree).
        let mut next: Vec<(String, SourceFile)> = Vec::with_capacity(loaded.len());
        for file in loaded {
            let input = match self.files.remove(&file.path) {
                Some(input) => {
                    let db = &mut self.db;
                    if input.content_hash(db) != file.hash {
                        input.set_content_hash(db).to(file.hash);
                        input.set_text(db).to(LoadedText::new(file.text));
                        if *input.encoding(db) != file.encoding {
                            input.set_encoding(db).to(file.encoding);
                        }
                    }
                    if *input.module(db) != file.module {
                        input.set_module(db).to(file.module);
                    }
                    if input.is_package(db) != file.is_package {
                        input.set_is_package(db).to(file.is_package);
                    }
                    if *input.stub(db) != file.stub {
                        input.set_stub(db).to(file.stub);
                    }
                    if *input.compiled(db) != file.compiled {
                        input.set_compiled(db).to(file.compiled);
                    }
                    input
                }
                None => SourceFile::new(
                    &self.db,
                    file.path.clone(),
                    file.module,
                    file.is_package,
                    file.hash,
                    file.encoding,
                    LoadedText::new(file.text),
                    file.stub,
                    file.compiled,
                ),
            };
            next.push((file.path, input));
        }
        self.files = next.into_iter().collect();
        let files: Arc<[SourceFile]> = self.files.values().copied().collect();
        match Project::try_get(&self.db) {
            Some(project) => {
                if **project.files(&self.db) != *files {
                    project.set_files(&mut self.db).to(files.clone());
                }
            }
            None => {
                Project::new(&self.db, files.clone());
            }
        }
        files.to_vec()
    }
}

impl Workspace {
    /// Run `f` for every file on the worker pool, each worker with its own database clone
    /// (`Database` is `Send` but not `Sync`: workers clone it through a mutex). Results keep the
    /// order of `files`.
    pub fn for_each_file<T: Send>(
        &self,
        pool: &rayon::ThreadPool,
        files: &[SourceFile],
        f: impl Fn(&Database, SourceFile) -> T + Sync,
    ) -> Vec<T> {
        self.for_each_item(pool, files, |db, file| f(db, *file))
    }

    /// [`Workspace::for_each_file`] over any items.
    pub fn for_each_item<I: Sync, T: Send>(
        &self,
        pool: &rayon::ThreadPool,
        items: &[I],
        f: impl Fn(&Database, &I) -> T + Sync,
    ) -> Vec<T> {
        use rayon::prelude::*;
        let db = Mutex::new(self.db.clone());
        pool.install(|| items.par_iter().map_init(|| db.lock().unwrap().clone(), |db, item| f(db, item)).collect())
    }
}
