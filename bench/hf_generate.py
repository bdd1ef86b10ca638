"""Baseline for `bench/generate.sh`: HF transformers greedy generation on the default GGUF model
(dequantized to f32, as intuitor runs it), batch 1, with the same prompt and token budget."""

import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, prompt, new_tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
t0 = time.time()
tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
model = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32
).eval()
load = time.time() - t0
ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                              return_tensors="pt")
if not torch.is_tensor(ids):
    ids = ids["input_ids"]
with torch.no_grad():
    model.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
    t0 = time.time()
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         pad_token_id=tok.eos_token_id)
    dt = time.time() - t0
n = out.shape[1] - ids.shape[1]
print(json.dumps({"load_seconds": load, "new_tokens": n, "seconds": dt, "tokens_per_second": n / dt}))
