#!/bin/bash
# Instructions per article of topic tagging (see benchmarks/topics_ir.py).
# Usage: benchmarks/topics_ir.sh CODE_DIR on|off TOPICS   (run from the repo root; needs valgrind)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
count() {
  local out; out=$(mktemp)
  PYTHONPATH=$1 valgrind --tool=callgrind --callgrind-out-file="$out" "$py" \
    "$here/benchmarks/topics_ir.py" "$2" "$3" "$4" 2>&1 | awk '/Collected/ {gsub(",", "", $4); print $4}'
  rm -f "$out"
}
without=$(count "$1" "$2" "$3" 0)
with=$(count "$1" "$2" "$3" 1)
python3 -c "print(f'$1, morphology $2, $3 topics: {($with - $without) / 300:,.0f} instructions per article')"
