"""A tiny Llama 3 GGUF written the way llama.cpp's converter writes Llama 3.1/3.2: no rope
scaling metadata, a `rope_freqs.weight` tensor of per-frequency divisors (llama.cpp PR #8676,
`LlamaModel.generate_extra_tensors` in convert_hf_to_gguf.py), Q/K permuted, f32 weights.
Source: tests/fixtures/tiny-llama (rope_type llama3). Run with the reference virtualenv:

    target/pyref/bin/python scripts/make_gguf_fixture.py

Writes tests/fixtures/tiny-llama3.gguf (tests/model.rs checks it against the safetensors model).
"""

import json
import math
import os

import gguf
import numpy as np
import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests", "fixtures", "tiny-llama")
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny-llama3.gguf")


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_factors(cfg):
    # convert_hf_to_gguf.py LlamaModel.generate_extra_tensors
    rope = cfg["rope_parameters"]
    base = rope["rope_theta"]
    dim = cfg["head_dim"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rope.get("factor", 8.0)
    low_freq_factor = rope.get("low_freq_factor", 1.0)
    high_freq_factor = rope.get("high_freq_factor", 4.0)
    old_context_len = rope.get("original_max_position_embeddings", 8192)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            out.append(1)
        elif wavelen > low_freq_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def main():
    with open(os.path.join(SRC, "config.json")) as f:
        cfg = json.load(f)
    w = {}
    for name in sorted(os.listdir(SRC)):
        if name.startswith("model-") and name.endswith(".safetensors"):
            w.update(load_file(os.path.join(SRC, name)))
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    writer = gguf.GGUFWriter(OUT, "llama")
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(nh)
    writer.add_head_count_kv(nkv)
    writer.add_key_length(cfg["head_dim"])
    writer.add_value_length(cfg["head_dim"])
    writer.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_vocab_size(cfg["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tensor("rope_freqs.weight", rope_factors(cfg))
    f32 = lambda t: t.to(torch.float32).numpy()
    writer.add_tensor("token_embd.weight", f32(w["model.embed_tokens.weight"]))
    writer.add_tensor("output_norm.weight", f32(w["model.norm.weight"]))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        writer.add_tensor(b + "attn_norm.weight", f32(w[p + "input_layernorm.weight"]))
        writer.add_tensor(b + "attn_q.weight", f32(permute(w[p + "self_attn.q_proj.weight"], nh, nh)))
        writer.add_tensor(b + "attn_k.weight", f32(permute(w[p + "self_attn.k_proj.weight"], nh, nkv)))
        writer.add_tensor(b + "attn_v.weight", f32(w[p + "self_attn.v_proj.weight"]))
        writer.add_tensor(b + "attn_output.weight", f32(w[p + "self_attn.o_proj.weight"]))
        writer.add_tensor(b + "ffn_norm.weight", f32(w[p + "post_attention_layernorm.weight"]))
        writer.add_tensor(b + "ffn_gate.weight", f32(w[p + "mlp.gate_proj.weight"]))
        writer.add_tensor(b + "ffn_up.weight", f32(w[p + "mlp.up_proj.weight"]))
        writer.add_tensor(b + "ffn_down.weight", f32(w[p + "mlp.down_proj.weight"]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {OUT}: rope_freqs {rope_factors(cfg).tolist()}")


if __name__ == "__main__":
    main()
