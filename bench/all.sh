#!/usr/bin/env bash
# The whole benchmark suite, side by side on the default model, 2 threads, one command:
#   rollout    intuitor's engine vs transformers generate (4 prompts × G=7 × 128 tokens, T 0.9, top-k 50)
#   update     forward + backward + AdamW at 4 × 256 tokens, intuitor vs PyTorch
#   grpo_step  seconds per optimizer step, `intuitor train` vs TRL GRPOTrainer with a
#              self-certainty reward that does the reference's extra forward (4 prompts × G=7,
#              ≤128 new tokens, β 0.005, bnpo, lr 3e-6, micro-batch 4)
# plus peak RSS of every side, the GEMM GFLOP/s of the machine and its load before and after.
# Prints a table and writes bench/results/<date>.json, or $OUT (grpo_step_speedup, rollout_speedup,
# update_speedup = baseline time ÷ ours; peak_rss_ratio = ours ÷ TRL in the GRPO step).
# The Python side runs from target/pyref (created by scripts/make_fixtures.sh); never needed by tests.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; G=${G:-7}; NEW=${NEW:-128}; STEPS=${STEPS:-3}
PY=target/pyref/bin/python
[ -x $PY ] || { echo "run bash scripts/make_fixtures.sh first (it builds target/pyref)"; exit 1; }
$PY -c "import trl" 2>/dev/null || $PY -m pip install --quiet "trl==1.16.0" "datasets"
source bench/setup.sh
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
head -8 tests/fixtures/gsm8k_test_first20.jsonl > "$work/prompts.jsonl"
export RAYON_NUM_THREADS=$THREADS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before: $load_before"

echo "rollout…"
rollout_ours=$(./target/release/intuitor-bench rollout --group "$G" --new-tokens "$NEW")
rollout_base=$($PY bench/hf_rollout.py "$gguf" "$G" "$NEW" "$THREADS" "$prompts" 2>/dev/null)
echo "update…"
update_ours=$(./target/release/intuitor-bench update --batch 4 --prompt 128 --completion 128)
update_base=$($PY bench/torch_update.py "$gguf" 4 128 128 "$THREADS" 3 2>/dev/null)

echo "GRPO step (intuitor)…"
/usr/bin/time -f "%M" -o "$work/rss" ./target/release/intuitor train --config /dev/null \
  --set dataset=\""$work/prompts.jsonl"\" --set prompt_field=\"question\" \
  --set num_generations=$G --set prompts_per_step=4 --set per_device_train_batch_size=4 \
  --set max_completion_length=$NEW --set beta=0.005 --set loss_type=\"bnpo\" \
  --set learning_rate=3e-6 --set max_steps=$STEPS --set seed=7 \
  --set 'reward_funcs=["self_certainty"]' --set 'reward_weights=[1.0]' \
  --output-dir "$work/run" >/dev/null 2>&1
grpo_ours=$(python3 - "$work" <<'PY'
import csv, json, sys
w = sys.argv[1]
rows = list(csv.DictReader(open(f"{w}/run/metrics.csv")))
times = [float(r["step_time"]) for r in rows]
rest = sorted(times[1:]) or times
print(json.dumps({"seconds_per_step": rest[len(rest) // 2], "step_times": times,
                  # num_tokens is cumulative prompt + completion tokens (TRL's metric)
                  "tokens_per_step": [b - a for a, b in zip([0] + [int(float(r["num_tokens"])) for r in rows], [int(float(r["num_tokens"])) for r in rows])],
                  "rollout_seconds": [float(r["rollout_time"]) for r in rows],
                  "update_seconds": [float(r["update_time"]) for r in rows],
                  "peak_rss_mb": int(open(f"{w}/rss").read().split()[-1]) / 1024}))
PY
)
echo "GRPO step (TRL)…"
grpo_base=$($PY bench/trl_grpo_step.py "$gguf" "$work/prompts.jsonl" "$G" "$NEW" "$THREADS" "$STEPS" 0.005 3e-6 2>/dev/null | tail -1)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load after:  $load_after"

mkdir -p bench/results
out=${OUT:-bench/results/$(date -u +%Y-%m-%d).json}
python3 - "$out" "$load_before" "$load_after" "$THREADS" \
  "$rollout_ours" "$rollout_base" "$update_ours" "$update_base" "$grpo_ours" "$grpo_base" <<'PY'
import json, platform, sys
out, lb, la, threads = sys.argv[1:5]
ro, rb, uo, ub, go, gb = map(json.loads, sys.argv[5:11])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {
    "grpo_step_speedup": gb["seconds_per_step"] / go["seconds_per_step"],
    "rollout_speedup": ro["tokens_per_second"] / rb["tokens_per_second"],
    "update_speedup": uo["tokens_per_second"] / ub["tokens_per_second"],
    "peak_rss_ratio": go["peak_rss_mb"] / gb["peak_rss_mb"],
    "update_roofline_fraction": uo["roofline_fraction"],
    "machine": {"cpu": cpu, "threads": int(threads), "gemm_gflops": uo["gemm_gflops"],
                "load_before": lb, "load_after": la, "python": platform.python_version()},
    "rollout": {"intuitor": ro, "transformers": rb},
    "update": {"intuitor": uo, "pytorch": ub},
    "grpo_step": {"intuitor": go, "trl": gb},
}
json.dump(res, open(out, "w"), indent=1)
print(f"{'':12}{'intuitor':>12}{'baseline':>12}{'ratio':>8}")
print(f"{'GRPO step':12}{go['seconds_per_step']:11.1f}s{gb['seconds_per_step']:11.1f}s{res['grpo_step_speedup']:7.2f}x  (TRL GRPOTrainer)")
print(f"{'rollout':12}{ro['tokens_per_second']:8.1f} t/s{rb['tokens_per_second']:8.1f} t/s{res['rollout_speedup']:7.2f}x  (transformers)")
print(f"{'update':12}{uo['tokens_per_second']:8.1f} t/s{ub['tokens_per_second']:8.1f} t/s{res['update_speedup']:7.2f}x  (PyTorch)")
print(f"{'peak RSS':12}{go['peak_rss_mb']:9.0f} MB{gb['peak_rss_mb']:9.0f} MB{res['peak_rss_ratio']:7.2f}   (GRPO step, ours ÷ TRL)")
print(f"GEMM {uo['gemm_gflops']:.0f} GFLOP/s; update at {100 * uo['roofline_fraction']:.0f}% of the roofline; load {lb} → {la}")
print(f"wrote {out}")
PY
