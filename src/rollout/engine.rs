//! The decode loop of [`super::rollout`] in a bounded KV cache (issue 17): a fixed number of
//! row slots, allocated once from the KV budget ([`slot_plan`]), kept full by admitting the
//! next (prompt, sample) as soon as a row finishes (continuous batching, FIFO in prompt-major
//! order). A finished row frees its slot in place; nothing is copied until the work runs out
//! and the live rows fit in half the slots (then they are compacted, at most halving each
//! time). A prompt is prefilled when its first row is admitted, into one of the shared prefixes
//! its G rows attend to (the prompts starting together are prefilled in left-padded batches of
//! [`PREFILL_BATCH`] off the CPU); the prefix is freed with its group's last row.
//!
//! Every row's keys sit in its own slot from column 0 in generation order, after its prompt's
//! in the prefix: masked positions contribute exact zeros to the CPU attention kernel, and each
//! row draws from its own RNG stream, so on the CPU a row's completion and statistics do not
//! depend on the budget or on which rows share its batch (tested bit for bit).

use std::collections::VecDeque;

use candle_core::{Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::sample::sample_step;
use super::{empty_completion, hits_stop_string, Completion, FinishReason};
use super::{PromptRequest, RolloutConfig, Row};
use crate::model::decoder::positions_from_mask;
use crate::model::{Decoder, KvCache};
use crate::tokenizer::TextTokenizer;

/// Prompts prefilled in one forward off the CPU (the default of
/// [`RolloutConfig::prefill_batch`]). On the CPU they are prefilled one at a time: a
/// left-padded batch computes a prompt's keys in a different order of float sums, which would
/// make a completion depend on which prompts were admitted with it.
pub const PREFILL_BATCH: usize = 8;

/// How a rollout's KV cache is laid out: `rows` row slots of `own_cap` positions and
/// `prefixes` shared prompt prefixes of `prefix_cap` positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPlan {
    pub rows: usize,
    pub prefixes: usize,
    pub own_cap: usize,
    pub prefix_cap: usize,
}

impl SlotPlan {
    /// Bytes of the KV cache, at `bytes_per_position` (layers · 2 · kv_heads · head_dim ·
    /// dtype size).
    pub fn bytes(&self, bytes_per_position: u64) -> u64 {
        (self.rows * self.own_cap + self.prefixes * self.prefix_cap) as u64 * bytes_per_position
    }
}

/// The most rows (at most `total_rows`) whose slots fit `budget` bytes (`None`: all of them),
/// with one prefix per row up to one per prompt (enough that admission never waits for a
/// prefix: each live group holds a live row). Errors when not even one row fits, naming the
/// bytes one needs.
pub fn slot_plan(
    budget: Option<u64>,
    bytes_per_position: u64,
    total_rows: usize,
    prompts: usize,
    own_cap: usize,
    prefix_cap: usize,
) -> std::result::Result<SlotPlan, String> {
    let plan = |rows: usize| SlotPlan {
        rows,
        prefixes: rows.min(prompts),
        own_cap,
        prefix_cap,
    };
    let Some(budget) = budget else {
        return Ok(plan(total_rows));
    };
    let fits = |rows: usize| plan(rows).bytes(bytes_per_position) <= budget;
    if !fits(1) {
        return Err(format!(
            "a KV budget of {budget} bytes (rollout_kv_budget, --kv-budget) holds no sequence: one needs {} bytes ({} prompt + {} new positions)",
            plan(1).bytes(bytes_per_position),
            prefix_cap,
            own_cap
        ));
    }
    // The cost grows with the rows: the largest that fits, by bisection.
    let (mut lo, mut hi) = (1, total_rows.max(1));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(plan(lo))
}

/// A prompt group's state: its prefix and first logits while its rows are admitted.
struct Group {
    prefix: Option<usize>,
    first_logits: Option<Tensor>,
    /// Rows admitted and not retired.
    live: usize,
    /// Rows not admitted yet.
    waiting: usize,
}

/// Samples every (prompt, sample) of `prompts` in the slots of `plan`; prompt-major result.
pub(super) fn run(
    decoder: &Decoder,
    prompts: &[PromptRequest],
    cfg: &RolloutConfig,
    plan: SlotPlan,
    tokenizer: Option<&TextTokenizer>,
) -> Result<Vec<Completion>> {
    let g = cfg.num_generations;
    let device = decoder.device();
    let vocab = decoder.config().vocab_size;
    let num_layers = decoder.config().num_hidden_layers;
    let mut queue: VecDeque<(usize, usize)> = (0..prompts.len())
        .flat_map(|p| (0..g).map(move |s| (p, s)))
        .collect();
    let mut groups: Vec<Group> = (0..prompts.len())
        .map(|_| Group {
            prefix: None,
            first_logits: None,
            live: 0,
            waiting: g,
        })
        .collect();
    let mut free_prefixes: Vec<usize> = (0..plan.prefixes).rev().collect();
    // A live row has written the keys of all its tokens but the last, from column 0 of its
    // slot: its next key goes to column `out.ids.len() - 1`.
    let mut slots: Vec<Option<Row>> = (0..plan.rows).map(|_| None).collect();
    let mut of_row = vec![0u32; plan.rows];
    // Whether admissions changed `of_row` since the cache last took it (compaction remaps the
    // cache's copy itself).
    let mut remapped = false;
    let mut cache: Option<KvCache> = None;
    let mut logits = Tensor::zeros((plan.rows, vocab), decoder.dtype(), device)?;
    let mut done: Vec<Completion> = Vec::with_capacity(queue.len());
    let prefill_batch = cfg
        .prefill_batch
        .unwrap_or(match device.is_cpu() {
            true => 1,
            false => PREFILL_BATCH,
        })
        .max(1);

    loop {
        // 1. Admit waiting rows into free slots, in queue order; the prompts of the groups
        // they start are prefilled first, `prefill_batch` at a time.
        let free = slots.iter().filter(|s| s.is_none()).count();
        let mut starting = Vec::new();
        for &(pi, _) in queue.iter().take(free) {
            if groups[pi].prefix.is_none() && !starting.contains(&pi) {
                if starting.len() == free_prefixes.len() {
                    break;
                }
                starting.push(pi);
            }
        }
        for chunk in starting.chunks(prefill_batch) {
            let ids: Vec<&[u32]> = chunk.iter().map(|&pi| prompts[pi].ids.as_slice()).collect();
            let (prompt_cache, first) = prefill(decoder, &ids, num_layers)?;
            let c = match cache.as_mut() {
                Some(c) => c,
                None => cache.insert(KvCache::slots(
                    &prompt_cache,
                    plan.rows,
                    plan.own_cap,
                    plan.prefixes,
                    plan.prefix_cap,
                )?),
            };
            for (row, &pi) in chunk.iter().enumerate() {
                let p = free_prefixes.pop().expect("counted above");
                c.set_prefix(p, &prompt_cache, row, ids[row].len())?;
                groups[pi].prefix = Some(p);
                groups[pi].first_logits = Some(first.narrow(0, row, 1)?);
            }
        }
        for s in 0..slots.len() {
            if slots[s].is_some() {
                continue;
            }
            let Some(&(pi, si)) = queue.front() else {
                break;
            };
            let group = &mut groups[pi];
            if group.prefix.is_none() {
                break;
            }
            queue.pop_front();
            group.waiting -= 1;
            group.live += 1;
            let first = group.first_logits.as_ref().expect("set with the prefix");
            logits.slice_set(first, 0, s)?;
            if group.waiting == 0 {
                group.first_logits = None;
            }
            of_row[s] = group.prefix.expect("set above") as u32;
            remapped = true;
            let mut rng = ChaCha8Rng::seed_from_u64(prompts[pi].seed);
            rng.set_stream(si as u64);
            slots[s] = Some(Row {
                prompt_len: prompts[pi].ids.len(),
                rng,
                history: prompts[pi].ids.clone(),
                out: empty_completion(pi, si, vocab),
                finishing: false,
            });
        }

        // 2. Sample every live row from its logits row.
        let live: Vec<usize> = (0..slots.len()).filter(|&s| slots[s].is_some()).collect();
        if live.is_empty() {
            break;
        }
        let step_logits = match live.len() == slots.len() {
            true => logits.clone(),
            false => {
                let idx: Vec<u32> = live.iter().map(|&s| s as u32).collect();
                logits.index_select(&Tensor::new(idx, device)?, 0)?
            }
        };
        let mut rows: Vec<Row> = live
            .iter()
            .map(|&s| slots[s].take().expect("live"))
            .collect();
        let (tokens, st) = sample_step(&step_logits, &mut rows, &cfg.sampling)?;

        // 3. Record each token; a finished row leaves its slot (after one more feed when the
        // distribution after its last token is wanted). Stop strings are looked for in every
        // row at once (a tokenizer decode each).
        let stop_strings: Vec<bool> = match tokenizer {
            Some(tok) if !cfg.stop_strings.is_empty() => rows
                .par_iter()
                .zip(&tokens)
                .map(|(row, &t)| {
                    !row.finishing && hits_stop_string(tok, &cfg.stop_strings, &row.out.ids, t)
                })
                .collect(),
            _ => vec![false; rows.len()],
        };
        for (i, mut row) in rows.into_iter().enumerate() {
            let s = live[i];
            let retire = match row.finishing {
                true => {
                    row.out.lse_minus_mean_after = Some(st.lse_minus_mean[i]);
                    true
                }
                false => {
                    let pi = row.out.prompt_index;
                    let max_new = prompts[pi]
                        .max_new_tokens
                        .map_or(cfg.max_new_tokens, |m| m.min(cfg.max_new_tokens));
                    record(&mut row, tokens[i], &st, i, (cfg, max_new), stop_strings[i])
                        && !cfg.keep_after_last
                }
            };
            if retire {
                let pi = row.out.prompt_index;
                done.push(row.out);
                let group = &mut groups[pi];
                group.live -= 1;
                if group.live == 0 && group.waiting == 0 {
                    free_prefixes.extend(group.prefix.take());
                }
            } else {
                slots[s] = Some(row);
            }
        }

        // 4. Once no row waits, compact the live rows when they fit half the slots.
        let live = slots.iter().filter(|s| s.is_some()).count();
        if queue.is_empty() && live > 0 && 2 * live <= slots.len() {
            let keep: Vec<u32> = (0..slots.len() as u32)
                .filter(|&s| slots[s as usize].is_some())
                .collect();
            if let Some(c) = cache.as_mut() {
                c.retain_rows(&keep)?;
            }
            of_row = keep.iter().map(|&s| of_row[s as usize]).collect();
            slots = slots.into_iter().filter(Option::is_some).collect();
        }
        if live == 0 {
            continue;
        }

        // 5. Feed each live row's last token at its own next column; a free slot runs a
        // placeholder that attends only to itself (its output is never read).
        let prefix_cap = plan.prefix_cap;
        let mut ids = Vec::with_capacity(slots.len());
        let mut pos = Vec::with_capacity(slots.len());
        let mut cols = Vec::with_capacity(slots.len());
        for slot in &slots {
            match slot {
                Some(row) => {
                    let col = row.out.ids.len() - 1;
                    ids.push(*row.history.last().expect("a prompt token at least"));
                    pos.push((row.prompt_len + col) as u32);
                    cols.push(col as u32);
                }
                None => {
                    ids.push(0);
                    pos.push(0);
                    cols.push(0);
                }
            }
        }
        let width = cols.iter().max().map_or(1, |&c| c as usize + 1);
        // Each row sees its prompt, right-aligned in its prefix, and its own keys so far; a
        // free slot only its placeholder.
        let spans: Vec<(u32, u32)> = slots
            .iter()
            .map(|slot| match slot {
                Some(row) => (
                    (prefix_cap - row.prompt_len) as u32,
                    (prefix_cap + row.out.ids.len()) as u32,
                ),
                None => (prefix_cap as u32, prefix_cap as u32 + 1),
            })
            .collect();
        let n = slots.len();
        let c = cache.as_mut().expect("a row was admitted");
        if remapped {
            c.set_prefix_of_row(of_row.clone())?;
            remapped = false;
        }
        c.set_write_columns(&cols)?;
        let ids = Tensor::new(ids, device)?.reshape((n, 1))?;
        let pos = Tensor::new(pos, device)?.reshape((n, 1))?;
        let mask = span_mask(&spans, prefix_cap + width, device)?;
        logits = decoder
            .forward(&ids, &pos, Some(&mask), Some(c))?
            .squeeze(1)?
            .contiguous()?;
    }
    done.sort_by_key(|c| (c.prompt_index, c.sample_index));
    Ok(done)
}

/// Records token `t` (row `i` of the step's statistics) in `row`; `true` when the row is
/// finished (a stop id, a stop string — `stop_string`: its text now ends one — or the length
/// limit).
fn record(
    row: &mut Row,
    t: u32,
    st: &super::stats::TokenStats,
    i: usize,
    (cfg, max_new): (&RolloutConfig, usize),
    stop_string: bool,
) -> bool {
    let o = &mut row.out;
    o.ids.push(t);
    o.logprobs.push(st.logprob[i]);
    o.logprobs_t1.push(st.logprob_t1[i]);
    o.entropy.push(st.entropy[i]);
    o.entropy_t1.push(st.entropy_t1[i]);
    o.lse_minus_mean.push(st.lse_minus_mean[i]);
    row.history.push(t);
    let stop = if cfg.stop_ids.contains(&t) {
        Some(FinishReason::Eos)
    } else if stop_string {
        Some(FinishReason::Stop)
    } else if o.ids.len() >= max_new {
        Some(FinishReason::Length)
    } else {
        None
    };
    match stop {
        Some(reason) => {
            o.finish_reason = reason;
            o.mask_len = o.ids.len();
            row.finishing = true;
            true
        }
        None => false,
    }
}

/// The key mask `[rows, keys]` (u8) in which row `r` sees keys `spans[r].0 .. spans[r].1`,
/// built on `device`: a decode step uploads two numbers per row, not the mask.
fn span_mask(spans: &[(u32, u32)], keys: usize, device: &Device) -> Result<Tensor> {
    let n = spans.len();
    let (from, to): (Vec<u32>, Vec<u32>) = spans.iter().copied().unzip();
    let cols = Tensor::arange(0u32, keys as u32, device)?.reshape((1, keys))?;
    let from = Tensor::from_vec(from, (n, 1), device)?;
    let to = Tensor::from_vec(to, (n, 1), device)?;
    cols.broadcast_ge(&from)?.mul(&cols.broadcast_lt(&to)?)
}

/// Prefills prompts together, left-padded to the longest: their cache (row `i` holds prompt
/// `i` in its last `ids[i].len()` positions) and the logits `[prompts, vocab]` after each one's
/// last token.
fn prefill(decoder: &Decoder, ids: &[&[u32]], num_layers: usize) -> Result<(KvCache, Tensor)> {
    let device = decoder.device();
    let longest = ids.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut cache = KvCache::new(num_layers);
    let mut flat = Vec::with_capacity(ids.len() * longest);
    let mut mask = Vec::with_capacity(ids.len() * longest);
    for p in ids {
        flat.extend(std::iter::repeat_n(0, longest - p.len()).chain(p.iter().copied()));
        mask.push(
            (0..longest)
                .map(|j| u32::from(j >= longest - p.len()))
                .collect::<Vec<_>>(),
        );
    }
    let pos = positions_from_mask(&mask).concat();
    let shape = (ids.len(), longest);
    let input = Tensor::from_vec(flat, shape, device)?;
    let pos = Tensor::from_vec(pos, shape, device)?;
    let padded = ids.iter().any(|p| p.len() < longest);
    let mask = match padded {
        true => Some(Tensor::from_vec(mask.concat(), shape, device)?),
        false => None,
    };
    let hidden = decoder.hidden_states(&input, &pos, mask.as_ref(), Some(&mut cache))?;
    let logits = decoder
        .logits(&hidden.narrow(1, longest - 1, 1)?)?
        .squeeze(1)?;
    Ok((cache, logits))
}

#[cfg(test)]
mod tests {
    use super::slot_plan;

    #[test]
    fn the_budget_sets_the_rows_and_one_prefix_per_row_up_to_the_prompts() {
        // 10 bytes a position, 4 prompts × 7 rows, 5 new + 3 prompt positions.
        let all = slot_plan(None, 10, 28, 4, 5, 3).unwrap();
        assert_eq!((all.rows, all.prefixes), (28, 4));
        // One row: 5·10 + 3·10 = 80 bytes.
        assert!(slot_plan(Some(79), 10, 28, 4, 5, 3)
            .unwrap_err()
            .contains("one needs 80 bytes"));
        let one = slot_plan(Some(80), 10, 28, 4, 5, 3).unwrap();
        assert_eq!((one.rows, one.prefixes), (1, 1));
        // 4 rows with 4 prefixes: 200 + 120 = 320; 5 rows: 250 + 120 = 370.
        let four = slot_plan(Some(369), 10, 28, 4, 5, 3).unwrap();
        assert_eq!((four.rows, four.prefixes), (4, 4));
        assert_eq!(four.bytes(10), 320);
        assert_eq!(slot_plan(Some(370), 10, 28, 4, 5, 3).unwrap().rows, 5);
        assert_eq!(
            slot_plan(Some(u64::MAX / 4), 10, 28, 4, 5, 3).unwrap().rows,
            28
        );
    }
}
