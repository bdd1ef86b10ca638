#!/usr/bin/env bash
# The long tail (issue 17): 28 completions whose lengths are spread from 16 to 512 tokens, with KV
# room for 8 at a time, on the default model. Continuous batching (a row starts as soon as one
# finishes) against static batches of 8 that each wait for their slowest row, same machine, same
# command; both give the same completions.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; ROWS=${ROWS:-28}; LONGEST=${LONGEST:-512}; SLOTS=${SLOTS:-8}
cargo build --release --quiet --bin intuitor-bench
bash scripts/fetch_model.sh >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(RAYON_NUM_THREADS=$THREADS ./target/release/intuitor-bench long-tail --rows "$ROWS" \
  --longest "$LONGEST" --slots "$SLOTS")
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"{r['rows']} rows, {r['generated_tokens']} tokens, {r['slots']} slots")
print(f"static batches:      {r['static_seconds']:7.1f} s")
print(f"continuous batching: {r['continuous_seconds']:7.1f} s  ({r['speedup']:.2f}x, same completions: {r['same_completions']})")
PY
