#!/usr/bin/env bash
# Scaled replication of INTUITOR (docs/replication.md): trains INTUITOR, INTUITOR with a frozen
# (offline) scorer, GRPO with gold answers and GRPO-PV on the built-in arithmetic problems with
# SmolLM2-135M-Instruct, then evaluates the base model and every run in-domain (held-out demo
# problems), out-of-domain (SVAMP) and on code (CRUXEval-O, the paper's generalisation claim),
# and writes docs/replication.md's tables and plots. Every stage is resumable: a finished run
# or evaluation is skipped, an unfinished one starts again.
#
#   bash experiments/replicate.sh            # everything (about 2 h on 2 cores)
#   STAGE=eval bash experiments/replicate.sh # only the evaluations and the report
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/replication}
SEEDS=${SEEDS:-7}
N_TEST=${N_TEST:-200}
N_CODE=${N_CODE:-100}
STAGE=${STAGE:-all}
BIN=${BIN:-target/release/intuitor}
cargo build --release --quiet
bash scripts/fetch_model.sh >/dev/null
BASE=experiments/replication/base.toml

declare -A REWARD=(
  [intuitor]='reward_funcs=["self_certainty","accuracy"] --set reward_weights=[1.0,0.0]'
  [intuitor_offline]='reward_funcs=["self_certainty","accuracy"] --set reward_weights=[1.0,0.0] --set sc_scorer="frozen"'
  [grpo]='reward_funcs=["accuracy","self_certainty"] --set reward_weights=[1.0,0.0]'
  [grpo_pv]='reward_funcs=["plurality_vote","accuracy","self_certainty"] --set reward_weights=[1.0,0.0,0.0]'
)
METHODS=(intuitor grpo grpo_pv intuitor_offline)

if [[ $STAGE == all || $STAGE == train ]]; then
  for seed in $SEEDS; do
    for m in "${METHODS[@]}"; do
      dir=$OUT/$m-s$seed
      [[ -f $dir/done ]] && continue
      rm -rf "$dir"
      # shellcheck disable=SC2086
      $BIN train --config $BASE --set seed=$seed --set ${REWARD[$m]} --output-dir "$dir"
      touch "$dir/done"
    done
  done
fi

if [[ $STAGE == all || $STAGE == eval ]]; then
  SYS=$(sed -n 's/^system_prompt = "\(.*\)"$/\1/p' $BASE)
  run_eval() { # name part args...; skipped when its summary exists
    local name=$1 part=$2
    shift 2
    [[ -f $OUT/eval/$name/$part/summary.json ]] && return
    $BIN eval "$@" --output-dir "$OUT/eval/$name/$part"
  }
  evaluate() { # model name
    local model=$1 name=$2
    run_eval "$name" in_domain --model "$model" --dataset demo --offset 100 --limit "$N_TEST" \
      --system-prompt "$SYS" --max-new-tokens 64
    run_eval "$name" out_of_domain --model "$model" --dataset svamp --limit "$N_TEST" \
      --system-prompt "$SYS" --max-new-tokens 96
    # CRUXEval-O's own instruction asks for a JSON answer; no math system prompt.
    run_eval "$name" cruxeval --model "$model" --dataset cruxeval --limit "$N_CODE" \
      --max-new-tokens 256
  }
  evaluate default base
  for seed in $SEEDS; do
    for m in "${METHODS[@]}"; do
      ckpt=$(ls -d "$OUT/$m-s$seed"/checkpoint-* | sort -V | tail -1)
      evaluate "$ckpt" "$m-s$seed"
    done
  done
  SEEDS="$SEEDS" cargo run --release --quiet --example replication_report -- "$OUT" docs/replication
fi
