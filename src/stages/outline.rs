//! The outline: every class, function and method of a module, at any depth, with its
//! qualname, position, decorators, parameters, return annotation and docstring summary.
//!
//! Positions follow Python's `ast`: `line` is the `def`/`class` line (not the decorator's),
//! `col` the 0-based UTF-8 byte column of `def`, `async` or `class`; the end is the end of the
//! last token of the body's last statement (see [`statement_end`]). Names are identifiers as
//! CPython spells them (NFKC-normalized, PEP 3131).

use crate::stages::parse::field;
use serde::{Deserialize, Serialize};
use tree_sitter::Node;

use crate::db::{source_text, Db, SourceFile};
use crate::stages::cached::per_file;
use crate::stages::parse::parsed_module;
use crate::stages::text::{docstring_first_line, identifier_text, is_public_name, node_text, string_value};

/// Bump when the outline's logic or fields change.
pub const OUTLINE_VERSION: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolKind {
    Class,
    /// A module-level or nested function.
    Function,
    /// A function defined directly in a class body.
    Method,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    PositionalOnly,
    PositionalOrKeyword,
    VarPositional,
    KeywordOnly,
    VarKeyword,
}

/// One parameter of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    /// Source text of the annotation.
    pub annotation: Option<String>,
    pub has_default: bool,
}

/// One class, function or method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// Enclosing class and function names joined with `.` (`Outer.method`, `func.inner`).
    /// Every name here and in `params` is NFKC-normalized, as CPython spells identifiers.
    pub qualname: String,
    pub name: String,
    pub kind: SymbolKind,
    /// 1-based line of `def`/`class`.
    pub line: u32,
    /// 0-based UTF-8 byte column of `def`/`async`/`class`.
    pub col: u32,
    /// End of the last token of the body's last statement (`ast`'s `end_lineno`, 1-based).
    pub end_line: u32,
    /// 0-based UTF-8 byte column of that end (`ast`'s `end_col_offset`).
    pub end_col: u32,
    pub is_async: bool,
    /// Source text of each decorator expression (without `@`), in order.
    pub decorators: Vec<String>,
    /// Source text of each base class / keyword in a class statement's parentheses.
    pub bases: Vec<String>,
    pub params: Vec<Param>,
    /// Source text of the return annotation.
    pub returns: Option<String>,
    /// Every part of the qualname is public and it is not local to a function.
    pub is_public: bool,
    /// First line of the cleaned docstring.
    pub docstring: Option<String>,
}

/// The outline of one module, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outline {
    pub symbols: Vec<Symbol>,
    /// Names assigned at module level or in a class body, in document order, each once.
    pub variables: Vec<Variable>,
}

/// A module or class variable: `name = …` or `name: annotation [= …]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// The qualname of the enclosing class, or `""` at module level.
    pub scope: String,
    pub name: String,
    /// Source text of the first annotation it has.
    pub annotation: Option<String>,
}

/// The outline of `file`, encoded; a firewall: equal outlines stop the cascade.
#[salsa::tracked(returns(ref))]
pub fn outline(db: &dyn Db, file: SourceFile) -> EncodedOutline {
    per_file(db, file, "outline", OUTLINE_VERSION, false, || {
        EncodedOutline::encode(&extract_outline(parsed_module(db, file).root(), source_text(db, file)))
    })
}

/// An outline as the memo keeps it: its MessagePack encoding. An [`Outline`] in memory is
/// about ten times its encoding (every name, annotation and decorator a `String` of its own)
/// and every file's outline lives until the rows are rendered: on the generated 20k-module tree
/// 221 MB of a cold build's 1.0 GB heap peak (heaptrack), where the encodings take ~20 MB. Its
/// few readers (the summary, the warnings, the rows, a stub) decode it, once each per file.
/// Equal outlines have equal encodings (the encoding is a function of the value), so the
/// firewall holds. The cache stores the same bytes as a MessagePack `bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedOutline(Box<[u8]>);

impl EncodedOutline {
    pub fn encode(outline: &Outline) -> Self {
        EncodedOutline(rmp_serde::to_vec(outline).expect("an outline serializes").into_boxed_slice())
    }

    /// The outline. The bytes are [`EncodedOutline::encode`]'s: this build's, or a cache
    /// entry's whose key holds this engine's fingerprint and whose checksum matched.
    pub fn decode(&self) -> Outline {
        rmp_serde::from_slice(&self.0).expect("an encoded outline decodes")
    }
}

impl Serialize for EncodedOutline {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for EncodedOutline {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = EncodedOutline;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an encoded outline")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<EncodedOutline, E> {
                Ok(EncodedOutline(bytes.into()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<EncodedOutline, E> {
                Ok(EncodedOutline(bytes.into_boxed_slice()))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

struct Scope {
    name: String,
    is_class: bool,
}

/// Extract the outline from a parsed tree.
pub fn extract_outline(root: Node<'_>, text: &str) -> Outline {
    let mut outline = Outline::default();
    walk_statements(root, text, &mut Vec::new(), &mut outline);
    outline
}

/// The plain names an assignment statement binds, with the annotation of `name: T = …`.
fn variables(statement: Node<'_>, text: &str, scopes: &[Scope], out: &mut Outline) {
    let scope = scopes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".");
    let mut cursor = statement.walk();
    for child in statement.named_children(&mut cursor) {
        let mut assignment = Some(child).filter(|c| matches!(c.kind(), "assignment" | "augmented_assignment"));
        while let Some(node) = assignment {
            let annotation = node.child_by_field_id(field::TYPE.get()).map(|t| node_text(t, text).to_string());
            if let Some(left) = node.child_by_field_id(field::LEFT.get()) {
                let mut names = Vec::new();
                plain_targets(left, text, &mut names);
                for name in names {
                    match out.variables.iter_mut().find(|v| v.scope == scope && v.name == name) {
                        Some(existing) => {
                            if existing.annotation.is_none() {
                                existing.annotation.clone_from(&annotation);
                            }
                        }
                        None => out.variables.push(Variable { scope: scope.clone(), name, annotation: annotation.clone() }),
                    }
                }
            }
            // `a = b = value`: the right side is itself an assignment.
            assignment = node.child_by_field_id(field::RIGHT.get()).filter(|r| r.kind() == "assignment");
        }
    }
}

/// Identifiers of an assignment target (unpacking included; attributes and subscripts bind
/// no variable).
fn plain_targets(node: Node<'_>, text: &str, out: &mut Vec<String>) {
    match node.kind() {
        "identifier" => out.push(identifier_text(node, text).into_owned()),
        "pattern_list" | "tuple_pattern" | "list_pattern" | "list_splat_pattern" | "tuple" | "list" | "expression_list"
        | "parenthesized_expression" | "list_splat" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                plain_targets(child, text, out);
            }
        }
        _ => {}
    }
}

/// Visit the statements under `node`, descending into compound statements and blocks but
/// never into expressions (no definition can be there).
fn walk_statements(node: Node<'_>, text: &str, scopes: &mut Vec<Scope>, out: &mut Outline) {
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        match child.kind() {
            "function_definition" | "class_definition" => definition(child, Vec::new(), text, scopes, out),
            "decorated_definition" => {
                let decorators = decorators(child, text);
                match child.child_by_field_id(field::DEFINITION.get()) {
                    Some(def) => definition(def, decorators, text, scopes, out),
                    None => walk_statements(child, text, scopes, out),
                }
            }
            kind if is_compound(kind) => walk_statements(child, text, scopes, out),
            // Module and class variables (not a function's locals), for stubs.
            "expression_statement" if scopes.last().is_none_or(|s| s.is_class) => variables(child, text, scopes, out),
            _ => {}
        }
    }
}

/// Statements (and statement parts) that can contain other statements.
pub(crate) fn is_compound(kind: &str) -> bool {
    matches!(
        kind,
        "block"
            | "ERROR"
            | "if_statement"
            | "elif_clause"
            | "else_clause"
            | "for_statement"
            | "while_statement"
            | "try_statement"
            | "except_clause"
            | "except_group_clause"
            | "finally_clause"
            | "with_statement"
            | "match_statement"
            | "case_clause"
            | "decorated_definition"
    )
}

fn definition(node: Node<'_>, decorators: Vec<String>, text: &str, scopes: &mut Vec<Scope>, out: &mut Outline) {
    let body = node.child_by_field_id(field::BODY.get());
    let Some(name_node) = node.child_by_field_id(field::NAME.get()) else {
        if let Some(body) = body {
            walk_statements(body, text, scopes, out);
        }
        return;
    };
    let name = identifier_text(name_node, text).into_owned();
    let is_class = node.kind() == "class_definition";
    let kind = match (is_class, scopes.last()) {
        (true, _) => SymbolKind::Class,
        (false, Some(parent)) if parent.is_class => SymbolKind::Method,
        (false, _) => SymbolKind::Function,
    };
    let mut qualname = String::new();
    for scope in scopes.iter() {
        qualname.push_str(&scope.name);
        qualname.push('.');
    }
    qualname.push_str(&name);
    let is_public = scopes.iter().all(|s| s.is_class && is_public_name(&s.name)) && is_public_name(&name);
    let start = node.start_position();
    let end = statement_end(node);
    out.symbols.push(Symbol {
        qualname,
        kind,
        line: start.row as u32 + 1,
        col: start.column as u32,
        end_line: end.row as u32 + 1,
        end_col: end.column as u32,
        is_async: !is_class && node.child(0).is_some_and(|c| c.kind() == "async"),
        decorators,
        bases: node
            .child_by_field_id(field::SUPERCLASSES.get())
            .map(|args| named_texts(args, text))
            .unwrap_or_default(),
        params: node
            .child_by_field_id(field::PARAMETERS.get())
            .map(|params| parameters(params, text))
            .unwrap_or_default(),
        returns: node.child_by_field_id(field::RETURN_TYPE.get()).map(|t| node_text(t, text).to_string()),
        is_public,
        docstring: body.and_then(|body| docstring(body, text)),
        name: name.clone(),
    });
    if let Some(body) = body {
        scopes.push(Scope { name, is_class });
        walk_statements(body, text, scopes, out);
        scopes.pop();
    }
}

/// Where Python's `ast` ends a statement: at the last token of its last statement, for a
/// compound one (recursively), a trailing `;` included. Tree-sitter's blocks also hold the
/// comments that follow their last statement (`def f():\n    pass\n    # note`), which `ast`
/// does not count. Only the chain of last children is visited, never the whole subtree.
pub fn statement_end(node: Node<'_>) -> tree_sitter::Point {
    let mut node = node;
    loop {
        let inner = match node.kind() {
            "function_definition" | "class_definition" => node.child_by_field_id(field::BODY.get()),
            "decorated_definition" => node.child_by_field_id(field::DEFINITION.get()),
            "ERROR" => None,
            kind if is_compound(kind) => last_token_or_statement(node),
            _ => None,
        };
        match inner {
            Some(inner) => node = inner,
            None => return node.end_position(),
        }
    }
}

/// The last child of `node` that is not a comment (or line continuation): a statement, a
/// clause, or a token such as the `;` after a block's last statement.
fn last_token_or_statement(node: Node<'_>) -> Option<Node<'_>> {
    let mut child = node.child(node.child_count().checked_sub(1)?)?;
    while child.is_extra() {
        child = child.prev_sibling()?;
    }
    Some(child)
}

fn named_texts(node: Node<'_>, text: &str) -> Vec<String> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|child| child.kind() != "comment")
        .map(|child| node_text(child, text).to_string())
        .collect()
}

fn decorators(parent: Node<'_>, text: &str) -> Vec<String> {
    let mut cursor = parent.walk();
    parent
        .named_children(&mut cursor)
        .filter(|child| child.kind() == "decorator")
        .filter_map(|decorator| decorator.named_child(0))
        .map(|expr| node_text(expr, text).to_string())
        .collect()
}

fn parameters(params: Node<'_>, text: &str) -> Vec<Param> {
    let mut out: Vec<Param> = Vec::new();
    let mut keyword_only = false;
    let mut cursor = params.walk();
    for param in params.named_children(&mut cursor) {
        let positional = if keyword_only { ParamKind::KeywordOnly } else { ParamKind::PositionalOrKeyword };
        let (target, annotation, has_default) = match param.kind() {
            "identifier" | "tuple_pattern" | "list_splat_pattern" | "dictionary_splat_pattern" => (param, None, false),
            "typed_parameter" => {
                let Some(target) = param.named_child(0) else { continue };
                (target, param.child_by_field_id(field::TYPE.get()), false)
            }
            "default_parameter" | "typed_default_parameter" => {
                let Some(target) = param.child_by_field_id(field::NAME.get()) else { continue };
                (target, param.child_by_field_id(field::TYPE.get()), true)
            }
            "keyword_separator" => {
                keyword_only = true;
                continue;
            }
            "positional_separator" => {
                for earlier in &mut out {
                    if earlier.kind == ParamKind::PositionalOrKeyword {
                        earlier.kind = ParamKind::PositionalOnly;
                    }
                }
                continue;
            }
            _ => continue,
        };
        let (kind, name_node) = match target.kind() {
            "list_splat_pattern" => {
                keyword_only = true;
                (ParamKind::VarPositional, target.named_child(0))
            }
            "dictionary_splat_pattern" => (ParamKind::VarKeyword, target.named_child(0)),
            _ => (positional, Some(target)),
        };
        let Some(name_node) = name_node else { continue };
        out.push(Param {
            name: identifier_text(name_node, text).into_owned(),
            kind,
            annotation: annotation.map(|a| node_text(a, text).to_string()),
            has_default,
        });
    }
    out
}

/// The docstring summary of a body block: its first statement, when that is a plain string.
pub fn docstring(body: Node<'_>, text: &str) -> Option<String> {
    let mut cursor = body.walk();
    let first = body.named_children(&mut cursor).find(|n| n.kind() != "comment")?;
    if first.kind() != "expression_statement" || first.named_child_count() != 1 {
        return None;
    }
    let value = string_value(first.named_child(0)?, text)?;
    Some(docstring_first_line(&value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::parse::parse_text;

    fn outline_of(source: &str) -> Vec<Symbol> {
        extract_outline(parse_text(source).root(), source).symbols
    }

    /// The memo's encoding decodes to the outline, and goes through the cache's MessagePack
    /// as the same bytes (a `bin`, not an array of numbers).
    #[test]
    fn an_encoded_outline_decodes_to_itself_and_caches_as_bytes() {
        let source = "class A(B, metaclass=M):\n    \"\"\"Doc.\"\"\"\n    x: int = 1\n    @property\n    def f(self, a: int = 2, *b, c, **d) -> str: ...\n\nasync def g(): pass\n";
        let outline = extract_outline(parse_text(source).root(), source);
        assert_eq!(outline.symbols.len(), 3);
        let encoded = EncodedOutline::encode(&outline);
        assert_eq!(encoded.decode(), outline);
        let payload = rmp_serde::to_vec(&encoded).unwrap();
        assert!(payload.len() <= encoded.0.len() + 5, "a bin header, then the bytes: {} vs {}", payload.len(), encoded.0.len());
        assert_eq!(rmp_serde::from_slice::<EncodedOutline>(&payload).unwrap(), encoded);
    }

    /// (qualname, end_line, end_col) of every symbol.
    fn ends(source: &str) -> Vec<(String, u32, u32)> {
        outline_of(source).into_iter().map(|s| (s.qualname, s.end_line, s.end_col)).collect()
    }

    fn end(qualname: &str, line: u32, col: u32) -> (String, u32, u32) {
        (qualname.to_string(), line, col)
    }

    #[test]
    fn trailing_comments_are_not_part_of_a_definition() {
        let source = "def f():\n    return 1\n    # note\n# col 0\n\ndef g(): pass  # c\n";
        assert_eq!(ends(source), [end("f", 2, 12), end("g", 6, 13)]);
    }

    #[test]
    fn the_last_statement_of_nested_blocks_ends_a_definition() {
        let source = "\
class A:
    @decorator
    def m(self):
        if x:
            pass
        else:
            for y in z:
                y()
                # deepest
            # in else
        # in m
    # in A
";
        assert_eq!(ends(source), [end("A", 8, 19), end("A.m", 8, 19)]);
        let source = "\
def t():
    try:
        a
    except E:
        b
        # in except
    finally:
        c  # same line
        # in finally
def w():
    with x:
        match y:
            case 1:
                '''string'''
                # in case
";
        assert_eq!(ends(source), [end("t", 8, 9), end("w", 14, 28)]);
    }

    #[test]
    fn a_trailing_semicolon_ends_a_definition() {
        // `ast` ends the def at the `;` but the statement itself before it.
        assert_eq!(ends("def f(): x = 1;  # c\n"), [end("f", 1, 15)]);
        assert_eq!(ends("def f():\n    x = 1; y = 2;\n    # c\n"), [end("f", 2, 17)]);
    }

    #[test]
    fn names_are_nfkc_normalized() {
        let symbols = outline_of("class \u{aa}b:\n    def \u{b5}(self, \u{fb01}rst, *, \u{ff4b}w=1): '\u{b5}'\n");
        let names: Vec<(&str, &str)> = symbols.iter().map(|s| (s.qualname.as_str(), s.name.as_str())).collect();
        assert_eq!(names, [("ab", "ab"), ("ab.\u{3bc}", "\u{3bc}")]);
        let params: Vec<&str> = symbols[1].params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(params, ["self", "first", "kw"]);
        assert_eq!(symbols[1].docstring.as_deref(), Some("\u{b5}"), "string contents stay as written");
    }
}
