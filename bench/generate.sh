#!/usr/bin/env bash
# Batch-1 greedy generation speed on the default model: intuitor vs HF transformers, same prompt,
# same number of new tokens, same thread count, run back to back in one command.
# Needs the reference virtualenv (bash scripts/make_fixtures.sh creates target/pyref).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
NEW=${NEW:-128}
PROMPT="Write a short story about a dragon who learns to count."
source bench/setup.sh
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=$(RAYON_NUM_THREADS=$THREADS ./target/release/intuitor generate --model default -p "$PROMPT" \
    --max-new-tokens "$NEW" --json --device cpu)
theirs=$(target/pyref/bin/python bench/hf_generate.py "$gguf" "$PROMPT" "$NEW" "$THREADS" 2>/dev/null)
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
n = len(o["completion_ids"])
print(f"{'':14}{'load s':>8}{'new tokens':>12}{'tokens/s':>10}")
print(f"{'intuitor':14}{o['load_seconds']:8.2f}{n:12d}{o['tokens_per_second']:10.1f}")
print(f"{'transformers':14}{t['load_seconds']:8.2f}{t['new_tokens']:12d}{t['tokens_per_second']:10.1f}")
print(f"ratio (intuitor / transformers): {o['tokens_per_second'] / t['tokens_per_second']:.2f}x")
PY
