//! Scoring given completions: one no-grad forward over prompt ⊕ completion per item, the same
//! per-token statistics the rollout engine records (spec §2.3 `self_certainty_seq`). This is the
//! building block of `intuitor score` and of best-of-N selection.

use std::collections::BTreeSet;

use candle_core::{Result, Tensor};

use crate::model::Decoder;
use crate::rollout::stats::token_stats;
use crate::rollout::{Completion, FinishReason};
use crate::self_certainty::completion_mask_len;

/// Scores `completion_ids` after `prompt_ids` with a single forward pass.
///
/// Rows P−1 … P+C−1 of the logits are kept: the first C generate the completion tokens (paper
/// alignment), the last is the distribution after the final token (open-r1 alignment needs it).
pub fn score_completion(
    decoder: &Decoder,
    prompt_ids: &[u32],
    completion_ids: &[u32],
    temperature: f32,
    stop_ids: &BTreeSet<u32>,
) -> Result<Completion> {
    if prompt_ids.is_empty() {
        candle_core::bail!("the prompt is empty: scoring needs at least one prompt token");
    }
    let device = decoder.device();
    let (p, c) = (prompt_ids.len(), completion_ids.len());
    let all = [prompt_ids, completion_ids].concat();
    let ids = Tensor::new(all, device)?.unsqueeze(0)?;
    let pos = Tensor::arange(0u32, (p + c) as u32, device)?.unsqueeze(0)?;
    let hidden = decoder.hidden_states(&ids, &pos, None, None)?;
    let logits = decoder
        .logits(&hidden.narrow(1, p - 1, c + 1)?)?
        .squeeze(0)?;
    // The row after the last token scores no token; 0 is a placeholder for the gather.
    let mut tokens = completion_ids.to_vec();
    tokens.push(0);
    let st = token_stats(&logits, &tokens, temperature)?;
    // logsumexp − mean is finite exactly when every logit of the row is.
    if let Some(k) = st.lse_minus_mean.iter().position(|x| !x.is_finite()) {
        candle_core::bail!(
            "the model's logits are not finite (NaN/Inf) at completion position {k}: the weights have diverged"
        );
    }
    let mask_len = completion_mask_len(completion_ids, stop_ids);
    Ok(Completion {
        prompt_index: 0,
        sample_index: 0,
        ids: completion_ids.to_vec(),
        finish_reason: if mask_len < c
            || completion_ids.last().is_some_and(|t| stop_ids.contains(t))
        {
            FinishReason::Eos
        } else {
            FinishReason::Length
        },
        mask_len,
        logprobs: st.logprob[..c].to_vec(),
        logprobs_t1: st.logprob_t1[..c].to_vec(),
        entropy: st.entropy[..c].to_vec(),
        entropy_t1: st.entropy_t1[..c].to_vec(),
        lse_minus_mean: st.lse_minus_mean[..c].to_vec(),
        lse_minus_mean_after: Some(st.lse_minus_mean[c]),
        vocab_width: decoder.config().vocab_size,
    })
}
