//! Each file's rows in the JSON Lines artifacts, and their reuse across builds.
//!
//! A file contributes one contiguous run of rows to each of `modules.jsonl`, `symbols.jsonl`
//! and `imports.jsonl` (the artifacts are sorted by path). The node `rows(path)` has as named
//! inputs the file's source (content hash, module name, package flag, encoding) and digests of
//! the cross-module values its rows show (resolved imports, exports, re-exports, import edges,
//! fan-in/out). Its value is not copied into the stage cache: it is the file's byte range in
//! the previous artifacts, found through the [`RowIndex`] recorded with the last build. When a
//! file's key is unchanged and the previous artifacts still have their recorded hashes, its
//! rows are copied from there: nothing is looked up, parsed or rendered for it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use serde::{Deserialize, Serialize};

use crate::db::{Db, SourceFile};
use crate::stages::exports::{exports, exports_face, module_loads, reexports, traced_reexports};
use crate::stages::imports::Import;
use crate::stages::scope::module_scope;
use crate::stages::outline::{ParamKind, Symbol, SymbolKind};
use crate::stages::graph::Fan;
use crate::stages::record::{ModuleRecord, module_summary};
use crate::stages::scope::star_imports;
use crate::stages::tags::{Labels, TagFacts, TagSettings};
use crate::stages::resolve::{ImportResolution, import_edges, resolved_imports};
use crate::cache::{BuildRecord, update_parts};
use crate::writers::jsonl;

/// Bump when a row's fields or rendering change.
pub const ROWS_VERSION: u32 = 2;

/// The artifacts made of per-file rows, in the order of [`RowEntry::lens`].
pub const ROW_ARTIFACTS: [&str; 3] = ["modules.jsonl", "symbols.jsonl", "imports.jsonl"];

/// What the last build recorded about one file's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowEntry {
    pub path: String,
    /// The key of `rows(path)`: equal keys mean identical rows.
    #[serde(with = "crate::digest::bytes")]
    pub key: [u8; 32],
    /// Digest of the file's source inputs: equal means every per-file stage is unchanged.
    #[serde(with = "crate::digest::bytes")]
    pub source: [u8; 32],
    /// Digest of what the import graph and the load closures read of this file
    /// ([`graph_digest`]).
    #[serde(with = "crate::digest::bytes")]
    pub graph: [u8; 32],
    /// Digest of what other modules' exports read of this file ([`exports_face`]).
    #[serde(with = "crate::digest::bytes")]
    pub face: [u8; 32],
    /// The modules whose exports this file's cross-module values read ([`export_reads`]):
    /// when one of their faces changes, this file's rows key is recomputed.
    pub reads: Vec<String>,
    /// The module names its resolutions, exports and re-exports asked the module index about
    /// ([`index_probes`]): when a file is added or removed, only files whose probes meet a
    /// name whose place in the index changed can have other resolutions.
    pub probes: crate::digest::NameSet,
    /// How many modules the import closure of a package's submodule attributes held (0 for
    /// a module without one; see `exports::CLOSURE_LIMIT`).
    pub closure: u32,
    /// (fan_in, fan_out, in a runtime import cycle) in the import graph.
    pub fan: Fan,
    /// The module's tags and overlay decision.
    pub labels: Labels,
    /// Bytes of this file's rows in each of [`ROW_ARTIFACTS`].
    pub lens: [u64; 3],
    pub symbols: usize,
    pub imports: usize,
    pub parse_errors: u32,
    /// (line, column) of the first syntax error.
    pub syntax_first: Option<(u32, u32)>,
    /// (line, target) of imports that could not be resolved.
    pub unresolved: Vec<(u32, String)>,
    /// Validation warnings.
    pub warnings: Vec<crate::stages::validate::Warning>,
}

/// The row entries of the last complete build, sorted by path, recorded with its artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowIndex {
    /// Digest of every file's path, module name and package flag (see [`layout_digest`]).
    #[serde(with = "crate::digest::bytes")]
    pub layout: [u8; 32],
    pub entries: Vec<RowEntry>,
    /// The load cycles of the build (`load_cycles`): behind the graph firewall they cannot
    /// have changed, so the next build reuses them instead of reading every file's loads.
    pub load_cycles: std::collections::BTreeMap<String, u32>,
}

/// The row index without its entries: the cache keeps each entry under its path (see
/// [`crate::cache::ByPathUpdate`]).
#[derive(Serialize, Deserialize)]
pub struct RowIndexHead {
    #[serde(with = "crate::digest::bytes")]
    pub layout: [u8; 32],
    pub load_cycles: std::collections::BTreeMap<String, u32>,
    /// How many entries the index has.
    pub entries: usize,
}

impl RowIndex {
    /// The index from its head and entries as the cache returned them (in path order, the
    /// table's key order), if the head counts as many entries.
    pub fn from_parts((head, entries): (RowIndexHead, Vec<RowEntry>)) -> Option<RowIndex> {
        (entries.len() == head.entries).then_some(RowIndex { layout: head.layout, entries, load_cycles: head.load_cycles })
    }

    /// What to write of the index with these `entries` (sorted by path): every entry, or, given
    /// the `stored` ones (sorted, as the cache holds them), those that differ and the paths gone.
    pub fn update(
        layout: [u8; 32],
        load_cycles: &std::collections::BTreeMap<String, u32>,
        entries: &[&RowEntry],
        stored: Option<&[std::sync::Arc<RowEntry>]>,
    ) -> crate::cache::ByPathUpdate {
        let encode = |entry: &RowEntry| rmp_serde::to_vec(entry).expect("row entries serialize");
        /// [`RowIndexHead`] as it is written: the same fields, the cycles borrowed.
        #[derive(Serialize)]
        struct Head<'a> {
            #[serde(with = "crate::digest::bytes")]
            layout: [u8; 32],
            load_cycles: &'a std::collections::BTreeMap<String, u32>,
            entries: usize,
        }
        let head = rmp_serde::to_vec(&Head { layout, load_cycles, entries: entries.len() }).expect("row indexes serialize");
        let Some(stored) = stored else {
            let put = entries.iter().map(|e| (e.path.clone(), encode(e))).collect();
            return crate::cache::ByPathUpdate { head, replace: true, put, remove: Vec::new() };
        };
        // Both sorted by path: one merge walk.
        use std::cmp::Ordering;
        let (mut put, mut remove) = (Vec::new(), Vec::new());
        let (mut new, mut old) = (entries.iter().peekable(), stored.iter().peekable());
        loop {
            let order = match (new.peek(), old.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(n), Some(o)) => n.path.cmp(&o.path),
            };
            if order != Ordering::Greater {
                let n = new.next().expect("peeked");
                let same = order == Ordering::Equal && old.next().is_some_and(|o| std::ptr::eq(*n, &**o) || **n == **o);
                if !same {
                    put.push((n.path.clone(), encode(n)));
                }
            } else {
                remove.push(old.next().expect("peeked").path.clone());
            }
        }
        crate::cache::ByPathUpdate { head, replace: false, put, remove }
    }
}

/// What a file's entry records of its place among the other modules (see [`RowEntry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossModule {
    pub graph: [u8; 32],
    pub face: [u8; 32],
    pub reads: Vec<String>,
    pub probes: crate::digest::NameSet,
    pub closure: u32,
}

impl CrossModule {
    /// `graph`: the file's graph digest when the build knows it already.
    pub fn of(db: &dyn Db, file: SourceFile, graph: Option<[u8; 32]>) -> Self {
        CrossModule {
            graph: graph.unwrap_or_else(|| graph_digest(db, file)),
            face: exports_face(db, file),
            reads: export_reads(db, file),
            probes: crate::digest::NameSet::of(index_probes(db, file).iter().map(String::as_str)),
            closure: exports(db, file).closure_size,
        }
    }
}

/// A file's rendered rows for each of [`ROW_ARTIFACTS`]. Assembling an artifact takes its
/// part (the artifact holds the bytes from then on): a large build does not hold every row
/// twice.
#[derive(Debug)]
pub struct Rendered([std::sync::Mutex<Vec<u8>>; 3]);

impl Rendered {
    fn new(parts: [Vec<u8>; 3]) -> Self {
        Rendered(parts.map(std::sync::Mutex::new))
    }

    fn part(&self, part: usize) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0[part].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn take(&self, part: usize) -> Vec<u8> {
        std::mem::take(&mut *self.part(part))
    }

    /// blake3 of the rendered rows (the `rows` node's output, for early cutoff): computed only
    /// for the cache's record, before any part is taken.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for part in 0..3 {
            update_parts(&mut hasher, [self.part(part).as_slice()]);
        }
        *hasher.finalize().as_bytes()
    }
}

/// One file's contribution to the artifacts: its entry, and its rendered rows unless they
/// are reused from the previous artifacts.
pub struct FileOutput {
    /// Shared with the previous rows when reused (a copy only when a field changes): an
    /// edit of the 100k-module tree cloned every file's entry before.
    pub entry: std::sync::Arc<RowEntry>,
    pub rendered: Option<Rendered>,
}

/// Digest of the inputs every per-file stage of `file` reads.
pub fn source_digest(db: &dyn Db, file: SourceFile) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&file.content_hash(db).0);
    update_parts(&mut hasher, [file.module(db).as_str(), if file.is_package(db) { "1" } else { "0" }, file.encoding(db).as_str()]);
    update_parts(&mut hasher, [file.stub(db).as_deref().unwrap_or("\u{0}no stub"), file.compiled(db).as_deref().unwrap_or("")]);
    *hasher.finalize().as_bytes()
}

/// Digest of the module layout: every file's path, module name and package flag, the Python
/// target conditions are decided for, and the tag and overlay settings. Equal layouts resolve every import the same way
/// and decide every condition the same way.
pub fn layout_digest(db: &dyn Db, files: &[SourceFile], settings: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&layout_base(db, settings));
    for &file in files {
        update_parts(&mut hasher, [file.path(db).as_str(), file.module(db).as_str(), if file.is_package(db) { "1" } else { "0" }]);
    }
    *hasher.finalize().as_bytes()
}

/// The part of the layout digest that is not the files: the tag and overlay settings and the
/// Python target.
pub fn layout_base(db: &dyn Db, settings: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    update_parts(&mut hasher, ["settings", settings]);
    if let Some(target) = crate::db::Target::try_get(db) {
        let (major, minor) = target.python_version(db);
        update_parts(&mut hasher, ["target", &format!("{major}.{minor}"), target.platform(db).as_str()]);
    }
    *hasher.finalize().as_bytes()
}

/// Every module name `file`'s cross-module values asked the module index about: its
/// resolutions' and loads' ([`resolution_probes`]), its exports' and its re-exports'.
pub fn index_probes(db: &dyn Db, file: SourceFile) -> std::collections::BTreeSet<String> {
    let mut probes = resolution_probes(db, file);
    probes.extend(exports(db, file).probes.iter().cloned());
    probes.extend(traced_reexports(db, file).probes.iter().cloned());
    probes
}

/// The module names whose place in the index (a file, a namespace package, a top-level name)
/// resolving `file`'s imports and walking its loads read: each import target and load with
/// its ancestors, and each `target.name` of `from target import name`. Adding or removing a
/// file can change this file's resolutions, import edges and loads' reach only through one of
/// them (the build's layout path re-keys the files whose probes meet the changed names).
fn resolution_probes(db: &dyn Db, file: SourceFile) -> std::collections::BTreeSet<String> {
    let mut probes = std::collections::BTreeSet::new();
    let mut with_ancestors = |module: &str| probes.extend(crate::stages::exports::with_ancestors(crate::stages::resolve::strip_init(module)));
    for row in &crate::stages::imports::imports(db, file).imports {
        with_ancestors(&row.target);
        for name in &row.names {
            with_ancestors(&format!("{}.{}", row.target, name.name));
        }
    }
    for target in module_loads(db, file).keys() {
        with_ancestors(target);
    }
    probes
}

/// What the project-wide stages read of a file besides the layout: its import edges (the
/// import graph, fan-in/out), the modules its module-level code loads (load cycles, packages'
/// submodule attributes) and the modules it registers in `sys.modules` (other files' import
/// resolution). Positionless. The build records every file's (see [`GraphFacts`]) so that when
/// only some files' edges or loads change it can rebuild the graph, the load cycles and the
/// closures' reach without evaluating the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphFact {
    pub path: String,
    /// The file's module name and package flag (its place in the layout; not part of
    /// [`GraphFact::digest`]: a file keeps both as long as its path).
    pub module: String,
    pub package: bool,
    pub edges: std::collections::BTreeMap<String, bool>,
    pub loads: std::collections::BTreeMap<String, bool>,
    pub registered: std::collections::BTreeSet<String>,
}

impl GraphFact {
    pub fn of(db: &dyn Db, file: SourceFile) -> Self {
        GraphFact {
            path: file.path(db).clone(),
            module: file.module(db).clone(),
            package: file.is_package(db),
            edges: import_edges(db, file).clone(),
            loads: module_loads(db, file).clone(),
            registered: module_scope(db, file).registered_modules.clone(),
        }
    }

    /// The file's graph digest: equal digests, equal facts.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for part in [
            rmp_serde::to_vec(&self.edges).expect("maps serialize"),
            rmp_serde::to_vec(&self.loads).expect("maps serialize"),
            rmp_serde::to_vec(&self.registered).expect("sets serialize"),
        ] {
            hasher.update(&part);
        }
        *hasher.finalize().as_bytes()
    }
}

/// Every file's [`GraphFact`], in path order, for the layout they were recorded with. Kept in
/// the cache beside the row index, one entry per file, but read only when a build needs it;
/// a build outside the graph firewall writes the facts that changed (behind it every file's
/// facts are unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphFacts {
    #[serde(with = "crate::digest::bytes")]
    pub layout: [u8; 32],
    /// [`layout_base`] of that layout.
    #[serde(with = "crate::digest::bytes")]
    pub base: [u8; 32],
    pub files: Vec<GraphFact>,
}

/// [`GraphFacts`] without the files: the cache keeps each file's fact under its path.
#[derive(Serialize, Deserialize)]
pub struct GraphFactsHead {
    #[serde(with = "crate::digest::bytes")]
    pub layout: [u8; 32],
    #[serde(with = "crate::digest::bytes")]
    pub base: [u8; 32],
    /// How many files there are.
    pub files: usize,
}

impl GraphFacts {
    /// The facts from their head and files as the cache returned them (in path order, the
    /// table's key order), if the head counts as many files.
    pub fn from_parts((head, files): (GraphFactsHead, Vec<GraphFact>)) -> Option<GraphFacts> {
        (files.len() == head.files).then_some(GraphFacts { layout: head.layout, base: head.base, files })
    }

    /// The facts the last build recorded, read a file at a time by path, when they were
    /// recorded for `layout` and `base` and the cache holds one for every file they count.
    pub fn reader(cache: &crate::cache::StageCache, layout: [u8; 32], base: [u8; 32]) -> Option<impl Fn(&str) -> Option<GraphFact> + Send + Sync + 'static> {
        let (head, entries, read) = cache.graph_fact_reader::<GraphFactsHead, GraphFact>()?;
        (head.layout == layout && head.base == base && head.files == entries).then_some(read)
    }

    /// What the cache records of these facts: every file's (`changed` is `None`: the table is
    /// replaced), or those of the files at positions `changed`, with the paths `removed`.
    pub fn update(&self, changed: Option<&[usize]>, removed: Vec<String>) -> crate::cache::ByPathUpdate {
        let head = rmp_serde::to_vec(&GraphFactsHead { layout: self.layout, base: self.base, files: self.files.len() }).expect("graph facts serialize");
        let encode = |fact: &GraphFact| (fact.path.clone(), rmp_serde::to_vec(fact).expect("graph facts serialize"));
        match changed {
            None => crate::cache::ByPathUpdate { head, replace: true, put: self.files.iter().map(encode).collect(), remove: Vec::new() },
            Some(changed) => {
                crate::cache::ByPathUpdate { head, replace: false, put: changed.iter().map(|&i| encode(&self.files[i])).collect(), remove: removed }
            }
        }
    }
}

/// The graph digest of `file` ([`GraphFact::digest`]). When the layout and every file's graph
/// digest are the last build's, so are the graph, every fan and every resolution.
pub fn graph_digest(db: &dyn Db, file: SourceFile) -> [u8; 32] {
    GraphFact::of(db, file).digest()
}

/// The other modules whose faces ([`exports_face`]) `file`'s exports and re-exports were
/// computed from, sorted: besides the layout and the graph, all its rows read of other modules.
pub fn export_reads(db: &dyn Db, file: SourceFile) -> Vec<String> {
    let me = file.module(db);
    let mut reads: std::collections::BTreeSet<&String> = exports(db, file).reads.iter().collect();
    reads.extend(&traced_reexports(db, file).reads);
    reads.into_iter().filter(|m| *m != me).cloned().collect()
}

fn digest<T: Serialize>(value: &T) -> String {
    blake3::hash(&rmp_serde::to_vec(value).expect("stage outputs serialize")).to_hex().to_string()
}

/// The named inputs of `rows(file)`, given its fan-in and fan-out. Evaluates the cross-module
/// stages of `file` (not the import graph), and of its per-file stages only those they read.
pub fn rows_inputs(db: &dyn Db, file: SourceFile, (fan_in, fan_out, _): Fan, labels: &Labels, cross: &CrossModule) -> Vec<(&'static str, String)> {
    vec![
        ("content", file.content_hash(db).to_hex()),
        ("module", file.module(db).clone()),
        ("is_package", file.is_package(db).to_string()),
        ("encoding", file.encoding(db).clone()),
        ("stub", file.stub(db).as_deref().map_or_else(|| "none".to_string(), |s| blake3::hash(s.as_bytes()).to_hex()[..16].to_string())),
        ("resolved_imports", digest(resolved_imports(db, file))),
        ("exports", blake3::Hash::from(cross.face).to_hex().to_string()),
        ("reexports", digest(reexports(db, file))),
        ("import_edges", digest(import_edges(db, file))),
        ("fan", format!("{fan_in}/{fan_out}")),
        ("tags", labels.tags.join(",")),
        ("overlay", labels.overlay.reasons.join(",")),
    ]
}

/// What the tags of `file` are computed from: cheap per-file values (no outline, no text)
/// and its place in the import graph.
pub fn tag_facts(
    db: &dyn Db,
    file: SourceFile,
    (fan_in, fan_out, in_cycle): Fan,
    has_stub: bool,
    overlay_parent: bool,
    joins: &crate::inputs::joins::Joins,
) -> TagFacts {
    let exports = exports(db, file);
    let joined = joins.get(file.path(db));
    let summary = module_summary(db, file);
    TagFacts {
        path: file.path(db).clone(),
        is_package: file.is_package(db),
        fan_in,
        fan_out,
        in_cycle,
        exports: exports.names.len() as u32,
        exports_maybe: exports.maybe.len() as u32,
        exports_complete: exports.complete,
        reexports: reexports(db, file).len() as u32,
        star_imports: star_imports(db, file).len() as u32,
        has_all: exports.all.is_some(),
        lines: summary.lines,
        symbols: summary.symbols,
        imports: summary.imports,
        parse_errors: summary.parse_errors,
        has_main_guard: module_scope(db, file).has_main_guard,
        type_checking_imports: summary.type_checking_imports,
        max_params: summary.max_params,
        has_stub: has_stub || file.stub(db).is_some(),
        overlay_parent,
        coverage_permille: joined.and_then(|j| j.coverage.as_ref()).map(|c| (c.line_rate * 1000.0).round() as u32),
        type_errors: joined.and_then(|j| j.pyrefly.as_ref()).map(|p| p.errors),
        pattern_tags: crate::stages::patterns::pattern_tags(db, file).clone(),
    }
}

/// The `tags(path)` node: the module's tags and overlay decision, keyed by its facts and the
/// settings it reads.
pub fn labels(
    db: &dyn Db,
    file: SourceFile,
    fan: Fan,
    has_stub: bool,
    overlay_parent: bool,
    settings: &TagSettings,
    joins: &crate::inputs::joins::Joins,
) -> Labels {
    let facts = tag_facts(db, file, fan, has_stub, overlay_parent, joins);
    match db.stage_cache() {
        Some(cache) => {
            let inputs = vec![("facts", digest(&facts)), ("settings", settings.digest_for(&facts.path))];
            cache.get_or_compute("tags", crate::stages::tags::TAGS_VERSION, &facts.path, inputs, || settings.labels(&facts))
        }
        None => settings.labels(&facts),
    }
}

impl FileOutput {
    /// Render the rows of one file.
    #[allow(clippy::too_many_arguments)]
    pub fn render(
        key: [u8; 32],
        source: [u8; 32],
        cross: CrossModule,
        fan: Fan,
        labels: Labels,
        record: &ModuleRecord,
        symbols: &[Symbol],
        imports: &[Import],
        resolutions: &[ImportResolution],
        syntax_first: Option<(u32, u32)>,
        warnings: Vec<crate::stages::validate::Warning>,
        joins: crate::inputs::joins::ModuleJoins,
    ) -> Self {
        let path = record.path.as_str();
        let mut symbols: Vec<&Symbol> = symbols.iter().collect();
        symbols.sort_by_key(|s| (s.line, s.col));
        let mut imports: Vec<ImportRow<'_>> = imports
            .iter()
            .zip(resolutions)
            .map(|(import, resolution)| ImportRow::new(path, import, resolution))
            .collect();
        imports.sort_by(|a, b| (a.line, a.target, a.col).cmp(&(b.line, b.target, b.col)));
        let unresolved: Vec<(u32, String)> =
            imports.iter().filter(|r| r.unresolved).map(|r| (r.line, r.target.to_string())).collect();
        let (_, module_jsonl) = jsonl::render_in_key_order([ModuleRow {
            record,
            fan_in: fan.0,
            fan_out: fan.1,
            tags: &labels.tags,
            overlay: &labels.overlay,
            joins: &joins,
        }]);
        let (symbol_rows, symbols_jsonl) = jsonl::render_in_key_order(symbols.into_iter().map(|s| SymbolRow::new(path, s)));
        let (import_rows, imports_jsonl) = jsonl::render_in_key_order(imports.iter());
        let rendered = [module_jsonl, symbols_jsonl, imports_jsonl];
        FileOutput {
            entry: std::sync::Arc::new(RowEntry {
                path: record.path.clone(),
                key,
                source,
                graph: cross.graph,
                face: cross.face,
                reads: cross.reads,
                probes: cross.probes,
                closure: cross.closure,
                fan,
                labels,
                lens: rendered.each_ref().map(|r| r.len() as u64),
                symbols: symbol_rows,
                imports: import_rows,
                parse_errors: record.parse_errors,
                syntax_first,
                unresolved,
                warnings,
            }),
            rendered: Some(Rendered::new(rendered)),
        }
    }
}

/// The previous build's row artifacts, verified intact, with each file's byte ranges. Their
/// bytes are read when an artifact changes (runs copied) and to compare rows rendered again
/// at their previous length.
pub struct PreviousRows {
    out: PathBuf,
    /// Where each artifact was found intact: in `out`, or the cache's copy (then it must be
    /// written to `out` even when unchanged).
    found: [PathBuf; 3],
    /// (rows, bytes, blake3) of each of [`ROW_ARTIFACTS`] as recorded.
    recorded: [(usize, usize, [u8; 32]); 3],
    ranges: rustc_hash::FxHashMap<String, ([Range<usize>; 3], usize)>,
    /// The layout the previous build had.
    layout: [u8; 32],
    /// The entries, sorted by path: shared with the outputs that reuse them.
    entries: Vec<std::sync::Arc<RowEntry>>,
    load_cycles: std::sync::Arc<std::collections::BTreeMap<String, u32>>,
}

impl PreviousRows {
    /// The paths of the last build's rows.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.path.as_str())
    }

    /// The last build's row artifacts, in `out` or else in the cache's copy `kept`, if all
    /// three are intact and the index's lengths add up to their sizes.
    pub fn load(out: &Path, kept: &Path, index: RowIndex, last: &BuildRecord) -> Option<PreviousRows> {
        let mut recorded = [(0, 0, [0; 32]); 3];
        let mut found: [PathBuf; 3] = Default::default();
        for ((slot, found), name) in recorded.iter_mut().zip(&mut found).zip(ROW_ARTIFACTS) {
            *slot = last.artifact(name)?;
            *found = [out.join(name), crate::writers::kept_path(kept, name)].into_iter().find(|file| last.intact_at(file, name).yes())?;
        }
        Self::with_index(out, found, recorded, index)
    }

    /// The previous rows of artifacts `found` (recorded as `recorded`) per `index`, if the
    /// index's lengths add up to their sizes.
    fn with_index(out: &Path, found: [PathBuf; 3], recorded: [(usize, usize, [u8; 32]); 3], mut index: RowIndex) -> Option<PreviousRows> {
        let load_cycles = std::sync::Arc::new(std::mem::take(&mut index.load_cycles));
        let mut offsets = [0usize; 3];
        let mut ranges = rustc_hash::FxHashMap::with_capacity_and_hasher(index.entries.len(), Default::default());
        for (position, entry) in index.entries.iter().enumerate() {
            let range = std::array::from_fn(|i| {
                let start = offsets[i];
                offsets[i] += entry.lens[i] as usize;
                start..offsets[i]
            });
            ranges.insert(entry.path.clone(), (range, position));
        }
        (0..3)
            .all(|i| offsets[i] == recorded[i].1)
            .then(|| PreviousRows {
                out: out.to_path_buf(),
                found,
                recorded,
                ranges,
                layout: index.layout,
                entries: index.entries.into_iter().map(std::sync::Arc::new).collect(),
                load_cycles,
            })
    }

    /// The row entries of the previous build, sorted by path, as the cache holds them.
    pub fn entries(&self) -> &[std::sync::Arc<RowEntry>] {
        &self.entries
    }

    /// The layout the previous build had.
    pub fn layout(&self) -> [u8; 32] {
        self.layout
    }

    pub fn load_cycles(&self) -> &std::sync::Arc<std::collections::BTreeMap<String, u32>> {
        &self.load_cycles
    }

    /// The previous entry of `path`.
    pub fn entry(&self, path: &str) -> Option<&std::sync::Arc<RowEntry>> {
        self.ranges.get(path).map(|(_, position)| &self.entries[*position])
    }

    /// The previous artifact `part`, open for positioned reads, checked to have its recorded
    /// length.
    fn open(&self, part: usize) -> Result<(std::fs::File, &Path)> {
        let path = &self.found[part];
        let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let len = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
        anyhow::ensure!(len == self.recorded[part].1 as u64, "{} changed during the build", path.display());
        Ok((file, path))
    }
}

/// The previous artifact of one part, opened when first read.
struct PreviousFile<'a> {
    previous: Option<&'a PreviousRows>,
    part: usize,
    file: Option<(std::fs::File, &'a Path)>,
}

impl<'a> PreviousFile<'a> {
    fn new(previous: Option<&'a PreviousRows>, part: usize) -> Self {
        PreviousFile { previous, part, file: None }
    }

    /// Fill `bytes` from offset `at` of the previous artifact.
    fn read_at(&mut self, bytes: &mut [u8], at: usize) -> Result<()> {
        use std::os::unix::fs::FileExt as _;
        let (file, path) = match &mut self.file {
            Some(open) => open,
            None => {
                let previous = self.previous.context("reused rows come from the previous artifacts")?;
                self.file.insert(previous.open(self.part)?)
            }
        };
        file.read_exact_at(bytes, at as u64).with_context(|| format!("{} changed during the build", path.display()))
    }
}

/// One row artifact after [`assemble`].
pub enum Assembled {
    /// Byte for byte the previous one, still in the output directory: (rows, bytes, blake3).
    Unchanged(usize, usize, [u8; 32]),
    /// Byte for byte the previous one, found in the cache's copy (this file).
    Kept(usize, usize, [u8; 32], PathBuf),
    /// Other bytes: these pieces in order, written out by [`write_pieces`].
    Changed(Vec<Piece>),
}

/// A run of a changed row artifact's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes of the previous artifact: the rows of consecutive files reused (or rendered equal).
    Previous(Range<usize>),
    /// A file's rendered rows.
    Rendered(Vec<u8>),
}

/// Each row artifact from `outputs` (sorted by path) as pieces: runs of the previous artifact
/// for reused files — and for rendered files whose rows came out equal to their previous
/// rows — and the other files' rendered rows. An artifact whose pieces are the whole previous
/// artifact is unchanged (an edit that adds a file without imports leaves `imports.jsonl` as it
/// was), and nothing of it is written or hashed (only rendered rows of a file's previous
/// length are read back, to compare).
pub fn assemble(outputs: &[FileOutput], previous: Option<&PreviousRows>) -> Result<[Assembled; 3]> {
    // The three artifacts are independent: assembled side by side.
    use rayon::prelude::*;
    let assembled: Vec<Assembled> = (0..3).into_par_iter().map(|part| assemble_part(outputs, previous, part)).collect::<Result<_>>()?;
    Ok(assembled.try_into().unwrap_or_else(|_| unreachable!("three parts")))
}

fn assemble_part(outputs: &[FileOutput], previous: Option<&PreviousRows>, part: usize) -> Result<Assembled> {
    let mut source = PreviousFile::new(previous, part);
    let mut old = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    for output in outputs {
        let range = previous.and_then(|p| p.ranges.get(&output.entry.path)).map(|(ranges, _)| ranges[part].clone());
        let reused = match (&output.rendered, range) {
            (None, Some(range)) => Some(range),
            (None, None) => anyhow::bail!("the previous rows of {} are not in the row index", output.entry.path),
            // Rows rendered again (their inputs changed) often come out the same: compared.
            (Some(rendered), Some(range)) if rendered.part(part).len() == range.len() => {
                old.resize(range.len(), 0);
                source.read_at(&mut old, range.start)?;
                (*rendered.part(part) == old).then_some(range)
            }
            (Some(_), _) => None,
        };
        match reused {
            Some(range) if range.is_empty() => {}
            Some(range) => match pieces.last_mut() {
                Some(Piece::Previous(run)) if run.end == range.start => run.end = range.end,
                _ => pieces.push(Piece::Previous(range)),
            },
            None => {
                let rows = output.rendered.as_ref().map(|r| r.take(part)).unwrap_or_default();
                if !rows.is_empty() {
                    pieces.push(Piece::Rendered(rows));
                }
            }
        }
    }
    if let Some(previous) = previous {
        let (rows, bytes, hash) = previous.recorded[part];
        let whole = match pieces.as_slice() {
            [] => bytes == 0,
            [Piece::Previous(run)] => *run == (0..bytes),
            _ => false,
        };
        if whole {
            return Ok(if previous.found[part] == previous.out.join(ROW_ARTIFACTS[part]) {
                Assembled::Unchanged(rows, bytes, hash)
            } else {
                Assembled::Kept(rows, bytes, hash, previous.found[part].clone())
            });
        }
    }
    Ok(Assembled::Changed(pieces))
}

/// Write a changed artifact's pieces to `out` in order, copying the previous runs of artifact
/// `part` from the previous build's file a chunk at a time. Rendered rows are dropped once
/// written.
pub fn write_pieces(pieces: Vec<Piece>, previous: Option<&PreviousRows>, part: usize, out: &mut (impl std::io::Write + ?Sized)) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut source = PreviousFile::new(previous, part);
    let mut chunk = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Rendered(rows) => out.write_all(&rows)?,
            Piece::Previous(range) => {
                chunk.resize(CHUNK.min(range.len()), 0);
                let mut at = range.start;
                while at < range.end {
                    let n = (range.end - at).min(CHUNK);
                    source.read_at(&mut chunk[..n], at)?;
                    out.write_all(&chunk[..n])?;
                    at += n;
                }
            }
        }
    }
    Ok(())
}

/// A `modules.jsonl` row: the record and its place in the import graph. Serialized directly
/// with its keys in order (see the `Serialize` impl); rendered as a derive with flattened
/// fields, through a sorted `serde_json::Value`, every key and value of every module row was
/// an allocation of its own.
struct ModuleRow<'a> {
    record: &'a ModuleRecord,
    fan_in: u32,
    fan_out: u32,
    tags: &'a [String],
    overlay: &'a crate::stages::tags::OverlayDecision,
    joins: &'a crate::inputs::joins::ModuleJoins,
}

impl Serialize for ModuleRow<'_> {
    /// The fields of the record, the joins and the row's own, in key order; nested values in
    /// key order too (`OverlayDecision` is declared so, re-exports go through [`ReexportRow`],
    /// an input's figures through a sorted `Value`: null for a module no input mentions). The
    /// unit test `module_rows_match_their_sorted_value` holds this to the `Value` rendering.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        /// An input's figures with their keys sorted, or null.
        struct Sorted<'a, T>(&'a Option<T>);
        impl<T: Serialize> Serialize for Sorted<'_, T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                match self.0 {
                    None => serializer.serialize_none(),
                    Some(value) => jsonl::sorted(serde_json::to_value(value).map_err(serde::ser::Error::custom)?).serialize(serializer),
                }
            }
        }
        let (record, joins) = (self.record, self.joins);
        let reexports: Vec<ReexportRow<'_>> = record.reexports.iter().map(ReexportRow::from).collect();
        let mut map = serializer.serialize_map(Some(29))?;
        map.serialize_entry("all", &record.all)?;
        map.serialize_entry("all_complete", &record.all_complete)?;
        map.serialize_entry("content_hash", &record.content_hash)?;
        map.serialize_entry("coverage", &Sorted(&joins.coverage))?;
        map.serialize_entry("docstring", &record.docstring)?;
        map.serialize_entry("encoding", &record.encoding)?;
        map.serialize_entry("exports", &record.exports)?;
        map.serialize_entry("exports_complete", &record.exports_complete)?;
        map.serialize_entry("exports_incomplete_reasons", &record.exports_incomplete_reasons)?;
        map.serialize_entry("exports_maybe", &record.exports_maybe)?;
        map.serialize_entry("fan_in", &self.fan_in)?;
        map.serialize_entry("fan_out", &self.fan_out)?;
        map.serialize_entry("history", &Sorted(&joins.history))?;
        map.serialize_entry("import_count", &record.import_count)?;
        map.serialize_entry("imports", &record.imports)?;
        map.serialize_entry("is_package", &record.is_package)?;
        map.serialize_entry("lines", &record.lines)?;
        map.serialize_entry("module", &record.module)?;
        map.serialize_entry("overlay", self.overlay)?;
        map.serialize_entry("owners", &joins.owners)?;
        map.serialize_entry("parse_errors", &record.parse_errors)?;
        map.serialize_entry("path", &record.path)?;
        map.serialize_entry("pyrefly", &Sorted(&joins.pyrefly))?;
        map.serialize_entry("reexports", &reexports)?;
        map.serialize_entry("scip", &Sorted(&joins.scip))?;
        map.serialize_entry("star_imports", &record.star_imports)?;
        map.serialize_entry("stub_path", &record.stub_path)?;
        map.serialize_entry("symbol_count", &record.symbol_count)?;
        map.serialize_entry("tags", self.tags)?;
        map.end()
    }
}

/// A re-export as a module row holds it: [`crate::stages::exports::Reexport`]'s fields in
/// key order.
#[derive(Serialize)]
struct ReexportRow<'a> {
    from: &'a str,
    name: &'a str,
    origin: &'a str,
    origin_name: Option<&'a str>,
}

impl<'a> From<&'a crate::stages::exports::Reexport> for ReexportRow<'a> {
    fn from(reexport: &'a crate::stages::exports::Reexport) -> Self {
        ReexportRow { from: &reexport.from, name: &reexport.name, origin: &reexport.origin, origin_name: reexport.origin_name.as_deref() }
    }
}

/// An `imports.jsonl` row: the import and its resolution. Fields are declared in key order
/// (rows are serialized directly; the determinism test checks every line's key order).
#[derive(Serialize)]
struct ImportRow<'a> {
    asname: Option<&'a str>,
    col: u32,
    conditional: bool,
    external: Option<&'a str>,
    in_function: bool,
    in_try: bool,
    level: u32,
    line: u32,
    names: Vec<NameRow<'a>>,
    path: &'a str,
    resolved_path: Option<&'a str>,
    star: bool,
    target: &'a str,
    type_checking: bool,
    unresolved: bool,
}

#[derive(Serialize)]
struct NameRow<'a> {
    asname: Option<&'a str>,
    name: &'a str,
    /// The file of the submodule `target.name`, when the name is one.
    resolved_path: Option<&'a str>,
}

impl<'a> ImportRow<'a> {
    fn new(path: &'a str, import: &'a Import, resolution: &'a ImportResolution) -> Self {
        ImportRow {
            asname: import.asname.as_deref(),
            col: import.col,
            conditional: import.conditional,
            external: resolution.external.as_deref(),
            in_function: import.in_function,
            in_try: import.in_try,
            level: import.level,
            line: import.line,
            names: import
                .names
                .iter()
                .zip(&resolution.name_paths)
                .map(|(name, resolved)| NameRow {
                    asname: name.asname.as_deref(),
                    name: &name.name,
                    resolved_path: resolved.as_deref(),
                })
                .collect(),
            path,
            resolved_path: resolution.resolved_path.as_deref(),
            star: import.star,
            target: &import.target,
            type_checking: import.type_checking,
            unresolved: resolution.unresolved,
        }
    }
}

/// A `symbols.jsonl` row, fields in key order (see [`ImportRow`]).
#[derive(Serialize)]
struct SymbolRow<'a> {
    bases: &'a [String],
    col: u32,
    decorators: &'a [String],
    docstring: Option<&'a str>,
    end_col: u32,
    end_line: u32,
    is_async: bool,
    is_public: bool,
    kind: SymbolKind,
    line: u32,
    name: &'a str,
    params: Vec<ParamRow<'a>>,
    path: &'a str,
    qualname: &'a str,
    returns: Option<&'a str>,
}

#[derive(Serialize)]
struct ParamRow<'a> {
    annotation: Option<&'a str>,
    has_default: bool,
    kind: ParamKind,
    name: &'a str,
}

impl<'a> SymbolRow<'a> {
    fn new(path: &'a str, symbol: &'a Symbol) -> Self {
        SymbolRow {
            bases: &symbol.bases,
            col: symbol.col,
            decorators: &symbol.decorators,
            docstring: symbol.docstring.as_deref(),
            end_col: symbol.end_col,
            end_line: symbol.end_line,
            is_async: symbol.is_async,
            is_public: symbol.is_public,
            kind: symbol.kind,
            line: symbol.line,
            name: &symbol.name,
            params: symbol
                .params
                .iter()
                .map(|p| ParamRow { annotation: p.annotation.as_deref(), has_default: p.has_default, kind: p.kind, name: &p.name })
                .collect(),
            path,
            qualname: &symbol.qualname,
            returns: symbol.returns.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module row as the flattened derive rendered it: the record's, the row's and the joins'
    /// fields merged into one object, every object's keys sorted.
    fn module_row_through_value(row: &ModuleRow<'_>) -> Vec<u8> {
        let mut object = serde_json::Map::new();
        for part in [serde_json::to_value(row.record).unwrap(), serde_json::to_value(row.joins).unwrap()] {
            object.extend(part.as_object().unwrap().clone());
        }
        object.insert("fan_in".into(), row.fan_in.into());
        object.insert("fan_out".into(), row.fan_out.into());
        object.insert("tags".into(), serde_json::to_value(row.tags).unwrap());
        object.insert("overlay".into(), serde_json::to_value(row.overlay).unwrap());
        jsonl::render([serde_json::Value::Object(object)]).1
    }

    #[test]
    fn module_rows_match_their_sorted_value() {
        let full = ModuleRecord {
            path: "pkg/\"quoted\"/mod.py".into(),
            module: "pkg.mod".into(),
            is_package: false,
            content_hash: "ab12".into(),
            encoding: "utf-8".into(),
            lines: 12,
            parse_errors: 1,
            docstring: Some("Doc with \u{e9} and a \\ backslash.".into()),
            stub_path: Some("pkg/mod.pyi".into()),
            symbol_count: 3,
            import_count: 2,
            all: Some(vec!["b".into(), "a".into()]),
            all_complete: false,
            exports: vec!["a".into(), "b".into()],
            exports_maybe: vec!["c".into()],
            exports_complete: false,
            exports_incomplete_reasons: vec!["why".into()],
            star_imports: vec!["other".into()],
            reexports: vec![
                crate::stages::exports::Reexport { name: "a".into(), from: "x".into(), origin: "x.y".into(), origin_name: Some("z".into()) },
                crate::stages::exports::Reexport { name: "m".into(), from: "x".into(), origin: "x.m".into(), origin_name: None },
            ],
            imports: vec!["other".into(), "x".into()],
        };
        let joins = crate::inputs::joins::ModuleJoins {
            coverage: Some(crate::inputs::coverage::CoverageFile {
                line_rate: 0.75,
                branch_rate: Some(0.5),
                lines_valid: 4,
                lines_covered: 3,
                branches_valid: 2,
                branches_covered: 1,
            }),
            pyrefly: Some(crate::inputs::pyrefly::PyreflyFile { errors: 2, warnings: 1, by_kind: [("bad-return".to_string(), 2), ("a-kind".to_string(), 1)].into() }),
            scip: Some(crate::inputs::scip::ScipFileStats { symbols_defined: 1, definitions: 2, references: 3, references_to_other_files: 4, referencing_files: 5 }),
            owners: Some(vec!["@team".into()]),
            history: Some(crate::inputs::history::FileHistory { commits: 3, authors: 2, last_change: "2026-01-01T00:00:00+00:00".into(), last_commit: "abc".into() }),
        };
        let overlay = crate::stages::tags::OverlayDecision { needed: true, reasons: vec!["export-hub".into(), "star-import".into()] };
        let tags = vec!["package".to_string(), "public-api".to_string()];
        let bare = ModuleRecord { docstring: None, stub_path: None, all: None, reexports: Vec::new(), ..full.clone() };
        let no_joins = crate::inputs::joins::ModuleJoins::default();
        for (record, joins) in [(&full, &joins), (&bare, &no_joins), (&full, &no_joins)] {
            let row = ModuleRow { record, fan_in: 4, fan_out: 7, tags: &tags, overlay: &overlay, joins };
            let direct = jsonl::render_in_key_order([&row]).1;
            assert_eq!(String::from_utf8(direct).unwrap(), String::from_utf8(module_row_through_value(&row)).unwrap());
        }
    }

    fn entry(path: &str, key: u8) -> RowEntry {
        RowEntry {
            path: path.to_string(),
            key: [key; 32],
            source: [0; 32],
            graph: [0; 32],
            face: [0; 32],
            reads: Vec::new(),
            probes: Default::default(),
            closure: 0,
            fan: (0, 0, false),
            labels: Default::default(),
            lens: [1, 2, 3],
            symbols: 0,
            imports: 0,
            parse_errors: 0,
            syntax_first: None,
            unresolved: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A file's rows in the three artifacts.
    type Rows<'a> = (&'a str, [&'a str; 3]);

    /// The previous build's artifacts holding `files`' rows, in `dir`.
    fn previous(dir: &Path, files: &[Rows<'_>]) -> PreviousRows {
        let mut contents = [String::new(), String::new(), String::new()];
        let mut entries = Vec::new();
        for (path, rows) in files {
            let mut e = entry(path, 1);
            e.lens = rows.map(|r| r.len() as u64);
            entries.push(e);
            for (all, rows) in contents.iter_mut().zip(rows) {
                all.push_str(rows);
            }
        }
        let found = ROW_ARTIFACTS.map(|name| dir.join(name));
        let mut recorded = [(0, 0, [0; 32]); 3];
        for i in 0..3 {
            std::fs::write(&found[i], &contents[i]).unwrap();
            recorded[i] = (files.len(), contents[i].len(), *blake3::hash(contents[i].as_bytes()).as_bytes());
        }
        let index = RowIndex { layout: [0; 32], entries, load_cycles: Default::default() };
        PreviousRows::with_index(dir, found, recorded, index).expect("lengths add up")
    }

    /// This build's files: rendered (`Some`) or reused.
    fn outputs(files: &[(&str, Option<[&str; 3]>)]) -> Vec<FileOutput> {
        files
            .iter()
            .map(|(path, rows)| FileOutput {
                entry: std::sync::Arc::new(entry(path, 1)),
                rendered: rows.map(|rows| Rendered::new(rows.map(|r| r.as_bytes().to_vec()))),
            })
            .collect()
    }

    fn written(assembled: Assembled, previous: &PreviousRows, part: usize) -> String {
        let Assembled::Changed(pieces) = assembled else { panic!("part {part} is unchanged") };
        let mut bytes = Vec::new();
        write_pieces(pieces, Some(previous), part, &mut bytes).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// Reused files' rows are runs of the previous artifact, rendered rows equal to the
    /// previous ones count as reused, and an artifact whose runs make up the whole previous
    /// one is unchanged: a new file without imports leaves `imports.jsonl` as it was.
    #[test]
    fn artifacts_are_assembled_from_runs_of_the_previous_ones() {
        let dir = tempfile::tempdir().unwrap();
        let old = previous(dir.path(), &[("a.py", ["A\n", "a1\na2\n", "ia\n"]), ("b.py", ["B\n", "b1\n", ""]), ("c.py", ["C\n", "c1\n", "ic\n"])]);
        let new = outputs(&[
            ("a.py", None),
            // A new file between a and b, without imports.
            ("ab.py", Some(["AB\n", "ab1\n", ""])),
            // b rendered again, its symbols and imports as they were.
            ("b.py", Some(["B2\n", "b1\n", ""])),
            ("c.py", None),
        ]);
        let [modules, symbols, imports] = assemble(&new, Some(&old)).unwrap();
        assert!(matches!(imports, Assembled::Unchanged(3, 6, _)), "imports.jsonl keeps its bytes");
        let Assembled::Changed(pieces) = &symbols else { panic!("symbols.jsonl has a new file's rows") };
        assert_eq!(*pieces, [Piece::Previous(0..6), Piece::Rendered(b"ab1\n".to_vec()), Piece::Previous(6..12)], "b's equal rows join the run");
        assert_eq!(written(symbols, &old, 1), "a1\na2\nab1\nb1\nc1\n");
        assert_eq!(written(modules, &old, 0), "A\nAB\nB2\nC\n");

        // The same files again, found in the cache's copy: kept from there.
        let mut moved = previous(dir.path(), &[("a.py", ["A\n", "a1\n", ""])]);
        moved.out = dir.path().join("elsewhere");
        let [modules, ..] = assemble(&outputs(&[("a.py", None)]), Some(&moved)).unwrap();
        assert!(matches!(modules, Assembled::Kept(1, 2, _, ref from) if *from == dir.path().join("modules.jsonl")));

        // A deleted file and a changed one: a copy of what remains.
        let old = previous(dir.path(), &[("a.py", ["A\n", "a1\n", ""]), ("b.py", ["B\n", "b1\n", ""]), ("c.py", ["C\n", "c1\n", ""])]);
        let [modules, symbols, imports] = assemble(&outputs(&[("a.py", None), ("c.py", Some(["C\n", "c2\n", ""]))]), Some(&old)).unwrap();
        assert!(matches!(imports, Assembled::Unchanged(..)));
        assert_eq!(written(modules, &old, 0), "A\nC\n");
        assert_eq!(written(symbols, &old, 1), "a1\nc2\n");
    }

    /// Graph facts are recorded file by file: all of them, or the changed ones with the paths
    /// gone; read back with a head that counts a different number of files, they are no facts.
    #[test]
    fn graph_facts_are_written_file_by_file() {
        let fact = |path: &str, edge: &str| GraphFact {
            path: path.to_string(),
            module: path.trim_end_matches(".py").to_string(),
            package: false,
            edges: [(edge.to_string(), false)].into(),
            loads: Default::default(),
            registered: Default::default(),
        };
        let facts = GraphFacts { layout: [1; 32], base: [2; 32], files: vec![fact("a.py", "b"), fact("b.py", "c"), fact("c.py", "a")] };
        let all = facts.update(None, Vec::new());
        assert!(all.replace && all.remove.is_empty());
        let files: Vec<GraphFact> = all.put.iter().map(|(_, bytes)| rmp_serde::from_slice(bytes).unwrap()).collect();
        let head: GraphFactsHead = rmp_serde::from_slice(&all.head).unwrap();
        assert_eq!(GraphFacts::from_parts((head, files.clone())), Some(facts.clone()));
        let head: GraphFactsHead = rmp_serde::from_slice(&all.head).unwrap();
        assert_eq!(GraphFacts::from_parts((head, files[..2].to_vec())), None, "a fact is missing");

        let some = facts.update(Some(&[1]), vec!["gone.py".to_string()]);
        assert!(!some.replace);
        assert_eq!(some.put.iter().map(|(path, _)| path.as_str()).collect::<Vec<_>>(), ["b.py"]);
        assert_eq!(some.remove, ["gone.py"]);
        let written: GraphFact = rmp_serde::from_slice(&some.put[0].1).unwrap();
        assert_eq!(written, facts.files[1]);
    }

    /// An edit writes the entries that changed and removes the paths gone; without the stored
    /// entries, it writes all of them in place of the table; read back, the index is the same.
    #[test]
    fn the_row_index_is_written_entry_by_entry() {
        let stored = [entry("a.py", 1), entry("b.py", 1), entry("c.py", 1), entry("e.py", 1)].map(std::sync::Arc::new);
        let new = [entry("a.py", 1), entry("b.py", 2), entry("d.py", 1), entry("e.py", 1), entry("f.py", 1)];
        // `e.py` reused: the stored entry itself, as a build's outputs share it.
        let refs: Vec<&RowEntry> = new[..3].iter().chain([&*stored[3]]).chain(&new[4..]).collect();
        let update = RowIndex::update([9; 32], &Default::default(), &refs, Some(&stored));
        let put: Vec<&str> = update.put.iter().map(|(path, _)| path.as_str()).collect();
        assert!(!update.replace);
        assert_eq!(put, ["b.py", "d.py", "f.py"]);
        assert_eq!(update.remove, ["c.py"]);
        let decoded: RowEntry = rmp_serde::from_slice(&update.put[0].1).unwrap();
        assert_eq!(decoded, new[1]);

        let cycles: std::collections::BTreeMap<String, u32> = [("a".to_string(), 0), ("b".to_string(), 0), ("d".to_string(), 1)].into();
        let all = RowIndex::update([9; 32], &cycles, &refs, None);
        assert!(all.replace && all.remove.is_empty());
        let entries: Vec<RowEntry> = all.put.iter().map(|(_, bytes)| rmp_serde::from_slice(bytes).unwrap()).collect();
        let head: RowIndexHead = rmp_serde::from_slice(&all.head).unwrap();
        let index = RowIndex::from_parts((head, entries)).expect("head and entries agree");
        assert_eq!(index.entries, new);
        assert_eq!(index.layout, [9; 32]);
        assert_eq!(index.load_cycles, cycles);
        // A missing entry (the head counts five) is no index.
        let head: RowIndexHead = rmp_serde::from_slice(&all.head).unwrap();
        assert!(RowIndex::from_parts((head, new[..4].to_vec())).is_none());
    }
}
