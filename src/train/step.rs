//! One INTUITOR / GRPO training step, top to bottom (spec §4.5):
//! prompts → rollout (self-certainty fused) → rewards → advantages → reference log-probs →
//! policy update (μ × micro-batches, clip, AdamW) → metrics.

use std::time::Instant;

use anyhow::{bail, Context};

use super::metrics::Metrics;
use super::Trainer;
use crate::advantage::{frac_zero_std, group_advantages, mean_std, ScaleRewards};
use crate::data::batches::next_chunk;
use crate::logprob::{completion_logprobs, same_prompt_runs, Sequence};
use crate::loss::sequence_weights;
use crate::optim::schedule::lr_at;
use crate::optim::GradAccumulator;
use crate::reward::self_certainty::Scorer;
use crate::reward::{self, RewardInput, RewardKind};
use crate::rollout::{rollout, Completion, FinishReason, PromptRequest};
use crate::runtime;
use crate::score::score_completion;
use crate::self_certainty::Alignment;
use crate::update::{accumulate_micro_batch, UpdateSequence, UpdateStats};

/// Everything a step produced that the caller logs.
pub struct StepOutput {
    pub metrics: Metrics,
    pub completions: Vec<Completion>,
    pub texts: Vec<String>,
    pub rewards: Vec<(RewardKind, Vec<Option<f64>>)>,
    pub prompt_indices: Vec<usize>,
}

/// SplitMix64: a well-mixed seed for (run seed, step, prompt slot).
pub fn mix(seed: u64, step: usize, slot: usize) -> u64 {
    let mut z = seed
        .wrapping_add((step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add((slot as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn train_step(t: &mut Trainer) -> anyhow::Result<StepOutput> {
    let cfg = t.cfg.clone();
    let step = t.state.step;
    let g = cfg.num_generations;
    let started = Instant::now();

    // 1. Prompts: the next chunk of the seeded shuffle.
    let idx = next_chunk(
        &mut t.state.cursor,
        t.prompts.len(),
        cfg.prompts_per_step,
        cfg.seed,
        cfg.shuffle_dataset,
    );
    let requests: Vec<PromptRequest> = idx
        .iter()
        .enumerate()
        .map(|(slot, &i)| PromptRequest {
            ids: t.prompts[i].clone(),
            seed: mix(cfg.seed, step, slot),
        })
        .collect();

    // 2. Rollout from the current policy; per-token self-certainty comes out of the same pass.
    // The heap is trimmed around it, so that its buffers (KV cache, logits rows) neither stack
    // on the last update's free memory nor leave holes for the next update's activations.
    let policy_now = t.policy.detached()?;
    runtime::return_free_memory();
    let completions = rollout(
        &policy_now,
        &requests,
        &t.rollout_config(),
        Some(&t.base.tokenizer),
    )?;
    runtime::return_free_memory();
    let rollout_time = started.elapsed().as_secs_f64();

    // 3. Score.
    let texts: Vec<String> = completions
        .iter()
        .map(|c| t.base.tokenizer.decode(&c.ids, true))
        .collect::<anyhow::Result<_>>()?;
    let golds: Vec<Option<String>> = completions
        .iter()
        .map(|c| t.problems[idx[c.prompt_index]].answer.clone())
        .collect();
    let sc_policy: Vec<f64> = completions
        .iter()
        .map(|c| c.self_certainty(Alignment::Paper) as f64)
        .collect();
    let sc_reward: Vec<f64> = match cfg.sc_scorer {
        Scorer::Policy => completions
            .iter()
            .map(|c| c.self_certainty(cfg.sc_alignment) as f64)
            .collect(),
        Scorer::Frozen => {
            let stop_ids = t.base.tokenizer.stop_ids();
            completions
                .iter()
                .map(|c| {
                    let s = score_completion(
                        &t.base.decoder,
                        &requests[c.prompt_index].ids,
                        &c.ids,
                        1.0,
                        &stop_ids,
                    )?;
                    Ok(s.self_certainty(cfg.sc_alignment) as f64)
                })
                .collect::<anyhow::Result<_>>()?
        }
    };

    // 4. Rewards → per-group advantages, summed over rewards with their weights (spec §3).
    let input = RewardInput {
        completions: &completions,
        texts: &texts,
        golds: &golds,
        group: g,
        self_certainty: &sc_reward,
        seed: mix(cfg.seed, step, usize::MAX),
        answer_mode: cfg.answer_mode,
    };
    let mut advantages = vec![0.0; completions.len()];
    let mut combined = vec![Some(0.0); completions.len()];
    let mut rewards = Vec::new();
    for (&kind, &w) in cfg.reward_funcs.iter().zip(&cfg.reward_weights) {
        let r = reward::compute(kind, &input);
        if w != 0.0 {
            // The self-certainty advantage is always divided by the group std (S1 ignores
            // scale_rewards for it, spec §3 step 3).
            let scale = if kind == RewardKind::SelfCertainty {
                ScaleRewards::Group
            } else {
                cfg.scale_rewards
            };
            for (a, x) in advantages.iter_mut().zip(group_advantages(&r, g, scale)) {
                *a += w * x;
            }
            for (c, x) in combined.iter_mut().zip(&r) {
                *c = match (*c, x) {
                    (Some(c), Some(x)) => Some(c + w * x),
                    _ => None,
                };
            }
        }
        rewards.push((kind, r));
    }

    // 5. Reference log-probs (β > 0), on logits / T like the policy's (spec §4.1). Forward
    // passes run per prompt group with the prompt computed once (`PackedBatch`), up to 2 × mb
    // sequences: about the activation memory of mb sequences that each carry their own prompt.
    let mb = cfg.per_device_train_batch_size;
    let prompt_of: Vec<usize> = completions.iter().map(|c| c.prompt_index).collect();
    let forward_batches = same_prompt_runs(&prompt_of, 2 * mb);
    let seqs: Vec<Sequence> = completions
        .iter()
        .map(|c| Sequence {
            prompt_ids: &requests[c.prompt_index].ids,
            completion_ids: &c.ids[..c.mask_len],
        })
        .collect();
    let ref_logps: Option<Vec<Vec<f32>>> = if cfg.beta != 0.0 {
        let reference = &t.base.decoder;
        let mut all = Vec::with_capacity(seqs.len());
        for range in &forward_batches {
            all.extend(completion_logprobs(
                reference,
                &seqs[range.clone()],
                cfg.temperature as f64,
            )?);
        }
        Some(all)
    } else {
        None
    };

    // 6. Policy update: μ passes over the rollout, each one optimizer step over the micro-batches
    // in order (spec §4.3 step 8).
    let update_started = Instant::now();
    let loss_cfg = t.loss_config();
    let num_items: usize = completions.iter().map(|c| c.mask_len).sum();
    let (mut stats, mut grad_norm, mut lr) = (UpdateStats::default(), 0.0, 0.0);
    // Loss weights follow TRL's micro-batches of `mb` sequences; the loss is a weighted sum over
    // sequences, so the forward passes may group them differently (by prompt) and the
    // gradient stays exactly the same.
    let mut weights = Vec::with_capacity(completions.len());
    for chunk in completions.chunks(mb) {
        let lens: Vec<usize> = chunk.iter().map(|c| c.mask_len).collect();
        weights.extend(sequence_weights(
            &lens,
            &loss_cfg,
            cfg.grad_accum(),
            num_items,
        ));
    }
    let batch: Vec<UpdateSequence> = completions
        .iter()
        .enumerate()
        .map(|(k, c)| UpdateSequence {
            prompt_ids: requests[c.prompt_index].ids.clone(),
            completion_ids: c.ids[..c.mask_len].to_vec(),
            advantage: advantages[k],
            old_logps: (cfg.num_iterations > 1).then(|| c.logprobs[..c.mask_len].to_vec()),
            ref_logps: ref_logps.as_ref().map(|r| r[k].clone()),
            weight: weights[k],
        })
        .collect();
    for iteration in 0..cfg.num_iterations {
        let mut grads = GradAccumulator::default();
        stats = UpdateStats::default();
        for (m, range) in forward_batches.iter().enumerate() {
            let s = accumulate_micro_batch(
                &t.policy,
                &batch[range.clone()],
                &loss_cfg,
                cfg.temperature as f64,
                &mut grads,
            )
            .with_context(|| {
                format!(
                    "step {}, iteration {iteration}, sequences {}..{} (forward batch {m})",
                    step + 1,
                    range.start,
                    range.end
                )
            })?;
            stats.merge(&s);
        }
        grad_norm = grads.clip_global_norm(cfg.max_grad_norm)?;
        if !grad_norm.is_finite() {
            bail!(
                "step {}: the gradient norm is {grad_norm} (NaN/Inf); not applying the update",
                step + 1
            );
        }
        lr = lr_at(
            cfg.lr_scheduler_type,
            cfg.learning_rate,
            t.state.optimizer_step,
            t.total_optimizer_steps(),
            t.warmup,
        );
        t.opt.step(&grads, lr)?;
        t.state.optimizer_step += 1;
    }
    let update_time = update_started.elapsed().as_secs_f64();
    t.state.step += 1;

    // 7. Metrics (TRL / open-r1 names, spec §8.4).
    let mut m = Metrics::new();
    let lens: Vec<f64> = completions.iter().map(|c| c.ids.len() as f64).collect();
    let n = stats.tokens.max(1) as f64;
    let group_means_stds: Vec<(f64, f64)> = combined
        .chunks(g)
        .map(|grp| mean_std(&grp.iter().flatten().copied().collect::<Vec<_>>()))
        .collect();
    m.insert("step".into(), t.state.step as f64);
    m.insert("learning_rate".into(), lr);
    m.insert("loss".into(), stats.loss);
    m.insert("grad_norm".into(), grad_norm);
    m.insert("kl".into(), stats.kl_sum / n);
    m.insert("entropy".into(), stats.entropy_sum / n);
    m.insert("clip_ratio/low_mean".into(), stats.clip_low as f64 / n);
    m.insert("clip_ratio/high_mean".into(), stats.clip_high as f64 / n);
    m.insert(
        "clip_ratio/region_mean".into(),
        (stats.clip_low + stats.clip_high) as f64 / n,
    );
    m.insert(
        "reward".into(),
        group_means_stds.iter().map(|x| x.0).sum::<f64>() / group_means_stds.len().max(1) as f64,
    );
    m.insert(
        "reward_std".into(),
        group_means_stds.iter().map(|x| x.1).sum::<f64>() / group_means_stds.len().max(1) as f64,
    );
    m.insert("frac_reward_zero_std".into(), frac_zero_std(&combined, g));
    for (kind, r) in &rewards {
        let present: Vec<f64> = r.iter().flatten().copied().collect();
        if !present.is_empty() {
            let (mean, std) = mean_std(&present);
            m.insert(format!("rewards/{}/mean", kind.name()), mean);
            m.insert(format!("rewards/{}/std", kind.name()), std);
        }
    }
    let (sc_mean, sc_std) = mean_std(&sc_policy);
    m.insert("self_certainty/mean".into(), sc_mean);
    m.insert("self_certainty/std".into(), sc_std);
    let (len_mean, _) = mean_std(&lens);
    m.insert("completions/mean_length".into(), len_mean);
    m.insert(
        "completions/min_length".into(),
        lens.iter().copied().fold(f64::INFINITY, f64::min),
    );
    m.insert(
        "completions/max_length".into(),
        lens.iter().copied().fold(0.0, f64::max),
    );
    let clipped = completions
        .iter()
        .filter(|c| c.finish_reason == FinishReason::Length)
        .count();
    m.insert(
        "completions/clipped_ratio".into(),
        clipped as f64 / completions.len().max(1) as f64,
    );
    let prompt_tokens: usize = completions
        .iter()
        .map(|c| requests[c.prompt_index].ids.len())
        .sum();
    t.num_tokens += prompt_tokens + num_items;
    m.insert("num_tokens".into(), t.num_tokens as f64);
    let generated: usize = completions.iter().map(|c| c.ids.len()).sum();
    m.insert(
        "rollout_tokens_per_s".into(),
        generated as f64 / rollout_time.max(1e-9),
    );
    m.insert(
        "train_tokens_per_s".into(),
        ((prompt_tokens + num_items) * cfg.num_iterations) as f64 / update_time.max(1e-9),
    );
    m.insert("rollout_time".into(), rollout_time);
    m.insert("update_time".into(), update_time);
    m.insert("step_time".into(), started.elapsed().as_secs_f64());
    Ok(StepOutput {
        metrics: m,
        completions,
        texts,
        rewards,
        prompt_indices: idx,
    })
}
