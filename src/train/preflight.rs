//! The checks printed before training: the memory plan's peak and the truncation rate of a few
//! sampled completions at `max_completion_length` (a known silent failure in TRL: most
//! completions cut off, so the reward sees no answers).

use super::Trainer;
use crate::rollout::{rollout, FinishReason, PromptRequest};

/// Prompts sampled (twice each) for the truncation check: 16 completions put a ±25-point
/// interval on the rate, enough to tell "most" from "few".
const PREFLIGHT_PROMPTS: usize = 8;

impl Trainer {
    /// The memory plan's peak and a sampled truncation rate at `max_completion_length` (a known silent
    /// failure in TRL: most completions cut off, so the reward sees no answers).
    pub fn preflight(&self) -> anyhow::Result<String> {
        let cfg = &self.cfg;
        let (phase, peak) = self.memory_plan.peak();
        let sample: Vec<PromptRequest> = self
            .prompts
            .iter()
            .take(PREFLIGHT_PROMPTS)
            .enumerate()
            .map(|(i, p)| PromptRequest {
                ids: p.clone(),
                seed: i as u64,
                max_new_tokens: None,
            })
            .collect();
        let mut rc = self.run.rollout.clone();
        rc.num_generations = 2;
        let outs = rollout(
            &self.policy.detached()?,
            &sample,
            &rc,
            Some(&self.base.tokenizer),
        )?;
        let truncated = outs
            .iter()
            .filter(|c| c.finish_reason == FinishReason::Length)
            .count();
        let rate = truncated as f64 / outs.len().max(1) as f64;
        let (lo, hi) = crate::eval::stats::wilson_95(truncated, outs.len());
        let mut report = format!(
            "preflight: memory plan peak {} ({phase}; `intuitor plan` prints every phase); {truncated} of {} sampled completions ({:.0}%, 95% interval {:.0}–{:.0}%) hit max_completion_length = {}",
            super::plan::gib(peak),
            outs.len(),
            rate * 100.0,
            lo * 100.0,
            hi * 100.0,
            cfg.max_completion_length
        );
        // Warn only when the sample shows it: most completions truncated beyond its noise.
        if lo > 0.5 {
            report.push_str("\nWARNING: most completions are truncated; rewards will see few finished answers. Raise max_completion_length.");
        }
        Ok(report)
    }
}
