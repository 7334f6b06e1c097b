//! Syntactic pattern tags: tree-sitter queries from the top-level `queries/` directory, one
//! `.scm` per tag, compiled once and run on a file's tree while it is in memory.
//!
//! A tag is the name of a query; a file has the tag when some pattern of the query matches
//! in its tree. Queries are ordinary tree-sitter queries: the text predicates `#eq?`,
//! `#not-eq?`, `#any-eq?`, `#match?`, `#not-match?`, `#any-of?`, `#not-any-of?` are applied by
//! tree-sitter's own `QueryMatches` (a predicate over a capture the match did not bind, such
//! as one in another branch of an alternation, holds). One predicate is ours:
//!
//! - `(#imports? @name "module.attr")`: every node of `@name` is a name the module binds to
//!   `module.attr` by an import statement anywhere in the file: `import module.attr as name`,
//!   `from module import attr [as name]`, `from module import *` (the name itself), or, for a
//!   target without a dot, `import module [as name]` / `import module.sub`. Scope is ignored.
//!
//! `#is?`/`#is-not?` and unknown predicates are compile errors (silently ignoring them would
//! make a query match more than it says); `#set!` is allowed and has no effect.
//!
//! **Cost.** ARCHITECTURE.md records why the stages walk statements instead of running
//! queries: a query cursor visits every node of the tree (running the seven built-in queries
//! over whole trees costs 2.7× the parse of the standard library). So each query declares, in
//! a comment line of its header, words it cannot match without:
//!
//! ```text
//! ; prefilter: import_module __import__
//! ```
//!
//! Every word of every query is searched for in one pass over the text (one regex, a literal
//! alternation; overlapping words are all found). A query none of whose words occur does not
//! run (55% of the standard library's files contain no word at all, and each query runs on
//! far fewer). When one does run, it runs per hit: on the innermost statement containing the
//! word — found by descending through blocks and compound statements only; a class or `def`
//! when the word is in its header, the decorated definition when it is in a decorator — with
//! the cursor's byte range set to the word (nearby hits of one statement share a run). The
//! cursor then only starts matches at nodes containing the word, and descends elsewhere only
//! to complete a match already started. Hence the contract of a prefiltered query: **each
//! pattern's root node contains one of its words and is that innermost statement or inside
//! it** — a call, a decorator, an import, a class or `def` whose header holds the word; not a
//! class whose body holds it. (`patterns_stdlib_cost` checks that the built-in queries give
//! the same tags as whole-tree runs on every standard-library file.) A query without a
//! `prefilter` line runs on the whole tree.

use crate::stages::parse::field;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;
use tree_sitter::{Language, Node, Query, QueryCursor, QueryErrorKind, QueryPredicateArg, StreamingIterator as _};

use crate::stages::text::{dotted, node_text};

/// Bump when the way queries are evaluated changes (prefilter, ranges, custom predicates);
/// it is folded into every [`PatternSet::fingerprint`].
pub const PATTERNS_VERSION: u32 = 1;

/// Hits of one statement at most this many bytes apart are searched in one cursor run.
const MERGE_GAP: usize = 256;

/// The built-in tags and their queries (`queries/<tag>.scm`), for callers that compile user
/// queries alongside them.
pub const BUILTIN_QUERIES: &[(&str, &str)] = &[
    ("abstract", include_str!("../../queries/abstract.scm")),
    ("cli", include_str!("../../queries/cli.scm")),
    ("dataclass", include_str!("../../queries/dataclass.scm")),
    ("deprecated", include_str!("../../queries/deprecated.scm")),
    ("dynamic-import", include_str!("../../queries/dynamic-import.scm")),
    ("exec-eval", include_str!("../../queries/exec-eval.scm")),
    ("protocol", include_str!("../../queries/protocol.scm")),
];

/// What is wrong with a tag's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternErrorKind {
    /// Tree-sitter's query error kinds.
    Syntax,
    NodeType,
    Field,
    Capture,
    Predicate,
    Structure,
    Language,
    /// A `; prefilter:` line without words.
    Prefilter,
    /// An empty, blank-containing or duplicate tag name.
    Tag,
}

/// A query that does not compile: the tag, where (1-based line, 0-based byte column in the
/// `.scm` source; a predicate error points at the start of its pattern), what kind of error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern `{tag}`, line {line}, column {column}: {kind:?} error: {message}")]
pub struct PatternError {
    pub tag: String,
    pub line: usize,
    pub column: usize,
    pub kind: PatternErrorKind,
    pub message: String,
}

/// Compiled tag queries.
pub struct PatternSet {
    /// Sorted by name.
    tags: Vec<Tag>,
    /// Every prefilter word of every tag; `None` when no tag has a prefilter.
    prefilter: Option<Prefilter>,
    fingerprint: String,
}

struct Tag {
    name: String,
    source: String,
    /// The compiled query, made on first use when the set was not compiled eagerly.
    compiled: OnceLock<CompiledQuery>,
    /// The query declared prefilter words: it runs only around their occurrences.
    prefiltered: bool,
}

struct CompiledQuery {
    query: Query,
    /// Per pattern: its `#imports?` predicates (capture index, dotted target).
    imports: Vec<Vec<(u32, String)>>,
}

impl Tag {
    fn compiled(&self) -> &CompiledQuery {
        self.compiled.get_or_init(|| {
            compile_query(&self.name, &self.source).unwrap_or_else(|error| panic!("built-in query: {error}"))
        })
    }
}

/// Compile the query of tag `name` and check its predicates.
fn compile_query(name: &str, source: &str) -> Result<CompiledQuery, PatternError> {
    let language: Language = tree_sitter_python::LANGUAGE.into();
    let error = |line: usize, column: usize, kind, message: String| PatternError {
        tag: name.to_string(),
        line,
        column,
        kind,
        message,
    };
    let query = Query::new(&language, source).map_err(|e| error(e.row + 1, e.column, kind_of(&e.kind), e.message.clone()))?;
    let mut imports = Vec::with_capacity(query.pattern_count());
    for pattern in 0..query.pattern_count() {
        let (line, column) = position(source, query.start_byte_for_pattern(pattern));
        let predicate_error = |message: String| error(line, column, PatternErrorKind::Predicate, message);
        if !query.property_predicates(pattern).is_empty() {
            return Err(predicate_error("#is? and #is-not? are not supported".into()));
        }
        let mut pattern_imports = Vec::new();
        for predicate in query.general_predicates(pattern) {
            match (&*predicate.operator, &*predicate.args) {
                ("imports?", [QueryPredicateArg::Capture(capture), QueryPredicateArg::String(target)]) if is_dotted_name(target) => {
                    pattern_imports.push((*capture, target.to_string()));
                }
                ("imports?", _) => {
                    return Err(predicate_error(
                        "#imports? takes a capture and a dotted name: (#imports? @name \"module.attr\")".into(),
                    ));
                }
                (operator, _) => return Err(predicate_error(format!("unknown predicate #{operator}"))),
            }
        }
        imports.push(pattern_imports);
    }
    Ok(CompiledQuery { query, imports })
}

struct Prefilter {
    /// `word1|word2|…`, longest first.
    regex: Regex,
    /// For each word, the tags (indices) whose prefilter it satisfies: its own and those of
    /// every word that is a prefix of it (a match reports the longest word at a position).
    tags_of_word: HashMap<String, Vec<usize>>,
}

impl std::fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternSet")
            .field("tags", &self.tag_names().collect::<Vec<_>>())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl PatternSet {
    /// The built-in pattern tags, from `queries/*.scm`. Each query compiles on first use
    /// (tree-sitter's query analysis takes tens of milliseconds for the set, and every built-in
    /// tag has a prefilter: an edited file without any of their words compiles none). Their
    /// validity is checked by the tests, which compile them all.
    pub fn builtin() -> &'static PatternSet {
        static BUILTIN_SET: OnceLock<PatternSet> = OnceLock::new();
        BUILTIN_SET.get_or_init(|| PatternSet::new(&builtin_pairs(), false).unwrap_or_else(|error| panic!("built-in query: {error}")))
    }

    /// Compile `(tag, .scm source)` pairs (in any order), every query now: an error in any of
    /// them is reported here.
    pub fn compile(queries: &[(String, String)]) -> Result<PatternSet, PatternError> {
        PatternSet::new(queries, true)
    }

    fn new(queries: &[(String, String)], eager: bool) -> Result<PatternSet, PatternError> {
        let mut sorted: Vec<&(String, String)> = queries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tags = Vec::with_capacity(sorted.len());
        let mut words_of_tag: Vec<Vec<String>> = Vec::with_capacity(sorted.len());
        for (index, (name, source)) in sorted.iter().enumerate() {
            let error = |line: usize, kind, message: String| PatternError { tag: name.clone(), line, column: 0, kind, message };
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(error(1, PatternErrorKind::Tag, format!("invalid tag name {name:?}")));
            }
            if index > 0 && sorted[index - 1].0 == *name {
                return Err(error(1, PatternErrorKind::Tag, format!("tag {name:?} is defined twice")));
            }
            let words = prefilter_words(source).map_err(|line| {
                error(line, PatternErrorKind::Prefilter, "a `; prefilter:` line needs at least one word".into())
            })?;
            let compiled = OnceLock::new();
            if eager {
                let _ = compiled.set(compile_query(name, source)?);
            }
            tags.push(Tag { name: name.clone(), source: source.clone(), compiled, prefiltered: words.is_some() });
            words_of_tag.push(words.unwrap_or_default());
        }
        let prefilter = Prefilter::new(&words_of_tag);
        let fingerprint = fingerprint(&sorted);
        Ok(PatternSet { tags, prefilter, fingerprint })
    }

    /// A digest of the tags and their sources (blake3 hex) and of [`PATTERNS_VERSION`].
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The tag names, sorted.
    pub fn tag_names(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|tag| tag.name.as_str())
    }

    /// The tags whose query matches in the tree `root` of `text` (sorted, deduplicated).
    pub fn tags(&self, root: Node<'_>, text: &str) -> Vec<String> {
        let mut run = Run::new(root, text);
        let mut matched = vec![false; self.tags.len()];
        for (index, tag) in self.tags.iter().enumerate() {
            if !tag.prefiltered {
                matched[index] = run.query_matches(tag, root, None);
            }
        }
        if let Some(prefilter) = &self.prefilter {
            let mut hits: Vec<Range<usize>> = Vec::new();
            let mut hits_of_tag: Vec<Vec<usize>> = Vec::new();
            let mut at = 0;
            while let Some(found) = prefilter.regex.find_at(text, at) {
                if hits_of_tag.is_empty() {
                    hits_of_tag = vec![Vec::new(); self.tags.len()];
                }
                for &tag in &prefilter.tags_of_word[found.as_str()] {
                    hits_of_tag[tag].push(hits.len());
                }
                hits.push(found.range());
                // Overlapping occurrences: continue at the next character, not after the word.
                at = found.start() + found.as_str().chars().next().map_or(1, char::len_utf8);
            }
            let mut statements: Vec<Option<Node<'_>>> = vec![None; hits.len()];
            for (index, tag_hits) in hits_of_tag.iter().enumerate() {
                let mut group: Option<(Node<'_>, Range<usize>)> = None;
                for &hit in tag_hits {
                    if matched[index] {
                        break;
                    }
                    let statement = *statements[hit].get_or_insert_with(|| run.statement_at(hits[hit].start));
                    match &mut group {
                        // Nearby hits of one statement share a run; distant ones do not, since the
                        // cursor visits every node between the start and the end of its range.
                        Some((node, range))
                            if node.id() == statement.id() && hits[hit].start <= range.end + MERGE_GAP =>
                        {
                            range.end = hits[hit].end
                        }
                        _ => {
                            if let Some((node, range)) = group.replace((statement, hits[hit].clone())) {
                                matched[index] = run.query_matches(&self.tags[index], node, Some(range));
                            }
                        }
                    }
                }
                if let Some((node, range)) = group
                    && !matched[index]
                {
                    matched[index] = run.query_matches(&self.tags[index], node, Some(range));
                }
            }
        }
        self.tags.iter().zip(matched).filter(|(_, m)| *m).map(|(tag, _)| tag.name.clone()).collect()
    }

    /// The tags, every query run on the whole tree (no prefilter, no ranges): the reference
    /// the prefiltered evaluation is tested against.
    #[cfg(test)]
    fn tags_unfiltered(&self, root: Node<'_>, text: &str) -> Vec<String> {
        let mut run = Run::new(root, text);
        self.tags.iter().filter(|tag| run.query_matches(tag, root, None)).map(|tag| tag.name.clone()).collect()
    }
}

impl Prefilter {
    fn new(words_of_tag: &[Vec<String>]) -> Option<Prefilter> {
        let mut tags_of_word: HashMap<String, Vec<usize>> = HashMap::new();
        for (tag, words) in words_of_tag.iter().enumerate() {
            for word in words {
                tags_of_word.entry(word.clone()).or_default().push(tag);
            }
        }
        if tags_of_word.is_empty() {
            return None;
        }
        let mut words: Vec<String> = tags_of_word.keys().cloned().collect();
        // Longest first: at one position the regex reports the first alternative that matches.
        words.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let own = tags_of_word.clone();
        for (word, tags) in tags_of_word.iter_mut() {
            for (other, other_tags) in &own {
                if other != word && word.starts_with(other.as_str()) {
                    tags.extend(other_tags);
                }
            }
            tags.sort_unstable();
            tags.dedup();
        }
        let pattern = words.iter().map(|w| regex::escape(w)).collect::<Vec<_>>().join("|");
        let regex = Regex::new(&pattern).expect("an alternation of escaped literals is a valid regex");
        Some(Prefilter { regex, tags_of_word })
    }
}

/// State of one [`PatternSet::tags`] call.
struct Run<'t, 'a> {
    root: Node<'t>,
    text: &'a str,
    /// Created when a query first runs (most files run none).
    cursor: Option<QueryCursor>,
    /// The innermost statement found last, reused for the next hit inside it.
    last_statement: Option<Node<'t>>,
    /// `#imports?` answers: (name, target) → bound.
    imports: HashMap<(String, String), bool>,
}

impl<'t, 'a> Run<'t, 'a> {
    fn new(root: Node<'t>, text: &'a str) -> Self {
        Run { root, text, cursor: None, last_statement: None, imports: HashMap::new() }
    }

    /// Whether some pattern of `tag` matches in `node`, starting within `range` if given.
    fn query_matches(&mut self, tag: &Tag, node: Node<'t>, range: Option<Range<usize>>) -> bool {
        let cursor = self.cursor.get_or_insert_with(QueryCursor::new);
        cursor.set_byte_range(range.unwrap_or(0..u32::MAX as usize));
        let compiled = tag.compiled();
        let mut matches = cursor.matches(&compiled.query, node, self.text.as_bytes());
        while let Some(found) = matches.next() {
            let accepted = compiled.imports[found.pattern_index].iter().all(|(capture, target)| {
                found.nodes_for_capture_index(*capture).all(|name| {
                    let name = node_text(name, self.text);
                    let key = (name.to_string(), target.clone());
                    if let Some(&bound) = self.imports.get(&key) {
                        return bound;
                    }
                    let bound = binds_import(self.root, self.text, name, target);
                    self.imports.insert(key, bound);
                    bound
                })
            });
            if accepted {
                return true;
            }
        }
        false
    }

    /// The innermost statement containing `byte` (see [`innermost_statement`]), reusing the
    /// last one found when `byte` is inside it and it contains no statements.
    fn statement_at(&mut self, byte: usize) -> Node<'t> {
        if let Some(last) = self.last_statement
            && last.byte_range().contains(&byte)
            && !is_container(last.kind())
            && !is_compound(last.kind())
        {
            return last;
        }
        let statement = innermost_statement(self.root, byte);
        self.last_statement = Some(statement);
        statement
    }
}

/// Nodes whose children are statements.
fn is_container(kind: &str) -> bool {
    matches!(kind, "module" | "block" | "ERROR")
}

/// Statements (and their clauses) whose blocks hold statements.
fn is_compound(kind: &str) -> bool {
    matches!(
        kind,
        "function_definition"
            | "class_definition"
            | "decorated_definition"
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
    )
}

/// The innermost statement of `root` containing `byte`: descends through blocks and compound
/// statements only, never into expressions (no statement is inside one). When `byte` is in a
/// compound statement's header (a class's bases, a decorator, an `if` condition), that is the
/// compound statement. Returns `root` when no statement contains `byte`.
fn innermost_statement(root: Node<'_>, byte: usize) -> Node<'_> {
    let mut cursor = root.walk();
    let mut statement = root;
    loop {
        let kind = cursor.node().kind();
        let container = is_container(kind);
        if !container && !is_compound(kind) {
            break;
        }
        if cursor.goto_first_child_for_byte(byte).is_none() {
            break;
        }
        let child = cursor.node();
        if child.start_byte() > byte {
            break;
        }
        if container {
            statement = child;
        }
    }
    statement
}

/// Whether some import statement of the file binds `name` to `target` (see the module docs).
/// Only statements around occurrences of the target's first component are examined.
fn binds_import(root: Node<'_>, text: &str, name: &str, target: &str) -> bool {
    let first = target.split('.').next().unwrap_or(target);
    let mut seen = Vec::new();
    for (at, _) in text.match_indices(first) {
        let statement = innermost_statement(root, at);
        if seen.contains(&statement.id()) {
            continue;
        }
        seen.push(statement.id());
        if statement_binds(statement, text, name, target) {
            return true;
        }
    }
    false
}

/// `target` is `module.name`.
fn is_attribute_of(target: &str, module: &str, name: &str) -> bool {
    target.strip_prefix(module).and_then(|rest| rest.strip_prefix('.')) == Some(name)
}

fn statement_binds(statement: Node<'_>, text: &str, name: &str, target: &str) -> bool {
    let mut cursor = statement.walk();
    match statement.kind() {
        "import_statement" => statement.children_by_field_id(*field::NAME, &mut cursor).any(|imported| {
            match imported.kind() {
                // `import a.b` binds `a` to module `a`.
                "dotted_name" => {
                    let module = dotted(imported, text);
                    let top = module.split('.').next().unwrap_or(&module);
                    top == name && top == target
                }
                "aliased_import" => {
                    let (Some(module), Some(alias)) =
                        (imported.child_by_field_id(field::NAME.get()), imported.child_by_field_id(field::ALIAS.get()))
                    else {
                        return false;
                    };
                    node_text(alias, text) == name && dotted(module, text) == target
                }
                _ => false,
            }
        }),
        "import_from_statement" => {
            let Some(module) = statement.child_by_field_id(field::MODULE_NAME.get()).filter(|m| m.kind() == "dotted_name")
            else {
                return false;
            };
            let module = dotted(module, text);
            let star = statement.children(&mut cursor).any(|child| child.kind() == "wildcard_import");
            if star {
                return is_attribute_of(target, &module, name);
            }
            statement.children_by_field_id(*field::NAME, &mut cursor).any(|imported| match imported.kind() {
                "dotted_name" => {
                    let imported = dotted(imported, text);
                    imported == name && is_attribute_of(target, &module, &imported)
                }
                "aliased_import" => {
                    let (Some(original), Some(alias)) =
                        (imported.child_by_field_id(field::NAME.get()), imported.child_by_field_id(field::ALIAS.get()))
                    else {
                        return false;
                    };
                    node_text(alias, text) == name && is_attribute_of(target, &module, &dotted(original, text))
                }
                _ => false,
            })
        }
        _ => false,
    }
}

/// The words of the `; prefilter:` lines among the leading comment lines of a query, `None`
/// when there is no such line; `Err(line)` for a line without words.
fn prefilter_words(source: &str) -> Result<Option<Vec<String>>, usize> {
    let mut words: Option<Vec<String>> = None;
    for (index, line) in source.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix(';') else { break };
        let Some(list) = comment.trim_start_matches(';').trim_start().strip_prefix("prefilter:") else {
            continue;
        };
        let list: Vec<String> = list.split_whitespace().map(str::to_string).collect();
        if list.is_empty() {
            return Err(index + 1);
        }
        words.get_or_insert_with(Vec::new).extend(list);
    }
    Ok(words)
}

fn is_dotted_name(target: &str) -> bool {
    !target.is_empty()
        && target.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// 1-based line and 0-based byte column of `byte` in `source`.
fn position(source: &str, byte: usize) -> (usize, usize) {
    let before = &source[..byte.min(source.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before.len() - line_start)
}

fn kind_of(kind: &QueryErrorKind) -> PatternErrorKind {
    match kind {
        QueryErrorKind::Syntax => PatternErrorKind::Syntax,
        QueryErrorKind::NodeType => PatternErrorKind::NodeType,
        QueryErrorKind::Field => PatternErrorKind::Field,
        QueryErrorKind::Capture => PatternErrorKind::Capture,
        QueryErrorKind::Predicate => PatternErrorKind::Predicate,
        QueryErrorKind::Structure => PatternErrorKind::Structure,
        QueryErrorKind::Language => PatternErrorKind::Language,
    }
}

/// The built-in `(tag, .scm source)` pairs.
fn builtin_pairs() -> Vec<(String, String)> {
    BUILTIN_QUERIES.iter().map(|(tag, source)| (tag.to_string(), source.to_string())).collect()
}

/// blake3 over the engine version and the sorted (tag, source) pairs, length-prefixed.
fn fingerprint(sorted: &[&(String, String)]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"codeintel-enrich patterns\0");
    hasher.update(&PATTERNS_VERSION.to_le_bytes());
    hasher.update(&(sorted.len() as u64).to_le_bytes());
    for (tag, source) in sorted {
        for part in [tag, source] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::parse::parse_text;

    fn tags_of(source: &str) -> Vec<String> {
        let parsed = parse_text(source);
        let set = PatternSet::builtin();
        let tags = set.tags(parsed.root(), source);
        assert_eq!(tags, set.tags_unfiltered(parsed.root(), source), "prefiltered = unfiltered for {source:?}");
        tags
    }

    #[track_caller]
    fn assert_tagged(tag: &str, sources: &[&str]) {
        for source in sources {
            assert!(tags_of(source).iter().any(|t| t == tag), "{tag} should match {source:?}");
        }
    }

    #[track_caller]
    fn assert_not_tagged(tag: &str, sources: &[&str]) {
        for source in sources {
            assert!(!tags_of(source).iter().any(|t| t == tag), "{tag} should not match {source:?}");
        }
    }

    #[test]
    fn patterns_builtin_tags_compile() {
        let names: Vec<&str> = PatternSet::builtin().tag_names().collect();
        assert_eq!(names, ["abstract", "cli", "dataclass", "deprecated", "dynamic-import", "exec-eval", "protocol"]);
        for (tag, source) in BUILTIN_QUERIES {
            assert!(prefilter_words(source).unwrap().is_some(), "{tag} has a prefilter line");
        }
        // The built-in set compiles lazily: every query must compile (and check) eagerly too.
        let eager = PatternSet::compile(&builtin_pairs()).unwrap_or_else(|e| panic!("built-in query: {e}"));
        assert_eq!(eager.fingerprint(), PatternSet::builtin().fingerprint());
    }

    #[test]
    fn patterns_builtin_queries_compile_on_first_use() {
        let lazy = PatternSet::new(&builtin_pairs(), false).unwrap();
        let compiled = |set: &PatternSet| -> Vec<String> {
            set.tags.iter().filter(|t| t.compiled.get().is_some()).map(|t| t.name.clone()).collect()
        };
        assert!(compiled(&lazy).is_empty());
        let plain = "def f(x):\n    return x + 1\n";
        assert!(lazy.tags(parse_text(plain).root(), plain).is_empty());
        assert!(compiled(&lazy).is_empty(), "no prefilter word, no query compiled");
        let tagged = "from dataclasses import dataclass\n\n@dataclass\nclass C:\n    x: int\n";
        assert_eq!(lazy.tags(parse_text(tagged).root(), tagged), ["dataclass"]);
        assert_eq!(compiled(&lazy), ["dataclass"], "only the query whose words occur");
    }

    #[test]
    fn patterns_text_predicates_are_applied_by_the_cursor() {
        // tree-sitter 0.27's QueryMatches applies #eq?/#match?/#any-of? itself.
        let set = PatternSet::compile(&[
            ("eq".into(), "(call function: (identifier) @f (#eq? @f \"foo\"))".into()),
            ("match".into(), "(call function: (identifier) @f (#match? @f \"^ba[rz]$\"))".into()),
            ("any-of".into(), "(call function: (identifier) @f (#any-of? @f \"qux\" \"quux\"))".into()),
            ("not-eq".into(), "(call function: (identifier) @f (#not-eq? @f \"foo\"))".into()),
        ])
        .unwrap();
        let tags = |source: &str| set.tags(parse_text(source).root(), source);
        assert_eq!(tags("foo()\n"), ["eq"]);
        assert_eq!(tags("baz()\n"), ["match", "not-eq"]);
        assert_eq!(tags("quux()\n"), ["any-of", "not-eq"]);
        assert_eq!(tags("bar2()\n"), ["not-eq"]);
        assert_eq!(tags("x = 1\n"), Vec::<String>::new());
    }

    #[test]
    fn patterns_dynamic_import() {
        assert_tagged(
            "dynamic-import",
            &[
                "import importlib\nm = importlib.import_module('x')\n",
                "from importlib import import_module\ndef f(n):\n    return import_module(n)\n",
                "from importlib import (\n    util,\n    import_module,\n)\nimport_module('a')\n",
                "from importlib import *\nimport_module('a')\n",
                "from importlib import import_module as im\nim('x')\n",
                "mod = __import__('os.path')\n",
                "class A:\n    def f(self):\n        return [__import__(n) for n in names]\n",
                "import builtins\nbuiltins.__import__('x')\n",
            ],
        );
        assert_not_tagged(
            "dynamic-import",
            &[
                "loader.import_module('x')\n",
                "from test.support.import_helper import import_module\nimport_module('x')\n",
                "from importlib import import_module\n",
                "import_module('x')\n",
                "def import_module(name): pass\nimport_module('x')\n",
                "x = '__import__(\"os\")'\n# importlib.import_module('x')\n",
                "from importlib import util\nutil.import_module('x')\n",
                "print(__import__)\n",
            ],
        );
    }

    #[test]
    fn patterns_exec_eval() {
        assert_tagged(
            "exec-eval",
            &[
                "exec('x = 1')\n",
                "def f(s, ns):\n    if s:\n        return eval(s, ns)\n",
                "value = [eval(x) for x in xs]\n",
                "import builtins\nbuiltins.exec(code)\n",
                "exec (code)\n",
            ],
        );
        assert_not_tagged(
            "exec-eval",
            &[
                "self.eval()\n",
                "model.eval()\nexecutor.exec(q)\n",
                "s = 'exec(code)'\n",
                "# eval(x)\n",
                "def evaluate(x): return executable(x)\n",
                "exec_ = 1\nprint(exec_)\n",
                "\"\"\"Docstring: eval(expr) is dangerous.\"\"\"\n",
            ],
        );
    }

    #[test]
    fn patterns_dataclass() {
        assert_tagged(
            "dataclass",
            &[
                "from dataclasses import dataclass\n@dataclass\nclass A:\n    x: int\n",
                "@dataclass(frozen=True)\nclass A:\n    x: int\n",
                "import dataclasses\n@dataclasses.dataclass\nclass A: pass\n",
                "import dataclasses\n@dataclasses.dataclass(order=True)\nclass A: pass\n",
                "@other\n@dataclass\nclass A: pass\n",
                "def f():\n    @dataclass\n    class Local: pass\n",
                "from pydantic import dataclasses\n@pydantic.dataclasses.dataclass\nclass A: pass\n",
            ],
        );
        assert_not_tagged(
            "dataclass",
            &[
                "# @dataclass\nclass A: pass\n",
                "from dataclasses import dataclass\n",
                "@dataclass_transform()\nclass Model: pass\n",
                "@attr.dataclass\nclass A: pass\n",
                "B = dataclass(A)\n",
                "s = '@dataclass'\n",
            ],
        );
    }

    #[test]
    fn patterns_abstract() {
        assert_tagged(
            "abstract",
            &[
                "from abc import ABC\nclass A(ABC): pass\n",
                "import abc\nclass A(abc.ABC): pass\n",
                "class A(Base, ABC, metaclass=Meta): pass\n",
                "from abc import ABCMeta\nclass A(metaclass=ABCMeta): pass\n",
                "import abc\nclass A(object, metaclass=abc.ABCMeta): pass\n",
                "class A:\n    @abstractmethod\n    def f(self): ...\n",
                "class A:\n    @property\n    @abc.abstractmethod\n    def f(self): ...\n",
                "class A:\n    @abc.abstractproperty\n    def f(self): ...\n",
            ],
        );
        assert_not_tagged(
            "abstract",
            &[
                "from abc import ABC\n",
                "from abc import ABC, abstractmethod, ABCMeta\n",
                "class A(ABCD): pass\n",
                "class A(Base):\n    '''Not an ABC.'''\n",
                "isinstance(x, ABC)\n",
                "class A(metaclass=Meta, base=ABCMeta): pass\n",
                "class A(other.ABC): pass\n",
                "# @abstractmethod\ndef f(): pass\n",
                "@my.abstractmethod\ndef f(): pass\n",
            ],
        );
    }

    #[test]
    fn patterns_protocol() {
        assert_tagged(
            "protocol",
            &[
                "from typing import Protocol\nclass P(Protocol):\n    def f(self) -> int: ...\n",
                "import typing\nclass P(typing.Protocol): pass\n",
                "import typing_extensions\nclass P(typing_extensions.Protocol): pass\n",
                "class P(Protocol[T]): pass\n",
                "class P(Sized, typing.Protocol[K, V]): pass\n",
                "if TYPE_CHECKING:\n    class P(Protocol): pass\n",
            ],
        );
        assert_not_tagged(
            "protocol",
            &[
                "from typing import Protocol\n",
                "class P(SupportsProtocol): pass\n",
                "class P(HTTPProtocol): pass\n",
                "class P(asyncio.Protocol): pass\n",
                "def f(p: Protocol) -> None: pass\n",
                "class P(Base):\n    protocol = Protocol\n",
            ],
        );
    }

    #[test]
    fn patterns_deprecated() {
        assert_tagged(
            "deprecated",
            &[
                "import warnings\nwarnings.warn('old', DeprecationWarning)\n",
                "import warnings\ndef f():\n    warnings.warn('old', PendingDeprecationWarning, stacklevel=2)\n",
                "import warnings\nwarnings.warn('old', category=FutureWarning)\n",
                "import warnings\nwarnings.warn(f'{x} is old',\n              DeprecationWarning, 2)\n",
                "import warnings\nwarnings.warn(DeprecationWarning('old'))\n",
                "from warnings import warn\nwarn('old', DeprecationWarning)\n",
                "from typing_extensions import deprecated\n@deprecated('use g')\ndef f(): pass\n",
                "import typing_extensions\n@typing_extensions.deprecated('use g')\nclass A: pass\n",
                "import warnings\nclass A:\n    @warnings.deprecated('use g')\n    def f(self): pass\n",
                "@deprecated\ndef f(): pass\n",
            ],
        );
        assert_not_tagged(
            "deprecated",
            &[
                "import warnings\nwarnings.warn('careful', UserWarning)\n",
                "import warnings\nwarnings.warn('DeprecationWarning: not really')\n",
                "warnings.simplefilter('ignore', DeprecationWarning)\n",
                "log.warn('old', DeprecationWarning)\n",
                "warn('old', DeprecationWarning)\n",
                "from my.warnings import warn\nwarn('old', DeprecationWarning)\n",
                "'''deprecated since 3.4'''\n",
                "# @deprecated('x')\ndef f(): pass\n",
                "@other.deprecated('x')\ndef f(): pass\n",
                "with self.assertWarns(DeprecationWarning): f()\n",
            ],
        );
    }

    #[test]
    fn patterns_cli() {
        assert_tagged(
            "cli",
            &[
                "import argparse\ndef main():\n    parser = argparse.ArgumentParser(description='x')\n",
                "from argparse import ArgumentParser\np = ArgumentParser()\n",
                "import argparse\nclass Parser(argparse.ArgumentParser): pass\n",
                "import click\n@click.command()\ndef main(): pass\n",
                "import click\n@click.group\ndef cli(): pass\n",
                "import typer\napp = typer.Typer()\n",
                "from typer import Typer\napp = Typer()\n",
            ],
        );
        assert_not_tagged(
            "cli",
            &[
                "import argparse\n",
                "import click\nclick.echo('hi')\n",
                "p = ArgumentParser()\n",
                "from optparse import OptionParser\np = OptionParser()\n",
                "@app.command()\ndef main(): pass\n",
                "# argparse.ArgumentParser()\n",
                "s = 'typer.Typer()'\n",
            ],
        );
    }

    #[test]
    fn patterns_tags_are_sorted_and_deduplicated() {
        let source = "\
import abc, dataclasses, warnings
@dataclasses.dataclass
class A(abc.ABC):
    @abc.abstractmethod
    def f(self): ...
    @dataclasses.dataclass
    class B: pass
exec('x'); eval('y'); exec('z')
";
        assert_eq!(tags_of(source), ["abstract", "dataclass", "exec-eval"]);
        assert!(tags_of("").is_empty());
        assert!(tags_of("x = 1\n").is_empty());
    }

    #[test]
    fn patterns_syntax_errors_do_not_hide_other_statements() {
        let source = "def broken(:\n    pass\n\nexec('x')\n";
        assert_eq!(tags_of(source), ["exec-eval"]);
    }

    #[test]
    fn patterns_overlapping_prefilter_words() {
        // `ab` is a prefix of `abc`, `bcd` overlaps it: each word is found.
        let set = PatternSet::compile(&[
            ("ab".into(), "; prefilter: ab\n((identifier) @i (#eq? @i \"ab\"))".into()),
            ("abc".into(), "; prefilter: abc\n((identifier) @i (#match? @i \"^abc\"))".into()),
            ("bcd".into(), "; prefilter: bcd\n((identifier) @i (#match? @i \"bcd$\"))".into()),
        ])
        .unwrap();
        let tags = |source: &str| set.tags(parse_text(source).root(), source);
        assert_eq!(tags("abcd\n"), ["abc", "bcd"]);
        assert_eq!(tags("ab + abc\n"), ["ab", "abc"]);
        assert_eq!(tags("x\n"), Vec::<String>::new());
    }

    #[test]
    fn patterns_user_queries() {
        let queries = [
            ("todo".to_string(), "; prefilter: TODO\n((comment) @c (#match? @c \"TODO\"))\n".to_string()),
            (
                "main-guard".to_string(),
                "(if_statement condition: (comparison_operator (identifier) @n) (#eq? @n \"__name__\"))\n".to_string(),
            ),
            (
                "requests".to_string(),
                "; prefilter: get\n(call function: (identifier) @f (#eq? @f \"get\") (#imports? @f \"requests.get\"))\n"
                    .to_string(),
            ),
        ];
        let set = PatternSet::compile(&queries).unwrap();
        assert_eq!(set.tag_names().collect::<Vec<_>>(), ["main-guard", "requests", "todo"]);
        let source = "# TODO: fix\nfrom requests import get\nif __name__ == '__main__':\n    get('u')\n";
        let parsed = parse_text(source);
        assert_eq!(set.tags(parsed.root(), source), ["main-guard", "requests", "todo"]);
        assert_eq!(set.tags_unfiltered(parsed.root(), source), ["main-guard", "requests", "todo"]);
        let source = "x = 'TODO'\nget('u')\n";
        assert!(set.tags(parse_text(source).root(), source).is_empty());
    }

    #[test]
    fn patterns_imports_predicate() {
        let set = PatternSet::compile(&[(
            "os-path".into(),
            "; prefilter: join
(call
  function: [
    (identifier) @f @bare
    (attribute object: (identifier) @m attribute: (identifier) @f)
  ]
  (#eq? @f \"join\")
  (#imports? @bare \"os.path.join\")
  (#imports? @m \"os.path\"))"
                .into(),
        )])
        .unwrap();
        let tags = |source: &str| set.tags(parse_text(source).root(), source);
        assert_eq!(tags("from os.path import join\njoin(a, b)\n"), ["os-path"]);
        assert_eq!(tags("from os.path import join as j, join\njoin(a, b)\n"), ["os-path"]);
        assert_eq!(tags("import os.path as p\np.join(a, b)\n"), ["os-path"]);
        assert_eq!(tags("from os import path\npath.join(a, b)\n"), ["os-path"]);
        assert!(tags("import os.path\npath.join(a, b)\n").is_empty(), "import os.path binds os");
        assert!(tags("from os.path import join as j\njoin(a, b)\n").is_empty());
        assert!(tags("from .os.path import join\njoin(a, b)\n").is_empty());
        assert!(tags("join(a, b)\n").is_empty());
    }

    #[test]
    fn patterns_compile_errors_name_the_tag_and_position() {
        let queries = |source: &str| {
            vec![("good".to_string(), "(identifier) @i".to_string()), ("bad".to_string(), source.to_string())]
        };
        let error = PatternSet::compile(&queries("; prefilter: x\n(call\n  function: (identifier) @f\n  (#eq? @f \"x\")\n"))
            .err()
            .unwrap();
        assert_eq!((error.tag.as_str(), error.kind), ("bad", PatternErrorKind::Syntax));
        let error = PatternSet::compile(&queries("(call)\n(call function: (identifer) @f)\n")).err().unwrap();
        assert_eq!((error.tag.as_str(), error.kind, error.line, error.column), ("bad", PatternErrorKind::NodeType, 2, 17));
        assert!(error.to_string().starts_with("pattern `bad`, line 2, column 17: NodeType error"), "{error}");
        let error = PatternSet::compile(&queries("(call funktion: (identifier))")).err().unwrap();
        assert_eq!((error.kind, error.line, error.column), (PatternErrorKind::Field, 1, 6));
        let error = PatternSet::compile(&queries("(call)\n\n  ((call function: (_) @f) (#frobnicate? @f))\n")).err().unwrap();
        assert_eq!((error.kind, error.line, error.column), (PatternErrorKind::Predicate, 3, 2));
        assert!(error.message.contains("#frobnicate?"), "{error}");
        let error = PatternSet::compile(&queries("((call) @c (#imports? @c))")).err().unwrap();
        assert_eq!(error.kind, PatternErrorKind::Predicate);
        let error = PatternSet::compile(&queries("((call) @c (#is? local))")).err().unwrap();
        assert_eq!(error.kind, PatternErrorKind::Predicate);
        let error = PatternSet::compile(&queries("; comment\n;prefilter:\n(call)")).err().unwrap();
        assert_eq!((error.kind, error.line), (PatternErrorKind::Prefilter, 2));
        let error = PatternSet::compile(&[("a b".into(), "(call)".into())]).err().unwrap();
        assert_eq!(error.kind, PatternErrorKind::Tag);
        let error = PatternSet::compile(&[("a".into(), "(call)".into()), ("a".into(), "(call)".into())]).err().unwrap();
        assert_eq!(error.kind, PatternErrorKind::Tag);
    }

    #[test]
    fn patterns_fingerprint() {
        let pairs = |source: &str| vec![("a".to_string(), source.to_string()), ("b".to_string(), "(call)".to_string())];
        let one = PatternSet::compile(&pairs("(identifier)")).unwrap();
        let same = PatternSet::compile(&pairs("(identifier)")).unwrap();
        let edited = PatternSet::compile(&pairs("(identifier) ")).unwrap();
        let mut reversed = pairs("(identifier)");
        reversed.reverse();
        let reversed = PatternSet::compile(&reversed).unwrap();
        let renamed =
            PatternSet::compile(&[("a".to_string(), "(identifier)".to_string()), ("c".to_string(), "(call)".to_string())])
                .unwrap();
        assert_eq!(one.fingerprint().len(), 64);
        assert_eq!(one.fingerprint(), same.fingerprint());
        assert_eq!(one.fingerprint(), reversed.fingerprint(), "the order of the pairs does not matter");
        assert_ne!(one.fingerprint(), edited.fingerprint());
        assert_ne!(one.fingerprint(), renamed.fingerprint());
        assert_ne!(one.fingerprint(), PatternSet::builtin().fingerprint());
        assert_eq!(PatternSet::builtin().fingerprint(), PatternSet::builtin().fingerprint());
    }

    #[test]
    fn patterns_prefilter_contract() {
        // A pattern whose root holds the word only in a statement of its body (here, a class
        // whose body mentions `Enum`) is outside the contract: prefiltered, it does not match.
        let query = "(class_definition body: (block (expression_statement (assignment right: (identifier) @v))) (#eq? @v \"Enum\"))";
        let without = PatternSet::compile(&[("t".into(), query.into())]).unwrap();
        let with = PatternSet::compile(&[("t".into(), format!("; prefilter: Enum\n{query}"))]).unwrap();
        let source = "class A:\n    x = Enum\n";
        let parsed = parse_text(source);
        assert_eq!(without.tags(parsed.root(), source), ["t"]);
        assert!(with.tags(parsed.root(), source).is_empty());
        // Rooted at the statement holding the word, it does.
        let query = "; prefilter: Enum\n(assignment right: (identifier) @v (#eq? @v \"Enum\"))";
        let inside = PatternSet::compile(&[("t".into(), query.into())]).unwrap();
        assert_eq!(inside.tags(parsed.root(), source), ["t"]);
    }

    /// Every `.py` file under `dir`, sorted, skipping `site-packages`.
    fn python_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if entry.file_name() != "site-packages" {
                    python_files(&path, out);
                }
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "py") {
                out.push(path);
            }
        }
    }

    /// Cost of `tags()` against parsing on Python's standard library, and how many files each
    /// tag matched. `cargo test --lib patterns_stdlib_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn patterns_stdlib_cost() {
        use std::time::{Duration, Instant};
        let output = std::process::Command::new("python3")
            .args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
            .output()
            .expect("python3 runs");
        let stdlib = std::path::PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        let mut files = Vec::new();
        python_files(&stdlib, &mut files);
        files.sort();
        let set = PatternSet::builtin();
        let (mut parse, mut tags, mut unfiltered) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let (mut scan, mut hits) = (Duration::ZERO, 0usize);
        let prefilter = set.prefilter.as_ref().unwrap();
        let (mut bytes, mut parsed_files, mut tagged_files) = (0usize, 0usize, 0usize);
        let mut counts: std::collections::BTreeMap<String, usize> = set.tag_names().map(|t| (t.to_string(), 0)).collect();
        let mut disagreements = Vec::new();
        // PATTERNS_DUMP=<file>: also write `path<TAB>tag` lines, to compare with an oracle.
        let mut dump = String::new();
        for path in &files {
            let Ok(raw) = std::fs::read(path) else { continue };
            let Ok(decoded) = crate::source::decode(&raw) else { continue };
            let text = &*decoded.text;
            bytes += text.len();
            parsed_files += 1;
            let start = Instant::now();
            let parsed = parse_text(text);
            parse += start.elapsed();
            let start = Instant::now();
            let found = set.tags(parsed.root(), text);
            tags += start.elapsed();
            let start = Instant::now();
            hits += prefilter.regex.find_iter(text).count();
            scan += start.elapsed();
            let start = Instant::now();
            let reference = set.tags_unfiltered(parsed.root(), text);
            unfiltered += start.elapsed();
            if found != reference {
                disagreements.push(format!("{}: {found:?} != {reference:?}", path.strip_prefix(&stdlib).unwrap().display()));
            }
            tagged_files += usize::from(!found.is_empty());
            for tag in &found {
                dump.push_str(&format!("{}\t{tag}\n", path.strip_prefix(&stdlib).unwrap().display()));
            }
            for tag in found {
                *counts.get_mut(&tag).unwrap() += 1;
            }
        }
        if let Ok(target) = std::env::var("PATTERNS_DUMP") {
            std::fs::write(target, dump).unwrap();
        }
        let percent = |d: Duration| 100.0 * d.as_secs_f64() / parse.as_secs_f64();
        println!("{parsed_files} files, {:.1} MB from {}", bytes as f64 / 1e6, stdlib.display());
        println!("parse:               {:8.3} s", parse.as_secs_f64());
        println!("tags():              {:8.3} s  ({:.2}% of parse)", tags.as_secs_f64(), percent(tags));
        println!("  of which the prefilter scan: {:.3} s ({hits} words found)", scan.as_secs_f64());
        println!("queries, whole tree: {:8.3} s  ({:.2}% of parse)", unfiltered.as_secs_f64(), percent(unfiltered));
        println!("files with a tag:    {tagged_files}");
        for (tag, count) in &counts {
            println!("  {tag:16} {count:5}");
        }
        assert!(disagreements.is_empty(), "prefiltered tags differ from whole-tree queries:\n{}", disagreements.join("\n"));
    }
}

/// The pattern tags of `file`: the built-in queries and the user's, run on its tree. Cached per
/// file by content and both query sets' fingerprints.
#[salsa::tracked(returns(ref))]
pub fn pattern_tags(db: &dyn crate::db::Db, file: crate::db::SourceFile) -> Vec<String> {
    let user = crate::db::PatternConfig::try_get(db).map(|c| c.fingerprint(db).clone()).unwrap_or_default();
    let extra = vec![("builtin_queries", PatternSet::builtin().fingerprint().to_string()), ("user_queries", user.clone())];
    crate::stages::cached::per_file_with(db, file, "pattern_tags", PATTERNS_VERSION, false, extra, || {
        let tree = crate::stages::parse::parsed_module(db, file);
        let text = crate::db::source_text(db, file);
        let mut tags = PatternSet::builtin().tags(tree.root(), text);
        if !user.is_empty()
            && let Some(patterns) = db.user_patterns()
        {
            tags.extend(patterns.tags(tree.root(), text));
            tags.sort();
            tags.dedup();
        }
        tags
    })
}

impl crate::db::PatternTagger for PatternSet {
    fn tags(&self, root: Node<'_>, text: &str) -> Vec<String> {
        PatternSet::tags(self, root, text)
    }

    fn fingerprint(&self) -> &str {
        PatternSet::fingerprint(self)
    }
}
