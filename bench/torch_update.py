"""Baseline for bench/update.sh: PyTorch forward + backward + AdamW on the default model (f32,
from the same GGUF), the same shapes and loss as `intuitor-bench update` (bnpo token mean of
−A·logp under logits / 0.9 over the completion tokens, β = 0)."""

import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM

gguf, batch, prompt, completion, threads, repeats = sys.argv[1], *map(int, sys.argv[2:7])
torch.set_num_threads(threads)
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                             dtype=torch.float32)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=3e-6, weight_decay=0.0)
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (batch, prompt + completion), generator=g)
adv = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(batch)]).unsqueeze(1)
times = []
for _ in range(repeats + 1):
    t0 = time.time()
    opt.zero_grad()
    logits = model(ids).logits[:, prompt - 1:-1, :] / 0.9
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, prompt:].unsqueeze(-1)).squeeze(-1)
    loss = (-(adv * torch.exp(logp - logp.detach()))).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    times.append(time.time() - t0)
times = sorted(times[1:])
s = times[len(times) // 2]
print(json.dumps({"seconds_per_step": s, "tokens_per_second": batch * (prompt + completion) / s,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
