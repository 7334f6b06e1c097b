//! Exports: exactly the names `from module import *` binds at run time, the resolved
//! `__all__`, and re-exports traced to the module that defines each name.
//!
//! With `__all__`, the exports are its names. Without, they are the module's public bindings
//! (no leading `_`), plus the names its star imports bring in (expanded transitively), plus
//! the submodules a package's `__init__` imports (CPython sets them as attributes of the
//! package), minus `del`. Star-import cycles are solved by salsa's fixpoint iteration: every
//! module in a cycle starts from the empty set and re-runs until the sets stop growing, which
//! gives the union CPython reaches when the cycle's modules finish initializing.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::db::{Db, Project, SourceFile};
use crate::stages::resolve::{ModuleIndex, Resolved, module_index};
use crate::stages::scope::{AllItem, AllOp, BindingKind, ModuleAllRef, module_scope};

/// Bump when export computation changes.
pub const EXPORTS_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Exports {
    /// Sorted names bound by `from module import *`.
    pub names: Vec<String>,
    /// False when a star import or an `__all__` part could not be resolved statically.
    pub complete: bool,
    /// The declared `__all__`, in order, or `None` when the module has none.
    pub all: Option<Vec<String>>,
    pub all_complete: bool,
}

fn exports_initial(_db: &dyn Db, _id: salsa::Id, _file: SourceFile) -> Exports {
    Exports { complete: true, all_complete: true, ..Exports::default() }
}

/// The exports of `file`.
#[salsa::tracked(returns(ref), cycle_initial = exports_initial)]
pub fn exports(db: &dyn Db, file: SourceFile) -> Exports {
    let index = module_index(db, Project::get(db));
    let scope = module_scope(db, file);
    let mut complete = true;

    let (all, all_complete) = match &scope.dunder_all {
        None => (None, true),
        Some(declared) => {
            let mut names: Vec<String> = Vec::new();
            let mut ok = !declared.incomplete;
            for op in &declared.ops {
                match op {
                    AllOp::Set(items) => {
                        names.clear();
                        ok &= extend_all(db, index, &mut names, items);
                    }
                    AllOp::Extend(items) => ok &= extend_all(db, index, &mut names, items),
                    AllOp::Remove(name) => match names.iter().position(|n| n == name) {
                        Some(i) => {
                            names.remove(i);
                        }
                        None => ok = false,
                    },
                }
            }
            (Some(names), ok)
        }
    };

    let names: BTreeSet<String> = match &all {
        Some(all) => {
            complete &= all_complete;
            all.iter().cloned().collect()
        }
        None => {
            let mut names: BTreeSet<String> = scope
                .names
                .iter()
                .filter(|(_, binding)| binding.kind != BindingKind::ExceptAlias)
                .map(|(name, _)| name.clone())
                .collect();
            complete &= !scope.dynamic_globals;
            let me = file.module(db);
            for target in &scope.star_imports {
                match index.resolve(target) {
                    Resolved::File(source) => {
                        let star = exports(db, source);
                        complete &= star.complete;
                        names.extend(star.names.iter().cloned());
                        // Importing this module first loaded its ancestors: a star import from
                        // one of them also sees the child on the path here (`from ctypes
                        // import *` in `ctypes.test.x` binds `test`).
                        if star.all.is_none()
                            && let Some(rest) = me.strip_prefix(target.as_str()).and_then(|r| r.strip_prefix('.'))
                        {
                            names.insert(rest.split('.').next().unwrap_or(rest).to_string());
                        }
                    }
                    Resolved::Namespace => {}
                    Resolved::Missing | Resolved::External => complete = false,
                }
            }
            if file.is_package(db) {
                names.extend(imported_submodules(file.module(db), &scope.runtime_imports, index));
            }
            names.retain(|name| is_public_name_for_star(name) && !scope.deleted.contains(name));
            names
        }
    };
    Exports { names: names.into_iter().collect(), complete, all, all_complete }
}

/// `from m import *` without `__all__` skips every name starting with an underscore.
fn is_public_name_for_star(name: &str) -> bool {
    !name.starts_with('_')
}

/// Children of `package` that its own module-level imports load (CPython binds each loaded
/// submodule as an attribute of its parent package).
fn imported_submodules<'a>(
    package: &str,
    imports: &'a BTreeSet<crate::stages::scope::ImportOrigin>,
    index: &'a ModuleIndex,
) -> BTreeSet<String> {
    let prefix = format!("{package}.");
    let mut children = BTreeSet::new();
    for origin in imports {
        let mut candidates = vec![origin.module.clone()];
        if let Some(name) = &origin.name {
            candidates.push(format!("{}.{name}", origin.module));
        }
        for candidate in candidates {
            if let Some(rest) = candidate.strip_prefix(&prefix)
                && index.exists(&candidate)
            {
                children.insert(rest.split('.').next().unwrap_or(rest).to_string());
            }
        }
    }
    children
}

/// Append `items` to `names`, reading other modules' `__all__`; false when one is unknown.
fn extend_all(db: &dyn Db, index: &ModuleIndex, names: &mut Vec<String>, items: &[AllItem]) -> bool {
    let mut ok = true;
    for item in items {
        match item {
            AllItem::Name(name) => names.push(name.clone()),
            AllItem::ModuleAll(reference) => match module_all(db, index, reference) {
                Some(all) => names.extend(all),
                None => ok = false,
            },
        }
    }
    ok
}

fn module_all(db: &dyn Db, index: &ModuleIndex, reference: &ModuleAllRef) -> Option<Vec<String>> {
    let module = match &reference.attr {
        Some(attr) => format!("{}.{attr}", reference.module),
        None => reference.module.clone(),
    };
    let file = index.file(&module)?;
    let exports = exports(db, file);
    if !exports.all_complete {
        return None;
    }
    exports.all.clone()
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

/// The re-exports of `file`, sorted by name.
#[salsa::tracked(returns(ref))]
pub fn reexports(db: &dyn Db, file: SourceFile) -> Vec<Reexport> {
    let index = module_index(db, Project::get(db));
    let scope = module_scope(db, file);
    let mut out = Vec::new();
    for name in &exports(db, file).names {
        let from = match scope.names.get(name) {
            Some(binding) => binding.origin.as_ref().map(|origin| (origin.module.clone(), origin.name.clone())),
            None => scope
                .star_imports
                .iter()
                .rev()
                .find(|target| {
                    index.file(target).is_some_and(|source| exports(db, source).names.binary_search(name).is_ok())
                })
                .map(|target| (target.clone(), Some(name.clone()))),
        };
        let Some((from_module, from_name)) = from else { continue };
        let (origin, origin_name) = trace_origin(db, index, from_module.clone(), from_name);
        out.push(Reexport { name: name.clone(), from: from_module, origin, origin_name });
    }
    out
}

/// Follow `from module import name` through import chains and star imports to the module that
/// defines the name. Stops at the repository's edge and after 64 steps (import loops).
fn trace_origin(db: &dyn Db, index: &ModuleIndex, mut module: String, mut name: Option<String>) -> (String, Option<String>) {
    let mut seen = BTreeSet::new();
    while let Some(current) = name.clone() {
        // `from pkg import name` targets the submodule `pkg.name` when it exists.
        let submodule = format!("{module}.{current}");
        if index.exists(&submodule) {
            return (submodule, None);
        }
        let Some(file) = index.file(&module) else {
            break;
        };
        if !seen.insert((module.clone(), current.clone())) || seen.len() > 64 {
            break;
        }
        let scope = module_scope(db, file);
        match scope.names.get(&current) {
            Some(binding) => match &binding.origin {
                Some(origin) => {
                    module = origin.module.clone();
                    name = origin.name.clone();
                }
                None => break,
            },
            None => {
                let star = scope.star_imports.iter().rev().find(|target| {
                    index.file(target).is_some_and(|source| exports(db, source).names.binary_search(&current).is_ok())
                });
                match star {
                    Some(target) => module = target.clone(),
                    None => break,
                }
            }
        }
    }
    (module, name)
}
