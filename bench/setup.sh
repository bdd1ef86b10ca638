# Sourced by the bench scripts: fetch the default model, build, and set
#   gguf     the default model's GGUF path
#   prompts  the rollout prompts of intuitor-bench (src/bin/intuitor-bench/main.rs PROMPTS) as JSON
bash scripts/fetch_model.sh >/dev/null
cargo build --release --quiet
gguf=$(pwd)/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
prompts=$(python3 -c "
import re, json
src = open('src/bin/intuitor-bench/main.rs').read()
block = src[src.index('pub const PROMPTS'):src.index('];')]
print(json.dumps([json.loads(s) for s in re.findall(r'\"(?:[^\"\\\\]|\\\\.)*\"', block)]))")
