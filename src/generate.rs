//! Single-sequence generation with a KV cache: prefill the prompt once, then one token per step.
//! (The batched group sampler for training is the rollout engine.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use candle_core::{Result, Tensor};
use rand::SeedableRng;
use serde::Serialize;

use crate::model::{Decoder, KvCache};
use crate::sampling::{sample, SamplingParams};

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop id was generated (it is the last completion token).
    Eos,
    /// `max_new_tokens` was reached.
    Length,
    /// A stop string appeared in the text.
    Stop,
}

/// One generated completion with timings.
#[derive(Debug, Clone)]
pub struct Generation {
    pub completion_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

/// Generates up to `max_new_tokens` after `prompt_ids`, stopping after any id in `stop_ids`.
pub fn generate(
    decoder: &Decoder,
    prompt_ids: &[u32],
    params: &SamplingParams,
    max_new_tokens: usize,
    stop_ids: &BTreeSet<u32>,
    seed: u64,
) -> Result<Generation> {
    if prompt_ids.is_empty() {
        candle_core::bail!("the prompt is empty: at least one token is needed to generate from");
    }
    let device = decoder.device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut cache = KvCache::new(decoder.config().num_hidden_layers);
    let mut history = prompt_ids.to_vec();
    let mut completion = Vec::new();
    let mut finish = FinishReason::Length;

    let start = Instant::now();
    let n = prompt_ids.len();
    let ids = Tensor::new(prompt_ids, device)?.unsqueeze(0)?;
    let pos = Tensor::arange(0u32, n as u32, device)?.unsqueeze(0)?;
    let mut logits = last_logits(decoder, &ids, &pos, &mut cache)?;
    let prefill_time = start.elapsed();

    let start = Instant::now();
    for step in 0..max_new_tokens {
        let next = sample(&logits, &history, params, &mut rng);
        completion.push(next);
        history.push(next);
        if stop_ids.contains(&next) {
            finish = FinishReason::Eos;
            break;
        }
        if step + 1 == max_new_tokens {
            break;
        }
        let ids = Tensor::new(&[[next]], device)?;
        let pos = Tensor::new(&[[(n + step) as u32]], device)?;
        logits = last_logits(decoder, &ids, &pos, &mut cache)?;
    }
    Ok(Generation {
        completion_ids: completion,
        finish_reason: finish,
        prefill_time,
        decode_time: start.elapsed(),
    })
}

/// Logits of the last position of a one-row batch, as f32 on the host.
fn last_logits(
    decoder: &Decoder,
    ids: &Tensor,
    pos: &Tensor,
    cache: &mut KvCache,
) -> Result<Vec<f32>> {
    let hidden = decoder.hidden_states(ids, pos, None, Some(cache))?;
    let t = hidden.dim(1)?;
    let logits = decoder.logits(&hidden.narrow(1, t - 1, 1)?)?;
    logits
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()
}
