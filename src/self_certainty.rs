//! Self-certainty: the mean over completion tokens of KL(U ‖ p(·|context)) (spec §2).
//!
//! Per token, with logits z ∈ R^V (V = the full logits width, padded vocabulary rows included,
//! spec §2.2 / §12 item 5) and untempered (T = 1, spec §12 item 2):
//! `KL(U‖p) = logsumexp(z) − mean(z) − ln V`. The open-r1 code (S1
//! `_get_per_token_self_certainty`) drops the constant `− ln V`; advantages are unchanged by it.
//!
//! Which rows count is the alignment (spec §2.2): `paper` takes the distributions that generated
//! each completion token, p(·|q, o_<k); `openr1` (S1, and Kang et al. S8) takes the distributions
//! *after* each completion token, p(·|q, o_≤k), including the one after the final EOS.

use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Which next-token distributions self-certainty averages over (spec §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    /// p(·|q, o_<k) for k = 1..|o|: the paper's eq. 4 (and verl's slicing).
    #[default]
    Paper,
    /// p(·|q, o_≤k) for k = 1..|o|: what open-r1-intuitor and Kang et al. compute.
    Openr1,
}

/// Per-row KL(U‖softmax(z)) in nats for a logits row, scalar reference version.
pub fn token_self_certainty(z: &[f32]) -> f32 {
    let v = z.len() as f64;
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum_exp: f64 = z.iter().map(|&x| (x as f64 - max).exp()).sum();
    let mean: f64 = z.iter().map(|&x| x as f64).sum::<f64>() / v;
    (max + sum_exp.ln() - mean - v.ln()) as f32
}

/// Per-row `logsumexp(z) − mean(z)` for logits `[rows, V]` → `[rows]` (f32), the open-r1 value;
/// subtract `ln V` for the paper's KL. Untempered, no gradient needed.
pub fn lse_minus_mean(logits: &Tensor) -> Result<Tensor> {
    let z = logits.to_dtype(DType::F32)?;
    let max = z.max_keepdim(D::Minus1)?;
    let lse = z
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?;
    lse.sub(&z.mean_keepdim(D::Minus1)?)?.squeeze(D::Minus1)
}

/// Sequence self-certainty: the mean of `per_token` over the first `len` entries (the completion
/// mask: tokens up to and including the first EOS). An empty completion scores 0, as in S1.
pub fn sequence_mean(per_token: &[f32], len: usize) -> f32 {
    let len = len.min(per_token.len());
    if len == 0 {
        return 0.0;
    }
    (per_token[..len].iter().map(|&x| x as f64).sum::<f64>() / len as f64) as f32
}

/// Completion mask length: tokens up to and including the first stop id, or all of them.
pub fn completion_mask_len(ids: &[u32], stop_ids: &std::collections::BTreeSet<u32>) -> usize {
    ids.iter()
        .position(|t| stop_ids.contains(t))
        .map_or(ids.len(), |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn spec_worked_check_z_012() {
        // spec §2.3: logsumexp 2.407606, mean 1.0 → open-r1 1.407606, paper 0.308994.
        let z = [0.0f32, 1.0, 2.0];
        assert!((token_self_certainty(&z) - 0.308994).abs() < 1e-6);
        let t = Tensor::new(&[[0.0f32, 1.0, 2.0]], &Device::Cpu).unwrap();
        let openr1 = lse_minus_mean(&t).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((openr1 - 1.407606).abs() < 1e-6);
        assert!((openr1 - 3f32.ln() - 0.308994).abs() < 1e-6);
    }

    #[test]
    fn uniform_logits_have_zero_self_certainty() {
        let z = vec![3.25f32; 49152];
        assert!(token_self_certainty(&z).abs() < 1e-6);
        let t = Tensor::new(z, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let openr1 = lse_minus_mean(&t).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!(
            (openr1 - 49152f32.ln()).abs() < 1e-4,
            "uniform open-r1 value is ln V"
        );
    }

    #[test]
    fn mask_stops_after_the_first_eos_and_counts_truncated_completions_fully() {
        let stop = [2u32].into_iter().collect();
        assert_eq!(completion_mask_len(&[5, 6, 2, 7, 2], &stop), 3);
        assert_eq!(completion_mask_len(&[5, 6, 7], &stop), 3);
        assert_eq!(completion_mask_len(&[], &stop), 0);
        assert_eq!(sequence_mean(&[1.0, 2.0, 3.0, 100.0], 3), 2.0);
        assert_eq!(
            sequence_mean(&[], 0),
            0.0,
            "an empty completion scores 0, not NaN"
        );
    }
}
