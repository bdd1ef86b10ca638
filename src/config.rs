//! `intuitor train` configuration: one TOML table whose keys follow TRL `GRPOConfig` /
//! open-r1-intuitor names and whose defaults are the reference INTUITOR MATH run (spec §7.1,
//! §7.3: lr 3e-6, β 0.005, G 7, T 0.9, top-k 50, bnpo, cosine with 10% warmup, weight decay 0,
//! clip 1.0, seed 7). Files set keys, `--set key=value` overrides them; unknown keys and bad
//! values are errors naming the key.
//!
//! Differences from current TRL (spec §8.3): TRL ≥ 0.18.0 defaults to T 1.0 and no top-k, ≥ 0.19 to
//! β 0, ≥ 0.22 to `dapo`; candle's AdamW defaults to weight decay 0.01. The values here are the
//! ones the paper's run used.

mod resolve;

use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::advantage::ScaleRewards;
use crate::answer::Mode;
use crate::loss::LossType;
use crate::optim::schedule::Schedule;
use crate::reward::self_certainty::Scorer;
use crate::reward::RewardKind;
use crate::self_certainty::Alignment;

pub use resolve::Resolved;

/// What to do with prompts longer than `max_prompt_length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptOverflow {
    /// Skip them (counted in the log).
    Drop,
    /// Keep the last `max_prompt_length` tokens, as TRL does.
    TruncateLeft,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    // --- model and data ---
    /// `default`, an HF directory or a .gguf file.
    pub model: String,
    /// `demo` (built-in arithmetic problems) or a .jsonl/.csv/.parquet path.
    pub dataset: String,
    pub prompt_field: String,
    /// Field with the gold answer (needed by the `accuracy` reward; `demo` has one).
    pub answer_field: Option<String>,
    /// System message placed before every prompt.
    pub system_prompt: Option<String>,
    pub max_prompt_length: usize,
    pub prompt_overflow: PromptOverflow,
    pub shuffle_dataset: bool,
    /// Held-out demo problems evaluated greedily before and after training (0 = skip).
    pub eval_holdout: usize,
    /// New tokens for that evaluation.
    pub eval_max_new_tokens: usize,

    // --- generation (spec §4.3 step 4) ---
    /// G, completions per prompt.
    pub num_generations: usize,
    /// Prompts per optimizer step (the reference: 128).
    pub prompts_per_step: usize,
    /// Completions per micro-batch (the reference: 4); gradient accumulation = B·G / this.
    pub per_device_train_batch_size: usize,
    pub max_completion_length: usize,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repetition_penalty: f32,
    pub stop_strings: Vec<String>,

    // --- rewards (spec §2, §3, §6) ---
    pub reward_funcs: Vec<RewardKind>,
    /// One weight per reward; 0 = computed and logged only (INTUITOR logs accuracy this way).
    pub reward_weights: Vec<f64>,
    pub scale_rewards: ScaleRewards,
    pub sc_alignment: Alignment,
    pub sc_scorer: Scorer,
    /// Answer checker for `accuracy`, `plurality_vote` and the held-out report: math,
    /// hendrycks or gsm8k (`intuitor check-answer`).
    pub answer_mode: Mode,

    // --- loss (spec §4.2) ---
    pub loss_type: LossType,
    pub beta: f64,
    pub epsilon: f64,
    /// Upper clip; `None` = `epsilon`.
    pub epsilon_high: Option<f64>,
    /// μ: updates per rollout.
    pub num_iterations: usize,
    pub use_bias_correction_kl: bool,

    // --- optimizer and schedule (spec §4.4) ---
    pub learning_rate: f64,
    pub lr_scheduler_type: Schedule,
    pub warmup_ratio: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,

    // --- length of the run ---
    pub seed: u64,
    pub num_train_epochs: usize,
    /// > 0 overrides the epoch count.
    pub max_steps: usize,

    // --- output ---
    pub output_dir: Option<String>,
    /// Save a checkpoint every N steps (0 = only at the end).
    pub save_steps: usize,
    /// Keep the last K checkpoints.
    pub save_total_limit: usize,
    /// Log sampled completions every N steps.
    pub log_completions_steps: usize,
    pub device: String,

    // --- safety ---
    /// Stop when the mean KL exceeds this (0 = off).
    pub max_kl: f64,
    /// Warn when the mean completion length exceeds this fraction of max_completion_length.
    pub warn_length_fraction: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "default".into(),
            dataset: "demo".into(),
            prompt_field: "problem".into(),
            answer_field: None,
            system_prompt: None,
            max_prompt_length: 512,
            prompt_overflow: PromptOverflow::TruncateLeft,
            shuffle_dataset: true,
            eval_holdout: 0,
            eval_max_new_tokens: 48,
            num_generations: 7,
            prompts_per_step: 128,
            per_device_train_batch_size: 4,
            max_completion_length: 3072,
            temperature: 0.9,
            top_k: 50,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            stop_strings: Vec::new(),
            reward_funcs: vec![RewardKind::SelfCertainty],
            reward_weights: vec![1.0],
            scale_rewards: ScaleRewards::Group,
            sc_alignment: Alignment::Paper,
            sc_scorer: Scorer::Policy,
            answer_mode: Mode::Math,
            loss_type: LossType::Bnpo,
            beta: 0.005,
            epsilon: 0.2,
            epsilon_high: None,
            num_iterations: 1,
            use_bias_correction_kl: false,
            learning_rate: 3e-6,
            lr_scheduler_type: Schedule::Cosine,
            warmup_ratio: 0.1,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            seed: 7,
            num_train_epochs: 1,
            max_steps: 0,
            output_dir: None,
            save_steps: 0,
            save_total_limit: 2,
            log_completions_steps: 1,
            device: "auto".into(),
            max_kl: 0.0,
            warn_length_fraction: 0.5,
        }
    }
}

impl TrainConfig {
    /// Reads a config file (if any), applies `key=value` overrides, validates.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> anyhow::Result<Self> {
        match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Self::from_text(&p.display().to_string(), &text, overrides)
            }
            None => Self::from_text("--set", "", overrides),
        }
    }

    /// Parses config text named `origin` (for messages), applies overrides, validates.
    pub fn from_text(origin: &str, text: &str, overrides: &[String]) -> anyhow::Result<Self> {
        let mut table = text
            .parse::<toml::Table>()
            .with_context(|| format!("{origin}: not valid TOML"))?;
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("--set {o:?}: expected key=value"))?;
            let value = match format!("v = {v}").parse::<toml::Table>() {
                Ok(mut t) => t.remove("v").expect("parsed key"),
                Err(_) => toml::Value::String(v.to_string()),
            };
            table.insert(k.trim().to_string(), value);
        }
        // Check each key alone against the defaults first, so that a bad value names its key.
        let defaults = match toml::Value::try_from(TrainConfig::default())? {
            toml::Value::Table(t) => t,
            _ => toml::Table::new(),
        };
        for (k, v) in &table {
            let mut probe = defaults.clone();
            probe.insert(k.clone(), v.clone());
            if let Err(e) = toml::Value::Table(probe).try_into::<TrainConfig>() {
                bail!("{origin}: key `{k}`: {}", e.message().trim());
            }
        }
        let cfg: TrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{origin}: {}", e.message().trim()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-field checks with TRL-style messages.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.num_generations < 2 {
            bail!("num_generations must be at least 2 (advantages are relative within a group), got {}", self.num_generations);
        }
        let completions = self.prompts_per_step * self.num_generations;
        if self.prompts_per_step == 0 || self.per_device_train_batch_size == 0 {
            bail!("prompts_per_step and per_device_train_batch_size must be positive");
        }
        if !completions.is_multiple_of(self.per_device_train_batch_size) {
            bail!(
                "prompts_per_step × num_generations ({} × {} = {completions}) must be divisible by per_device_train_batch_size ({})",
                self.prompts_per_step, self.num_generations, self.per_device_train_batch_size
            );
        }
        if self.reward_funcs.is_empty() {
            bail!("reward_funcs is empty");
        }
        if self.reward_weights.len() != self.reward_funcs.len() {
            bail!(
                "reward_weights has {} entries for {} reward_funcs",
                self.reward_weights.len(),
                self.reward_funcs.len()
            );
        }
        if self.max_completion_length == 0 || self.max_prompt_length == 0 {
            bail!("max_completion_length and max_prompt_length must be positive");
        }
        if self.temperature.is_nan() || self.temperature < 0.0 || !(0.0..=1.0).contains(&self.top_p)
        {
            bail!("temperature must be ≥ 0 and top_p in [0, 1]");
        }
        if self.num_iterations == 0 {
            bail!("num_iterations must be at least 1");
        }
        if self.learning_rate < 0.0 || !(0.0..=1.0).contains(&self.warmup_ratio) {
            bail!("learning_rate must be ≥ 0 and warmup_ratio in [0, 1]");
        }
        if self.reward_funcs.contains(&RewardKind::Accuracy)
            && self.dataset != "demo"
            && self.answer_field.is_none()
        {
            bail!(
                "the accuracy reward needs answer_field (the dataset field with the gold answer)"
            );
        }
        Ok(())
    }

    /// Gradient-accumulation steps per optimizer step.
    pub fn grad_accum(&self) -> usize {
        self.prompts_per_step * self.num_generations / self.per_device_train_batch_size
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_run() {
        let c = TrainConfig::default();
        assert_eq!(
            (c.learning_rate, c.beta, c.num_generations, c.top_k),
            (3e-6, 0.005, 7, 50)
        );
        assert_eq!(
            (c.loss_type, c.lr_scheduler_type, c.seed),
            (LossType::Bnpo, Schedule::Cosine, 7)
        );
        assert_eq!(c.grad_accum(), 224);
        c.validate().unwrap();
    }

    #[test]
    fn overrides_and_errors_name_the_key() {
        let c = TrainConfig::load(
            None,
            &[
                "beta=0.0".into(),
                "loss_type=\"dr_grpo\"".into(),
                "model=foo".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.beta, c.loss_type, c.model.as_str()),
            (0.0, LossType::DrGrpo, "foo")
        );
        let e = TrainConfig::load(None, &["learning_rat=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("learning_rat"), "{e}");
        let e = TrainConfig::load(None, &["beta=\"high\"".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("beta") || e.contains("invalid type"), "{e}");
        let e = TrainConfig::load(None, &["num_generations=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("num_generations"), "{e}");
        let e = TrainConfig::load(
            None,
            &[
                "prompts_per_step=3".into(),
                "per_device_train_batch_size=5".into(),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("divisible"), "{e}");
    }

    #[test]
    fn shipped_configs_are_valid() {
        for (name, text) in [
            ("demo", include_str!("../configs/demo.toml")),
            (
                "3b intuitor",
                include_str!("../configs/qwen2.5-3b-math-intuitor.toml"),
            ),
            (
                "3b grpo",
                include_str!("../configs/qwen2.5-3b-math-grpo.toml"),
            ),
            (
                "1.5b intuitor",
                include_str!("../configs/qwen2.5-1.5b-math-intuitor.toml"),
            ),
            (
                "3b code",
                include_str!("../configs/qwen2.5-3b-codeforces-intuitor.toml"),
            ),
        ] {
            let c =
                TrainConfig::from_text(name, text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(c.num_generations >= 2, "{name}");
        }
        let paper = TrainConfig::from_text(
            "3b",
            include_str!("../configs/qwen2.5-3b-math-intuitor.toml"),
            &[],
        )
        .unwrap();
        assert_eq!(
            (paper.grad_accum(), paper.beta, paper.learning_rate),
            (224, 0.005, 3e-6)
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let c = TrainConfig::default();
        let text = c.to_toml();
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(c, back);
    }
}
