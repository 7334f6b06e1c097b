//! Parsing with tree-sitter-python: one parser per thread, one parse per file per revision.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock, mpsc};

use tree_sitter::{Node, Parser, Tree};

use crate::db::{Db, SourceFile};

/// Bump when the parse (or the grammar) changes in a way that affects downstream stages.
pub const PARSE_VERSION: u32 = 1;

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new({
        let mut parser = Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .expect("tree-sitter-python matches the tree-sitter ABI");
        parser
    });
}

/// A parsed module: the tree-sitter tree of a [`SourceFile`]'s text.
#[derive(Clone, Debug)]
pub struct ParsedModule {
    tree: Arc<OwnedTree>,
}

impl ParsedModule {
    pub fn root(&self) -> Node<'_> {
        self.tree.0.as_ref().expect("a tree is present until it is dropped").root_node()
    }
}

/// A tree that is deleted on the tree-deleting thread, not on the thread that drops it.
///
/// Deleting a tree frees every node (`ts_subtree_release`): ~9% of a cold build's CPU, and
/// the build drops trees where salsa evicts them — on the main thread, between chunks, while
/// the workers wait (perf, standard library). Handed to one background thread, the deletion
/// overlaps with the next chunk's work.
#[derive(Debug)]
struct OwnedTree(Option<Tree>);

impl Drop for OwnedTree {
    fn drop(&mut self) {
        if let Some(tree) = self.0.take() {
            delete_later(tree);
        }
    }
}

/// Sends `tree` to the tree-deleting thread (started on first use); deletes it here if that
/// thread cannot be started.
fn delete_later(tree: Tree) {
    static DELETER: OnceLock<Option<mpsc::Sender<Tree>>> = OnceLock::new();
    let deleter = DELETER.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Tree>();
        std::thread::Builder::new().name("tree-deleter".into()).spawn(move || receive.into_iter().for_each(drop)).ok().map(|_| send)
    });
    if let Some(deleter) = deleter {
        // A send fails only without a receiver; the tree then comes back and is dropped here.
        let _ = deleter.send(tree);
    }
}

/// The grammar's field ids, each looked up once: `child_by_field_name` compares the name with
/// every field name of the grammar on each call (`strncmp`: ~1.5% of a cold build's CPU, perf).
pub mod field {
    use std::sync::LazyLock;

    type FieldId = std::num::NonZeroU16;

    fn id(name: &str) -> FieldId {
        tree_sitter::Language::from(tree_sitter_python::LANGUAGE)
            .field_id_for_name(name)
            .unwrap_or_else(|| panic!("tree-sitter-python has a field `{name}`"))
    }

    macro_rules! fields {
        ($($id:ident = $name:literal,)*) => {
            $(pub static $id: LazyLock<FieldId> = LazyLock::new(|| id($name));)*
            /// Every field, for the test that each one exists.
            #[cfg(test)]
            pub fn all() -> Vec<FieldId> {
                vec![$(*$id,)*]
            }
        };
    }

    fields! {
        ALIAS = "alias",
        ALTERNATIVE = "alternative",
        ARGUMENT = "argument",
        ARGUMENTS = "arguments",
        ATTRIBUTE = "attribute",
        BODY = "body",
        CONDITION = "condition",
        CONSEQUENCE = "consequence",
        DEFINITION = "definition",
        FUNCTION = "function",
        KEY = "key",
        LEFT = "left",
        MODULE_NAME = "module_name",
        NAME = "name",
        OBJECT = "object",
        OPERATOR = "operator",
        OPERATORS = "operators",
        PARAMETERS = "parameters",
        RETURN_TYPE = "return_type",
        RIGHT = "right",
        SUBSCRIPT = "subscript",
        SUPERCLASSES = "superclasses",
        TYPE = "type",
        VALUE = "value",
    }
}

/// Parse `text` (never fails: syntax errors become `ERROR`/`MISSING` nodes).
pub fn parse_text(text: &str) -> ParsedModule {
    let tree = PARSER
        .with_borrow_mut(|parser| parser.parse(text, None))
        .expect("parsing without a timeout or cancellation flag always yields a tree");
    ParsedModule { tree: Arc::new(OwnedTree(Some(tree))) }
}

/// The tree of `file`. `no_eq`: trees are never compared, every consumer re-checks its own
/// output instead. LRU-bounded (the build evicts between chunks) because trees are ~10× the
/// size of their source; it is never persisted. Few are kept past an eviction: the next
/// chunk's files are other files, and no later phase of a default build reads a tree.
#[salsa::tracked(returns(ref), no_eq, lru = 16)]
pub fn parsed_module(db: &dyn Db, file: SourceFile) -> ParsedModule {
    parse_text(crate::db::source_text(db, file))
}

/// How many syntax errors a module has, and where the first one is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyntaxErrors {
    /// `ERROR` and `MISSING` nodes in the tree.
    pub count: u32,
    /// 1-based line and 0-based byte column of the first one.
    pub first: Option<(u32, u32)>,
}

/// The syntax errors of `file`; a narrow `Eq` value.
#[salsa::tracked(returns(copy))]
pub fn syntax_errors(db: &dyn Db, file: SourceFile) -> SyntaxErrors {
    crate::stages::cached::per_file(db, file, "syntax_errors", PARSE_VERSION, false, || {
        count_errors(parsed_module(db, file).root())
    })
}

/// Count error nodes, descending only into subtrees that contain one.
pub fn count_errors(root: Node<'_>) -> SyntaxErrors {
    let mut errors = SyntaxErrors::default();
    if !root.has_error() {
        return errors;
    }
    let mut stack = vec![root];
    let mut found = Vec::new();
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            errors.count += 1;
            found.push(node.start_position());
            if node.is_missing() {
                continue;
            }
        }
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.has_error() || child.is_missing() {
                stack.push(child);
            }
        }
    }
    errors.first = found.into_iter().min().map(|p| (p.row as u32 + 1, p.column as u32));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_the_grammars() {
        let ids = field::all();
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "two names share an id");
        // The cached id finds what the name finds.
        let module = parse_text("def f(x): return x\n");
        let def = module.root().child(0).unwrap();
        assert_eq!(def.child_by_field_id(field::NAME.get()), def.child_by_field_name("name"));
        assert_eq!(def.child_by_field_id(field::PARAMETERS.get()), def.child_by_field_name("parameters"));
    }
}
