//! Overlay stubs: the `.pyi` text that makes a module's surface explicit for type checkers.
//!
//! The stub declares every name the module binds at module level — so `from m import
//! _private` still type-checks — in the forms the typing spec gives meaning to: names the
//! module exports that come from elsewhere (star imports expanded, re-exports) as
//! `from origin import name as name` with `origin` the defining module; its own classes and
//! functions with their signatures and the decorators that matter to checkers; variables with
//! their annotations (`Incomplete` from `_typeshed` where there is none, as stubgen does);
//! imports it does not export as plain imports (not re-exported); `__all__` when the module
//! has one. Names bound on some paths only (`exports_maybe`) are declared too, under a comment
//! that says so: a checker then accepts them, as it would accept the source.

use crate::stages::parse::field;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::db::{Db, Project, SourceFile};
use crate::stages::exports::{exports, reexports};
use crate::stages::outline::{Outline, ParamKind, Symbol, SymbolKind, outline};
use crate::stages::resolve::module_index;
use crate::stages::scope::BindingKind;

/// Bump when the stub text changes.
pub const STUB_VERSION: u32 = 1;

/// Decorators a type checker gives meaning to (by their last dotted part); others are left
/// out of the stub.
const CHECKER_DECORATORS: &[&str] = &[
    "abstractmethod",
    "asynccontextmanager",
    "cached_property",
    "classmethod",
    "contextmanager",
    "dataclass",
    "dataclass_transform",
    "deleter",
    "deprecated",
    "final",
    "getter",
    "overload",
    "override",
    "property",
    "runtime_checkable",
    "setter",
    "staticmethod",
    "total_ordering",
    "type_check_only",
];

/// What `from m import *` binds on the `.pyi` stub beside `file` (the typing spec's rules for
/// stubs: `__all__` when it assigns one, else its public names, imports counting only in the
/// `import a as a` / `from m import a as a` forms), sorted; `None` without a stub.
#[salsa::tracked(returns(ref))]
pub fn stub_star_names(db: &dyn Db, file: SourceFile) -> Option<Vec<String>> {
    let text = file.stub(db).as_ref()?;
    let mut parser = tree_sitter::Parser::new();
    parser.set_language(&tree_sitter_python::LANGUAGE.into()).expect("the grammar loads");
    let tree = parser.parse(text.as_bytes(), None)?;
    let root = tree.root_node();
    let node_text = |n: tree_sitter::Node<'_>| crate::stages::text::identifier(&text[n.byte_range()]).into_owned();
    let mut names = BTreeSet::new();
    let mut cursor = root.walk();
    for statement in root.named_children(&mut cursor) {
        let statement = if statement.kind() == "decorated_definition" {
            statement.child_by_field_id(field::DEFINITION.get()).unwrap_or(statement)
        } else {
            statement
        };
        match statement.kind() {
            "function_definition" | "class_definition" => {
                if let Some(name) = statement.child_by_field_id(field::NAME.get()) {
                    names.insert(node_text(name));
                }
            }
            "expression_statement" => {
                let Some(assignment) = statement.named_child(0).filter(|n| n.kind() == "assignment") else { continue };
                let Some(left) = assignment.child_by_field_id(field::LEFT.get()).filter(|l| l.kind() == "identifier") else { continue };
                let name = node_text(left);
                if name == "__all__" {
                    let mut all = Vec::new();
                    if let Some(value) = assignment.child_by_field_id(field::RIGHT.get()) {
                        let mut inner = value.walk();
                        for item in value.named_children(&mut inner) {
                            if let Some(s) = crate::stages::text::string_value(item, text) {
                                all.push(s);
                            }
                        }
                    }
                    all.sort();
                    all.dedup();
                    return Some(all);
                }
                names.insert(name);
            }
            "import_statement" | "import_from_statement" => {
                let mut inner = statement.walk();
                for alias in statement.children_by_field_id(*field::NAME, &mut inner) {
                    if alias.kind() != "aliased_import" {
                        continue;
                    }
                    let (Some(name), Some(asname)) = (alias.child_by_field_id(field::NAME.get()), alias.child_by_field_id(field::ALIAS.get())) else { continue };
                    let imported = node_text(name);
                    let asname = node_text(asname);
                    if imported.rsplit('.').next() == Some(asname.as_str()) {
                        names.insert(asname);
                    }
                }
            }
            _ => {}
        }
    }
    Some(names.into_iter().filter(|n| !n.starts_with('_')).collect())
}

/// The `.pyi` overlay of `file`: the stub beside it when there is one, completed with the
/// exported names it lacks; else generated from the module (see the module docs).
#[salsa::tracked(returns(ref))]
pub fn overlay_stub(db: &dyn Db, file: SourceFile) -> String {
    if let (Some(stub), Some(names)) = (file.stub(db), stub_star_names(db, file)) {
        let exports = exports(db, file);
        let declared: BTreeSet<&String> = names.iter().collect();
        let missing: Vec<&String> = exports
            .names
            .iter()
            .chain(&exports.maybe)
            .filter(|n| is_identifier(n) && !declared.contains(n))
            .collect();
        let mut text = format!("# Overlay of {} generated by codeintel-enrich from the stub beside it.\n", file.path(db));
        text.push_str(stub);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if !missing.is_empty() {
            text.push_str("\n# Exported by the module but not declared by its stub:\nfrom _typeshed import Incomplete\n\n");
            for name in missing {
                let _ = writeln!(text, "{name}: Incomplete");
            }
        }
        return text;
    }
    let exports = exports(db, file);
    let reexports = reexports(db, file);
    let outline = outline(db, file).decode();
    let index = module_index(db, Project::get(db));
    let module = file.module(db);
    let exported: BTreeSet<&String> = exports.names.iter().collect();
    let maybe: BTreeSet<&String> = exports.maybe.iter().collect();
    let listed: BTreeSet<&String> = exports.all.iter().flatten().collect();
    let is_exported = |name: &String| exported.contains(name) || maybe.contains(name) || listed.contains(name);

    let mut head = String::new();
    let mut body = String::new();
    let mut uses_incomplete = false;
    let mut declared: BTreeSet<String> = BTreeSet::new();

    // Imports: exported ones (star imports expanded) as re-exports from the defining module.
    let origins: BTreeMap<&String, (&String, &Option<String>)> =
        reexports.iter().map(|r| (&r.name, (&r.origin, &r.origin_name))).collect();
    // A def or class wins over an import of the same name (it is the later binding).
    let defined: BTreeSet<&String> =
        outline.symbols.iter().filter(|s| !s.qualname.contains('.')).map(|s| &s.name).collect();
    let mut imports: Vec<String> = Vec::new();
    // An exported name imported under another name (`import collections.abc as cabc`) has no
    // re-export form in a stub: the stub then lists the exports in an `__all__` of its own.
    let mut needs_all = false;
    for (name, binding) in &exports.bound {
        let Some(origin) = &binding.origin else { continue };
        if defined.contains(name) {
            continue;
        }
        if !matches!(binding.kind, BindingKind::Import | BindingKind::StarImport) {
            continue;
        }
        let reexport = is_exported(name);
        let (module_name, origin_name) = match origins.get(name) {
            Some((module, origin_name)) => ((*module).clone(), (*origin_name).clone()),
            None => (origin.module.clone(), origin.name.clone()),
        };
        if module_name.starts_with('.') {
            // A relative import above the top-level package: nothing to import from.
            continue;
        }
        needs_all |= reexport && origin_name.as_ref().map_or_else(|| module_name.rsplit('.').next() != Some(name.as_str()), |o| o != name);
        let line = match origin_name {
            None => match module_name.rsplit_once('.') {
                // `import a.b as x` / a submodule attribute: `from a import b as x`.
                Some((parent, child)) => format!("from {parent} import {child} as {name}"),
                None if reexport || module_name != *name => format!("import {module_name} as {name}"),
                None => format!("import {module_name}"),
            },
            Some(origin_name) => {
                if reexport || origin_name != *name {
                    format!("from {module_name} import {origin_name} as {name}")
                } else {
                    format!("from {module_name} import {origin_name}")
                }
            }
        };
        imports.push(line);
        declared.insert(name.clone());
    }
    imports.sort();
    imports.dedup();

    // Submodules the package exports.
    let mut submodules = Vec::new();
    for name in exports.names.iter().chain(&exports.maybe) {
        if declared.contains(name) || exports.bound.contains_key(name) || !is_identifier(name) {
            continue;
        }
        if file.is_package(db) && index.exists(&format!("{module}.{name}")) {
            submodules.push(format!("from {module} import {name} as {name}"));
            declared.insert(name.clone());
        }
    }

    if let Some(all) = &exports.all {
        let items: Vec<String> = all.iter().map(|n| format!("{n:?}")).collect();
        if !exports.all_complete {
            let _ = writeln!(body, "# __all__ could not be read exactly; the names below are the best reading.");
        }
        let _ = writeln!(body, "__all__ = [{}]\n", items.join(", "));
    } else if needs_all {
        let items: Vec<String> =
            exports.names.iter().chain(&exports.maybe).filter(|n| is_identifier(n)).map(|n| format!("{n:?}")).collect();
        let _ = writeln!(body, "# The module has no __all__: these are the names `from m import *` binds (see exports_maybe).");
        let _ = writeln!(body, "__all__ = [{}]\n", items.join(", "));
    }

    // Module variables, then classes and functions in document order.
    for variable in outline.variables.iter().filter(|v| v.scope.is_empty()) {
        if declared.contains(&variable.name)
            || variable.name == "__all__"
            || defined.contains(&variable.name)
            || !(exports.bound.contains_key(&variable.name) || is_exported(&variable.name))
        {
            continue;
        }
        if maybe.contains(&variable.name) {
            let _ = writeln!(body, "# maybe: bound on some paths only");
        }
        let annotation = variable.annotation.clone().unwrap_or_else(|| {
            uses_incomplete = true;
            "Incomplete".to_string()
        });
        let _ = writeln!(body, "{}: {annotation}", variable.name);
        declared.insert(variable.name.clone());
    }
    let mut wrote_definition = false;
    for symbol in outline.symbols.iter().filter(|s| !s.qualname.contains('.')) {
        if !exports.bound.contains_key(&symbol.name) && !is_exported(&symbol.name) {
            continue;
        }
        if !wrote_definition && !body.is_empty() {
            body.push('\n');
        }
        wrote_definition = true;
        if maybe.contains(&symbol.name) {
            let _ = writeln!(body, "# maybe: bound on some paths only");
        }
        write_symbol(&mut body, symbol, &outline, 0, &mut uses_incomplete);
        declared.insert(symbol.name.clone());
    }

    // Anything else the module binds or exports (loop targets, walruses, names a registration
    // decorator or `__getattr__` provides): declared without a type.
    let mut rest: Vec<&String> = exports.bound.keys().chain(&exports.names).chain(&exports.maybe).chain(listed.iter().copied()).collect();
    rest.sort();
    rest.dedup();
    let mut tail = String::new();
    for name in rest {
        if declared.contains(name) || name == "__all__" || name.starts_with("__") && name.ends_with("__") || !is_identifier(name) {
            continue;
        }
        if maybe.contains(name) {
            let _ = writeln!(tail, "# maybe: bound on some paths only");
        }
        let _ = writeln!(tail, "{name}: Incomplete");
        uses_incomplete = true;
        declared.insert(name.clone());
    }

    let _ = writeln!(head, "# Overlay of {} generated by codeintel-enrich: the module's surface for type checkers.", file.path(db));
    if uses_incomplete {
        imports.insert(0, "from _typeshed import Incomplete".to_string());
    }
    let mut text = head;
    if !imports.is_empty() || !submodules.is_empty() {
        text.push('\n');
        for line in imports.iter().chain(&submodules) {
            text.push_str(line);
            text.push('\n');
        }
    }
    if !body.is_empty() {
        text.push('\n');
        text.push_str(&body);
    }
    if !tail.is_empty() {
        text.push('\n');
        text.push_str(&tail);
    }
    text
}

/// A name a stub can bind: an identifier that is not a keyword (a submodule file may be
/// called `audit-tests.py`; `from m import *` may bind it at run time, a stub cannot).
pub fn is_identifier(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
        "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
        "pass", "raise", "return", "try", "while", "with", "yield",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && !KEYWORDS.contains(&name)
}

fn write_symbol(out: &mut String, symbol: &Symbol, outline: &Outline, depth: usize, uses_incomplete: &mut bool) {
    let indent = "    ".repeat(depth);
    for decorator in &symbol.decorators {
        let name = decorator.split('(').next().unwrap_or(decorator).rsplit('.').next().unwrap_or("").trim();
        if CHECKER_DECORATORS.contains(&name) {
            let _ = writeln!(out, "{indent}@{decorator}");
        }
    }
    match symbol.kind {
        SymbolKind::Class => {
            let bases = if symbol.bases.is_empty() { String::new() } else { format!("({})", symbol.bases.join(", ")) };
            let _ = writeln!(out, "{indent}class {}{bases}:", symbol.name);
            let prefix = format!("{}.", symbol.qualname);
            let mut empty = true;
            for variable in outline.variables.iter().filter(|v| v.scope == symbol.qualname) {
                let annotation = variable.annotation.clone().unwrap_or_else(|| {
                    *uses_incomplete = true;
                    "Incomplete".to_string()
                });
                let _ = writeln!(out, "{indent}    {}: {annotation}", variable.name);
                empty = false;
            }
            for member in outline.symbols.iter().filter(|s| s.qualname.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('.'))) {
                write_symbol(out, member, outline, depth + 1, uses_incomplete);
                empty = false;
            }
            if empty {
                let _ = writeln!(out, "{indent}    ...");
            }
        }
        SymbolKind::Function | SymbolKind::Method => {
            let returns = symbol.returns.as_ref().map(|r| format!(" -> {r}")).unwrap_or_default();
            let asyncness = if symbol.is_async { "async " } else { "" };
            let _ = writeln!(out, "{indent}{asyncness}def {}({}){returns}: ...", symbol.name, parameters(symbol));
        }
    }
}

/// A signature's parameters with `/` and `*` markers where the kinds change.
fn parameters(symbol: &Symbol) -> String {
    let mut parts: Vec<String> = Vec::new();
    let positional_only = symbol.params.iter().filter(|p| p.kind == ParamKind::PositionalOnly).count();
    let has_var_positional = symbol.params.iter().any(|p| p.kind == ParamKind::VarPositional);
    let mut star_written = has_var_positional;
    for (i, param) in symbol.params.iter().enumerate() {
        if param.kind == ParamKind::KeywordOnly && !star_written {
            parts.push("*".to_string());
            star_written = true;
        }
        let prefix = match param.kind {
            ParamKind::VarPositional => "*",
            ParamKind::VarKeyword => "**",
            _ => "",
        };
        let annotation = param.annotation.as_ref().map(|a| format!(": {a}")).unwrap_or_default();
        let default = if param.has_default { if param.annotation.is_some() { " = ..." } else { "=..." } } else { "" };
        parts.push(format!("{prefix}{}{annotation}{default}", param.name));
        if positional_only > 0 && i + 1 == positional_only {
            parts.push("/".to_string());
        }
    }
    parts.join(", ")
}
