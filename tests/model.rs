//! The decoder against HF transformers' logits (fixtures from scripts/make_fixtures.py), the KV
//! cache against a full forward, gradient flow to every parameter, and the packed (quantized at
//! rest) reference against the dense decoder.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use intuitor::loader::{LoadedModel, ModelSource};
use intuitor::model::decoder::positions_from_mask;
use intuitor::model::gguf::GgufFile;
use intuitor::model::{Decoder, KvCache};

fn mask_rows(mask: &Tensor) -> Vec<Vec<u32>> {
    mask.to_dtype(DType::U32).unwrap().to_vec2().unwrap()
}

fn positions(mask: &[Vec<u32>]) -> Tensor {
    Tensor::new(positions_from_mask(mask), &Device::Cpu).unwrap()
}

fn check_tiny_logits(name: &str) {
    let m = load_tiny(name);
    let g = golden(&format!("{name}/golden.safetensors"));
    for batch in ["a", "b"] {
        let ids = ids_u32(&g[&format!("{batch}_ids")]);
        let mask = mask_rows(&g[&format!("{batch}_mask")]);
        let key_mask = Tensor::new(mask.clone(), &Device::Cpu).unwrap();
        let logits = m
            .decoder
            .forward(&ids, &positions(&mask), Some(&key_mask), None)
            .unwrap();
        let diff = max_abs_diff_masked(&logits, &g[&format!("{batch}_logits")], &mask);
        assert!(diff <= 1e-4, "{name} batch {batch}: max |Δlogit| = {diff}");
    }
}

#[test]
fn tiny_qwen2_logits_equal_transformers() {
    check_tiny_logits("tiny-qwen2");
}

#[test]
fn tiny_llama3_sharded_tied_logits_equal_transformers() {
    check_tiny_logits("tiny-llama");
}

/// A Llama 3 GGUF as llama.cpp's converter writes it (RoPE scaling only as a `rope_freqs`
/// tensor, scripts/make_gguf_fixture.py) gives transformers' logits of the source model.
#[test]
fn a_llama3_gguf_with_rope_freqs_gives_the_transformers_logits() {
    let file = GgufFile::open(&fixture("tiny-llama3.gguf")).unwrap();
    let cfg = file.config().unwrap();
    let hf = load_tiny("tiny-llama");
    let want = hf.config().rope_inv_freq();
    for (a, b) in cfg.rope_inv_freq().iter().zip(&want) {
        assert!((a / b - 1.0).abs() < 1e-5, "inverse frequency {a} vs {b}");
    }
    let tensors = file.tensors(&cfg, DType::F32, &Device::Cpu).unwrap();
    let decoder = Decoder::new(&cfg, &tensors).unwrap();
    let g = golden("tiny-llama/golden.safetensors");
    for batch in ["a", "b"] {
        let ids = ids_u32(&g[&format!("{batch}_ids")]);
        let mask = mask_rows(&g[&format!("{batch}_mask")]);
        let key_mask = Tensor::new(mask.clone(), &Device::Cpu).unwrap();
        let logits = decoder
            .forward(&ids, &positions(&mask), Some(&key_mask), None)
            .unwrap();
        let diff = max_abs_diff_masked(&logits, &g[&format!("{batch}_logits")], &mask);
        assert!(diff <= 1e-4, "batch {batch}: max |Δlogit| = {diff}");
    }
}

#[test]
fn tiny_mistral_logits_equal_transformers() {
    check_tiny_logits("tiny-mistral");
}

#[test]
fn padded_vocab_rows_are_part_of_the_logits() {
    let m = load_tiny("tiny-qwen2");
    assert_eq!(m.config().vocab_size, 384);
    assert!(m.tokenizer.vocab_size() < 384);
}

/// Prefill a prefix with the cache, then feed the rest one token at a time: the logits equal
/// the no-cache forward over the whole left-padded batch.
#[test]
fn kv_cache_decoding_equals_full_forward_on_a_left_padded_batch() {
    let m = load_tiny("tiny-qwen2");
    let g = golden("tiny-qwen2/golden.safetensors");
    let ids = ids_u32(&g["b_ids"]);
    let mask = mask_rows(&g["b_mask"]);
    let key_mask = Tensor::new(mask.clone(), &Device::Cpu).unwrap();
    let pos = positions(&mask);
    let full = m
        .decoder
        .forward(&ids, &pos, Some(&key_mask), None)
        .unwrap();
    let t = ids.dim(1).unwrap();
    let prefix = 8;
    let mut cache = KvCache::new(m.config().num_hidden_layers);
    let mut parts = vec![m
        .decoder
        .forward(
            &ids.narrow(1, 0, prefix).unwrap(),
            &pos.narrow(1, 0, prefix).unwrap(),
            Some(&key_mask.narrow(1, 0, prefix).unwrap()),
            Some(&mut cache),
        )
        .unwrap()];
    for i in prefix..t {
        parts.push(
            m.decoder
                .forward(
                    &ids.narrow(1, i, 1).unwrap(),
                    &pos.narrow(1, i, 1).unwrap(),
                    Some(&key_mask.narrow(1, 0, i + 1).unwrap()),
                    Some(&mut cache),
                )
                .unwrap(),
        );
    }
    assert_eq!(cache.seen(), t);
    let cached = Tensor::cat(&parts, 1).unwrap();
    let diff = max_abs_diff_masked(&cached, &full, &mask);
    assert!(diff <= 1e-4, "max |Δlogit| cache vs full = {diff}");
}

/// Every parameter receives a non-zero gradient (guards against fused ops that silently cut
/// the graph; stack-notes).
#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    for name in ["tiny-qwen2", "tiny-llama"] {
        let m = load_tiny(name);
        let vars: HashMap<String, Var> = m
            .decoder
            .parameters()
            .iter()
            .map(|(n, t)| (n.clone(), Var::from_tensor(t).unwrap()))
            .collect();
        let tensors: HashMap<String, Tensor> = vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let decoder = Decoder::new(m.config(), &tensors).unwrap();
        let g = golden(&format!("{name}/golden.safetensors"));
        let ids = ids_u32(&g["b_ids"]);
        let mask = mask_rows(&g["b_mask"]);
        let key_mask = Tensor::new(mask.clone(), &Device::Cpu).unwrap();
        let logits = decoder
            .forward(&ids, &positions(&mask), Some(&key_mask), None)
            .unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1).unwrap();
        let weights = Tensor::randn(0f32, 1.0, logp.shape(), &Device::Cpu).unwrap();
        let loss = (logp * weights).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        assert_eq!(vars.len(), decoder.parameters().len());
        for (n, v) in &vars {
            let grad = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
            let norm = grad
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient of {n} is {norm}"
            );
        }
    }
}

#[test]
fn smollm2_logits_equal_transformers_gguf_loader() {
    let m = load_default();
    let g = golden("smollm2_golden.safetensors");
    let stride: Vec<u32> = g["vocab_stride"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let stride = Tensor::new(stride, &Device::Cpu).unwrap();
    for p in 0..3 {
        let ids = ids_u32(&g[&format!("p{p}_ids")]).unsqueeze(0).unwrap();
        let n = ids.dim(1).unwrap();
        let pos = Tensor::arange(0u32, n as u32, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = m
            .decoder
            .forward(&ids, &pos, None, None)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let strided = logits.index_select(&stride, 1).unwrap();
        let d1 = max_abs_diff(&strided, &g[&format!("p{p}_strided_logits")]);
        let last = logits.get(n - 1).unwrap();
        let d2 = max_abs_diff(&last, &g[&format!("p{p}_last_logits")]);
        assert!(
            d1 <= 1e-3 && d2 <= 1e-3,
            "prompt {p}: strided Δ {d1}, last-row Δ {d2}"
        );
        let top1: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
        let hf_top: Vec<Vec<i64>> = g[&format!("p{p}_top5_ids")].to_vec2().unwrap();
        let hf_top1: Vec<u32> = hf_top.iter().map(|r| r[0] as u32).collect();
        assert_eq!(top1, hf_top1, "prompt {p}: top-1 tokens");
    }
}

#[test]
fn smollm2_greedy_completions_equal_transformers_token_for_token() {
    let m = load_default();
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("smollm2_greedy.json")).unwrap())
            .unwrap();
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let ids = m.prompt_ids(prompt, None, false).unwrap();
        let expected_prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        assert_eq!(ids, expected_prompt, "prompt ids for {prompt:?}");
        let cfg = intuitor::rollout::RolloutConfig {
            num_generations: 1,
            max_new_tokens: 32,
            sampling: intuitor::sampling::SamplingParams::greedy(),
            stop_ids: m.tokenizer.stop_ids(),
            stop_strings: Vec::new(),
            keep_after_last: false,
            kv_budget: None,
            prefill_batch: None,
        };
        let request = intuitor::rollout::PromptRequest {
            ids,
            seed: 0,
            max_new_tokens: None,
        };
        let out = intuitor::rollout::rollout(&m.decoder, &[request], &cfg, None).unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["completion_ids"].clone()).unwrap();
        assert_eq!(out[0].ids, expected, "greedy completion for {prompt:?}");
    }
}

/// A 9-token prompt `[1, 9]` and its positions.
fn short_prompt() -> (Tensor, Tensor) {
    let ids = Tensor::new(
        &[[1u32, 504, 3458, 314, 1488, 28, 253, 17, 30]],
        &Device::Cpu,
    )
    .unwrap();
    let pos = Tensor::arange(0u32, 9, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    (ids, pos)
}

#[test]
fn a_packed_reference_gives_the_dense_logits_bit_for_bit() {
    let dense = load_default();
    let mut packed = load_default();
    let ModelSource::Gguf(path) = &packed.source else {
        panic!("the default model is a GGUF file");
    };
    let file = GgufFile::open(path).unwrap();
    let cfg = packed.decoder.config().clone();
    let weights = file
        .packed_matrices(&cfg, DType::F32, &Device::Cpu)
        .unwrap();
    let before = packed.decoder.parameters().len();
    let n = packed.decoder.pack(weights).unwrap();
    assert_eq!(
        n,
        7 * cfg.num_hidden_layers + 1,
        "every layer linear and the embedding are packed"
    );
    assert_eq!(packed.decoder.parameters().len(), before - n);
    let (ids, pos) = short_prompt();
    let logits = |m: &LoadedModel| -> Vec<u32> {
        let z = m.decoder.forward(&ids, &pos, None, None).unwrap();
        let z: Vec<f32> = z.flatten_all().unwrap().to_vec1().unwrap();
        z.iter().map(|x| x.to_bits()).collect()
    };
    assert!(logits(&dense) == logits(&packed), "packed logits differ");
}

#[test]
fn a_decoding_copy_gives_the_dense_logits_and_puts_the_weights_back() {
    let m = load_default();
    let bits = |d: &intuitor::model::Decoder| -> Vec<Vec<u32>> {
        d.parameters()
            .iter()
            .map(|(_, t)| {
                let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                v.iter().map(|x| x.to_bits()).collect()
            })
            .collect()
    };
    let before = bits(&m.decoder);
    let (ids, pos) = short_prompt();
    let dense = m.decoder.forward(&ids, &pos, None, None).unwrap();
    let decoding = m.decoder.for_decoding().unwrap();
    let fast = decoding.forward(&ids, &pos, None, None).unwrap();
    // Only the order of the sums differs (the tolerance of the transformers comparison).
    let d = max_abs_diff(&dense, &fast);
    assert!(d > 0.0 && d <= 1e-3, "decoding-copy logits differ by {d}");
    drop(decoding);
    assert!(bits(&m.decoder) == before, "weights changed");
}
