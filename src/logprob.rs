//! Per-token log-probs of completions under logits / T (spec §4.1), for a batch of
//! prompt ⊕ completion sequences packed by [`crate::packing`] (a shared prompt computed once),
//! computed over chunks of completion positions so that at most `chunk × V` logits exist at a
//! time (never the full `B × T × V`).

use candle_core::{DType, Result};

use crate::kernels::target_logprobs;
use crate::model::Decoder;
use crate::packing::{PackedBatch, Sequence};

/// Positions scored per chunk: 512 rows × 49152 logits ≈ 100 MB in f32 (and as much again for
/// their gradient). Each chunk also materialises one lm_head gradient, so fewer, larger chunks
/// are faster.
pub const CHUNK_ROWS: usize = 512;

/// Per-token log-probs (under logits / T) of every sequence's completion, without gradient:
/// for the frozen reference model and for old log-probs.
pub fn completion_logprobs(
    decoder: &Decoder,
    seqs: &[Sequence],
    temperature: f64,
) -> Result<Vec<Vec<f32>>> {
    let packed = PackedBatch::new(seqs, decoder.device())?;
    let rows = packed.scoring_rows(decoder)?;
    let n = packed.targets.len();
    let lm_head = decoder.lm_head()?;
    let mut flat = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK_ROWS) {
        let len = CHUNK_ROWS.min(n - start);
        let (logp, _) = target_logprobs(
            &rows.narrow(0, start, len)?,
            &lm_head,
            &packed.targets[start..start + len],
            temperature,
            false,
        )?;
        flat.extend(logp.to_dtype(DType::F32)?.to_vec1::<f32>()?);
    }
    let mut out = Vec::with_capacity(seqs.len());
    let mut at = 0;
    for &len in &packed.lens {
        out.push(flat[at..at + len].to_vec());
        at += len;
    }
    Ok(out)
}

/// [`completion_logprobs`] of `seqs` run as the forward batches `batches` (ranges of `seqs`,
/// in order): the frozen reference's log-probs of a generation batch.
pub fn batched_completion_logprobs(
    decoder: &Decoder,
    seqs: &[Sequence],
    batches: &[std::ops::Range<usize>],
    temperature: f64,
) -> Result<Vec<Vec<f32>>> {
    let mut all = Vec::with_capacity(seqs.len());
    for range in batches {
        all.extend(completion_logprobs(
            decoder,
            &seqs[range.clone()],
            temperature,
        )?);
    }
    Ok(all)
}
