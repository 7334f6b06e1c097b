//! The module record: one `modules.jsonl` row per module.

use serde::Serialize;

use crate::db::{Db, SourceFile};
use crate::stages::imports::imports;
use crate::stages::outline::{docstring, outline};
use crate::stages::parse::{parsed_module, syntax_errors};

/// Bump when the record's logic or fields change.
pub const RECORD_VERSION: u32 = 1;

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
    /// Rows this module contributes to `symbols.jsonl` and `imports.jsonl`.
    pub symbol_count: u32,
    pub import_count: u32,
}

/// The record of `file`.
#[salsa::tracked(returns(ref))]
pub fn module_record(db: &dyn Db, file: SourceFile) -> ModuleRecord {
    let text = file.text(db);
    ModuleRecord {
        path: file.path(db).clone(),
        module: file.module(db).clone(),
        is_package: file.is_package(db),
        content_hash: file.content_hash(db).to_hex(),
        encoding: file.encoding(db).clone(),
        lines: text.lines().count() as u32,
        parse_errors: syntax_errors(db, file).count,
        docstring: module_docstring(db, file).clone(),
        symbol_count: outline(db, file).symbols.len() as u32,
        import_count: imports(db, file).imports.len() as u32,
    }
}

/// The module docstring's first line; a narrow value so that edits below it cut off here.
#[salsa::tracked(returns(ref))]
pub fn module_docstring(db: &dyn Db, file: SourceFile) -> Option<String> {
    docstring(parsed_module(db, file).root(), file.text(db))
}
