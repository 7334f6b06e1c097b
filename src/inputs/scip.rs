//! A SCIP index (<https://github.com/scip-code/scip>): the `index.scip` protobuf that scip-python
//! writes, or the same `scip.Index` message in protobuf's JSON mapping.
//!
//! The reader keeps only what the per-file figures need: each document's counts, the symbols it
//! defines and, for every symbol defined somewhere in the index, the documents that define it.
//! It never holds the decoded `Index`: the `documents` field (and `external_symbols`) is decoded
//! one message at a time — from a [`CodedInputStream`] over the file for the protobuf form, from
//! one JSON array element at a time for the JSON form — and each document is folded into compact
//! aggregates (interned symbol ids) before the next is read. A protobuf file is streamed, so a
//! load holds the aggregates and one document; a JSON file is held as text while it is read.
//!
//! The form is the file's extension (`.json`) or its content: JSON starts with `{` after
//! whitespace, followed by `"` or `}` after whitespace (a protobuf `Index` starts with byte
//! `0x0A`, a newline, and its metadata length may well be `0x7B`, `{`; the byte after it is then
//! a metadata field tag, never `"` or `}` in practice).
//!
//! Definitions of the figures ([`ScipFileStats`]):
//! - a *definition* is an occurrence whose `symbol_roles` has the `Definition` bit; every other
//!   occurrence is a *reference*;
//! - local symbols (`local N`, document-scoped) and occurrences without a symbol count as
//!   definitions and references, but never as defined symbols or cross-file references;
//! - documents that share a `relative_path` are merged.
//!
//! Errors name the file and what is wrong: `file: invalid protobuf at byte N: …` for the
//! protobuf form, `file:line:column: key: message` for the JSON form.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Component, Path};

use ::scip::types::{Document, Metadata, SymbolInformation, SymbolRole};
use anyhow::{Result, anyhow};
use protobuf::{CodedInputStream, Message};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Per-document figures of a SCIP index.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScipFileStats {
    /// Distinct non-local symbols with a definition occurrence in the document.
    pub symbols_defined: u32,
    /// Occurrences with the `Definition` role.
    pub definitions: u32,
    /// Occurrences without the `Definition` role.
    pub references: u32,
    /// Reference occurrences of a symbol that another document of the index defines.
    pub references_to_other_files: u32,
    /// Other documents with a reference occurrence of a symbol this document defines.
    pub referencing_files: u32,
}

/// What a SCIP index says per file: see the module documentation.
pub struct ScipIndex {
    project_root: String,
    /// Sorted by path.
    documents: Vec<DocumentEntry>,
    /// Symbols defined in at least one document, sorted by name.
    symbols: Vec<SymbolEntry>,
}

struct DocumentEntry {
    path: Box<str>,
    stats: ScipFileStats,
    /// Indexes into `symbols`, ascending (so sorted by name).
    defined: Box<[u32]>,
}

struct SymbolEntry {
    name: Box<str>,
    /// Indexes into `documents`, ascending (so sorted by path).
    defining: Box<[u32]>,
}

impl fmt::Debug for ScipIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScipIndex")
            .field("project_root", &self.project_root)
            .field("documents", &self.documents.len())
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

impl ScipIndex {
    /// Read and validate; errors name the file and what is wrong (truncated protobuf: the byte
    /// offset; JSON of another schema: the key/position). The protobuf form is streamed from
    /// the file.
    pub fn load(path: &Path) -> Result<ScipIndex> {
        let cannot_read = |e: std::io::Error| anyhow!("{}: cannot read: {e}", path.display());
        let mut file = File::open(path).map_err(cannot_read)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut file).take(SNIFF_BYTES as u64).read_to_end(&mut head).map_err(cannot_read)?;
        if head.is_empty() {
            return Err(empty(path));
        }
        if is_json(path, &head) {
            let mut bytes = head;
            file.read_to_end(&mut bytes).map_err(cannot_read)?;
            return Self::from_bytes(path, &bytes);
        }
        let len = file.metadata().map_err(cannot_read)?.len();
        file.rewind().map_err(cannot_read)?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut is = CodedInputStream::from_buf_read(&mut reader);
        // No length inside the file can exceed the file: a corrupt one fails at once.
        is.push_limit(len).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
        let mut builder = Builder::default();
        decode_protobuf(path, &mut is, len, &mut builder)?;
        builder.finish(path)
    }

    /// [`ScipIndex::load`] from bytes already read; `name` is the file the errors name (and
    /// whose `.json` extension selects the JSON form).
    pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<ScipIndex> {
        if bytes.is_empty() {
            return Err(empty(name));
        }
        let mut builder = Builder::default();
        if is_json(name, bytes) {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| anyhow!("{}: not UTF-8 at byte {}", name.display(), e.valid_up_to()))?;
            if text.trim().is_empty() {
                return Err(empty(name));
            }
            decode_json(name, text, &mut builder)?;
        } else {
            let mut is = CodedInputStream::from_bytes(bytes);
            decode_protobuf(name, &mut is, bytes.len() as u64, &mut builder)?;
        }
        builder.finish(name)
    }

    /// `metadata.project_root` (a URI like `file:///abs/path`), as written.
    pub fn project_root(&self) -> &str {
        &self.project_root
    }

    /// Repo-relative document paths (`Document.relative_path`), sorted.
    pub fn documents(&self) -> Vec<&str> {
        self.documents.iter().map(|d| &*d.path).collect()
    }

    /// The figures of one document (see [`ScipFileStats`]), or `None` when the index has no
    /// such document.
    pub fn file_stats(&self, relative_path: &str) -> Option<ScipFileStats> {
        self.document(relative_path).map(|d| d.stats.clone())
    }

    /// Non-local symbols with a definition occurrence in the document, sorted.
    pub fn symbols_defined_in(&self, relative_path: &str) -> Vec<&str> {
        self.document(relative_path)
            .map(|d| d.defined.iter().map(|&s| &*self.symbols[s as usize].name).collect())
            .unwrap_or_default()
    }

    /// Documents with a definition occurrence of `symbol`, sorted (empty for a local symbol or
    /// one defined outside the index).
    pub fn defining_files(&self, symbol: &str) -> Vec<&str> {
        match self.symbols.binary_search_by(|s| (*s.name).cmp(symbol)) {
            Ok(i) => self.symbols[i].defining.iter().map(|&d| &*self.documents[d as usize].path).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn document(&self, relative_path: &str) -> Option<&DocumentEntry> {
        let i = self.documents.binary_search_by(|d| (*d.path).cmp(relative_path)).ok()?;
        Some(&self.documents[i])
    }
}

/// Map a document of an index to a path relative to the repository root, when the index was
/// made in another directory than the repository root.
///
/// `project_root_uri` is the index's `metadata.project_root`: a `file:` URI (`file:///abs`,
/// `file://localhost/abs` or `file:/abs`; `%XX` escapes decoded; `file:///C:/x` is the Windows
/// path `C:/x`). The document is `project_root/relative_path`; the result is that path relative
/// to `repo_root`, with `/` separators. Both sides are normalized lexically (`.` and `..`
/// resolved, no file system access, so symlinks are not followed: canonicalize `repo_root`
/// first if it may contain one). `None` when the document lies outside `repo_root` (or is the
/// root itself), when `repo_root` is not absolute, when the URI is not a local `file:` URI, or
/// when `relative_path` is absolute or climbs above the project root.
///
/// Index made at `/ci/checkout/src` with `pkg/a.py`, repo root `/ci/checkout`: `src/pkg/a.py`;
/// index made at `/ci/checkout` with `src/pkg/a.py`, repo root `/ci/checkout/src`: `pkg/a.py`.
pub fn rebase(project_root_uri: &str, repo_root: &Path, relative_path: &str) -> Option<String> {
    if !repo_root.is_absolute() || relative_path.starts_with('/') || relative_path.contains('\\') {
        return None;
    }
    let mut document = file_uri_segments(project_root_uri)?;
    let root_depth = document.len();
    for segment in relative_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if document.len() == root_depth {
                    return None;
                }
                document.pop();
            }
            s => document.push(s.to_string()),
        }
    }
    let mut repo: Vec<String> = Vec::new();
    for component in repo_root.components() {
        match component {
            Component::Prefix(p) => repo.push(p.as_os_str().to_str()?.to_string()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                repo.pop();
            }
            Component::Normal(s) => repo.push(s.to_str()?.to_string()),
        }
    }
    let rest = document.strip_prefix(repo.as_slice())?;
    if rest.is_empty() {
        return None;
    }
    Some(rest.join("/"))
}

/// The normalized path segments of a local `file:` URI.
fn file_uri_segments(uri: &str) -> Option<Vec<String>> {
    let scheme = uri.get(..5)?;
    if !scheme.eq_ignore_ascii_case("file:") {
        return None;
    }
    let rest = &uri[5..];
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let slash = authority_and_path.find('/')?;
            let host = &authority_and_path[..slash];
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return None;
            }
            &authority_and_path[slash..]
        }
        None if rest.starts_with('/') => rest,
        None => return None,
    };
    let path = percent_decode(path)?;
    let mut segments: Vec<String> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_string()),
        }
    }
    Some(segments)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------------------------
// Detection and errors

const SNIFF_BYTES: usize = 4096;

/// JSON: a `.json` name, or `{` then `"` or `}` (after whitespace) at the start of the content.
fn is_json(name: &Path, head: &[u8]) -> bool {
    if name.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return true;
    }
    let mut rest = head.iter().skip_while(|b| b.is_ascii_whitespace());
    if rest.next() != Some(&b'{') {
        return false;
    }
    matches!(rest.find(|b| !b.is_ascii_whitespace()), None | Some(b'"') | Some(b'}'))
}

fn empty(name: &Path) -> anyhow::Error {
    anyhow!("{}: empty file: not a SCIP index", name.display())
}

fn protobuf_error(name: &Path, is: &CodedInputStream, what: &str, start: u64, error: protobuf::Error) -> anyhow::Error {
    let pos = is.pos();
    let text = one_line(&error.to_string());
    let lower = text.to_ascii_lowercase();
    // Inside a field whose length fits the input, running out of bytes means a corrupt length.
    let kind =
        if lower.contains("eof") && !lower.contains("limit") { "truncated protobuf" } else { "invalid protobuf" };
    anyhow!("{}: {kind} at byte {pos}: {what} (starting at byte {start}): {text}", name.display())
}

/// A message on one line and of bounded length: control characters escaped, long texts cut.
fn one_line(message: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::new();
    for (i, c) in message.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Protobuf: the Index's fields one at a time

const INDEX_METADATA: u32 = (1 << 3) | 2;
const INDEX_DOCUMENTS: u32 = (2 << 3) | 2;
const INDEX_EXTERNAL_SYMBOLS: u32 = (3 << 3) | 2;

/// `total` is the input's length: a field whose length runs past it is a truncated input.
fn decode_protobuf(name: &Path, is: &mut CodedInputStream, total: u64, builder: &mut Builder) -> Result<()> {
    let mut documents = 0usize;
    let mut external = 0usize;
    loop {
        let start = is.pos();
        let tag = match is.read_raw_tag_or_eof() {
            Ok(None) => return Ok(()),
            Ok(Some(tag)) => tag,
            Err(e) => return Err(protobuf_error(name, is, "field tag", start, e)),
        };
        match tag {
            INDEX_METADATA => {
                let metadata = builder.metadata.get_or_insert_with(Metadata::new);
                merge_field(name, is, total, "metadata", start, metadata)?;
            }
            INDEX_DOCUMENTS => {
                let what = format!("documents[{documents}]");
                let mut document = Document::new();
                merge_field(name, is, total, &what, start, &mut document)?;
                builder
                    .add_document(&document)
                    .map_err(|m| anyhow!("{}: {what} (at byte {start}): {}", name.display(), one_line(&m)))?;
                documents += 1;
            }
            INDEX_EXTERNAL_SYMBOLS => {
                let mut symbol = SymbolInformation::new();
                merge_field(name, is, total, &format!("external_symbols[{external}]"), start, &mut symbol)?;
                external += 1;
            }
            _ => protobuf::rt::skip_field_for_tag(tag, is)
                .map_err(|e| protobuf_error(name, is, &format!("field with tag {tag}"), start, e))?,
        }
    }
}

/// Merge one length-delimited field of the Index (its tag read) into `message`.
fn merge_field<M: Message>(
    name: &Path,
    is: &mut CodedInputStream,
    total: u64,
    what: &str,
    start: u64,
    message: &mut M,
) -> Result<()> {
    let length = is.read_raw_varint32().map_err(|e| protobuf_error(name, is, what, start, e))?;
    let end = is.pos() + u64::from(length);
    if end > total {
        return Err(anyhow!(
            "{}: truncated protobuf at byte {total}: {what} (starting at byte {start}) runs to byte {end} ({length} bytes after byte {})",
            name.display(),
            is.pos()
        ));
    }
    let old_limit = is.push_limit(u64::from(length)).map_err(|e| protobuf_error(name, is, what, start, e))?;
    message.merge_from(is).map_err(|e| protobuf_error(name, is, what, start, e))?;
    is.pop_limit(old_limit);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JSON: the Index object's members, `documents` one element at a time

const INDEX_KEYS: &str = "metadata, documents, externalSymbols";

struct JsonContext<'a, 'de> {
    name: &'a Path,
    text: &'de str,
    builder: &'a mut Builder,
    /// An error of ours; serde only carries a marker up to `decode_json`.
    error: Option<anyhow::Error>,
}

impl JsonContext<'_, '_> {
    fn fail<E: de::Error>(&mut self, error: anyhow::Error) -> E {
        self.error = Some(error);
        E::custom("(see the recorded error)")
    }

    /// `file:line:column: key: message` for a protobuf-json-mapping error inside `raw`.
    fn mapping_error(&self, raw: &RawValue, key: &str, error: &protobuf_json_mapping::ParseError) -> anyhow::Error {
        let (base_line, base_column) = self.line_column(raw);
        let text = error.to_string();
        let (message, line, column) = match text.rsplit_once(" at ").and_then(|(m, loc)| {
            let (l, c) = loc.split_once(':')?;
            Some((m, l.parse::<u64>().ok()?, c.parse::<u64>().ok()?))
        }) {
            Some((m, 1, c)) => (one_line(m), base_line, base_column + c.max(1) - 1),
            Some((m, l, c)) => (one_line(m), base_line + l - 1, c),
            None => (one_line(&text), base_line, base_column),
        };
        anyhow!("{}:{line}:{column}: {key}: {message}", self.name.display())
    }

    /// 1-based line and byte column where `raw` starts in the text.
    fn line_column(&self, raw: &RawValue) -> (u64, u64) {
        let offset = (raw.get().as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize).min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        (line, (offset - line_start) as u64 + 1)
    }

    fn parse<M: protobuf::MessageFull>(&self, raw: &RawValue, key: &str) -> Result<M> {
        let options = protobuf_json_mapping::ParseOptions { ignore_unknown_fields: false, ..Default::default() };
        protobuf_json_mapping::parse_from_str_with_options::<M>(raw.get(), &options)
            .map_err(|e| self.mapping_error(raw, key, &e))
    }
}

fn decode_json(name: &Path, text: &str, builder: &mut Builder) -> Result<()> {
    let mut context = JsonContext { name, text, builder, error: None };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = IndexSeed(&mut context).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    if let Some(error) = context.error.take() {
        return Err(error);
    }
    result.map_err(|e| json_error(name, &e))
}

/// A serde_json error as `file:line:column: message`.
fn json_error(name: &Path, error: &serde_json::Error) -> anyhow::Error {
    let text = error.to_string();
    if error.line() == 0 {
        return anyhow!("{}: {text}", name.display());
    }
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = one_line(text.strip_suffix(&suffix).unwrap_or(&text));
    anyhow!("{}:{}:{}: {message}", name.display(), error.line(), error.column())
}

struct IndexSeed<'c, 'a, 'de>(&'c mut JsonContext<'a, 'de>);

impl<'de> DeserializeSeed<'de> for IndexSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IndexSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SCIP index object (keys: ")?;
        f.write_str(INDEX_KEYS)?;
        f.write_str(")")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let context = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    let Some(raw) = map.next_value::<Option<&'de RawValue>>()? else { continue };
                    let metadata: Metadata = context.parse(raw, "metadata").map_err(|e| context.fail::<A::Error>(e))?;
                    context.builder.metadata = Some(metadata);
                }
                "documents" => map.next_value_seed(ListSeed { context: &mut *context, documents: true })?,
                "externalSymbols" | "external_symbols" => {
                    map.next_value_seed(ListSeed { context: &mut *context, documents: false })?
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "{}: not a field of a SCIP index (scip.Index has {INDEX_KEYS})",
                        one_line(other)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `documents` or `externalSymbols`: an array (or null) whose elements are parsed one by one.
struct ListSeed<'c, 'a, 'de> {
    context: &'c mut JsonContext<'a, 'de>,
    documents: bool,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(if self.documents { "an array of scip.Document" } else { "an array of scip.SymbolInformation" })
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let context = self.context;
        let mut i = 0usize;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if self.documents {
                let key = format!("documents[{i}]");
                let document: Document = context.parse(raw, &key).map_err(|e| context.fail::<A::Error>(e))?;
                if let Err(message) = context.builder.add_document(&document) {
                    let (line, column) = context.line_column(raw);
                    let error = anyhow!("{}:{line}:{column}: {key}: {}", context.name.display(), one_line(&message));
                    return Err(context.fail(error));
                }
            } else {
                let _: SymbolInformation =
                    context.parse(raw, &format!("externalSymbols[{i}]")).map_err(|e| context.fail::<A::Error>(e))?;
            }
            i += 1;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregation

#[derive(Default)]
struct Builder {
    metadata: Option<Metadata>,
    /// Every non-local symbol seen (defined or referenced) → its id.
    symbols: HashMap<Box<str>, u32>,
    /// Document path → index into `documents`.
    paths: HashMap<Box<str>, u32>,
    documents: Vec<PendingDocument>,
    scratch: Vec<u32>,
}

#[derive(Default)]
struct PendingDocument {
    path: Box<str>,
    definitions: u32,
    references: u32,
    /// Symbol ids with a definition here (unsorted, repeated until `finish`).
    defined: Vec<u32>,
    /// (symbol id, reference occurrences), sorted by id per document message.
    references_by_symbol: Vec<(u32, u32)>,
}

fn is_local(symbol: &str) -> bool {
    symbol.is_empty() || symbol.starts_with("local ")
}

/// `relative_path` must be a relative path with `/` separators and no `.`, `..` or empty segment.
fn check_relative_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("relative_path is empty".to_string());
    }
    if path.starts_with('/') || path.contains('\\') || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!("relative_path {path:?} is not a relative path with / separators"));
    }
    Ok(())
}

impl Builder {
    fn intern(&mut self, symbol: &str) -> u32 {
        if let Some(&id) = self.symbols.get(symbol) {
            return id;
        }
        let id = self.symbols.len() as u32;
        self.symbols.insert(symbol.into(), id);
        id
    }

    /// Fold one document into the aggregates; the error is a message without the file name.
    fn add_document(&mut self, document: &Document) -> std::result::Result<(), String> {
        check_relative_path(&document.relative_path)?;
        let index = match self.paths.get(document.relative_path.as_str()) {
            Some(&i) => i as usize,
            None => {
                let i = self.documents.len();
                self.paths.insert(document.relative_path.as_str().into(), i as u32);
                self.documents
                    .push(PendingDocument { path: document.relative_path.as_str().into(), ..Default::default() });
                i
            }
        };
        let mut references = std::mem::take(&mut self.scratch);
        references.clear();
        let mut defined = std::mem::take(&mut self.documents[index].defined);
        let (mut definitions, mut reference_count) = (0u32, 0u32);
        for (i, occurrence) in document.occurrences.iter().enumerate() {
            if !matches!(occurrence.range.len(), 3 | 4) && occurrence.typed_range.is_none() {
                return Err(format!(
                    "occurrences[{i}]: range has {} elements (expected 3 or 4)",
                    occurrence.range.len()
                ));
            }
            let symbol = occurrence.symbol.as_str();
            if occurrence.symbol_roles & SymbolRole::Definition as i32 != 0 {
                definitions = definitions.saturating_add(1);
                if !is_local(symbol) {
                    defined.push(self.intern(symbol));
                }
            } else {
                reference_count = reference_count.saturating_add(1);
                if !is_local(symbol) {
                    references.push(self.intern(symbol));
                }
            }
        }
        defined.sort_unstable();
        defined.dedup();
        references.sort_unstable();
        let entry = &mut self.documents[index];
        entry.defined = defined;
        entry.definitions = entry.definitions.saturating_add(definitions);
        entry.references = entry.references.saturating_add(reference_count);
        for run in references.chunk_by(|a, b| a == b) {
            entry.references_by_symbol.push((run[0], run.len() as u32));
        }
        self.scratch = references;
        Ok(())
    }

    fn finish(self, name: &Path) -> Result<ScipIndex> {
        let Some(metadata) = self.metadata else {
            return Err(anyhow!("{}: no metadata: not a SCIP index", name.display()));
        };
        if metadata.project_root.is_empty() {
            return Err(anyhow!("{}: metadata: project_root is empty", name.display()));
        }
        let symbol_count = self.symbols.len();
        let mut documents = self.documents;

        // Symbol → defining documents, as a CSR table over pending document indexes.
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for (d, document) in documents.iter_mut().enumerate() {
            // A merged document's definitions were appended per message.
            document.defined.sort_unstable();
            document.defined.dedup();
            pairs.extend(document.defined.iter().map(|&s| (s, d as u32)));
        }
        pairs.sort_unstable();
        let mut start = vec![0u32; symbol_count + 1];
        for &(s, _) in &pairs {
            start[s as usize + 1] += 1;
        }
        for i in 0..symbol_count {
            start[i + 1] += start[i];
        }
        let defining_pending: Vec<u32> = pairs.into_iter().map(|(_, d)| d).collect();
        let defining = |s: u32| &defining_pending[start[s as usize] as usize..start[s as usize + 1] as usize];

        // References into other files, and (defining document, referencing document) pairs.
        let mut referencing: Vec<(u32, u32)> = Vec::new();
        let mut to_other = vec![0u32; documents.len()];
        for (d, document) in documents.iter_mut().enumerate() {
            let d = d as u32;
            let mut by_symbol = std::mem::take(&mut document.references_by_symbol);
            by_symbol.sort_unstable();
            for run in by_symbol.chunk_by(|a, b| a.0 == b.0) {
                let count = run.iter().fold(0u32, |n, &(_, c)| n.saturating_add(c));
                let defs = defining(run[0].0);
                if defs.iter().any(|&e| e != d) {
                    to_other[d as usize] = to_other[d as usize].saturating_add(count);
                    referencing.extend(defs.iter().filter(|&&e| e != d).map(|&e| (e, d)));
                }
            }
        }
        referencing.sort_unstable();
        referencing.dedup();
        let mut referencing_files = vec![0u32; documents.len()];
        for &(e, _) in &referencing {
            referencing_files[e as usize] += 1;
        }
        drop(referencing);

        // Final order: documents by path, symbols (defined ones only) by name.
        let mut document_order: Vec<u32> = (0..documents.len() as u32).collect();
        document_order.sort_unstable_by(|&a, &b| documents[a as usize].path.cmp(&documents[b as usize].path));
        let mut document_rank = vec![0u32; documents.len()];
        for (rank, &d) in document_order.iter().enumerate() {
            document_rank[d as usize] = rank as u32;
        }
        let mut names: Vec<(Box<str>, u32)> =
            self.symbols.into_iter().filter(|&(_, s)| start[s as usize] < start[s as usize + 1]).collect();
        names.sort_unstable();
        let mut symbol_rank = vec![u32::MAX; symbol_count];
        for (rank, (_, s)) in names.iter().enumerate() {
            symbol_rank[*s as usize] = rank as u32;
        }
        let symbols: Vec<SymbolEntry> = names
            .into_iter()
            .map(|(name, s)| {
                let mut defining: Vec<u32> = defining(s).iter().map(|&d| document_rank[d as usize]).collect();
                defining.sort_unstable();
                SymbolEntry { name, defining: defining.into_boxed_slice() }
            })
            .collect();
        let mut slots: Vec<Option<DocumentEntry>> = (0..documents.len()).map(|_| None).collect();
        for (d, document) in documents.into_iter().enumerate() {
            let mut defined: Vec<u32> = document.defined.iter().map(|&s| symbol_rank[s as usize]).collect();
            defined.sort_unstable();
            let stats = ScipFileStats {
                symbols_defined: defined.len() as u32,
                definitions: document.definitions,
                references: document.references,
                references_to_other_files: to_other[d],
                referencing_files: referencing_files[d],
            };
            slots[document_rank[d] as usize] =
                Some(DocumentEntry { path: document.path, stats, defined: defined.into_boxed_slice() });
        }
        Ok(ScipIndex {
            project_root: metadata.project_root,
            documents: slots.into_iter().map(|d| d.expect("every rank is filled")).collect(),
            symbols,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::scip::types::{Index, Occurrence};

    const DEF: i32 = SymbolRole::Definition as i32;

    fn occurrence(symbol: &str, roles: i32) -> Occurrence {
        Occurrence { range: vec![0, 0, 1], symbol: symbol.to_string(), symbol_roles: roles, ..Default::default() }
    }

    fn document(path: &str, occurrences: Vec<Occurrence>) -> Document {
        Document { relative_path: path.to_string(), occurrences, ..Default::default() }
    }

    fn index(documents: Vec<Document>) -> Index {
        let mut metadata = Metadata::new();
        metadata.project_root = "file:///work/repo".to_string();
        Index { metadata: Some(metadata).into(), documents, ..Default::default() }
    }

    fn sample() -> Index {
        index(vec![
            document(
                "pkg/a.py",
                vec![
                    occurrence("py pkg/A#", DEF),
                    occurrence("py pkg/f().", DEF),
                    occurrence("local 0", DEF),
                    occurrence("local 0", 0),
                    occurrence("py pkg/B#", 0),
                    occurrence("py pkg/B#", 8),
                    occurrence("py builtins/int#", 0),
                ],
            ),
            document(
                "pkg/b.py",
                vec![occurrence("py pkg/B#", DEF), occurrence("py pkg/A#", 0), occurrence("local 0", DEF)],
            ),
            document(
                "pkg/c.py",
                vec![occurrence("py pkg/A#", 0), occurrence("py pkg/f().", 0), occurrence("py pkg/B#", 0)],
            ),
            document("pkg/unused.py", vec![occurrence("py pkg/U#", DEF), occurrence("py pkg/U#", 0)]),
        ])
    }

    fn stats(
        symbols_defined: u32,
        definitions: u32,
        references: u32,
        to_other: u32,
        referencing: u32,
    ) -> ScipFileStats {
        ScipFileStats {
            symbols_defined,
            definitions,
            references,
            references_to_other_files: to_other,
            referencing_files: referencing,
        }
    }

    fn check_sample(index: &ScipIndex) {
        assert_eq!(index.project_root(), "file:///work/repo");
        assert_eq!(index.documents(), ["pkg/a.py", "pkg/b.py", "pkg/c.py", "pkg/unused.py"]);
        assert_eq!(index.file_stats("pkg/a.py"), Some(stats(2, 3, 4, 2, 2)));
        assert_eq!(index.file_stats("pkg/b.py"), Some(stats(1, 2, 1, 1, 2)));
        assert_eq!(index.file_stats("pkg/c.py"), Some(stats(0, 0, 3, 3, 0)));
        assert_eq!(index.file_stats("pkg/unused.py"), Some(stats(1, 1, 1, 0, 0)));
        assert_eq!(index.file_stats("pkg/missing.py"), None);
        assert_eq!(index.symbols_defined_in("pkg/a.py"), ["py pkg/A#", "py pkg/f()."]);
        assert_eq!(index.defining_files("py pkg/B#"), ["pkg/b.py"]);
        assert!(index.defining_files("local 0").is_empty());
        assert!(index.defining_files("py builtins/int#").is_empty());
    }

    #[test]
    fn protobuf_and_json_forms() {
        let message = sample();
        let bytes = message.write_to_bytes().unwrap();
        check_sample(&ScipIndex::from_bytes(Path::new("index.scip"), &bytes).unwrap());
        let json = protobuf_json_mapping::print_to_string(&message).unwrap();
        check_sample(&ScipIndex::from_bytes(Path::new("index.json"), json.as_bytes()).unwrap());
        // Detected by content too, whatever the name.
        check_sample(&ScipIndex::from_bytes(Path::new("index"), format!("\n {json}").as_bytes()).unwrap());
    }

    #[test]
    fn merges_documents_with_one_path() {
        let mut message = sample();
        let extra = document("pkg/a.py", vec![occurrence("py pkg/A#", DEF), occurrence("py pkg/g().", DEF)]);
        message.documents.push(extra);
        let index = ScipIndex::from_bytes(Path::new("i.scip"), &message.write_to_bytes().unwrap()).unwrap();
        assert_eq!(index.documents().len(), 4);
        assert_eq!(index.file_stats("pkg/a.py"), Some(stats(3, 5, 4, 2, 2)));
    }

    #[test]
    fn a_symbol_defined_in_two_documents() {
        let message = index(vec![
            document("a.py", vec![occurrence("s", DEF), occurrence("s", 0)]),
            document("b.py", vec![occurrence("s", DEF)]),
        ]);
        let index = ScipIndex::from_bytes(Path::new("i.scip"), &message.write_to_bytes().unwrap()).unwrap();
        assert_eq!(index.defining_files("s"), ["a.py", "b.py"]);
        // a.py's reference resolves to a definition in b.py as well.
        assert_eq!(index.file_stats("a.py").unwrap().references_to_other_files, 1);
        assert_eq!(index.file_stats("b.py").unwrap().referencing_files, 1);
        assert_eq!(index.file_stats("a.py").unwrap().referencing_files, 0);
    }

    #[test]
    fn protobuf_starting_with_a_brace_length_is_not_json() {
        // Field 1 (metadata), length 0x7B = `{`: a newline then a brace.
        let mut metadata = Metadata::new();
        metadata.project_root = format!("file:///{}", "x".repeat(123 - 2 - 8));
        let message = Index { metadata: Some(metadata).into(), ..Default::default() };
        let bytes = message.write_to_bytes().unwrap();
        assert_eq!(&bytes[..2], b"\n{");
        let index = ScipIndex::from_bytes(Path::new("index.scip"), &bytes).unwrap();
        assert!(index.documents().is_empty());
    }

    #[test]
    fn errors() {
        let bytes = sample().write_to_bytes().unwrap();
        let error = |name: &str, bytes: &[u8]| ScipIndex::from_bytes(Path::new(name), bytes).unwrap_err().to_string();
        let truncated = error("i.scip", &bytes[..bytes.len() - 5]);
        assert!(
            truncated.starts_with(&format!("i.scip: truncated protobuf at byte {}: ", bytes.len() - 5)),
            "{truncated}"
        );
        assert!(truncated.contains("documents[3]"), "{truncated}");
        assert_eq!(error("i.scip", b""), "i.scip: empty file: not a SCIP index");
        assert_eq!(error("i.json", b" \n"), "i.json: empty file: not a SCIP index");
        let other = error("i.json", b"{\n  \"name\": \"shop\",\n  \"version\": 1\n}");
        assert!(other.starts_with("i.json:2:"), "{other}");
        assert!(other.contains(": name: not a field of a SCIP index"), "{other}");
        let unknown = error("i.json", b"{\"metadata\": {\"projectRoot\": \"file:///r\"},\n \"documents\": [{\"relativePath\": \"a.py\", \"bogus\": 1}]}");
        assert!(unknown.starts_with("i.json:2:"), "{unknown}");
        assert!(unknown.contains("documents[0]: ") && unknown.contains("bogus"), "{unknown}");
        let no_metadata = Index { documents: vec![document("a.py", vec![])], ..Default::default() };
        assert_eq!(error("i.scip", &no_metadata.write_to_bytes().unwrap()), "i.scip: no metadata: not a SCIP index");
        let bad_path = index(vec![document("../a.py", vec![])]);
        let message = error("i.scip", &bad_path.write_to_bytes().unwrap());
        assert!(message.contains("documents[0] (at byte ") && message.contains("not a relative path"), "{message}");
        let bad_range = index(vec![document("a.py", vec![Occurrence { range: vec![1], ..Default::default() }])]);
        let message = error("i.scip", &bad_range.write_to_bytes().unwrap());
        assert!(message.contains("occurrences[0]: range has 1 elements"), "{message}");
    }

    #[test]
    fn rebase_cases() {
        let root = |s: &str| Path::new(s).to_path_buf();
        assert_eq!(
            rebase("file:///ci/checkout/src", &root("/ci/checkout"), "pkg/a.py").as_deref(),
            Some("src/pkg/a.py")
        );
        assert_eq!(rebase("file:///ci/checkout", &root("/ci/checkout"), "pkg/a.py").as_deref(), Some("pkg/a.py"));
        assert_eq!(rebase("file:///ci/checkout/", &root("/ci/checkout/"), "pkg/a.py").as_deref(), Some("pkg/a.py"));
        assert_eq!(
            rebase("file:///ci/checkout", &root("/ci/checkout/src"), "src/pkg/a.py").as_deref(),
            Some("pkg/a.py")
        );
        assert_eq!(rebase("file:///ci/checkout", &root("/ci/checkout/src"), "tests/t.py"), None);
        assert_eq!(rebase("file:///elsewhere", &root("/ci/checkout"), "pkg/a.py"), None);
        assert_eq!(rebase("file:///ci/checkout-2", &root("/ci/checkout"), "a.py"), None);
        assert_eq!(rebase("file://localhost/ci/my%20repo", &root("/ci/my repo"), "a.py").as_deref(), Some("a.py"));
        assert_eq!(rebase("file:/ci/checkout", &root("/ci"), "a.py").as_deref(), Some("checkout/a.py"));
        assert_eq!(
            rebase("file:///ci/checkout/./src/../lib", &root("/ci/checkout"), "a.py").as_deref(),
            Some("lib/a.py")
        );
        assert_eq!(rebase("file:///ci/checkout/src", &root("/ci/checkout"), "../setup.py"), None);
        assert_eq!(rebase("file:///ci/checkout", &root("/ci/checkout"), "/etc/passwd"), None);
        assert_eq!(rebase("file:///ci/checkout", &root("/ci/checkout"), ""), None);
        assert_eq!(rebase("file://server/share", &root("/share"), "a.py"), None);
        assert_eq!(rebase("https://example.com/x", &root("/x"), "a.py"), None);
        assert_eq!(rebase("file:///ci/%zz", &root("/ci"), "a.py"), None);
        assert_eq!(rebase("file:///ci/checkout", &root("relative"), "a.py"), None);
    }
}
