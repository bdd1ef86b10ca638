//! Logits → next token: repetition penalty, temperature, top-k, top-p, min-p (in HF
//! `generate`'s order), then a draw from the kept distribution; greedy when temperature is 0.
//! The RNG is passed in, so each sequence can own its stream.

use candle_core::Result;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// User-facing sampling settings. Neutral values switch a filter off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 0.0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the penalty (HF `repetition_penalty`).
    pub repetition_penalty: f32,
}

impl Default for SamplingParams {
    /// The reference rollout settings (spec §4.3 step 4): T 0.9, top-k 50, top-p 1, min-p 0.
    fn default() -> Self {
        Self {
            temperature: 0.9,
            top_k: 50,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingParams {
    /// Checks the settings: temperature finite and ≥ 0, top-p and min-p in [0, 1], repetition
    /// penalty finite and > 0. Errors with the first one out of range: its name (the config
    /// key, as a one-key list) and what it must be.
    pub fn check(&self) -> std::result::Result<(), (&'static [&'static str], String)> {
        let bad = |key: &'static [&'static str], want: &str, got: f32| {
            Err((key, format!("must be {want}, got {got}")))
        };
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(
                &["temperature"],
                "finite and ≥ 0 (0 = greedy)",
                self.temperature,
            );
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad(&["top_p"], "in [0, 1]", self.top_p);
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(&["min_p"], "in [0, 1]", self.min_p);
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return bad(
                &["repetition_penalty"],
                "finite and > 0 (1 = off)",
                self.repetition_penalty,
            );
        }
        Ok(())
    }

    /// [`Self::check`] for command-line flags: the error names the flag (`--top-p`).
    pub fn check_flags(&self) -> std::result::Result<(), String> {
        self.check()
            .map_err(|(key, msg)| format!("--{} {msg}", key.join("").replace('_', "-")))
    }

    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// HF `RepetitionPenaltyLogitsProcessor`: logits of tokens already in the sequence are divided by
/// `penalty` when positive and multiplied when negative.
pub fn apply_repetition_penalty(logits: &mut [f32], previous: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &t in previous {
        if let Some(s) = seen.get_mut(t as usize) {
            *s = true;
        }
    }
    for (z, &s) in logits.iter_mut().zip(&seen) {
        if s {
            *z = if *z < 0.0 { *z * penalty } else { *z / penalty };
        }
    }
}

/// Index of the largest value (the first one on ties, as `torch.argmax`).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Whether every logit of a row is finite. A NaN or infinite logit (a diverged model) can be
/// neither sampled from nor scored: callers stop with an error naming where it appeared.
pub fn all_finite(logits: &[f32]) -> bool {
    logits.iter().all(|z| z.is_finite())
}

/// The distribution a token is drawn from: temperature, then top-k, top-p and min-p (HF
/// `generate`'s warper order). Returns `(token, probability)` pairs sorted by descending
/// probability; probabilities are renormalised over the kept set, which always holds at least
/// the most likely token. Non-finite logits are never kept; a row without a finite logit is an
/// error.
///
/// Top-k uses a linear-time selection instead of a full sort, so a 49k-token vocabulary costs
/// about as much as one pass over the row.
pub fn kept_distribution(logits: &[f32], p: &SamplingParams) -> Result<Vec<(u32, f32)>> {
    // top-k (HF TopKLogitsWarper): values strictly below the k-th largest are removed.
    let mut finite: Vec<f32> = logits.iter().copied().filter(|z| z.is_finite()).collect();
    let threshold = if p.top_k > 0 && p.top_k < finite.len() {
        let (_, kth, _) = finite.select_nth_unstable_by(p.top_k - 1, |a, b| b.total_cmp(a));
        *kth
    } else {
        f32::NEG_INFINITY
    };
    let kept: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, &z)| z >= threshold && z.is_finite())
        .map(|(i, &z)| (i as u32, z))
        .collect();
    if kept.is_empty() {
        candle_core::bail!(
            "no finite logit to sample from (all {} are NaN or infinite)",
            logits.len()
        );
    }
    Ok(warp(kept, p))
}

/// The rest of [`kept_distribution`] after top-k: `kept` holds the surviving `(token, logit)`
/// pairs in vocabulary order (at least one); temperature, top-p and min-p, renormalised.
fn warp(mut kept: Vec<(u32, f32)>, p: &SamplingParams) -> Vec<(u32, f32)> {
    let t = if p.temperature > 0.0 {
        p.temperature
    } else {
        1.0
    };
    // The most likely token, before z / T can overflow (the first one on ties).
    let top = kept
        .iter()
        .fold(kept[0], |best, &e| if e.1 > best.1 { e } else { best })
        .0;
    for e in kept.iter_mut() {
        e.1 /= t;
    }
    // Stable sort: ties keep vocabulary order.
    kept.sort_by(|a, b| b.1.total_cmp(&a.1));
    let max = kept[0].1;
    let sum: f32 = kept.iter().map(|&(_, z)| (z - max).exp()).sum();
    if !sum.is_finite() {
        // A temperature so small that z / T overflows: the limit is the most likely token.
        return vec![(top, 1.0)];
    }
    for e in kept.iter_mut() {
        e.1 = (e.1 - max).exp() / sum;
    }
    // top-p (HF TopPLogitsWarper): from the least likely, remove tokens while the cumulative
    // probability is ≤ 1 − top_p; the most likely token always stays.
    if p.top_p < 1.0 {
        let mut cum = 0.0f64;
        let mut keep = kept.len();
        for i in (1..kept.len()).rev() {
            cum += kept[i].1 as f64;
            if cum <= 1.0 - p.top_p as f64 {
                keep = i;
            } else {
                break;
            }
        }
        kept.truncate(keep);
    }
    // min-p (HF MinPLogitsWarper): remove tokens with p < min_p · p_max; the most likely token
    // always stays (HF's `min_tokens_to_keep` = 1), also when min_p > 1.
    if p.min_p > 0.0 {
        let threshold = p.min_p * kept[0].1;
        let top = kept[0];
        kept.retain(|&(_, q)| q >= threshold);
        if kept.is_empty() {
            kept.push(top);
        }
    }
    let sum: f32 = kept.iter().map(|&(_, q)| q).sum();
    for e in kept.iter_mut() {
        e.1 /= sum;
    }
    kept
}

/// Picks the next token from one row of raw logits. `previous` feeds the repetition penalty.
/// Errors when the row has no finite logit ([`kept_distribution`]).
pub fn sample<R: Rng>(
    logits: &[f32],
    previous: &[u32],
    p: &SamplingParams,
    rng: &mut R,
) -> Result<u32> {
    let penalised;
    let z = if p.repetition_penalty != 1.0 {
        let mut v = logits.to_vec();
        apply_repetition_penalty(&mut v, previous, p.repetition_penalty);
        penalised = v;
        &penalised[..]
    } else {
        logits
    };
    if p.is_greedy() {
        return Ok(argmax(z) as u32);
    }
    Ok(draw(&kept_distribution(z, p)?, rng))
}

/// How many of a row's largest logits (after the repetition penalty) these settings sample
/// from: [`sample_from_candidates`] needs the top-k and a margin of ties past the k-th (greedy:
/// one), [`sample_from_head`] (no top-k) [`HEAD_CANDIDATES`].
pub fn candidates_needed(p: &SamplingParams) -> usize {
    const TIE_MARGIN: usize = 64;
    match p.is_greedy() {
        true => 1 + TIE_MARGIN,
        false if p.top_k > 0 => p.top_k + TIE_MARGIN,
        false => HEAD_CANDIDATES,
    }
}

/// [`sample`] from a row's largest finite logits alone: `candidates` are `(token, logit)` pairs
/// holding the row's `candidates.len()` largest values (any order); `complete` when they are the
/// whole row. Draws exactly what [`sample`] draws from the full row (the same token, the same
/// use of `rng`) and returns the token with its logit; `None`, with `rng` untouched, when a tie
/// at the k-th value (the maximum, for greedy) may continue past the candidates, so that the
/// full row is needed. The candidates are of the logits after any repetition penalty: `p`'s
/// penalty is not applied here.
pub fn sample_from_candidates<R: Rng>(
    candidates: &[(u32, f32)],
    complete: bool,
    p: &SamplingParams,
    rng: &mut R,
) -> Option<(u32, f32)> {
    let c = sorted_finite(candidates);
    let k = match p.is_greedy() {
        true => 1,
        false if p.top_k > 0 => p.top_k.min(c.len()),
        false => c.len(),
    };
    let kth = c.get(k.checked_sub(1)?)?.1;
    if !complete && (c.len() <= k || c[c.len() - 1].1 >= kth) {
        return None;
    }
    if p.is_greedy() {
        return Some(c[0]);
    }
    let mut kept: Vec<(u32, f32)> = c.iter().copied().filter(|&(_, z)| z >= kth).collect();
    kept.sort_by_key(|&(id, _)| id);
    let token = draw(&warp(kept, p), rng);
    c.into_iter().find(|e| e.0 == token)
}

/// The finite candidates, descending by logit, ties in vocabulary order (the order [`sample`]
/// walks a kept distribution in).
fn sorted_finite(candidates: &[(u32, f32)]) -> Vec<(u32, f32)> {
    let mut c: Vec<(u32, f32)> = candidates
        .iter()
        .copied()
        .filter(|(_, z)| z.is_finite())
        .collect();
    c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    c
}

/// Candidates [`sample_from_head`] takes: enough that at most a few percent of a language
/// model's next-token mass usually lies past them, within [`crate::kernels::max_candidates`] of
/// the common vocabularies.
pub const HEAD_CANDIDATES: usize = 128;

/// [`sample`] without top-k (temperature, then top-p and min-p over the whole vocabulary) from
/// a row's largest logits alone and `lse_t`, the logsumexp of the whole row at the temperature:
/// each token's probability is `exp(z / T − lse_t)`. Returns the token and its logit when the
/// candidates decide the draw (top-p or min-p keeps only tokens among them, or the uniform falls
/// on them); `None`, with `rng` untouched, when the draw needs the rest of the row (then
/// [`sample`] on the full row draws with the same uniform). Draws what [`sample`] draws, to the
/// rounding of the probabilities. Not for greedy or top-k; as in [`sample_from_candidates`],
/// the candidates and `lse_t` are of the logits after any repetition penalty.
pub fn sample_from_head<R: Rng + Clone>(
    candidates: &[(u32, f32)],
    lse_t: f32,
    p: &SamplingParams,
    rng: &mut R,
) -> Option<(u32, f32)> {
    let mut c = sorted_finite(candidates);
    // The row may hold more tokens of the candidates' smallest value than they include (in no
    // particular order): only the larger values are the start of the full row's order.
    if let Some(&(_, last)) = c.last() {
        c.retain(|e| e.1 > last);
    }
    // z / T as the device computed it for `lse_t` (f32, times 1 / T), or the two disagree by
    // more than rounding at small temperatures.
    let inv_t = match p.temperature > 0.0 {
        true => (1.0 / p.temperature as f64) as f32,
        false => 1.0,
    };
    let q: Vec<f64> = c
        .iter()
        .map(|&(_, z)| ((z * inv_t) as f64 - lse_t as f64).exp())
        .collect();
    // Probabilities that are not finite or sum past 1 (an overflowing temperature): the full
    // row decides.
    let mass: f64 = q.iter().sum();
    if !mass.is_finite() || mass > 1.0 + 1e-3 || q.is_empty() {
        return None;
    }
    // top-p keeps the shortest head whose mass reaches top_p (HF removes a token when the mass
    // of it and all less likely ones is ≤ 1 − top_p); unknown when the candidates fall short.
    let mut kept = match p.top_p < 1.0 {
        true => {
            let mut head = 0.0;
            Some(
                q.iter().position(|&x| {
                    head += x;
                    head >= p.top_p as f64
                })? + 1,
            )
        }
        false => None,
    };
    if p.min_p > 0.0 {
        let threshold = p.min_p as f64 * *q.first()?;
        let reach = q.iter().take_while(|&&x| x >= threshold).count().max(1);
        kept = match kept {
            Some(n) => Some(n.min(reach)),
            None if reach < q.len() => Some(reach),
            None => return None,
        };
    }
    match kept {
        Some(n) => {
            let sum: f64 = q[..n].iter().sum();
            let u: f64 = rng.random();
            Some(c[landing(u, q[..n].iter().map(|x| x / sum)).unwrap_or(n - 1)])
        }
        // The whole vocabulary is kept: the candidates decide when the uniform falls on them.
        None => {
            let i = landing(rng.clone().random(), q.iter().copied())?;
            let _: f64 = rng.random();
            Some(c[i])
        }
    }
}

/// Where the uniform `u` lands among probabilities laid end to end: the first index at which
/// their running sum (f64) passes `u`; `None` when it never does (rounding short of 1).
fn landing(u: f64, probabilities: impl IntoIterator<Item = f64>) -> Option<usize> {
    let mut cum = 0.0;
    probabilities.into_iter().position(|q| {
        cum += q;
        u < cum
    })
}

/// Draws from a kept distribution (descending probabilities summing to 1) with one uniform.
fn draw<R: Rng>(kept: &[(u32, f32)], rng: &mut R) -> u32 {
    let i = landing(rng.random(), kept.iter().map(|&(_, q)| q as f64));
    kept[i.unwrap_or(kept.len() - 1)].0
}

#[cfg(test)]
#[path = "sampling_tests.rs"]
mod tests;
