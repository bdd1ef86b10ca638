//! Per-token log-probs of completions under logits / T (spec §4.1), for a batch of
//! prompt ⊕ completion sequences, computed over chunks of completion positions so that at most
//! `chunk × V` logits exist at a time (never the full `B × T × V`).

use candle_core::{DType, Result, Tensor, D};

use crate::model::{fused, Decoder};

/// Positions scored per chunk: 256 rows × 49152 logits ≈ 50 MB in f32.
pub const CHUNK_ROWS: usize = 256;

/// One sequence: the prompt and the completion tokens that count (cut at the mask).
#[derive(Debug, Clone)]
pub struct Sequence<'a> {
    pub prompt_ids: &'a [u32],
    pub completion_ids: &'a [u32],
}

/// Sequences left-padded into one batch, with the flat row of the hidden state that predicts
/// each completion token.
pub struct PackedBatch {
    pub input_ids: Tensor,
    pub positions: Tensor,
    pub key_mask: Tensor,
    /// For each scored token, the index into the flattened `[batch · seq]` hidden states.
    pub rows: Tensor,
    /// The scored tokens, in the same order.
    pub targets: Vec<u32>,
    /// Number of scored tokens per sequence.
    pub lens: Vec<usize>,
}

impl PackedBatch {
    pub fn new(seqs: &[Sequence], device: &candle_core::Device) -> Result<Self> {
        let t = seqs
            .iter()
            .map(|s| s.prompt_ids.len() + s.completion_ids.len())
            .max()
            .unwrap_or(0);
        let b = seqs.len();
        let mut ids = vec![0u32; b * t];
        let mut mask = vec![0u32; b * t];
        let mut pos = vec![0u32; b * t];
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut lens = Vec::with_capacity(b);
        for (i, s) in seqs.iter().enumerate() {
            if s.prompt_ids.is_empty() {
                candle_core::bail!("sequence {i} has an empty prompt");
            }
            let (p, c) = (s.prompt_ids.len(), s.completion_ids.len());
            let pad = t - p - c;
            for (k, &tok) in s.prompt_ids.iter().chain(s.completion_ids).enumerate() {
                ids[i * t + pad + k] = tok;
                mask[i * t + pad + k] = 1;
                pos[i * t + pad + k] = k as u32;
            }
            for (k, &tok) in s.completion_ids.iter().enumerate() {
                rows.push((i * t + pad + p + k - 1) as u32);
                targets.push(tok);
            }
            lens.push(c);
        }
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            positions: Tensor::from_vec(pos, (b, t), device)?,
            key_mask: Tensor::from_vec(mask, (b, t), device)?,
            rows: Tensor::new(rows, device)?,
            targets,
            lens,
        })
    }

    /// The hidden states that predict each scored token, `[n_scored, hidden]`.
    pub fn scoring_rows(&self, decoder: &Decoder) -> Result<Tensor> {
        let hidden =
            decoder.hidden_states(&self.input_ids, &self.positions, Some(&self.key_mask), None)?;
        let (b, t, h) = hidden.dims3()?;
        hidden.reshape((b * t, h))?.index_select(&self.rows, 0)
    }
}

/// `log_softmax(rows · lm_headᵀ / T)` gathered at `targets` (differentiable in `rows` and
/// `lm_head`) and, when asked, each row's entropy (no gradient). On the CPU in f32 one fused
/// pass over the logits gives both ([`fused::target_logprob_entropy`]); elsewhere the
/// log-softmax is materialised.
pub fn chunk_logprobs(
    rows: &Tensor,
    lm_head: &Tensor,
    targets: &[u32],
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let logits = rows.matmul(&lm_head.t()?)?;
    if fused::enabled(&logits) {
        let both = fused::target_logprob_entropy(&logits, targets, 1.0 / temperature)?;
        let entropy = both.narrow(1, 1, 1)?.squeeze(1)?.detach();
        return Ok((
            both.narrow(1, 0, 1)?.squeeze(1)?,
            with_entropy.then_some(entropy),
        ));
    }
    let logp_all = candle_nn::ops::log_softmax(&(logits / temperature)?, D::Minus1)?;
    let idx = Tensor::new(targets, rows.device())?.unsqueeze(1)?;
    let logp = logp_all.gather(&idx, 1)?.squeeze(1)?;
    let entropy = match with_entropy {
        true => {
            let lp = logp_all.detach();
            Some((lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?)
        }
        false => None,
    };
    Ok((logp, entropy))
}

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
    let mut flat = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK_ROWS) {
        let len = CHUNK_ROWS.min(n - start);
        let (logp, _) = chunk_logprobs(
            &rows.narrow(0, start, len)?,
            decoder.lm_head(),
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
