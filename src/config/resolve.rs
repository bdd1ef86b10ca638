//! The run's settings as the components take them, built once from a [`TrainConfig`]: the
//! rollout's sampling, the loss, the optimizer and the learning-rate schedule. The sampling
//! temperature travels inside the rollout and loss configs (spec §4.1: log-probs are taken under
//! logits / T, as sampled).

use std::collections::BTreeSet;

use super::TrainConfig;
use crate::loss::LossConfig;
use crate::optim::schedule::{warmup_steps, LrSchedule};
use crate::optim::AdamWConfig;
use crate::rollout::RolloutConfig;
use crate::self_certainty::Alignment;

/// See the module doc.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub rollout: RolloutConfig,
    pub loss: LossConfig,
    pub adamw: AdamWConfig,
    pub schedule: LrSchedule,
}

impl TrainConfig {
    /// The components' configs for a run of `total_steps` steps whose completions stop at
    /// `stop_ids` (the tokenizer's).
    pub fn resolve(&self, stop_ids: BTreeSet<u32>, total_steps: usize) -> Resolved {
        let updates = total_steps * self.num_iterations;
        Resolved {
            rollout: RolloutConfig {
                num_generations: self.num_generations,
                max_new_tokens: self.max_completion_length,
                sampling: self.sampling(),
                stop_ids,
                stop_strings: self.stop_strings.clone(),
                keep_after_last: self.sc_alignment == Alignment::Openr1,
                // Validated with the config.
                kv_budget: self.rollout_kv_budget.as_ref().and_then(|b| b.bytes().ok()),
                prefill_batch: None,
            },
            loss: LossConfig {
                loss_type: self.loss_type,
                beta: self.beta,
                epsilon_low: self.epsilon,
                epsilon_high: self.epsilon_high.unwrap_or(self.epsilon),
                max_completion_length: self.max_completion_length,
                temperature: self.temperature as f64,
                kl_bias_correction: self.use_bias_correction_kl,
            },
            adamw: AdamWConfig {
                beta1: self.adam_beta1,
                beta2: self.adam_beta2,
                eps: self.adam_epsilon,
                weight_decay: self.weight_decay,
            },
            schedule: LrSchedule {
                kind: self.lr_scheduler_type,
                learning_rate: self.learning_rate,
                total: updates,
                warmup: warmup_steps(updates, self.warmup_ratio),
            },
        }
    }
}
