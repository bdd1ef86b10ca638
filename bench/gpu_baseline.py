"""The PyTorch side of scripts/gpu_check.sh: builds the random-weight models the check runs on,
times transformers `generate` and a PyTorch forward + backward + AdamW on the same shapes as
`intuitor-bench`, measures the card's GEMM and copy ceilings, and compares two runs' metrics.
Each subcommand prints one JSON object. A test-time reference only; the product has no Python.

  make-model DIR --preset qwen2.5-1.5b|tiny [--tokenizer-from FIXTURE_DIR]
  rollout DIR --prompts P --group G --prompt-tokens L --new-tokens N --dtype bf16|f32
  update DIR --batch B --prompt P --completion C --mode f32|bf16-autocast --repeats R
  ceilings [--size N]
  compare-metrics A/metrics.jsonl B/metrics.jsonl
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

# Qwen2.5-1.5B's config.json (hf.co/Qwen/Qwen2.5-1.5B-Instruct), and a tiny model of the same
# family for the CPU dry run.
PRESETS = {
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0,
                         rms_norm_eps=1e-6, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                 max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=True),
}


def device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib():
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def make_model(a):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(**PRESETS[a.preset], bos_token_id=1, eos_token_id=2,
                      torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device(device()):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    out = Path(a.dir)
    model.save_pretrained(out, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copy(Path(a.tokenizer_from) / f, out / f)
    n = sum(p.numel() for p in model.parameters())
    return {"dir": str(out), "parameters": n}


def load(dir_, dtype):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(dir_, dtype=dtype, attn_implementation="sdpa").to(
        device())


def random_ids(rows, length, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Token ids above 2 so no row starts with the end-of-sequence id.
    return torch.randint(3, vocab, (rows, length), generator=g).to(device())


def rollout(a):
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    model = load(a.dir, dtype)
    prompts = random_ids(a.prompts, a.prompt_tokens, model.config.vocab_size)
    ids = prompts.repeat_interleave(a.group, dim=0)
    kw = dict(do_sample=True, temperature=0.9, top_k=50, max_new_tokens=a.new_tokens,
              min_new_tokens=a.new_tokens, pad_token_id=2,
              attention_mask=torch.ones_like(ids))
    model.generate(ids[:, :8], max_new_tokens=4, do_sample=False, pad_token_id=2)  # warm-up
    sync()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, **kw)
    sync()
    seconds = time.perf_counter() - start
    tokens = (out.shape[1] - ids.shape[1]) * out.shape[0]
    return {"seconds": seconds, "generated_tokens": tokens, "tokens_per_second": tokens / seconds,
            "peak_gib": peak_gib(), "dtype": a.dtype}


def update(a):
    model = load(a.dir, torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-6, weight_decay=0.0)
    ids = random_ids(a.batch, a.prompt + a.completion, model.config.vocab_size)
    times = []
    for _ in range(a.repeats + 1):
        sync()
        start = time.perf_counter()
        with torch.autocast(device().type, dtype=torch.bfloat16, enabled=a.mode == "bf16-autocast"):
            logits = model(ids).logits[:, a.prompt - 1:-1].float()
        logp = torch.log_softmax(logits / 0.9, dim=-1)
        token_logp = logp.gather(-1, ids[:, a.prompt:, None]).squeeze(-1)
        loss = -token_logp.mean()
        loss.backward()
        sync()
        laps = [time.perf_counter()]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        sync()
        laps.append(time.perf_counter())
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        laps.append(time.perf_counter())
        times.append([laps[0] - start, laps[1] - laps[0], laps[2] - laps[1]])
        del logits, logp, token_logp, loss
    median = lambda xs: sorted(xs)[len(xs) // 2]
    phases = [median([t[i] for t in times[1:]]) for i in range(3)]
    seconds = sum(phases)
    tokens = a.batch * (a.prompt + a.completion)
    return {"seconds_per_step": seconds, "tokens_per_second": tokens / seconds,
            "phase_seconds": dict(zip(["forward_backward", "clip_grad_norm", "optimizer"], phases)),
            "peak_gib": peak_gib(), "mode": a.mode}


def logprobs(a):
    """No-grad per-token log-probs of random sequences in bf16 (what `intuitor-bench logprobs`
    times): the forward, the log-softmax over the vocabulary in f32 and the gather."""
    model = load(a.dir, torch.bfloat16)
    ids = random_ids(a.batch, a.prompt + a.completion, model.config.vocab_size)
    times = []
    for _ in range(2):
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            logits = model(ids).logits[:, a.prompt - 1:-1].float()
            logp = torch.log_softmax(logits / 0.9, dim=-1)
            logp.gather(-1, ids[:, a.prompt:, None]).squeeze(-1)
        sync()
        times.append(time.perf_counter() - start)
        del logits, logp
    tokens = a.batch * (a.prompt + a.completion)
    return {"seconds": times[-1], "tokens_per_second": tokens / times[-1],
            "peak_gib": peak_gib()}


def ceilings(a):
    n = a.size
    x = torch.randn(n, n, device=device(), dtype=torch.bfloat16)
    y = torch.randn(n, n, device=device(), dtype=torch.bfloat16)
    for _ in range(3):
        x @ y
    sync()
    start = time.perf_counter()
    for _ in range(10):
        x @ y
    sync()
    tflops = 10 * 2 * n**3 / (time.perf_counter() - start) / 1e12
    src = torch.empty(2**28 if torch.cuda.is_available() else 2**22, device=device(),
                      dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync()
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    sync()
    tbps = 10 * 2 * src.numel() * 4 / (time.perf_counter() - start) / 1e12
    return {"torch_bf16_gemm_tflops": tflops, "torch_copy_tb_per_s": tbps, "size": n}


def compare_metrics(a):
    def rows(p):
        return [json.loads(line) for line in open(p) if line.strip()]
    ra, rb = rows(a.a), rows(a.b)
    out = {"steps": [len(ra), len(rb)]}
    for key in ["loss", "kl", "grad_norm"]:
        diffs = [abs(x[key] - y[key]) for x, y in zip(ra, rb) if key in x and key in y]
        out[key] = {"a": [x.get(key) for x in ra], "b": [y.get(key) for y in rb],
                    "max_abs_diff": max(diffs) if diffs else None}
    return out


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("dir")
    m.add_argument("--preset", choices=PRESETS, default="qwen2.5-1.5b")
    m.add_argument("--tokenizer-from", default="tests/fixtures/tiny-qwen2")
    r = sub.add_parser("rollout")
    r.add_argument("dir")
    r.add_argument("--prompts", type=int, default=8)
    r.add_argument("--group", type=int, default=7)
    r.add_argument("--prompt-tokens", type=int, default=256)
    r.add_argument("--new-tokens", type=int, default=768)
    r.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    u = sub.add_parser("update")
    u.add_argument("dir")
    u.add_argument("--batch", type=int, default=4)
    u.add_argument("--prompt", type=int, default=256)
    u.add_argument("--completion", type=int, default=768)
    u.add_argument("--mode", choices=["f32", "bf16-autocast"], default="f32")
    u.add_argument("--repeats", type=int, default=2)
    lp = sub.add_parser("logprobs")
    lp.add_argument("dir")
    lp.add_argument("--batch", type=int, default=4)
    lp.add_argument("--prompt", type=int, default=256)
    lp.add_argument("--completion", type=int, default=768)
    c = sub.add_parser("ceilings")
    c.add_argument("--size", type=int, default=8192)
    cm = sub.add_parser("compare-metrics")
    cm.add_argument("a")
    cm.add_argument("b")
    a = p.parse_args()
    fn = {"make-model": make_model, "rollout": rollout, "update": update, "logprobs": logprobs,
          "ceilings": ceilings,
          "compare-metrics": compare_metrics}[a.cmd]
    print(json.dumps(fn(a)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
