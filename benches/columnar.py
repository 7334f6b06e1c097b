#!/usr/bin/env python3
"""The columnar outputs' cost, next to the seed pipeline's way of loading DuckDB.

Usage: python3 benches/columnar.py ROOT [--runs 5] [--exclude GLOB ...] [--bin target/release/codeintel-enrich]

On a copy of ROOT, medians of RUNS runs of:
- a cold build without the dataset and database (`--no-parquet`) and with them (the default),
  and the ratio: what Parquet + DuckDB add to a cold build;
- the store time of a cold build and of a one-file edit (a function added to one module):
  the build's own `parquet` + `database` phases from its run log (the database phase runs
  beside the write phase, so it includes waiting for the disk), the edit's `database open`
  (it runs beside the evaluation: shown apart), and the same edit's whole build without the
  dataset and database;
- the seed's way on the same JSONL, with the duckdb Python package: a cold load with
  `read_json_auto` (CREATE TABLE AS), and after the same one-file edit, `read_json_auto` of
  the new JSONL into staging tables and `MERGE INTO` each table.
Every cold build writes into new output and cache directories, all removed at the end:
deleting the last run's thousands of files right before a cold build makes the next one's
file creations slower on file systems that skip recently freed inodes (ext4 without a
journal, as on the benchmark machine: +0.4 s of system time per cold build with the
dataset), which a first build in a fresh checkout never pays.
Run in release mode on an otherwise idle machine.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb

TABLE_KEYS = {
    "modules": ["path"],
    "symbols": ["path", "qualname", "line", "col"],
    "imports": ["path", "line", "col", "target"],
    "diagnostics": ["path", "kind", "message"],
}


CPU = []  # user + system seconds of each run()


def run(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode not in (0, 1):
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()}")
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return elapsed


def phases(cache):
    with open(os.path.join(cache, "last-run.json")) as f:
        log = json.load(f)
    return dict((name, seconds) for name, seconds in log["timings"])


def seed_cold(out, db_path):
    for suffix in ("", ".wal"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    started = time.perf_counter()
    con = duckdb.connect(db_path)
    for table in TABLE_KEYS:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_json_auto('{out}/{table}.jsonl', maximum_object_size = 100000000)")
    con.close()
    return time.perf_counter() - started


def seed_merge(out, db_path):
    started = time.perf_counter()
    con = duckdb.connect(db_path)
    for table, key in TABLE_KEYS.items():
        on = " AND ".join(f"t.{k} IS NOT DISTINCT FROM s.{k}" for k in key)
        con.execute(f"CREATE OR REPLACE TEMP TABLE staging AS SELECT * FROM read_json_auto('{out}/{table}.jsonl', maximum_object_size = 100000000)")
        con.execute(
            f"MERGE INTO {table} AS t USING staging AS s ON ({on}) "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT * "
            "WHEN NOT MATCHED BY SOURCE THEN DELETE"
        )
    con.close()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "codeintel-enrich"))
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="codeintel-columnar-")
    tree = os.path.join(work, "tree")
    shutil.copytree(args.root, tree, symlinks=True)
    excludes = [x for glob in args.exclude for x in ("--exclude", glob)]

    def base(i, variant):
        out, cache = os.path.join(work, f"out-{variant}-{i}"), os.path.join(work, f"cache-{variant}-{i}")
        return out, cache, [binary, "build", "--root", tree, "--out", out, "--cache-dir", cache, "-q", *excludes]

    sources = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs
        if f.endswith(".py") and "/test/" not in os.path.join(d, f) and "site-packages" not in os.path.join(d, f)
    )
    edited = sources[len(sources) // 2]
    original = open(edited, "rb").read()
    seed_db = os.path.join(work, "seed.duckdb")

    results = {k: [] for k in ("edit_open", "cold_without", "cold_without_cpu", "cold_with", "cold_with_cpu", "cold_store", "edit_store", "edit_build", "edit_without", "seed_cold", "seed_edit")}

    def edit(i):
        with open(edited, "ab") as f:
            f.write(f"\n\ndef _bench_added_{i}():\n    return {i}\n".encode())

    for i in range(args.runs):
        _, _, without = base(i, "without")
        results["cold_without"].append(run(without + ["--no-parquet"]))
        results["cold_without_cpu"].append(CPU[-1])
        edit(i)
        results["edit_without"].append(run(without + ["--no-parquet"]))
        with open(edited, "wb") as f:
            f.write(original)
        out, cache, with_store = base(i, "with")
        results["cold_with"].append(run(with_store))
        results["cold_with_cpu"].append(CPU[-1])
        p = phases(cache)
        results["cold_store"].append(p.get("parquet", 0) + p.get("database", 0))
        results["seed_cold"].append(seed_cold(out, seed_db))
        edit(i)
        results["edit_build"].append(run(with_store))
        p = phases(cache)
        results["edit_store"].append(p.get("parquet", 0) + p.get("database", 0))
        results["edit_open"].append(p.get("database open", 0))
        results["seed_edit"].append(seed_merge(out, seed_db))
        with open(edited, "wb") as f:
            f.write(original)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"tree: {args.root} ({len(sources)} non-test sources), {args.runs} runs, medians; edited {os.path.relpath(edited, tree)}")
    print(f"| case | median | note |")
    print(f"| --- | ---: | --- |")
    print(f"| cold build, --no-parquet | {med['cold_without']:.3f} s | CPU {med['cold_without_cpu']:.2f} s |")
    print(f"| cold build with Parquet + DuckDB | {med['cold_with']:.3f} s | {100 * (med['cold_with'] / med['cold_without'] - 1):+.1f}%; CPU {med['cold_with_cpu']:.2f} s ({100 * (med['cold_with_cpu'] / med['cold_without_cpu'] - 1):+.1f}%) |")
    print(f"| cold store (parquet + database phases) | {1000 * med['cold_store']:.1f} ms | |")
    print(f"| seed: read_json_auto cold load | {1000 * med['seed_cold']:.1f} ms | {med['seed_cold'] / med['cold_store']:.1f}x ours |")
    print(f"| one-file edit: whole build, --no-parquet | {1000 * med['edit_without']:.1f} ms | |")
    print(f"| one-file edit: whole build | {1000 * med['edit_build']:.1f} ms | {1000 * (med['edit_build'] - med['edit_without']):+.1f} ms |")
    print(f"| one-file edit: store (parquet + database phases) | {1000 * med['edit_store']:.1f} ms | |")
    print(f"| one-file edit: database open (beside the evaluation, not in the store phases) | {1000 * med['edit_open']:.1f} ms | |")
    print(f"| seed: read_json_auto + MERGE after the edit | {1000 * med['seed_edit']:.1f} ms | {med['seed_edit'] / max(med['edit_store'], 1e-9):.1f}x ours |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
