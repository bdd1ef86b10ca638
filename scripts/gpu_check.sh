#!/usr/bin/env bash
# The whole GPU check in one command, for the minutes a GPU is lent (issue 18). Every stage runs
# under a time limit and a shared deadline (DEADLINE seconds, default 340: all within 6 minutes), a failed stage is
# recorded and the next one runs. Writes $OUT/gpu_check.json (one entry per stage: status,
# seconds, its JSON result, peak device memory) and $OUT/gpu_check.log (every stage's output).
#
#   correctness  tests/device.rs on the device in f32 and bf16 (logits of the three tiny fixtures
#                against transformers, a seeded rollout against a CPU forward, the update's
#                gradients against TRL); seeded `generate` CPU vs device, identical text
#   training     3 steps of the tiny config on the CPU and on the device (loss, KL, grad norm per
#                step), and stop after 2 + resume on the device against the uninterrupted run
#   scale        a Qwen2.5-1.5B-shaped model with random weights (written by the machine's own
#                PyTorch): its memory plan (`intuitor plan`, bf16 + recompute); rollout 8 prompts ×
#                G 7 × (256 prompt + 768 new tokens) in bf16; update (forward + backward + AdamW)
#                on 4 × 1,024 tokens in bf16 with recompute, and in f32; peak device memory of each
#                each piece of the bf16 update timed alone (`intuitor-bench ops`); a rollout of
#                896 rows × 512 new tokens in a 12 GiB KV budget (continuous batching); 2 training
#                steps of the scale model (step times; memory plan against the measured peak);
#                one attention forward + backward at 3,584 tokens, query-blocked and as one block
#   baseline     transformers `generate` and a PyTorch forward + backward + AdamW (f32, and bf16
#                autocast) on the same shapes on the same card; GEMM and copy ceilings
#
# On the GPU machine (binaries from `bash scripts/build_cuda.sh`, carried as target/cuda/dist):
#   bash scripts/gpu_check.sh
# SKIP="rollout_torch update_torch_f32" leaves those stages out (a baseline measured before).
# Here, on the CPU, every stage with tiny shapes (so a typo never costs GPU minutes; needs
# `cargo build --release` and target/pyref from scripts/make_fixtures.sh):
#   bash scripts/gpu_check.sh --dry-run
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mode=gpu
[ "${1:-}" = --dry-run ] && mode=dry
OUT=${OUT:-$repo/target/gpu_check}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$OUT/gpu_check.log
: >"$log"
deadline=$((SECONDS + ${DEADLINE:-340}))
export INTUITOR_FIXTURES=$repo/tests/fixtures PYTHONUNBUFFERED=1

if [ "$mode" = gpu ]; then
    dev=cuda
    PY=python3
    bin=$work/bin
    mkdir -p "$bin"
    for b in intuitor intuitor-bench device-tests; do
        src=target/cuda/dist/$b.xz
        [ -f "$src" ] || { echo "error: $src missing (bash scripts/build_cuda.sh, then carry target/cuda/dist)" >&2; exit 1; }
        if command -v xz >/dev/null; then xz -dc "$src" >"$bin/$b"; else
            $PY -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$src" >"$bin/$b"
        fi
        chmod +x "$bin/$b"
    done
    # The CUDA libraries the binaries link (the driver's libcuda.so.1 aside) come from the
    # machine's PyTorch wheels.
    libs=$($PY - <<'PY'
import pathlib, site
want = {"libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13"}
dirs = []
for sp in site.getsitepackages():
    for p in pathlib.Path(sp, "nvidia").rglob("lib*.so*"):
        if p.name in want and str(p.parent) not in dirs:
            dirs.append(str(p.parent))
print(":".join(dirs))
PY
)
    export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    preset=qwen2.5-1.5b
    roll="--prompts 8 --group 7 --prompt-tokens 256 --new-tokens 768"
    roll_scale="--prompts 128 --group 7 --prompt-tokens 256 --new-tokens 512 --kv-budget 12GiB"
    upd="--batch 4 --prompt 256 --completion 768"
    plan_shape="--set prompts_per_step=8 --set num_generations=7 --set max_prompt_length=256 --set max_completion_length=768 --set per_device_train_batch_size=4"
    gemm=8192
    ops_shape="--batch 4 --tokens 1024"
    scale_shape="--set prompts_per_step=4 --set num_generations=7 --set per_device_train_batch_size=4 --set max_completion_length=512"
    attn="--batch 4 --tokens 3584"; attn_block=512; attn_whole=3584
else
    dev=cpu
    PY=$repo/target/pyref/bin/python
    [ -x "$PY" ] || { echo "error: $PY missing (bash scripts/make_fixtures.sh builds it)" >&2; exit 1; }
    cargo build --release -q --bins || exit 1
    bin=$work/bin
    mkdir -p "$bin"
    cp target/release/intuitor target/release/intuitor-bench "$bin/"
    t=$(cargo test --release -q --test device --no-run --message-format=json | $PY -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "device" and m.get("executable"):
        print(m["executable"])')
    cp "$t" "$bin/device-tests"
    preset=tiny
    roll="--prompts 2 --group 2 --prompt-tokens 8 --new-tokens 8"
    roll_scale="--prompts 4 --group 3 --prompt-tokens 8 --new-tokens 8 --kv-budget 16KiB"
    upd="--batch 2 --prompt 8 --completion 8"
    plan_shape="--set prompts_per_step=2 --set num_generations=2 --set max_prompt_length=8 --set max_completion_length=8 --set per_device_train_batch_size=2"
    gemm=256
    ops_shape="--batch 2 --tokens 16"
    scale_shape="--set prompts_per_step=2 --set num_generations=3 --set per_device_train_batch_size=2 --set max_completion_length=8"
    attn="--batch 1 --tokens 64 --head-dim 8"; attn_block=16; attn_whole=64
fi
echo "gpu_check: mode $mode, device $dev, binaries in $bin" | tee -a "$log"

# stage NAME LIMIT_S CMD...: runs CMD under the smaller of LIMIT_S and the time left, its output
# to the log, its last stdout line (a JSON object, if the command prints one) to NAME.json, and
# the device's peak memory while it ran to NAME.mem.
stage() {
    local name=$1 limit=$2
    shift 2
    local left=$((deadline - SECONDS))
    if [[ " ${SKIP:-} " == *" $name "* ]]; then
        printf '%s\tskipped\t0\n' "$name" >>"$work/stages.tsv"
        echo "== $name: skipped (SKIP)" | tee -a "$log"
        return
    fi
    if [ "$left" -lt 5 ]; then
        printf '%s\tskipped\t0\n' "$name" >>"$work/stages.tsv"
        echo "== $name: skipped (deadline)" | tee -a "$log"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    local poll=
    if [ "$mode" = gpu ]; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$work/$name.mem" 2>/dev/null &
        poll=$!
    fi
    local start=$SECONDS rc
    timeout -k 5 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    [ -n "$poll" ] && kill "$poll" 2>/dev/null
    cat "$work/$name.out" "$work/$name.err" >>"$log"
    tail -n1 "$work/$name.out" >"$work/$name.json"
    local status=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status=timeout
    [ $rc -ne 0 ] && [ "$status" = ok ] && status="failed (exit $rc)"
    printf '%s\t%s\t%s\n' "$name" "$status" $((SECONDS - start)) >>"$work/stages.tsv"
    echo "   -> $status in $((SECONDS - start)) s" | tee -a "$log"
}

I=$bin/intuitor
B=$bin/intuitor-bench
tiny=tests/fixtures/tiny-qwen2

# --- environment
stage env 20 bash -c "uname -a; (nvidia-smi || true); ldd $I | grep -E 'not found|cu|nvrtc|libc.so|stdc' || true; \
  $PY -c 'import torch, transformers, json; print(json.dumps({\"torch\": torch.__version__, \"transformers\": transformers.__version__, \"cuda\": torch.cuda.is_available(), \"gpu\": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))'"

# --- correctness
stage device_tests_f32 90 env INTUITOR_TEST_DEVICE=$dev INTUITOR_TEST_DTYPE=f32 "$bin/device-tests" --test-threads=1
stage device_tests_bf16 90 env INTUITOR_TEST_DEVICE=$dev INTUITOR_TEST_DTYPE=bf16 "$bin/device-tests" --test-threads=1
gen() { "$I" generate --model "$tiny" --device "$1" --temperature 0.9 --top-k 50 --seed 11 --max-new-tokens 24 --prompt "Count to ten." >"$work/gen_$1.txt"; }
stage generate 40 bash -c "$(declare -f gen); I=$I tiny=$tiny work=$work; gen cpu && gen $dev && \
  if cmp -s $work/gen_cpu.txt $work/gen_$dev.txt; then echo '{\"identical\": true}'; else diff $work/gen_cpu.txt $work/gen_$dev.txt; echo '{\"identical\": false}'; exit 1; fi"

# --- training: 3 steps CPU vs device; stop after 2 + resume on the device
train() { # DEVICE DIR [extra args]
    local d=$1 dir=$2
    shift 2
    "$I" train --config /dev/null --set model=\""$repo/$tiny"\" --set device=\""$d"\" \
        --set num_generations=3 --set prompts_per_step=2 --set per_device_train_batch_size=2 \
        --set max_completion_length=8 --set beta=0.02 --set learning_rate=1e-3 --set max_steps=3 \
        --set save_steps=1 --set seed=5 --set 'reward_funcs=["self_certainty"]' \
        --set 'reward_weights=[1.0]' "$@" --output-dir "$dir"
}
stage train_tiny 120 bash -c "$(declare -f train); I=$I repo=$repo tiny=$tiny; \
  train cpu $work/t_cpu >/dev/null && train $dev $work/t_dev >/dev/null && \
  $PY bench/gpu_baseline.py compare-metrics $work/t_cpu/metrics.jsonl $work/t_dev/metrics.jsonl"
stage resume_tiny 120 bash -c "$(declare -f train); I=$I repo=$repo tiny=$tiny; \
  train $dev $work/t_res --stop-after 2 >/dev/null && $I train --resume $work/t_res >/dev/null && \
  $PY bench/gpu_baseline.py compare-metrics $work/t_dev/metrics.jsonl $work/t_res/metrics.jsonl"

# --- ceilings
stage gemm_ours 40 "$B" --device $dev gemm --size $gemm
stage gemm_torch 40 $PY bench/gpu_baseline.py ceilings --size $gemm

# --- scale: a Qwen2.5-1.5B-shaped random model
model=$work/model
stage make_model 90 $PY bench/gpu_baseline.py make-model "$model" --preset $preset --tokenizer-from $tiny
stage plan 20 "$I" plan --config /dev/null --set model=\""$model"\" --set device=\"$dev\" \
    --set dtype=\"bf16\" --set gradient_checkpointing=true $plan_shape
stage update_ours 120 "$B" --model "$model" --device $dev --dtype bf16 update $upd --repeats 2 --gradient-checkpointing
stage update_torch_f32 60 $PY bench/gpu_baseline.py update "$model" $upd --mode f32
stage update_torch_bf16 60 $PY bench/gpu_baseline.py update "$model" $upd --mode bf16-autocast
stage ops_ours 60 "$B" --model "$model" --device $dev --dtype bf16 ops $ops_shape
stage logprobs_ours 40 "$B" --model "$model" --device $dev --dtype bf16 logprobs $upd
stage logprobs_torch 40 $PY bench/gpu_baseline.py logprobs "$model" $upd
stage rollout_ours 150 "$B" --model "$model" --device $dev --dtype bf16 rollout $roll
stage rollout_torch 90 $PY bench/gpu_baseline.py rollout "$model" $roll --dtype bf16
stage update_ours_f32 120 "$B" --model "$model" --device $dev update $upd --repeats 2
# The paper's step size (128 prompts × G 7 = 896 rows, issue 17) in a KV budget: continuous
# batching in row slots, tokens/s and the slots it had.
stage rollout_scale 150 "$B" --model "$model" --device $dev --dtype bf16 rollout $roll_scale
# Two real training steps of the scale model (self-certainty reward, bf16 + recompute): step
# times from metrics.jsonl; the preflight's memory plan against the measured peak.
scale_train() {
    "$I" train --config /dev/null --set model=\""$model"\" --set device=\""$dev"\" \
        --set dtype=\"bf16\" --set gradient_checkpointing=true $scale_shape --set max_steps=2 \
        --set save_steps=0 --set beta=0.005 --set 'reward_funcs=["self_certainty"]' \
        --set 'reward_weights=[1.0]' --output-dir "$work/t_scale" >/dev/null 2>"$work/t_scale.err" || {
        cat "$work/t_scale.err"
        return 1
    }
    $PY - "$work/t_scale/metrics.jsonl" "$work/t_scale.err" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
plan = re.search(r"memory plan peak ([0-9.]+ [KMG]iB)", open(sys.argv[2]).read())
keys = ["step_time", "rollout_time", "update_time", "rollout_tokens_per_s", "train_tokens_per_s"]
print(json.dumps({"plan_peak": plan and plan.group(1), **{k: [r.get(k) for r in rows] for k in keys}}))
PY
}
stage train_scale 150 bash -c "$(declare -f scale_train); I=$I model=$model dev=$dev work=$work PY=$PY \
    scale_shape='$scale_shape'; scale_train"

# One attention's forward + backward at the paper's length (512 + 3,072 tokens, Qwen2.5-1.5B's
# heads, micro-batch 4, bf16), query-blocked (issue 16) and as one block: time and peak memory.
stage attention_blocked 40 "$B" --device $dev --dtype bf16 attention $attn --block $attn_block
stage attention_whole 40 "$B" --device $dev --dtype bf16 attention $attn --block $attn_whole

# --- the result
$PY - "$work" "$mode" "$OUT/gpu_check.json" <<'PY'
import json, pathlib, sys
work, mode, out = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
stages = {}
for line in (work / "stages.tsv").read_text().splitlines():
    name, status, seconds = line.split("\t")
    entry = {"status": status, "seconds": int(seconds)}
    try:
        entry["result"] = json.loads((work / f"{name}.json").read_text())
    except Exception:
        text = (work / f"{name}.out").read_text() if (work / f"{name}.out").exists() else ""
        if "test result:" in text:  # a libtest binary: its counts and failures
            summary = [l for l in text.splitlines() if l.startswith("test result:")][-1]
            entry["result"] = {"summary": summary, "failed_tests": [
                l.split()[1] for l in text.splitlines() if l.startswith("test ") and l.endswith("FAILED")]}
    mem = work / f"{name}.mem"
    if mem.exists():
        used = [int(x) for x in mem.read_text().split() if x.strip().isdigit()]
        if used:
            entry["peak_device_mib"] = max(used)
    stages[name] = entry
r = lambda n, k: stages.get(n, {}).get("result", {}).get(k)
ratios = {}
for name, ours, base, key in [
    ("rollout_tokens_per_s_vs_transformers_bf16", "rollout_ours", "rollout_torch", "tokens_per_second"),
    ("update_tokens_per_s_vs_torch_bf16_autocast", "update_ours", "update_torch_bf16", "tokens_per_second"),
    ("update_f32_tokens_per_s_vs_torch_f32", "update_ours_f32", "update_torch_f32", "tokens_per_second"),
    ("logprobs_tokens_per_s_vs_transformers_bf16", "logprobs_ours", "logprobs_torch", "tokens_per_second"),
]:
    a, b = r(ours, key), r(base, key)
    ratios[name] = a / b if a and b else None
plan_text = (work / "plan.out").read_text() if (work / "plan.out").exists() else ""
plan_peak = next((l for l in plan_text.splitlines() if l.startswith("peak:")), None)
result = {"mode": mode, "stages": stages, "ratios": ratios, "memory_plan_peak": plan_peak,
          "all_ok": all(s["status"] == "ok" for s in stages.values())}
pathlib.Path(out).write_text(json.dumps(result, indent=1) + "\n")
for name, s in stages.items():
    print(f"{name:20} {s['status']:18} {s['seconds']:4d} s  {json.dumps(s.get('result', ''))[:110]}")
print("ratios:", json.dumps(ratios))
PY
echo "gpu_check: wrote $OUT/gpu_check.json and $OUT/gpu_check.log"
