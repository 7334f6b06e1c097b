//! `--emit-ast`: each module's tree-sitter syntax tree as deterministic JSON under
//! `ast/<path>.json` — named nodes (and anonymous ones that fill a field, such as an
//! operator) with their kind, field name, start and end points (0-based row, UTF-8 byte
//! column) and, for leaves, their text:
//!
//! ```json
//! {"kind":"module","start":[0,0],"end":[3,0],"children":[{"kind":"expression_statement", …}]}
//! ```
//!
//! Trees are rendered while the build has them, only for files whose tree changed (or whose
//! previous rendering is gone), and streamed to a temporary file next to their place: a
//! whole tree of a large file is ten times its source, so they are never held together in
//! memory. The build renames them into place with the other artifacts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Result;
use tree_sitter::Node;

use super::Artifact;

/// Where the trees of one build are staged.
pub struct AstSink {
    out: PathBuf,
    staged: Mutex<Vec<Artifact>>,
}

impl AstSink {
    pub fn new(out: &Path) -> Self {
        AstSink { out: out.to_path_buf(), staged: Mutex::new(Vec::new()) }
    }

    /// The artifact path of the tree of `source_path`.
    pub fn artifact_path(source_path: &str) -> String {
        format!("ast/{source_path}.json")
    }

    /// Render the tree of `source_path` into a temporary file beside its place.
    pub fn stage(&self, source_path: &str, root: Node<'_>, text: &str) -> Result<()> {
        let path = Self::artifact_path(source_path);
        let artifact = super::stage(&self.out, &path, 1, |out| Ok(write_tree(out, root, text)?))?;
        self.staged.lock().unwrap().push(artifact);
        Ok(())
    }

    /// The staged trees ([`super::Body::Staged`]), sorted by path.
    pub fn into_staged(self) -> Vec<Artifact> {
        let mut staged = self.staged.into_inner().unwrap();
        staged.sort_by(|a, b| a.path.cmp(&b.path));
        staged
    }
}

/// Whether a node is written: named, or filling a field.
fn written(node: Node<'_>, field: Option<&str>) -> bool {
    node.is_named() || field.is_some()
}

enum Item<'t> {
    Node(Node<'t>, Option<&'t str>),
    Close,
}

/// Write the tree with an explicit stack (deeply nested expressions must not overflow).
pub fn write_tree<'t>(out: &mut (impl std::io::Write + ?Sized), root: Node<'t>, text: &str) -> std::io::Result<()> {
    let mut stack: Vec<Item<'t>> = vec![Item::Node(root, None)];
    // Per open array: whether an element was written (a comma comes before the next).
    let mut comma: Vec<bool> = vec![false];
    while let Some(item) = stack.pop() {
        match item {
            Item::Close => {
                out.write_all(b"]}")?;
                comma.pop();
            }
            Item::Node(node, field) => {
                let last = comma.last_mut().expect("an open level");
                if *last {
                    out.write_all(b",")?;
                }
                *last = true;
                out.write_all(b"{\"kind\":")?;
                serde_json::to_writer(&mut *out, node.kind())?;
                if let Some(field) = field {
                    out.write_all(b",\"field\":")?;
                    serde_json::to_writer(&mut *out, field)?;
                }
                let (start, end) = (node.start_position(), node.end_position());
                write!(out, ",\"start\":[{},{}],\"end\":[{},{}]", start.row, start.column, end.row, end.column)?;
                let mut children = Vec::new();
                for i in 0..node.child_count() {
                    let Some(child) = node.child(i) else { continue };
                    let child_field = node.field_name_for_child(i);
                    if written(child, child_field) {
                        children.push((child, child_field));
                    }
                }
                if children.is_empty() {
                    out.write_all(b",\"text\":")?;
                    serde_json::to_writer(&mut *out, text.get(node.byte_range()).unwrap_or(""))?;
                    out.write_all(b"}")?;
                } else {
                    out.write_all(b",\"children\":[")?;
                    comma.push(false);
                    stack.push(Item::Close);
                    stack.extend(children.into_iter().rev().map(|(child, f)| Item::Node(child, f)));
                }
            }
        }
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> serde_json::Value {
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&tree_sitter_python::LANGUAGE.into()).unwrap();
        let tree = parser.parse(source, None).unwrap();
        let mut out = Vec::new();
        write_tree(&mut out, tree.root_node(), source).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn nodes_fields_points_and_leaf_text() {
        let tree = render("x = a + 1\n");
        assert_eq!(tree["kind"], "module");
        assert_eq!(tree["end"], serde_json::json!([1, 0]));
        let assignment = &tree["children"][0]["children"][0];
        assert_eq!(assignment["kind"], "assignment");
        assert_eq!(assignment["children"][0]["field"], "left");
        assert_eq!(assignment["children"][0]["text"], "x");
        let sum = &assignment["children"][1];
        assert_eq!(sum["kind"], "binary_operator");
        let kinds: Vec<&str> = sum["children"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["identifier", "+", "integer"], "the operator fills a field");
        assert_eq!(sum["children"][1]["field"], "operator");
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let source = format!("x = {}1{}\n", "(".repeat(3000), ")".repeat(3000));
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&tree_sitter_python::LANGUAGE.into()).unwrap();
        let tree = parser.parse(&source, None).unwrap();
        let mut out = Vec::new();
        write_tree(&mut out, tree.root_node(), &source).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"kind\":\"module\"") && text.ends_with("}\n"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        assert!(text.matches("parenthesized_expression").count() >= 3000);
    }
}
