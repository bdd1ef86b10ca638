//! Activation recompute (`gradient_checkpointing`, issue 16) gives the gradients, loss and
//! metrics of the plain update, for a left-padded batch and for completions sharing a prompt.

mod common;

use candle_core::DType;
use common::*;
use intuitor::loss::{sequence_weights, LossConfig};
use intuitor::policy::Policy;
use intuitor::update::{accumulate_micro_batch, UpdateSequence, UpdateStats};

fn batch(prompts: &[Vec<u32>], completions: &[Vec<u32>]) -> (Vec<UpdateSequence>, LossConfig) {
    let cfg = bnpo_with_kl();
    let lens: Vec<usize> = completions.iter().map(Vec::len).collect();
    let w = sequence_weights(&lens, &cfg, 1, 0);
    let seqs = (0..prompts.len())
        .map(|i| UpdateSequence {
            prompt_ids: prompts[i].clone(),
            completion_ids: completions[i].clone(),
            advantage: [1.0, -0.5, 0.25, -0.75][i % 4],
            // Old log-probs away from the current ones, so the clipped branch is exercised
            // (periodic, so the ratios of long completions stay finite).
            old_logps: Some((0..lens[i]).map(|k| -3.0 - 0.1 * (k % 10) as f32).collect()),
            ref_logps: Some(
                (0..lens[i])
                    .map(|k| -2.5 - 0.05 * (k % 10) as f32)
                    .collect(),
            ),
            weight: w[i],
        })
        .collect();
    (seqs, cfg)
}

/// Gradients (relative to each parameter's scale), loss and metrics with and without
/// recompute.
fn compare(seqs: &[UpdateSequence], cfg: &LossConfig, dtype: DType, tol: f32) {
    let m = load_tiny("tiny-qwen2");
    let run = |recompute: bool| {
        let mut policy = Policy::mixed(&m.decoder, dtype).unwrap();
        policy.gradient_checkpointing = recompute;
        let mut grads = policy.grad_accumulator();
        let stats = accumulate_micro_batch(&policy, seqs, cfg, &mut grads).unwrap();
        let g: Vec<_> = policy
            .vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect();
        (policy.names.clone(), g, stats)
    };
    let (names, plain, s0): (_, _, UpdateStats) = run(false);
    let (_, again, s1) = run(true);
    assert!((s0.loss - s1.loss).abs() <= 1e-6 * s0.loss.abs().max(1e-6));
    assert_eq!(
        (s0.tokens, s0.clip_low, s0.clip_high),
        (s1.tokens, s1.clip_low, s1.clip_high)
    );
    assert!((s0.kl_sum - s1.kl_sum).abs() <= 1e-5 * s0.kl_sum.abs().max(1e-6));
    let mut checked = 0;
    for ((name, a), b) in names.iter().zip(&plain).zip(&again) {
        match (a, b) {
            (Some(a), Some(b)) => {
                let scale = max_abs_diff(a, &a.zeros_like().unwrap());
                let diff = max_abs_diff(a, b);
                assert!(
                    diff <= tol * scale.max(1e-12),
                    "{name}: |Δ| {diff} vs scale {scale}"
                );
                checked += 1;
            }
            (None, None) => {}
            _ => panic!("{name}: a gradient on one side only"),
        }
    }
    assert_eq!(checked, names.len(), "every parameter gets a gradient");
}

#[test]
fn recompute_gives_the_plain_gradients_for_a_left_padded_batch() {
    let prompts = [
        vec![5u32, 6, 7, 8, 9, 10, 11],
        vec![12, 13],
        vec![14, 15, 16],
    ];
    let completions = [vec![20u32, 21, 22], vec![23, 24, 25, 26, 27], vec![28]];
    let (seqs, cfg) = batch(&prompts, &completions);
    compare(&seqs, &cfg, DType::F32, 1e-6);
}

#[test]
fn recompute_gives_the_plain_gradients_for_completions_sharing_a_prompt() {
    let p = vec![5u32, 6, 7, 8, 9, 10, 11];
    let prompts = [p.clone(), p.clone(), p.clone(), vec![40, 41]];
    let completions = [
        vec![20u32, 21, 22],
        vec![23, 24, 25, 26, 27],
        vec![28],
        vec![30, 31],
    ];
    let (seqs, cfg) = batch(&prompts, &completions);
    compare(&seqs, &cfg, DType::F32, 1e-6);
    // And in bf16, where the layers run through candle's composite ops.
    compare(&seqs, &cfg, DType::BF16, 2e-2);
}

#[test]
fn recompute_gives_the_plain_gradients_through_blocked_attention() {
    // Sequences past two query blocks attend block by block (`kernels::blocked`), with the
    // scores recomputed in the backward; recompute re-runs that too and must still match.
    let n = 2 * intuitor::kernels::QUERY_BLOCK + 8;
    assert!(intuitor::kernels::blocked(n));
    let tokens =
        |len: usize, from: u32| -> Vec<u32> { (0..len as u32).map(|i| from + i % 50).collect() };
    // A left-padded batch whose longest row is blocked, the other row short.
    let prompts = [tokens(n, 5), tokens(3, 60)];
    let completions = [vec![20u32, 21, 22], tokens(6, 70)];
    let (seqs, cfg) = batch(&prompts, &completions);
    compare(&seqs, &cfg, DType::F32, 1e-6);
    // Completions sharing a short prompt, one of them long: it attends to the prompt's keys
    // and its own through the blocked path.
    let p = tokens(5, 5);
    let prompts = [p.clone(), p.clone()];
    let completions = [tokens(n, 60), vec![23u32, 24]];
    let (seqs, cfg) = batch(&prompts, &completions);
    compare(&seqs, &cfg, DType::F32, 1e-6);
}
