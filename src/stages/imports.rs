//! Imports: every `import` / `from … import` statement anywhere in a module, one row per
//! imported module (target), relative targets made absolute, with the flags that say when
//! the import runs.
//!
//! Flags: `type_checking` — under `if TYPE_CHECKING:` / `if <mod>.TYPE_CHECKING:` (or the
//! `elif`/`else` of `if not TYPE_CHECKING:`); the `else:` of `if TYPE_CHECKING:` is *not*
//! type-checking. `conditional` — under `if`/`elif`/`else`, `match` cases, `for`/`while`
//! bodies or a `try`'s `else`. `in_try` — in a `try` body or one of its `except` handlers
//! (not its `else` or `finally`). `in_function` — anywhere inside a `def`.
//!
//! Module names, imported names and aliases are identifiers as CPython spells them:
//! NFKC-normalized (PEP 3131), so `import µmod` imports `μmod`.

use crate::stages::parse::field;
use serde::{Deserialize, Serialize};
use tree_sitter::Node;

use crate::db::{Db, SourceFile};
use crate::module_path::{package_of, resolve_relative};
use crate::stages::outline::is_compound;
use crate::stages::cached::per_file;
use crate::stages::parse::parsed_module;
use crate::stages::text::{dotted, identifier_owned, identifier_text, is_not_type_checking, is_type_checking, node_text};

/// Bump when the import extraction's logic or fields change.
pub const IMPORTS_VERSION: u32 = 2;

/// A name imported by `from … import name [as asname]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedName {
    pub name: String,
    pub asname: Option<String>,
}

/// One imported module of one import statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// 1-based line of the statement.
    pub line: u32,
    /// 0-based UTF-8 byte column of the statement.
    pub col: u32,
    /// Absolute dotted module. A relative import that climbs above the top-level package
    /// keeps its leading dots.
    pub target: String,
    /// `from` imports: the imported names (empty for `import m` and for `*`).
    pub names: Vec<ImportedName>,
    /// `import a.b as c`: the alias `c`.
    pub asname: Option<String>,
    /// Leading dots of a relative import (0 for absolute).
    pub level: u32,
    pub star: bool,
    pub type_checking: bool,
    pub conditional: bool,
    pub in_try: bool,
    pub in_function: bool,
}

/// The imports of one module, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imports {
    pub imports: Vec<Import>,
}

/// The imports of `file`; a firewall: equal import lists stop the cascade.
#[salsa::tracked(returns(ref))]
pub fn imports(db: &dyn Db, file: SourceFile) -> Imports {
    per_file(db, file, "imports", IMPORTS_VERSION, true, || {
        let package = package_of(file.module(db), file.is_package(db));
        extract_imports(parsed_module(db, file).root(), crate::db::source_text(db, file), package)
    })
}

/// When the statements being visited run.
#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    type_checking: bool,
    conditional: bool,
    in_try: bool,
    in_function: bool,
}

impl Flags {
    fn conditional(self) -> Self {
        Flags { conditional: true, ..self }
    }

    fn type_checking(self, yes: bool) -> Self {
        Flags { type_checking: self.type_checking || yes, ..self }
    }
}

/// Extract the imports from a parsed tree; `package` is the module's `__package__`.
pub fn extract_imports(root: Node<'_>, text: &str, package: &str) -> Imports {
    let mut imports = Vec::new();
    walk(root, Flags::default(), text, package, &mut imports);
    Imports { imports }
}

/// Visit the statements under `node` with `flags`, descending into compound statements and
/// blocks but never into expressions (no import statement can be there).
fn walk(node: Node<'_>, flags: Flags, text: &str, package: &str, out: &mut Vec<Import>) {
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        match child.kind() {
            "import_statement" | "import_from_statement" | "future_import_statement" => {
                statement_imports(child, text, package, flags, out);
            }
            "function_definition" => {
                if let Some(body) = child.child_by_field_id(field::BODY.get()) {
                    walk(body, Flags { in_function: true, ..flags }, text, package, out);
                }
            }
            "class_definition" => {
                if let Some(body) = child.child_by_field_id(field::BODY.get()) {
                    walk(body, flags, text, package, out);
                }
            }
            "if_statement" => if_statement(child, flags, text, package, out),
            "for_statement" | "while_statement" | "case_clause" => walk(child, flags.conditional(), text, package, out),
            "try_statement" => {
                let mut cursor = child.walk();
                for part in child.children(&mut cursor) {
                    let part_flags = match part.kind() {
                        "block" | "except_clause" | "except_group_clause" => Flags { in_try: true, ..flags },
                        "else_clause" => flags.conditional(),
                        _ => flags,
                    };
                    if is_compound(part.kind()) {
                        walk(part, part_flags, text, package, out);
                    }
                }
            }
            kind if is_compound(kind) => walk(child, flags, text, package, out),
            _ => {}
        }
    }
}

fn if_statement(node: Node<'_>, flags: Flags, text: &str, package: &str, out: &mut Vec<Import>) {
    let condition = node.child_by_field_id(field::CONDITION.get());
    let tc_body = condition.is_some_and(|c| is_type_checking(c, text));
    // After `if not TYPE_CHECKING:`, every other branch runs only under type checking.
    let tc_rest = condition.is_some_and(|c| is_not_type_checking(c, text));
    let flags = flags.conditional();
    let mut cursor = node.walk();
    for part in node.children(&mut cursor) {
        match part.kind() {
            "block" => walk(part, flags.type_checking(tc_body), text, package, out),
            "elif_clause" => {
                let tc = tc_rest || part.child_by_field_id(field::CONDITION.get()).is_some_and(|c| is_type_checking(c, text));
                walk(part, flags.type_checking(tc), text, package, out);
            }
            "else_clause" => walk(part, flags.type_checking(tc_rest), text, package, out),
            "ERROR" => walk(part, flags, text, package, out),
            _ => {}
        }
    }
}

/// A dotted module name as CPython spells it: each identifier NFKC-normalized (PEP 3131).
fn module_name(node: Node<'_>, text: &str) -> String {
    identifier_owned(dotted(node, text))
}

/// The leading dots and the absolute module of a `from … import` statement, seen from
/// `package`. A relative import that climbs above the top-level package keeps its dots.
/// Identifiers are NFKC-normalized (the package, a module name from a path, is kept as is).
pub fn from_target(node: Node<'_>, text: &str, package: &str) -> Option<(u32, String)> {
    let module = node.child_by_field_id(field::MODULE_NAME.get())?;
    if module.kind() != "relative_import" {
        return Some((0, module_name(module, text)));
    }
    let mut cursor = module.walk();
    let mut level = 0;
    let mut name = None;
    for child in module.named_children(&mut cursor) {
        match child.kind() {
            "import_prefix" => level = node_text(child, text).chars().filter(|&c| c == '.').count() as u32,
            "dotted_name" => name = Some(module_name(child, text)),
            _ => {}
        }
    }
    let target = resolve_relative(package, level, name.as_deref())
        .unwrap_or_else(|| format!("{}{}", ".".repeat(level as usize), name.unwrap_or_default()));
    Some((level, target))
}

/// `a.b` or `a.b as c` in an import list, identifiers NFKC-normalized.
pub fn imported_name(node: Node<'_>, text: &str) -> Option<ImportedName> {
    match node.kind() {
        "dotted_name" => Some(ImportedName { name: module_name(node, text), asname: None }),
        "aliased_import" => Some(ImportedName {
            name: module_name(node.child_by_field_id(field::NAME.get())?, text),
            asname: node.child_by_field_id(field::ALIAS.get()).map(|a| identifier_text(a, text).into_owned()),
        }),
        _ => None,
    }
}

fn statement_imports(node: Node<'_>, text: &str, package: &str, flags: Flags, out: &mut Vec<Import>) {
    let start = node.start_position();
    let row = |target: String, names: Vec<ImportedName>, asname: Option<String>, level: u32, star: bool| Import {
        line: start.row as u32 + 1,
        col: start.column as u32,
        target,
        names,
        asname,
        level,
        star,
        type_checking: flags.type_checking,
        conditional: flags.conditional,
        in_try: flags.in_try,
        in_function: flags.in_function,
    };
    let mut cursor = node.walk();
    let names: Vec<ImportedName> = node
        .children_by_field_id(*field::NAME, &mut cursor)
        .filter_map(|n| imported_name(n, text))
        .collect();
    match node.kind() {
        "import_statement" => {
            for name in names {
                out.push(row(name.name, Vec::new(), name.asname, 0, false));
            }
        }
        "future_import_statement" => out.push(row("__future__".into(), names, None, 0, false)),
        _ => {
            let Some((level, target)) = from_target(node, text, package) else { return };
            let mut cursor = node.walk();
            let star = node.children(&mut cursor).any(|c| c.kind() == "wildcard_import");
            out.push(row(target, names, None, level, star));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::parse::parse_text;

    #[test]
    fn module_names_and_aliases_are_nfkc_normalized() {
        let source = "import \u{b5}a.\u{aa}b as \u{fb01}x\nfrom .\u{b5}sub import (\u{ff4b} as \u{aa}, y)\n";
        let imports = extract_imports(parse_text(source).root(), source, "pkg").imports;
        assert_eq!(imports[0].target, "\u{3bc}a.ab");
        assert_eq!(imports[0].asname.as_deref(), Some("fix"));
        assert_eq!(imports[1].target, "pkg.\u{3bc}sub");
        let names: Vec<(&str, Option<&str>)> =
            imports[1].names.iter().map(|n| (n.name.as_str(), n.asname.as_deref())).collect();
        assert_eq!(names, [("k", Some("a")), ("y", None)]);
    }
}
