//! The module scope: the names a module binds at module level when it runs, the star imports
//! it executes, the names it deletes, and its declared `__all__` — all without positions, so
//! that moving code around re-runs nothing downstream.
//!
//! What counts (CPython's run-time semantics): `def`/`class`, assignment targets (tuple and
//! list unpacking, starred, chained, annotated *with* a value, augmented, walrus — also inside
//! comprehensions, which bind in the enclosing scope), `for` and `with … as` targets, `type`
//! aliases, `match` captures, import bindings (`import a.b` binds `a`, `import a.b as c` binds
//! `c`, `from x import y as z` binds `z`), in either branch of `if`/`try`/`match` and in loop
//! bodies — but not under `if TYPE_CHECKING:` (false at run time; its `else:` does run).
//! `except … as e` binds `e` only until the handler ends (CPython deletes it), so it is kept as
//! a binding of kind `except_alias` and never exported. `del` removes names.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tree_sitter::Node;

use crate::db::{Db, SourceFile};
use crate::module_path::package_of;
use crate::stages::parse::parsed_module;
use crate::stages::imports::{from_target, imported_name};
use crate::stages::text::{is_main_guard, is_not_type_checking, is_type_checking, node_text, string_value};

/// Bump when the scope analysis changes.
pub const SCOPE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    Function,
    Class,
    Variable,
    Import,
    ExceptAlias,
}

/// Where an import binding comes from: `from module import name` (`name: Some`), or the module
/// object itself (`import module [as x]`, `name: None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImportOrigin {
    /// Absolute module (a relative import that climbs too high keeps its dots).
    pub module: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub kind: BindingKind,
    /// Set for import bindings (the last one wins, as at run time).
    pub origin: Option<ImportOrigin>,
}

/// A reference to another module's `__all__` (`m.__all__`, `from m import __all__`): the
/// module `module`, or its submodule `module.attr` when that exists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModuleAllRef {
    pub module: String,
    pub attr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllItem {
    Name(String),
    ModuleAll(ModuleAllRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllOp {
    Set(Vec<AllItem>),
    Extend(Vec<AllItem>),
    Remove(String),
}

/// The declared `__all__`: its operations in execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunderAll {
    pub ops: Vec<AllOp>,
    /// An operation could not be read statically (or ran only under a condition).
    pub incomplete: bool,
}

/// Everything a module binds at module level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleScope {
    pub names: BTreeMap<String, Binding>,
    /// Absolute targets of `from m import *`, in order, deduplicated.
    pub star_imports: Vec<String>,
    /// Names removed by `del` and not bound again afterwards.
    pub deleted: BTreeSet<String>,
    /// `None` when the module never assigns `__all__`.
    pub dunder_all: Option<DunderAll>,
    /// The module writes its own globals dynamically (`globals()`, `sys.modules[__name__]`,
    /// enum `_convert_`): names may exist that no static reading can see.
    pub dynamic_globals: bool,
    /// Absolute modules imported at module level at run time (not in functions, not under
    /// `TYPE_CHECKING`), with the names of `from` imports: used for submodule side effects.
    pub runtime_imports: BTreeSet<ImportOrigin>,
}

/// The module scope of `file` (one walk; [`bindings`] and [`dunder_all`] are its narrow views).
#[salsa::tracked(returns(ref))]
pub fn module_scope(db: &dyn Db, file: SourceFile) -> ModuleScope {
    crate::stages::cached::per_file(db, file, "module_scope", SCOPE_VERSION, true, || {
        let package = package_of(file.module(db), file.is_package(db)).to_string();
        let text = crate::db::source_text(db, file);
        let mut walker = ScopeWalker { text, package, scope: ModuleScope::default() };
        walker.block(parsed_module(db, file).root(), false);
        walker.scope.dynamic_globals = writes_globals_dynamically(text);
        walker.scope
    })
}

/// The module-level bindings, star imports and deletions of `file`.
#[salsa::tracked(returns(ref))]
pub fn bindings(db: &dyn Db, file: SourceFile) -> ModuleScope {
    let scope = module_scope(db, file);
    ModuleScope { dunder_all: None, ..scope.clone() }
}

/// The declared `__all__` of `file`.
#[salsa::tracked(returns(ref))]
pub fn dunder_all(db: &dyn Db, file: SourceFile) -> Option<DunderAll> {
    module_scope(db, file).dunder_all.clone()
}

struct ScopeWalker<'a> {
    text: &'a str,
    package: String,
    scope: ModuleScope,
}

impl ScopeWalker<'_> {
    fn text(&self, node: Node<'_>) -> &str {
        node_text(node, self.text)
    }

    fn bind(&mut self, name: &str, kind: BindingKind, origin: Option<ImportOrigin>) {
        self.scope.deleted.remove(name);
        self.scope.names.insert(name.to_string(), Binding { kind, origin });
    }

    /// Statements of a block; `conditional`: they may not run (affects `__all__` only).
    fn block(&mut self, node: Node<'_>, conditional: bool) {
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            self.statement(child, conditional);
        }
    }

    fn statement(&mut self, node: Node<'_>, conditional: bool) {
        match node.kind() {
            "function_definition" | "class_definition" => {
                if let Some(name) = node.child_by_field_name("name") {
                    let kind = if node.kind() == "class_definition" { BindingKind::Class } else { BindingKind::Function };
                    // Decorators and defaults run at module level: walruses there bind.
                    let name = self.text(name).to_string();
                    self.bind(&name, kind, None);
                }
            }
            "decorated_definition" => {
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    match child.kind() {
                        "decorator" => self.walruses(child),
                        _ => self.statement(child, conditional),
                    }
                }
            }
            "expression_statement" => {
                let mut cursor = node.walk();
                for child in node.named_children(&mut cursor) {
                    match child.kind() {
                        "assignment" => self.assignment(child, conditional),
                        "augmented_assignment" => self.augmented(child, conditional),
                        "call" => {
                            self.all_method_call(child, conditional);
                            self.walruses(child);
                        }
                        _ => self.walruses(child),
                    }
                }
            }
            "import_statement" => self.import_statement(node),
            "import_from_statement" | "future_import_statement" => self.import_from(node),
            "delete_statement" => {
                let mut cursor = node.walk();
                for target in node.named_children(&mut cursor) {
                    let mut names = Vec::new();
                    target_names(target, self.text, &mut names);
                    for name in names {
                        self.scope.names.remove(&name);
                        self.scope.deleted.insert(name);
                    }
                }
            }
            "if_statement" => self.if_statement(node),
            "for_statement" => {
                if let Some(left) = node.child_by_field_name("left") {
                    self.bind_targets(left);
                }
                if let Some(right) = node.child_by_field_name("right") {
                    self.walruses(right);
                }
                self.clauses(node, true);
            }
            "while_statement" => {
                if let Some(condition) = node.child_by_field_name("condition") {
                    self.walruses(condition);
                }
                self.clauses(node, true);
            }
            "with_statement" => {
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    match child.kind() {
                        "with_clause" => self.with_clause(child),
                        "block" => self.block(child, conditional),
                        _ => {}
                    }
                }
            }
            "try_statement" => {
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    match child.kind() {
                        "block" => self.block(child, conditional),
                        "except_clause" | "except_group_clause" => {
                            let mut inner = child.walk();
                            for part in child.children(&mut inner) {
                                match part.kind() {
                                    "block" => self.block(part, conditional),
                                    "as_pattern" => {
                                        if let Some(alias) = part.child_by_field_name("alias") {
                                            let mut names = Vec::new();
                                            target_names(alias, self.text, &mut names);
                                            for name in names {
                                                self.bind(&name, BindingKind::ExceptAlias, None);
                                            }
                                        }
                                    }
                                    _ => {}
                                }
                            }
                            if let Some(alias) = child.child_by_field_name("alias") {
                                let mut names = Vec::new();
                                target_names(alias, self.text, &mut names);
                                for name in names {
                                    self.bind(&name, BindingKind::ExceptAlias, None);
                                }
                            }
                        }
                        "else_clause" | "finally_clause" => self.clauses(child, conditional),
                        _ => {}
                    }
                }
            }
            "match_statement" => {
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    if child.kind() == "block" {
                        let mut inner = child.walk();
                        for case in child.named_children(&mut inner) {
                            if case.kind() == "case_clause" {
                                self.case_clause(case);
                            }
                        }
                    } else if child.is_named() {
                        self.walruses(child);
                    }
                }
            }
            "type_alias_statement" => {
                if let Some(left) = node.child_by_field_name("left") {
                    let mut names = Vec::new();
                    target_names(left, self.text, &mut names);
                    if let Some(name) = names.first().cloned() {
                        self.bind(&name, BindingKind::Variable, None);
                    }
                }
            }
            "block" | "ERROR" => self.block(node, conditional),
            _ => {}
        }
    }

    /// Blocks and clauses directly under `node` (loop bodies, `else`, `finally`).
    fn clauses(&mut self, node: Node<'_>, conditional: bool) {
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            match child.kind() {
                "block" => self.block(child, conditional),
                "else_clause" | "finally_clause" => self.clauses(child, conditional),
                _ => {}
            }
        }
    }

    fn if_statement(&mut self, node: Node<'_>) {
        let condition = node.child_by_field_name("condition");
        if let Some(condition) = condition {
            self.walruses(condition);
        }
        // `if TYPE_CHECKING:` and `if __name__ == "__main__":` never run on import.
        let skip_body = condition.is_some_and(|c| is_type_checking(c, self.text) || is_main_guard(c, self.text));
        let skip_rest = condition.is_some_and(|c| is_not_type_checking(c, self.text));
        let mut cursor = node.walk();
        for part in node.children(&mut cursor) {
            match part.kind() {
                "block" if !skip_body => self.block(part, true),
                "elif_clause" if !skip_rest => {
                    let elif_condition = part.child_by_field_name("condition");
                    if let Some(c) = elif_condition {
                        self.walruses(c);
                    }
                    if !elif_condition.is_some_and(|c| is_type_checking(c, self.text)) {
                        self.clauses(part, true);
                    }
                }
                "else_clause" if !skip_rest => self.clauses(part, true),
                _ => {}
            }
        }
    }

    fn case_clause(&mut self, case: Node<'_>) {
        let mut cursor = case.walk();
        for part in case.children(&mut cursor) {
            match part.kind() {
                "case_pattern" => {
                    let mut names = Vec::new();
                    capture_names(part, self.text, &mut names);
                    for name in names {
                        self.bind(&name, BindingKind::Variable, None);
                    }
                }
                "block" => self.block(part, true),
                _ => {}
            }
        }
    }

    fn with_clause(&mut self, clause: Node<'_>) {
        let mut cursor = clause.walk();
        for item in clause.named_children(&mut cursor) {
            let Some(value) = item.child_by_field_name("value") else { continue };
            self.walruses(value);
            if value.kind() == "as_pattern"
                && let Some(alias) = value.child_by_field_name("alias")
            {
                self.bind_targets(alias);
            }
        }
    }

    fn bind_targets(&mut self, target: Node<'_>) {
        let mut names = Vec::new();
        target_names(target, self.text, &mut names);
        for name in names {
            self.bind(&name, BindingKind::Variable, None);
        }
    }

    fn assignment(&mut self, node: Node<'_>, conditional: bool) {
        let left = node.child_by_field_name("left");
        let right = node.child_by_field_name("right");
        if let Some(right) = right {
            match right.kind() {
                // `a = b = value`: the inner assignment binds too.
                "assignment" => self.assignment(right, conditional),
                _ => self.walruses(right),
            }
        }
        let Some(left) = left else { return };
        // An annotation without a value binds nothing.
        let Some(right) = right else { return };
        if self.text(left) == "__all__" {
            let value = if right.kind() == "assignment" { right.child_by_field_name("right") } else { Some(right) };
            let items = value.and_then(|v| self.all_items(v));
            self.all_op(items.map(AllOp::Set), conditional);
        }
        self.bind_targets(left);
    }

    fn augmented(&mut self, node: Node<'_>, conditional: bool) {
        let (Some(left), Some(right)) = (node.child_by_field_name("left"), node.child_by_field_name("right")) else {
            return;
        };
        self.walruses(right);
        if self.text(left) == "__all__" {
            let operator = node.child_by_field_name("operator").map(|o| self.text(o).to_string());
            let items = if operator.as_deref() == Some("+=") { self.all_items(right) } else { None };
            self.all_op(items.map(AllOp::Extend), conditional);
        }
        self.bind_targets(left);
    }

    /// `__all__.extend(...)`, `.append(...)`, `.remove(...)`.
    fn all_method_call(&mut self, call: Node<'_>, conditional: bool) {
        let Some(function) = call.child_by_field_name("function").filter(|f| f.kind() == "attribute") else {
            return;
        };
        let Some(object) = function.child_by_field_name("object") else { return };
        if self.text(object) != "__all__" {
            return;
        }
        let method = function.child_by_field_name("attribute").map(|a| self.text(a).to_string()).unwrap_or_default();
        let args: Vec<Node<'_>> = call
            .child_by_field_name("arguments")
            .map(|a| {
                let mut cursor = a.walk();
                a.named_children(&mut cursor).filter(|n| n.kind() != "comment").collect()
            })
            .unwrap_or_default();
        let op = match (method.as_str(), args.as_slice()) {
            ("extend", [arg]) => self.all_items(*arg).map(AllOp::Extend),
            ("append", [arg]) => string_value(*arg, self.text).map(|s| AllOp::Extend(vec![AllItem::Name(s)])),
            ("remove", [arg]) => string_value(*arg, self.text).map(AllOp::Remove),
            _ => None,
        };
        self.all_op(op, conditional);
    }

    fn all_op(&mut self, op: Option<AllOp>, conditional: bool) {
        let all = self.scope.dunder_all.get_or_insert_with(DunderAll::default);
        all.incomplete |= conditional;
        match op {
            Some(op) => all.ops.push(op),
            None => all.incomplete = true,
        }
    }

    /// The items of a static `__all__` value: a list or tuple of strings (with `*m.__all__`),
    /// `m.__all__`, or a `+` of those. `None` for anything else.
    fn all_items(&self, node: Node<'_>) -> Option<Vec<AllItem>> {
        match node.kind() {
            "list" | "tuple" | "parenthesized_expression" => {
                let mut items = Vec::new();
                let mut cursor = node.walk();
                for element in node.named_children(&mut cursor) {
                    match element.kind() {
                        "comment" => {}
                        "list_splat" => items.extend(self.all_items(element.named_child(0)?)?),
                        "string" | "concatenated_string" => items.push(AllItem::Name(string_value(element, self.text)?)),
                        _ if node.kind() == "parenthesized_expression" => items.extend(self.all_items(element)?),
                        _ => return None,
                    }
                }
                Some(items)
            }
            "attribute" => {
                let attribute = node.child_by_field_name("attribute")?;
                if self.text(attribute) != "__all__" {
                    return None;
                }
                let object = node.child_by_field_name("object")?;
                Some(vec![AllItem::ModuleAll(self.module_ref(object)?)])
            }
            "binary_operator" => {
                let operator = node.child_by_field_name("operator")?;
                if self.text(operator) != "+" {
                    return None;
                }
                let mut items = self.all_items(node.child_by_field_name("left")?)?;
                items.extend(self.all_items(node.child_by_field_name("right")?)?);
                Some(items)
            }
            _ => None,
        }
    }

    /// The module a name (or dotted name) refers to, through the import bindings so far.
    fn module_ref(&self, object: Node<'_>) -> Option<ModuleAllRef> {
        let dotted = self.text(object).split_whitespace().collect::<String>();
        let (head, rest) = match dotted.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (dotted.as_str(), None),
        };
        let origin = self.scope.names.get(head)?.origin.clone()?;
        let (module, attr) = match origin.name {
            // `import a.b` binds `a`: `a.b.__all__` names module `a.b`.
            None if origin.module.split('.').next() == Some(head) && rest.is_some() => {
                (format!("{head}.{}", rest.unwrap()), None)
            }
            None => (origin.module.clone(), rest.map(str::to_string)),
            Some(name) => (origin.module.clone(), Some(match rest {
                Some(rest) => format!("{name}.{rest}"),
                None => name,
            })),
        };
        Some(ModuleAllRef { module, attr })
    }

    fn import_statement(&mut self, node: Node<'_>) {
        let mut cursor = node.walk();
        for name in node.children_by_field_name("name", &mut cursor) {
            let Some(imported) = imported_name(name, self.text) else { continue };
            let (module, alias) = (imported.name, imported.asname);
            self.scope.runtime_imports.insert(ImportOrigin { module: module.clone(), name: None });
            match alias {
                Some(alias) => self.bind(&alias, BindingKind::Import, Some(ImportOrigin { module, name: None })),
                None => {
                    let head = module.split('.').next().unwrap_or(&module).to_string();
                    self.bind(&head, BindingKind::Import, Some(ImportOrigin { module: head.clone(), name: None }));
                }
            }
        }
    }

    fn import_from(&mut self, node: Node<'_>) {
        let module = if node.kind() == "future_import_statement" {
            "__future__".to_string()
        } else {
            let Some((_, module)) = from_target(node, self.text, &self.package) else { return };
            module
        };
        let mut cursor = node.walk();
        if node.children(&mut cursor).any(|c| c.kind() == "wildcard_import") {
            self.scope.runtime_imports.insert(ImportOrigin { module: module.clone(), name: None });
            if !self.scope.star_imports.contains(&module) {
                self.scope.star_imports.push(module);
            }
            return;
        }
        let mut cursor = node.walk();
        for name in node.children_by_field_name("name", &mut cursor) {
            let Some(imported_name) = imported_name(name, self.text) else { continue };
            let (imported, alias) = (imported_name.name, imported_name.asname);
            let origin = ImportOrigin { module: module.clone(), name: Some(imported.clone()) };
            self.scope.runtime_imports.insert(origin.clone());
            if imported == "__all__" && alias.is_none() {
                let items = vec![AllItem::ModuleAll(ModuleAllRef { module: module.clone(), attr: None })];
                self.all_op(Some(AllOp::Set(items)), false);
            }
            self.bind(alias.as_deref().unwrap_or(&imported), BindingKind::Import, Some(origin));
        }
    }

    /// Bind the targets of walrus expressions under `node` (comprehensions included: they bind
    /// in the enclosing scope), never inside lambdas.
    fn walruses(&mut self, node: Node<'_>) {
        if !node.is_named() || node.kind() == "lambda" {
            return;
        }
        if node.kind() == "named_expression"
            && let Some(name) = node.child_by_field_name("name")
        {
            let name = self.text(name).to_string();
            self.bind(&name, BindingKind::Variable, None);
        }
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            self.walruses(child);
        }
    }
}

/// A cheap textual test for the idioms that create module globals at run time.
fn writes_globals_dynamically(text: &str) -> bool {
    text.contains("globals()") || text.contains("sys.modules[__name__]") || text.contains("._convert_(")
}

/// Names bound by an assignment/`for`/`with`/`del` target.
fn target_names(node: Node<'_>, text: &str, out: &mut Vec<String>) {
    match node.kind() {
        "identifier" | "keyword_identifier" => out.push(node_text(node, text).to_string()),
        "pattern_list" | "tuple_pattern" | "list_pattern" | "list_splat_pattern" | "parenthesized_expression"
        | "tuple" | "list" | "expression_list" | "list_splat" | "as_pattern_target" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                target_names(child, text, out);
            }
        }
        _ => {}
    }
}

/// Capture names of a `match` case pattern.
fn capture_names(node: Node<'_>, text: &str, out: &mut Vec<String>) {
    match node.kind() {
        "dotted_name" => {
            let mut cursor = node.walk();
            let parts: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            if let [single] = parts.as_slice() {
                let name = node_text(*single, text);
                if name != "_" {
                    out.push(name.to_string());
                }
            }
        }
        "identifier" => {
            let name = node_text(node, text);
            if name != "_" {
                out.push(name.to_string());
            }
        }
        "class_pattern" => {
            // The first child names the class (a value, not a capture).
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor).skip(1) {
                capture_names(child, text, out);
            }
        }
        "keyword_pattern" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor).skip(1) {
                capture_names(child, text, out);
            }
        }
        "string" | "concatenated_string" | "integer" | "float" | "true" | "false" | "none" | "complex_pattern" => {}
        _ => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                capture_names(child, text, out);
            }
        }
    }
}
