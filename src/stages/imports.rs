//! Imports: every `import` / `from … import` statement anywhere in a module, one row per
//! imported module (target), relative targets made absolute, with the flags that say when
//! the import runs.
//!
//! Flags: `type_checking` — under `if TYPE_CHECKING:` / `if <mod>.TYPE_CHECKING:` (or the
//! `elif`/`else` of `if not TYPE_CHECKING:`); the `else:` of `if TYPE_CHECKING:` is *not*
//! type-checking. `conditional` — under `if`/`elif`/`else`, `match` cases, `for`/`while`
//! bodies or a `try`'s `else`. `in_try` — in a `try` body or one of its `except` handlers
//! (not its `else` or `finally`). `in_function` — anywhere inside a `def`.

use std::sync::LazyLock;

use serde::Serialize;
use streaming_iterator::StreamingIterator as _;
use tree_sitter::{Node, Query, QueryCursor};

use crate::db::{Db, SourceFile};
use crate::module_path::{package_of, resolve_relative};
use crate::stages::parse::{language, parsed_module};
use crate::stages::text::node_text;

/// Bump when the import extraction's logic or fields change.
pub const IMPORTS_VERSION: u32 = 1;

static IMPORTS_QUERY: LazyLock<Query> = LazyLock::new(|| {
    Query::new(&language(), include_str!("../../queries/imports.scm")).expect("queries/imports.scm compiles")
});

/// A name imported by `from … import name [as asname]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedName {
    pub name: String,
    pub asname: Option<String>,
}

/// One imported module of one import statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imports {
    pub imports: Vec<Import>,
}

/// The imports of `file`; a firewall: equal import lists stop the cascade.
#[salsa::tracked(returns(ref))]
pub fn imports(db: &dyn Db, file: SourceFile) -> Imports {
    let parsed = parsed_module(db, file);
    let package = package_of(file.module(db), file.is_package(db));
    extract_imports(parsed.root(), file.text(db), package)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Function,
    /// `if`; `tc_body`: its condition is `TYPE_CHECKING`; `tc_else`: it is `not TYPE_CHECKING`.
    If { tc_body: bool, tc_else: bool },
    Elif { tc: bool },
    /// `else:` of an `if` (`tc`), of a loop, or of a `try` (`of_try`).
    Else { tc: bool, of_try: bool },
    Try,
    Except,
    Finally,
    Loop,
    Case,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    end_byte: usize,
    container: Container,
}

#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    type_checking: bool,
    conditional: bool,
    in_try: bool,
    in_function: bool,
}

fn flags(stack: &[Frame]) -> Flags {
    let mut flags = Flags::default();
    for (i, frame) in stack.iter().enumerate() {
        let child = stack.get(i + 1).map(|f| f.container);
        match frame.container {
            Container::Function => flags.in_function = true,
            Container::If { tc_body, .. } => {
                flags.conditional = true;
                let in_alternative = matches!(child, Some(Container::Elif { .. } | Container::Else { .. }));
                flags.type_checking |= tc_body && !in_alternative;
            }
            Container::Elif { tc } | Container::Else { tc, of_try: false } => {
                flags.conditional = true;
                flags.type_checking |= tc;
            }
            Container::Else { of_try: true, .. } => flags.conditional = true,
            Container::Try => {
                flags.in_try |= !matches!(child, Some(Container::Finally | Container::Else { of_try: true, .. }));
            }
            Container::Except | Container::Finally => {}
            Container::Loop | Container::Case => flags.conditional = true,
        }
    }
    flags
}

/// `TYPE_CHECKING`, `typing.TYPE_CHECKING` or `<anything>.TYPE_CHECKING`, maybe parenthesized.
fn is_type_checking(node: Node<'_>, text: &str) -> bool {
    match node.kind() {
        "identifier" => node_text(node, text) == "TYPE_CHECKING",
        "attribute" => node
            .child_by_field_name("attribute")
            .is_some_and(|attr| node_text(attr, text) == "TYPE_CHECKING"),
        "parenthesized_expression" => node.named_child(0).is_some_and(|inner| is_type_checking(inner, text)),
        _ => false,
    }
}

fn is_not_type_checking(node: Node<'_>, text: &str) -> bool {
    match node.kind() {
        "not_operator" => node.child_by_field_name("argument").is_some_and(|arg| is_type_checking(arg, text)),
        "parenthesized_expression" => node.named_child(0).is_some_and(|inner| is_not_type_checking(inner, text)),
        _ => false,
    }
}

/// Extract the imports from a parsed tree; `package` is the module's `__package__`.
pub fn extract_imports(root: Node<'_>, text: &str, package: &str) -> Imports {
    let mut cursor = QueryCursor::new();
    let mut captures = cursor.captures(&IMPORTS_QUERY, root, text.as_bytes());
    let mut stack: Vec<Frame> = Vec::new();
    let mut imports = Vec::new();
    while let Some((m, index)) = captures.next() {
        let node = m.captures()[*index].node;
        while stack.last().is_some_and(|frame| frame.end_byte <= node.start_byte()) {
            stack.pop();
        }
        let container = match node.kind() {
            "function_definition" => Container::Function,
            "if_statement" => Container::If {
                tc_body: node.child_by_field_name("condition").is_some_and(|c| is_type_checking(c, text)),
                tc_else: node.child_by_field_name("condition").is_some_and(|c| is_not_type_checking(c, text)),
            },
            "elif_clause" => {
                let parent_negated = matches!(stack.last(), Some(Frame { container: Container::If { tc_else: true, .. }, .. }));
                Container::Elif { tc: parent_negated || node.child_by_field_name("condition").is_some_and(|c| is_type_checking(c, text)) }
            }
            "else_clause" => match stack.last().map(|f| f.container) {
                Some(Container::If { tc_else, .. }) => Container::Else { tc: tc_else, of_try: false },
                Some(Container::Try) => Container::Else { tc: false, of_try: true },
                _ => Container::Else { tc: false, of_try: false },
            },
            "try_statement" => Container::Try,
            "except_clause" => Container::Except,
            "finally_clause" => Container::Finally,
            "for_statement" | "while_statement" => Container::Loop,
            "case_clause" => Container::Case,
            _ => {
                let flags = flags(&stack);
                statement_imports(node, text, package, flags, &mut imports);
                continue;
            }
        };
        stack.push(Frame { end_byte: node.end_byte(), container });
    }
    Imports { imports }
}

/// A dotted name's text without the whitespace or comments Python allows inside it.
fn dotted(node: Node<'_>, text: &str) -> String {
    let mut cursor = node.walk();
    let parts: Vec<&str> = node
        .named_children(&mut cursor)
        .filter(|c| c.kind() == "identifier")
        .map(|c| node_text(c, text))
        .collect();
    if parts.is_empty() { node_text(node, text).to_string() } else { parts.join(".") }
}

fn imported_name(node: Node<'_>, text: &str) -> Option<ImportedName> {
    match node.kind() {
        "dotted_name" => Some(ImportedName { name: dotted(node, text), asname: None }),
        "aliased_import" => Some(ImportedName {
            name: dotted(node.child_by_field_name("name")?, text),
            asname: node.child_by_field_name("alias").map(|a| node_text(a, text).to_string()),
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
        .children_by_field_name("name", &mut cursor)
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
            let Some(module) = node.child_by_field_name("module_name") else { return };
            let mut cursor = node.walk();
            let star = node.children(&mut cursor).any(|c| c.kind() == "wildcard_import");
            let (level, target) = if module.kind() == "relative_import" {
                let mut cursor = module.walk();
                let mut level = 0;
                let mut name = None;
                for child in module.named_children(&mut cursor) {
                    match child.kind() {
                        "import_prefix" => level = node_text(child, text).chars().filter(|&c| c == '.').count() as u32,
                        "dotted_name" => name = Some(dotted(child, text)),
                        _ => {}
                    }
                }
                let target = resolve_relative(package, level, name.as_deref())
                    .unwrap_or_else(|| format!("{}{}", ".".repeat(level as usize), name.unwrap_or_default()));
                (level, target)
            } else {
                (0, dotted(module, text))
            };
            out.push(row(target, names, None, level, star));
        }
    }
}
