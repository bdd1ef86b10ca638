"""Golden values for the GRPO update, produced by TRL itself (GRPOTrainer._compute_loss).

Builds a GRPOTrainer around the tiny Qwen2 fixture (tests/fixtures/tiny-qwen2), feeds its loss
function a fixed micro-batch (left-padded prompts, right-padded completions with EOS and padding,
advantages, old and reference log-probs), and records for every loss_type, with beta = 0 and
beta > 0 and with the PPO clip active (old log-probs != current, as with num_iterations > 1):
the loss; for one configuration the gradients of selected parameters; then the parameters after
two AdamW steps (torch.optim.AdamW, clip_grad_norm_, HF cosine schedule with warmup; the first
step runs at lr 0). Writes tests/fixtures/trl_update.safetensors and trl_update.json.
Run through scripts/make_fixtures.sh (records the versions in tests/fixtures/VERSIONS.txt).
"""

import json
import os
import tempfile

import torch
from datasets import Dataset
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup
from trl import GRPOConfig, GRPOTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
MODEL = os.path.join(FIX, "tiny-qwen2")
torch.manual_seed(0)
torch.set_num_threads(2)

TEMPERATURE = 0.9
MAX_COMPLETION = 8
GRAD_ACCUM = 2
GRAD_PARAMS = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.1.input_layernorm.weight",
    "model.norm.weight",
    "lm_head.weight",
]


def make_trainer(loss_type, beta):
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4, num_generations=2,
        gradient_accumulation_steps=GRAD_ACCUM, max_completion_length=MAX_COMPLETION,
        temperature=TEMPERATURE, beta=beta, loss_type=loss_type, epsilon=0.2, epsilon_high=0.28,
        report_to="none", use_cpu=True, bf16=False, learning_rate=1e-3, weight_decay=0.01,
        max_grad_norm=0.1,
    )
    data = Dataset.from_dict({"prompt": ["a", "b", "c", "d"]})
    trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                          args=args, train_dataset=data, processing_class=tok)
    trainer.current_gradient_accumulation_steps = GRAD_ACCUM
    trainer.model.train()
    return trainer, tok


def batch(tok):
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    pad = tok.convert_tokens_to_ids("<|endoftext|>")
    prompts = [[5, 17, 40, 2, 99], [61, 7], [300, 301, 302, 303, 304, 305, 306], [8, 9, 10]]
    completions = [[44, 45, eos], [70, 71, 72, 73, 74, 75], [eos], [90, 91, 92, eos, 93, 94]]
    p_len = max(len(p) for p in prompts)
    c_len = max(len(c) for c in completions)
    prompt_ids = torch.full((4, p_len), pad)
    prompt_mask = torch.zeros((4, p_len), dtype=torch.long)
    completion_ids = torch.full((4, c_len), pad)
    completion_mask = torch.zeros((4, c_len), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        prompt_ids[i, p_len - len(p):] = torch.tensor(p)
        prompt_mask[i, p_len - len(p):] = 1
        completion_ids[i, : len(c)] = torch.tensor(c)
        # Up to and including the first EOS.
        n = c.index(eos) + 1 if eos in c else len(c)
        completion_mask[i, :n] = 1
    advantages = torch.tensor([1.2, -0.7, 0.4, -1.1])
    return prompt_ids, prompt_mask, completion_ids, completion_mask, advantages


def current_logps(trainer, prompt_ids, prompt_mask, completion_ids, completion_mask):
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([prompt_ids, completion_ids], 1),
            torch.cat([prompt_mask, completion_mask], 1), completion_ids.size(1))
    return logps


def main():
    out = {}
    meta = {"temperature": TEMPERATURE, "max_completion_length": MAX_COMPLETION,
            "gradient_accumulation_steps": GRAD_ACCUM, "epsilon_low": 0.2, "epsilon_high": 0.28,
            "losses": [], "grad_params": GRAD_PARAMS}
    trainer, tok = make_trainer("bnpo", 0.0)
    prompt_ids, prompt_mask, completion_ids, completion_mask, adv = batch(tok)
    logps = current_logps(trainer, prompt_ids, prompt_mask, completion_ids, completion_mask)
    g = torch.Generator().manual_seed(3)
    # Old log-probs off by up to ±0.4 so both clip sides trigger; reference off by ±0.3.
    old = logps + (torch.rand(logps.shape, generator=g) - 0.5) * 0.8
    ref = logps + (torch.rand(logps.shape, generator=g) - 0.5) * 0.6
    num_items = completion_mask.sum() * 2  # the micro-batch is half of its generation batch
    out.update({"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
                "completion_mask": completion_mask, "advantages": adv, "old_logps": old,
                "ref_logps": ref, "current_logps": logps})
    meta["num_items_in_batch"] = int(num_items)
    for loss_type in ["grpo", "bnpo", "dr_grpo", "dapo"]:
        for beta in [0.0, 0.04]:
            for with_old in [False, True]:
                trainer, _ = make_trainer(loss_type, beta)
                inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
                          "completion_ids": completion_ids, "completion_mask": completion_mask,
                          "advantages": adv, "num_items_in_batch": num_items}
                if beta > 0:
                    inputs["ref_per_token_logps"] = ref
                if with_old:
                    inputs["old_per_token_logps"] = old
                loss = trainer._compute_loss(trainer.model, inputs)
                m = trainer._metrics["train"]
                meta["losses"].append({
                    "loss_type": loss_type, "beta": beta, "with_old": with_old, "loss": loss.item(),
                    "kl": m["kl"][-1] if beta > 0 else None,
                    "clip_low": m["clip_ratio/low_mean"][-1], "clip_high": m["clip_ratio/high_mean"][-1],
                    "clip_region": m["clip_ratio/region_mean"][-1], "entropy": m["entropy"][-1],
                })
                if loss_type == "bnpo" and beta > 0 and with_old:
                    loss.backward()
                    params = dict(trainer.model.named_parameters())
                    for name in GRAD_PARAMS:
                        out[f"grad/{name}"] = params[name].grad.detach().clone()
                    # Two optimizer steps as HF Trainer runs them: clip, AdamW, then the scheduler.
                    opt = torch.optim.AdamW(trainer.model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                                            eps=1e-8, weight_decay=0.01)
                    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=1, num_training_steps=10)
                    norms, lrs = [], []
                    for step in range(2):
                        if step > 0:
                            opt.zero_grad()
                            trainer._compute_loss(trainer.model, inputs).backward()
                        norms.append(float(torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), 0.1)))
                        lrs.append(sched.get_last_lr()[0])
                        opt.step()
                        sched.step()
                    meta["grad_norms"], meta["lrs"] = norms, lrs
                    for name, p in trainer.model.named_parameters():
                        out[f"after/{name}"] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(FIX, "trl_update.safetensors"))
    with open(os.path.join(FIX, "trl_update.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
