#!/usr/bin/env bash
# Greedy GSM8K on the first N test problems (default 100) with the default model: intuitor eval
# vs transformers greedy generation on the same problems, system prompt and token budget, both
# graded by `intuitor check-answer` (math mode). 2 threads, one command.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; N=${N:-100}; NEW=${NEW:-256}; BATCH=${BATCH:-16}
SYS="Let's think step by step and output the final answer within \\boxed{}."
source bench/setup.sh
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
head -"$N" "${INTUITOR_DATA_DIR:-../shared/data}/gsm8k/test.jsonl" > "$work/gsm8k.jsonl"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
RAYON_NUM_THREADS=$THREADS /usr/bin/time -f "%M" -o "$work/rss" ./target/release/intuitor eval \
  --dataset "$work/gsm8k.jsonl" --prompt-field question --answer-field answer \
  --system-prompt boxed --max-new-tokens "$NEW" --batch "$BATCH" --output-dir "$work/ours" >/dev/null 2>&1
wall=$(echo "$(date +%s.%N) - $start" | bc)
theirs=$(target/pyref/bin/python bench/hf_eval.py "$gguf" "$work/gsm8k.jsonl" "$SYS" "$NEW" "$THREADS" "$BATCH" "$work/hf.jsonl" 2>/dev/null)
./target/release/intuitor check-answer --input "$work/hf.jsonl" > "$work/hf_verdicts.jsonl"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work" "$theirs" "$wall" <<'PY'
import json, sys
w, t, wall = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
s = json.load(open(f"{w}/ours/summary.json"))
hf = [json.loads(l) for l in open(f"{w}/hf_verdicts.jsonl")]
hf_acc = sum(v["verdict"] is True for v in hf) / len(hf)
rss = int(open(f"{w}/rss").read().split()[-1]) / 1024
print(f"{'':14}{'accuracy':>9}{'tokens':>8}{'gen s':>7}{'tokens/s':>10}{'wall s':>8}{'peak RSS MB':>13}")
print(f"{'intuitor':14}{100*s['greedy']['accuracy']:8.1f}%{s['generated_tokens']:8d}{s['wall_s']:7.0f}{s['tokens_per_s']:10.1f}{wall:8.0f}{rss:13.0f}")
print(f"{'transformers':14}{100*hf_acc:8.1f}%{t['generated_tokens']:8d}{t['seconds']:7.0f}{t['tokens_per_second']:10.1f}{'':>8}{t['peak_rss_mb']:13.0f}")
print(f"speed-up (tokens/s): {s['tokens_per_s'] / t['tokens_per_second']:.2f}x")
PY
