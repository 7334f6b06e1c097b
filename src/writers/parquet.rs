//! The Parquet dataset: `parquet/<table>/package=<top-level package>/part-0.parquet`.
//!
//! Each table's rows are the JSONL rows of the same build, decoded with an explicit Arrow
//! schema (nested fields as lists, structs and maps, never JSON strings) in strict mode — a
//! field the schema does not know is an error, so the dataset can never silently drop one.
//! Files are hive-partitioned by the module's top-level package, ZSTD-compressed with
//! dictionary encoding, and their bytes are a function of the rows alone: fixed writer
//! settings and row-group size, rows in JSONL order, no timestamps.
//!
//! A partition file is a cache node (`parquet(<file>)`) keyed by the digest of its JSONL rows,
//! itself a node (`parquet-input(<file>)`) keyed by the rows keys of the partition's files: a
//! one-file edit re-encodes only its partition's files whose rows changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Bump when a schema or the writer settings change.
pub const PARQUET_VERSION: u32 = 1;

/// The dataset's directory in the output directory.
pub const DATASET_DIR: &str = "parquet";

/// The tables, each a directory of partitions.
pub const TABLES: [&str; 5] = ["modules", "symbols", "imports", "tags", "diagnostics"];

/// Rows per row group (and per decoded batch): fixed, so files are deterministic.
const ROW_GROUP_ROWS: usize = 65_536;

/// The hive partition column.
pub const PARTITION_COLUMN: &str = "package";

/// Where a table's partition file is, relative to the output directory.
pub fn partition_file(table: &str, partition: &str) -> String {
    format!("{DATASET_DIR}/{table}/{PARTITION_COLUMN}={partition}/part-0.parquet")
}

/// The partition of a row about `path`: the top-level package of its module, or for a path
/// that is not a module (an undecodable file, an input file), its first path component.
/// Characters a directory name or a hive value cannot hold are percent-encoded.
pub fn partition_of(module: Option<&str>, path: &str) -> String {
    let raw = match module.filter(|m| !m.is_empty()) {
        Some(module) => module.split('.').next().unwrap_or(module),
        None => {
            let first = path.split('/').next().unwrap_or(path);
            first.strip_suffix(".py").unwrap_or(first)
        }
    };
    let mut value = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
            value.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                value.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    value
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

fn text(name: &str) -> Field {
    field(name, DataType::Utf8, false)
}

fn maybe_text(name: &str) -> Field {
    field(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    field(name, DataType::Int64, false)
}

fn boolean(name: &str) -> Field {
    field(name, DataType::Boolean, false)
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn strings(name: &str, nullable: bool) -> Field {
    field(name, list_of(DataType::Utf8), nullable)
}

fn structure(name: &str, fields: Vec<Field>, nullable: bool) -> Field {
    field(name, DataType::Struct(Fields::from(fields)), nullable)
}

/// The Arrow schema of `table`: the JSONL row's fields, in the same (sorted) order.
pub fn schema(table: &str) -> SchemaRef {
    let fields = match table {
        "modules" => vec![
            strings("all", true),
            boolean("all_complete"),
            text("content_hash"),
            structure(
                "coverage",
                vec![
                    field("line_rate", DataType::Float64, false),
                    field("branch_rate", DataType::Float64, true),
                    int("lines_valid"),
                    int("lines_covered"),
                    int("branches_valid"),
                    int("branches_covered"),
                ],
                true,
            ),
            maybe_text("docstring"),
            text("encoding"),
            strings("exports", false),
            boolean("exports_complete"),
            strings("exports_incomplete_reasons", false),
            strings("exports_maybe", false),
            int("fan_in"),
            int("fan_out"),
            structure("history", vec![int("commits"), int("authors"), text("last_change"), text("last_commit")], true),
            int("import_count"),
            strings("imports", false),
            boolean("is_package"),
            int("lines"),
            text("module"),
            structure("overlay", vec![boolean("needed"), strings("reasons", false)], false),
            strings("owners", true),
            int("parse_errors"),
            text("path"),
            structure(
                "pyrefly",
                vec![
                    int("errors"),
                    int("warnings"),
                    field(
                        "by_kind",
                        DataType::Map(
                            Arc::new(Field::new(
                                "entries",
                                DataType::Struct(Fields::from(vec![text("key"), field("value", DataType::Int64, true)])),
                                false,
                            )),
                            false,
                        ),
                        false,
                    ),
                ],
                true,
            ),
            field(
                "reexports",
                list_of(DataType::Struct(Fields::from(vec![text("name"), text("from"), text("origin"), maybe_text("origin_name")]))),
                false,
            ),
            structure(
                "scip",
                vec![
                    int("symbols_defined"),
                    int("definitions"),
                    int("references"),
                    int("references_to_other_files"),
                    int("referencing_files"),
                ],
                true,
            ),
            strings("star_imports", false),
            maybe_text("stub_path"),
            int("symbol_count"),
            strings("tags", false),
        ],
        "symbols" => vec![
            strings("bases", false),
            int("col"),
            strings("decorators", false),
            maybe_text("docstring"),
            int("end_col"),
            int("end_line"),
            boolean("is_async"),
            boolean("is_public"),
            text("kind"),
            int("line"),
            text("name"),
            field(
                "params",
                list_of(DataType::Struct(Fields::from(vec![
                    maybe_text("annotation"),
                    boolean("has_default"),
                    text("kind"),
                    text("name"),
                ]))),
                false,
            ),
            text("path"),
            text("qualname"),
            maybe_text("returns"),
        ],
        "imports" => vec![
            maybe_text("asname"),
            int("col"),
            boolean("conditional"),
            maybe_text("external"),
            boolean("in_function"),
            boolean("in_try"),
            int("level"),
            int("line"),
            field(
                "names",
                list_of(DataType::Struct(Fields::from(vec![maybe_text("asname"), text("name"), maybe_text("resolved_path")]))),
                false,
            ),
            text("path"),
            maybe_text("resolved_path"),
            boolean("star"),
            text("target"),
            boolean("type_checking"),
            boolean("unresolved"),
        ],
        "tags" => vec![text("module"), text("path"), text("tag")],
        "diagnostics" => vec![text("kind"), field("line", DataType::Int64, true), text("message"), text("path")],
        other => unreachable!("no table {other}"),
    };
    Arc::new(Schema::new(fields))
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("a valid zstd level")))
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("codeintel-enrich (parquet-rs, dataset v{PARQUET_VERSION})"))
        .build()
}

/// A dataset file encoded by this build: its bytes, and its rows as Arrow batches (the
/// database appends those instead of reading the file back).
pub struct Encoded {
    pub rows: usize,
    pub bytes: Vec<u8>,
    pub batches: Vec<arrow::array::RecordBatch>,
}

/// Encode JSONL rows of `table` as a Parquet file.
pub fn encode(table: &str, jsonl: &[u8]) -> Result<Encoded> {
    // The decoder reserves its tape for a whole batch up front (tens of megabytes at
    // `ROW_GROUP_ROWS`): a partition's few rows get a batch of their size. Either way a file
    // of at most `ROW_GROUP_ROWS` rows is one batch, so the bytes are the same.
    let lines = jsonl.iter().filter(|&&b| b == b'\n').count() + 1;
    encode_in_batches(table, jsonl, lines.min(ROW_GROUP_ROWS))
}

/// [`encode`], decoding `batch` rows at a time.
fn encode_in_batches(table: &str, jsonl: &[u8], batch: usize) -> Result<Encoded> {
    let schema = schema(table);
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(batch)
        .with_strict_mode(true)
        .build_decoder()
        .context("cannot build a JSON decoder")?;
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(writer_properties()))?;
    let mut rest = jsonl;
    let mut rows = 0;
    let mut batches = Vec::new();
    loop {
        let consumed = decoder.decode(rest).with_context(|| format!("{table} rows do not match the dataset schema"))?;
        rest = &rest[consumed..];
        match decoder.flush()? {
            Some(batch) => {
                rows += batch.num_rows();
                writer.write(&batch)?;
                batches.push(batch);
            }
            None if rest.is_empty() => break,
            None if consumed == 0 => anyhow::bail!("{table} rows: the JSON decoder made no progress"),
            None => {}
        }
    }
    Ok(Encoded { rows, bytes: writer.into_inner()?, batches })
}

/// One file's rows, as the dataset sees them.
pub struct FileRows<'a> {
    pub path: &'a str,
    pub module: &'a str,
    /// The key of `rows(path)` (equal keys, equal rows in every row table).
    pub key: [u8; 32],
    /// Its bytes in each of `modules.jsonl`, `symbols.jsonl`, `imports.jsonl`.
    pub lens: [u64; 3],
    pub tags: &'a [String],
}

/// A partition to encode or reuse: its rows' digest and how to get its JSONL rows per table.
pub struct Partition {
    pub name: String,
    /// Digest of everything its row tables are a function of.
    pub rows_digest: [u8; 32],
    /// Indices into the files, in path order.
    pub files: Vec<usize>,
    /// Its diagnostics as JSONL, and their digest.
    pub diagnostics: Vec<u8>,
}

/// Group files (sorted by path) and diagnostics rows into partitions, sorted by name.
pub fn partitions(files: &[FileRows<'_>], diagnostics: &[crate::diagnostics::Problem]) -> Vec<Partition> {
    // Each partition's place in `parts`, by name.
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    let mut parts: Vec<Partition> = Vec::new();
    let mut place = |name: String, parts: &mut Vec<Partition>| -> usize {
        *by_name.entry(name).or_insert_with_key(|name| {
            parts.push(Partition { name: name.clone(), rows_digest: [0; 32], files: Vec::new(), diagnostics: Vec::new() });
            parts.len() - 1
        })
    };
    // Files in path order come a top-level package at a time: a module of the last one's
    // package goes where that one went, without naming its partition again (100k-module tree:
    // 101k names allocated and looked up, 87 ms of every edit).
    let mut last: Option<(&str, usize)> = None;
    for (i, file) in files.iter().enumerate() {
        let top = file.module.split('.').next().unwrap_or_default();
        let at = match last {
            Some((last_top, at)) if !top.is_empty() && last_top == top => at,
            _ => place(partition_of(Some(file.module), file.path), &mut parts),
        };
        parts[at].files.push(i);
        last = Some((top, at));
    }
    for problem in diagnostics {
        // `files` are sorted by path.
        let module = files.binary_search_by(|f| f.path.cmp(problem.path.as_str())).ok().map(|i| files[i].module);
        let at = place(partition_of(module, &problem.path), &mut parts);
        let partition = &mut parts[at];
        serde_json::to_writer(&mut partition.diagnostics, problem).expect("problems serialize");
        partition.diagnostics.push(b'\n');
    }
    for partition in &mut parts {
        let mut hasher = blake3::Hasher::new();
        for &i in &partition.files {
            crate::digest::update_parts(&mut hasher, [files[i].path.as_bytes(), files[i].module.as_bytes(), &files[i].key]);
        }
        partition.rows_digest = *hasher.finalize().as_bytes();
    }
    parts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    parts
}

/// The `tags` table's JSONL rows of some files.
pub fn tag_rows<'a>(files: impl IntoIterator<Item = &'a FileRows<'a>>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct TagRow<'a> {
        module: &'a str,
        path: &'a str,
        tag: &'a str,
    }
    let mut out = Vec::new();
    for file in files {
        for tag in file.tags {
            serde_json::to_writer(&mut out, &TagRow { module: file.module, path: file.path, tag }).expect("tags serialize");
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding a partition's rows in a batch of their size writes the bytes one batch of
    /// `ROW_GROUP_ROWS` rows wrote.
    #[test]
    fn a_batch_of_the_rows_size_encodes_the_same_bytes() {
        const TAGS: [&str; 3] = ["api", "cli", "test"];
        for count in [0usize, 1, 2, 999, 5_000] {
            let mut jsonl = Vec::new();
            for i in 0..count {
                let row = serde_json::json!({"module": format!("pkg.m{}", i % 97), "path": format!("pkg/m{i}.py"), "tag": TAGS[i % 3]});
                serde_json::to_writer(&mut jsonl, &row).unwrap();
                jsonl.push(b'\n');
            }
            let sized = encode("tags", &jsonl).unwrap();
            let whole = encode_in_batches("tags", &jsonl, ROW_GROUP_ROWS).unwrap();
            assert_eq!(sized.rows, count);
            assert_eq!(sized.bytes, whole.bytes, "{count} rows");
            if count > 0 {
                assert_eq!(sized.batches.len(), 1, "{count} rows");
            }
        }
    }
}
