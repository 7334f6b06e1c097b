#!/usr/bin/env python3
"""Check codeintel-enrich's overlays: every `overlays/**.pyi` parses with Python's `ast`, and the
names `from m import *` binds on the stub (the typing spec's rules for stubs) equal the
module's exports in `modules.jsonl` (`all` when it has one, else `exports` + `exports_maybe`).

Usage: stub_oracle.py --out DIR. Prints a JSON report on stdout:
{"stubs": N, "parse_errors": [[path, error]], "mismatches": [{module, stub_only, exports_only}],
 "selected": N (modules whose overlay.needed is true), "missing": [paths without a stub]}.
"""
import argparse
import ast
import keyword
import json
import os
import sys


def stub_star_names(tree):
    """What `from m import *` binds on a stub: `__all__` when assigned, else public names,
    counting imports only in the re-export forms (`import a as a`, `from m import a as a`)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == "__all__" and node.value is not None:
                    return {elt.value for elt in node.value.elts}
                if isinstance(target, ast.Name):
                    names.add(target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is not None and alias.asname == alias.name:
                    names.add(alias.asname)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.asname is not None and alias.asname == alias.name:
                    names.add(alias.asname)
    return {n for n in names if not n.startswith("_")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.out, "modules.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    report = {"stubs": 0, "selected": 0, "parse_errors": [], "mismatches": [], "missing": []}
    for record in records:
        if not record["overlay"]["needed"]:
            continue
        report["selected"] += 1
        module = record["module"]
        base = module.replace(".", "/")
        relative = base + ("/__init__.pyi" if record["is_package"] else ".pyi")
        path = os.path.join(args.out, "overlays", relative)
        if not os.path.exists(path):
            report["missing"].append(relative)
            continue
        report["stubs"] += 1
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            tree = ast.parse(text, filename=relative)
        except SyntaxError as err:
            report["parse_errors"].append([relative, str(err)])
            continue
        stub = stub_star_names(tree)
        expected = set(record["all"]) if record["all"] is not None else set(record["exports"]) | set(record["exports_maybe"])
        # A submodule file named like `audit-tests.py` may be bound at run time; a stub cannot
        # name it.
        expected = {n for n in expected if n.isidentifier() and not keyword.iskeyword(n)}
        if stub != expected:
            report["mismatches"].append(
                {"module": module, "stub_only": sorted(stub - expected), "exports_only": sorted(expected - stub)}
            )
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
