//! One decode step's sampling (spec §4.3 step 4): a token per row from its logits row, with the
//! per-token statistics, on the host or, off the CPU, mostly where the logits are (issue 17).

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::stats::{logsumexp_at, row_stats, token_stats_host, TokenStats};
use super::Row;
use crate::kernels;
use crate::sampling::{
    all_finite, candidates_needed, sample, sample_from_candidates, sample_from_head, SamplingParams,
};

/// One decode step's sampling: a token per row (0 for a finishing row) and the statistics of
/// each row's distribution. Off the CPU, when the candidates the settings need fit one sort
/// ([`candidates_needed`] ≤ [`kernels::max_candidates`]: top-k up to 192 for Qwen2.5's 151,936
/// tokens, or no top-k), only the statistics, each row's largest logits and the rows they do
/// not decide cross to the host ([`sample_on_device`]); otherwise, and on the CPU, the whole
/// `[rows, vocab]` logits are read there ([`sample_on_host`]). Both draw the same tokens from
/// the same logits (without top-k, to the rounding of the probabilities).
pub(super) fn sample_step(
    logits: &Tensor,
    rows: &mut [Row],
    p: &SamplingParams,
) -> Result<(Vec<u32>, TokenStats)> {
    let vocab = logits.dim(1)?;
    if !logits.device().is_cpu() {
        let m = candidates_needed(p);
        if m <= kernels::max_candidates(vocab) {
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
/// them, a draw that falls past the head) have their logits copied, together. A repetition
/// penalty is applied where the logits are ([`penalised`]) and changes only what is drawn
/// from: the statistics score the model's own distribution, as on the host. `None` when some
/// row's logits are not finite (the host path names it), or a row has no token in the
/// vocabulary to pad its penalty index with.
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
    let penalty = p.repetition_penalty;
    let head = !p.is_greedy() && p.top_k == 0;
    let (drawn, lse_t) = match penalty != 1.0 {
        true => {
            let Some(z) = penalised(logits, rows, penalty)? else {
                return Ok(None);
            };
            // Only the head path weighs candidates by the (penalised) row's logsumexp.
            let lse_t = match head {
                true => logsumexp_at(&z, p.temperature)?,
                false => vec![0.0; rows.len()],
            };
            (z, lse_t)
        }
        false => (logits.clone(), rs.lse_t().to_vec()),
    };
    // The candidates are of the penalised logits: the warpers must not apply it again.
    let warp = SamplingParams {
        repetition_penalty: 1.0,
        ..*p
    };
    let candidates = kernels::top_candidates(&drawn, m)?;
    let picks: Vec<Option<(u32, f32)>> = rows
        .par_iter_mut()
        .zip(candidates.par_iter())
        .zip(lse_t.par_iter())
        .map(|((row, c), &lse_t)| match (row.finishing, head) {
            (true, _) => Some((0, 0.0)),
            (false, true) => sample_from_head(c, lse_t, &warp, &mut row.rng),
            (false, false) => sample_from_candidates(c, m >= vocab, &warp, &mut row.rng),
        })
        .collect();
    // The rows the candidates do not decide are drawn from their full logits (the model's; the
    // host sampler applies the penalty), copied together.
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
    if penalty != 1.0 {
        // The statistics take the model's logit of each token, not the penalised one.
        let idx = Tensor::new(tokens.as_slice(), logits.device())?.unsqueeze(1)?;
        picked = logits.gather(&idx, 1)?.squeeze(1)?.to_vec1()?;
    }
    Ok(Some((tokens, rs.with_picked(&picked))))
}

/// HF `RepetitionPenaltyLogitsProcessor` where the logits `[rows, V]` (f32) are: the logit of
/// every token already in a row's history is divided by `penalty` when positive and multiplied
/// when negative (the same f32 arithmetic as [`crate::sampling::apply_repetition_penalty`]).
/// Only each row's distinct history tokens cross to the device. `None` when a row has no
/// token in the vocabulary yet (nothing to pad its index with).
fn penalised(logits: &Tensor, rows: &[Row], penalty: f32) -> Result<Option<Tensor>> {
    let vocab = logits.dim(1)?;
    let seen: Vec<Vec<u32>> = rows
        .par_iter()
        .map(|r| {
            let mut s: Vec<u32> = r
                .history
                .iter()
                .copied()
                .filter(|&t| (t as usize) < vocab)
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    if seen.iter().any(Vec::is_empty) {
        return Ok(None);
    }
    let width = seen.iter().map(Vec::len).max().unwrap_or(1);
    // Padded with a row's own first token: writing its penalised logit twice is harmless.
    let index: Vec<u32> = seen
        .iter()
        .flat_map(|s| {
            s.iter()
                .copied()
                .chain(std::iter::repeat_n(s[0], width - s.len()))
        })
        .collect();
    let device = logits.device();
    let index = Tensor::from_vec(index, (rows.len(), width), device)?;
    let z = logits.gather(&index, 1)?;
    let penalty = Tensor::new(&[penalty], device)?;
    let z = z
        .lt(0.0)?
        .where_cond(&z.broadcast_mul(&penalty)?, &z.broadcast_div(&penalty)?)?;
    let out = logits.copy()?;
    out.scatter_set(&index, &z, 1)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::{empty_completion, Row};
    use super::{sample_on_device, sample_on_host};
    use crate::sampling::{candidates_needed, SamplingParams};

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(7);
                rng.set_stream(i as u64);
                Row {
                    prompt_len: 1,
                    rng,
                    // 400 distinct tokens, a repeated run and one past the vocabulary of
                    // the tests below (the repetition penalty's input).
                    history: (0..400u32)
                        .chain(0..20)
                        .map(|j| (j * 7 + i as u32 * 3) % 3001)
                        .chain([5000])
                        .collect(),
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
            // A repetition penalty, applied where the logits are.
            SamplingParams {
                repetition_penalty: 1.5,
                ..Default::default()
            },
            SamplingParams {
                repetition_penalty: 1.2,
                ..SamplingParams::greedy()
            },
            SamplingParams {
                repetition_penalty: 1.3,
                top_k: 0,
                top_p: 0.9,
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
            let m = candidates_needed(p);
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
