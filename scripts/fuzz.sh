#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (afl.rs, stable Rust): bash scripts/fuzz.sh [TARGET|all] [SECONDS]
# Builds fuzz/ (its own target dir, fuzz/target), runs each target for SECONDS (default 60) one
# after the other from its seeds fuzz/corpus/TARGET, findings in fuzz/out/TARGET, then prints
# executions, corpus size, crashes and hangs per target. Needs `cargo install cargo-afl` once
# (it builds AFL++ on first use; else `cargo afl config --build`). A crash: minimise it with
# `cargo afl tmin -i CRASH -o fuzz/regressions/TARGET/NAME -- fuzz/target/release/TARGET`, fix,
# and `cargo test --release --test fuzz_corpus` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
secs=${2:-60}
targets=(gguf safetensors tokenizer_gguf chat_template dataset_jsonl dataset_csv dataset_parquet config answer)
[[ $what == all ]] || targets=("$what")
for t in "${targets[@]}"; do
    [[ -d fuzz/corpus/$t ]] || { echo "unknown target $t (have: ${targets[*]})" >&2; exit 2; }
done
command -v cargo-afl >/dev/null || { echo "cargo-afl is missing: cargo install cargo-afl" >&2; exit 2; }
(cd fuzz && cargo afl build --release --quiet)
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_AUTORESUME=1 AFL_SKIP_CRASHES=1
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s from $(date -u +%FT%TZ)"
    mkdir -p "fuzz/out/$t"
    # -t: 2 s per input (a slower one counts as a hang); -m none: the targets allocate freely.
    cargo afl fuzz -V "$secs" -t 2000 -m none -i "fuzz/corpus/$t" -o "fuzz/out/$t" \
        "fuzz/target/release/$t" >"fuzz/out/$t/afl.log" 2>&1 || {
        echo "afl-fuzz failed for $t; the end of fuzz/out/$t/afl.log:" >&2
        tail -20 "fuzz/out/$t/afl.log" >&2
        exit 1
    }
done
printf '%-16s %10s %8s %8s %8s %8s\n' target seconds execs corpus crashes hangs
for t in "${targets[@]}"; do
    s=fuzz/out/$t/default/fuzzer_stats
    [[ -f $s ]] || continue
    v() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$s"; }
    printf '%-16s %10s %8s %8s %8s %8s\n' "$t" "$(v run_time)" "$(v execs_done)" \
        "$(v corpus_count)" "$(v saved_crashes)" "$(v saved_hangs)"
done
echo "crashes: fuzz/out/TARGET/default/crashes/, hangs: fuzz/out/TARGET/default/hangs/"
