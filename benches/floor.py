#!/usr/bin/env python3
"""Cold, warm and incremental builds next to the floor, in one run on one tree.

Usage: python3 benches/floor.py ROOT [--runs 5] [--exclude GLOB ...] [--bin target/release/codeintel-enrich]

Prints, for each case, the median of RUNS wall-clock runs, the ratio to the floor (walk +
read + blake3 + decode + tree-sitter parse of every file on all cores: the hidden `floor`
subcommand) and peak RSS (getrusage of the child). Cases: floor; cold build without a cache;
cold build writing the cache; no-op right after a build; nine kinds of one-file edit (a
comment, a blank line at the top, a function body, a new public name, a new private name, a
new import of another module of the tree, `__all__` assigned, a new file, a deleted file),
each built right after a build of the unedited tree; `ruff analyze graph` when ruff is
installed. Edits are made on a copy of ROOT and undone between runs. Run in release mode on an
otherwise idle machine.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, cwd=None):
    """Wall-clock seconds and peak RSS (KiB) of one run of `cmd`."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"failed ({code}): {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "codeintel-enrich"))
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="codeintel-bench-")
    tree = os.path.join(work, "tree")
    shutil.copytree(args.root, tree, symlinks=True)
    excludes = [x for glob in args.exclude for x in ("--exclude", glob)]
    out, cache = os.path.join(work, "out"), os.path.join(work, "cache")
    base = [binary, "build", "--root", tree, "--out", out, "-q", *excludes]
    sources = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs if f.endswith(".py") and not any(
            p in os.path.join(d, f) for p in ("/test/", "site-packages"))
    )
    edited = sources[len(sources) // 2]
    original = open(edited, "rb").read()

    def restore():
        with open(edited, "wb") as f:
            f.write(original)

    cases = []

    def case(name, prepare, cmd):
        times, peaks = [], []
        for _ in range(args.runs):
            prepare()
            elapsed, rss = timed(cmd() if callable(cmd) else cmd)
            times.append(elapsed)
            peaks.append(rss)
        cases.append((name, statistics.median(times), max(peaks)))

    case("floor (walk+read+hash+parse)", lambda: None, [binary, "floor", "--root", tree, *excludes])
    # Cold builds write into new directories, all removed at the end: deleting the last run's
    # thousands of files right before makes file creation slower on file systems whose inode
    # allocator skips recently freed inodes (ext4 without a journal, as here), a cost a first
    # build in a fresh checkout does not pay.
    fresh = iter(range(10**6))

    def cold(flags):
        n = next(fresh)
        return [binary, "build", "--root", tree, "--out", os.path.join(work, f"out-{n}"), "-q", *excludes, *flags(n)]

    case("cold, no cache", lambda: None, lambda: cold(lambda n: ["--no-cache"]))
    case("cold, writing the cache", lambda: None, lambda: cold(lambda n: ["--cache-dir", os.path.join(work, f"cache-{n}")]))
    warm = base + ["--cache-dir", cache]
    subprocess.run(warm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    case("no-op right after a build", lambda: subprocess.run(warm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), warm)

    # The edit kinds: each starts from the original tree built with the cache (the base may
    # carry a line the edit then changes), and the edit is what the measured build sees.
    rel = os.path.relpath(edited, tree)
    other = next(s for s in sources if s != edited and not s.endswith("__init__.py"))
    other_module = os.path.relpath(other, tree)[:-3].replace(os.sep, ".")
    fresh_file = os.path.join(os.path.dirname(edited), "bench_fresh_module.py")

    def edit_case(name, edit, base=b""):
        def prepare():
            restore()
            if os.path.exists(fresh_file):
                os.remove(fresh_file)
            if base:
                with open(edited, "ab") as f:
                    f.write(base)
            subprocess.run(warm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            edit()

        case(f"edit: {name}", prepare, warm)

    def append(text):
        def edit():
            with open(edited, "ab") as f:
                f.write(text)
        return edit

    def prepend_blank_line():
        with open(edited, "rb") as f:
            text = f.read()
        with open(edited, "wb") as f:
            f.write(b"\n" + text)

    def change_body():
        with open(edited, "rb") as f:
            text = f.read()
        with open(edited, "wb") as f:
            f.write(text.replace(b"return 'bench'", b"return 'bench, edited'"))

    def new_file():
        with open(fresh_file, "w") as f:
            f.write("def fresh():\n    return 1\n")

    edit_case("a comment appended", append(b"\n# an edited comment\n"))
    edit_case("a blank line at the top", prepend_blank_line)
    edit_case("a function body", change_body, base=b"\n\ndef bench_body():\n    return 'bench'\n")
    edit_case("a new public name", append(b"\nBENCH_NEW_PUBLIC_NAME = 1\n"))
    edit_case("a new private name", append(b"\n_bench_private_name = 1\n"))
    edit_case(f"a new import ({other_module})", append(f"\nimport {other_module}\n".encode()))
    edit_case("__all__ assigned", append(b"\n__all__ = []\n"))
    edit_case("a new file", new_file)

    def deleted_prepare():
        restore()
        new_file()
        subprocess.run(warm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.remove(fresh_file)

    case("edit: a deleted file", deleted_prepare, warm)
    restore()
    if shutil.which("ruff"):
        case("ruff analyze graph", lambda: None, ["ruff", "analyze", "graph", "--quiet", tree])
    floor = cases[0][1]
    total = sum(1 for d, _, fs in os.walk(tree) for f in fs if f.endswith(".py"))
    print(f"{total} .py files in {args.root} (edits in {rel}), {args.runs} runs each, medians")
    print(f"{'case':40} {'median':>9} {'vs floor':>9} {'peak RSS':>10}")
    for name, median, rss in cases:
        print(f"{name:40} {median:8.3f}s {median / floor:8.2f}x {rss / 1024:8.0f}MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
