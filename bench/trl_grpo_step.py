"""Baseline for bench/all.sh: seconds per GRPO optimizer step with TRL's GRPOTrainer on the
default model (f32, from the same GGUF), INTUITOR-style: the only trained reward is the policy's
self-certainty, computed the way the reference does it, with an extra forward pass over
prompt ⊕ completion (spec §2.2). Same settings as `intuitor train` in bench/all.sh: 4 prompts × G,
micro-batch 4, bnpo, β, lr, T 0.9, top-k 50.

usage: trl_grpo_step.py GGUF PROMPTS_JSONL G NEW_TOKENS THREADS STEPS BETA LR
prints one JSON line: seconds_per_step (median of steps 2..), step_times, generated tokens/step,
peak_rss_mb.
"""

import json
import math
import os
import resource
import sys
import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

gguf, prompts_path = sys.argv[1], sys.argv[2]
G, new_tokens, threads, steps = map(int, sys.argv[3:7])
beta, lr = float(sys.argv[7]), float(sys.argv[8])
torch.set_num_threads(threads)
# TRL loads the reference model by path, so the GGUF is dequantized once into an HF directory
# (f32 safetensors) next to the reference virtualenv.
hf_dir = os.path.join(os.path.dirname(sys.executable), "..", "smollm2-hf")
if not os.path.exists(os.path.join(hf_dir, "config.json")):
    d, f = os.path.dirname(gguf), os.path.basename(gguf)
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    m.hf_quantizer = None  # dequantized f32 weights; drop the GGUF mark before saving
    m.config.quantization_config = None
    m.save_pretrained(hf_dir)
    AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(hf_dir)
tok = AutoTokenizer.from_pretrained(hf_dir)
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
vocab_size = AutoConfig.from_pretrained(hf_dir).vocab_size
questions = [json.loads(line)["question"] for line in open(prompts_path) if line.strip()]
ds = Dataset.from_list([{"prompt": [{"role": "user", "content": q}]} for q in questions])
ln_v = math.log(vocab_size)
generated = []


def self_certainty(prompts, completions, completion_ids=None, **_):
    """Mean KL(U‖p) over completion tokens, by a second forward of the policy (reference S1)."""
    rows = []
    for p, c in zip(prompts, completion_ids):
        text = tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
        pid = tok(text, add_special_tokens=False).input_ids
        rows.append((list(pid), list(c)))
    generated.append(sum(len(c) for _, c in rows))
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        mask[i, : len(p) + len(c)] = 1
    out = []
    with torch.no_grad():
        logits = trainer.model(input_ids=ids, attention_mask=mask).logits
        for i, (p, c) in enumerate(rows):
            z = logits[i, len(p) - 1 : len(p) + len(c) - 1]
            sc = torch.logsumexp(z, -1) - z.mean(-1) - ln_v
            out.append(float(sc.mean()) if len(c) else 0.0)
    return out


class Timer(TrainerCallback):
    def __init__(self):
        self.marks = []

    def on_train_begin(self, args, state, control, **kw):
        self.marks.append(time.time())

    def on_step_end(self, args, state, control, **kw):
        self.marks.append(time.time())


timer = Timer()
with tempfile.TemporaryDirectory() as out:
    cfg = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=G,
        num_generations=G,
        max_completion_length=new_tokens,
        temperature=0.9,
        top_k=50,
        beta=beta,
        loss_type="bnpo",
        learning_rate=lr,
        lr_scheduler_type="cosine",
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=7,
        disable_tqdm=True,
        dataloader_num_workers=0,
        model_init_kwargs={"dtype": torch.float32},
    )
    trainer = GRPOTrainer(model=hf_dir, reward_funcs=[self_certainty], args=cfg,
                          train_dataset=ds, processing_class=tok, callbacks=[timer])
    trainer.train()
times = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
rest = sorted(times[1:]) or times
print(json.dumps({
    "seconds_per_step": rest[len(rest) // 2],
    "step_times": times,
    "generated_tokens_per_step": generated,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
