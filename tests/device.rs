//! The model, rollout and update checks on the device and dtype named by `INTUITOR_TEST_DEVICE`
//! (`cpu` by default, `cuda`, `cuda:N`) and `INTUITOR_TEST_DTYPE` (`f32` by default, `bf16`,
//! `f16`), each against a reference computed elsewhere: transformers' logits, a CPU f32 forward,
//! TRL's loss and gradients. Tolerances follow the dtype (f32 ≤ 1e-4, bf16/f16 ≤ 3e-2 relative
//! to the values' scale). `scripts/gpu_check.sh` runs this file's binary, built with
//! `--features cuda` by `scripts/build_cuda.sh`, on a lent GPU; CI runs it on the CPU.

mod common;

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
use common::*;
use intuitor::loader::{LoadedModel, ModelSource};
use intuitor::logprob::completion_logprobs;
use intuitor::model::decoder::positions_from_mask;
use intuitor::packing::Sequence;
use intuitor::policy::Policy;
use intuitor::rollout::{rollout, PromptRequest, RolloutConfig};
use intuitor::sampling::SamplingParams;

/// The device and dtype under test.
fn target() -> (Device, DType) {
    let name = std::env::var("INTUITOR_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = intuitor::runtime::device(&name)
        .unwrap_or_else(|e| panic!("INTUITOR_TEST_DEVICE={name}: {e}"));
    let dtype = match std::env::var("INTUITOR_TEST_DTYPE").as_deref() {
        Err(_) | Ok("f32") => DType::F32,
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        Ok(other) => panic!("INTUITOR_TEST_DTYPE={other}: expected f32, bf16 or f16"),
    };
    (device, dtype)
}

/// The tolerance for `dtype`, relative to the compared values' scale.
fn tolerance(dtype: DType) -> f32 {
    if dtype == DType::F32 {
        1e-4
    } else {
        3e-2
    }
}

fn load_on(name: &str, device: &Device, dtype: DType) -> LoadedModel {
    LoadedModel::load(&ModelSource::HfDir(fixture(name)), dtype, device)
        .unwrap_or_else(|e| panic!("loading {name} on {device:?} {dtype:?}: {e}"))
}

#[test]
fn tiny_logits_on_the_test_device_equal_transformers() {
    let (device, dtype) = target();
    for name in ["tiny-qwen2", "tiny-llama", "tiny-mistral"] {
        let m = load_on(name, &device, dtype);
        let g = golden(&format!("{name}/golden.safetensors"));
        for batch in ["a", "b"] {
            let ids = ids_u32(&g[&format!("{batch}_ids")]);
            let mask: Vec<Vec<u32>> = g[&format!("{batch}_mask")]
                .to_dtype(DType::U32)
                .unwrap()
                .to_vec2()
                .unwrap();
            let positions = Tensor::new(positions_from_mask(&mask), &device).unwrap();
            let key_mask = Tensor::new(mask.clone(), &device).unwrap();
            let logits = m
                .decoder
                .forward(
                    &ids.to_device(&device).unwrap(),
                    &positions,
                    Some(&key_mask),
                    None,
                )
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap();
            let want = &g[&format!("{batch}_logits")];
            let scale = max_abs_diff(want, &want.zeros_like().unwrap()).max(1.0);
            let diff = max_abs_diff_masked(&logits, want, &mask);
            assert!(
                diff <= tolerance(dtype) * scale,
                "{name} batch {batch} on {device:?} {dtype:?}: max |Δlogit| = {diff} (scale {scale})"
            );
        }
    }
}

/// A seeded rollout on the device: its per-token log-probs equal a CPU f32 forward over the
/// same completions, and in f32 its samples equal the CPU engine's.
#[test]
fn rollout_on_the_test_device_agrees_with_a_cpu_forward() {
    let (device, dtype) = target();
    let on_device = load_on("tiny-qwen2", &device, dtype);
    let cpu = load_on("tiny-qwen2", &Device::Cpu, DType::F32);
    let requests: Vec<PromptRequest> = ["Hi", "What is 17 plus 25, in words?", "Count to three."]
        .iter()
        .enumerate()
        .map(|(i, t)| PromptRequest {
            ids: cpu.prompt_ids(t, None, false).unwrap(),
            seed: 100 + i as u64,
        })
        .collect();
    let cfg = RolloutConfig {
        num_generations: 3,
        max_new_tokens: 12,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 50,
            ..SamplingParams::default()
        },
        stop_ids: BTreeSet::new(),
        stop_strings: Vec::new(),
        keep_after_last: true,
    };
    let outs = rollout(&on_device.decoder, &requests, &cfg, None).unwrap();
    assert_eq!(outs.len(), 9);
    let seqs: Vec<Sequence> = outs
        .iter()
        .map(|c| Sequence {
            prompt_ids: &requests[c.prompt_index].ids,
            completion_ids: &c.ids,
        })
        .collect();
    let want = completion_logprobs(&cpu.decoder, &seqs, cfg.sampling.temperature.into()).unwrap();
    for (c, w) in outs.iter().zip(&want) {
        assert_eq!(c.logprobs.len(), w.len());
        for (a, b) in c.logprobs.iter().zip(w) {
            let tol = tolerance(dtype) * b.abs().max(1.0);
            assert!(
                (a - b).abs() <= tol,
                "log-prob {a} on {device:?} vs {b} on the CPU"
            );
        }
    }
    if dtype == DType::F32 {
        let reference = rollout(&cpu.decoder, &requests, &cfg, None).unwrap();
        for (a, b) in outs.iter().zip(&reference) {
            assert_eq!(
                a.ids, b.ids,
                "seeded samples differ between {device:?} and the CPU"
            );
        }
    }
}

/// One micro-batch's loss and gradients on the device equal TRL's (f32 master weights: the
/// update runs in f32 whatever `INTUITOR_TEST_DTYPE` says until mixed precision lands).
#[test]
fn update_on_the_test_device_equals_trl() {
    use intuitor::loss::{sequence_weights, LossConfig};
    use intuitor::optim::GradAccumulator;
    use intuitor::update::{accumulate_micro_batch, UpdateSequence};
    let (device, _) = target();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("trl_update.json")).unwrap())
            .unwrap();
    let t = golden("trl_update.safetensors");
    let rows = |ids: &str, mask: &str| masked_rows(&t, ids, mask);
    let prompts = rows("prompt_ids", "prompt_mask");
    let completions = rows("completion_ids", "completion_mask");
    let cfg = LossConfig {
        loss_type: intuitor::loss::LossType::Bnpo,
        beta: 0.04,
        epsilon_low: meta["epsilon_low"].as_f64().unwrap(),
        epsilon_high: meta["epsilon_high"].as_f64().unwrap(),
        max_completion_length: meta["max_completion_length"].as_u64().unwrap() as usize,
        temperature: meta["temperature"].as_f64().unwrap(),
        kl_bias_correction: true,
    };
    let lens: Vec<usize> = completions.iter().map(Vec::len).collect();
    let ga = meta["gradient_accumulation_steps"].as_u64().unwrap() as usize;
    let items = meta["num_items_in_batch"].as_u64().unwrap() as usize;
    let weights = sequence_weights(&lens, &cfg, ga, items);
    let adv: Vec<f32> = t["advantages"].to_vec1().unwrap();
    let old: Vec<Vec<f32>> = t["old_logps"].to_vec2().unwrap();
    let reference: Vec<Vec<f32>> = t["ref_logps"].to_vec2().unwrap();
    let seqs: Vec<UpdateSequence> = (0..4)
        .map(|i| UpdateSequence {
            prompt_ids: prompts[i].clone(),
            completion_ids: completions[i].clone(),
            advantage: adv[i] as f64,
            old_logps: Some(old[i][..lens[i]].to_vec()),
            ref_logps: Some(reference[i][..lens[i]].to_vec()),
            weight: weights[i],
        })
        .collect();
    let m = load_on("tiny-qwen2", &device, DType::F32);
    let policy = Policy::from_decoder(&m.decoder).unwrap();
    let mut grads = GradAccumulator::default();
    accumulate_micro_batch(&policy, &seqs, &cfg, &mut grads).unwrap();
    let mut checked = 0;
    for name in meta["grad_params"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let i = policy.names.iter().position(|n| n == name).unwrap();
        let ours = grads
            .get(policy.vars[i].as_tensor())
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap();
        let trl = &t[&format!("grad/{name}")];
        let scale = max_abs_diff(trl, &trl.zeros_like().unwrap());
        let diff = max_abs_diff(&ours, trl);
        assert!(scale > 0.0, "{name}: TRL gradient is zero");
        assert!(
            diff <= 1e-4 * scale,
            "{name} on {device:?}: max |Δgrad| {diff} vs scale {scale}"
        );
        checked += 1;
    }
    assert!(checked > 0, "the fixture names no gradient to check");
}
