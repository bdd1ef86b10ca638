//! Per-token statistics of next-token distributions, computed on the device from one logits row
//! per token, in the same pass that sampled it (no second forward; spec §2.2, §4.1).

use candle_core::{DType, Result, Tensor, D};

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
    let t = if temperature > 0.0 {
        temperature as f64
    } else {
        1.0
    };
    let z = logits.to_dtype(DType::F32)?;
    let idx = Tensor::new(tokens, z.device())?.unsqueeze(1)?;
    let picked = z.gather(&idx, 1)?.squeeze(1)?;
    let lse = |x: &Tensor| -> Result<Tensor> {
        let max = x.max_keepdim(D::Minus1)?;
        x.broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            .add(&max)?
            .squeeze(D::Minus1)
    };
    let lse1 = lse(&z)?;
    let zt = (&z / t)?;
    let lset = lse(&zt)?;
    let logp_t = zt.broadcast_sub(&lset.unsqueeze(1)?)?;
    let entropy = (logp_t.exp()? * &logp_t)?.sum(D::Minus1)?.neg()?;
    Ok(TokenStats {
        logprob: ((&picked / t)? - &lset)?.to_vec1()?,
        logprob_t1: (&picked - &lse1)?.to_vec1()?,
        entropy: entropy.to_vec1()?,
        lse_minus_mean: lse_minus_mean(&z)?.to_vec1()?,
    })
}
