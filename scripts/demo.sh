#!/usr/bin/env bash
# The main job on the default model: fetch SmolLM2-135M-Instruct, build, and generate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_model.sh
cargo build --release
./target/release/intuitor info default
./target/release/intuitor generate --model default \
    --prompt "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?" \
    --max-new-tokens 128
