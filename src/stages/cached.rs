//! Per-file stages through the persistent stage cache: their named inputs are the file's
//! content hash, the parser version and (for stages that resolve relative imports) the
//! module's name. A hit returns the stored output without parsing.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{Db, SourceFile};
use crate::stages::parse::PARSE_VERSION;

/// The per-file nodes of the stage cache, by name: the five parse-bound stages and each
/// file's rows (see [`crate::rows`]).
pub const CACHED_STAGES: &[&str] =
    &["exports", "imports", "module_docstring", "module_scope", "module_summary", "outline", "pattern_tags", "rows", "syntax_errors", "tags"];

/// The `parser` input of every per-file stage.
fn parser() -> &'static str {
    static PARSER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PARSER.get_or_init(|| format!("tree-sitter-python 0.25 v{PARSE_VERSION}"))
}

/// `compute()`, or the cached output of `stage` for `file`'s current inputs.
pub fn per_file<T: Serialize + DeserializeOwned>(
    db: &dyn Db,
    file: SourceFile,
    stage: &'static str,
    version: u32,
    reads_module_name: bool,
    compute: impl FnOnce() -> T,
) -> T {
    per_file_with(db, file, stage, version, reads_module_name, Vec::new(), compute)
}

/// [`per_file`] with more named inputs (a query fingerprint, say).
pub fn per_file_with<T: Serialize + DeserializeOwned>(
    db: &dyn Db,
    file: SourceFile,
    stage: &'static str,
    version: u32,
    reads_module_name: bool,
    extra: Vec<(&'static str, String)>,
    compute: impl FnOnce() -> T,
) -> T {
    let Some(cache) = db.stage_cache() else {
        return compute();
    };
    let mut inputs = vec![
        ("content", file.content_hash(db).to_hex()),
        ("parser", parser().to_string()),
    ];
    if reads_module_name {
        inputs.push(("module", file.module(db).clone()));
        inputs.push(("is_package", file.is_package(db).to_string()));
    }
    inputs.extend(extra);
    cache.get_or_compute(stage, version, file.path(db), inputs, compute)
}
