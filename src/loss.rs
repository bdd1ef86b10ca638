//! The GRPO policy loss shared by INTUITOR and its baselines (spec §4.2, §8.1): PPO-clipped
//! surrogate with asymmetric ε, plus β·k3-KL to a frozen reference, aggregated as TRL's
//! `grpo`, `bnpo`, `dr_grpo` or `dapo` (`GRPOTrainer._compute_loss`).
//!
//! Every aggregation is a weighted sum of per-token losses with one weight per sequence, so the
//! loss can be computed (and back-propagated) chunk by chunk: see [`sequence_weights`].

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// How per-token losses are aggregated (TRL `loss_type`; spec §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over each sequence, then over the micro-batch (paper eq. 5); ÷ grad-accum.
    Grpo,
    /// Token mean over the micro-batch (TRL 0.18 default, what S1 ran); ÷ grad-accum.
    Bnpo,
    /// Sum ÷ (micro-batch size × max_completion_length); ÷ grad-accum.
    DrGrpo,
    /// Sum ÷ active tokens of the whole generation batch (TRL ≥ 0.22 default).
    Dapo,
}

/// The loss hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LossConfig {
    pub loss_type: LossType,
    /// KL coefficient β (0 disables the KL term and the reference model).
    pub beta: f64,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    /// Needed by `dr_grpo`.
    pub max_completion_length: usize,
    /// Sampling temperature T: log-probs are taken under logits / T, as the rollout sampled
    /// (spec §4.1).
    pub temperature: f64,
    /// Multiply the KL term by the importance ratio (TRL ≥ 1.x `use_bias_correction_kl`,
    /// default True there; TRL 0.18 / the reference run had no such term). Identical when the
    /// ratio is 1 (μ = 1).
    pub kl_bias_correction: bool,
}

impl LossConfig {
    /// Whether the loss has a KL term, hence needs the frozen reference's log-probs (β ≠ 0).
    pub fn uses_reference(&self) -> bool {
        self.beta != 0.0
    }
}

/// Weight of each masked token of each sequence of a micro-batch, so that the micro-batch loss
/// is `Σ_b w_b Σ_t ℓ_bt` exactly as TRL computes it, including the division by the number of
/// gradient-accumulation steps.
///
/// * `lens`: completion-mask lengths of the micro-batch's sequences.
/// * `num_items_in_batch`: active tokens of the whole generation batch (only `dapo` uses it).
pub fn sequence_weights(
    lens: &[usize],
    cfg: &LossConfig,
    grad_accum: usize,
    num_items_in_batch: usize,
) -> Vec<f64> {
    let b = lens.len() as f64;
    let ga = grad_accum.max(1) as f64;
    let total: usize = lens.iter().sum();
    lens.iter()
        .map(|&len| match cfg.loss_type {
            LossType::Grpo => 1.0 / (b * len.max(1) as f64 * ga),
            LossType::Bnpo => 1.0 / (total.max(1) as f64 * ga),
            LossType::DrGrpo => 1.0 / (b * cfg.max_completion_length as f64 * ga),
            LossType::Dapo => 1.0 / num_items_in_batch.max(1) as f64,
        })
        .collect()
}

/// [`sequence_weights`] for a whole generation batch split into TRL's micro-batches of
/// `micro_batch` sequences, in batch order (`lens`: every sequence's completion-mask length).
pub fn batch_weights(
    lens: &[usize],
    micro_batch: usize,
    cfg: &LossConfig,
    grad_accum: usize,
    num_items_in_batch: usize,
) -> Vec<f64> {
    lens.chunks(micro_batch)
        .flat_map(|chunk| sequence_weights(chunk, cfg, grad_accum, num_items_in_batch))
        .collect()
}

/// k3 KL estimator per token, `exp(ref − logp) − (ref − logp) − 1` (Schulman; TRL, no clamp —
/// verl clamps it to [−10, 10]).
pub fn k3_kl(logp: &Tensor, reference: &Tensor) -> Result<Tensor> {
    let d = (reference - logp)?;
    (d.exp()? - d)? - 1.0
}

/// Per-token loss `−min(r·A, clip(r, 1−ε_low, 1+ε_high)·A) + β·kl`, with `r = exp(logp − old)`.
/// All arguments are `[n]` tensors of one dtype; `logp` carries the gradient.
pub fn per_token_loss(
    logp: &Tensor,
    old: &Tensor,
    reference: Option<&Tensor>,
    advantages: &Tensor,
    cfg: &LossConfig,
) -> Result<Tensor> {
    let coef1 = (logp - old)?.exp()?;
    let coef2 = coef1.clamp(1.0 - cfg.epsilon_low, 1.0 + cfg.epsilon_high)?;
    let surrogate = (&coef1 * advantages)?
        .minimum(&(coef2 * advantages)?)?
        .neg()?;
    match reference {
        Some(r) if cfg.uses_reference() => {
            let kl = k3_kl(logp, r)?;
            let kl = if cfg.kl_bias_correction {
                (kl * coef1)?
            } else {
                kl
            };
            surrogate + (kl * cfg.beta)?
        }
        _ => Ok(surrogate),
    }
}

/// Whether a token's ratio sits outside the clip range on the side that matters (TRL's
/// `clip_ratio/low_mean` and `high_mean`): `(low, high)`.
pub fn clipped(ratio: f64, advantage: f64, cfg: &LossConfig) -> (bool, bool) {
    (
        ratio < 1.0 - cfg.epsilon_low && advantage < 0.0,
        ratio > 1.0 + cfg.epsilon_high && advantage > 0.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn cfg(loss_type: LossType) -> LossConfig {
        LossConfig {
            loss_type,
            beta: 0.0,
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            max_completion_length: 10,
            temperature: 1.0,
            kl_bias_correction: false,
        }
    }

    #[test]
    fn weights_reproduce_each_aggregation() {
        let lens = [2, 4];
        let w = sequence_weights(&lens, &cfg(LossType::Grpo), 2, 0);
        assert_eq!(w, vec![1.0 / (2.0 * 2.0 * 2.0), 1.0 / (2.0 * 4.0 * 2.0)]);
        assert_eq!(
            sequence_weights(&lens, &cfg(LossType::Bnpo), 2, 0),
            vec![1.0 / 12.0; 2]
        );
        assert_eq!(
            sequence_weights(&lens, &cfg(LossType::DrGrpo), 1, 0),
            vec![1.0 / 20.0; 2]
        );
        assert_eq!(
            sequence_weights(&lens, &cfg(LossType::Dapo), 4, 30),
            vec![1.0 / 30.0; 2]
        );
        // An empty micro-batch mask divides by 1, not 0 (TRL clamp(min=1)).
        assert_eq!(
            sequence_weights(&[0], &cfg(LossType::Bnpo), 1, 0),
            vec![1.0]
        );
    }

    #[test]
    fn ratio_one_gives_the_vanilla_policy_gradient_value() {
        let d = Device::Cpu;
        let logp = Tensor::new(&[-1.0f64, -2.0], &d).unwrap();
        let adv = Tensor::new(&[0.5f64, -1.5], &d).unwrap();
        let l = per_token_loss(&logp, &logp, None, &adv, &cfg(LossType::Bnpo)).unwrap();
        assert_eq!(l.to_vec1::<f64>().unwrap(), vec![-0.5, 1.5]);
    }

    #[test]
    fn k3_is_zero_at_equality_and_positive_elsewhere() {
        let d = Device::Cpu;
        let logp = Tensor::new(&[-1.0f64, -1.0, -1.0], &d).unwrap();
        let r = Tensor::new(&[-1.0f64, -0.5, -3.0], &d).unwrap();
        let kl = k3_kl(&logp, &r).unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(kl[0], 0.0);
        assert!((kl[1] - (0.5f64.exp() - 0.5 - 1.0)).abs() < 1e-12);
        assert!(kl[2] > 0.0);
    }
}
