//! The checks printed before training: a memory estimate and the truncation rate of a few
//! sampled completions at `max_completion_length` (a known silent failure in TRL: most
//! completions cut off, so the reward sees no answers).

use super::Trainer;
use crate::rollout::{rollout, FinishReason, PromptRequest};

impl Trainer {
    /// Memory estimate and a sampled truncation rate at `max_completion_length` (a known silent
    /// failure in TRL: most completions cut off, so the reward sees no answers).
    pub fn preflight(&self) -> anyhow::Result<String> {
        let params = self.policy.decoder.num_parameters() as f64;
        let copies = 5.0; // initial weights, trained weights, grads, 2 AdamW moments
        let cfg = &self.cfg;
        let vocab = self.policy.config().vocab_size as f64;
        let chunk = crate::logprob::CHUNK_ROWS as f64;
        let act = (cfg.per_device_train_batch_size
            * (cfg.max_prompt_length + cfg.max_completion_length)) as f64
            * self.policy.config().hidden_size as f64
            * self.policy.config().num_hidden_layers as f64
            * 20.0;
        let gib = (params * copies + act + chunk * vocab * 6.0) * 4.0 / (1u64 << 30) as f64;
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
            "preflight: ~{gib:.1} GiB estimated; {:.0}% of {} sampled completions hit max_completion_length = {}",
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
