"""Baseline for bench/rollout.sh: transformers `generate` with num_return_sequences=G on the same
4 prompts, T 0.9, top-k 50, exactly N new tokens per row (min_new_tokens = N, as the intuitor side
runs with no stop ids). Self-certainty is NOT computed here (it is in intuitor's time)."""

import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, group, new, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
prompts = json.loads(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(
    os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32
).eval()
texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                 add_generation_prompt=True) for p in prompts]
batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
with torch.no_grad():
    t0 = time.time()
    out = model.generate(**batch, do_sample=True, temperature=0.9, top_k=50, top_p=1.0,
                         max_new_tokens=new, min_new_tokens=new, num_return_sequences=group,
                         pad_token_id=tok.eos_token_id)
    dt = time.time() - t0
n = (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "generated_tokens": n, "tokens_per_second": n / dt,
                  "peak_rss_mb": rss}))
