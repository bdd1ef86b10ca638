//! The policy update against TRL 1.16 (`GRPOTrainer._compute_loss`, torch AdamW, HF cosine
//! schedule): losses for every loss_type with and without KL and clipping, metrics, gradients,
//! and parameters after two optimizer steps. Fixtures: scripts/make_trl_fixtures.py.
//! Plus a finite-difference check in f64 and the every-parameter-gets-a-gradient guard.

mod common;

use candle_core::{DType, Device, Tensor};
use common::trl::TrlFixture;
use common::*;
use intuitor::loader::{LoadedModel, ModelSource};
use intuitor::logprob::completion_logprobs;
use intuitor::optim::schedule::{lr_at, Schedule};
use intuitor::optim::{AdamW, AdamWConfig, GradAccumulator};
use intuitor::packing::Sequence;
use intuitor::policy::Policy;
use intuitor::update::{accumulate_micro_batch, UpdateStats};

fn set_values(var: &candle_core::Var, values: Vec<f64>) {
    let t = Tensor::new(values, &Device::Cpu)
        .unwrap()
        .reshape(var.shape())
        .unwrap();
    var.set(&t).unwrap();
}

fn rel_close(a: f64, b: f64, rel: f64, what: &str) {
    assert!(
        (a - b).abs() <= rel * b.abs().max(1e-12),
        "{what}: {a} vs TRL {b}"
    );
}

#[test]
fn completion_logprobs_equal_trl() {
    let f = TrlFixture::load();
    let m = load_tiny("tiny-qwen2");
    let seqs: Vec<Sequence> = (0..4)
        .map(|i| Sequence {
            prompt_ids: &f.prompts[i],
            completion_ids: &f.completions[i],
        })
        .collect();
    let ours =
        completion_logprobs(&m.decoder, &seqs, f.meta["temperature"].as_f64().unwrap()).unwrap();
    let trl: Vec<Vec<f32>> = f.t["current_logps"].to_vec2().unwrap();
    for (o, t) in ours.iter().zip(&trl) {
        for (a, b) in o.iter().zip(t) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn loss_and_metrics_equal_trl_for_every_loss_type() {
    let f = TrlFixture::load();
    let m = load_tiny("tiny-qwen2");
    let cases = f.meta["losses"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    for case in cases {
        let lt = case["loss_type"].as_str().unwrap();
        let beta = case["beta"].as_f64().unwrap();
        let with_old = case["with_old"].as_bool().unwrap();
        let what = format!("{lt} beta={beta} old={with_old}");
        let cfg = f.loss_cfg(lt, beta);
        let policy = Policy::from_decoder(&m.decoder).unwrap();
        let mut grads = GradAccumulator::default();
        let s: UpdateStats =
            accumulate_micro_batch(&policy, &f.sequences(&cfg, with_old), &cfg, &mut grads)
                .unwrap();
        rel_close(
            s.loss,
            case["loss"].as_f64().unwrap(),
            1e-5,
            &format!("loss {what}"),
        );
        let n = s.tokens as f64;
        rel_close(
            s.entropy_sum / n,
            case["entropy"].as_f64().unwrap(),
            1e-5,
            &format!("entropy {what}"),
        );
        if beta > 0.0 {
            rel_close(
                s.kl_sum / n,
                case["kl"].as_f64().unwrap(),
                1e-4,
                &format!("kl {what}"),
            );
        }
        rel_close(
            s.clip_low as f64 / n,
            case["clip_low"].as_f64().unwrap(),
            1e-6,
            &format!("clip low {what}"),
        );
        rel_close(
            s.clip_high as f64 / n,
            case["clip_high"].as_f64().unwrap(),
            1e-6,
            &format!("clip high {what}"),
        );
        if with_old {
            assert!(
                s.clip_low > 0 && s.clip_high > 0,
                "the fixture exercises both clip sides"
            );
        }
    }
}

fn grads_for(f: &TrlFixture, policy: &Policy) -> GradAccumulator {
    let cfg = f.loss_cfg("bnpo", 0.04);
    let mut grads = GradAccumulator::default();
    accumulate_micro_batch(policy, &f.sequences(&cfg, true), &cfg, &mut grads).unwrap();
    grads
}

#[test]
fn gradients_equal_trl() {
    let f = TrlFixture::load();
    let m = load_tiny("tiny-qwen2");
    let policy = Policy::from_decoder(&m.decoder).unwrap();
    let grads = grads_for(&f, &policy);
    for name in f.meta["grad_params"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let i = policy.names.iter().position(|n| n == name).unwrap();
        let ours = grads.get(policy.vars[i].as_tensor()).unwrap();
        let trl = &f.t[&format!("grad/{name}")];
        let scale = max_abs_diff(trl, &trl.zeros_like().unwrap());
        let diff = max_abs_diff(ours, trl);
        assert!(scale > 0.0, "{name}: TRL gradient is zero");
        assert!(
            diff <= 1e-4 * scale,
            "{name}: max |Δgrad| {diff} vs scale {scale}"
        );
    }
}

#[test]
fn two_adamw_steps_with_clipping_and_schedule_equal_torch() {
    let f = TrlFixture::load();
    let m = load_tiny("tiny-qwen2");
    let policy = Policy::from_decoder(&m.decoder).unwrap();
    let cfg = AdamWConfig {
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(policy.vars.clone(), cfg).unwrap();
    let norms = f.meta["grad_norms"].as_array().unwrap();
    let lrs = f.meta["lrs"].as_array().unwrap();
    for step in 0..2 {
        let mut grads = grads_for(&f, &policy);
        let norm = grads.clip_global_norm(0.1).unwrap();
        rel_close(
            norm,
            norms[step].as_f64().unwrap(),
            1e-4,
            "pre-clip grad norm",
        );
        let lr = lr_at(Schedule::Cosine, 1e-3, step, 10, 1);
        rel_close(
            lr.max(1e-30),
            lrs[step].as_f64().unwrap().max(1e-30),
            1e-12,
            "lr",
        );
        opt.step(&grads, lr).unwrap();
    }
    // 0.2% of the learning rate: Adam divides each gradient by its own magnitude, so the f32
    // rounding of near-zero gradient elements (~6e-8, differing by ~3e-10 between two gemm
    // summation orders) shows up in the parameters at about 1e-6.
    for (name, v) in policy.names.iter().zip(&policy.vars) {
        let trl = &f.t[&format!("after/{name}")];
        let diff = max_abs_diff(v.as_tensor(), trl);
        assert!(diff <= 2e-6, "{name}: max |Δθ| {diff}");
    }
    // The update did something (lr 1e-3 on the second step).
    let before = &m.decoder.parameters()[0].1;
    assert!(max_abs_diff(policy.vars[0].as_tensor(), before) > 1e-5);
}

/// Central finite differences in f64 on the tiny model agree with the analytic gradient.
#[test]
fn finite_difference_gradient_check_in_f64() {
    let f = TrlFixture::load();
    let m = LoadedModel::load(
        &ModelSource::HfDir(fixture("tiny-qwen2")),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let policy = Policy::from_decoder(&m.decoder).unwrap();
    let cfg = f.loss_cfg("grpo", 0.04);
    let seqs = f.sequences(&cfg, true);
    let loss_at = |p: &Policy| -> f64 {
        let mut g = GradAccumulator::default();
        accumulate_micro_batch(p, &seqs, &cfg, &mut g).unwrap().loss
    };
    let mut grads = GradAccumulator::default();
    accumulate_micro_batch(&policy, &seqs, &cfg, &mut grads).unwrap();
    let h = 1e-5;
    let mut worst = 0f64;
    for name in [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        let i = policy.names.iter().position(|n| n == name).unwrap();
        let var = &policy.vars[i];
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        // The 3 entries with the largest analytic gradient.
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &j in idx.iter().take(3) {
            let mut plus = base.clone();
            plus[j] += h;
            set_values(var, plus);
            let lp = loss_at(&policy);
            let mut minus = base.clone();
            minus[j] -= h;
            set_values(var, minus);
            let lm = loss_at(&policy);
            set_values(var, base.clone());
            let fd = (lp - lm) / (2.0 * h);
            let rel = (fd - g[j]).abs() / g[j].abs().max(1e-8);
            worst = worst.max(rel);
            assert!(
                rel <= 1e-4,
                "{name}[{j}]: finite difference {fd} vs analytic {}",
                g[j]
            );
        }
    }
    assert!(worst < 1e-4);
}

#[test]
fn every_parameter_gets_a_gradient_from_the_update() {
    let f = TrlFixture::load();
    let m = load_tiny("tiny-qwen2");
    let policy = Policy::from_decoder(&m.decoder).unwrap();
    let grads = grads_for(&f, &policy);
    for (name, v) in policy.names.iter().zip(&policy.vars) {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(norm > 0.0, "{name}: zero gradient");
    }
}

/// Sequences that share a prompt (a GRPO group) run the prompt once and attend to its keys and
/// values; the log-probs, loss and every gradient equal scoring each sequence on its own, in f32
/// (fused CPU kernels) and f64 (the composite path other devices take).
#[test]
fn a_shared_prompt_gives_the_same_logprobs_loss_and_gradients() {
    let f = TrlFixture::load();
    for dtype in [DType::F32, DType::F64] {
        let m = LoadedModel::load(
            &ModelSource::HfDir(fixture("tiny-qwen2")),
            dtype,
            &Device::Cpu,
        )
        .unwrap();
        let policy = Policy::from_decoder(&m.decoder).unwrap();
        let cfg = f.loss_cfg("bnpo", 0.04);
        let mut seqs = f.sequences(&cfg, true);
        for s in seqs.iter_mut() {
            s.prompt_ids = f.prompts[0].clone();
        }
        let scored: Vec<Sequence> = seqs
            .iter()
            .map(|s| Sequence {
                prompt_ids: &s.prompt_ids,
                completion_ids: &s.completion_ids,
            })
            .collect();
        let together = completion_logprobs(&m.decoder, &scored, 0.9).unwrap();
        for (i, s) in scored.iter().enumerate() {
            let alone = completion_logprobs(&m.decoder, std::slice::from_ref(s), 0.9).unwrap();
            for (a, b) in together[i].iter().zip(&alone[0]) {
                assert!((a - b).abs() < 1e-5, "{dtype:?} sequence {i}: {a} vs {b}");
            }
        }
        let mut shared = GradAccumulator::default();
        let stats = accumulate_micro_batch(&policy, &seqs, &cfg, &mut shared).unwrap();
        let mut separate = GradAccumulator::default();
        let mut loss = 0.0;
        for s in &seqs {
            let one = std::slice::from_ref(s);
            loss += accumulate_micro_batch(&policy, one, &cfg, &mut separate)
                .unwrap()
                .loss;
        }
        rel_close(stats.loss, loss, 1e-5, "loss");
        for (name, v) in policy.names.iter().zip(&policy.vars) {
            let (a, b) = (shared.get(v.as_tensor()), separate.get(v.as_tensor()));
            let (a, b) = (a.unwrap(), b.unwrap());
            let scale = max_abs_diff(b, &b.zeros_like().unwrap());
            let diff = max_abs_diff(a, b);
            assert!(
                diff <= 1e-4 * scale,
                "{dtype:?} {name}: {diff} vs scale {scale}"
            );
        }
    }
}
