//! The checks printed before training: the memory plan's peak and the truncation rate of a few
//! sampled completions at `max_completion_length` (a known silent failure in TRL: most
//! completions cut off, so the reward sees no answers).

use super::Trainer;
use crate::rollout::{rollout, FinishReason, PromptRequest};

impl Trainer {
    /// The memory plan's peak and a sampled truncation rate at `max_completion_length` (a known silent
    /// failure in TRL: most completions cut off, so the reward sees no answers).
    pub fn preflight(&self) -> anyhow::Result<String> {
        let cfg = &self.cfg;
        let (phase, peak) = self.memory_plan.peak();
        let sample: Vec<PromptRequest> = self
            .prompts
            .iter()
            .take(4)
            .enumerate()
            .map(|(i, p)| PromptRequest {
                ids: p.clone(),
                seed: i as u64,
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
        let mut report = format!(
            "preflight: memory plan peak {} ({phase}; `intuitor plan` prints every phase); {:.0}% of {} sampled completions hit max_completion_length = {}",
            super::plan::gib(peak),
            rate * 100.0,
            outs.len(),
            cfg.max_completion_length
        );
        if rate > 0.5 {
            report.push_str("\nWARNING: most completions are truncated; rewards will see few finished answers. Raise max_completion_length.");
        }
        Ok(report)
    }
}
