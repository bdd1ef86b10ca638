"""Checks that an intuitor checkpoint loads in HF transformers and gives the same per-token
log-probs as intuitor itself (issue: "the saved checkpoint loads in transformers").

Usage: target/pyref/bin/python scripts/check_checkpoint.py CHECKPOINT_DIR
Runs `intuitor score` on a fixed chat prompt + completion and compares with transformers'
log_softmax at the same positions; exits non-zero above 1e-4.
"""

import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ckpt = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
line = json.dumps({"prompt": "What is 12 + 7?", "completion": "12 + 7 = 19."})
out = subprocess.run([os.path.join(root, "target", "release", "intuitor"), "score", "--model", ckpt,
                      "--device", "cpu"], input=line, capture_output=True, text=True, check=True)
ours = json.loads(out.stdout)
tok = AutoTokenizer.from_pretrained(ckpt)
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
prompt = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 7?"}], tokenize=False,
                                 add_generation_prompt=True)
p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
c_ids = ours["completion_ids"]
assert c_ids == tok("12 + 7 = 19.", add_special_tokens=False)["input_ids"], "completion tokenization differs"
ids = torch.tensor([p_ids + c_ids])
with torch.no_grad():
    logp = torch.log_softmax(model(ids).logits[0].float(), -1)
theirs = [logp[len(p_ids) - 1 + k, t].item() for k, t in enumerate(c_ids)]
diff = max(abs(a - b) for a, b in zip(ours["logprobs"], theirs))
print(json.dumps({"checkpoint": ckpt, "tokens": len(c_ids), "max_abs_logprob_diff": diff}))
sys.exit(0 if diff <= 1e-4 else 1)
