#!/usr/bin/env bash
# Training-update throughput: forward + backward + AdamW at batch 4 × 256 tokens on the default
# model, intuitor vs PyTorch, 2 threads, same command. Also reports intuitor's fraction of the
# matmul roofline (6 × parameters FLOP per token over the GEMM GFLOP/s measured in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
source bench/setup.sh
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=$(RAYON_NUM_THREADS=$THREADS ./target/release/intuitor-bench update --batch 4 --prompt 128 --completion 128)
theirs=$(target/pyref/bin/python bench/torch_update.py "$gguf" 4 128 128 "$THREADS" 3 2>/dev/null)
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'':10}{'s/step':>8}{'tokens/s':>10}{'peak RSS MB':>13}")
for n, r in (("intuitor", o), ("pytorch", t)):
    print(f"{n:10}{r['seconds_per_step']:8.2f}{r['tokens_per_second']:10.1f}{r['peak_rss_mb']:13.0f}")
print(f"ratio (tokens/s): {o['tokens_per_second'] / t['tokens_per_second']:.2f}x; "
      f"GEMM {o['gemm_gflops']:.0f} GFLOP/s; intuitor at {100 * o['roofline_fraction']:.0f}% of the roofline")
PY
