//! The Parquet dataset and the DuckDB database: read back and compared with the JSONL rows,
//! deterministic, kept in step incrementally (equal to a cold build's, only the changed
//! partitions rewritten), safe against a kill mid-write, a foreign or older database and a
//! database held by another process; and `query`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{bin, build, database_tables, files_under, jsonl, query_json, repo, stderr};

const TABLES: [&str; 5] = ["modules", "symbols", "imports", "tags", "diagnostics"];

/// Read every Parquet file of `table` in Rust: (partition value, row as JSON) in file order.
fn parquet_rows(out: &Path, table: &str) -> Vec<(String, Value)> {
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(out.join("parquet").join(table)).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let value = name.strip_prefix("package=").unwrap_or_else(|| panic!("{name} is not a hive partition")).to_string();
        files.push((value, dir.join("part-0.parquet")));
    }
    files.sort();
    let mut rows = Vec::new();
    for (value, file) in files {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let mut writer = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow_json::writer::LineDelimited>(Vec::new());
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
            for line in String::from_utf8(writer.into_inner()).unwrap().lines() {
                rows.push((value.clone(), serde_json::from_str(line).unwrap()));
            }
        }
    }
    rows
}

/// The JSONL rows a table is made of, with their partition.
fn expected_rows(out: &Path, table: &str) -> Vec<(String, Value)> {
    let modules = jsonl(out, "modules.jsonl");
    let module_of: BTreeMap<String, String> =
        modules.iter().map(|m| (m["path"].as_str().unwrap().to_string(), m["module"].as_str().unwrap().to_string())).collect();
    let partition = |path: &str| -> String {
        match module_of.get(path).filter(|m| !m.is_empty()) {
            Some(module) => module.split('.').next().unwrap().to_string(),
            None => path.split('/').next().unwrap().trim_end_matches(".py").to_string(),
        }
    };
    let mut rows: Vec<(String, Value)> = match table {
        "tags" => modules
            .iter()
            .flat_map(|m| {
                m["tags"].as_array().unwrap().iter().map(move |tag| serde_json::json!({"module": m["module"], "path": m["path"], "tag": tag}))
            })
            .map(|row| (partition(row["path"].as_str().unwrap()), row))
            .collect(),
        _ => jsonl(out, &format!("{table}.jsonl"))
            .into_iter()
            .map(|mut row| {
                // A diagnostic without a line has no `line` key in JSONL; Parquet has a null.
                if table == "diagnostics" && row.get("line").is_none() {
                    row["line"] = Value::Null;
                }
                (partition(row["path"].as_str().unwrap()), row)
            })
            .collect(),
    };
    // Files hold their partition's rows in JSONL order.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Every table of the dataset in `out`, read back in Rust, equals its JSONL rows, row by row,
/// with the partition each row belongs to (the joins tests call this with every input).
pub fn assert_dataset_matches_jsonl(out: &Path) {
    for table in TABLES {
        let actual = parquet_rows(out, table);
        let expected = expected_rows(out, table);
        assert_eq!(actual.len(), expected.len(), "{table}: row count");
        for ((got_partition, got), (want_partition, want)) in actual.iter().zip(&expected) {
            assert_eq!(got_partition, want_partition, "{table}: partition of {want}");
            assert_eq!(got, want, "{table}: row in partition {want_partition}");
        }
    }
}

#[test]
fn parquet_tables_equal_the_jsonl_rows() {
    let repo = repo("columnar");
    let out = repo.out();
    let output = build(&repo.root, &out, &[]);
    assert!(output.status.code().is_some_and(|c| c <= 1), "{}", stderr(&output));
    assert_dataset_matches_jsonl(&out);
    for table in TABLES {
        assert!(!expected_rows(&out, table).is_empty(), "the fixture has {table} rows");
    }
    // Partitions are the top-level packages, and every table has the same module partitions.
    let partitions: Vec<String> = std::fs::read_dir(out.join("parquet/modules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(partitions, ["package=alpha", "package=beta", "package=delta", "package=gamma"]);
    for table in TABLES {
        assert_eq!(partition_dirs(&out, table), rows_partitions(&out, table), "{table}: a file for each partition with rows");
    }
}

/// The partition directories of a table in the dataset.
fn partition_dirs(out: &Path, table: &str) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(out.join("parquet").join(table))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_start_matches("package=").to_string())
        .collect();
    dirs.sort();
    dirs
}

/// The partitions holding some of a table's JSONL rows.
fn rows_partitions(out: &Path, table: &str) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = expected_rows(out, table).into_iter().map(|(p, _)| p).collect();
    set.into_iter().collect()
}

#[test]
fn a_table_without_rows_keeps_one_empty_file() {
    let repo = repo("columnar");
    // Only clean modules without imports: no imports or diagnostics rows at all.
    for entry in std::fs::read_dir(&repo.root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { std::fs::remove_dir_all(&path).unwrap() } else { std::fs::remove_file(&path).unwrap() }
    }
    std::fs::write(repo.root.join("one.py"), "\"\"\"One.\"\"\"\ndef f():\n    \"\"\"F.\"\"\"\n    return 1\n").unwrap();
    std::fs::write(repo.root.join("two.py"), "\"\"\"Two.\"\"\"\nX = 2\n").unwrap();
    let out = repo.out();
    let output = build(&repo.root, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_dataset_matches_jsonl(&out);
    for table in ["imports", "diagnostics"] {
        assert!(expected_rows(&out, table).is_empty(), "{table} has no rows");
        assert_eq!(partition_dirs(&out, table), ["one"], "{table}: the first partition's empty file only");
        assert_eq!(parquet_rows(&out, table).len(), 0);
    }
    assert_eq!(partition_dirs(&out, "modules"), ["one", "two"]);
    // Every reader still finds each table's schema.
    let tables = database_tables(&out);
    assert_eq!(tables["imports"].len(), 0);
    assert_eq!(tables["modules"].len(), 2);
}

#[test]
fn parquet_bytes_are_deterministic_across_builds_and_jobs() {
    let repo = repo("columnar");
    let dataset = |jobs: &str, name: &str| {
        let out = repo.tmp.path().join(name);
        let output = build(&repo.root, &out, &["--no-cache", "--jobs", jobs]);
        assert!(output.status.code().is_some_and(|c| c <= 1), "{}", stderr(&output));
        files_under(&out.join("parquet"))
    };
    let first = dataset("1", "one");
    assert_eq!(first.len(), 15, "the fixture's partitions with rows, per table: {:?}", first.keys());
    assert_eq!(first, dataset("2", "two"));
    assert_eq!(first, dataset("2", "three"));
}

#[test]
fn python_readers_read_the_dataset_as_is() {
    let repo = repo("columnar");
    let out = repo.out();
    build(&repo.root, &out, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/columnar/read_dataset.py");
    let output = std::process::Command::new("python3").arg(script).arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    for table in TABLES {
        let expected = expected_rows(&out, table).len() as u64;
        for reader in ["pyarrow", "pandas", "polars", "duckdb"] {
            let seen = &report[table][reader];
            assert_eq!(seen["rows"], expected, "{reader} reads {table}: {report}");
            assert_eq!(seen["package_inferred"], true, "{reader} infers the partition column of {table}: {report}");
        }
    }
    assert_eq!(report["modules"]["pyarrow"]["exports_equal_jsonl"], true, "{report}");
}

/// Build `root` into `out` (default cache), asserting success.
fn built(root: &Path, out: &Path, extra: &[&str]) {
    let output = build(root, out, extra);
    assert!(output.status.code().is_some_and(|c| c <= 1), "{}", stderr(&output));
}

/// (inode, mtime) of every dataset file: what was rewritten shows.
fn stamps(out: &Path) -> BTreeMap<String, (u64, i64)> {
    use std::os::unix::fs::MetadataExt as _;
    files_under(&out.join("parquet"))
        .into_keys()
        .map(|name| {
            let meta = std::fs::metadata(out.join("parquet").join(&name)).unwrap();
            (name, (meta.ino(), meta.mtime_nsec() + meta.mtime() * 1_000_000_000))
        })
        .collect()
}

/// The database in `out` equals a cold build's of the same tree, table by table.
fn assert_database_matches_cold(root: &Path, out: &Path, cold: &Path) {
    let _ = std::fs::remove_dir_all(cold);
    built(root, cold, &["--no-cache"]);
    assert_eq!(database_tables(out), database_tables(cold));
    assert_eq!(files_under(&out.join("parquet")), files_under(&cold.join("parquet")));
}

#[test]
fn database_stays_in_step_with_edits_additions_and_deletions() {
    let repo = repo("columnar");
    let (root, out, cold) = (&repo.root, repo.out(), repo.tmp.path().join("cold"));
    built(root, &out, &[]);
    let tables = database_tables(&out);
    assert_eq!(tables["modules"].len(), jsonl(&out, "modules.jsonl").len());
    assert_eq!(tables["symbols"].len(), jsonl(&out, "symbols.jsonl").len());
    assert!(!tables["cycles"].is_empty(), "alpha and beta import each other");

    // A body edit in beta: only beta's partition files are rewritten.
    let before = stamps(&out);
    // DuckDB numbers rows as they are inserted: a replaced row gets a new `rowid`.
    let row_ids = |table: &str| {
        query_json(&out, &format!("SELECT rowid FROM {table} WHERE path = 'beta/inner/deep.py' ORDER BY ordinal"))
    };
    let (imports_before, symbols_before) = (row_ids("imports"), row_ids("symbols"));
    assert_eq!(imports_before.len(), 2);
    let file = root.join("beta/inner/deep.py");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + "\ndef added(): pass\n").unwrap();
    built(root, &out, &[]);
    let after = stamps(&out);
    let rewritten: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(!rewritten.is_empty());
    assert!(rewritten.iter().all(|k| k.contains("package=beta/")), "only beta's partition changed: {rewritten:?}");
    assert!(!rewritten.iter().any(|k| k.starts_with("imports/")), "a function added leaves the imports file: {rewritten:?}");
    assert_database_matches_cold(root, &out, &cold);
    // The database replaced the file's symbols, and left its imports rows alone (their
    // partition file kept its bytes).
    assert_ne!(row_ids("symbols"), symbols_before);
    assert_eq!(row_ids("imports"), imports_before);
    let explain = crate::support::explain_json(root, &[]);
    let database_node = explain["nodes"].as_array().unwrap().iter().find(|n| n["stage"] == "write" && n["subject"] == "codeintel.duckdb");
    assert!(database_node.is_some_and(|n| n["status"] == "recomputed"), "the database is a write node: {explain}");

    // A new module in a new package, then a deleted module.
    std::fs::create_dir_all(root.join("epsilon")).unwrap();
    std::fs::write(root.join("epsilon/__init__.py"), "from alpha import Engine\nclass Car(Engine):\n    pass\n").unwrap();
    built(root, &out, &[]);
    assert!(out.join("parquet/modules/package=epsilon/part-0.parquet").exists());
    assert_database_matches_cold(root, &out, &cold);
    // gamma's syntax error (its only diagnostic) fixed: its partition has no diagnostics
    // file any more, and the database drops gamma's diagnostics rows.
    let gamma_diagnostics = |out: &Path| database_tables(out)["diagnostics"].iter().filter(|r| r["path"] == "gamma.py").count();
    assert!(partition_dirs(&out, "diagnostics").contains(&"gamma".to_string()));
    assert_eq!(gamma_diagnostics(&out), 1);
    std::fs::write(root.join("gamma.py"), "\"\"\"Fixed.\"\"\"\n").unwrap();
    built(root, &out, &[]);
    assert!(!partition_dirs(&out, "diagnostics").contains(&"gamma".to_string()), "no diagnostics, no file");
    assert_eq!(gamma_diagnostics(&out), 0);
    assert_database_matches_cold(root, &out, &cold);
    std::fs::remove_file(root.join("delta.py")).unwrap();
    built(root, &out, &[]);
    assert!(!out.join("parquet/modules/package=delta").exists(), "a vanished partition's files are removed");
    assert_database_matches_cold(root, &out, &cold);
    // An edit that changes exports: rows of other modules change too.
    let file = root.join("alpha/core.py");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("\"run\"]", "\"run\", \"Wheel\"]\nWheel = 4")).unwrap();
    built(root, &out, &[]);
    assert_database_matches_cold(root, &out, &cold);
    // A new import cycle, then its end: the update replaces the `cycles` table.
    let cycle_modules = |out: &Path| -> Vec<String> {
        database_tables(out)["cycles"].iter().filter_map(|r| r["module"].as_str().map(str::to_string)).collect()
    };
    std::fs::write(root.join("zeta.py"), "import eta\n").unwrap();
    std::fs::write(root.join("eta.py"), "import zeta\n").unwrap();
    built(root, &out, &[]);
    assert!(cycle_modules(&out).contains(&"zeta".to_string()), "{:?}", cycle_modules(&out));
    assert_database_matches_cold(root, &out, &cold);
    // The cycle gains a member, then loses it: the update adds and deletes only its rows.
    std::fs::write(root.join("theta.py"), "import zeta\n").unwrap();
    std::fs::write(root.join("zeta.py"), "import eta\nimport theta\n").unwrap();
    built(root, &out, &[]);
    assert!(cycle_modules(&out).contains(&"theta".to_string()), "{:?}", cycle_modules(&out));
    assert_database_matches_cold(root, &out, &cold);
    std::fs::write(root.join("theta.py"), "\n").unwrap();
    built(root, &out, &[]);
    assert!(!cycle_modules(&out).contains(&"theta".to_string()), "{:?}", cycle_modules(&out));
    assert!(cycle_modules(&out).contains(&"zeta".to_string()), "{:?}", cycle_modules(&out));
    assert_database_matches_cold(root, &out, &cold);
    std::fs::write(root.join("eta.py"), "\n").unwrap();
    built(root, &out, &[]);
    assert!(!cycle_modules(&out).contains(&"zeta".to_string()), "{:?}", cycle_modules(&out));
    assert_database_matches_cold(root, &out, &cold);
}

#[test]
fn the_write_ahead_log_stays_short() {
    // Every open replays the whole write-ahead log, so a long one slows every build after
    // it. Replacing the rows of a module with thousands of symbols writes a long entry: the
    // commit checkpoints it instead of keeping it.
    let repo = repo("columnar");
    let (root, out, cold) = (&repo.root, repo.out(), repo.tmp.path().join("cold"));
    let big: String = (0..4000).map(|i| format!("def function_{i}(argument):\n    return argument + {i}\n")).collect();
    std::fs::write(root.join("big.py"), &big).unwrap();
    built(root, &out, &[]);
    let wal = out.join("codeintel.duckdb.wal");
    for round in 0..2 {
        std::fs::write(root.join("big.py"), format!("{big}\ndef extra_{round}():\n    return {round}\n")).unwrap();
        built(root, &out, &[]);
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert!(
            size <= codeintel_enrich::writers::duckdb::WAL_CHECKPOINT_BYTES,
            "round {round}: the log holds {size} bytes"
        );
        assert_eq!(query_json(&out, "SELECT count(*) AS n FROM symbols WHERE path = 'big.py'")[0]["n"], 4001);
    }
    // A small edit stays in the log (no checkpoint at every close).
    let file = root.join("alpha/core.py");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + "\n# a comment\n").unwrap();
    built(root, &out, &[]);
    assert!(std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0), "a one-file update is logged, not checkpointed");
    assert_database_matches_cold(root, &out, &cold);
}

#[test]
fn a_build_killed_while_writing_the_database_leaves_the_previous_one() {
    let repo = repo("columnar");
    let (root, out) = (&repo.root, repo.out());
    built(root, &out, &[]);
    let previous = database_tables(&out);
    std::fs::write(root.join("gamma.py"), "\"\"\"Fixed.\"\"\"\ndef fixed():\n    pass\n").unwrap();
    for point in ["duckdb-commit"] {
        let output = bin()
            .env("CODEINTEL_TEST_ABORT", point)
            .args(["build", "--root"])
            .arg(root)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), None, "aborted at {point}: {}", stderr(&output));
        assert_eq!(database_tables(&out), previous, "the previous database survives a kill at {point}");
    }
    // The next build repairs it.
    built(root, &out, &[]);
    assert_database_matches_cold(root, &out, &repo.tmp.path().join("cold"));
    // A kill while rebuilding (an older schema, say) leaves the database it was replacing.
    let before = database_tables(&out);
    {
        let conn = duckdb::Connection::open(out.join("codeintel.duckdb")).unwrap();
        conn.execute_batch("UPDATE codeintel_meta SET value = '0' WHERE key = 'schema'").unwrap();
    }
    std::fs::write(root.join("gamma.py"), "\"\"\"Fixed again.\"\"\"\n").unwrap();
    let output = bin().env("CODEINTEL_TEST_ABORT", "duckdb-rebuild").args(["build", "--root"]).arg(root).arg("--out").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), None, "{}", stderr(&output));
    let mut survived = database_tables(&out);
    survived.remove("codeintel_meta");
    let mut before = before;
    before.remove("codeintel_meta");
    assert_eq!(survived, before);
}

#[test]
fn older_foreign_or_stale_databases_are_rebuilt() {
    let repo = repo("columnar");
    let (root, out, cold) = (&repo.root, repo.out(), repo.tmp.path().join("cold"));
    built(root, &out, &[]);
    // An older schema: rebuilt, not half-updated.
    {
        let conn = duckdb::Connection::open(out.join("codeintel.duckdb")).unwrap();
        conn.execute_batch("UPDATE codeintel_meta SET value = '0' WHERE key = 'schema'; DELETE FROM symbols;").unwrap();
    }
    std::fs::write(root.join("gamma.py"), "x = 1\n").unwrap();
    built(root, &out, &[]);
    assert_database_matches_cold(root, &out, &cold);
    // A file that is not a database at all.
    std::fs::write(out.join("codeintel.duckdb"), b"not a database").unwrap();
    std::fs::write(root.join("gamma.py"), "x = 2\n").unwrap();
    built(root, &out, &[]);
    assert_database_matches_cold(root, &out, &cold);
    // A database deleted by hand, with nothing else changed: the no-op build restores it.
    std::fs::remove_file(out.join("codeintel.duckdb")).unwrap();
    built(root, &out, &[]);
    assert_database_matches_cold(root, &out, &cold);
    // --no-database removes it (a database left behind would be stale).
    built(root, &out, &["--no-database"]);
    assert!(!out.join("codeintel.duckdb").exists());
    assert!(out.join("parquet/modules").is_dir());
}

#[test]
fn a_database_held_by_another_process_stops_the_build_before_it_writes() {
    let repo = repo("columnar");
    let (root, out) = (&repo.root, repo.out());
    built(root, &out, &[]);
    let modules = std::fs::read(out.join("modules.jsonl")).unwrap();
    std::fs::write(root.join("gamma.py"), "y = 1\n").unwrap();
    let holder = duckdb::Connection::open(out.join("codeintel.duckdb")).unwrap();
    let output = build(root, &out, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("codeintel.duckdb") && message.contains("another process holds the database"), "{message}");
    assert_eq!(std::fs::read(out.join("modules.jsonl")).unwrap(), modules, "nothing was written");
    drop(holder);
    built(root, &out, &[]);
    assert_database_matches_cold(root, &out, &repo.tmp.path().join("cold"));
}

#[test]
fn query_prints_tables_json_csv_and_views() {
    let repo = repo("columnar");
    let out = repo.out();
    built(&repo.root, &out, &[]);
    let run = |args: &[&str]| {
        let output = bin().arg("query").arg("--out").arg(&out).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let table = run(&["SELECT module, fan_in FROM modules WHERE module LIKE 'alpha%' ORDER BY module"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines.iter().any(|l| l.contains("| module") && l.contains("fan_in")), "{table}");
    assert!(lines.iter().any(|l| l.contains("| alpha.core")), "{table}");
    let widths: std::collections::BTreeSet<usize> = lines.iter().filter(|l| l.starts_with(['+', '|'])).map(|l| l.chars().count()).collect();
    assert_eq!(widths.len(), 1, "aligned: {table}");
    assert!(table.trim_end().ends_with("(2 rows)"), "{table}");

    let rows = query_json(&out, "SELECT module, exports FROM modules WHERE module = 'alpha.core'");
    assert_eq!(rows, [serde_json::json!({"module": "alpha.core", "exports": ["Engine", "run"]})]);
    assert_eq!(query_json(&out, "SELECT * FROM modules WHERE false"), Vec::<Value>::new());

    let csv = run(&["--csv", "SELECT module, exports FROM modules WHERE module = 'alpha.core'"]);
    assert_eq!(csv, "module,exports\nalpha.core,\"[Engine, run]\"\n");

    let views = run(&["--views"]);
    for view in ["hubs", "import_cycles", "low_coverage_by_owner", "public_star_modules", "incomplete_exports", "unresolved_imports"] {
        assert!(views.lines().any(|l| l.starts_with(view) && l.len() > view.len() + 10), "{view} listed with a description: {views}");
    }
    let cycles = query_json(&out, "SELECT kind, modules FROM import_cycles");
    assert!(cycles.iter().any(|c| c["modules"] == serde_json::json!(["alpha", "beta"])), "{cycles:?}");
    let stars = query_json(&out, "SELECT module FROM public_star_modules");
    assert_eq!(stars, [serde_json::json!({"module": "alpha"}), serde_json::json!({"module": "delta"})]);
    let hubs = query_json(&out, "SELECT module FROM hubs LIMIT 1");
    assert_eq!(hubs, [serde_json::json!({"module": "alpha"})]);

    // Bad SQL and a missing database are clear errors.
    let output = bin().arg("query").arg("--out").arg(&out).arg("SELEC nonsense").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("error"), "{}", stderr(&output));
    let output = bin().arg("query").arg("--out").arg(repo.tmp.path().join("nowhere")).arg("SELECT 1").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no database"), "{}", stderr(&output));
}
