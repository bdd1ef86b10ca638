"""Baseline for bench/eval_gsm8k.sh: transformers greedy generation on the same GSM8K problems,
same chat template, system prompt and token budget, batched with left padding. Writes the
completions as check-answer input (gold, prediction) so both sides are graded by the same checker.

usage: hf_eval.py GGUF PROBLEMS_JSONL SYSTEM_PROMPT MAX_NEW THREADS BATCH OUT_JSONL
"""

import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, path, system, new, threads, bs, out = sys.argv[1:8]
new, threads, bs = int(new), int(threads), int(bs)
torch.set_num_threads(threads)
d, f = os.path.dirname(gguf), os.path.basename(gguf)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
rows = [json.loads(l) for l in open(path) if l.strip()]
generated, pairs = 0, []
t0 = time.time()
for i in range(0, len(rows), bs):
    chunk = rows[i:i + bs]
    texts = [tok.apply_chat_template([{"role": "system", "content": system},
                                      {"role": "user", "content": r["question"]}],
                                     tokenize=False, add_generation_prompt=True) for r in chunk]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        ids = model.generate(**batch, do_sample=False, max_new_tokens=new,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
    for r, row in zip(chunk, ids[:, batch["input_ids"].shape[1]:]):
        keep = []
        for t in row.tolist():
            keep.append(t)
            if t == tok.eos_token_id:
                break
        generated += len(keep)
        pairs.append({"gold": r["answer"].split("####")[-1].strip().replace(",", ""),
                      "prediction": tok.decode(keep, skip_special_tokens=True)})
dt = time.time() - t0
with open(out, "w") as fh:
    for p in pairs:
        fh.write(json.dumps(p) + "\n")
print(json.dumps({"seconds": dt, "generated_tokens": generated, "tokens_per_second": generated / dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
