//! One INTUITOR / GRPO training step, top to bottom (spec §4.5):
//! prompts → rollout (self-certainty fused) → rewards → advantages → reference log-probs →
//! policy update (μ × micro-batches, clip, AdamW) → metrics.

use std::ops::Range;
use std::time::Instant;

use anyhow::{bail, Context};

use super::metrics::{step_metrics, Metrics, StepRecord};
use super::Trainer;
use crate::advantage::{self, WeightedReward};
use crate::data::batches::next_chunk;
use crate::data::code::CodeTask;
use crate::logprob::batched_completion_logprobs;
use crate::loss::batch_weights;
use crate::packing::{same_prompt_runs, Sequence};
use crate::reward::{self, RewardInput, RewardKind};
use crate::rollout::{rollout, Completion, PromptRequest};
use crate::runtime;
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

/// One step (spec §4.5), as a list of phases.
pub fn train_step(t: &mut Trainer) -> anyhow::Result<StepOutput> {
    let cfg = t.cfg.clone();
    let (step, g) = (t.state.step, cfg.num_generations);
    let started = Instant::now();

    // 1. Prompts: the next chunk of the seeded shuffle.
    let idx = next_chunk(
        &mut t.state.cursor,
        t.prompts.len(),
        cfg.prompts_per_step,
        cfg.seed,
        cfg.shuffle_dataset,
    );
    let requests = prompt_requests(&t.prompts, &idx, cfg.seed, step);

    // 2. Rollout from the current policy; per-token self-certainty comes out of the same pass.
    // The heap is trimmed around it, so that its buffers (KV cache, logits rows) neither stack
    // on the last update's free memory nor leave holes for the next update's activations.
    let policy_now = t.policy.detached()?;
    runtime::return_free_memory();
    let tokenizer = &t.base.tokenizer;
    let completions = rollout(&policy_now, &requests, &t.run.rollout, Some(tokenizer))
        .with_context(|| format!("step {}: rollout", step + 1))?;
    runtime::return_free_memory();
    let rollout_time = started.elapsed().as_secs_f64();

    // 3. Self-certainty: the policy's for the metrics; the reward's from the configured scorer.
    let texts: Vec<String> = completions
        .iter()
        .map(|c| tokenizer.decode(&c.ids, true))
        .collect::<anyhow::Result<_>>()?;
    let sc_policy: Vec<f64> = completions
        .iter()
        .map(|c| c.self_certainty(Alignment::Paper) as f64)
        .collect();
    let sc_reward = reward::self_certainty::scores(
        cfg.sc_scorer,
        cfg.sc_alignment,
        &completions,
        &requests,
        &t.base.decoder,
        &t.run.rollout.stop_ids,
    )?;

    // 4. Rewards, then advantages: each reward normalised in its group, weighted and summed
    // (spec §3).
    let golds: Vec<Option<String>> = completions
        .iter()
        .map(|c| t.problems[idx[c.prompt_index]].answer.clone())
        .collect();
    let tasks: Vec<Option<&CodeTask>> = completions
        .iter()
        .map(|c| t.problems[idx[c.prompt_index]].task.as_ref())
        .collect();
    let input = RewardInput {
        completions: &completions,
        texts: &texts,
        golds: &golds,
        group: g,
        self_certainty: &sc_reward,
        seed: mix(cfg.seed, step, usize::MAX),
        checker: cfg.checker(),
        tasks: &tasks,
        sandbox: t.sandbox.as_ref(),
        jobs: cfg.parallel_code_exec_per_proc,
    };
    let rewards: Vec<(RewardKind, Vec<Option<f64>>)> = cfg
        .reward_funcs
        .iter()
        .map(|&kind| Ok((kind, reward::compute(kind, &input)?)))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("step {}: rewards", step + 1))?;
    let weighted: Vec<WeightedReward> = rewards
        .iter()
        .zip(&cfg.reward_weights)
        .map(|((kind, values), &weight)| WeightedReward {
            values,
            weight,
            scale: kind.advantage_scale(cfg.scale_rewards),
        })
        .collect();
    let (advantages, combined) = advantage::combine(&weighted, completions.len(), g);
    check_finite(&rewards, &advantages, step)?;

    // 5. Reference log-probs (β ≠ 0), on logits / T like the policy's (spec §4.1). Forward
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
    let ref_logps = match t.run.loss.uses_reference() {
        true => Some(batched_completion_logprobs(
            &t.base.decoder,
            &seqs,
            &forward_batches,
            t.run.loss.temperature,
        )?),
        false => None,
    };

    // 6. Loss weights: TRL's micro-batches of `mb` sequences. The loss is a weighted sum over
    // sequences, so the forward passes may group them differently (by prompt) and the
    // gradient stays exactly the same.
    let num_items: usize = completions.iter().map(|c| c.mask_len).sum();
    let lens: Vec<usize> = completions.iter().map(|c| c.mask_len).collect();
    let weights = batch_weights(&lens, mb, &t.run.loss, cfg.grad_accum(), num_items);
    let old_logps = cfg.num_iterations > 1;
    let batch = update_batch(
        &completions,
        &requests,
        &advantages,
        ref_logps,
        &weights,
        old_logps,
    );

    // 7. Policy update: μ passes over the rollout, each one optimizer step.
    let update_started = Instant::now();
    let update = update_policy(t, &batch, &forward_batches)?;
    let update_time = update_started.elapsed().as_secs_f64();
    t.state.step += 1;

    // 8. Metrics (TRL / open-r1 names, spec §8.4).
    let prompt_tokens: usize = completions
        .iter()
        .map(|c| requests[c.prompt_index].ids.len())
        .sum();
    t.num_tokens += prompt_tokens + num_items;
    let metrics = step_metrics(&StepRecord {
        step: t.state.step,
        learning_rate: update.learning_rate,
        stats: &update.stats,
        grad_norm: update.grad_norm,
        completions: &completions,
        group: g,
        combined: &combined,
        rewards: &rewards,
        self_certainty: &sc_policy,
        num_tokens: t.num_tokens,
        step_tokens: prompt_tokens + num_items,
        num_iterations: cfg.num_iterations,
        rollout_time,
        update_time,
        step_time: started.elapsed().as_secs_f64(),
    });
    Ok(StepOutput {
        metrics,
        completions,
        texts,
        rewards,
        prompt_indices: idx,
    })
}

/// Stops on a NaN or infinite reward (naming it) or advantage: training on one would move the
/// weights by an undefined amount.
fn check_finite(
    rewards: &[(RewardKind, Vec<Option<f64>>)],
    advantages: &[f64],
    step: usize,
) -> anyhow::Result<()> {
    for (kind, values) in rewards {
        if let Some(i) = values
            .iter()
            .position(|r| r.is_some_and(|x| !x.is_finite()))
        {
            bail!(
                "step {}: the {} reward of completion {i} is not finite (NaN/Inf)",
                step + 1,
                kind.name()
            );
        }
    }
    if let Some(i) = advantages.iter().position(|a| !a.is_finite()) {
        bail!(
            "step {}: the advantage of completion {i} is not finite (NaN/Inf)",
            step + 1
        );
    }
    Ok(())
}

/// The step's prompts: dataset prompts `idx`, each with its own seed for its G streams.
fn prompt_requests(
    prompts: &[Vec<u32>],
    idx: &[usize],
    seed: u64,
    step: usize,
) -> Vec<PromptRequest> {
    idx.iter()
        .enumerate()
        .map(|(slot, &i)| PromptRequest {
            ids: prompts[i].clone(),
            seed: mix(seed, step, slot),
            max_new_tokens: None,
        })
        .collect()
}

/// The update's sequences: each completion (cut at its mask) after its prompt, with its
/// advantage, loss weight, reference log-probs and, for μ > 1 (`old_logps`), the rollout's
/// log-probs as the old policy's.
fn update_batch(
    completions: &[Completion],
    requests: &[PromptRequest],
    advantages: &[f64],
    ref_logps: Option<Vec<Vec<f32>>>,
    weights: &[f64],
    old_logps: bool,
) -> Vec<UpdateSequence> {
    let mut refs = ref_logps.map(Vec::into_iter);
    completions
        .iter()
        .enumerate()
        .map(|(k, c)| UpdateSequence {
            prompt_ids: requests[c.prompt_index].ids.clone(),
            completion_ids: c.ids[..c.mask_len].to_vec(),
            advantage: advantages[k],
            old_logps: old_logps.then(|| c.logprobs[..c.mask_len].to_vec()),
            ref_logps: refs.as_mut().and_then(Iterator::next),
            weight: weights[k],
        })
        .collect()
}

/// What the policy update reports: the last pass's statistics, gradient norm (before
/// clipping) and learning rate.
struct UpdateOutcome {
    stats: UpdateStats,
    grad_norm: f64,
    learning_rate: f64,
}

/// μ = `num_iterations` passes over `batch`, each one optimizer step over the forward batches
/// in order (spec §4.3 step 8): gradients accumulated, clipped, then AdamW at the schedule's
/// learning rate. A non-finite gradient norm stops before the update is applied.
fn update_policy(
    t: &mut Trainer,
    batch: &[UpdateSequence],
    forward_batches: &[Range<usize>],
) -> anyhow::Result<UpdateOutcome> {
    let step = t.state.step;
    let mut out = UpdateOutcome {
        stats: UpdateStats::default(),
        grad_norm: 0.0,
        learning_rate: 0.0,
    };
    for iteration in 0..t.cfg.num_iterations {
        let mut grads = t.policy.grad_accumulator();
        out.stats = UpdateStats::default();
        for (m, range) in forward_batches.iter().enumerate() {
            let s =
                accumulate_micro_batch(&t.policy, &batch[range.clone()], &t.run.loss, &mut grads)
                    .with_context(|| {
                    format!(
                        "step {}, iteration {iteration}, sequences {}..{} (forward batch {m})",
                        step + 1,
                        range.start,
                        range.end
                    )
                })?;
            out.stats.merge(&s);
        }
        out.grad_norm = grads.clip_global_norm(t.cfg.max_grad_norm)?;
        if !out.grad_norm.is_finite() {
            bail!(
                "step {}: the gradient norm is {} (NaN/Inf); not applying the update",
                step + 1,
                out.grad_norm
            );
        }
        out.learning_rate = t.run.schedule.at(t.state.optimizer_step);
        t.opt.step(&grads, out.learning_rate)?;
        if let Some(name) = t.policy.first_non_finite()? {
            bail!(
                "step {}: the weights are not finite (NaN/Inf) after the optimizer step (first: {name}); they are not saved",
                step + 1
            );
        }
        t.policy.sync_compute()?;
        t.state.optimizer_step += 1;
    }
    Ok(out)
}
