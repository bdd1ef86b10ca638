//! `intuitor train` configuration, a reference in the style of TRL's `GRPOConfig`: one TOML table
//! whose keys follow TRL `GRPOConfig` / open-r1-intuitor names and whose defaults are the
//! reference INTUITOR MATH run (spec §7.1, §7.3). Files set keys, `--set KEY=VALUE` overrides
//! them; an unknown key, a bad value or a failed [`TrainConfig::validate`] check is a
//! [`ConfigError`] naming the file (or the `--set` argument) and the key, and the binary exits
//! with code 2 on it.
//!
//! Every field's doc gives its meaning, unit and `Default`, then where the default comes from:
//! - **S1**: open-r1-intuitor's INTUITOR MATH 3B recipe (`config_demo.yaml`, spec §7.1);
//! - **TRL 0.18**: a `GRPOConfig` default at the TRL commit S1 pins (0.18.0.dev0, spec §0 S3),
//!   which S1 inherits (spec §7.1 "inherited TRL@S3 defaults");
//! - **HF**: a `transformers.TrainingArguments` default that `GRPOConfig` inherits (spec §4.4);
//! - **verl**: verl-intuitor's scripts, where they differ (spec §7.3);
//! - **ours**: this implementation's own choice (a key the reference lacks, or the CPU demo's
//!   model and data).
//!
//! Differences from current TRL (spec §8.3): TRL ≥ 0.18.0 defaults to T 1.0 and no top-k, ≥ 0.19
//! to β 0, ≥ 0.22 to `dapo`; candle's AdamW defaults to weight decay 0.01. The values here are
//! the ones the paper's run used. `tests/config.rs` checks that each field's `Default` and the
//! README's configuration table equal [`TrainConfig::default`].

mod error;
mod load;
mod resolve;
mod validate;

use serde::{Deserialize, Serialize};

pub use self::error::{ConfigError, Invalid};
use crate::advantage::ScaleRewards;
use crate::answer::Mode;
use crate::data::code::PromptTemplate;
use crate::loss::LossType;
use crate::optim::schedule::Schedule;
use crate::reward::self_certainty::Scorer;
use crate::reward::RewardKind;
use crate::self_certainty::Alignment;

pub use resolve::Resolved;

/// A size in bytes as a config value: a byte count or a text such as `"8GiB"` or `"512MB"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    /// The byte count; `Err` says why a text is not a size.
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            Self::Bytes(n) => Ok(*n),
            Self::Text(t) => crate::train::plan::parse_size(t),
        }
    }
}

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
    // --- model and data (spec §5) ---
    /// The model to train: `default` (SmolLM2-135M-Instruct Q4_1, fetched by
    /// `scripts/fetch_model.sh`), an HF directory or a .gguf file.
    /// Default `"default"`: ours, the CPU demo's model (S1 trains Qwen2.5-3B, spec §7.1).
    pub model: String,
    /// The training problems: `demo` (built-in arithmetic word problems), `mbpp` (MBPP's
    /// training part with its tests, from the data directory: `$INTUITOR_DATA_DIR`,
    /// `shared/data` or `../shared/data`) or a .jsonl/.csv/.parquet file. Default `"demo"`: ours (S1 trains on the 7,500 MATH-lighteval
    /// `train` problems, spec §5).
    pub dataset: String,
    /// Record field with the prompt (falling back to `question`, `prompt`, or a `messages` list).
    /// Default `"problem"`: S1's MATH column (spec §5).
    pub prompt_field: String,
    /// Record field with the gold answer, needed by the `accuracy` reward on a file dataset
    /// (`demo` has its own); GSM8K `#### N` and MATH `\boxed{}` are reduced to the answer.
    /// Default none: ours (S1 reads `solution`, spec §5).
    pub answer_field: Option<String>,
    /// Record field with a code problem's tests, for the `code_tests` rewards: a list of assert
    /// statements (MBPP `test_list`), of `{"input", "output"}` standard-input cases, code_contests'
    /// `{"input": [...], "output": [...]}` or open-r1's `{"test_cases": [...]}` (also as a JSON
    /// string). Default none: ours (INTUITOR-Code needs no tests, spec §5).
    pub tests_field: Option<String>,
    /// How a prompt is worded: `none` (the record's prompt as it is) or `code` (the problem
    /// statement inside one of the paper's four code templates, chosen per problem from `seed`,
    /// ending with a fenced stub). Default `"none"`: S1's MATH prompts are used as they are
    /// (spec §5; its code CSV is already templated).
    pub prompt_template: PromptTemplate,
    /// System message placed before every prompt; none leaves the chat template's own default.
    /// Default none: ours (S1's MATH system prompts are in spec §5).
    pub system_prompt: Option<String>,
    /// Longest prompt, in tokens after the chat template; see `prompt_overflow`.
    /// Default `512`: S1 and TRL 0.18 (spec §7.1).
    pub max_prompt_length: usize,
    /// Longer prompts: `truncate_left` keeps their last `max_prompt_length` tokens, `drop` skips
    /// them (counted in the log). Default `"truncate_left"`: TRL 0.18 (spec §4.3 step 3).
    pub prompt_overflow: PromptOverflow,
    /// Reshuffle the prompts every epoch (seeded by `seed`); the last partial chunk of
    /// `prompts_per_step` is dropped either way. Default `true`: TRL 0.18 (spec §4.3 step 1).
    pub shuffle_dataset: bool,
    /// Held-out demo problems evaluated greedily before and after training (0 = skip).
    /// Default `0`: ours.
    pub eval_holdout: usize,
    /// New tokens per problem in that held-out evaluation. Default `48`: ours.
    pub eval_max_new_tokens: usize,

    // --- generation (spec §4.3 step 4) ---
    /// G, completions sampled per prompt: the group its advantages are normalised in (≥ 2).
    /// Default `7`: S1 (spec §7.1); TRL 0.18 defaults to 8.
    pub num_generations: usize,
    /// B, prompts per optimizer step (each gives G completions). Default `128`: S1's 4 per device
    /// × 7 processes × 32 accumulation steps / G (spec §4.3); TRL derives it from those.
    pub prompts_per_step: usize,
    /// Completions per micro-batch, the unit the loss is aggregated over (as TRL); gradient
    /// accumulation = B·G / this. Forward passes take up to twice this many completions of one
    /// prompt. Default `4`: S1 (spec §7.1); HF defaults to 8.
    pub per_device_train_batch_size: usize,
    /// Most new tokens per completion. Default `3072`: S1 (spec §7.1); TRL 0.18 defaults to 256.
    pub max_completion_length: usize,
    /// Rollout sampling temperature; the loss's log-probs use logits / T too (spec §4.1);
    /// 0 = greedy. Default `0.9`: TRL 0.18.0.dev0, inherited by S1 (spec §7.1); TRL ≥ 0.18.0
    /// defaults to 1.0 (spec §8.3).
    pub temperature: f32,
    /// Sample among the k most likely tokens only (0 = off). Default `50`: TRL 0.18.0.dev0,
    /// inherited by S1 (spec §7.1); TRL ≥ 0.18.0 has none (spec §8.3), verl −1 (off, spec §7.3).
    pub top_k: usize,
    /// Nucleus sampling: the smallest set of tokens with probability ≥ p (1.0 = off).
    /// Default `1.0`: TRL 0.18 (spec §7.1).
    pub top_p: f32,
    /// Drop tokens whose probability is below min_p × the top one (0 = off).
    /// Default `0.0`: TRL 0.18's None (spec §7.1).
    pub min_p: f32,
    /// HF repetition penalty on tokens already in the sequence (1.0 = off).
    /// Default `1.0`: TRL 0.18 (spec §7.1).
    pub repetition_penalty: f32,
    /// A completion also ends when its text contains one of these. Default `[]`: ours (the
    /// reference stops at EOS or the length limit only, spec §5).
    pub stop_strings: Vec<String>,
    /// Bytes the rollout's KV cache may take: a size such as `"8GiB"` or a byte count. As many
    /// completions as fit decode at once, the others start as slots free up (continuous
    /// batching); the completions are the same whatever the budget. Default none: ours (every
    /// completion of the step at once when the memory plan says that fits the device's free
    /// memory; otherwise, when that memory is known and one completion fits, the plan sizes the
    /// budget so the rollout fits, leaving 5% free; the run's config.toml keeps it, so
    /// `--resume` uses it too).
    pub rollout_kv_budget: Option<ByteSize>,

    // --- rewards (spec §2, §3, §6) ---
    /// Rewards scored for every completion: `self_certainty` (INTUITOR), `accuracy` (GRPO, gold
    /// answer), `plurality_vote` (GRPO-PV), `format`, `neg_entropy`, `random`, `code_tests`,
    /// `code_tests_binary`, `code_format` (run in the sandbox). Each is normalised
    /// per group, then the weighted advantages are summed (spec §3 step 4).
    /// Default `["self_certainty"]`: the INTUITOR reward (spec §1); S1 also lists `accuracy`
    /// with weight 0.
    pub reward_funcs: Vec<RewardKind>,
    /// One weight per reward; 0 = computed and logged only (S1 logs accuracy this way).
    /// Default `[1.0]`: ours, one weight for the default reward (TRL's none means all 1.0).
    pub reward_weights: Vec<f64>,
    /// The reward advantages' divisor: the `group` std, the `batch` std or `none` (Dr. GRPO);
    /// the self-certainty advantage is always divided by its group std (spec §3 step 3).
    /// Default `"group"`: TRL 0.18's `True` (spec §8.2).
    pub scale_rewards: ScaleRewards,
    /// Which distributions self-certainty averages: `paper` (those that generated each token,
    /// eq. 4, as verl) or `openr1` (those after each token, as S1 computes it).
    /// Default `"paper"`: the paper's definition (spec §2.1, §2.2).
    pub sc_alignment: Alignment,
    /// Who scores self-certainty: `policy` (the model being trained, online) or `frozen` (the
    /// initial model, offline; paper §5.4). Default `"policy"`: S1 and the paper (spec §2.2).
    pub sc_scorer: Scorer,
    /// Answer checker for `accuracy`, `plurality_vote` and the held-out report: `math`
    /// (math-verify-like), `hendrycks` or `gsm8k` (`intuitor check-answer`).
    /// Default `"math"`: S1's math-verify reward (spec §6.1).
    pub answer_mode: Mode,
    /// Decimals a decimal answer is rounded to before `math` mode compares it (math-verify's
    /// `float_rounding`; `intuitor check-answer --precision`), at most 12. Default `6`:
    /// math-verify's.
    pub answer_precision: u32,
    /// Python interpreter that runs completions' code for the `code_tests` and `code_format`
    /// rewards, in the sandbox. Default `"python3"`: ours.
    pub code_python: String,
    /// Wall-clock and CPU seconds one program of a code reward may take (1–3600).
    /// Default `10`: ours.
    pub code_timeout: u64,
    /// Programs of the code rewards run at once. Default `2`: open-r1's
    /// `parallel_code_exec_per_proc`.
    pub parallel_code_exec_per_proc: usize,

    // --- loss (spec §4.2, §8.1) ---
    /// Loss aggregation, with TRL's semantics: `grpo` (per-sequence mean, paper eq. 5), `bnpo`
    /// (token mean per micro-batch), `dr_grpo`, `dapo` (spec §8.1). Default `"bnpo"`: TRL 0.18,
    /// what S1 ran (spec §4.2); TRL ≥ 0.22 defaults to `dapo`.
    pub loss_type: LossType,
    /// β, the weight of the per-token k3 KL to the frozen initial model (0 = the reference model
    /// is not loaded). Default `0.005`: S1 (spec §7.1, §7.3; Table 7's 0.0005 is a typo);
    /// TRL 0.18 defaults to 0.04, TRL ≥ 0.19 to 0.
    pub beta: f64,
    /// ε, the PPO clip: the ratio is clipped to [1 − ε, 1 + `epsilon_high`].
    /// Default `0.2`: TRL 0.18 (spec §7.1, §8.2).
    pub epsilon: f64,
    /// Upper clip ε_high; none = `epsilon` (DAPO suggests 0.28).
    /// Default none: TRL 0.18 (spec §8.2).
    pub epsilon_high: Option<f64>,
    /// μ, policy updates per rollout; μ > 1 takes the old log-probs at rollout time.
    /// Default `1`: TRL 0.18 and S1 (spec §4.1).
    pub num_iterations: usize,
    /// Multiply the per-token KL by the importance ratio (no effect at μ = 1).
    /// Default `false`: current TRL (spec §8.2).
    pub use_bias_correction_kl: bool,

    // --- optimizer and schedule (spec §4.4) ---
    /// Peak AdamW learning rate, per optimizer step, before the schedule's factor.
    /// Default `3e-6`: S1 MATH 1.5B/3B (spec §7.1); TRL 0.18 defaults to 1e-6, HF to 5e-5.
    pub learning_rate: f64,
    /// Learning-rate schedule after warmup (HF's): `constant`, `linear` or `cosine` (half a cosine
    /// to 0). Default `"cosine"`: S1 (spec §4.4); HF defaults to linear.
    pub lr_scheduler_type: Schedule,
    /// Fraction of the updates (steps × μ) spent in linear warmup, rounded up; the first update
    /// runs at lr 0, as HF's. Default `0.1`: S1 (spec §4.4); HF defaults to 0.
    pub warmup_ratio: f64,
    /// AdamW β1. Default `0.9`: HF (spec §4.4).
    pub adam_beta1: f64,
    /// AdamW β2. Default `0.999`: HF (spec §4.4).
    pub adam_beta2: f64,
    /// AdamW ε, added to the root of the second moment. Default `1e-8`: HF (spec §4.4).
    pub adam_epsilon: f64,
    /// Decoupled weight decay (PyTorch AdamW), per unit of learning rate. Default `0.0`: HF and
    /// S1 (spec §4.4); candle's AdamW and verl use 0.01 (spec §7.3).
    pub weight_decay: f64,
    /// Clip the global L2 norm of the gradient to this (0 = off). Default `1.0`: HF (spec §4.4).
    pub max_grad_norm: f64,
    /// Activation recompute in the update: the forward keeps only each decoder layer's input
    /// and the backward re-runs one layer at a time (same gradients, one layer's activations
    /// alive instead of all). `true`, `false` or `auto`: on on CUDA, off on the CPU (where
    /// memory is rarely the limit and recompute costs a forward).
    /// Default `"auto"`: ours (HF/TRL default false; the paper's recipe sets it true).
    pub gradient_checkpointing: Switch,

    // --- length of the run ---
    /// Seed of the shuffle and the sampling. Default `7`: S1 (spec §4.4); HF defaults to 42.
    pub seed: u64,
    /// Passes over the dataset, when `max_steps` is 0. Default `1`: S1 (spec §7.1); HF defaults
    /// to 3.
    pub num_train_epochs: usize,
    /// Optimizer steps to run; > 0 overrides `num_train_epochs`. Default `0`: S1's −1 (= by
    /// epochs, spec §7.1).
    pub max_steps: usize,

    // --- output ---
    /// Run directory (config.toml, metrics, samples, checkpoints, charts); none =
    /// `runs/run-<unix time>`; `--output-dir` sets it. Default none: ours.
    pub output_dir: Option<String>,
    /// Save a checkpoint every N optimizer steps, and at the end (0 = only at the end).
    /// Default `0`: ours (HF saves every 500).
    pub save_steps: usize,
    /// Checkpoints kept, the newest. Default `2`: ours (HF keeps all).
    pub save_total_limit: usize,
    /// Append the first prompt's completions and rewards to samples.jsonl every N steps
    /// (0 = never). Default `1`: ours (TRL's `log_completions` is off).
    pub log_completions_steps: usize,
    /// `auto` (CUDA if built with it and present, else CPU), `cpu`, `cuda` or `cuda:N`.
    /// Default `"auto"`: ours.
    pub device: String,
    /// Compute dtype of training: `f32`, `bf16` or `f16` (forward and backward on a copy of the
    /// weights in that dtype; master weights, gradient sums and AdamW moments stay f32; PyTorch
    /// AMP / DeepSpeed bf16 semantics), or `auto`: f32 on the CPU, bf16 on CUDA.
    /// Default `"auto"`: ours (the paper's recipe sets TRL's `bf16 = true`).
    pub dtype: String,
    /// Dtype of a checkpoint's `model.safetensors`: `f32`, `bf16`, `f16`, or `auto`: the base
    /// model's `torch_dtype` from its config.json (as HF saves), f32 for a GGUF model. Below f32
    /// the f32 master weights go into `optimizer.safetensors`, so `--resume` stays exact.
    /// Default `"auto"`: HF.
    pub save_dtype: String,

    // --- safety ---
    /// Stop the run when a step's mean KL (nats per token) exceeds this (0 = off).
    /// Default `0.0`: ours.
    pub max_kl: f64,
    /// Warn once when the mean completion length exceeds this fraction of
    /// `max_completion_length` (runaway length is a reward-hacking signature).
    /// Default `0.5`: ours.
    pub warn_length_fraction: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "default".into(),
            dataset: "demo".into(),
            prompt_field: "problem".into(),
            answer_field: None,
            tests_field: None,
            prompt_template: PromptTemplate::None,
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
            rollout_kv_budget: None,
            reward_funcs: vec![RewardKind::SelfCertainty],
            reward_weights: vec![1.0],
            scale_rewards: ScaleRewards::Group,
            sc_alignment: Alignment::Paper,
            sc_scorer: Scorer::Policy,
            answer_mode: Mode::Math,
            answer_precision: 6,
            code_python: "python3".into(),
            code_timeout: 10,
            parallel_code_exec_per_proc: 2,
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
            gradient_checkpointing: Switch::Auto,
            seed: 7,
            num_train_epochs: 1,
            max_steps: 0,
            output_dir: None,
            save_steps: 0,
            save_total_limit: 2,
            log_completions_steps: 1,
            device: "auto".into(),
            dtype: "auto".into(),
            save_dtype: "auto".into(),
            max_kl: 0.0,
            warn_length_fraction: 0.5,
        }
    }
}

/// A key that is `true`, `false` or `"auto"` (decided by the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Auto,
    On,
    Off,
}

impl Switch {
    /// The setting, with `auto` meaning `auto_on`.
    pub fn resolve(self, auto_on: bool) -> bool {
        match self {
            Switch::Auto => auto_on,
            Switch::On => true,
            Switch::Off => false,
        }
    }
}

impl Serialize for Switch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Switch::Auto => s.serialize_str("auto"),
            Switch::On => s.serialize_bool(true),
            Switch::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Switch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Switch, E> {
                Ok(if v { Switch::On } else { Switch::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Switch, E> {
                match v {
                    "auto" => Ok(Switch::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TrainConfig {
    /// The rollout's sampler settings (`temperature`, `top_k`, `top_p`, `min_p`,
    /// `repetition_penalty`).
    pub fn sampling(&self) -> crate::sampling::SamplingParams {
        crate::sampling::SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
        }
    }

    /// Whether the update recomputes activations (`gradient_checkpointing`) on the CPU (`cpu`)
    /// or a GPU.
    pub fn recompute(&self, cpu: bool) -> bool {
        self.gradient_checkpointing.resolve(!cpu)
    }

    /// The answer checker of the rewards and the held-out report.
    pub fn checker(&self) -> crate::answer::Checker {
        crate::answer::Checker {
            mode: self.answer_mode,
            options: crate::answer::Options {
                precision: self.answer_precision,
                strict: true,
            },
        }
    }

    /// The sandbox the code rewards run completions in; `None` when no reward runs code.
    pub fn sandbox(&self) -> anyhow::Result<Option<crate::sandbox::Sandbox>> {
        if !self.reward_funcs.iter().any(RewardKind::runs_code) {
            return Ok(None);
        }
        let limits = crate::sandbox::Limits::with_timeout(self.code_timeout);
        Ok(Some(
            crate::sandbox::Sandbox::new(&self.code_python, limits)
                .map_err(|e| anyhow::anyhow!("code_python = {:?}: {e}", self.code_python))?,
        ))
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
            (
                "mbpp intuitor",
                include_str!("../configs/mbpp-intuitor-code.toml"),
            ),
            ("mbpp grpo", include_str!("../configs/mbpp-grpo-code.toml")),
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
