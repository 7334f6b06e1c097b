//! `codeintel-enrich query`: SQL against the database of an output directory, printed as an
//! aligned table, JSON or CSV; `--views` lists the database's views.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::{AccessMode, Config, Connection};

use crate::writers::duckdb::{DATABASE_FILE, is_lock_error};

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned table with a header.
    Table,
    /// A JSON array of objects, nested values as JSON.
    Json,
    /// CSV with a header; nested values in their display form.
    Csv,
}

/// Open the database of `out` read-only.
pub fn open(out: &Path) -> Result<Connection> {
    let path = out.join(DATABASE_FILE);
    if !path.exists() {
        bail!("{}: no database; run `codeintel-enrich build` first (with this --out)", path.display());
    }
    let config = Config::default().access_mode(AccessMode::ReadOnly)?;
    Connection::open_with_flags(&path, config).map_err(|error| {
        if is_lock_error(&error) {
            anyhow::anyhow!("{}: a build is writing the database; query again when it ends ({error})", path.display())
        } else {
            anyhow::anyhow!("{}: cannot open the database: {error}", path.display())
        }
    })
}

/// Run `sql` and print its result to `out`.
pub fn run(conn: &Connection, sql: &str, format: Format, out: &mut impl Write) -> Result<()> {
    let mut statement = conn.prepare(sql).context("the query is not valid SQL here")?;
    let arrow = statement.query_arrow([]).context("the query failed")?;
    let schema = arrow.get_schema();
    let batches: Vec<RecordBatch> = arrow.collect();
    match format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)?;
            writeln!(out, "{table}")?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        Format::Json => {
            let mut writer = arrow_json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow_json::writer::JsonArray>(Vec::new());
            for batch in &batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            let mut bytes = writer.into_inner();
            if bytes.is_empty() {
                bytes.extend_from_slice(b"[]");
            }
            out.write_all(&bytes)?;
            writeln!(out)?;
        }
        Format::Csv => write_csv(&schema, &batches, out)?,
    }
    Ok(())
}

fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn write_csv(schema: &SchemaRef, batches: &[RecordBatch], out: &mut impl Write) -> Result<()> {
    let header: Vec<_> = schema.fields().iter().map(|f| csv_field(f.name()).into_owned()).collect();
    writeln!(out, "{}", header.join(","))?;
    let options = FormatOptions::default().with_null("");
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| csv_field(&f.value(row).to_string()).into_owned()).collect();
            writeln!(out, "{}", cells.join(","))?;
        }
    }
    Ok(())
}

/// One line per view of the database: its name and what it answers.
pub fn views(conn: &Connection, out: &mut impl Write) -> Result<()> {
    let mut statement = conn.prepare("SELECT view_name, coalesce(comment, '') FROM duckdb_views() WHERE NOT internal ORDER BY view_name")?;
    let rows: Vec<(String, String)> =
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, comment) in &rows {
        writeln!(out, "{name:width$}  {comment}")?;
    }
    if rows.is_empty() {
        writeln!(out, "(no views: the database predates them; build again)")?;
    }
    Ok(())
}
