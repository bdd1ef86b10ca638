//! The model, rollout and update checks on the device and dtype named by `INTUITOR_TEST_DEVICE`
//! (`cpu` by default, `cuda`, `cuda:N`) and `INTUITOR_TEST_DTYPE` (`f32` by default, `bf16`,
//! `f16`), each against a reference computed elsewhere: transformers' logits, a CPU f32 forward,
//! TRL's loss and gradients. Tolerances follow the dtype (f32 ≤ 1e-4, bf16/f16 ≤ 3e-2 relative
//! to the values' scale). `scripts/gpu_check.sh` runs this file's binary, built with
//! `--features cuda` by `scripts/build_cuda.sh`, on a lent GPU; CI runs it on the CPU.

mod common;

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
use common::trl::TrlFixture;
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
        Ok("f64") => DType::F64,
        Ok(other) => panic!("INTUITOR_TEST_DTYPE={other}: expected f32, bf16, f16 or f64"),
    };
    (device, dtype)
}

/// The tolerance for `dtype`, relative to the compared values' scale.
fn tolerance(dtype: DType) -> f32 {
    if dtype == DType::F64 {
        // Against the CPU's f32: the f32 reference's own rounding.
        1e-5
    } else if dtype == DType::F32 {
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
            max_new_tokens: None,
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
        kv_budget: None,
        prefill_batch: None,
    };
    // Unbounded, and in KV room for 2 of the 9 rows (slots reused, prompts admitted late).
    let c = on_device.decoder.config();
    let per_position =
        (c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * dtype.size_in_bytes())
            as u64;
    let full = intuitor::rollout::slot_plan_for(&on_device.decoder, &requests, &cfg).unwrap();
    let two = intuitor::rollout::SlotPlan {
        rows: 2,
        prefixes: 2,
        ..full
    };
    for budget in [None, Some(two.bytes(per_position))] {
        let cfg = RolloutConfig {
            kv_budget: budget,
            ..cfg.clone()
        };
        check_rollout(&on_device, &cpu, &requests, &cfg, &device, dtype);
    }
}

/// [`rollout_on_the_test_device_agrees_with_a_cpu_forward`] for one config.
fn check_rollout(
    on_device: &intuitor::loader::LoadedModel,
    cpu: &intuitor::loader::LoadedModel,
    requests: &[PromptRequest],
    cfg: &RolloutConfig,
    device: &Device,
    dtype: DType,
) {
    let outs = rollout(&on_device.decoder, requests, cfg, None).unwrap();
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
    if dtype == DType::F32 || dtype == DType::F64 {
        let reference = rollout(&cpu.decoder, requests, cfg, None).unwrap();
        for (a, b) in outs.iter().zip(&reference) {
            assert_eq!(
                a.ids, b.ids,
                "seeded samples differ between {device:?} and the CPU"
            );
        }
    }
}

/// One micro-batch's loss and gradients on the device equal TRL's (in f32, TRL's tolerance;
/// mixed precision against f32 is `tests/mixed_precision.rs`).
#[test]
fn update_on_the_test_device_equals_trl() {
    use intuitor::optim::GradAccumulator;
    use intuitor::update::accumulate_micro_batch;
    let (device, _) = target();
    let f = TrlFixture::load();
    let cfg = f.loss_cfg("bnpo", 0.04);
    let seqs = f.sequences(&cfg, true);
    let m = load_on("tiny-qwen2", &device, DType::F32);
    let policy = Policy::from_decoder(&m.decoder).unwrap();
    let mut grads = GradAccumulator::default();
    accumulate_micro_batch(&policy, &seqs, &cfg, &mut grads).unwrap();
    let mut checked = 0;
    for name in f.meta["grad_params"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let i = policy.names.iter().position(|n| n == name).unwrap();
        let ours = grads
            .get(policy.vars[i].as_tensor())
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap();
        let trl = &f.t[&format!("grad/{name}")];
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
