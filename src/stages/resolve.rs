//! Import resolution against the repository: the module index, each import row's resolved
//! file or external package, and the positionless import edges of a module.
//!
//! `from pkg import name` targets the submodule `pkg.name` when it exists (a file or a
//! namespace package), else `pkg`. A target whose top-level package is not in the repository
//! is external. A relative import that climbs above the top-level package is unresolved.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::db::{Db, Project, SourceFile};
use crate::stages::imports::imports;
use crate::stages::scope::module_scope;

/// Bump when resolution changes.
pub const RESOLVE_VERSION: u32 = 2;

/// The file of the plain module that registers `module` in `sys.modules` under that literal
/// name (`os` does `sys.modules["os.path"] = path`): `import os.path` then works although no
/// file `os/path.py` exists. Only asked for targets that are otherwise missing.
fn registering_module(db: &dyn Db, index: &ModuleIndex, module: &str) -> Option<SourceFile> {
    let (parent, _) = module.rsplit_once('.')?;
    let file = index.file(parent)?;
    module_scope(db, file).registered_modules.contains(module).then_some(file)
}

/// Every module of the repository by dotted name, and the namespace packages (directories
/// without `__init__.py` that contain modules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleIndex {
    pub modules: BTreeMap<String, SourceFile>,
    pub namespace_packages: BTreeSet<String>,
    /// Top-level names of every module and namespace package.
    pub top_level: BTreeSet<String>,
    /// Every module and namespace package by name, with its id (its rank in name order):
    /// `exists`, `resolve` and `file` are asked millions of times (hashed with Fx: module
    /// names are short keys, and SipHash was most of a lookup), and the import-closure walks of
    /// a large tree run over ids.
    pub ids: rustc_hash::FxHashMap<String, u32>,
    /// Each id's name and file (none for a namespace package).
    pub names: Vec<(String, Option<SourceFile>)>,
    /// Each id's parent: the id of its longest proper prefix, or [`NO_PARENT`] for a top-level
    /// name. Every proper prefix of a name is in the index (a package or a namespace package),
    /// so an existing name's prefixes are its chain of parents.
    pub parents: Vec<u32>,
}

/// The parent of a top-level name in [`ModuleIndex::parents`].
pub const NO_PARENT: u32 = u32::MAX;

/// What a dotted module name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    File(SourceFile),
    Namespace,
    /// Its top-level package is in the repository but the module is not.
    Missing,
    External,
}

/// `pkg.__init__` names the file of `pkg` (importing it loads `pkg/__init__.py` again).
pub(crate) fn strip_init(module: &str) -> &str {
    module.strip_suffix(".__init__").unwrap_or(module)
}

impl ModuleIndex {
    pub fn resolve(&self, module: &str) -> Resolved {
        let module = strip_init(module);
        if let Some(&id) = self.ids.get(module) {
            match self.names[id as usize].1 {
                Some(file) => Resolved::File(file),
                None => Resolved::Namespace,
            }
        } else if module.starts_with('.') || self.top_level.contains(module.split('.').next().unwrap_or(module)) {
            Resolved::Missing
        } else {
            Resolved::External
        }
    }

    /// Whether `module` is a module or namespace package of the repository.
    pub fn exists(&self, module: &str) -> bool {
        self.ids.contains_key(strip_init(module))
    }

    /// The id of a module or namespace package (see [`ModuleIndex::ids`]).
    pub fn id(&self, module: &str) -> Option<u32> {
        self.ids.get(strip_init(module)).copied()
    }

    /// The ids of `module`'s existing prefixes (`a`, `a.b`, `a.b.c`), in that order: the
    /// longest found (the whole name when it exists: one lookup where hashing every prefix took
    /// three on the 100k-module tree's load cycles), then its chain of parents.
    pub fn prefix_ids(&self, module: &str, mut each: impl FnMut(u32)) {
        let module = strip_init(module);
        let Some(mut id) = self.longest_prefix(module) else { return };
        let mut chain = [0u32; 32];
        let mut depth = 0;
        while id != NO_PARENT && depth < chain.len() {
            chain[depth] = id;
            depth += 1;
            id = self.parents[id as usize];
        }
        if id == NO_PARENT {
            chain[..depth].iter().rev().for_each(|&id| each(id));
        } else {
            self.prefix_ids_by_name(module, each);
        }
    }

    /// [`ModuleIndex::prefix_ids`] of each of `loads`, in order, in one vector.
    pub fn load_ids<'a>(&self, loads: impl IntoIterator<Item = &'a String>) -> Vec<u32> {
        let mut ids = Vec::new();
        for load in loads {
            self.prefix_ids(load, |id| ids.push(id));
        }
        ids
    }

    /// Take `names` (sorted) as the ids' names, and index them by name and parent.
    fn set_names(&mut self, names: Vec<(String, Option<SourceFile>)>) {
        self.ids = rustc_hash::FxHashMap::with_capacity_and_hasher(names.len(), Default::default());
        self.ids.extend(names.iter().enumerate().map(|(id, (name, _))| (name.clone(), id as u32)));
        self.parents = names
            .iter()
            .map(|(name, _)| name.rsplit_once('.').and_then(|(above, _)| self.longest_prefix(above)).unwrap_or(NO_PARENT))
            .collect();
        self.names = names;
    }

    /// The id of the longest prefix of `module` in the index (`module` itself included).
    fn longest_prefix(&self, module: &str) -> Option<u32> {
        let mut end = module.len();
        loop {
            if let Some(&id) = self.ids.get(&module[..end]) {
                return Some(id);
            }
            end = module[..end].rfind('.')?;
        }
    }

    /// [`ModuleIndex::prefix_ids`] one lookup per prefix (names deeper than its chain).
    fn prefix_ids_by_name(&self, module: &str, mut each: impl FnMut(u32)) {
        let mut end = 0;
        loop {
            let next = module[end..].find('.').map(|i| end + i);
            if let Some(&id) = self.ids.get(&module[..next.unwrap_or(module.len())]) {
                each(id);
            }
            match next {
                Some(i) => end = i + 1,
                None => break,
            }
        }
    }

    pub fn file(&self, module: &str) -> Option<SourceFile> {
        self.id(module).and_then(|id| self.names[id as usize].1)
    }
}

/// The module index of the project. When two files claim one module name (`a.py` beside
/// `a/__init__.py`), the package wins, as in CPython.
#[salsa::tracked(returns(ref))]
pub fn module_index(db: &dyn Db, project: Project) -> ModuleIndex {
    let mut index = ModuleIndex::default();
    for &file in project.files(db).iter() {
        let module = file.module(db);
        if module.is_empty() {
            continue;
        }
        match index.modules.get(module) {
            Some(existing) if existing.is_package(db) => {}
            _ => {
                index.modules.insert(module.clone(), file);
            }
        }
        // Each proper prefix is a package or a namespace package; most were seen already (a
        // name is allocated only when new: on the 100k-module tree this loop cloned ~300k).
        for (at, _) in module.match_indices('.') {
            if !index.namespace_packages.contains(&module[..at]) {
                index.namespace_packages.insert(module[..at].to_string());
            }
        }
        let top = module.split('.').next().unwrap_or(module);
        if !index.top_level.contains(top) {
            index.top_level.insert(top.to_string());
        }
    }
    let modules = &index.modules;
    index.namespace_packages.retain(|p| !modules.contains_key(p));
    let mut names: Vec<(String, Option<SourceFile>)> =
        index.modules.iter().map(|(m, f)| (m.clone(), Some(*f))).chain(index.namespace_packages.iter().map(|n| (n.clone(), None))).collect();
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    index.set_names(names);
    index
}

/// The resolution of one `imports.jsonl` row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportResolution {
    /// The repository file of `target` (a package's `__init__.py`), or null.
    pub resolved_path: Option<String>,
    /// Top-level package of a target outside the repository, or null.
    pub external: Option<String>,
    /// For each imported name: the file of the submodule `target.name`, or null.
    pub name_paths: Vec<Option<String>>,
    /// A relative import above the top-level package, or an in-repository module that does
    /// not exist.
    pub unresolved: bool,
}

/// The resolution of every row of [`imports`], in the same order.
#[salsa::tracked(returns(ref))]
pub fn resolved_imports(db: &dyn Db, file: SourceFile) -> Vec<ImportResolution> {
    let index = module_index(db, Project::get(db));
    let path_of = |module: &str| index.file(module).map(|f| f.path(db).clone());
    imports(db, file)
        .imports
        .iter()
        .map(|row| {
            let target = row.target.as_str();
            let mut resolved = index.resolve(target);
            let registered = (resolved == Resolved::Missing).then(|| registering_module(db, index, target)).flatten();
            if let Some(file) = registered {
                resolved = Resolved::File(file);
            }
            let name_paths: Vec<Option<String>> =
                row.names.iter().map(|n| path_of(&format!("{target}.{}", n.name))).collect();
            let names_are_modules = !row.names.is_empty()
                && row.names.iter().all(|n| index.exists(&format!("{target}.{}", n.name)));
            ImportResolution {
                resolved_path: path_of(target).or_else(|| registered.map(|f| f.path(db).clone())),
                external: (resolved == Resolved::External).then(|| target.split('.').next().unwrap_or(target).to_string()),
                name_paths,
                unresolved: resolved == Resolved::Missing && !names_are_modules,
            }
        })
        .collect()
}

/// The internal modules `file` imports (files only, no self edges), each with whether at least
/// one importing row runs outside `if TYPE_CHECKING:`. Positionless: a firewall for the graph.
#[salsa::tracked(returns(ref))]
pub fn import_edges(db: &dyn Db, file: SourceFile) -> BTreeMap<String, bool> {
    let index = module_index(db, Project::get(db));
    let me = file.module(db);
    let mut edges: BTreeMap<String, bool> = BTreeMap::new();
    let mut add = |module: &str, runtime: bool| {
        let module = strip_init(module);
        let module = match index.modules.contains_key(module) {
            true => module.to_string(),
            false => match registering_module(db, index, module) {
                Some(file) => file.module(db).clone(),
                None => return,
            },
        };
        if module != *me {
            *edges.entry(module).or_default() |= runtime;
        }
    };
    for row in &imports(db, file).imports {
        let runtime = !row.type_checking;
        let target = row.target.as_str();
        if row.names.is_empty() {
            add(target, runtime);
            continue;
        }
        for name in &row.names {
            let sub = format!("{target}.{}", name.name);
            if index.exists(&sub) {
                add(&sub, runtime);
            } else {
                add(target, runtime);
            }
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefix ids by parents are those found by looking up every prefix, in prefix order.
    #[test]
    fn prefix_ids_follow_parents() {
        let mut index = ModuleIndex::default();
        let deep: Vec<String> = (1..=40).map(|depth| (0..depth).map(|i| format!("d{i}")).collect::<Vec<_>>().join(".")).collect();
        let mut names: Vec<(String, Option<SourceFile>)> =
            ["a", "a.b", "a.b.c", "a.bc", "x", "x.y"].iter().map(|n| n.to_string()).chain(deep.iter().cloned()).map(|n| (n, None)).collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        index.set_names(names);
        let ids = |module: &str| {
            let mut out = Vec::new();
            index.prefix_ids(module, |id| out.push(index.names[id as usize].0.as_str()));
            let mut by_name = Vec::new();
            index.prefix_ids_by_name(strip_init(module), |id| by_name.push(index.names[id as usize].0.as_str()));
            assert_eq!(out, by_name, "{module}");
            out
        };
        assert_eq!(ids("a.b.c"), ["a", "a.b", "a.b.c"]);
        assert_eq!(ids("a.b.c.d.e"), ["a", "a.b", "a.b.c"]);
        assert_eq!(ids("a.b.__init__"), ["a", "a.b"]);
        assert_eq!(ids("a.q"), ["a"]);
        assert_eq!(ids("a.bc"), ["a", "a.bc"]);
        assert_eq!(ids("x.y.z"), ["x", "x.y"]);
        for module in ["zz", "", ".a", "a.", "a..b", "x.", "q.y"] {
            ids(module);
        }
        // Deeper than the chain kept on the stack: every prefix still, in order.
        assert_eq!(ids(&deep[39]).len(), 40);
        assert_eq!(ids(&format!("{}.more", deep[35])).len(), 36);
    }
}
