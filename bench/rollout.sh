#!/usr/bin/env bash
# Rollout throughput: intuitor's engine vs transformers generate, 4 prompts × G=7 × 128 new
# tokens, T 0.9, top-k 50, 2 threads, same machine, same command. intuitor's time includes the
# per-token log-probs, entropy and self-certainty; transformers' does not.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; G=${G:-7}; NEW=${NEW:-128}
source bench/setup.sh
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=$(RAYON_NUM_THREADS=$THREADS ./target/release/intuitor-bench rollout --group "$G" --new-tokens "$NEW")
theirs=$(target/pyref/bin/python bench/hf_rollout.py "$gguf" "$G" "$NEW" "$THREADS" "$prompts" 2>/dev/null)
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'':14}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}{'peak RSS MB':>13}")
for name, r in (("intuitor", o), ("transformers", t)):
    print(f"{name:14}{r['generated_tokens']:8d}{r['seconds']:9.1f}{r['tokens_per_second']:10.1f}{r['peak_rss_mb']:13.0f}")
print(f"speed-up (tokens/s ratio): {o['tokens_per_second'] / t['tokens_per_second']:.2f}x")
PY
