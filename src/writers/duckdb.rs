//! The embedded database `codeintel.duckdb`, loaded from the Parquet dataset.
//!
//! Tables mirror the dataset (plus the partition column `package`, an `ordinal` where a
//! path has many rows), with primary keys, and the import cycles (no key: replaced whole
//! when they change, see [`CREATE_CYCLES`]). A build updates the
//! database in one transaction, in bulk: in each table, in each partition whose file of
//! that table changed, the rows of the paths that changed or vanished are deleted and the
//! changed paths' rows inserted (from the batches this build encoded — the appender for a
//! few rows, a staged Parquet file for many — or, for a file it did not encode, by DuckDB's
//! Parquet reader); diagnostics are replaced per changed partition file, cycles whole
//! when they changed. That is only right when the database holds exactly the last build's dataset, so
//! it records the dataset's digest; anything else — no database, an older schema or
//! engine, a foreign file, a digest that is not the last build's (a build killed between
//! its database commit and its build record) — is rebuilt from the whole dataset into a
//! temporary file renamed into place. A build killed mid-update leaves the previous
//! database: DuckDB drops an uncommitted transaction, and a rebuild is never in place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow::datatypes::DataType;
use duckdb::{AccessMode, Config, Connection};

use crate::writers::parquet::{self, DATASET_DIR, TABLES};

/// The database file in the output directory.
pub const DATABASE_FILE: &str = "codeintel.duckdb";

/// Bump when a table, key or view changes: an older database is rebuilt.
pub const DATABASE_SCHEMA: u32 = 2;

const META_TABLE: &str = "codeintel_meta";

/// The views: (name, one-line description, query).
pub const VIEWS: &[(&str, &str, &str)] = &[
    (
        "public_star_modules",
        "public modules (no _private component) that use star imports, with their targets",
        "SELECT module, path, star_imports, exports_complete FROM modules \
         WHERE len(star_imports) > 0 AND NOT regexp_matches(module, '(^|\\.)_') ORDER BY module",
    ),
    (
        "hubs",
        "modules by fan-in (how many modules import them), then fan-out",
        "SELECT module, path, fan_in, fan_out, is_package FROM modules ORDER BY fan_in DESC, fan_out DESC, module",
    ),
    (
        "import_cycles",
        "import cycles (all edges, and runtime: without TYPE_CHECKING-only edges), one row each",
        "SELECT kind, cycle, count(*) AS size, list(module ORDER BY module) AS modules FROM cycles \
         GROUP BY kind, cycle ORDER BY kind, size DESC, cycle",
    ),
    (
        "low_coverage_by_owner",
        "per CODEOWNERS owner: modules tagged low-coverage and their mean line rate (needs --coverage-xml and --owners)",
        "SELECT owner, count(*) AS modules, round(avg(coverage.line_rate), 4) AS mean_line_rate, \
         list(path ORDER BY path) AS paths FROM (SELECT unnest(owners) AS owner, path, coverage FROM modules \
         WHERE list_contains(tags, 'low-coverage')) GROUP BY owner ORDER BY modules DESC, owner",
    ),
    (
        "incomplete_exports",
        "modules whose star-import exports the tool could not bound, with the reasons",
        "SELECT module, path, exports_incomplete_reasons AS reasons FROM modules WHERE NOT exports_complete ORDER BY module",
    ),
    (
        "unresolved_imports",
        "imports of internal-looking modules that could not be resolved",
        "SELECT path, line, target FROM imports WHERE unresolved ORDER BY path, line",
    ),
];

/// The primary key of each table.
fn primary_key(table: &str) -> &'static str {
    match table {
        "modules" => "path",
        "tags" => "path, tag",
        _ => "path, ordinal",
    }
}

fn has_ordinal(table: &str) -> bool {
    !matches!(table, "modules" | "tags")
}

/// DuckDB's spelling of an Arrow type of the dataset.
fn duck_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => "VARCHAR".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::List(item) => format!("{}[]", duck_type(item.data_type())),
        DataType::Struct(fields) => format!(
            "STRUCT({})",
            fields.iter().map(|f| format!("\"{}\" {}", f.name(), duck_type(f.data_type()))).collect::<Vec<_>>().join(", ")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => format!("MAP({}, {})", duck_type(kv[0].data_type()), duck_type(kv[1].data_type())),
            other => unreachable!("map entries are a struct, not {other}"),
        },
        other => unreachable!("no DuckDB type for {other} in the dataset"),
    }
}

fn create_table_sql(table: &str) -> String {
    let schema = parquet::schema(table);
    let mut columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\" {}{}", f.name(), duck_type(f.data_type()), if f.is_nullable() { "" } else { " NOT NULL" }))
        .collect();
    columns.push(format!("\"{}\" VARCHAR NOT NULL", parquet::PARTITION_COLUMN));
    if has_ordinal(table) {
        columns.push("ordinal BIGINT NOT NULL".into());
    }
    format!("CREATE TABLE {table} ({}, PRIMARY KEY ({}));", columns.join(", "), primary_key(table))
}

fn schema_sql() -> String {
    let mut sql = format!("CREATE TABLE {META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);\n");
    for table in TABLES {
        sql.push_str(&create_table_sql(table));
        sql.push('\n');
    }
    sql.push_str(CREATE_CYCLES);
    for (name, description, query) in VIEWS {
        sql.push_str(&format!("CREATE VIEW {name} AS {query};\nCOMMENT ON VIEW {name} IS {};\n", quote(description)));
    }
    sql
}

/// A SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn file_list(out: &Path, files: &[&str]) -> String {
    let quoted: Vec<String> = files.iter().map(|f| quote(&out.join(f).to_string_lossy())).collect();
    format!("[{}]", quoted.join(", "))
}

/// `INSERT` of rows of `table` from some partition files, `filter` a SQL condition on them.
fn insert_sql(out: &Path, table: &str, files: &[&str], filter: &str) -> String {
    let ordinal = if has_ordinal(table) { ", row_number() OVER (PARTITION BY path ORDER BY file_row_number) - 1 AS ordinal" } else { "" };
    format!(
        "INSERT INTO {table} BY NAME SELECT * EXCLUDE (file_row_number){ordinal} FROM read_parquet({}, \
         hive_partitioning = true, hive_types = {{'{}': VARCHAR}}, file_row_number = true) WHERE {filter};\n",
        file_list(out, files),
        parquet::PARTITION_COLUMN,
    )
}

/// What changed since the last build, as the database needs to know it.
pub struct Update<'a> {
    pub out: &'a Path,
    /// Every file of the dataset this build wrote (paths relative to `out`).
    pub dataset: Vec<&'a str>,
    /// Digest of the dataset this build wrote (file names and bytes).
    pub digest: String,
    /// The digest of the last build's dataset: the database is updated in place only when it
    /// holds exactly that one.
    pub previous_digest: Option<String>,
    /// Paths whose rows changed or vanished since the last build.
    pub changed_paths: BTreeSet<String>,
    /// Dataset files (relative to `out`) whose bytes are not the last build's: new, changed,
    /// or gone. A table's rows in a partition whose file kept its bytes are the database's
    /// already, whatever else changed.
    pub changed_files: BTreeSet<String>,
    /// `graphs/cycles.json` of this build.
    pub cycles: Vec<u8>,
    pub cycles_changed: bool,
    /// The rows of the dataset files this build encoded, by file.
    pub batches: &'a std::collections::BTreeMap<String, Vec<arrow::array::RecordBatch>>,
    /// DuckDB's threads for a rebuild. The build's own threads write the outputs meanwhile:
    /// with every core given to DuckDB too, its idle workers' polling for tasks was ~5% of a
    /// cold build's CPU on 2 cores (perf, generated 20k tree).
    pub threads: usize,
    /// DuckDB's threads for a rebuild's commit (which compresses and writes every column).
    pub commit_threads: usize,
}

/// What a build did to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It already held this dataset.
    Unchanged,
    /// Updated in place: rows of this many paths replaced.
    Updated { paths: usize },
    /// Rebuilt from the whole dataset, for this reason.
    Rebuilt { reason: String },
}

/// An open handle on the database of an output directory, taken before anything is written:
/// a database another process holds stops the build before it writes.
pub struct Database {
    path: PathBuf,
    /// The engine fingerprint written with the data (another engine's database is rebuilt).
    engine: String,
    /// The open database and the dataset digest it holds, or why it must be rebuilt.
    state: std::result::Result<(Connection, String), String>,
}

/// Whether opening failed because another process holds the database.
pub fn is_lock_error(error: &duckdb::Error) -> bool {
    let message = error.to_string();
    message.contains("lock") || message.contains("Conflicting")
}

impl Database {
    /// Open the database in `out` for a build.
    pub fn open(out: &Path, engine: &str) -> Result<Database> {
        let path = out.join(DATABASE_FILE);
        if !path.exists() {
            return Ok(Database { path, engine: engine.to_string(), state: Err("no database yet".into()) });
        }
        let config = Config::default().access_mode(AccessMode::ReadWrite)?;
        let conn = match Connection::open_with_flags(&path, config) {
            Ok(conn) => conn,
            Err(error) if is_lock_error(&error) => bail!(
                "{}: another process holds the database (a `codeintel-enrich query`, a DuckDB shell?); \
                 close it and build again: {error}",
                path.display()
            ),
            Err(error) => return Ok(Database { path, engine: engine.to_string(), state: Err(format!("unreadable ({error})")) }),
        };
        let meta = |key: &str| -> Option<String> {
            conn.query_row(&format!("SELECT value FROM {META_TABLE} WHERE key = ?"), [key], |row| row.get::<_, String>(0)).ok()
        };
        let state = match (meta("schema"), meta("engine"), meta("dataset")) {
            (Some(schema), _, _) if schema != DATABASE_SCHEMA.to_string() => Err(format!("database schema {schema}, this engine writes {DATABASE_SCHEMA}")),
            (Some(_), Some(written), _) if written != engine => Err("written by another engine".into()),
            (Some(_), Some(_), Some(dataset)) => Ok((conn, dataset)),
            _ => Err("not a codeintel-enrich database".into()),
        };
        Ok(Database { path, engine: engine.to_string(), state })
    }

    /// Bring the database to this build's dataset.
    pub fn update(self, update: &Update<'_>) -> Result<Outcome> {
        let reason = match self.state {
            Ok((conn, held)) if held == update.digest => {
                drop(conn);
                return Ok(Outcome::Unchanged);
            }
            Ok((conn, held)) if update.previous_digest.as_deref() == Some(held.as_str()) => {
                let started = std::time::Instant::now();
                incremental(&conn, &self.path, update, &self.engine).with_context(|| format!("cannot update {}", self.path.display()))?;
                tracing::debug!(elapsed = ?started.elapsed(), "database transaction committed");
                drop(conn);
                tracing::debug!(elapsed = ?started.elapsed(), "database closed");
                return Ok(Outcome::Updated { paths: update.changed_paths.len() });
            }
            Ok(_) => "it does not hold the last build's dataset".to_string(),
            Err(reason) => reason,
        };
        rebuild(&self.path, update, &self.engine).with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(Outcome::Rebuilt { reason })
    }
}

fn set_meta_sql(digest: &str, engine: &str) -> String {
    format!(
        "INSERT OR REPLACE INTO {META_TABLE} VALUES ('schema', {}), ('engine', {}), ('dataset', {});\n",
        quote(&DATABASE_SCHEMA.to_string()),
        quote(engine),
        quote(digest)
    )
}

/// The dataset files of `table`.
fn table_files<'a>(dataset: &[&'a str], table: &str) -> Vec<&'a str> {
    let prefix = format!("{DATASET_DIR}/{table}/");
    dataset.iter().copied().filter(|f| f.starts_with(&prefix)).collect()
}

/// The `cycles` table: without a primary key. It is replaced whole whenever the cycles change
/// (a cycle's number is its place in the sorted list: one cycle gone renumbers every cycle
/// after it), and with a key DuckDB maintained its index row by row: on the 100k-module tree
/// (200k rows), a deleted module's edit spent ~0.5 s there, most of the database update.
const CREATE_CYCLES: &str = "CREATE TABLE cycles (kind VARCHAR NOT NULL, cycle BIGINT NOT NULL, module VARCHAR NOT NULL);\n";

/// Replace the `cycles` table with the rows of `graphs/cycles.json`, through the appender:
/// as SQL literals, the 40,000 rows of the generated 20k tree cost DuckDB's parser ~0.5 s of
/// CPU (perf, cold build). The table is dropped and created again, not emptied (with a
/// primary key, deleting every row and appending rows with the same keys in one transaction
/// made DuckDB's commit maintain the key row by row: a 14 s commit for 200k rows).
fn replace_cycles(conn: &Connection, cycles: &[u8]) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Cycles {
        all: Vec<Vec<String>>,
        runtime: Vec<Vec<String>>,
    }
    let cycles: Cycles = serde_json::from_slice(cycles).context("graphs/cycles.json does not hold import cycles")?;
    conn.execute_batch(&format!("DROP TABLE cycles;\n{CREATE_CYCLES}"))?;
    // One Arrow batch: row by row, the appender converted each value (~0.15 s for 200k rows).
    let (mut kinds, mut numbers, mut modules) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, list) in [("all", &cycles.all), ("runtime", &cycles.runtime)] {
        for (number, cycle) in list.iter().enumerate() {
            for module in cycle {
                kinds.push(kind);
                numbers.push(number as i64);
                modules.push(module.as_str());
            }
        }
    }
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        ("kind", std::sync::Arc::new(StringArray::from(kinds)) as ArrayRef),
        ("cycle", std::sync::Arc::new(Int64Array::from(numbers)) as ArrayRef),
        ("module", std::sync::Arc::new(StringArray::from(modules)) as ArrayRef),
    ])?;
    let mut appender = conn.appender("cycles")?;
    appender.append_record_batch(batch).context("cannot add the import cycles")?;
    appender.flush()?;
    Ok(())
}

/// Replace the changed rows in one transaction.
fn incremental(conn: &Connection, path: &Path, update: &Update<'_>, engine: &str) -> Result<()> {
    // The write-ahead log is checkpointed once a commit leaves it longer than
    // WAL_CHECKPOINT_BYTES, not at every close: a checkpoint rewrites the tables' touched row
    // groups and indexes (+25 ms on the standard library), while a short log costs the next
    // open little. But every open replays the whole log, so it must stay short: at DuckDB's
    // own threshold (16 MB), 120 edit builds of the standard library (~23 KB of log each)
    // took the open from 21 to 69 ms, and a 1.5 MB log cost 110-180 ms. (DuckDB's
    // `checkpoint_threshold` is not the log's length: at 128 KiB it checkpointed a 3 KB
    // update.)
    // Readers see the log's committed transactions.
    // One batch: each statement DuckDB parses costs a fraction of a millisecond.
    let threads = if update.changed_paths.len() <= ONE_THREAD_PATHS { "SET threads = 1;\n" } else { "" };
    conn.execute_batch(&format!("PRAGMA disable_checkpoint_on_shutdown;\n{threads}BEGIN TRANSACTION;"))?;
    let result = replace_changed(conn, update, engine).and_then(|()| {
        abort_point("duckdb-commit");
        Ok(conn.execute_batch("COMMIT;")?)
    });
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK;");
        return result;
    }
    if std::fs::metadata(wal(path)).is_ok_and(|m| m.len() > WAL_CHECKPOINT_BYTES) {
        conn.execute_batch("CHECKPOINT;")?;
    }
    Ok(())
}

/// An update that leaves the write-ahead log longer than this checkpoints it (see
/// `incremental`).
pub const WAL_CHECKPOINT_BYTES: u64 = 128 * 1024;

/// Paths written inline in SQL up to this many; more go through a temporary table.
const INLINE_PATHS: usize = 512;

/// Changed paths up to this many are replaced on one DuckDB thread: for a small update,
/// starting the thread pool's work costs more than it saves.
const ONE_THREAD_PATHS: usize = 2048;

fn replace_changed(conn: &Connection, update: &Update<'_>, engine: &str) -> Result<()> {
    let paths = if update.changed_paths.len() <= INLINE_PATHS {
        let quoted: Vec<String> = update.changed_paths.iter().map(|p| quote(p)).collect();
        if quoted.is_empty() { "NULL".to_string() } else { quoted.join(", ") }
    } else {
        conn.execute_batch("CREATE OR REPLACE TEMP TABLE changed_paths (path VARCHAR PRIMARY KEY);")?;
        let mut appender = conn.appender("changed_paths")?;
        appender.append_rows(update.changed_paths.iter().map(|p| [p.as_str()]))?;
        appender.flush()?;
        drop(appender);
        "SELECT path FROM changed_paths".to_string()
    };
    // Deletes first, then the new rows. Only the partitions whose file of the table changed
    // are touched: a function added changes `modules` and `symbols`, not `imports`.
    let mut deletes = String::new();
    let mut loads: Vec<(&str, Vec<&str>, bool)> = Vec::new();
    for table in TABLES {
        let prefix = format!("{DATASET_DIR}/{table}/");
        let changed: BTreeSet<String> =
            update.changed_files.iter().filter(|f| f.starts_with(&prefix)).map(|f| partition_of_file(f)).collect();
        if changed.is_empty() {
            continue;
        }
        let partitions = changed.iter().map(|p| quote(p)).collect::<Vec<_>>().join(", ");
        let sources: Vec<&str> =
            table_files(&update.dataset, table).into_iter().filter(|f| changed.contains(&partition_of_file(f))).collect();
        if table == "diagnostics" {
            // Diagnostics are few and have no path key: replaced per changed partition.
            deletes.push_str(&format!("DELETE FROM diagnostics WHERE {} IN ({partitions});\n", parquet::PARTITION_COLUMN));
            loads.push((table, sources, false));
            continue;
        }
        if update.changed_paths.is_empty() {
            continue;
        }
        deletes.push_str(&format!("DELETE FROM {table} WHERE path IN ({paths}) AND {} IN ({partitions});\n", parquet::PARTITION_COLUMN));
        loads.push((table, sources, true));
    }
    conn.execute_batch(&deletes)?;
    for (table, files, only_changed) in loads {
        load(conn, update, table, &files, only_changed.then_some(&update.changed_paths))?;
    }
    if update.cycles_changed {
        replace_cycles(conn, &update.cycles)?;
    }
    conn.execute_batch(&set_meta_sql(&update.digest, engine))?;
    Ok(())
}

/// Up to this many rows, a table's new rows go through DuckDB's appender; more are staged as
/// one Parquet file for its reader (the appender converts nested values one by one).
const APPENDED_ROWS: usize = 1024;

/// Add the rows of dataset `files` of `table` (only those of `paths`, when given): appended
/// from the batches this build encoded (no file is read back), or read by DuckDB's Parquet
/// reader for files this build did not encode.
fn load(conn: &Connection, update: &Update<'_>, table: &str, files: &[&str], paths: Option<&BTreeSet<String>>) -> Result<()> {
    let mut read_back = Vec::new();
    let mut keyed = Vec::new();
    for file in files {
        let Some(batches) = update.batches.get(*file) else {
            read_back.push(*file);
            continue;
        };
        let partition = partition_of_file(file);
        let mut ordinal = Ordinal::default();
        for batch in batches {
            keyed.extend(with_keys(batch, &partition, has_ordinal(table), paths, &mut ordinal)?);
        }
    }
    let rows: usize = keyed.iter().map(|b| b.num_rows()).sum();
    if rows > 0 && rows <= APPENDED_ROWS {
        // A few rows (an edit): the appender, without a file's round trip.
        let mut appender = conn.appender(table)?;
        for batch in keyed {
            appender.append_record_batch(batch).with_context(|| format!("cannot add the rows of {table}"))?;
        }
        appender.flush()?;
    } else if let Some(first) = keyed.first() {
        // Many rows go to DuckDB as one uncompressed Parquet file per table, read by its own
        // reader: the Rust appender converts nested columns value by value (0.2 s for the
        // standard library's 1,787 module rows), and reading back hundreds of small partition
        // files costs ~2.4 ms each in file setup.
        let all = arrow::compute::concat_batches(&first.schema(), &keyed)?;
        let staged = update.out.join(format!(".tmp-load-{table}-{}.parquet", std::process::id()));
        let properties = ::parquet::file::properties::WriterProperties::builder()
            .set_compression(::parquet::basic::Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(::parquet::file::properties::EnabledStatistics::None)
            .build();
        let file = std::fs::File::create(&staged).with_context(|| format!("cannot write {}", staged.display()))?;
        let mut writer = ::parquet::arrow::ArrowWriter::try_new(std::io::BufWriter::new(file), all.schema(), Some(properties))?;
        writer.write(&all)?;
        writer.close()?;
        let result = conn.execute_batch(&format!("INSERT INTO {table} BY NAME SELECT * FROM read_parquet({});", quote(&staged.to_string_lossy())));
        let _ = std::fs::remove_file(&staged);
        result.with_context(|| format!("cannot add the rows of {table}"))?;
    }
    if !read_back.is_empty() {
        let filter = match paths {
            None => "true".to_string(),
            Some(paths) if paths.len() <= INLINE_PATHS => {
                format!("path IN ({})", paths.iter().map(|p| quote(p)).collect::<Vec<_>>().join(", "))
            }
            Some(_) => "path IN (SELECT path FROM changed_paths)".to_string(),
        };
        conn.execute_batch(&insert_sql(update.out, table, &read_back, &filter))?;
    }
    Ok(())
}

/// The place of the next row among its path's rows, across the batches of one file.
#[derive(Default)]
struct Ordinal {
    path: Option<String>,
    next: i64,
}

/// `batch` with the table's key columns added (`package`, and `ordinal` where the table has
/// one), keeping only the rows of `paths` when given; `None` when no row is left.
fn with_keys(
    batch: &arrow::array::RecordBatch,
    partition: &str,
    ordinal: bool,
    paths: Option<&BTreeSet<String>>,
    state: &mut Ordinal,
) -> Result<Option<arrow::array::RecordBatch>> {
    use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
    use std::sync::Arc;
    let path = batch
        .column_by_name("path")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .context("a dataset table without a path column")?;
    let mut fields: Vec<arrow::datatypes::FieldRef> = batch.schema().fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    fields.push(Arc::new(arrow::datatypes::Field::new(parquet::PARTITION_COLUMN, arrow::datatypes::DataType::Utf8, false)));
    columns.push(Arc::new(StringArray::from(vec![partition; batch.num_rows()])));
    if ordinal {
        let mut ordinals = Vec::with_capacity(path.len());
        for row in 0..path.len() {
            let value = path.value(row);
            if state.path.as_deref() != Some(value) {
                state.path = Some(value.to_string());
                state.next = 0;
            }
            ordinals.push(state.next);
            state.next += 1;
        }
        fields.push(Arc::new(arrow::datatypes::Field::new("ordinal", arrow::datatypes::DataType::Int64, false)));
        columns.push(Arc::new(Int64Array::from(ordinals)));
    }
    let keyed = arrow::array::RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)?;
    let Some(paths) = paths else { return Ok((keyed.num_rows() > 0).then_some(keyed)) };
    let keep: BooleanArray = (0..path.len()).map(|row| Some(paths.contains(path.value(row)))).collect();
    let kept = arrow::compute::filter_record_batch(&keyed, &keep)?;
    Ok((kept.num_rows() > 0).then_some(kept))
}

/// The partition name of a dataset file `parquet/<table>/package=<name>/part-0.parquet`.
pub fn partition_of_file(file: &str) -> String {
    file.split('/')
        .find_map(|part| part.strip_prefix(&format!("{}=", parquet::PARTITION_COLUMN)))
        .unwrap_or_default()
        .to_string()
}

/// Write the whole database to a temporary file beside `path` and rename it into place.
fn rebuild(path: &Path, update: &Update<'_>, engine: &str) -> Result<()> {
    let dir = path.parent().expect("the database is in the output directory");
    let temporary = dir.join(format!(".tmp-{DATABASE_FILE}-{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let _ = std::fs::remove_file(wal(&temporary));
    {
        let started = std::time::Instant::now();
        let conn = Connection::open(&temporary)?;
        conn.execute_batch(&format!("SET threads = {};\nBEGIN TRANSACTION;\n{}", update.threads.max(1), schema_sql()))?;
        for table in TABLES {
            load(&conn, update, table, &table_files(&update.dataset, table), None)?;
            tracing::debug!(elapsed = ?started.elapsed(), "database rebuild: {table} loaded");
        }
        replace_cycles(&conn, &update.cycles)?;
        conn.execute_batch(&format!("{}SET threads = {};\nCOMMIT;\n", set_meta_sql(&update.digest, engine), update.commit_threads))?;
        tracing::debug!(elapsed = ?started.elapsed(), "database rebuild: committed");
        conn.execute_batch("CHECKPOINT;")?;
        tracing::debug!(elapsed = ?started.elapsed(), "database rebuild: checkpointed");
        abort_point("duckdb-rebuild");
    }
    // The old database's write-ahead log must not be replayed into the new one.
    remove_if_present(&wal(path))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot move {} into place", temporary.display()))?;
    let _ = std::fs::remove_file(wal(&temporary));
    Ok(())
}

fn wal(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Tests kill a build at these points (`CODEINTEL_TEST_ABORT=<point>`): the process aborts
/// there, as a kill would, to prove the previous database survives.
fn abort_point(point: &str) {
    if std::env::var_os("CODEINTEL_TEST_ABORT").is_some_and(|p| p == point) {
        std::process::abort();
    }
}

/// Remove the database of `out` and its write-ahead log, if present.
pub fn remove(out: &Path) -> Result<()> {
    let path = out.join(DATABASE_FILE);
    remove_if_present(&path)?;
    remove_if_present(&wal(&path))
}
