"""Read the Parquet dataset of an output directory with pyarrow, pandas, polars and DuckDB,
as a user would (the directory as-is, partition column inferred), and print what each saw
as JSON: {table: {reader: {"rows": n, "package_inferred": bool}}}.

Used by tests/integration/columnar.rs; run it by hand as `python3 read_dataset.py OUT`.
"""

import json
import sys
from pathlib import Path

import duckdb
import pandas
import polars
import pyarrow.dataset

TABLES = ["modules", "symbols", "imports", "tags", "diagnostics"]


def expected_packages(directory: Path) -> set:
    return {p.name.split("=", 1)[1] for p in directory.iterdir() if p.name.startswith("package=")}


def main() -> None:
    out = Path(sys.argv[1])
    report = {}
    for table in TABLES:
        directory = out / "parquet" / table
        packages = expected_packages(directory)
        seen = {}

        dataset = pyarrow.dataset.dataset(directory, format="parquet", partitioning="hive")
        arrow_table = dataset.to_table()
        seen["pyarrow"] = {
            "rows": arrow_table.num_rows,
            "package_inferred": "package" in arrow_table.column_names
            and set(arrow_table.column("package").to_pylist()) <= packages,
        }
        if table == "modules":
            rows = {r["path"]: r for r in arrow_table.to_pylist()}
            jsonl = [json.loads(line) for line in (out / "modules.jsonl").read_text().splitlines()]
            seen["pyarrow"]["exports_equal_jsonl"] = all(
                rows[m["path"]]["exports"] == m["exports"]
                and rows[m["path"]]["package"] == m["module"].split(".")[0]
                for m in jsonl
            )

        frame = pandas.read_parquet(directory)
        seen["pandas"] = {
            "rows": len(frame),
            "package_inferred": "package" in frame.columns and set(map(str, frame["package"])) <= packages,
        }

        lazy = polars.scan_parquet(str(directory / "**" / "*.parquet"), hive_partitioning=True)
        frame = lazy.collect()
        seen["polars"] = {
            "rows": frame.height,
            "package_inferred": "package" in frame.columns and set(frame["package"].to_list()) <= packages,
        }

        connection = duckdb.connect()
        scan = f"read_parquet('{directory}/**/*.parquet', hive_partitioning = true)"
        columns = [d[0] for d in connection.execute(f"SELECT * FROM {scan} LIMIT 0").description]
        values = {r[0] for r in connection.execute(f"SELECT DISTINCT package FROM {scan}").fetchall()}
        seen["duckdb"] = {
            "rows": connection.execute(f"SELECT count(*) FROM {scan}").fetchall()[0][0],
            "package_inferred": "package" in columns and {str(v) for v in values} <= packages,
        }
        report[table] = seen
    json.dump(report, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
