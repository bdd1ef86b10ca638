//! Per-token statistics of next-token distributions, computed on the device from one logits row
//! per token, in the same pass that sampled it (no second forward; spec §2.2, §4.1).

use candle_core::{DType, Result, Tensor, D};
use rayon::prelude::*;

use crate::self_certainty::lse_minus_mean;

/// Statistics of `rows` logits rows, each paired with the token it scored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenStats {
    /// log p(token) under softmax(z / T) (T = 1 when sampling is greedy), as TRL's log-probs.
    pub logprob: Vec<f32>,
    /// log p(token) under softmax(z).
    pub logprob_t1: Vec<f32>,
    /// Entropy of softmax(z / T), as TRL's `entropy` metric.
    pub entropy: Vec<f32>,
    /// Entropy of softmax(z), untempered.
    pub entropy_t1: Vec<f32>,
    /// logsumexp(z) − mean(z) of the untempered row (self-certainty without − ln V).
    pub lse_minus_mean: Vec<f32>,
}

/// Computes [`TokenStats`] for logits `[rows, V]` and one token per row.
pub fn token_stats(logits: &Tensor, tokens: &[u32], temperature: f32) -> Result<TokenStats> {
    let (rows, _) = logits.dims2()?;
    if tokens.len() != rows {
        candle_core::bail!(
            "token_stats: {} tokens for {rows} logits rows",
            tokens.len()
        );
    }
    let z = logits.to_dtype(DType::F32)?;
    let idx = Tensor::new(tokens, z.device())?.unsqueeze(1)?;
    let picked: Vec<f32> = z.gather(&idx, 1)?.squeeze(1)?.to_vec1()?;
    Ok(row_stats(&z, temperature)?.with_picked(&picked))
}

/// The parts of [`TokenStats`] that do not depend on the token, one value per logits row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowStats {
    /// The sampling temperature the tempered values use (1 for greedy).
    temperature: f32,
    /// logsumexp(z).
    lse_t1: Vec<f32>,
    /// logsumexp(z / T).
    lse_t: Vec<f32>,
    pub entropy: Vec<f32>,
    pub entropy_t1: Vec<f32>,
    pub lse_minus_mean: Vec<f32>,
}

impl RowStats {
    /// Whether every row's values are finite (a NaN or infinite logit makes logsumexp − mean
    /// non-finite).
    pub fn all_finite(&self) -> bool {
        self.lse_minus_mean.iter().all(|x| x.is_finite())
    }

    /// logsumexp(z / T) of each row: each token's probability at the temperature is
    /// `exp(z / T − lse_t)`.
    pub fn lse_t(&self) -> &[f32] {
        &self.lse_t
    }

    /// The statistics of each row's token, given its logit `picked[row]`.
    pub fn with_picked(self, picked: &[f32]) -> TokenStats {
        let t = self.temperature;
        TokenStats {
            logprob: picked
                .iter()
                .zip(&self.lse_t)
                .map(|(z, l)| z / t - l)
                .collect(),
            logprob_t1: picked
                .iter()
                .zip(&self.lse_t1)
                .map(|(z, l)| z - l)
                .collect(),
            entropy: self.entropy,
            entropy_t1: self.entropy_t1,
            lse_minus_mean: self.lse_minus_mean,
        }
    }
}

/// logsumexp over the last axis of `x` `[rows, V]` (f32), where it is: `[rows]`.
fn lse(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?
        .squeeze(D::Minus1)
}

/// logsumexp(z / T) of each row of logits `[rows, V]` (f32), computed where they are; T = 1
/// when `temperature` is 0 (greedy).
pub fn logsumexp_at(logits: &Tensor, temperature: f32) -> Result<Vec<f32>> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    lse(&(logits.to_dtype(DType::F32)? / t as f64)?)?.to_vec1()
}

/// [`RowStats`] of logits `[rows, V]`, computed where they are (f32); one copy of `5 × rows`
/// values to the host.
pub fn row_stats(logits: &Tensor, temperature: f32) -> Result<RowStats> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let z = logits.to_dtype(DType::F32)?;
    let lse1 = lse(&z)?;
    let zt = (&z / t as f64)?;
    let lset = lse(&zt)?;
    let logp_t = zt.broadcast_sub(&lset.unsqueeze(1)?)?;
    let entropy = (logp_t.exp()? * &logp_t)?.sum(D::Minus1)?.neg()?;
    let logp_1 = z.broadcast_sub(&lse1.unsqueeze(1)?)?;
    let entropy_t1 = (logp_1.exp()? * &logp_1)?.sum(D::Minus1)?.neg()?;
    let all = Tensor::stack(
        &[&lse1, &lset, &entropy, &entropy_t1, &lse_minus_mean(&z)?],
        0,
    )?;
    let [lse_t1, lse_t, entropy, entropy_t1, lse_minus_mean]: [Vec<f32>; 5] = all
        .to_vec2()?
        .try_into()
        .map_err(|_| candle_core::Error::Msg("row_stats: expected 5 rows".into()))?;
    Ok(RowStats {
        temperature: t,
        lse_t1,
        lse_t,
        entropy,
        entropy_t1,
        lse_minus_mean,
    })
}

/// [`token_stats`] on logits rows already on the host (the rollout copies them there to
/// sample), one row per token, rows in parallel. Sums run in f64.
pub fn token_stats_host(rows: &[Vec<f32>], tokens: &[u32], temperature: f32) -> TokenStats {
    let t = if temperature > 0.0 {
        temperature as f64
    } else {
        1.0
    };
    let per_row: Vec<[f32; 5]> = rows
        .par_iter()
        .zip(tokens.par_iter())
        .map(|(z, &tok)| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sums = exp_sums(z, max, (1.0 / t) as f32);
            let max = max as f64;
            let [sum1, sum1_z, sumt, sumt_z, total] = sums;
            let (sumt_z, sum1_z) = (sumt_z / t + max * sumt / t, sum1_z + max * sum1);
            let total = total + max * z.len() as f64;
            let lse1 = max + sum1.ln();
            let lset = max / t + sumt.ln();
            let picked = z.get(tok as usize).copied().unwrap_or(0.0) as f64;
            [
                (picked / t - lset) as f32,
                (picked - lse1) as f32,
                (lset - sumt_z / sumt) as f32,
                (lse1 - total / z.len() as f64) as f32,
                (lse1 - sum1_z / sum1) as f32,
            ]
        })
        .collect();
    TokenStats {
        logprob: per_row.iter().map(|r| r[0]).collect(),
        logprob_t1: per_row.iter().map(|r| r[1]).collect(),
        entropy: per_row.iter().map(|r| r[2]).collect(),
        entropy_t1: per_row.iter().map(|r| r[4]).collect(),
        lse_minus_mean: per_row.iter().map(|r| r[3]).collect(),
    }
}

/// `[Σe, Σe·y, Σeₜ, Σeₜ·y, Σy]` over a logits row with `y = x − max`, `e = exp(y)` and
/// `eₜ = exp(y / T)`. Exponentials in f32, in blocks of 8 lanes the compiler can vectorise; each
/// block of 512 elements is summed in f32 and the blocks in f64.
fn exp_sums(z: &[f32], max: f32, inv_t: f32) -> [f64; 5] {
    let mut total = [0f64; 5];
    for block in z.chunks(512) {
        let mut acc = [[0f32; 8]; 5];
        let lanes = block.chunks_exact(8);
        let tail = lanes.remainder();
        for c in lanes {
            for i in 0..8 {
                let y = c[i] - max;
                let (e, et) = (y.exp(), (y * inv_t).exp());
                acc[0][i] += e;
                acc[1][i] += e * y;
                acc[2][i] += et;
                acc[3][i] += et * y;
                acc[4][i] += y;
            }
        }
        for (k, a) in acc.iter().enumerate() {
            total[k] += a.iter().map(|&v| v as f64).sum::<f64>();
        }
        for &x in tail {
            let y = x - max;
            let (e, et) = (y.exp(), (y * inv_t).exp());
            for (k, v) in [e, e * y, et, et * y, y].into_iter().enumerate() {
                total[k] += v as f64;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn host_and_device_statistics_agree() {
        let logits = Tensor::randn(0f32, 3.0, (5, 1000), &Device::Cpu).unwrap();
        let tokens = [0u32, 17, 999, 500, 3];
        for t in [0.0f32, 0.7, 1.0] {
            let a = token_stats(&logits, &tokens, t).unwrap();
            let b = token_stats_host(&logits.to_vec2().unwrap(), &tokens, t);
            for (x, y) in [
                (&a.logprob, &b.logprob),
                (&a.logprob_t1, &b.logprob_t1),
                (&a.entropy, &b.entropy),
                (&a.entropy_t1, &b.entropy_t1),
                (&a.lse_minus_mean, &b.lse_minus_mean),
            ] {
                for (u, v) in x.iter().zip(y) {
                    assert!((u - v).abs() < 1e-4, "T={t}: {u} vs {v}");
                }
            }
        }
    }
}
