#!/usr/bin/env bash
# Incremental builds of a copy of the Python standard library (site-packages excluded), or of
# a generated 20k-module tree with `--generated`:
# cold without cache, cold writing the cache, no-op rebuild, one-file edit, and the cache
# restored in a fresh checkout (tree + cache copied elsewhere, every mtime new) — next to the
# time to just read every source file. Needs hyperfine. Results: target/bench/incremental.{md,json}.
#
#   bash benches/incremental.sh [RUNS] [--generated]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/codeintel-enrich
mkdir -p target/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/repo"
if [ "${2:-}" = "--generated" ]; then
  python3 benches/generate_tree.py "$work/repo" --packages 200 --modules 100
  edit="$work/repo/pkg7/m42.py"
  tag=generated
else
  (cd "$stdlib" && find . -name '*.py' -not -path './site-packages/*' -print0 | cpio -0pdm --quiet "$work/repo")
  edit="$work/repo/json/encoder.py"
  tag=stdlib
fi
echo "$(find "$work/repo" -name '*.py' | wc -l) modules, $(du -sh "$work/repo" | cut -f1)"
build="$bin build -q --root $work/repo --out $work/out"
$build || true   # warm the cache once
# Exit code 1 is expected: two test files in the stdlib are deliberately undecodable.
bench() { # NAME PREPARE COMMAND
  local name=$1 prepare=$2 command=$3 slug
  slug=$(echo "$name" | tr ' ,' '__')
  hyperfine --ignore-failure --warmup 1 --runs "$runs" --style basic ${prepare:+--prepare "$prepare"} \
    --export-json "target/bench/incremental-$tag-$slug.json" -n "$name" "$command"
}
bench "read every file" "" "find $work/repo -name '*.py' -print0 | xargs -0 cat > /dev/null"
bench "read and hash every file" "" "find $work/repo -name '*.py' -print0 | xargs -0 sha256sum > /dev/null"
bench "cold no cache" "" "$build --no-cache"
bench "cold writing cache" "$bin cache clear --root $work/repo" "$build"
$build || true
bench "no-op rebuild" "" "$build"
bench "one-file edit" "echo '# edit '\$RANDOM >> $edit" "$build"
# The tree restored with its cache (default location, inside the tree) but without outputs:
# every mtime is new, so every file is read and hashed, and every file's rows are rendered
# again from cached stage values; nothing is parsed.
bench "restored checkout" "rm -rf $work/copy $work/copy-out && cp -r $work/repo $work/copy && find $work/copy -type f -exec touch {} +" \
  "$bin build -q --root $work/copy --out $work/copy-out"
# The same with the outputs restored too (the default layout keeps them in the tree).
bench "restored checkout with outputs" "rm -rf $work/copy $work/copy-out && cp -r $work/repo $work/copy && cp -r $work/out $work/copy-out && find $work/copy $work/copy-out -type f -exec touch {} +" \
  "$bin build -q --root $work/copy --out $work/copy-out"
TAG=$tag python3 - <<'PY'
import glob, json
rows = []
import os
for path in sorted(glob.glob(f"target/bench/incremental-{os.environ['TAG']}-*.json")):
    for r in json.load(open(path))["results"]:
        rows.append((r["command"], r["median"]))
cold = dict(rows).get("cold no cache")
print("| run | median [s] | vs cold |")
print("|---|---:|---:|")
for name, median in rows:
    print(f"| {name} | {median:.3f} | {median / cold * 100:.1f}% |" if cold else f"| {name} | {median:.3f} | |")
PY
