#!/usr/bin/env bash
# Regenerate the golden fixtures under tests/fixtures/ with HF transformers (CPU).
# Builds a throw-away virtualenv in target/pyref (torch, transformers, gguf from PyPI; several GB)
# and records the exact versions used in tests/fixtures/VERSIONS.txt. Tests never need this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_model.sh
if [ ! -x target/pyref/bin/python ]; then
    python3 -m venv target/pyref
fi
target/pyref/bin/pip install --quiet "torch==2.15.0" "transformers==5.24.0" "gguf" "accelerate" "safetensors" "numpy" "tokenizers" "trl==1.16.0" "datasets" "scipy==1.17.1"
target/pyref/bin/python scripts/make_fixtures.py
target/pyref/bin/python scripts/make_trl_fixtures.py
target/pyref/bin/python scripts/make_stats_fixtures.py
target/pyref/bin/python - > tests/fixtures/VERSIONS.txt <<'PY'
import sys, torch, transformers, tokenizers, gguf, safetensors
print(f"python {sys.version.split()[0]}")
import trl
for m in (torch, transformers, tokenizers, safetensors, trl):
    print(f"{m.__name__} {m.__version__}")
from importlib.metadata import version
print(f"gguf {version('gguf')}")
PY
# The answer checker's agreement fixture (math-verify's verdicts; adds its lines to VERSIONS.txt).
target/pyref/bin/pip install --quiet "math-verify==0.9.0" "latex2sympy2_extended==1.11.0" "antlr4-python3-runtime==4.13.2" "sympy==1.14.0"
target/pyref/bin/python scripts/make_answer_agreement.py
cat tests/fixtures/VERSIONS.txt
