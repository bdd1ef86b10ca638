//! Per-token statistics of next-token distributions, computed on the device from one logits row
//! per token, in the same pass that sampled it (no second forward; spec §2.2, §4.1).

use candle_core::{DType, Result, Tensor, D};
use rayon::prelude::*;

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

/// logsumexp(z / T) of each row of logits `[rows, V]` (f32), computed where they are; T = 1
/// when `temperature` is 0 (greedy).
pub fn logsumexp_at(logits: &Tensor, temperature: f32) -> Result<Vec<f32>> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let x = (logits.to_dtype(DType::F32)? / t as f64)?;
    let max = x.max_keepdim(D::Minus1)?;
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?
        .squeeze(D::Minus1)?
        .to_vec1()
}

/// [`RowStats`] of logits `[rows, V]`. The exponential sums of each row ([`row_sums`]) are
/// computed where the logits are; from them each row's values in f64 on the host.
pub fn row_stats(logits: &Tensor, temperature: f32) -> Result<RowStats> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let (_, vocab) = logits.dims2()?;
    Ok(from_sums(row_sums(logits, 1.0 / t)?, t, vocab))
}

/// [`RowStats`] at temperature `t` from each row's [`row_sums`] over `vocab` logits.
fn from_sums(sums: Vec<[f64; 6]>, t: f32, vocab: usize) -> RowStats {
    let mut rs = RowStats {
        temperature: t,
        ..RowStats::default()
    };
    for s in sums {
        let v = RowValues::of(s, t as f64, vocab);
        rs.lse_t1.push(v.lse1 as f32);
        rs.lse_t.push(v.lset as f32);
        rs.entropy.push(v.entropy as f32);
        rs.entropy_t1.push(v.entropy_t1 as f32);
        rs.lse_minus_mean.push(v.lse_minus_mean as f32);
    }
    rs
}

/// One row's values in f64 from its [`row_sums`] at temperature `t` over `vocab` logits.
struct RowValues {
    lse1: f64,
    lset: f64,
    entropy: f64,
    entropy_t1: f64,
    lse_minus_mean: f64,
}

impl RowValues {
    fn of([max, sum1, sum1_y, sumt, sumt_y, sum_y]: [f64; 6], t: f64, vocab: usize) -> Self {
        // y = z − max, so Σe·z = Σe·y + max·Σe.
        let n = vocab as f64;
        let lse1 = max + sum1.ln();
        let lset = max / t + sumt.ln();
        Self {
            lse1,
            lset,
            entropy: lset - (sumt_y / t + max * sumt / t) / sumt,
            entropy_t1: lse1 - (sum1_y + max * sum1) / sum1,
            lse_minus_mean: lse1 - (sum_y + max * n) / n,
        }
    }
}

/// `[max, Σe, Σe·y, Σeₜ, Σeₜ·y, Σy]` of each row of logits `[rows, V]`, with `y = z − max`,
/// `e = exp(y)` and `eₜ = exp(y · inv_t)`: on the CPU from the rows copied to the host
/// ([`exp_sums`], f64 block sums); elsewhere with tensor ops where the logits are (f32 sums),
/// one copy of `6 × rows` values to the host and at most three `[rows, V]` f32 temporaries
/// alive at once (the rollout's logits are `rows × 151,936` on a GPU).
fn row_sums(logits: &Tensor, inv_t: f32) -> Result<Vec<[f64; 6]>> {
    if logits.device().is_cpu() {
        let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        return Ok(host_sums(&rows, inv_t));
    }
    tensor_sums(logits, inv_t)
}

/// [`row_sums`] of rows on the host, rows in parallel ([`exp_sums`]).
fn host_sums(rows: &[Vec<f32>], inv_t: f32) -> Vec<[f64; 6]> {
    rows.par_iter()
        .map(|z| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let [a, b, c, d, e] = exp_sums(z, max, inv_t);
            [max as f64, a, b, c, d, e]
        })
        .collect()
}

/// [`row_sums`] with tensor ops, on any device.
fn tensor_sums(logits: &Tensor, inv_t: f32) -> Result<Vec<[f64; 6]>> {
    let z = logits.to_dtype(DType::F32)?;
    let max = z.max_keepdim(D::Minus1)?;
    let y = z.broadcast_sub(&max)?;
    drop(z);
    let weighted = |e: Tensor| -> Result<(Tensor, Tensor)> {
        Ok((e.sum(D::Minus1)?, (&e * &y)?.sum(D::Minus1)?))
    };
    let (sum1, sum1_y) = weighted(y.exp()?)?;
    // A statement of its own: a temporary inside the call would live through it.
    let et = y.affine(inv_t as f64, 0.0)?.exp()?;
    let (sumt, sumt_y) = weighted(et)?;
    let sum_y = y.sum(D::Minus1)?;
    let all: Vec<Vec<f32>> = Tensor::stack(
        &[
            &max.squeeze(D::Minus1)?,
            &sum1,
            &sum1_y,
            &sumt,
            &sumt_y,
            &sum_y,
        ],
        1,
    )?
    .to_vec2()?;
    Ok(all
        .into_iter()
        .map(|r| std::array::from_fn(|i| r[i] as f64))
        .collect())
}

/// [`token_stats`] on logits rows already on the host (the rollout copies them there to
/// sample), one row per token, rows in parallel. Sums run in f64.
pub fn token_stats_host(rows: &[Vec<f32>], tokens: &[u32], temperature: f32) -> TokenStats {
    let t = if temperature > 0.0 {
        temperature as f64
    } else {
        1.0
    };
    let sums = host_sums(rows, (1.0 / t) as f32);
    let mut st = TokenStats::default();
    for ((s, z), &tok) in sums.into_iter().zip(rows).zip(tokens) {
        let v = RowValues::of(s, t, z.len());
        // The token's log-probabilities in f64, from the f64 logsumexps.
        let picked = z.get(tok as usize).copied().unwrap_or(0.0) as f64;
        st.logprob.push((picked / t - v.lset) as f32);
        st.logprob_t1.push((picked - v.lse1) as f32);
        st.entropy.push(v.entropy as f32);
        st.entropy_t1.push(v.entropy_t1 as f32);
        st.lse_minus_mean.push(v.lse_minus_mean as f32);
    }
    st
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

    /// The sums by tensor ops (every device but the CPU) equal the host's, and so do the
    /// statistics made from them.
    #[test]
    fn the_row_sums_are_the_same_by_tensor_ops_or_on_the_host() -> Result<()> {
        let logits = (Tensor::randn(0f32, 3.0, (6, 4099), &Device::Cpu)? + 5.0)?;
        for inv_t in [1.0f32, 1.0 / 0.7] {
            let host = row_sums(&logits, inv_t)?;
            let ops = tensor_sums(&logits, inv_t)?;
            for (h, o) in host.iter().zip(&ops) {
                for (a, b) in h.iter().zip(o) {
                    assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{h:?} vs {o:?}");
                }
            }
            let (a, b) = (
                from_sums(host, 1.0 / inv_t, 4099),
                from_sums(ops, 1.0 / inv_t, 4099),
            );
            for (x, y) in [
                (&a.lse_t1, &b.lse_t1),
                (&a.lse_t, &b.lse_t),
                (&a.entropy, &b.entropy),
                (&a.entropy_t1, &b.entropy_t1),
                (&a.lse_minus_mean, &b.lse_minus_mean),
            ] {
                for (u, v) in x.iter().zip(y) {
                    assert!((u - v).abs() < 1e-4, "{u} vs {v}");
                }
            }
        }
        // A non-finite logit makes logsumexp − mean non-finite either way.
        let mut bad = logits.to_vec2::<f32>()?;
        bad[2][7] = f32::NAN;
        bad[4][0] = f32::INFINITY;
        let bad = Tensor::new(bad, &Device::Cpu)?;
        for sums in [row_sums(&bad, 1.0)?, tensor_sums(&bad, 1.0)?] {
            let rs = from_sums(sums, 1.0, 4099);
            let finite: Vec<bool> = rs.lse_minus_mean.iter().map(|x| x.is_finite()).collect();
            assert_eq!(finite, [true, true, false, true, false, true]);
        }
        Ok(())
    }

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
