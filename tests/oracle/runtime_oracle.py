#!/usr/bin/env python3
"""Compare codeintel-enrich's `exports` and `all` with what CPython binds at run time.

Usage: runtime_oracle.py --out DIR [--sys-path DIR] [--skip PREFIX ...] [--jobs N]

For every module in OUT/modules.jsonl (without parse errors), a fresh interpreter runs
`from <module> import *` into an empty namespace and reports the names it bound (minus
`__builtins__`) and the module's `__all__`. Modules that fail to import are counted, not
compared. `exports` is compared where the tool says `exports_complete`; `all` where the tool
says `all_complete`. Prints a JSON report on stdout.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

DRIVER = r"""
import contextlib, io, json, sys
extra = sys.argv[2]
if extra:
    sys.path.insert(0, extra)
name = sys.argv[1]
ns = {}
try:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec("from %s import *" % name, ns)
except BaseException as err:
    print(json.dumps({"error": ("%s: %s" % (type(err).__name__, err))[:300]}))
    raise SystemExit(0)
module = sys.modules[name]
declared = getattr(module, "__all__", None)
if declared is not None:
    try:
        declared = [str(n) for n in declared]
    except Exception:
        declared = "unlistable"
# `__warningregistry__` is created in the importer's globals by a DeprecationWarning.
names = sorted(n for n in ns if n not in ("__builtins__", "__warningregistry__"))
print(json.dumps({"exports": names, "all": declared}))
"""


def run(module, sys_path, timeout):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    try:
        proc = subprocess.run(
            # -S: no site hooks (setuptools replaces `distutils` from site-packages).
            [sys.executable, "-S", "-c", DRIVER, module, sys_path or ""],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"error": "no output (exit %s): %s" % (proc.returncode, proc.stderr[-300:])}
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--sys-path", default="")
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()

    with open(os.path.join(args.out, "modules.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    def skipped(name):
        parts = name.split(".")
        return (
            not name
            or parts[-1] == "__main__"
            or any(name == p or name.startswith(p + ".") for p in args.skip)
        )
    records = [r for r in records if r["parse_errors"] == 0 and not skipped(r["module"])]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda r: run(r["module"], args.sys_path, args.timeout), records))

    report = {
        "modules": len(records),
        "import_errors": [],
        "all_checked": 0,
        "all_matched": 0,
        "all_incomplete": 0,
        "all_runtime_only": [],
        "exports_checked": 0,
        "exports_matched": 0,
        "exports_incomplete": 0,
        "mismatches": [],
    }
    for record, result in zip(records, results):
        name = record["module"]
        if "error" in result:
            report["import_errors"].append([name, result["error"]])
            continue
        runtime_all = result["all"]
        if record["all"] is None:
            if runtime_all is not None:
                report["all_runtime_only"].append(name)
        elif not record["all_complete"]:
            report["all_incomplete"] += 1
        else:
            report["all_checked"] += 1
            if record["all"] == runtime_all:
                report["all_matched"] += 1
            else:
                report["mismatches"].append({"module": name, "field": "all", "tool": record["all"], "runtime": runtime_all})
        if not record["exports_complete"]:
            report["exports_incomplete"] += 1
            continue
        report["exports_checked"] += 1
        tool, runtime = set(record["exports"]), set(result["exports"])
        if tool == runtime:
            report["exports_matched"] += 1
        else:
            report["mismatches"].append(
                {
                    "module": name,
                    "field": "exports",
                    "tool_only": sorted(tool - runtime),
                    "runtime_only": sorted(runtime - tool),
                }
            )
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
