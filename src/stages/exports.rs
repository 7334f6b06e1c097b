//! Exports: exactly the names `from module import *` binds at run time, the resolved
//! `__all__`, and re-exports traced to the module that defines each name.
//!
//! With `__all__`, the exports are its names. Without, they are the module's public bindings
//! (no leading `_`), plus the names its star imports bring in (expanded transitively), plus
//! the submodules a package's `__init__` imports (CPython sets them as attributes of the
//! package), minus `del`. Star-import cycles are solved by salsa's fixpoint iteration: every
//! module in a cycle starts from the empty set and re-runs until the sets stop growing, which
//! gives the union CPython reaches when the cycle's modules finish initializing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::PythonTarget;
use crate::db::{Db, Project, SourceFile, Target};
use crate::stages::flow::{self, AllState, OtherAll, Resolver, StarNames};
use crate::stages::resolve::{ModuleIndex, Resolved, module_index};
use crate::stages::scope::{Binding, DecoratorRef, GetattrShim, ModuleAllRef, REGISTRAR_NAMES, module_scope};

/// Bump when export computation changes.
pub const EXPORTS_VERSION: u32 = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Exports {
    /// Sorted names `from module import *` binds on every path through the module.
    pub names: Vec<String>,
    /// Sorted names it binds on some paths only (an undecided branch, a `try` body, a loop,
    /// a submodule attribute that depends on what else was imported).
    pub maybe: Vec<String>,
    /// The promise: the names bound at run time include `names` and are within `names` ∪
    /// `maybe`. False when the tool cannot know (see the README).
    pub complete: bool,
    /// Why the tool cannot know (sorted; empty when `complete`).
    pub incomplete_reasons: Vec<String>,
    /// The declared `__all__`, in order, or `None` when the module has none.
    pub all: Option<Vec<String>>,
    pub all_complete: bool,
    /// Every name bound at module level at the end (on some path), with its binding: what
    /// re-export tracing follows.
    pub bound: BTreeMap<String, Binding>,
    /// The modules whose exports (or registration decorators) this value was computed from:
    /// everything it read of other modules besides the layout and their loads. Not part of
    /// what the module exports (skipped when serialized); the build keeps it to know whose
    /// exports to recompute when another module's change (see `build::evaluate`).
    #[serde(skip)]
    pub reads: BTreeSet<String>,
    /// The module names this value asked the module index about (star-import targets,
    /// `__getattr__` delegates, registration-decorator chains, `__all__` names that may be
    /// submodules): with `reads`, all it depends on of the layout besides a package's
    /// submodules. Skipped when serialized, like `reads`.
    #[serde(skip)]
    pub probes: BTreeSet<String>,
    /// Digest of the package's submodule attributes when they were computed from the import
    /// closure (the only part of the value that reads other modules' loads). Skipped when
    /// serialized, like `reads`.
    #[serde(skip)]
    pub submodules: Option<[u8; 32]>,
    /// How many modules the import closure those were read from holds (0 without one): at
    /// [`CLOSURE_LIMIT`] the walk stopped, and which modules it holds depends on its order.
    /// Skipped when serialized.
    #[serde(skip)]
    pub closure_size: u32,
}

fn exports_initial(_db: &dyn Db, _id: salsa::Id, _file: SourceFile) -> Exports {
    Exports { complete: true, all_complete: true, ..Exports::default() }
}

/// The target's version (the default when none was set). Each field is read on its own, so
/// a query depends only on the part of the target its conditions test.
fn target_version(db: &dyn Db) -> (u32, u32) {
    Target::try_get(db).map_or(PythonTarget::default().version, |t| t.python_version(db))
}

/// The target's `sys.platform` (the default when none was set).
fn target_platform(db: &dyn Db) -> String {
    Target::try_get(db).map_or(PythonTarget::default().platform, |t| t.platform(db).clone())
}

/// The modules `file`'s module-level code imports when it runs (candidates as written, with
/// whether on every path). Per file; the target is read only when a condition needs it.
#[salsa::tracked(returns(ref))]
pub fn module_loads(db: &dyn Db, file: SourceFile) -> BTreeMap<String, bool> {
    struct Loads<'db> {
        db: &'db dyn Db,
    }
    impl Resolver for Loads<'_> {
        fn python_version(&mut self) -> (u32, u32) {
            target_version(self.db)
        }
        fn platform(&mut self) -> String {
            target_platform(self.db)
        }
        fn star(&mut self, _module: &str) -> StarNames {
            StarNames::default()
        }
        fn module_all(&mut self, _reference: &ModuleAllRef) -> OtherAll {
            OtherAll::Unknown
        }
        fn is_registrar(&mut self, _decorator: &DecoratorRef, _local: &BTreeSet<String>) -> Option<bool> {
            Some(false)
        }
    }
    flow::evaluate(module_scope(db, file), &mut Loads { db }).state.loads
}

struct ExportsResolver<'db> {
    db: &'db dyn Db,
    index: &'db ModuleIndex,
    me: String,
    /// The modules whose exports or scope were read (see [`Exports::reads`]).
    reads: BTreeSet<String>,
    /// The names asked of the index (see [`Exports::probes`]).
    probes: BTreeSet<String>,
}

impl Resolver for ExportsResolver<'_> {
    fn python_version(&mut self) -> (u32, u32) {
        target_version(self.db)
    }

    fn platform(&mut self) -> String {
        target_platform(self.db)
    }

    fn star(&mut self, target: &str) -> StarNames {
        probe_resolved(&mut self.probes, target);
        match self.index.resolve(target) {
            Resolved::File(source) => {
                self.reads.insert(source.module(self.db).clone());
                let star = exports(self.db, source);
                let mut names = StarNames {
                    definite: star.names.clone(),
                    maybe: star.maybe.clone(),
                    unknown: (!star.complete).then(|| format!("star import of {target}, whose exports are not known")),
                };
                // An import cycle: when importing `target` imports this module, this module may
                // run while `target` is still initializing, and see only part of its names.
                if in_load_cycle(self.db, &self.me, source.module(self.db)) {
                    names.maybe.append(&mut names.definite);
                }
                // Importing this module first loaded its ancestors completely: a star import from
                // a grandparent or above also sees the child on the path here (`from ctypes
                // import *` in `ctypes.test.x` binds `test`; the direct parent does not have this
                // module yet, it is still loading).
                if star.all.is_none()
                    && let Some(rest) = self.me.strip_prefix(target).and_then(|r| r.strip_prefix('.'))
                    && let Some((child, _)) = rest.split_once('.')
                {
                    names.definite.push(child.to_string());
                    names.maybe.retain(|m| m != child);
                }
                names
            }
            Resolved::Namespace => StarNames::default(),
            Resolved::Missing => StarNames { unknown: Some(format!("star import of {target}, which is not in the repository")), ..StarNames::default() },
            Resolved::External => StarNames { unknown: Some(format!("star import of {target}, outside the repository")), ..StarNames::default() },
        }
    }

    fn module_all(&mut self, reference: &ModuleAllRef) -> OtherAll {
        let module = match &reference.attr {
            Some(attr) => format!("{}.{attr}", reference.module),
            None => reference.module.clone(),
        };
        self.probes.insert(module.clone());
        let Some(file) = self.index.file(&module) else { return OtherAll::Unknown };
        self.reads.insert(file.module(self.db).clone());
        let exports = exports(self.db, file);
        match (&exports.all, exports.all_complete) {
            (Some(all), true) => OtherAll::Known(all.clone()),
            (None, true) => OtherAll::Absent,
            // Varying across paths (but every path known): the exports are its bounds.
            (Some(all), false) if exports.complete => OtherAll::Varies {
                guess: all.clone(),
                must: exports.names.iter().cloned().collect(),
                may: exports.names.iter().chain(&exports.maybe).cloned().collect(),
            },
            _ => OtherAll::Unknown,
        }
    }

    fn is_registrar(&mut self, decorator: &DecoratorRef, local: &BTreeSet<String>) -> Option<bool> {
        match decorator {
            DecoratorRef::Local(name) => Some(local.contains(name)),
            DecoratorRef::Imported { module, name } => {
                registrar_in(self.db, self.index, module, name, &mut self.reads, &mut self.probes)
            }
            DecoratorRef::Other(_) => Some(false),
        }
    }
}

/// Note that `module` was resolved: what it resolves to depends on it and, between missing and
/// external, on its top-level name.
fn probe_resolved(probes: &mut BTreeSet<String>, module: &str) {
    probes.insert(module.to_string());
    if let Some((top, _)) = module.split_once('.') {
        probes.insert(top.to_string());
    }
}

/// Whether `module.name` is a registration decorator, following re-exports (each module
/// visited is added to `reads`, each module name resolved to `probes`).
fn registrar_in(
    db: &dyn Db,
    index: &ModuleIndex,
    module: &str,
    name: &str,
    reads: &mut BTreeSet<String>,
    probes: &mut BTreeSet<String>,
) -> Option<bool> {
    let (mut module, mut name) = (module.to_string(), name.to_string());
    for _ in 0..16 {
        probe_resolved(probes, &module);
        match index.resolve(&module) {
            Resolved::File(file) => {
                reads.insert(file.module(db).clone());
                if module_scope(db, file).registrars.contains(&name) {
                    return Some(true);
                }
                match exports(db, file).bound.get(&name).and_then(|b| b.origin.clone()) {
                    Some(origin) if origin.name.is_some() => {
                        module = origin.module;
                        name = origin.name.unwrap();
                    }
                    _ => return Some(false),
                }
            }
            Resolved::Missing | Resolved::External => return (!REGISTRAR_NAMES.contains(&name.as_str())).then_some(false),
            Resolved::Namespace => return Some(false),
        }
    }
    Some(false)
}

/// An `__all__` a module has (or its `__getattr__` answers): its value for the record, the
/// names on every path, those on some paths only, and whether it is fully known.
type Declared = (Vec<String>, BTreeSet<String>, BTreeSet<String>, bool);

/// The exports of `file`.
#[salsa::tracked(returns(ref), cycle_initial = exports_initial)]
pub fn exports(db: &dyn Db, file: SourceFile) -> Exports {
    let index = module_index(db, Project::get(db));
    let scope = module_scope(db, file);
    let mut resolver = ExportsResolver { db, index, me: file.module(db).clone(), reads: BTreeSet::new(), probes: BTreeSet::new() };
    let outcome = flow::evaluate(scope, &mut resolver);
    let state = outcome.state;
    let bound: BTreeMap<String, Binding> = state.names.iter().map(|(n, (b, _))| (n.clone(), b.clone())).collect();
    // Star imports whose names are unknown may bind anything `__all__` lists.
    let outcome_unknown_empty = outcome.unknown.is_empty();
    let mut reasons = outcome.unknown;
    if let Some(compiled) = file.compiled(db) {
        reasons.insert(format!("CPython imports the compiled module beside it ({compiled}), not this source"));
    }
    if let Some(reason) = &scope.all_dynamic {
        reasons.insert(reason.clone());
    }
    let declared: Option<Declared> = match &state.all {
        AllState::Known(list) => Some((list.clone(), list.iter().cloned().collect(), BTreeSet::new(), true)),
        AllState::Varies { guess, must, may } => {
            Some((guess.clone(), must.clone(), may.difference(must).cloned().collect(), false))
        }
        AllState::Unknown { guess, reason } => {
            reasons.insert(reason.clone());
            Some((guess.clone(), guess.iter().cloned().collect(), BTreeSet::new(), false))
        }
        // Without `__all__`, `from m import *` asks a PEP 562 `__getattr__` for it.
        AllState::Absent => match (state.names.get("__getattr__"), &scope.getattr) {
            (None, _) | (Some(_), Some(GetattrShim::NoAll)) => None,
            (Some(_), Some(GetattrShim::Delegate(reference))) => match resolver.module_all(reference) {
                OtherAll::Known(list) => Some((list.clone(), list.into_iter().collect(), BTreeSet::new(), true)),
                OtherAll::Varies { guess, must, may } => {
                    Some((guess, must.clone(), may.difference(&must).cloned().collect(), false))
                }
                OtherAll::Absent => None,
                OtherAll::Unknown => {
                    reasons.insert(format!("__getattr__ delegates to {}, whose __all__ is not known", reference.module));
                    None
                }
            },
            (Some(_), _) => {
                reasons.insert("a module __getattr__ may answer __all__".to_string());
                None
            }
        },
    };
    let mut submodules = None;
    let mut closure_size = 0;
    let (all, all_complete, names, maybe) = match declared {
        Some((all, names, maybe, known)) => {
            // A name of `__all__` the module never binds makes `from m import *` raise
            // AttributeError (unless something the tool cannot see binds it): no promise.
            let module = file.module(db);
            // Names a guarded `__getattr__` answers are provided; with dynamic globals an unbound
            // name may well be written at run time.
            let probes = &mut resolver.probes;
            let unbound: Vec<&String> = names
                .iter()
                .chain(&maybe)
                .filter(|n| {
                    !(bound.contains_key(*n)
                        || scope.getattr_answers.contains(*n)
                        || file.is_package(db) && {
                            let submodule = format!("{module}.{n}");
                            let exists = index.exists(&submodule);
                            probes.insert(submodule);
                            exists
                        })
                })
                .filter(|_| scope.dynamic_globals.is_none() && outcome_unknown_empty)
                .collect();
            if let Some(first) = unbound.first() {
                let more = if unbound.len() > 1 { format!(" (and {} more)", unbound.len() - 1) } else { String::new() };
                reasons.insert(format!("__all__ names {first:?}{more}, which the module never binds statically"));
            }
            (Some(all), known && scope.all_dynamic.is_none(), names, maybe)
        }
        None => {
            if let Some(reason) = &scope.dynamic_globals {
                reasons.insert(reason.clone());
            }
            let mut names = BTreeSet::new();
            let mut maybe = BTreeSet::new();
            for (name, (_, definite)) in &state.names {
                if is_public_name_for_star(name) {
                    if *definite { names.insert(name.clone()) } else { maybe.insert(name.clone()) };
                }
            }
            if file.is_package(db) {
                let (loaded, maybe_loaded, size) = package_children(db, index, file.module(db));
                closure_size = size;
                submodules = Some(*blake3::hash(&rmp_serde::to_vec(&(&loaded, &maybe_loaded)).expect("sets serialize")).as_bytes());
                names.extend(loaded);
                maybe.extend(maybe_loaded);
            }
            names.retain(|n| is_public_name_for_star(n));
            maybe.retain(|n| is_public_name_for_star(n) && !names.contains(n));
            (None, scope.all_dynamic.is_none() && !reasons.iter().any(|r| r.contains("__getattr__")), names, maybe)
        }
    };
    Exports {
        names: names.into_iter().collect(),
        maybe: maybe.into_iter().collect(),
        complete: reasons.is_empty(),
        incomplete_reasons: reasons.into_iter().collect(),
        all,
        all_complete,
        bound,
        reads: resolver.reads,
        probes: resolver.probes,
        submodules,
        closure_size,
    }
}

/// Digest of what other modules' exports and re-exports read of `file`: its exports (with
/// every binding) and its registration decorators — the output of the `exports(path)` node,
/// and what the build compares to know whose exports to recompute after an edit.
#[salsa::tracked(returns(copy))]
pub fn exports_face(db: &dyn Db, file: SourceFile) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&rmp_serde::to_vec(exports(db, file)).expect("stage outputs serialize"));
    hasher.update(&rmp_serde::to_vec(&module_scope(db, file).registrars).expect("stage outputs serialize"));
    *hasher.finalize().as_bytes()
}

/// `from m import *` without `__all__` skips every name starting with an underscore.
fn is_public_name_for_star(name: &str) -> bool {
    !name.starts_with('_')
}

/// The import cycles of module-level loads (on any path; importing a module loads its
/// ancestors first): each module of a cycle with the number of its strongly connected
/// component. One project-wide pass (Tarjan), linear in the loads.
/// Shared (`Arc`): the build hands the same map to the closure walks, the cycle companions
/// and the row index it records (100k-module tree: 101k names a copy).
#[salsa::tracked(returns(ref))]
pub fn load_cycles(db: &dyn Db, project: Project) -> std::sync::Arc<BTreeMap<String, u32>> {
    if let Some(known) = crate::db::KnownLoadCycles::try_get(db).and_then(|k| k.cycles(db).clone()) {
        return known;
    }
    let index = module_index(db, project);
    std::sync::Arc::new(load_cycles_of(index, |file| module_loads(db, file)))
}

/// [`load_cycles`] given each module's loads (`loads`, asked for the file of each module of
/// `index`): the build computes them from recorded loads when only some files' loads changed.
/// Over index ids, which follow name order: the components and their numbers are those of a
/// walk over names.
pub fn load_cycles_of<'a>(index: &ModuleIndex, loads: impl Fn(SourceFile) -> &'a BTreeMap<String, bool>) -> BTreeMap<String, u32> {
    load_cycles_over(index, |file, add| {
        for target in loads(file).keys() {
            index.prefix_ids(target, &mut *add);
        }
    })
}

/// [`load_cycles_of`] given, for the file of each module, the index ids of its loads'
/// existing prefixes (`load_ids` calls `add` with each): the edges path resolves every
/// file's loads once for both the load cycles and [`modules_reaching`].
pub fn load_cycles_over(index: &ModuleIndex, load_ids: impl Fn(SourceFile, &mut dyn FnMut(u32))) -> BTreeMap<String, u32> {
    // Nodes: the modules (not namespace packages), in name order.
    let modules: Vec<u32> = (0..index.names.len() as u32).filter(|&id| index.names[id as usize].1.is_some()).collect();
    let mut node_of: Vec<usize> = vec![usize::MAX; index.names.len()];
    for (node, &id) in modules.iter().enumerate() {
        node_of[id as usize] = node;
    }
    let successors: Vec<Vec<usize>> = modules
        .iter()
        .map(|&id| {
            let (module, file) = &index.names[id as usize];
            let mut targets: Vec<usize> = Vec::new();
            let mut add = |t: u32| {
                if t != id && node_of[t as usize] != usize::MAX {
                    targets.push(node_of[t as usize]);
                }
            };
            // Importing a module loads its ancestors first.
            index.prefix_ids(module, &mut add);
            load_ids(file.expect("a module has a file"), &mut add);
            targets.sort_unstable();
            targets.dedup();
            targets
        })
        .collect();
    let mut out = BTreeMap::new();
    for (number, component) in crate::stages::graph::components_of(&successors).into_iter().enumerate() {
        for node in component {
            out.insert(index.names[modules[node] as usize].0.clone(), number as u32);
        }
    }
    out
}

/// Whether importing `target` may run `importer` while `target` is still initializing: both
/// are in one load cycle.
fn in_load_cycle(db: &dyn Db, importer: &str, target: &str) -> bool {
    let cycles = load_cycles(db, Project::get(db));
    matches!((cycles.get(importer), cycles.get(target)), (Some(a), Some(b)) if a == b)
}

/// At most this many modules are visited to find a package's submodule attributes; past it,
/// the submodules not yet found count as maybe (sound, less exact) — closures of huge
/// packages would otherwise make every package cost the whole repository.
pub const CLOSURE_LIMIT: usize = 4096;

/// `a`, `a.b`, `a.b.c` for `a.b.c`.
pub fn with_ancestors(module: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut acc = String::new();
    for part in module.split('.') {
        if !acc.is_empty() {
            acc.push('.');
        }
        acc.push_str(part);
        out.push(acc.clone());
    }
    out
}

/// The modules from which a walk like [`closure`]'s (each module's loads, each load with its
/// existing ancestors) reaches one of `targets` (the targets included): a package's
/// submodule attributes can change with the loads of `targets` only if one of its ancestors or
/// itself is among them. Over index ids: `loads` gives each loading module's id with the ids
/// of its loads' existing prefixes (see [`ModuleIndex::prefix_ids`]); it may list a module more
/// than once (old and new loads): every edge counts.
pub fn modules_reaching<'a>(
    index: &ModuleIndex,
    loads: impl IntoIterator<Item = (u32, &'a [u32])>,
    targets: &BTreeSet<String>,
) -> std::collections::HashSet<String> {
    let mut reverse: Vec<Vec<u32>> = vec![Vec::new(); index.names.len()];
    for (from, loaded) in loads {
        for &target in loaded {
            reverse[target as usize].push(from);
        }
    }
    let mut seen = vec![false; index.names.len()];
    let mut queue: Vec<u32> = targets.iter().filter_map(|t| index.id(t)).collect();
    for &id in &queue {
        seen[id as usize] = true;
    }
    while let Some(id) = queue.pop() {
        for &from in &reverse[id as usize] {
            if !std::mem::replace(&mut seen[from as usize], true) {
                queue.push(from);
            }
        }
    }
    let mut out: std::collections::HashSet<String> = targets.iter().cloned().collect();
    out.extend(seen.iter().enumerate().filter(|(_, s)| **s).map(|(id, _)| index.names[id].0.clone()));
    out
}

/// The modules a walk like [`closure`]'s reaches from `starts` (with every load, each with
/// its existing ancestors), given each module's loads.
pub fn modules_reached(index: &ModuleIndex, starts: Vec<String>, loads: impl Fn(&str) -> Vec<String>) -> std::collections::HashSet<String> {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut queue: Vec<String> = Vec::new();
    let add = |target: &str, seen: &mut std::collections::HashSet<String>, queue: &mut Vec<String>| {
        for prefix in with_ancestors(target.strip_suffix(".__init__").unwrap_or(target)) {
            if index.exists(&prefix) && seen.insert(prefix.clone()) {
                queue.push(prefix);
            }
        }
    };
    for start in &starts {
        add(start, &mut seen, &mut queue);
    }
    while let Some(module) = queue.pop() {
        for target in loads(&module) {
            add(&target, &mut seen, &mut queue);
        }
    }
    seen
}

/// The submodules of `package` that are attributes of it after `import package` (CPython
/// binds each loaded submodule as an attribute of its parent): those loaded on every path of
/// the import closure of the package (its ancestors' and its own module-level imports,
/// transitively, in any module of the repository), and — maybe — those loaded on some paths,
/// and every other submodule, which another import in the process may have loaded.
fn package_children(db: &dyn Db, index: &ModuleIndex, package: &str) -> (BTreeSet<String>, BTreeSet<String>, u32) {
    let prefix = format!("{package}.");
    let definite = closure(db, index, &with_ancestors(package), true);
    let child = |module: &str| module.strip_prefix(&prefix).map(|rest| rest.split('.').next().unwrap_or(rest).to_string());
    let loaded: BTreeSet<String> = definite.iter().filter_map(|&id| child(&index.names[id as usize].0)).collect();
    // Every other submodule may be an attribute (loaded on some path, or by another import).
    let mut maybe: BTreeSet<String> = BTreeSet::new();
    for module in index.modules.range(prefix.clone()..).map(|(m, _)| m).take_while(|m| m.starts_with(&prefix)) {
        maybe.extend(child(module));
    }
    for module in index.namespace_packages.range(prefix.clone()..).take_while(|m| m.starts_with(&prefix)) {
        maybe.extend(child(module));
    }
    maybe.retain(|m| !loaded.contains(m));
    (loaded, maybe, definite.len() as u32)
}

/// What a closure walk follows from `file`: the index ids of its loads' existing prefixes
/// (`a`, `a.b` for `a.b`), load by load in order, each with whether the load runs on every
/// path. Per file, so the walks of many packages through one module share it; the loads are
/// the ones the build recorded when it has them ([`crate::db::KnownLoads`]), else evaluated.
#[salsa::tracked(returns(ref))]
pub fn load_steps(db: &dyn Db, file: SourceFile) -> Vec<(u32, bool)> {
    let index = module_index(db, Project::get(db));
    let read;
    let loads = match crate::db::KnownLoads::try_get(db).and_then(|k| k.loads(db).as_deref()) {
        Some(crate::db::RecordedLoads::All(all)) => all.get(file.path(db).as_str()),
        Some(crate::db::RecordedLoads::Read(load)) => {
            read = load(file.path(db));
            read.as_ref()
        }
        None => None,
    };
    let loads = loads.unwrap_or_else(|| module_loads(db, file));
    let mut steps = Vec::new();
    for (target, definite) in loads {
        index.prefix_ids(target, |id| steps.push((id, *definite)));
    }
    steps
}

/// The repository modules (index ids) loaded by importing `starts` (and, with
/// `definite_only`, only through imports that run on every path), at most [`CLOSURE_LIMIT`] of
/// them. Importing a module loads its ancestors first.
fn closure(db: &dyn Db, index: &ModuleIndex, starts: &[String], definite_only: bool) -> Vec<u32> {
    let mut seen = vec![false; index.names.len()];
    let mut order: Vec<u32> = Vec::new();
    let mut queue: Vec<u32> = Vec::new();
    let mark = |id: u32, seen: &mut Vec<bool>, order: &mut Vec<u32>, queue: &mut Vec<u32>| {
        if !std::mem::replace(&mut seen[id as usize], true) {
            order.push(id);
            queue.push(id);
        }
    };
    for start in starts {
        index.prefix_ids(start, |id| mark(id, &mut seen, &mut order, &mut queue));
    }
    while let Some(id) = queue.pop() {
        if order.len() >= CLOSURE_LIMIT {
            break;
        }
        let Some(file) = index.names[id as usize].1 else { continue };
        for &(target, definite) in load_steps(db, file) {
            if definite || !definite_only {
                mark(target, &mut seen, &mut order, &mut queue);
            }
        }
    }
    order
}

/// A name a module exports that it got from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Reexport {
    pub name: String,
    /// The module it was imported from.
    pub from: String,
    /// The module that defines it (after following import chains and star imports).
    pub origin: String,
    /// Its name there; null when the name is a module itself.
    pub origin_name: Option<String>,
}

/// The re-exports of a module and the modules whose exports tracing them read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracedReexports {
    /// Sorted by name.
    pub list: Vec<Reexport>,
    /// The modules whose exports were read to trace them (see [`Exports::reads`]).
    pub reads: BTreeSet<String>,
    /// The names asked of the module index to trace them (see [`Exports::probes`]).
    pub probes: BTreeSet<String>,
}

/// The re-exports of `file`, sorted by name: exported names (on every or some paths) bound by
/// an import or a star import.
pub fn reexports(db: &dyn Db, file: SourceFile) -> &Vec<Reexport> {
    &traced_reexports(db, file).list
}

/// [`reexports`], with what tracing them read.
#[salsa::tracked(returns(ref))]
pub fn traced_reexports(db: &dyn Db, file: SourceFile) -> TracedReexports {
    let index = module_index(db, Project::get(db));
    let exports = exports(db, file);
    let mut names: Vec<&String> = exports.names.iter().chain(&exports.maybe).collect();
    names.sort();
    let mut out = TracedReexports::default();
    for name in names {
        let Some(origin) = exports.bound.get(name).and_then(|b| b.origin.as_ref()) else { continue };
        let (origin_module, origin_name) = trace_origin(db, index, origin.module.clone(), origin.name.clone(), &mut out.reads, &mut out.probes);
        out.list.push(Reexport { name: name.clone(), from: origin.module.clone(), origin: origin_module, origin_name });
    }
    out
}

/// Follow `from module import name` through import chains and star imports to the module that
/// defines the name (each module whose exports are read is added to `reads`). Stops at the
/// repository's edge and after 64 steps (import loops).
fn trace_origin(
    db: &dyn Db,
    index: &ModuleIndex,
    mut module: String,
    mut name: Option<String>,
    reads: &mut BTreeSet<String>,
    probes: &mut BTreeSet<String>,
) -> (String, Option<String>) {
    let mut seen = BTreeSet::new();
    while let Some(current) = name.clone() {
        // `from pkg import name` targets the submodule `pkg.name` when it exists.
        let submodule = format!("{module}.{current}");
        let exists = index.exists(&submodule);
        probes.insert(submodule.clone());
        if exists {
            return (submodule, None);
        }
        probes.insert(module.clone());
        let Some(file) = index.file(&module) else {
            break;
        };
        if !seen.insert((module.clone(), current.clone())) || seen.len() > 64 {
            break;
        }
        reads.insert(file.module(db).clone());
        match exports(db, file).bound.get(&current).and_then(|b| b.origin.clone()) {
            Some(origin) => {
                module = origin.module;
                name = origin.name;
            }
            None => break,
        }
    }
    (module, name)
}
