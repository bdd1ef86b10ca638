#!/usr/bin/env bash
# Query-blocked attention (issue 16): one causal attention's forward + backward over TOKENS
# positions with Qwen2.5-1.5B's heads (2 KV heads × 6 query heads each, head_dim 128), in blocks
# of 512 query positions against one block holding every position (all scores at once, as plain
# attention keeps them). Each runs in its own process, so each peak RSS is its own.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; TOKENS=${TOKENS:-2048}; DTYPE=${DTYPE:-f32}
cargo build --release --quiet --bin intuitor-bench
run() {
  RAYON_NUM_THREADS=$THREADS ./target/release/intuitor-bench --device cpu --dtype "$DTYPE" \
    attention --tokens "$TOKENS" --block "$1"
}
blocked=$(run 512)
whole=$(run "$TOKENS")
python3 - "$blocked" "$whole" <<'PY'
import json, sys
b, w = (json.loads(a) for a in sys.argv[1:])
s = b["shape"]
print(f"attention forward + backward, {s['tokens']} tokens, {s['kv_heads']}x{s['groups']} heads, {s['dtype']}")
for name, r in (("blocks of 512", b), (f"one block of {s['tokens']}", w)):
    grown = r["peak_rss_mb"] - r["inputs_peak_rss_mb"]
    print(f"{name:>20}: {r['seconds']:6.2f} s, peak RSS {r['peak_rss_mb']:7.0f} MB (+{grown:.0f} MB over the inputs)")
print(f"memory over the inputs: {(w['peak_rss_mb'] - w['inputs_peak_rss_mb']) / (b['peak_rss_mb'] - b['inputs_peak_rss_mb']):.2f}x less with blocks")
PY
