#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (stdlib only): tiny GGUF and safetensors files
built here, plus small real files from tests/fixtures/, configs/ and ../shared/data/. Run from
the repository root: python3 fuzz/make_seeds.py"""

import json
import os
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


# --- GGUF (v3) --------------------------------------------------------------------------------

U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gvalue(ty, v):
    if ty == U32:
        return struct.pack("<I", v)
    if ty == I32:
        return struct.pack("<i", v)
    if ty == F32:
        return struct.pack("<f", v)
    if ty == BOOL:
        return struct.pack("<B", v)
    if ty == STRING:
        return gstr(v)
    raise ValueError(ty)


def gkv(key, ty, v, item_ty=None):
    out = gstr(key) + struct.pack("<I", ty)
    if ty == ARRAY:
        out += struct.pack("<IQ", item_ty, len(v)) + b"".join(gvalue(item_ty, x) for x in v)
    else:
        out += gvalue(ty, v)
    return out


def f32s(n, scale=0.01):
    return b"".join(struct.pack("<f", ((i * 37) % 17 - 8) * scale) for i in range(n))


def f16s(n):
    return b"".join(struct.pack("<e", ((i * 37) % 17 - 8) * 0.01) for i in range(n))


def q8_0(n):  # blocks of 32: f16 scale + 32 int8
    return b"".join(struct.pack("<e", 0.01) + bytes((i * 7 + j) % 256 for j in range(32)) for i in range(n // 32))


def q4_0(n):  # blocks of 32: f16 scale + 16 bytes of nibbles
    return b"".join(struct.pack("<e", 0.02) + bytes((i * 13 + j) % 256 for j in range(16)) for i in range(n // 32))


TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "H", "e", "l", "o", "Ġ", "w", "r", "d",
          "1", "2", "He", "ll", "llo"]
MERGES = ["H e", "l l", "ll o"]


def tokenizer_kvs(pre="smollm"):
    return [
        gkv("tokenizer.ggml.model", STRING, "gpt2"),
        gkv("tokenizer.ggml.pre", STRING, pre),
        gkv("tokenizer.ggml.tokens", ARRAY, TOKENS, STRING),
        gkv("tokenizer.ggml.token_type", ARRAY, [3, 3, 3] + [1] * (len(TOKENS) - 3), I32),
        gkv("tokenizer.ggml.merges", ARRAY, MERGES, STRING),
        gkv("tokenizer.ggml.bos_token_id", U32, 1),
        gkv("tokenizer.ggml.eos_token_id", U32, 2),
        gkv("tokenizer.ggml.add_bos_token", BOOL, 0),
    ]


def gguf(kvs, tensors, arch="llama"):
    """tensors: (name, dims ne0-first, ggml type, bytes)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    data, infos = b"", b""
    for name, dims, ty, raw in tensors:
        data += b"\0" * (-len(data) % 32)
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ty, len(data))
        data += raw
    out = head + infos
    return out + b"\0" * (-len(out) % 32) + data


def model_gguf(arch, pre):
    h, ff, heads, kv, vocab = 32, 64, 4, 2, len(TOKENS)
    kvs = [
        gkv("general.architecture", STRING, arch),
        gkv(f"{arch}.embedding_length", U32, h),
        gkv(f"{arch}.feed_forward_length", U32, ff),
        gkv(f"{arch}.block_count", U32, 1),
        gkv(f"{arch}.attention.head_count", U32, heads),
        gkv(f"{arch}.attention.head_count_kv", U32, kv),
        gkv(f"{arch}.context_length", U32, 64),
        gkv(f"{arch}.rope.freq_base", F32, 10000.0),
        gkv(f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-5),
    ] + tokenizer_kvs(pre)
    kvd = h // heads * kv
    tensors = [
        ("token_embd.weight", [h, vocab], 0, f32s(h * vocab)),
        ("output_norm.weight", [h], 0, f32s(h, 0.1)),
        ("blk.0.attn_norm.weight", [h], 0, f32s(h, 0.1)),
        ("blk.0.ffn_norm.weight", [h], 0, f32s(h, 0.1)),
        ("blk.0.attn_q.weight", [h, h], 0, f32s(h * h)),
        ("blk.0.attn_k.weight", [h, kvd], 0, f32s(h * kvd)),
        ("blk.0.attn_v.weight", [h, kvd], 1, f16s(h * kvd)),
        ("blk.0.attn_output.weight", [h, h], 1, f16s(h * h)),
        ("blk.0.ffn_gate.weight", [h, ff], 8, q8_0(h * ff)),
        ("blk.0.ffn_up.weight", [h, ff], 2, q4_0(h * ff)),
        ("blk.0.ffn_down.weight", [ff, h], 8, q8_0(h * ff)),
    ]
    if arch == "qwen2":
        tensors.append(("blk.0.attn_q.bias", [h], 0, f32s(h)))
    return gguf(kvs, tensors, arch)


# --- safetensors -----------------------------------------------------------------------------


def safetensors(tensors):
    """tensors: (name, dtype, shape, bytes)."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    fx = ROOT / "tests" / "fixtures"

    put("gguf", "llama.gguf", model_gguf("llama", "smollm"))
    put("gguf", "qwen2.gguf", model_gguf("qwen2", "qwen2"))
    put("gguf", "magic-only.gguf", b"GGUF\x03\0\0\0" + b"\0" * 16)
    real = Path(os.environ.get("INTUITOR_GGUF", ROOT / "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    if real.exists():
        put("gguf", "smollm2-head.gguf", real.read_bytes()[:2048])

    put("tokenizer_gguf", "smollm.gguf", gguf(tokenizer_kvs("smollm"), []))
    put("tokenizer_gguf", "qwen2.gguf", gguf(tokenizer_kvs("qwen2"), []))
    put("tokenizer_gguf", "llama-bpe.gguf", gguf(tokenizer_kvs("llama-bpe"), []))

    put("safetensors", "dtypes.safetensors", safetensors([
        ("a.f32", "F32", [2, 3], f32s(6)),
        ("b.f16", "F16", [4], f16s(4)),
        ("c.bf16", "BF16", [2], b"\x80\x3f\x00\x40"),
        ("d.i64", "I64", [2], struct.pack("<qq", 1, -2)),
        ("e.u8", "U8", [3], b"\x01\x02\x03"),
        ("f.scalar", "F32", [], f32s(1)),
        ("g.empty", "F32", [0, 4], b""),
    ]))
    put("safetensors", "one.safetensors", safetensors([("w", "F32", [1], f32s(1))]))
    put("safetensors", "tiny-llama-shard2.safetensors",
        (fx / "tiny-llama/model-00002-of-00002.safetensors").read_bytes())

    messages = json.dumps([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ])
    templates = [
        (f"{d}.jinja", fx / d / "chat_template.jinja") for d in ["tiny-llama", "tiny-qwen2"]
    ] + [(p.name, p) for p in sorted((ROOT.parent / "shared/data/chat_templates").glob("*.jinja"))]
    for name, path in templates:
        put("chat_template", name, path.read_text() + "\0" + messages + "\0<s>\0</s>")
    put("chat_template", "loops.jinja",
        "{% for m in messages %}{{ loop.index }}{{ m.role | upper }}: {{ m.content | trim }}"
        "{% if not loop.last %}\n{% endif %}{% endfor %}{{ raise_exception('x') if messages|length > 9 }}"
        "{{ strftime_now('%d %B %Y') }}{{ messages | tojson }}{{ 'a,b'.split(',') }}\0" + messages)

    lines = (fx / "gsm8k_test_first20.jsonl").read_text().splitlines()
    put("dataset_jsonl", "gsm8k.jsonl", "\n".join(lines[:2]) + "\n")
    put("dataset_jsonl", "mixed.jsonl", "\n".join(json.dumps(r) for r in [
        {"problem": "1+1?", "answer": "2", "id": 7},
        {"messages": [{"role": "user", "content": "hi"}], "answer": "#### 3"},
        {"question": "q", "context": "c", "answer": "\\boxed{\\frac12}", "unique_id": "u"},
        {"prompt": 5, "answer": 1.5},
    ]) + "\n\n")
    put("dataset_csv", "plain.csv", "problem,answer,id\n\"1+1, twice?\",2,a\nWhat is 3?,#### 3,b\n")
    put("dataset_csv", "fields.csv", "question,context,answer\nq,\"multi\nline\",\\boxed{4}\n")
    put("dataset_parquet", "problems.parquet", (fx / "problems.parquet").read_bytes())

    for p in sorted((ROOT / "configs").glob("*.toml")):
        put("config", p.name, p.read_text())
    put("config", "sets.toml", (ROOT / "configs/demo.toml").read_text()
        + "\0num_generations=4\0learning_rate=1e-5\0reward_funcs=[\"self_certainty\",\"format\"]"
          "\0reward_weights=[1.0, 0.5]\0lr_scheduler_type=\"constant\"")
    put("config", "empty.toml", "\0max_steps=3\0seed=1")

    pairs = [
        ("#### 42", "The answer is 42."),
        ("\\boxed{\\frac{1}{2}}", "so $\\boxed{0.5}$"),
        ("\\boxed{(1, 2]}", "\\boxed{(1,2]}"),
        ("\\boxed{\\{1,2,3\\}}", "\\boxed{\\{3,2,1\\}}"),
        ("\\boxed{x^2+2x+1}", "\\boxed{(x+1)^2}"),
        ("\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}", "\\boxed{\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}}"),
        ("\\boxed{\\sqrt{2}/2}", "\\boxed{\\frac{\\sqrt2}{2}}"),
        ("\\boxed{x \\in [0, \\infty)}", "\\boxed{x\\ge 0}"),
        ("\\boxed{10\\%}", "\\boxed{0.1}"),
        ("\\boxed{1,000}", "1000"),
        ("\\boxed{\\text{(A)}}", "The answer is (A)"),
        ("\\boxed{2\\pi}", "\\boxed{6.283185}"),
        ("\\boxed{3 \\cup (4, 5)}", "\\boxed{e^{i\\pi}}"),
    ]
    for i, (g, p) in enumerate(pairs):
        put("answer", f"pair{i:02}", g + "\0" + p)


if __name__ == "__main__":
    main()
