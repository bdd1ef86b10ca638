#!/usr/bin/env bash
# The main job on the default model: fetch SmolLM2-135M-Instruct, build, and run the CPU demo:
# INTUITOR training on the built-in arithmetic problems (configs/demo.toml), into runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_model.sh
cargo build --release
rm -rf runs/demo
./target/release/intuitor train --output-dir runs/demo
