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
pub mod stats;

use std::collections::BTreeSet;

use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::kernels;
use crate::model::Decoder;
use crate::sampling::{
    all_finite, candidates_needed, sample, sample_from_candidates, sample_from_head, SamplingParams,
};
use crate::self_certainty::{sequence_mean, Alignment};
use crate::tokenizer::TextTokenizer;
pub use engine::SlotPlan;
use rayon::prelude::*;
use stats::{row_stats, token_stats_host, TokenStats};

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

/// One decode step's sampling: a token per row (0 for a finishing row) and the statistics of
/// each row's distribution. Off the CPU, when the settings allow ([`candidates_needed`]), only
/// the statistics and each row's largest logits cross to the host ([`sample_on_device`]);
/// otherwise the whole `[rows, vocab]` logits do ([`sample_on_host`]). Both draw the same
/// tokens from the same logits (without top-k, to the rounding of the probabilities).
fn sample_step(
    logits: &Tensor,
    rows: &mut [Row],
    p: &SamplingParams,
) -> Result<(Vec<u32>, TokenStats)> {
    let vocab = logits.dim(1)?;
    if !logits.device().is_cpu() {
        if let Some(m) = candidates_needed(p).filter(|&m| m <= kernels::max_candidates(vocab)) {
            if let Some(step) = sample_on_device(logits, rows, p, m)? {
                return Ok(step);
            }
        }
    }
    sample_on_host(logits, rows, p)
}

/// [`sample_step`] from the full logits copied to the host. Errors when a row's logits are not
/// finite, naming the row.
fn sample_on_host(
    logits: &Tensor,
    rows: &mut [Row],
    p: &SamplingParams,
) -> Result<(Vec<u32>, TokenStats)> {
    let host: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    let sampled: Vec<Result<u32>> = rows
        .par_iter_mut()
        .zip(host.par_iter())
        .map(|(row, z)| match row.finishing {
            true => Ok(0),
            false => sample(z, &row.history, p, &mut row.rng),
        })
        .collect();
    let tokens: Vec<u32> = sampled.iter().map(|t| *t.as_ref().unwrap_or(&0)).collect();
    let st = token_stats_host(&host, &tokens, p.temperature);
    // A non-finite logit makes its row's logsumexp − mean non-finite (or leaves nothing to
    // sample), so the rows are searched only then: no extra pass over the logits per step.
    let suspect =
        sampled.iter().any(Result::is_err) || st.lse_minus_mean.iter().any(|x| !x.is_finite());
    if let Some(i) = suspect
        .then(|| host.iter().position(|z| !all_finite(z)))
        .flatten()
    {
        let o = &rows[i].out;
        candle_core::bail!(
            "the model's logits are not finite (NaN/Inf) at new token {} of prompt {}, sample {}: the weights have diverged",
            o.ids.len() + 1,
            o.prompt_index,
            o.sample_index
        );
    }
    let tokens: Vec<u32> = sampled.into_iter().collect::<Result<_>>()?;
    Ok((tokens, st))
}

/// [`sample_step`] from `m` candidates per row ([`kernels::top_candidates`]) and the statistics
/// computed where the logits are ([`sample_from_candidates`]; without top-k,
/// [`sample_from_head`]); the rows the candidates do not decide (a top-k boundary tie past
/// them, a draw that falls past the head) have their logits copied, together. `None` when some
/// row's logits are not finite (the host path names it).
fn sample_on_device(
    logits: &Tensor,
    rows: &mut [Row],
    p: &SamplingParams,
    m: usize,
) -> Result<Option<(Vec<u32>, TokenStats)>> {
    // One f32 copy of the logits serves both (each converts only what is not f32 already).
    let logits = &logits.to_dtype(candle_core::DType::F32)?;
    let rs = row_stats(logits, p.temperature)?;
    if !rs.all_finite() {
        return Ok(None);
    }
    let vocab = logits.dim(1)?;
    let candidates = kernels::top_candidates(logits, m)?;
    let head = !p.is_greedy() && p.top_k == 0;
    let picks: Vec<Option<(u32, f32)>> = rows
        .par_iter_mut()
        .zip(candidates.par_iter())
        .zip(rs.lse_t().par_iter())
        .map(|((row, c), &lse_t)| match (row.finishing, head) {
            (true, _) => Some((0, 0.0)),
            (false, true) => sample_from_head(c, lse_t, p, &mut row.rng),
            (false, false) => sample_from_candidates(c, m >= vocab, p, &mut row.rng),
        })
        .collect();
    // The rows the candidates do not decide are drawn from their full logits, copied together.
    let undecided: Vec<u32> = (0..rows.len() as u32)
        .filter(|&i| picks[i as usize].is_none())
        .collect();
    let mut full = match undecided.is_empty() {
        true => Vec::new(),
        false => logits
            .index_select(&Tensor::new(undecided.as_slice(), logits.device())?, 0)?
            .to_vec2::<f32>()?,
    }
    .into_iter();
    let mut tokens = Vec::with_capacity(rows.len());
    let mut picked = Vec::with_capacity(rows.len());
    for (i, pick) in picks.into_iter().enumerate() {
        let (token, z) = match pick {
            Some(pick) => pick,
            None => {
                let z = full.next().expect("one full row per undecided row");
                let token = sample(&z, &rows[i].history, p, &mut rows[i].rng)?;
                (token, z[token as usize])
            }
        };
        tokens.push(token);
        picked.push(z);
    }
    Ok(Some((tokens, rs.with_picked(&picked))))
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

fn hits_stop_string(tok: Option<&TextTokenizer>, stops: &[String], ids: &[u32]) -> bool {
    let Some(tok) = tok else { return false };
    if stops.is_empty() {
        return false;
    }
    // Only the tail can contain a new match; decode a window that covers the longest stop string.
    let longest = stops.iter().map(|s| s.len()).max().unwrap_or(0);
    let window = &ids[ids.len().saturating_sub(longest + 2)..];
    tok.decode(window, false)
        .map(|text| stops.iter().any(|s| text.contains(s.as_str())))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::{empty_completion, sample_on_device, sample_on_host, Row};
    use crate::sampling::{candidates_needed, SamplingParams};

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(7);
                rng.set_stream(i as u64);
                Row {
                    prompt_len: 1,
                    rng,
                    history: vec![1],
                    out: empty_completion(0, i, 0),
                    finishing: i == 3,
                }
            })
            .collect()
    }

    /// The candidate path draws the host path's tokens, with the same use of every row's RNG,
    /// over several steps: plain, bf16-rounded logits (ties at the top-k boundary, which fall
    /// back to the row's full logits), and every warper; without top-k, to rounding.
    #[test]
    fn sampling_from_candidates_draws_what_the_full_rows_draw() -> candle_core::Result<()> {
        let (n, vocab) = (12, 3001);
        let settings = [
            SamplingParams::default(),
            SamplingParams::greedy(),
            SamplingParams {
                top_k: 5,
                top_p: 0.8,
                min_p: 0.05,
                ..Default::default()
            },
            SamplingParams {
                temperature: 1.3,
                top_k: 1,
                ..Default::default()
            },
            // No top-k: the head of each row decides most draws, the rest fall back.
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                ..Default::default()
            },
            SamplingParams {
                top_k: 0,
                top_p: 0.9,
                ..Default::default()
            },
            SamplingParams {
                top_k: 0,
                min_p: 0.2,
                ..Default::default()
            },
            SamplingParams {
                top_k: 0,
                top_p: 0.95,
                min_p: 0.01,
                ..Default::default()
            },
        ];
        // Seeded logits, N(0, 2²) by Box–Muller: the test sees the same draws every run.
        let mut gen = ChaCha8Rng::seed_from_u64(11);
        let mut normal = || -> f32 {
            let (u1, u2): (f32, f32) = (gen.random(), gen.random());
            2.0 * (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        };
        for (s, p) in settings.iter().enumerate() {
            let m = candidates_needed(p).unwrap();
            let (mut a, mut b) = (rows(n), rows(n));
            // Without top-k the host path's probabilities are f32 sums over the whole row and
            // the head's come from the row's logsumexp: a uniform within their rounding of a
            // boundary between two tokens may pick either.
            let exact = p.is_greedy() || p.top_k > 0;
            let mut differ = 0;
            for step in 0..4u64 {
                let values: Vec<f32> = (0..n * vocab).map(|_| normal()).collect();
                let mut logits = Tensor::from_vec(values, (n, vocab), &Device::Cpu)?;
                if step == 1 {
                    // Whole numbers: a top-50 boundary tie longer than the 64 spare
                    // candidates, so rows fall back to their full logits.
                    logits = logits.round()?;
                }
                if step == 3 {
                    // Quarters: ties among the largest logits within the candidates.
                    logits = (logits * 4.0)?.round()?.affine(0.25, 0.0)?;
                }
                if step == 3 {
                    logits = logits.to_dtype(DType::BF16)?;
                }
                let (ta, sa) = sample_on_host(&logits, &mut a, p)?;
                let (tb, sb) = sample_on_device(&logits, &mut b, p, m)?.unwrap();
                if exact {
                    assert_eq!(ta, tb, "settings {s}, step {step}");
                }
                differ += ta.iter().zip(&tb).filter(|(x, y)| x != y).count();
                for (x, y) in [
                    (&sa.logprob, &sb.logprob),
                    (&sa.logprob_t1, &sb.logprob_t1),
                    (&sa.entropy, &sb.entropy),
                    (&sa.entropy_t1, &sb.entropy_t1),
                    (&sa.lse_minus_mean, &sb.lse_minus_mean),
                ] {
                    // Row 3 is finishing: its token's values are never read.
                    let same = |i: usize| i != 3 && ta[i] == tb[i];
                    for (i, (u, v)) in x.iter().zip(y).enumerate().filter(|e| same(e.0)) {
                        assert!(
                            (u - v).abs() < 1e-4,
                            "settings {s}, step {step}, row {i}: {u} vs {v}"
                        );
                    }
                }
            }
            assert!(
                differ <= 1,
                "settings {s}: {differ} of {} draws differ",
                4 * n
            );
            let next = |r: &mut Vec<Row>| -> Vec<u32> {
                r.iter_mut().map(|r| r.rng.random::<u32>()).collect()
            };
            assert_eq!(
                next(&mut a),
                next(&mut b),
                "RNG streams diverged, settings {s}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_non_finite_row_is_left_to_the_host_path_which_names_it() -> candle_core::Result<()> {
        let mut logits = vec![0.5f32; 4 * 100];
        logits[2 * 100 + 9] = f32::NAN;
        let logits = Tensor::from_vec(logits, (4, 100), &Device::Cpu)?;
        let p = SamplingParams::default();
        let mut r = rows(4);
        assert!(sample_on_device(&logits, &mut r, &p, 114)?.is_none());
        let err = sample_on_host(&logits, &mut r, &p).unwrap_err().to_string();
        assert!(err.contains("prompt 0, sample 2"), "{err}");
        Ok(())
    }
}
