//! Group sampling for GRPO: B prompts × G samples with a shared-prefix KV cache, batched decode,
//! finished rows retired, and per-token log-probs, entropy and self-certainty recorded from the
//! logits row that produced each token (no second forward; spec §2.2, §4.3 step 4).
//!
//! Each prompt is prefilled once; its G rows attend to that one copy of its keys and values.
//! Rows decode in slots of a KV cache allocated once within `kv_budget` ([`engine`]): as many
//! as fit run together and the others start as slots free up (continuous batching). Every row
//! owns a ChaCha8 stream (`seed`, stream = sample index), so its samples do not depend on which
//! other rows share the batch. After a row's last token, the row is fed once more so the
//! distribution *after* the last token is known (open-r1 alignment, spec §2.2); then its slot
//! is freed.

pub mod engine;
mod sample;
pub mod stats;

use std::collections::BTreeSet;

use candle_core::Result;
use rand_chacha::ChaCha8Rng;

use crate::model::Decoder;
use crate::sampling::SamplingParams;
use crate::self_certainty::{sequence_mean, Alignment};
use crate::tokenizer::TextTokenizer;
pub use engine::SlotPlan;

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop id was generated (it is the last completion token).
    Eos,
    /// `max_new_tokens` was reached.
    Length,
    /// A stop string appeared in the text.
    Stop,
}

/// How to sample a group.
#[derive(Debug, Clone)]
pub struct RolloutConfig {
    /// G, completions per prompt.
    pub num_generations: usize,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// A completion ends after any of these ids (included in the completion and its mask).
    pub stop_ids: BTreeSet<u32>,
    /// A completion also ends once its text contains one of these strings.
    pub stop_strings: Vec<String>,
    /// Feed each finished row once more to record the distribution after its last token
    /// (needed for the open-r1 alignment).
    pub keep_after_last: bool,
    /// Bytes the KV cache may take (`rollout_kv_budget`): that many rows decode at once and
    /// the others wait for a free slot. `None`: every row at once.
    pub kv_budget: Option<u64>,
    /// Prompts prefilled together in one left-padded forward when their groups start.
    /// `None`: one at a time on the CPU (completions then do not depend on the budget, bit for
    /// bit), [`engine::PREFILL_BATCH`] on other devices. 0 is taken as 1.
    pub prefill_batch: Option<usize>,
}

/// One prompt to sample from.
#[derive(Debug, Clone)]
pub struct PromptRequest {
    pub ids: Vec<u32>,
    /// Seed of this prompt's G streams (row g uses stream g).
    pub seed: u64,
    /// This prompt's own limit on new tokens, at most the config's `max_new_tokens` (`None`:
    /// that one), as vLLM's per-request `max_tokens`; at least one token is always sampled.
    pub max_new_tokens: Option<usize>,
}

/// A sampled or scored completion with its per-token statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub prompt_index: usize,
    pub sample_index: usize,
    pub ids: Vec<u32>,
    pub finish_reason: FinishReason,
    /// Tokens in the completion mask: up to and including the first stop id.
    pub mask_len: usize,
    /// log p(token_k) under softmax(z/T).
    pub logprobs: Vec<f32>,
    /// log p(token_k) under softmax(z).
    pub logprobs_t1: Vec<f32>,
    /// Entropy of softmax(z/T) at each generating row.
    pub entropy: Vec<f32>,
    /// Entropy of softmax(z) (untempered) at each generating row.
    pub entropy_t1: Vec<f32>,
    /// logsumexp − mean of the row that generated token k (paper rows, without − ln V).
    pub lse_minus_mean: Vec<f32>,
    /// logsumexp − mean of the row after the last token, if it was computed.
    pub lse_minus_mean_after: Option<f32>,
    /// V, the logits width (padded vocabulary included).
    pub vocab_width: usize,
}

impl Completion {
    /// Per-token KL(U‖p) (nats, with − ln V) over the mask, for the chosen alignment.
    pub fn token_self_certainty(&self, alignment: Alignment) -> Vec<f32> {
        let ln_v = (self.vocab_width as f64).ln() as f32;
        let n = self.mask_len;
        let rows: Vec<f32> = match alignment {
            Alignment::Paper => self.lse_minus_mean[..n].to_vec(),
            Alignment::Openr1 => {
                // Rows after tokens 1..n: the generating rows of tokens 2..n, then the row after
                // token n (the next generating row when the mask stops before the end).
                let mut rows: Vec<f32> = self
                    .lse_minus_mean
                    .iter()
                    .skip(1)
                    .take(n)
                    .copied()
                    .collect();
                if rows.len() < n {
                    rows.extend(self.lse_minus_mean_after);
                }
                rows
            }
        };
        rows.iter().map(|x| x - ln_v).collect()
    }

    /// Sequence self-certainty, KL(U‖p) averaged over the mask (0 for an empty completion).
    pub fn self_certainty(&self, alignment: Alignment) -> f32 {
        let per = self.token_self_certainty(alignment);
        sequence_mean(&per, per.len())
    }

    /// The value open-r1-intuitor logs: open-r1 rows, without − ln V.
    pub fn self_certainty_openr1_logged(&self) -> f32 {
        if self.mask_len == 0 {
            return 0.0;
        }
        self.self_certainty(Alignment::Openr1) + (self.vocab_width as f64).ln() as f32
    }

    /// Mean log-prob (T = 1) over the mask.
    pub fn mean_logprob(&self) -> f32 {
        sequence_mean(&self.logprobs_t1, self.mask_len)
    }
}

/// Per-row decoding state.
struct Row {
    prompt_len: usize,
    rng: ChaCha8Rng,
    history: Vec<u32>,
    out: Completion,
    /// The last token is sampled; the next logits row is the distribution after it.
    finishing: bool,
}

/// Samples `cfg.num_generations` completions for every prompt; the result is prompt-major
/// (the G completions of prompt p are adjacent, sample index 0..G).
pub fn rollout(
    decoder: &Decoder,
    prompts: &[PromptRequest],
    cfg: &RolloutConfig,
    tokenizer: Option<&TextTokenizer>,
) -> Result<Vec<Completion>> {
    let g = cfg.num_generations;
    if prompts.is_empty() || g == 0 {
        return Ok(Vec::new());
    }
    if let Some(p) = prompts.iter().position(|p| p.ids.is_empty()) {
        candle_core::bail!("prompt {p} is empty: at least one token is needed to generate from");
    }
    // The weights are fixed for the whole rollout: lay them out for decoding once.
    let decoder = &decoder.for_decoding()?;
    let plan = slot_plan_for(decoder, prompts, cfg).map_err(candle_core::Error::msg)?;
    engine::run(decoder, prompts, cfg, plan, tokenizer)
}

/// The KV layout of a rollout of `prompts` under `cfg.kv_budget`, for `decoder`'s shapes and
/// dtype: room for the longest prompt and `max_new_tokens` per row.
pub fn slot_plan_for(
    decoder: &Decoder,
    prompts: &[PromptRequest],
    cfg: &RolloutConfig,
) -> std::result::Result<SlotPlan, String> {
    engine::slot_plan(
        cfg.kv_budget,
        decoder
            .config()
            .kv_bytes_per_position(decoder.dtype().size_in_bytes()),
        prompts.len() * cfg.num_generations,
        prompts.len(),
        cfg.max_new_tokens.max(1),
        prompts.iter().map(|p| p.ids.len()).max().unwrap_or(1),
    )
}

fn empty_completion(prompt_index: usize, sample_index: usize, vocab_width: usize) -> Completion {
    Completion {
        prompt_index,
        sample_index,
        ids: Vec::new(),
        finish_reason: FinishReason::Length,
        mask_len: 0,
        logprobs: Vec::new(),
        logprobs_t1: Vec::new(),
        entropy: Vec::new(),
        entropy_t1: Vec::new(),
        lse_minus_mean: Vec::new(),
        lse_minus_mean_after: None,
        vocab_width,
    }
}

/// Whether the text of `ids` followed by `next` contains one of `stops` in its tail.
fn hits_stop_string(tok: &TextTokenizer, stops: &[String], ids: &[u32], next: u32) -> bool {
    // Only the tail can contain a new match; decode a window that covers the longest stop string.
    let longest = stops.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut window = ids[ids.len().saturating_sub(longest + 1)..].to_vec();
    window.push(next);
    tok.decode(&window, false)
        .map(|text| stops.iter().any(|s| text.contains(s.as_str())))
        .unwrap_or(false)
}
