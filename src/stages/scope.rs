//! The module scope: what a module's body does to its namespace when it runs, as a small
//! positionless program — bindings, deletions, star imports, `__all__` operations, imports
//! that load modules — with its control flow (`if`, `try`, loops, `match`, `raise`) kept and
//! its conditions kept *symbolic* ([`Cond`]). Deciding `sys.version_info` or `sys.platform`
//! tests needs the target, which is not an input of this parse-bound stage: the evaluation in
//! [`crate::stages::flow`] decides them, so a new target re-evaluates without re-parsing.
//!
//! What binds (CPython's run-time semantics): `def`/`class`, assignment targets (tuple and list
//! unpacking, starred, chained, annotated *with* a value, augmented, walrus — also inside
//! comprehensions, defaults, decorators and class bases, which bind in the module scope),
//! `for` and `with … as` targets, `type` aliases, `match` captures, import bindings (`import
//! a.b` binds `a`, `import a.b as c` binds `c`, `from x import y as z` binds `z`). `except …
//! as e` binds `e` only until the handler ends (CPython deletes it). `del` removes names.
//!
//! Beyond the statements, the scope records what a static reading must know about the
//! module's functions: registration decorators (a function that appends the decorated
//! object's `__name__` to the `__all__` of the object's module), helpers that extend the
//! global `__all__` from a module argument's `__all__`, a PEP 562 `__getattr__` shim, names
//! functions declare `global`, and whether anything writes the module's globals or `__all__`
//! in a way no static reading can follow.

use crate::stages::parse::field;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tree_sitter::Node;

use crate::db::{Db, SourceFile};
use crate::module_path::package_of;
use crate::stages::imports::{from_target, imported_name};
use crate::stages::parse::parsed_module;
use crate::stages::text::{identifier, is_main_guard, node_text, string_value};

/// Bump when the scope analysis changes.
pub const SCOPE_VERSION: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    Function,
    Class,
    Variable,
    Import,
    /// Brought in by `from m import *` (the origin names the star-imported module).
    StarImport,
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
    /// Set for import bindings.
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

/// One operation on the module's `__all__`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllOp {
    Set(Vec<AllItem>),
    Extend(Vec<AllItem>),
    /// Extend with the items not already present (`if a not in __all__: __all__.append(a)`).
    ExtendUnique(Vec<AllItem>),
    Remove(String),
    /// A registration decorator appended a name, creating `__all__` when absent.
    Register(String),
    /// An operation no static reading can follow.
    Unknown,
}

/// `<` `<=` `==` `!=` `>` `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Lt,
    Le,
    Eq,
    Ne,
    Gt,
    Ge,
}

impl CmpOp {
    fn parse(token: &str) -> Option<CmpOp> {
        Some(match token {
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`a < b` is `b > a`).
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Lt => ordering == Less,
            CmpOp::Le => ordering != Greater,
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
            CmpOp::Gt => ordering == Greater,
            CmpOp::Ge => ordering != Less,
        }
    }
}

/// Which part of `sys.version_info` a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionPart {
    /// `sys.version_info` itself (a 5-tuple).
    Whole,
    /// `sys.version_info[i]`, `.major` (0), `.minor` (1).
    Item(usize),
    /// `sys.version_info[:n]`.
    Prefix(usize),
}

/// A string of the target a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetString {
    /// `sys.platform`
    Platform,
    /// `os.name`
    OsName,
}

/// A module-level condition, kept symbolic: the evaluation decides it for the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    /// `True`, `False`, `0`, `1`, `TYPE_CHECKING` (false at run time), `__name__ ==
    /// "__main__"` (false on import).
    Const(bool),
    Version { part: VersionPart, op: CmpOp, value: Vec<i64> },
    /// `sys.platform == "x"`, `in (...)`, `.startswith(...)`, `[:n] == "x"`; `negated` for
    /// `!=` and `not in`.
    Str { of: TargetString, prefix: Option<usize>, starts_with: bool, values: Vec<String>, negated: bool },
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// Anything the tool does not decide.
    Unknown,
}

/// A decorator expression, resolved as far as this module can: a module-level function of
/// this module, a name imported from another module, or an attribute of an imported module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DecoratorRef {
    Local(String),
    /// `from module import name` (possibly through `import module` and `module.name`).
    Imported { module: String, name: String },
    /// A decorator that is called (`@d(...)`) or otherwise not a plain reference; its last
    /// dotted part.
    Other(String),
}

/// One statement of the module body, as far as the namespace is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stmt {
    /// A name is bound. `maybe`: only on some evaluation orders of the statement (a walrus in
    /// the right operand of `and`/`or`, a branch of a conditional expression, a
    /// comprehension body).
    Bind { name: String, binding: Binding, maybe: bool },
    Delete(String),
    /// `from module import *`.
    Star(String),
    /// Importing `module` (absolute; a candidate — the evaluation keeps the ones that exist).
    Load(String),
    All(AllOp),
    /// A `def`/`class` with decorators (already bound by a preceding `Bind`).
    Decorated { name: String, decorators: Vec<DecoratorRef> },
    /// A module-level call of a function this module defines, with the module each argument
    /// names (when it names one).
    Call { function: String, args: Vec<Option<ModuleAllRef>> },
    /// A module-level call of an imported function (a registration decorator called directly
    /// adds a name the tool cannot know).
    CallImported(DecoratorRef),
    If { branches: Vec<(Cond, Vec<Stmt>)>, orelse: Option<Vec<Stmt>> },
    Try { body: Vec<Stmt>, handlers: Vec<Vec<Stmt>>, orelse: Vec<Stmt>, finally: Vec<Stmt> },
    /// `for`/`while`: the body runs any number of times (at least once when `runs_once`).
    Loop { body: Vec<Stmt>, orelse: Vec<Stmt>, runs_once: bool },
    /// `match`: each case may run; `exhaustive` when the last case always matches.
    Match { cases: Vec<Vec<Stmt>>, exhaustive: bool },
    /// `raise`: the path ends (importing the module fails there).
    Raise,
}

/// What a module-level `__getattr__` (PEP 562) does when `from m import *` asks it for
/// `__all__` (it does when the module binds no `__all__`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GetattrShim {
    /// It answers only names known statically (none of them `__all__`) and raises
    /// `AttributeError` otherwise: the star import falls back to the public names.
    NoAll,
    /// It delegates to another module (`getattr(m, name)`, `m.__dict__[name]`): `__all__` is
    /// that module's.
    Delegate(ModuleAllRef),
    /// Anything else.
    Unknown,
}

/// Everything the module body does to its namespace, and what its functions may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleScope {
    pub body: Vec<Stmt>,
    /// Absolute targets of `from m import *` anywhere at module level, in order, deduplicated.
    pub star_imports: Vec<String>,
    /// Why the module writes its globals in a way no static reading sees (`globals()[…] = …`,
    /// `globals().update(…)`, `exec` into the module, `sys.modules[__name__]`, enum
    /// `_convert_`).
    pub dynamic_globals: Option<String>,
    /// Why `__all__` is changed where no static reading follows it: inside a function that is not
    /// a recognised helper, through `globals()`, or by a decorator that looks like a
    /// registration decorator but cannot be resolved.
    pub all_dynamic: Option<String>,
    /// Module-level functions that are registration decorators.
    pub registrars: BTreeSet<String>,
    /// Module-level functions that extend the global `__all__` from their first argument's
    /// `__all__`; `true` when they skip names already present.
    pub all_helpers: BTreeMap<String, bool>,
    /// Names module-level functions declare `global` and may bind when called.
    pub function_globals: BTreeMap<String, Vec<String>>,
    /// The module-level `__getattr__`, when there is one.
    pub getattr: Option<GetattrShim>,
    /// The names a guarded `__getattr__` answers (`if name == "x":`, `if name in {…}:`).
    pub getattr_answers: BTreeSet<String>,
    /// The module has an `if __name__ == "__main__":` block (an entry point).
    pub has_main_guard: bool,
    /// Modules registered in `sys.modules` under a literal name (`sys.modules["os.path"] =
    /// path`): `import os.path` resolves to this module.
    pub registered_modules: BTreeSet<String>,
}

/// The module scope of `file` (one walk of the module-level statements). Its memos are the
/// largest of a build: a one-shot build tracks their use ([`track_module_scopes`]) to drop
/// them all once nothing reads them ([`release_module_scopes`]). Declared with capacity 0:
/// other workspaces track and evict nothing.
#[salsa::tracked(returns(ref), lru = 0)]
pub fn module_scope(db: &dyn Db, file: SourceFile) -> ModuleScope {
    crate::stages::cached::per_file(db, file, "module_scope", SCOPE_VERSION, true, || {
        let package = package_of(file.module(db), file.is_package(db)).to_string();
        let text = crate::db::source_text(db, file);
        let root = parsed_module(db, file).root();
        let mut walker = ScopeWalker {
            text,
            package,
            origins: BTreeMap::new(),
            literals: BTreeMap::new(),
            item_aliases: BTreeMap::new(),
            is_package: file.is_package(db),
            answers: std::cell::RefCell::new(BTreeSet::new()),
            scope: ModuleScope::default(),
        };
        let body = walker.block(root);
        walker.scope.body = body;
        walker.dynamic_writes(root);
        walker.scope
    })
}

/// Track every read of a module scope (an LRU capacity no build reaches), so that
/// [`release_module_scopes`] can evict them.
pub fn track_module_scopes(db: &mut crate::db::Database) {
    module_scope::set_lru_capacity(db, 1 << 30);
}

/// Drop the memoized module scopes (all but one) and stop tracking: a scope asked for again is
/// recomputed, from a parse. A one-shot build does once the rows are keyed (see
/// [`crate::build`]); on the generated 20k tree the scopes held ~80 MB.
pub fn release_module_scopes(db: &mut crate::db::Database) {
    module_scope::set_lru_capacity(db, 1);
    salsa::Database::trigger_lru_eviction(db);
    module_scope::set_lru_capacity(db, 0);
}

/// The absolute targets of `file`'s star imports, in order (a narrow view for the record).
#[salsa::tracked(returns(ref))]
pub fn star_imports(db: &dyn Db, file: SourceFile) -> Vec<String> {
    module_scope(db, file).star_imports.clone()
}

/// Registration-decorator-like names: an unresolved decorator with one of these names may
/// add to `__all__` (the `atpublic` package's `@public`, and the like).
pub const REGISTRAR_NAMES: &[&str] = &["public", "export", "exported", "export_symbol", "api_export", "register_public"];

struct ScopeWalker<'a> {
    text: &'a str,
    package: String,
    /// Import origins of names bound so far, in source order (resolves `m.__all__`, decorators
    /// and helper arguments).
    origins: BTreeMap<String, Option<ImportOrigin>>,
    /// Module-level names assigned a literal collection of strings (their elements or keys).
    literals: BTreeMap<String, Vec<String>>,
    /// Module-level names assigned a value `__all__` items can be read from (`_ops = ("a",)`,
    /// `_base_all = base.__all__`), until they are rebound or mutated.
    item_aliases: BTreeMap<String, Vec<AllItem>>,
    /// This module is a package (`__init__`): its unbound names may be its submodules.
    is_package: bool,
    /// Names the guards of a `__getattr__` test, collected while reading it.
    answers: std::cell::RefCell<BTreeSet<String>>,
    scope: ModuleScope,
}

impl ScopeWalker<'_> {
    fn text(&self, node: Node<'_>) -> &str {
        node_text(node, self.text)
    }

    fn ident(&self, node: Node<'_>) -> String {
        identifier(node_text(node, self.text)).into_owned()
    }

    fn bind(&mut self, out: &mut Vec<Stmt>, name: String, kind: BindingKind, origin: Option<ImportOrigin>, maybe: bool) {
        if name == "__all__" {
            // Bound by something other than a recognised `__all__` assignment.
            out.push(Stmt::All(AllOp::Unknown));
            return;
        }
        self.origins.insert(name.clone(), origin.clone());
        self.item_aliases.remove(&name);
        self.literals.remove(&name);
        out.push(Stmt::Bind { name, binding: Binding { kind, origin }, maybe });
    }

    fn block(&mut self, node: Node<'_>) -> Vec<Stmt> {
        let mut out = Vec::new();
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            self.statement(child, &mut out);
        }
        out
    }

    /// The body of a clause (`else:`, `finally:`, a loop or handler): its block.
    fn clause_body(&mut self, node: Node<'_>) -> Vec<Stmt> {
        let mut out = Vec::new();
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.kind() == "block" {
                out.extend(self.block(child));
            }
        }
        out
    }

    fn statement(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        match node.kind() {
            "function_definition" | "class_definition" => self.definition(node, &[], out),
            "decorated_definition" => {
                let mut decorators = Vec::new();
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    if child.kind() == "decorator" {
                        self.walruses(child, false, out);
                        if let Some(expression) = child.named_child(0) {
                            decorators.push(self.decorator_ref(expression));
                        }
                    }
                }
                if let Some(definition) = node.child_by_field_id(field::DEFINITION.get()) {
                    self.definition(definition, &decorators, out);
                }
            }
            "expression_statement" => {
                let mut cursor = node.walk();
                for child in node.named_children(&mut cursor) {
                    match child.kind() {
                        "assignment" => self.assignment(child, out),
                        "augmented_assignment" => self.augmented(child, out),
                        "call" => {
                            self.walruses(child, false, out);
                            self.call_statement(child, out);
                        }
                        _ => self.walruses(child, false, out),
                    }
                }
            }
            "import_statement" => self.import_statement(node, out),
            "import_from_statement" | "future_import_statement" => self.import_from(node, out),
            "delete_statement" => {
                let mut cursor = node.walk();
                for target in node.named_children(&mut cursor) {
                    let mut names = Vec::new();
                    target_names(target, self.text, &mut names);
                    for name in names {
                        if name == "__all__" {
                            out.push(Stmt::All(AllOp::Unknown));
                        } else {
                            out.push(Stmt::Delete(name));
                        }
                    }
                }
            }
            "raise_statement" => out.push(Stmt::Raise),
            "if_statement" => self.if_statement(node, out),
            "for_statement" => {
                if let Some(right) = node.child_by_field_id(field::RIGHT.get()) {
                    self.walruses(right, false, out);
                }
                let runs_once = node.child_by_field_id(field::RIGHT.get()).is_some_and(|r| self.runs_once(r));
                let mut body = Vec::new();
                if let Some(left) = node.child_by_field_id(field::LEFT.get()) {
                    self.bind_targets(left, &mut body);
                }
                body.extend(node.child_by_field_id(field::BODY.get()).map(|b| self.block(b)).unwrap_or_default());
                let orelse = node.child_by_field_id(field::ALTERNATIVE.get()).map(|e| self.clause_body(e)).unwrap_or_default();
                out.push(Stmt::Loop { body, orelse, runs_once });
            }
            "while_statement" => {
                let condition = node.child_by_field_id(field::CONDITION.get());
                if let Some(condition) = condition {
                    self.walruses(condition, false, out);
                }
                let decided = condition.map(|c| self.cond(c));
                let orelse = node.child_by_field_id(field::ALTERNATIVE.get()).map(|e| self.clause_body(e)).unwrap_or_default();
                if decided == Some(Cond::Const(false)) {
                    // `while False:` never runs its body; its `else:` runs.
                    out.extend(orelse);
                    return;
                }
                let runs_once = decided == Some(Cond::Const(true));
                let body = node.child_by_field_id(field::BODY.get()).map(|b| self.block(b)).unwrap_or_default();
                out.push(Stmt::Loop { body, orelse, runs_once });
            }
            "with_statement" => {
                let mut cursor = node.walk();
                for child in node.children(&mut cursor) {
                    match child.kind() {
                        "with_clause" => self.with_clause(child, out),
                        "block" => out.extend(self.block(child)),
                        _ => {}
                    }
                }
            }
            "try_statement" => self.try_statement(node, out),
            "match_statement" => self.match_statement(node, out),
            "type_alias_statement" => {
                if let Some(left) = node.child_by_field_id(field::LEFT.get()) {
                    let mut names = Vec::new();
                    target_names(left, self.text, &mut names);
                    if let Some(name) = names.first().cloned() {
                        self.bind(out, name, BindingKind::Variable, None, false);
                    }
                }
            }
            "block" | "ERROR" => {
                let stmts = self.block(node);
                out.extend(stmts);
            }
            _ => {}
        }
    }

    fn definition(&mut self, node: Node<'_>, decorators: &[DecoratorRef], out: &mut Vec<Stmt>) {
        let Some(name_node) = node.child_by_field_id(field::NAME.get()) else { return };
        let name = self.ident(name_node);
        let is_class = node.kind() == "class_definition";
        // Defaults and class bases run at module level: walruses there bind.
        if let Some(parameters) = node.child_by_field_id(field::PARAMETERS.get()) {
            self.walruses(parameters, false, out);
        }
        if let Some(superclasses) = node.child_by_field_id(field::SUPERCLASSES.get()) {
            self.walruses(superclasses, false, out);
        }
        if !is_class {
            self.analyze_function(node, &name);
        }
        let kind = if is_class { BindingKind::Class } else { BindingKind::Function };
        self.bind(out, name.clone(), kind, None, false);
        if !decorators.is_empty() {
            for decorator in decorators {
                if let DecoratorRef::Other(last) = decorator
                    && REGISTRAR_NAMES.contains(&last.as_str())
                {
                    self.scope.all_dynamic.get_or_insert_with(|| format!("decorator @{last} may add to __all__ and cannot be resolved"));
                }
            }
            out.push(Stmt::Decorated { name, decorators: decorators.to_vec() });
        }
    }

    fn decorator_ref(&self, expression: Node<'_>) -> DecoratorRef {
        let last = |text: &str| identifier(text.rsplit('.').next().unwrap_or(text).trim()).into_owned();
        match expression.kind() {
            "identifier" => {
                let name = self.ident(expression);
                match self.origins.get(&name) {
                    Some(Some(ImportOrigin { module, name: Some(imported) })) => {
                        DecoratorRef::Imported { module: module.clone(), name: imported.clone() }
                    }
                    Some(None) => DecoratorRef::Local(name),
                    _ => DecoratorRef::Other(name),
                }
            }
            "attribute" => {
                let (Some(object), Some(attribute)) =
                    (expression.child_by_field_id(field::OBJECT.get()), expression.child_by_field_id(field::ATTRIBUTE.get()))
                else {
                    return DecoratorRef::Other(last(self.text(expression)));
                };
                let attribute = self.ident(attribute);
                match self.module_ref(object) {
                    Some(reference) => DecoratorRef::Imported {
                        module: match reference.attr {
                            Some(attr) => format!("{}.{attr}", reference.module),
                            None => reference.module,
                        },
                        name: attribute,
                    },
                    None => DecoratorRef::Other(attribute),
                }
            }
            "call" => {
                let function = expression.child_by_field_id(field::FUNCTION.get()).map(|f| self.text(f)).unwrap_or("");
                DecoratorRef::Other(format!("{}()", last(function)))
            }
            _ => DecoratorRef::Other(last(self.text(expression))),
        }
    }

    fn try_statement(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let (mut body, mut handlers, mut orelse, mut finally) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            match child.kind() {
                "block" => body = self.block(child),
                "except_clause" | "except_group_clause" => {
                    let mut handler = Vec::new();
                    let mut aliases = Vec::new();
                    let mut inner = child.walk();
                    for part in child.children(&mut inner) {
                        match part.kind() {
                            "as_pattern" => {
                                if let Some(alias) = part.child_by_field_id(field::ALIAS.get()) {
                                    target_names(alias, self.text, &mut aliases);
                                }
                            }
                            "block" => {
                                for alias in &aliases {
                                    self.bind(&mut handler, alias.clone(), BindingKind::Variable, None, false);
                                }
                                handler.extend(self.block(part));
                            }
                            _ => {}
                        }
                    }
                    if let Some(alias) = child.child_by_field_id(field::ALIAS.get()) {
                        target_names(alias, self.text, &mut aliases);
                    }
                    // CPython deletes the alias when the handler ends.
                    for alias in aliases {
                        handler.push(Stmt::Delete(alias));
                    }
                    handlers.push(handler);
                }
                "else_clause" => orelse = self.clause_body(child),
                "finally_clause" => finally = self.clause_body(child),
                _ => {}
            }
        }
        out.push(Stmt::Try { body, handlers, orelse, finally });
    }

    fn match_statement(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let mut cases = Vec::new();
        let mut exhaustive = false;
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.kind() == "block" {
                let mut inner = child.walk();
                for case in child.named_children(&mut inner) {
                    if case.kind() != "case_clause" {
                        continue;
                    }
                    let mut stmts = Vec::new();
                    let mut irrefutable = false;
                    let mut guarded = false;
                    let mut parts = case.walk();
                    for part in case.children(&mut parts) {
                        match part.kind() {
                            "case_pattern" => {
                                let mut names = Vec::new();
                                capture_names(part, self.text, &mut names);
                                for name in names {
                                    self.bind(&mut stmts, name, BindingKind::Variable, None, false);
                                }
                                let pattern = self.text(part).trim();
                                irrefutable = part.named_child_count() <= 1
                                    && (pattern == "_" || pattern.chars().all(|c| c.is_alphanumeric() || c == '_'));
                            }
                            "if_clause" => guarded = true,
                            "block" => stmts.extend(self.block(part)),
                            _ => {}
                        }
                    }
                    exhaustive = irrefutable && !guarded;
                    cases.push(stmts);
                }
            } else if child.is_named() {
                self.walruses(child, false, out);
            }
        }
        out.push(Stmt::Match { cases, exhaustive });
    }

    fn if_statement(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let mut branches = Vec::new();
        let mut orelse = None;
        if let Some(condition) = node.child_by_field_id(field::CONDITION.get()) {
            self.walruses(condition, false, out);
            self.scope.has_main_guard |= is_main_guard(condition, self.text);
            let body = node.child_by_field_id(field::CONSEQUENCE.get()).map(|b| self.block(b)).unwrap_or_default();
            branches.push((self.cond(condition), body));
        }
        let mut cursor = node.walk();
        for part in node.children(&mut cursor) {
            match part.kind() {
                "elif_clause" => {
                    let condition = part.child_by_field_id(field::CONDITION.get());
                    let mut body = Vec::new();
                    // A walrus in an `elif` condition binds only when that test runs.
                    if let Some(c) = condition {
                        self.walruses(c, true, out);
                    }
                    if let Some(b) = part.child_by_field_id(field::CONSEQUENCE.get()) {
                        body.extend(self.block(b));
                    }
                    branches.push((condition.map_or(Cond::Unknown, |c| self.cond(c)), body));
                }
                "else_clause" => orelse = Some(self.clause_body(part)),
                _ => {}
            }
        }
        out.push(Stmt::If { branches, orelse });
    }

    /// A condition, symbolically.
    fn cond(&self, node: Node<'_>) -> Cond {
        match node.kind() {
            "parenthesized_expression" => node.named_child(0).map_or(Cond::Unknown, |inner| self.cond(inner)),
            "true" => Cond::Const(true),
            "false" | "none" => Cond::Const(false),
            "integer" => self.text(node).replace('_', "").parse::<i64>().map_or(Cond::Unknown, |v| Cond::Const(v != 0)),
            "identifier" if self.text(node) == "TYPE_CHECKING" => Cond::Const(false),
            "attribute"
                if node.child_by_field_id(field::ATTRIBUTE.get()).is_some_and(|a| self.text(a) == "TYPE_CHECKING") =>
            {
                Cond::Const(false)
            }
            "not_operator" => node
                .child_by_field_id(field::ARGUMENT.get())
                .map_or(Cond::Unknown, |arg| Cond::Not(Box::new(self.cond(arg)))),
            "boolean_operator" => {
                let (Some(left), Some(right)) = (node.child_by_field_id(field::LEFT.get()), node.child_by_field_id(field::RIGHT.get()))
                else {
                    return Cond::Unknown;
                };
                let operator = node.child_by_field_id(field::OPERATOR.get()).map(|o| self.text(o)).unwrap_or("");
                match operator {
                    "and" => Cond::And(vec![self.cond(left), self.cond(right)]),
                    "or" => Cond::Or(vec![self.cond(left), self.cond(right)]),
                    _ => Cond::Unknown,
                }
            }
            "comparison_operator" if is_main_guard(node, self.text) => Cond::Const(false),
            "comparison_operator" => self.comparison(node).unwrap_or(Cond::Unknown),
            "call" => self.startswith(node).unwrap_or(Cond::Unknown),
            _ => Cond::Unknown,
        }
    }

    /// `sys.version_info … (3, 8)`, `sys.platform == "win32"`, `os.name != "nt"`, `in` tests.
    fn comparison(&self, node: Node<'_>) -> Option<Cond> {
        let mut cursor = node.walk();
        let operands: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
        let [left, right] = operands.as_slice() else { return None };
        let operator = node.child_by_field_id(field::OPERATORS.get()).map(|o| o.kind()).or_else(|| node.child(1).map(|o| o.kind()))?;
        if let Some(part) = self.version_part(*left) {
            let op = CmpOp::parse(operator)?;
            return Some(Cond::Version { part, op, value: int_tuple(*right, self.text)? });
        }
        if let Some(part) = self.version_part(*right) {
            let op = CmpOp::parse(operator)?.flipped();
            return Some(Cond::Version { part, op, value: int_tuple(*left, self.text)? });
        }
        let (subject, other) = match self.target_string(*left) {
            Some(subject) => (subject, *right),
            None => (self.target_string(*right)?, *left),
        };
        let (of, prefix) = subject;
        let (values, negated) = match operator {
            "==" => (vec![string_value(other, self.text)?], false),
            "!=" => (vec![string_value(other, self.text)?], true),
            "in" if self.target_string(*left).is_some() => (string_items(other, self.text)?, false),
            "not in" if self.target_string(*left).is_some() => (string_items(other, self.text)?, true),
            _ => return None,
        };
        Some(Cond::Str { of, prefix, starts_with: false, values, negated })
    }

    /// `sys.platform.startswith("linux")` / `os.name.startswith(("a", "b"))`.
    fn startswith(&self, node: Node<'_>) -> Option<Cond> {
        let function = node.child_by_field_id(field::FUNCTION.get()).filter(|f| f.kind() == "attribute")?;
        if self.text(function.child_by_field_id(field::ATTRIBUTE.get())?) != "startswith" {
            return None;
        }
        let (of, prefix) = self.target_string(function.child_by_field_id(field::OBJECT.get())?)?;
        let arguments = node.child_by_field_id(field::ARGUMENTS.get())?;
        let mut cursor = arguments.walk();
        let args: Vec<Node<'_>> = arguments.named_children(&mut cursor).filter(|n| n.kind() != "comment").collect();
        let [arg] = args.as_slice() else { return None };
        let values = match string_value(*arg, self.text) {
            Some(value) => vec![value],
            None => string_items(*arg, self.text)?,
        };
        Some(Cond::Str { of, prefix, starts_with: true, values, negated: false })
    }

    /// The compact text of an expression with its head name replaced by what it was imported
    /// as (`_os.name` after `import os as _os` is `os.name`; `platform` after `from sys import
    /// platform` is `sys.platform`).
    fn canonical(&self, node: Node<'_>) -> String {
        let text: String = self.text(node).chars().filter(|c| !c.is_whitespace()).collect();
        let split = text.find(['.', '[']).unwrap_or(text.len());
        let (head, rest) = text.split_at(split);
        match self.origins.get(head) {
            Some(Some(ImportOrigin { module, name: None })) => format!("{module}{rest}"),
            Some(Some(ImportOrigin { module, name: Some(name) })) => format!("{module}.{name}{rest}"),
            _ => text,
        }
    }

    fn version_part(&self, node: Node<'_>) -> Option<VersionPart> {
        let text = self.canonical(node);
        let rest = text.strip_prefix("sys.version_info")?;
        match rest {
            "" => Some(VersionPart::Whole),
            ".major" | "[0]" => Some(VersionPart::Item(0)),
            ".minor" | "[1]" => Some(VersionPart::Item(1)),
            _ => {
                let n = rest.strip_prefix("[:")?.strip_suffix(']')?.parse().ok()?;
                Some(VersionPart::Prefix(n))
            }
        }
    }

    fn target_string(&self, node: Node<'_>) -> Option<(TargetString, Option<usize>)> {
        let text = self.canonical(node);
        let (of, rest) = if let Some(rest) = text.strip_prefix("sys.platform") {
            (TargetString::Platform, rest)
        } else if let Some(rest) = text.strip_prefix("os.name") {
            (TargetString::OsName, rest)
        } else {
            return None;
        };
        match rest {
            "" => Some((of, None)),
            _ => Some((of, Some(rest.strip_prefix("[:")?.strip_suffix(']')?.parse().ok()?))),
        }
    }

    /// Whether iterating over `node` runs a loop body at least once: a non-empty literal, a
    /// name assigned one, or `range(n)` with a positive literal `n`.
    fn runs_once(&self, node: Node<'_>) -> bool {
        match node.kind() {
            "identifier" => self.literals.get(self.text(node)).is_some_and(|items| !items.is_empty()),
            "call" => {
                let compact: String = self.text(node).chars().filter(|c| !c.is_whitespace()).collect();
                compact
                    .strip_prefix("range(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.replace('_', "").parse::<i64>().ok())
                    .is_some_and(|n| n > 0)
            }
            _ => non_empty_literal(node),
        }
    }

    fn with_clause(&mut self, clause: Node<'_>, out: &mut Vec<Stmt>) {
        let mut cursor = clause.walk();
        for item in clause.named_children(&mut cursor) {
            let Some(value) = item.child_by_field_id(field::VALUE.get()) else { continue };
            self.walruses(value, false, out);
            if value.kind() == "as_pattern"
                && let Some(alias) = value.child_by_field_id(field::ALIAS.get())
            {
                self.bind_targets(alias, out);
            }
        }
    }

    fn bind_targets(&mut self, target: Node<'_>, out: &mut Vec<Stmt>) {
        let mut names = Vec::new();
        target_names(target, self.text, &mut names);
        for name in names {
            self.bind(out, name, BindingKind::Variable, None, false);
        }
    }

    fn assignment(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let left = node.child_by_field_id(field::LEFT.get());
        let right = node.child_by_field_id(field::RIGHT.get());
        if let Some(right) = right {
            match right.kind() {
                // `a = b = value`: the inner assignment binds too (its value first).
                "assignment" => self.assignment(right, out),
                _ => {
                    self.walruses(right, false, out);
                    if right.kind() == "call" {
                        self.call_statement(right, out);
                    }
                }
            }
        }
        let Some(left) = left else { return };
        // An annotation without a value binds nothing.
        let Some(right) = right else { return };
        let value = if right.kind() == "assignment" { innermost_value(right) } else { Some(right) };
        if self.text(left) == "__all__" {
            let items = value.and_then(|v| self.all_items(v));
            out.push(Stmt::All(items.map_or(AllOp::Unknown, AllOp::Set)));
            return;
        }
        let literal = (left.kind() == "identifier").then(|| value.and_then(|v| literal_strings(v, self.text))).flatten();
        let items = (left.kind() == "identifier").then(|| value.and_then(|v| self.all_items(v))).flatten();
        if left.kind() == "subscript" && self.text(left).replace(char::is_whitespace, "").starts_with("sys.modules[") {
            if let Some(key) = left.child_by_field_id(field::SUBSCRIPT.get()).and_then(|k| string_value(k, self.text)) {
                self.scope.registered_modules.insert(key);
            } else {
                if self.text(left).contains("__name__") {
                    self.scope.dynamic_globals.get_or_insert_with(|| "sys.modules[__name__] is replaced".to_string());
                }
            }
        }
        self.bind_targets(left, out);
        if let Some(literal) = literal {
            self.literals.insert(self.ident(left), literal);
        }
        if let Some(items) = items {
            self.item_aliases.insert(self.ident(left), items);
        }
    }

    fn augmented(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let (Some(left), Some(right)) = (node.child_by_field_id(field::LEFT.get()), node.child_by_field_id(field::RIGHT.get())) else {
            return;
        };
        self.walruses(right, false, out);
        if self.text(left) == "__all__" {
            let operator = node.child_by_field_id(field::OPERATOR.get()).map(|o| self.text(o).to_string());
            let items = if operator.as_deref() == Some("+=") { self.all_items(right) } else { None };
            out.push(Stmt::All(items.map_or(AllOp::Unknown, AllOp::Extend)));
            return;
        }
        self.bind_targets(left, out);
    }

    /// A call as a statement (or the value of an assignment): `__all__` methods, calls of
    /// this module's helpers and of functions that declare globals.
    fn call_statement(&mut self, call: Node<'_>, out: &mut Vec<Stmt>) {
        let Some(function) = call.child_by_field_id(field::FUNCTION.get()) else { return };
        let args: Vec<Node<'_>> = call
            .child_by_field_id(field::ARGUMENTS.get())
            .map(|a| {
                let mut cursor = a.walk();
                a.named_children(&mut cursor).filter(|n| n.kind() != "comment").collect()
            })
            .unwrap_or_default();
        if function.kind() == "identifier" {
            let name = self.ident(function);
            match self.origins.get(&name) {
                Some(None) => {
                    let args = args.iter().map(|a| self.module_ref(*a)).collect();
                    out.push(Stmt::Call { function: name, args });
                }
                Some(Some(_)) => out.push(Stmt::CallImported(self.decorator_ref(function))),
                None => {}
            }
            return;
        }
        if function.kind() == "attribute"
            && function.child_by_field_id(field::OBJECT.get()).is_some_and(|o| self.text(o) != "__all__")
            && let callee @ DecoratorRef::Imported { .. } = self.decorator_ref(function)
        {
            out.push(Stmt::CallImported(callee));
        }
        if function.kind() != "attribute" {
            return;
        }
        let Some(object) = function.child_by_field_id(field::OBJECT.get()) else { return };
        if self.text(object) != "__all__" {
            // A method call may mutate the object: it is no longer a known value.
            if object.kind() == "identifier" {
                let name = self.ident(object);
                self.item_aliases.remove(&name);
                self.literals.remove(&name);
            }
            return;
        }
        let method = function.child_by_field_id(field::ATTRIBUTE.get()).map(|a| self.text(a).to_string()).unwrap_or_default();
        let op = match (method.as_str(), args.as_slice()) {
            ("extend", [arg]) => self.all_items(*arg).map(AllOp::Extend),
            ("append", [arg]) => string_value(*arg, self.text).map(|s| AllOp::Extend(vec![AllItem::Name(s)])),
            ("remove", [arg]) => string_value(*arg, self.text).map(AllOp::Remove),
            // Reading methods leave `__all__` as it is.
            ("index" | "count" | "copy", _) => return,
            _ => None,
        };
        out.push(Stmt::All(op.unwrap_or(AllOp::Unknown)));
    }

    /// The items of a static `__all__` value: a list or tuple of strings (with `*m.__all__`),
    /// `m.__all__`, or a `+` of those. `None` for anything else.
    fn all_items(&self, node: Node<'_>) -> Option<Vec<AllItem>> {
        match node.kind() {
            "identifier" => self.item_aliases.get(&self.ident(node)).cloned(),
            "list" | "tuple" | "parenthesized_expression" | "expression_list" => {
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
                let attribute = node.child_by_field_id(field::ATTRIBUTE.get())?;
                if self.text(attribute) != "__all__" {
                    return None;
                }
                let object = node.child_by_field_id(field::OBJECT.get())?;
                Some(vec![AllItem::ModuleAll(self.module_ref(object)?)])
            }
            "binary_operator" => {
                let operator = node.child_by_field_id(field::OPERATOR.get())?;
                if self.text(operator) != "+" {
                    return None;
                }
                let mut items = self.all_items(node.child_by_field_id(field::LEFT.get())?)?;
                items.extend(self.all_items(node.child_by_field_id(field::RIGHT.get())?)?);
                Some(items)
            }
            _ => None,
        }
    }

    /// The module a name (or dotted name) refers to, through the import bindings so far.
    fn module_ref(&self, object: Node<'_>) -> Option<ModuleAllRef> {
        if !matches!(object.kind(), "identifier" | "attribute") {
            return None;
        }
        let dotted: String = self.text(object).split_whitespace().collect::<String>();
        let dotted = identifier(&dotted).into_owned();
        let (head, rest) = match dotted.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (dotted.as_str(), None),
        };
        let origin = match self.origins.get(head) {
            Some(origin) => origin.clone()?,
            // In a package's `__init__`, an unbound name may be a submodule (loaded by a
            // `from .x import *` or a relative import): the evaluation checks it exists.
            None if self.is_package => {
                return Some(ModuleAllRef { module: self.package.clone(), attr: Some(dotted.clone()) });
            }
            None => return None,
        };
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

    fn import_statement(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let mut cursor = node.walk();
        for name in node.children_by_field_id(*field::NAME, &mut cursor) {
            let Some(imported) = imported_name(name, self.text) else { continue };
            let (module, alias) = (identifier(&imported.name).into_owned(), imported.asname.map(|a| identifier(&a).into_owned()));
            out.push(Stmt::Load(module.clone()));
            match alias {
                Some(alias) => self.bind(out, alias, BindingKind::Import, Some(ImportOrigin { module, name: None }), false),
                None => {
                    let head = module.split('.').next().unwrap_or(&module).to_string();
                    self.bind(out, head.clone(), BindingKind::Import, Some(ImportOrigin { module: head, name: None }), false);
                }
            }
        }
    }

    fn import_from(&mut self, node: Node<'_>, out: &mut Vec<Stmt>) {
        let module = if node.kind() == "future_import_statement" {
            "__future__".to_string()
        } else {
            let Some((_, module)) = from_target(node, self.text, &self.package) else { return };
            identifier(&module).into_owned()
        };
        out.push(Stmt::Load(module.clone()));
        let mut cursor = node.walk();
        if node.children(&mut cursor).any(|c| c.kind() == "wildcard_import") {
            if !self.scope.star_imports.contains(&module) {
                self.scope.star_imports.push(module.clone());
            }
            out.push(Stmt::Star(module));
            return;
        }
        let mut cursor = node.walk();
        for name in node.children_by_field_id(*field::NAME, &mut cursor) {
            let Some(imported_name) = imported_name(name, self.text) else { continue };
            let imported = identifier(&imported_name.name).into_owned();
            let alias = imported_name.asname.map(|a| identifier(&a).into_owned());
            out.push(Stmt::Load(format!("{module}.{imported}")));
            let origin = ImportOrigin { module: module.clone(), name: Some(imported.clone()) };
            if imported == "__all__" && alias.is_none() {
                let items = vec![AllItem::ModuleAll(ModuleAllRef { module: module.clone(), attr: None })];
                out.push(Stmt::All(AllOp::Set(items)));
                continue;
            }
            self.bind(out, alias.unwrap_or(imported), BindingKind::Import, Some(origin), false);
        }
    }

    /// Bind the targets of walrus expressions under `node` (comprehensions included: they bind
    /// in the enclosing scope), never inside lambdas. `maybe`: the expression may not run.
    fn walruses(&mut self, node: Node<'_>, maybe: bool, out: &mut Vec<Stmt>) {
        if !node.is_named() || node.kind() == "lambda" {
            return;
        }
        // Cheap skip: no `:=` in the text, no walrus below.
        if !self.text(node).contains(":=") {
            return;
        }
        if node.kind() == "named_expression"
            && let Some(name) = node.child_by_field_id(field::NAME.get())
        {
            if let Some(value) = node.child_by_field_id(field::VALUE.get()) {
                self.walruses(value, maybe, out);
            }
            let name = self.ident(name);
            self.bind(out, name, BindingKind::Variable, None, maybe);
            return;
        }
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
        let comprehension = matches!(
            node.kind(),
            "list_comprehension" | "set_comprehension" | "dictionary_comprehension" | "generator_expression"
        );
        for (i, child) in children.into_iter().enumerate() {
            // Only the first operand of `and`/`or` and the test of `x if c else y` always run;
            // a comprehension's body and conditions run once per element, maybe never.
            let child_maybe = maybe
                || comprehension
                || (node.kind() == "boolean_operator" && i > 0)
                || (node.kind() == "conditional_expression" && i != 1);
            self.walruses(child, child_maybe, out);
        }
    }

    /// What a module-level function does to module state: a registration decorator, an
    /// `__all__` helper, a PEP 562 `__getattr__`, `global` names, or an `__all__` change no
    /// static reading follows.
    fn analyze_function(&mut self, def: Node<'_>, name: &str) {
        let Some(body) = def.child_by_field_id(field::BODY.get()) else { return };
        let body_text = node_text(body, self.text);
        let first_param = def.child_by_field_id(field::PARAMETERS.get()).and_then(|p| {
            let mut cursor = p.walk();
            let first = p.named_children(&mut cursor).find(|c| c.kind() != "comment");
            first.and_then(|f| match f.kind() {
                "identifier" => Some(self.ident(f)),
                "typed_parameter" | "default_parameter" | "typed_default_parameter" => {
                    let inner = f.child_by_field_id(field::NAME.get()).or_else(|| f.named_child(0))?;
                    (inner.kind() == "identifier").then(|| self.ident(inner))
                }
                _ => None,
            })
        });
        if name == "__getattr__" {
            self.scope.getattr = Some(self.getattr_shim(body, first_param.as_deref()));
            self.scope.getattr_answers = self.answers.take();
        }
        if body_text.contains("global") {
            let mut globals = Vec::new();
            global_names(body, self.text, &mut globals);
            globals.retain(|g| g != "__all__");
            if !globals.is_empty() {
                globals.sort();
                globals.dedup();
                self.scope.function_globals.insert(name.to_string(), globals);
            }
        }
        if !body_text.contains("__all__") {
            return;
        }
        let indirect = ["__globals__", "f_globals", "_getframe", "currentframe", "sys.modules", "__module__", "inspect.stack", "getmodule"];
        if first_param.is_some()
            && name != "__getattr__"
            && name != "__dir__"
            && (body_text.contains("__name__") || body_text.contains("__qualname__"))
            && indirect.iter().any(|marker| body_text.contains(marker))
        {
            self.scope.registrars.insert(name.to_string());
            return;
        }
        if let Some(param) = &first_param
            && let Some(dedupe) = all_helper(body, param, self.text)
        {
            self.scope.all_helpers.insert(name.to_string(), dedupe);
            return;
        }
        if name != "__getattr__" && changes_own_all(body, self.text) {
            self.scope.all_dynamic.get_or_insert_with(|| format!("function {name}() changes __all__"));
        }
    }

    fn getattr_shim(&self, body: Node<'_>, param: Option<&str>) -> GetattrShim {
        let Some(param) = param else { return GetattrShim::Unknown };
        let mut cursor = body.walk();
        let statements: Vec<Node<'_>> =
            body.named_children(&mut cursor).filter(|s| s.kind() != "comment" && !is_docstring(*s)).collect();
        // Delegation: a top-level `return getattr(m, name)` / `m.__dict__[name]` / `vars(m)[name]`.
        for statement in &statements {
            if statement.kind() == "return_statement"
                && let Some(value) = statement.named_child(0)
                && let Some(reference) = self.delegate_target(value, param)
            {
                return GetattrShim::Delegate(reference);
            }
        }
        // Guards on known names, then `raise AttributeError`.
        let ends_with_raise = statements.last().is_some_and(|s| {
            s.kind() == "raise_statement" && self.text(*s).replace(char::is_whitespace, "").starts_with("raiseAttributeError")
        });
        if !ends_with_raise {
            return GetattrShim::Unknown;
        }
        for statement in &statements[..statements.len() - 1] {
            match statement.kind() {
                "if_statement" => {
                    if !self.guard_excludes_all(*statement, param) {
                        return GetattrShim::Unknown;
                    }
                }
                "expression_statement" | "import_statement" | "import_from_statement" | "pass_statement"
                | "global_statement" => {}
                _ => return GetattrShim::Unknown,
            }
        }
        GetattrShim::NoAll
    }

    /// `if name == "x": …`, `if name in KNOWN: …` (with `elif`s, no `else`), none of which can
    /// match `"__all__"`.
    fn guard_excludes_all(&self, node: Node<'_>, param: &str) -> bool {
        let mut conditions = vec![node.child_by_field_id(field::CONDITION.get())];
        let mut cursor = node.walk();
        for part in node.children(&mut cursor) {
            match part.kind() {
                "elif_clause" => conditions.push(part.child_by_field_id(field::CONDITION.get())),
                "else_clause" => return false,
                _ => {}
            }
        }
        conditions.into_iter().all(|c| c.is_some_and(|c| self.name_test_excludes_all(c, param)))
    }

    fn name_test_excludes_all(&self, condition: Node<'_>, param: &str) -> bool {
        match condition.kind() {
            "parenthesized_expression" => condition.named_child(0).is_some_and(|c| self.name_test_excludes_all(c, param)),
            "boolean_operator" => {
                let operator = condition.child_by_field_id(field::OPERATOR.get()).map(|o| self.text(o)).unwrap_or("");
                let left = condition.child_by_field_id(field::LEFT.get()).is_some_and(|c| self.name_test_excludes_all(c, param));
                let right = condition.child_by_field_id(field::RIGHT.get()).is_some_and(|c| self.name_test_excludes_all(c, param));
                if operator == "and" { left || right } else { left && right }
            }
            "comparison_operator" => {
                let mut cursor = condition.walk();
                let operands: Vec<Node<'_>> = condition.named_children(&mut cursor).collect();
                let [left, right] = operands.as_slice() else { return false };
                if self.text(*left) != param {
                    return false;
                }
                let operator = condition.child(1).map(|o| o.kind()).unwrap_or("");
                let values = match operator {
                    "==" => string_value(*right, self.text).map(|v| vec![v]),
                    "in" => literal_strings(*right, self.text).or_else(|| {
                        (right.kind() == "identifier").then(|| self.literals.get(self.text(*right)).cloned()).flatten()
                    }),
                    _ => None,
                };
                if let Some(values) = &values {
                    self.answers.borrow_mut().extend(values.iter().cloned());
                }
                values.is_some_and(|values| !values.iter().any(|v| v == "__all__"))
            }
            _ => false,
        }
    }

    fn delegate_target(&self, value: Node<'_>, param: &str) -> Option<ModuleAllRef> {
        match value.kind() {
            "call" => {
                let function = value.child_by_field_id(field::FUNCTION.get())?;
                if self.text(function) != "getattr" {
                    return None;
                }
                let arguments = value.child_by_field_id(field::ARGUMENTS.get())?;
                let mut cursor = arguments.walk();
                let args: Vec<Node<'_>> = arguments.named_children(&mut cursor).filter(|n| n.kind() != "comment").collect();
                if args.len() != 2 || self.text(args[1]) != param {
                    return None;
                }
                self.module_ref(args[0])
            }
            "subscript" => {
                let key = value.child_by_field_id(field::SUBSCRIPT.get())?;
                if self.text(key) != param {
                    return None;
                }
                let object = value.child_by_field_id(field::VALUE.get())?;
                match object.kind() {
                    "attribute" if object.child_by_field_id(field::ATTRIBUTE.get()).is_some_and(|a| self.text(a) == "__dict__") => {
                        self.module_ref(object.child_by_field_id(field::OBJECT.get())?)
                    }
                    "call" if object.child_by_field_id(field::FUNCTION.get()).is_some_and(|f| self.text(f) == "vars") => {
                        let arguments = object.child_by_field_id(field::ARGUMENTS.get())?;
                        self.module_ref(arguments.named_child(0)?)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Writes to the module's globals that no statement walk sees: `globals()` written,
    /// `exec` into the module, `sys.modules[__name__]`, enum `_convert_`, and `__all__`
    /// reached through `globals()`. Located by text, classified by the tree around each hit.
    fn dynamic_writes(&mut self, root: Node<'_>) {
        let text = self.text;
        // `globals()` anywhere; `locals()` and `vars()` are the module's globals only at module
        // level.
        let namespaces = [
            ("globals", false, "globals() is written", "__all__ is written through globals()"),
            ("locals", true, "locals() is written at module level", "__all__ is written through locals()"),
            ("vars", true, "vars() is written", "__all__ is written through vars()"),
        ];
        for (name, module_level_only, written, all_written) in namespaces {
            for (at, _) in text.match_indices(&format!("{name}()")) {
                let Some(call) = call_at(root, at, name) else { continue };
                if (module_level_only && inside_function(call)) || !globals_call_writes(call, text) {
                    continue;
                }
                self.scope.dynamic_globals.get_or_insert_with(|| written.to_string());
                if statement_mentions_all(call, text) {
                    self.scope.all_dynamic.get_or_insert_with(|| all_written.to_string());
                }
            }
        }
        for (at, _) in text.match_indices("exec(") {
            let Some(call) = call_at(root, at, "exec") else { continue };
            let count = call.child_by_field_id(field::ARGUMENTS.get()).map_or(0, |a| {
                let mut cursor = a.walk();
                a.named_children(&mut cursor).filter(|n| n.kind() != "comment").count()
            });
            // `exec(code)` at module level runs in the module's globals; with an explicit
            // namespace only `globals()` (handled above) reaches them.
            if count == 1 && !inside_function(call) {
                // The executed code may bind anything, `__all__` included.
                self.scope.dynamic_globals.get_or_insert_with(|| "exec() runs in the module's globals".to_string());
                self.scope.all_dynamic.get_or_insert_with(|| "exec() runs in the module's globals".to_string());
            }
        }
        for (at, _) in text.match_indices("sys.modules[__name__]") {
            let Some(node) = root.descendant_for_byte_range(at, at + "sys.modules[__name__]".len()) else { continue };
            let parent_call = std::iter::successors(node.parent(), |n| n.parent())
                .take(3)
                .find(|n| n.kind() == "call")
                .and_then(|c| c.child_by_field_id(field::FUNCTION.get()))
                .map(|f| node_text(f, text));
            if !matches!(parent_call, Some("getattr" | "hasattr")) {
                self.scope.dynamic_globals.get_or_insert_with(|| "sys.modules[__name__] is used".to_string());
                if statement_mentions_all(node, text) {
                    self.scope.all_dynamic.get_or_insert_with(|| "__all__ is written through sys.modules[__name__]".to_string());
                }
            }
        }
        if text.contains("global_enum") {
            self.scope.dynamic_globals.get_or_insert_with(|| "enum.global_enum makes enum members module globals".to_string());
        }
        if text.contains("._convert_(") || text.contains("._convert(") {
            self.scope.dynamic_globals.get_or_insert_with(|| "enum _convert_ creates globals".to_string());
        }
    }
}

/// Whether the statement around `node` mentions `__all__` (`globals()["__all__"] = …`,
/// `setattr(sys.modules[__name__], "__all__", …)`).
fn statement_mentions_all(node: Node<'_>, text: &str) -> bool {
    std::iter::successors(Some(node), |n| n.parent())
        .find(|n| n.kind().ends_with("statement"))
        .is_some_and(|statement| node_text(statement, text).contains("__all__"))
}

/// The `call` node of `name(` starting at byte `at`.
fn call_at<'t>(root: Node<'t>, at: usize, name: &str) -> Option<Node<'t>> {
    let node = root.descendant_for_byte_range(at, at + name.len())?;
    let call = node.parent().filter(|p| p.kind() == "call")?;
    (call.start_byte() == at).then_some(call)
}

fn inside_function(node: Node<'_>) -> bool {
    std::iter::successors(node.parent(), |n| n.parent()).any(|n| matches!(n.kind(), "function_definition" | "lambda"))
}

/// Whether a `globals()` (or module-level `vars()`) call is used to write the namespace.
fn globals_call_writes(call: Node<'_>, text: &str) -> bool {
    let Some(parent) = call.parent() else { return false };
    match parent.kind() {
        // `globals()[k] = v`, `del globals()[k]` write; `globals()[k]` alone reads.
        "subscript" => {
            let Some(grand) = parent.parent() else { return false };
            match grand.kind() {
                "assignment" | "augmented_assignment" => grand.child_by_field_id(field::LEFT.get()) == Some(parent),
                "delete_statement" => true,
                "pattern_list" | "tuple_pattern" | "expression_list" => true,
                _ => false,
            }
        }
        "attribute" => {
            let method = parent.child_by_field_id(field::ATTRIBUTE.get()).map(|a| node_text(a, text)).unwrap_or("");
            !matches!(method, "get" | "keys" | "values" | "items" | "copy" | "__contains__" | "__getitem__")
        }
        "comparison_operator" => false,
        "argument_list" => {
            let function = parent
                .parent()
                .and_then(|c| c.child_by_field_id(field::FUNCTION.get()))
                .map(|f| node_text(f, text))
                .unwrap_or("");
            // Import functions take the caller's globals only to find its package.
            !(function.to_ascii_lowercase().contains("import")
                || matches!(function, "dict" | "list" | "len" | "sorted" | "set" | "print" | "eval" | "repr" | "str" | "id"))
        }
        _ => true,
    }
}

/// `for a in param.__all__: [if a not in __all__:] __all__.append(a)`,
/// `__all__.extend(param.__all__)`, `__all__ += param.__all__`: `Some(dedupe)`.
fn all_helper(body: Node<'_>, param: &str, text: &str) -> Option<bool> {
    let compact = |n: Node<'_>| node_text(n, text).chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let param_all = format!("{param}.__all__");
    let mut found = None;
    let mut cursor = body.walk();
    for statement in body.named_children(&mut cursor) {
        match statement.kind() {
            "comment" | "global_statement" | "pass_statement" => {}
            "expression_statement" if is_docstring(statement) => {}
            "expression_statement" => {
                let line = compact(statement);
                if line == format!("__all__.extend({param_all})") || line == format!("__all__+={param_all}") {
                    found = Some(found.unwrap_or(false));
                } else if line.contains("__all__") {
                    return None;
                }
            }
            "for_statement" => {
                let left = compact(statement.child_by_field_id(field::LEFT.get())?);
                if compact(statement.child_by_field_id(field::RIGHT.get())?) != param_all {
                    return None;
                }
                let body = statement.child_by_field_id(field::BODY.get())?;
                let mut inner = body.walk();
                let stmts: Vec<Node<'_>> = body.named_children(&mut inner).filter(|n| n.kind() != "comment").collect();
                let mut dedupe = false;
                let mut appended = false;
                for s in stmts {
                    let line = compact(s);
                    if line == format!("__all__.append({left})") {
                        appended = true;
                    } else if s.kind() == "if_statement" && compact(s.child_by_field_id(field::CONDITION.get())?) == format!("{left}notin__all__") {
                        let consequence = s.child_by_field_id(field::CONSEQUENCE.get())?;
                        if compact(consequence).starts_with(&format!("__all__.append({left})")) && s.named_child_count() == 2 {
                            dedupe = true;
                            appended = true;
                        } else {
                            return None;
                        }
                    } else if line.contains("__all__") {
                        return None;
                    }
                }
                if !appended {
                    return None;
                }
                found = Some(found.unwrap_or(false) || dedupe);
            }
            _ => {
                if compact(statement).contains("__all__") {
                    return None;
                }
            }
        }
    }
    found
}

/// Whether a function body changes its module's `__all__`: `__all__.append(…)` and other
/// mutating methods (no local `__all__`), or assignments after `global __all__`.
fn changes_own_all(body: Node<'_>, text: &str) -> bool {
    let body_text = node_text(body, text);
    let mut globals = Vec::new();
    global_names(body, text, &mut globals);
    let declared_global = globals.iter().any(|g| g == "__all__");
    let compact: String = body_text.chars().filter(|c| !c.is_whitespace()).collect();
    let assigns_local = !declared_global && (compact.contains("__all__=") && !compact.contains("__all__=="));
    if assigns_local {
        return false;
    }
    if declared_global && (compact.contains("__all__=") || compact.contains("__all__+=")) {
        return true;
    }
    ["__all__.append(", "__all__.extend(", "__all__.remove(", "__all__.insert(", "__all__.pop(", "__all__.clear(", "__all__+=", "__all__[", "\"__all__\"]=", "'__all__']="]
        .iter()
        .any(|m| compact.contains(m))
}

/// Names declared `global` anywhere in a function body (not in nested functions or classes).
fn global_names(node: Node<'_>, text: &str, out: &mut Vec<String>) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        match child.kind() {
            "global_statement" => {
                let mut inner = child.walk();
                for name in child.named_children(&mut inner) {
                    if name.kind() == "identifier" {
                        out.push(identifier(node_text(name, text)).into_owned());
                    }
                }
            }
            "function_definition" | "class_definition" | "decorated_definition" | "lambda" => {}
            _ if child.kind().ends_with("_statement") || child.kind().ends_with("_clause") || child.kind() == "block" => {
                global_names(child, text, out);
            }
            _ => {}
        }
    }
}

fn is_docstring(node: Node<'_>) -> bool {
    node.kind() == "expression_statement" && node.named_child(0).is_some_and(|c| c.kind() == "string")
}

/// The value at the end of `a = b = value`.
fn innermost_value(mut node: Node<'_>) -> Option<Node<'_>> {
    while node.kind() == "assignment" {
        node = node.child_by_field_id(field::RIGHT.get())?;
    }
    Some(node)
}

/// A non-empty list, tuple or string literal: a `for` over it runs its body at least once.
fn non_empty_literal(node: Node<'_>) -> bool {
    matches!(node.kind(), "list" | "tuple" | "set") && node.named_children(&mut node.walk()).any(|c| c.kind() != "comment")
}

/// `(3, 8)`, `(3,)`, `3`: the integers.
fn int_tuple(node: Node<'_>, text: &str) -> Option<Vec<i64>> {
    match node.kind() {
        "integer" => Some(vec![node_text(node, text).replace('_', "").parse().ok()?]),
        "tuple" | "parenthesized_expression" => {
            let mut cursor = node.walk();
            let mut values = Vec::new();
            for child in node.named_children(&mut cursor) {
                match child.kind() {
                    "comment" => {}
                    "integer" => values.push(node_text(child, text).replace('_', "").parse().ok()?),
                    _ => return None,
                }
            }
            (!values.is_empty()).then_some(values)
        }
        _ => None,
    }
}

/// The strings of a tuple, list or set literal of strings.
fn string_items(node: Node<'_>, text: &str) -> Option<Vec<String>> {
    match node.kind() {
        "tuple" | "list" | "set" | "parenthesized_expression" => {
            let mut cursor = node.walk();
            let mut values = Vec::new();
            for child in node.named_children(&mut cursor) {
                if child.kind() != "comment" {
                    values.push(string_value(child, text)?);
                }
            }
            Some(values)
        }
        _ => None,
    }
}

/// The strings of a literal collection: a tuple, list or set of strings, the string keys of a
/// dict literal, or `frozenset(...)`/`set(...)` of one.
fn literal_strings(node: Node<'_>, text: &str) -> Option<Vec<String>> {
    match node.kind() {
        "dictionary" => {
            let mut cursor = node.walk();
            let mut keys = Vec::new();
            for pair in node.named_children(&mut cursor) {
                match pair.kind() {
                    "pair" => keys.push(string_value(pair.child_by_field_id(field::KEY.get())?, text)?),
                    "comment" => {}
                    _ => return None,
                }
            }
            Some(keys)
        }
        "call" => {
            let function = node_text(node.child_by_field_id(field::FUNCTION.get())?, text);
            if !matches!(function, "frozenset" | "set" | "tuple" | "list") {
                return None;
            }
            literal_strings(node.child_by_field_id(field::ARGUMENTS.get())?.named_child(0)?, text)
        }
        _ => string_items(node, text),
    }
}

/// Names bound by an assignment/`for`/`with`/`del` target (NFKC-normalized).
fn target_names(node: Node<'_>, text: &str, out: &mut Vec<String>) {
    match node.kind() {
        "identifier" | "keyword_identifier" => out.push(identifier(node_text(node, text)).into_owned()),
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
                    out.push(identifier(name).into_owned());
                }
            }
        }
        "identifier" => {
            let name = node_text(node, text);
            if name != "_" {
                out.push(identifier(name).into_owned());
            }
        }
        "class_pattern" | "keyword_pattern" => {
            // The first child names the class or keyword (not a capture).
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
