//! Cross-field checks of a [`TrainConfig`], each error naming the keys involved (TRL-style
//! messages), run after loading and before anything is built.

use super::{ByteSize, Invalid, TrainConfig};
use crate::reward::RewardKind;

impl TrainConfig {
    /// Cross-field checks with TRL-style messages; each names the keys involved.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(Err(e)) = self.rollout_kv_budget.as_ref().map(ByteSize::bytes) {
            return Err(Invalid::new(&["rollout_kv_budget"], e));
        }
        if !(1..=3600).contains(&self.code_timeout) {
            return Err(Invalid::new(
                &["code_timeout"],
                format!("must be 1 to 3600 seconds, got {}", self.code_timeout),
            ));
        }
        if self.parallel_code_exec_per_proc == 0 {
            return Err(Invalid::new(
                &["parallel_code_exec_per_proc"],
                "must be at least 1",
            ));
        }
        if self.tests_field.is_some() && ["demo", "mbpp"].contains(&self.dataset.as_str()) {
            return Err(Invalid::new(
                &["tests_field", "dataset"],
                format!(
                    "dataset = {:?} brings its own tests (or none); tests_field is for a file",
                    self.dataset
                ),
            ));
        }
        if self.reward_funcs.iter().any(RewardKind::needs_tests)
            && self.tests_field.is_none()
            && self.dataset != "mbpp"
        {
            return Err(Invalid::new(
                &["tests_field", "reward_funcs", "dataset"],
                "the code_tests rewards need tests_field (the dataset field with each problem's tests), or dataset = \"mbpp\"",
            ));
        }
        if !["auto", "f32", "bf16", "f16"].contains(&self.save_dtype.as_str()) {
            return Err(Invalid::new(
                &["save_dtype"],
                format!(
                    "expected \"auto\", \"f32\", \"bf16\" or \"f16\", got {:?}",
                    self.save_dtype
                ),
            ));
        }
        if self.answer_precision > crate::answer::MAX_PRECISION {
            return Err(Invalid::new(
                &["answer_precision"],
                format!(
                    "must be at most {} decimals, got {}",
                    crate::answer::MAX_PRECISION,
                    self.answer_precision
                ),
            ));
        }
        if self.num_generations < 2 {
            return Err(Invalid::new(
                &["num_generations"],
                format!(
                    "must be at least 2 (advantages are relative within a group), got {}",
                    self.num_generations
                ),
            ));
        }
        if self.prompts_per_step == 0 {
            return Err(Invalid::new(&["prompts_per_step"], "must be positive"));
        }
        if self.per_device_train_batch_size == 0 {
            return Err(Invalid::new(
                &["per_device_train_batch_size"],
                "must be positive",
            ));
        }
        let completions = self.prompts_per_step * self.num_generations;
        if !completions.is_multiple_of(self.per_device_train_batch_size) {
            return Err(Invalid::new(
                &[
                    "per_device_train_batch_size",
                    "prompts_per_step",
                    "num_generations",
                ],
                format!(
                    "prompts_per_step × num_generations ({} × {} = {completions}) must be divisible by per_device_train_batch_size ({})",
                    self.prompts_per_step, self.num_generations, self.per_device_train_batch_size
                ),
            ));
        }
        if self.reward_funcs.is_empty() {
            return Err(Invalid::new(&["reward_funcs"], "is empty"));
        }
        if self.reward_weights.len() != self.reward_funcs.len() {
            return Err(Invalid::new(
                &["reward_weights", "reward_funcs"],
                format!(
                    "reward_weights has {} entries for {} reward_funcs",
                    self.reward_weights.len(),
                    self.reward_funcs.len()
                ),
            ));
        }
        if self.max_completion_length == 0 {
            return Err(Invalid::new(&["max_completion_length"], "must be positive"));
        }
        if self.max_prompt_length == 0 {
            return Err(Invalid::new(&["max_prompt_length"], "must be positive"));
        }
        if let Err((key, msg)) = self.sampling().check() {
            return Err(Invalid::new(key, msg));
        }
        if self.num_iterations == 0 {
            return Err(Invalid::new(&["num_iterations"], "must be at least 1"));
        }
        if self.learning_rate < 0.0 {
            return Err(Invalid::new(
                &["learning_rate"],
                format!("must be ≥ 0, got {}", self.learning_rate),
            ));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(Invalid::new(
                &["warmup_ratio"],
                format!("must be in [0, 1], got {}", self.warmup_ratio),
            ));
        }
        if self.reward_funcs.contains(&RewardKind::Accuracy)
            && self.dataset != "demo"
            && self.answer_field.is_none()
        {
            return Err(Invalid::new(
                &["answer_field", "reward_funcs", "dataset"],
                "the accuracy reward needs answer_field (the dataset field with the gold answer)",
            ));
        }
        Ok(())
    }
}
