//! The module record: one `modules.jsonl` row per module, less its fan-in and fan-out (added
//! by [`crate::rows`], which can carry them over when the import graph cannot have changed).

use serde::Serialize;

use crate::db::{Db, SourceFile};
use crate::stages::exports::{Reexport, exports, reexports};
use crate::stages::imports::imports;
use crate::stages::resolve::import_edges;
use crate::stages::scope::star_imports;
use crate::stages::outline::{docstring, outline};
use crate::stages::parse::{parsed_module, syntax_errors};

/// Bump when the record's logic or fields change.
pub const RECORD_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleRecord {
    pub path: String,
    pub module: String,
    pub is_package: bool,
    /// blake3 of the raw bytes, hex.
    pub content_hash: String,
    /// Encoding the source was decoded from.
    pub encoding: String,
    /// Number of lines (a last line without `\n` counts).
    pub lines: u32,
    /// Syntax error nodes (0 for a clean parse).
    pub parse_errors: u32,
    /// First line of the module docstring.
    pub docstring: Option<String>,
    /// The `.pyi` stub beside the module (type checkers read it instead), or null.
    pub stub_path: Option<String>,
    /// Rows this module contributes to `symbols.jsonl` and `imports.jsonl`.
    pub symbol_count: u32,
    pub import_count: u32,
    /// The declared `__all__` (resolved, in order), or null.
    pub all: Option<Vec<String>>,
    /// False when part of `__all__` could not be read statically.
    pub all_complete: bool,
    /// Sorted names `from module import *` binds.
    pub exports: Vec<String>,
    /// Sorted names `from module import *` binds on some paths only.
    pub exports_maybe: Vec<String>,
    /// The promise that the names bound at run time include `exports` and are within
    /// `exports` ∪ `exports_maybe`; false when the tool cannot know.
    pub exports_complete: bool,
    /// Why `exports_complete` is false (sorted; empty when it is true).
    pub exports_incomplete_reasons: Vec<String>,
    /// Absolute targets of the module's star imports, in order.
    pub star_imports: Vec<String>,
    /// Exported names that come from elsewhere, with their defining module.
    pub reexports: Vec<Reexport>,
    /// Sorted internal modules this module imports.
    pub imports: Vec<String>,
}

/// The record of `file`. Read only to render the file's rows: a cold build evicts the records
/// a chunk of files at a time as it renders (the last 4,096 used stay memoized).
#[salsa::tracked(returns(ref), lru = 4096)]
pub fn module_record(db: &dyn Db, file: SourceFile) -> ModuleRecord {
    ModuleRecord {
        path: file.path(db).clone(),
        module: file.module(db).clone(),
        is_package: file.is_package(db),
        content_hash: file.content_hash(db).to_hex(),
        encoding: file.encoding(db).clone(),
        lines: module_summary(db, file).lines,
        parse_errors: syntax_errors(db, file).count,
        docstring: module_docstring(db, file).clone(),
        stub_path: file.stub(db).as_ref().map(|_| format!("{}i", file.path(db))),
        symbol_count: module_summary(db, file).symbols,
        import_count: imports(db, file).imports.len() as u32,
        all: exports(db, file).all.clone(),
        all_complete: exports(db, file).all_complete,
        exports: exports(db, file).names.clone(),
        exports_maybe: exports(db, file).maybe.clone(),
        exports_complete: exports(db, file).complete,
        exports_incomplete_reasons: exports(db, file).incomplete_reasons.clone(),
        star_imports: star_imports(db, file).clone(),
        reexports: reexports(db, file).clone(),
        imports: import_edges(db, file).keys().cloned().collect(),
    }
}

/// Counts and flags of a module that tags and rules read, kept small so that re-tagging every
/// module (a changed tags YAML) reads no outline and no text. Cached per file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleSummary {
    pub lines: u32,
    pub symbols: u32,
    pub imports: u32,
    pub parse_errors: u32,
    /// The most parameters of any function or method.
    pub max_params: u32,
    pub type_checking_imports: bool,
}

/// The summary of `file`.
#[salsa::tracked(returns(ref))]
pub fn module_summary(db: &dyn Db, file: SourceFile) -> ModuleSummary {
    crate::stages::cached::per_file(db, file, "module_summary", RECORD_VERSION, true, || {
        let outline = outline(db, file).decode();
        let imports = &imports(db, file).imports;
        ModuleSummary {
            lines: line_count(crate::db::source_text(db, file)),
            symbols: outline.symbols.len() as u32,
            imports: imports.len() as u32,
            parse_errors: syntax_errors(db, file).count,
            max_params: outline.symbols.iter().map(|s| s.params.len() as u32).max().unwrap_or(0),
            type_checking_imports: imports.iter().any(|i| i.type_checking),
        }
    })
}

/// The module docstring's first line; a narrow value so that edits below it cut off here.
#[salsa::tracked(returns(ref))]
pub fn module_docstring(db: &dyn Db, file: SourceFile) -> Option<String> {
    crate::stages::cached::per_file(db, file, "module_docstring", RECORD_VERSION, false, || {
        docstring(parsed_module(db, file).root(), crate::db::source_text(db, file))
    })
}

/// Lines as `str::lines` counts them (a last line without `\n` counts), without its per-line
/// work.
fn line_count(text: &str) -> u32 {
    let newlines = text.bytes().filter(|&b| b == b'\n').count();
    (newlines + usize::from(!text.is_empty() && !text.ends_with('\n'))) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_count_matches_str_lines() {
        for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\n", "x\n\ny"] {
            assert_eq!(super::line_count(text) as usize, text.lines().count(), "{text:?}");
        }
    }
}
