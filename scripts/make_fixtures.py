"""Golden fixtures for intuitor's model tests, produced by HF transformers (the reference).

Run through `scripts/make_fixtures.sh`, which builds a throw-away virtualenv (torch CPU, transformers,
gguf, tokenizers from PyPI) and records the package versions in tests/fixtures/VERSIONS.txt.
The tests read only the files written here; they never need Python.

Writes under tests/fixtures/:
  tiny-qwen2/    random Qwen2 (QKV bias, rope_theta 1e6, untied, padded vocab) + tokenizer + chat template
  tiny-llama/    random Llama 3 (rope_scaling llama3, tied, GQA), saved as *sharded* safetensors
  tiny-mistral/  random Mistral (untied)
  <model>/golden.safetensors  input ids, attention masks, logits (one no-pad batch, one left-padded)
  tokenizer_cases.json        ids from HF tokenizers for a set of strings (tiny tokenizer and SmolLM2)
  chat_cases.json             apply_chat_template renderings for each shipped template
  smollm2_golden.safetensors  SmolLM2 (GGUF, dequantized f32 by transformers) logits on chat prompts
  smollm2_greedy.json         SmolLM2 greedy completions, 3 prompts x 32 tokens
  problems.parquet            2 problems (question, answer, id) for the Parquet loader test
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
TEMPLATES = os.path.join(SHARED, "data", "chat_templates")
GGUF = os.path.join(ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

torch.manual_seed(0)
torch.set_num_threads(2)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

TOKENIZER_STRINGS = [
    "Hello world 12345",
    "<|im_start|>user\nHi<|im_end|>",
    "What is 17 + 25? The answer is 42.",
    "  leading spaces, then   runs of spaces\n\ttabs and\nnewlines",
    "naïve café — 東京 🤖 ünïcödé",
    "3.14159 and 1,000,000 and -7/8",
    "\\boxed{\\frac{1}{2}} $x^2 + y^2 = z^2$",
    "",
]


def read_template(name):
    with open(os.path.join(TEMPLATES, name)) as f:
        return f.read()


def train_tiny_tokenizer():
    """A byte-level BPE with 360 tokens trained on GSM8K questions (the layout Qwen2/Llama 3 use)."""
    texts = []
    with open(os.path.join(SHARED, "data", "gsm8k", "train.jsonl")) as f:
        for i, line in enumerate(f):
            if i >= 2000:
                break
            texts.append(json.loads(line)["question"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def hf_tokenizer(tok, template, eos, pad, bos=None):
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos
    )
    fast.chat_template = template
    return fast


def golden_batches(model, vocab_in_tokenizer, pad_id):
    """Two batches: equal-length rows, and left-padded rows of different lengths with a mask."""
    g = torch.Generator().manual_seed(1)
    ids_a = torch.randint(0, vocab_in_tokenizer, (2, 9), generator=g)
    mask_a = torch.ones_like(ids_a)
    lens = [11, 6, 3]
    t = max(lens)
    ids_b = torch.full((3, t), pad_id, dtype=torch.long)
    mask_b = torch.zeros((3, t), dtype=torch.long)
    for r, n in enumerate(lens):
        ids_b[r, t - n :] = torch.randint(0, vocab_in_tokenizer, (n,), generator=g)
        mask_b[r, t - n :] = 1
    out = {}
    with torch.no_grad():
        for name, ids, mask in [("a", ids_a, mask_a), ("b", ids_b, mask_b)]:
            # Position ids as HF generate computes them for left padding.
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            out[f"{name}_ids"] = ids.to(torch.int64).contiguous()
            out[f"{name}_mask"] = mask.to(torch.int64).contiguous()
            out[f"{name}_logits"] = logits.float().contiguous()
    return out


def save_tiny(name, config, tok, template, eos, pad, shard=None):
    path = os.path.join(FIX, name)
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.remove(os.path.join(path, f))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    # Non-trivial norm weights and biases, so a wrong norm or missing bias shows up in the logits.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            if n.endswith(".bias"):
                p.copy_(0.05 * torch.randn_like(p))
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    model.save_pretrained(path, **kwargs)
    hf = hf_tokenizer(tok, template, eos, pad)
    hf.save_pretrained(path)
    pad_id = hf.convert_tokens_to_ids(pad)
    save_file(golden_batches(model, len(hf), pad_id), os.path.join(path, "golden.safetensors"))
    return hf


def chat_cases(fast_tokenizers):
    conversations = {
        "user": [{"role": "user", "content": "What is 2+3?"}],
        "system_user": [
            {"role": "system", "content": "Reply with only the final number."},
            {"role": "user", "content": "What is 2+3?"},
        ],
        "multi_turn": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Name a prime \\boxed{7}?"},
        ],
    }
    cases = []
    for tname in sorted(os.listdir(TEMPLATES)):
        template = read_template(tname)
        tok = fast_tokenizers["tiny"]
        for cname, msgs in conversations.items():
            for agp in (True, False):
                text = tok.apply_chat_template(
                    msgs, chat_template=template, tokenize=False, add_generation_prompt=agp
                )
                cases.append(
                    {
                        "template": tname,
                        "template_source": template,
                        "conversation": cname,
                        "messages": msgs,
                        "add_generation_prompt": agp,
                        "rendered": text,
                    }
                )
    return cases


def smollm2(cases_out):
    tok = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF), dtype=torch.float32
    )
    model.eval()
    cases_out["smollm2"] = [
        {"text": s, "ids": tok(s, add_special_tokens=False)["input_ids"]} for s in TOKENIZER_STRINGS
    ]
    prompts = [
        "What is 12 + 7?",
        "Write a haiku about the sea.",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    ]
    tensors = {}
    greedy = []
    # A fixed strided slice of the vocabulary is stored at every position; the last position is stored in full.
    stride = torch.arange(0, model.config.vocab_size, 97)
    for i, p in enumerate(prompts):
        msgs = [{"role": "user", "content": p}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
        if not torch.is_tensor(ids):
            ids = ids["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
            out = model.generate(
                ids, max_new_tokens=32, do_sample=False, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.eos_token_id,
            )
        tensors[f"p{i}_ids"] = ids[0].to(torch.int64).contiguous()
        tensors[f"p{i}_strided_logits"] = logits[:, stride].contiguous()
        tensors[f"p{i}_last_logits"] = logits[-1].contiguous()
        top = logits.topk(5, dim=-1)
        tensors[f"p{i}_top5_ids"] = top.indices.to(torch.int64).contiguous()
        greedy.append(
            {
                "prompt": p,
                "prompt_ids": ids[0].tolist(),
                "completion_ids": out[0, ids.shape[1] :].tolist(),
                "text": tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True),
            }
        )
    tensors["vocab_stride"] = stride.to(torch.int64).contiguous()
    save_file(tensors, os.path.join(FIX, "smollm2_golden.safetensors"))
    with open(os.path.join(FIX, "smollm2_greedy.json"), "w") as f:
        json.dump(greedy, f, indent=1, ensure_ascii=False)


def main():
    os.makedirs(FIX, exist_ok=True)
    tok = train_tiny_tokenizer()
    base = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
    )
    fast = {}
    fast["tiny"] = save_tiny(
        "tiny-qwen2",
        Qwen2Config(vocab_size=384, rope_theta=1e6, tie_word_embeddings=False, **base),
        tok, read_template("qwen2.5-instruct.chat_template.jinja"), "<|im_end|>", "<|endoftext|>",
    )
    save_tiny(
        "tiny-llama",
        LlamaConfig(
            vocab_size=360, rope_theta=500000.0, tie_word_embeddings=True,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
            bos_token_id=1, eos_token_id=2, **base,
        ),
        tok, read_template("smollm2-135m-instruct.chat_template.jinja"), "<|im_end|>", "<|im_end|>",
        shard="100KB",
    )
    save_tiny(
        "tiny-mistral",
        MistralConfig(vocab_size=360, rope_theta=10000.0, tie_word_embeddings=False,
                      sliding_window=None, **base),
        tok, read_template("smollm2-135m-instruct.chat_template.jinja"), "<|im_end|>", "<|im_end|>",
    )
    cases = {"tiny": [{"text": s, "ids": fast["tiny"](s, add_special_tokens=False)["input_ids"]}
                      for s in TOKENIZER_STRINGS]}
    with open(os.path.join(FIX, "chat_cases.json"), "w") as f:
        json.dump(chat_cases(fast), f, indent=1, ensure_ascii=False)
    if os.path.exists(GGUF):
        smollm2(cases)
    else:
        print(f"skipping SmolLM2 fixtures: {GGUF} missing (run scripts/fetch_model.sh)", file=sys.stderr)
    with open(os.path.join(FIX, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"question": ["What is 2+3?", "Tom has 4 apples and gets 5 more. How many?"],
                             "answer": ["so #### 5", "9"], "id": [1, 2]}),
                   os.path.join(FIX, "problems.parquet"))


if __name__ == "__main__":
    main()
