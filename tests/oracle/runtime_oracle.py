#!/usr/bin/env python3
"""Compare codeintel-enrich's `exports` and `all` with what CPython binds at run time.

Usage: runtime_oracle.py --out DIR [--sys-path DIR] [--skip PREFIX ...] [--jobs N]
                         [--timeout SECONDS] [--summary]

For every module in OUT/modules.jsonl (without parse errors), a fresh interpreter runs
`from <module> import *` into an empty namespace and reports the names it bound (minus
`__builtins__`) and the module's `__all__`. Modules that fail to import are listed in
`import_errors`, not compared.

Where the tool says `exports_complete`, the bound names (runtime) are checked against the
contract `set(exports) <= runtime <= set(exports) | set(exports_maybe)` (a missing
`exports_maybe` counts as empty): a module is *sound* when it holds, *exact* when
`set(exports) == runtime`. `unsound` lists the others with `missing` (exports not bound at
run time) and `unexpected` (bound names outside exports and maybe); `inexact` lists the
sound modules that are not exact with `maybe_bound` / `maybe_unbound` (maybe names bound or
not). `sound_pct` and `exact_pct` are over the modules claimed complete, `incomplete_pct`
over the modules that imported (null when there are none). `exports_definite` counts the
modules claimed complete with no `exports_maybe` (the claim is then exact or wrong) and
`exports_definite_exact` those of them that are exact.

Where the tool says `all_complete`, a non-null `all` must equal the runtime `__all__`
(`all_mismatches` otherwise); a null `all` with a runtime `__all__` is `all_runtime_only`.

Prints the JSON report on stdout; `--summary` adds a few lines for a person on stderr.
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
    parser.add_argument("--summary", action="store_true", help="also print a short summary to stderr")
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

    report = compare(records, results)
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()
    if args.summary:
        print_summary(report, sys.stderr)


def percent(part, whole):
    """`part` of `whole` in percent, two decimals; null when `whole` is 0."""
    return round(100.0 * part / whole, 2) if whole else None


def compare(records, results):
    """The report: soundness and exactness of `exports`, and `__all__` against `all`."""
    report = {
        "modules": len(records),
        "import_errors": [],
        "exports_claimed_complete": 0,
        "exports_sound": 0,
        "exports_exact": 0,
        "exports_definite": 0,
        "exports_definite_exact": 0,
        "exports_incomplete": 0,
        "unsound": [],
        "inexact": [],
        "all_checked": 0,
        "all_matched": 0,
        "all_incomplete": 0,
        "all_runtime_only": [],
        "all_mismatches": [],
    }
    for record, result in zip(records, results):
        name = record["module"]
        if "error" in result:
            report["import_errors"].append([name, result["error"]])
            continue
        runtime_all = result["all"]
        if not record["all_complete"]:
            report["all_incomplete"] += 1
        elif record["all"] is None:
            if runtime_all is not None:
                report["all_runtime_only"].append(name)
        else:
            report["all_checked"] += 1
            if record["all"] == runtime_all:
                report["all_matched"] += 1
            else:
                report["all_mismatches"].append({"module": name, "tool": record["all"], "runtime": runtime_all})
        if not record["exports_complete"]:
            report["exports_incomplete"] += 1
            continue
        report["exports_claimed_complete"] += 1
        exports = set(record["exports"])
        maybe = set(record.get("exports_maybe") or [])
        runtime = set(result["exports"])
        # Sound: exports <= runtime <= exports | maybe. Exact: exports == runtime.
        missing = sorted(exports - runtime)
        unexpected = sorted(runtime - exports - maybe)
        if missing or unexpected:
            report["unsound"].append({"module": name, "missing": missing, "unexpected": unexpected})
            continue
        report["exports_sound"] += 1
        if not maybe:
            # No name left open: the claim is exact or wrong.
            report["exports_definite"] += 1
            report["exports_definite_exact"] += exports == runtime
        if exports == runtime:
            report["exports_exact"] += 1
        else:
            report["inexact"].append(
                {"module": name, "maybe_bound": sorted(maybe & runtime), "maybe_unbound": sorted(maybe - runtime)}
            )
    claimed = report["exports_claimed_complete"]
    report["sound_pct"] = percent(report["exports_sound"], claimed)
    report["exact_pct"] = percent(report["exports_exact"], claimed)
    report["definite_exact_pct"] = percent(report["exports_definite_exact"], report["exports_definite"])
    imported = report["modules"] - len(report["import_errors"])
    report["incomplete_pct"] = percent(report["exports_incomplete"], imported)
    return report


def print_summary(report, out, examples=10):
    """A few lines for a person: the counts, then the first unsound and mismatched modules."""
    def pct(value):
        return "-" if value is None else "%.2f%%" % value

    imported = report["modules"] - len(report["import_errors"])
    claimed = report["exports_claimed_complete"]
    lines = [
        "runtime oracle: %d modules, %d imported (%d import errors)"
        % (report["modules"], imported, len(report["import_errors"])),
        "exports: %d claimed complete: %d sound (%s), %d exact (%s); %d incomplete (%s of imported)"
        % (
            claimed,
            report["exports_sound"],
            pct(report["sound_pct"]),
            report["exports_exact"],
            pct(report["exact_pct"]),
            report["exports_incomplete"],
            pct(report["incomplete_pct"]),
        ),
        "without maybe names: %d of %d exact (%s)"
        % (report["exports_definite_exact"], report["exports_definite"], pct(report["definite_exact_pct"])),
        "__all__: %d/%d static match, %d incomplete, %d only at run time"
        % (report["all_matched"], report["all_checked"], report["all_incomplete"], len(report["all_runtime_only"])),
    ]
    for entry in report["unsound"][:examples]:
        lines.append(
            "  unsound %s: missing %s, unexpected %s" % (entry["module"], entry["missing"] or "-", entry["unexpected"] or "-")
        )
    for entry in report["all_mismatches"][:examples]:
        lines.append("  __all__ differs in %s" % entry["module"])
    for name in report["all_runtime_only"][:examples]:
        lines.append("  __all__ only at run time in %s" % name)
    hidden = sum(max(0, len(report[key]) - examples) for key in ("unsound", "all_mismatches", "all_runtime_only"))
    if hidden:
        lines.append("  … and %d more (see the JSON report)" % hidden)
    print("\n".join(lines), file=out)


if __name__ == "__main__":
    main()
