#!/usr/bin/env bash
# Where the memory of a GRPO step goes: runs `intuitor train` with bench/all.sh's GRPO-step
# settings for STEPS steps (default 2) and samples its VmRSS every 0.1 s, then prints the
# timeline (a line whenever RSS moved by ≥ 100 MB), the peak and the step times. No Python.
#   bash bench/rss_timeline.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-2}
bash scripts/fetch_model.sh >/dev/null
cargo build --release --quiet
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
head -8 tests/fixtures/gsm8k_test_first20.jsonl > "$work/prompts.jsonl"
export RAYON_NUM_THREADS=${THREADS:-2}
./target/release/intuitor train --config /dev/null \
  --set dataset=\""$work/prompts.jsonl"\" --set prompt_field=\"question\" \
  --set num_generations=7 --set prompts_per_step=4 --set per_device_train_batch_size=4 \
  --set max_completion_length=128 --set beta=0.005 --set loss_type=\"bnpo\" \
  --set learning_rate=3e-6 --set max_steps="$STEPS" --set seed=7 \
  --set 'reward_funcs=["self_certainty"]' --set 'reward_weights=[1.0]' \
  --output-dir "$work/run" >"$work/log" 2>&1 &
pid=$!
start=$(date +%s.%N)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(date +%s.%N) $start $rss" >> "$work/samples"
  sleep 0.1
done
wait "$pid" || { cat "$work/log"; exit 1; }
python3 - "$work" <<'PY'
import csv, sys
w = sys.argv[1]
prev, peak = None, 0
for line in open(f"{w}/samples"):
    now, start, kb = line.split()
    mb = int(kb) // 1024
    peak = max(peak, mb)
    if prev is None or abs(mb - prev) >= 100:
        print(f"{float(now) - float(start):7.1f} s  {mb:6d} MB")
        prev = mb
print(f"peak RSS {peak} MB")
for r in csv.DictReader(open(f"{w}/run/metrics.csv")):
    print(f"step {r['step']}: {float(r['step_time']):.1f} s (rollout {float(r['rollout_time']):.1f}, update {float(r['update_time']):.1f})")
PY
