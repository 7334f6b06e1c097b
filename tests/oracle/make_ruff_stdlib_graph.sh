#!/usr/bin/env bash
# Regenerate tests/oracle/ruff_stdlib_graph.json: `ruff analyze graph` over the standard
# library of `python3` (site-packages excluded), the peer the import graph is compared with.
# Needs ruff (pip install ruff); the file is committed so tests need no download.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
config=$(mktemp)
trap 'rm -f "$config"' EXIT
printf 'extend-exclude = ["site-packages"]\n' > "$config"
ruff --version > "$here/ruff_stdlib_graph.version"
(cd "$stdlib" && ruff analyze graph --config "$config" .) > "$here/ruff_stdlib_graph.json"
