#!/usr/bin/env bash
# Builds of the Python standard library (site-packages excluded) — cold without the cache, and
# a no-change rebuild with a warm cache — next to `ruff analyze graph` on the same tree. Needs hyperfine (apt-get install hyperfine) and ruff
# (pip install ruff). Results: target/bench/stdlib.{md,json}.
#
#   bash benches/stdlib.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine" >&2; exit 2; }
command -v ruff >/dev/null || { echo "ruff is needed: pip install ruff" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/codeintel-enrich
mkdir -p target/bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# ruff reads exclusions from its configuration; give it one that leaves site-packages out.
printf 'extend-exclude = ["site-packages"]\n' > "$out/ruff.toml"
echo "stdlib: $stdlib ($(find "$stdlib" -name '*.py' -not -path '*/site-packages/*' | wc -l) .py files)"
# Exit code 1 is expected: two test files in the stdlib are deliberately undecodable.
hyperfine --ignore-failure --warmup 1 --runs "$runs" \
  --export-markdown target/bench/stdlib.md --export-json target/bench/stdlib.json \
  -n "codeintel-enrich build (cold, no cache)" "$bin build -q --no-cache --root '$stdlib' --exclude site-packages --out '$out/ci'" \
  -n "codeintel-enrich build (warm cache, no change)" "$bin build -q --cache-dir '$out/cache' --root '$stdlib' --exclude site-packages --out '$out/ci'" \
  -n "ruff analyze graph" "ruff analyze graph --config '$out/ruff.toml' '$stdlib' > /dev/null"
cat target/bench/stdlib.md
