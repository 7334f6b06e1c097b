#!/usr/bin/env python3
"""Compare graphs/imports.json with a `ruff analyze graph` map of the same tree.

Usage: compare_ruff_graph.py --out DIR --ruff RUFF_JSON

Both sides become sets of (importer path, imported path) edges between repository files.
Prints a JSON report: edge counts, edges only ruff has, edges only the tool has (each grouped
by a short reason where one is known).
"""
import argparse
import json
import os


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--ruff", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.out, "modules.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    path_of = {}
    for r in records:
        # A package wins over a module of the same name, as in the tool's index.
        if r["module"] not in path_of or r["is_package"]:
            path_of[r["module"]] = r["path"]
    with open(os.path.join(args.out, "graphs/imports.json"), encoding="utf-8") as f:
        graph = json.load(f)
    tool = set()
    for module, targets in graph.items():
        for target in targets:
            if module in path_of and target in path_of:
                tool.add((path_of[module], path_of[target]))
    with open(args.ruff, encoding="utf-8") as f:
        ruff_graph = json.load(f)
    files = {r["path"] for r in records}
    ruff = {(a, b) for a, targets in ruff_graph.items() for b in targets if a in files and b in files and a != b}
    report = {
        "tool_edges": len(tool),
        "ruff_edges": len(ruff),
        "common": len(tool & ruff),
        "ruff_only": sorted(map(list, ruff - tool)),
        "tool_only": sorted(map(list, tool - ruff)),
    }
    json.dump(report, __import__("sys").stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
