//! Scaled dot-product attention for grouped queries, and the attention softmax (scale,
//! additive mask, softmax) with its backward.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

use super::blocked_attention::{blocked, blocked_attention};
use super::cached_attention::CachedAttention;
use super::{cpu_f32, cpu_f32_on, output, slice, ROWS_PER_TASK};

/// Up to this many new positions per row, inference attention on the CPU runs
/// [`CachedAttention`] (one thread per row and KV head); a prefill's hundreds of rows go
/// faster through gemm.
const DECODE_ROWS: usize = 4;

/// Keys and values that several rows attend to before their own: a prompt's, once for the G
/// completions sampled from it (instead of G copies: less memory, and the rows of a group read
/// the same bytes, which stay in cache).
#[derive(Debug, Clone)]
pub struct SharedPrefix {
    /// `[prompts, kv_heads, p, head_dim]`, left-padded to the longest prompt.
    pub k: Tensor,
    pub v: Tensor,
    /// The prefix (prompt) of each row.
    pub of_row: Arc<Vec<u32>>,
}

impl SharedPrefix {
    /// Every row's keys and values in one `[batch, kv_heads, total, head_dim]` pair (the
    /// prefix copied per row) from the rows' own `k`, `v`, for the attention paths that take
    /// plain tensors.
    pub fn joined(&self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (pk, pv) = self.per_row()?;
        Ok((Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?))
    }

    /// Each row's prefix keys and values, `[batch, kv_heads, p, head_dim]` each (copies).
    pub fn per_row(&self) -> Result<(Tensor, Tensor)> {
        let rows = Tensor::new(self.of_row.as_slice(), self.k.device())?;
        Ok((
            self.k.index_select(&rows, 0)?,
            self.v.index_select(&rows, 0)?,
        ))
    }
}

/// The additive attention bias (causal plus masked padding keys), in the form the device's
/// attention takes: on the host for the CPU f32 kernels, a `[batch, 1, seq, keys]` tensor of
/// the activations' dtype elsewhere.
pub enum AttentionBias {
    Host(Arc<Vec<f32>>),
    Tensor(Tensor),
}

impl AttentionBias {
    /// `host` is `[batch, seq, keys]`, row-major; masked entries hold a large finite negative
    /// value (the caller's; it must stay finite in `dtype`).
    pub fn new(
        host: Arc<Vec<f32>>,
        (b, t, keys): (usize, usize, usize),
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if cpu_f32_on(device, dtype) && !blocked(t) {
            return Ok(AttentionBias::Host(host));
        }
        // bf16/f16 scores are widened to f32 before the mask and softmax (-1e30 is -inf in f16).
        let bias = Tensor::from_slice(host.as_slice(), (b, 1, t, keys), device)?;
        Ok(AttentionBias::Tensor(
            bias.to_dtype(super::accumulation_dtype(dtype))?,
        ))
    }
}

/// `softmax(q·kᵀ/√d + bias)·v` for grouped-query attention without copying K/V: the query
/// heads of each KV group are folded into the sequence axis, so one KV head serves its group
/// in a single matmul (HF `repeat_kv` semantics: query head h reads KV head h / groups).
///
/// * `q`: `[b, kv_heads, groups·t, d]`, row `g·t + i` is position `i` of query head
///   `kv·groups + g`; `heads` = kv_heads · groups.
/// * `k`, `v`: `[b, kv_heads, own, d]`, after the `prefix` keys of each row when given.
/// * Returns `[b, kv_heads, groups·t, d]`.
///
/// Above two query blocks (any device): [`blocked_attention`], whose backward recomputes the
/// scores. Else, CPU f32: `CachedAttention` for a few inference rows, else gemm scores through
/// [`attention_softmax`] (with its backward); elsewhere candle's differentiable ops.
pub fn attention(
    q: &Tensor,
    mut k: Tensor,
    mut v: Tensor,
    mut prefix: Option<SharedPrefix>,
    bias: Option<&AttentionBias>,
    heads: usize,
) -> Result<Tensor> {
    let (b, nkv, rows, hd) = q.dims4()?;
    let groups = heads / nkv;
    let t = rows / groups;
    let scale = 1.0 / (hd as f64).sqrt();
    let host = match bias {
        Some(AttentionBias::Host(h)) => Some(h.clone()),
        _ => None,
    };
    let fused = cpu_f32(q);
    let kernel = fused && !q.track_op() && !k.track_op() && t <= DECODE_ROWS;
    let total = k.dim(2)? + prefix.as_ref().map_or(Ok(0), |p| p.k.dim(2))?;
    if (fused && !kernel) || blocked(t) {
        // These paths take every row's keys in one tensor; cached keys are a view into a
        // larger buffer, which the CPU kernels cannot stride over.
        if let Some(p) = prefix.take() {
            (k, v) = p.joined(&k, &v)?;
        }
        (k, v) = (k.contiguous()?, v.contiguous()?);
    }
    if blocked(t) {
        let bias = match bias {
            Some(AttentionBias::Tensor(bias)) => Some(bias.clone()),
            Some(AttentionBias::Host(h)) => Some(Tensor::from_slice(
                h.as_slice(),
                (b, 1, t, total),
                q.device(),
            )?),
            None => None,
        };
        blocked_attention(q, &k, &v, bias.as_ref(), groups, scale)
    } else if kernel {
        let op = CachedAttention {
            scale: scale as f32,
            t,
            bias: host,
            prefix,
        };
        op.forward(q, &k, &v)
    } else if fused {
        let probs = attention_softmax(&q.matmul(&k.t()?)?, scale, t, host)?;
        probs.matmul(&v)
    } else {
        // The cache's keys are used in place (a strided view of its buffer, which the batched
        // matmul takes), and a shared prompt's are not joined to every row's own: its scores
        // and its share of the output are their own matmuls, so a decode step copies only the
        // rows' prompt keys (`SharedPrefix::per_row`), not every cached key.
        let per_row = prefix.as_ref().map(SharedPrefix::per_row).transpose()?;
        let (k, v) = (strided_rows(k)?, strided_rows(v)?);
        let own = (q.matmul(&k.t()?)? * scale)?;
        let scaled = match &per_row {
            Some((pk, _)) => Tensor::cat(&[&(q.matmul(&pk.t()?)? * scale)?, &own], 3)?,
            None => own,
        };
        // Softmax in f32 for bf16/f16 (HF: `softmax(…, dtype=torch.float32).to(q.dtype)`).
        let scores = super::widen(&scaled)?.reshape((b, heads, t, total))?;
        let scores = match bias {
            Some(AttentionBias::Tensor(bias)) => scores.broadcast_add(bias)?,
            _ => scores,
        };
        let probs = if scores.track_op() {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let probs = probs
            .to_dtype(v.dtype())?
            .reshape((b, nkv, groups * t, total))?;
        match per_row {
            None => probs.matmul(&v),
            Some((_, pv)) => {
                let n = pv.dim(2)?;
                let part = |from: usize, len: usize| probs.narrow(3, from, len)?.contiguous();
                part(0, n)?.matmul(&pv)? + part(n, total - n)?.matmul(&v)?
            }
        }
    }
}

/// `x` `[b, h, n, d]` as the batched matmul takes it without a copy: each position's `d`
/// values contiguous, positions `d` apart, heads and batch rows at regular strides (a view of
/// a larger cache buffer qualifies); any other layout is copied.
fn strided_rows(x: Tensor) -> Result<Tensor> {
    let (_, h, _, d) = x.dims4()?;
    match *x.stride() {
        [s0, s1, s2, 1] if s2 == d && s0 == s1 * h => Ok(x),
        _ => x.contiguous(),
    }
}

/// Softmax over the last axis of `scores · scale + bias` (grouped-query attention scores
/// `[b, kv_heads, groups·t, keys]`; row `g·t + i` is query position `i`); `bias` is the
/// additive `[b, t, keys]` mask shared by all heads. The backward keeps only the probabilities:
/// `dS = scale · P ⊙ (dP − Σ_j dP⊙P)`.
pub fn attention_softmax(
    scores: &Tensor,
    scale: f64,
    t: usize,
    bias: Option<Arc<Vec<f32>>>,
) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(AttentionSoftmax {
        scale: scale as f32,
        t,
        bias,
    })
}

/// Softmax of one row of attention scores, in place.
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

struct AttentionSoftmax {
    scale: f32,
    t: usize,
    bias: Option<Arc<Vec<f32>>>,
}

impl CustomOp1 for AttentionSoftmax {
    fn name(&self) -> &'static str {
        "fused-attention-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        let (_, nkv, rows, keys) = l.shape().dims4()?;
        let t = self.t;
        let mut p = vec![0f32; x.len()];
        p.par_chunks_mut(keys * ROWS_PER_TASK)
            .zip(x.par_chunks(keys * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (pc, xc))| {
                for (k, (pr, xr)) in pc.chunks_mut(keys).zip(xc.chunks(keys)).enumerate() {
                    let row = task * ROWS_PER_TASK + k;
                    let bi = row / (nkv * rows);
                    let q = (row % rows) % t;
                    let bias = self
                        .bias
                        .as_ref()
                        .map(|m| &m[(bi * t + q) * keys..(bi * t + q + 1) * keys]);
                    for (j, (pj, xj)) in pr.iter_mut().zip(xr).enumerate() {
                        *pj = xj * self.scale + bias.map_or(0.0, |m| m[j]);
                    }
                    softmax_in_place(pr);
                }
            });
        output(p, l.shape().clone())
    }

    fn bwd(&self, _x: &Tensor, p: &Tensor, dp: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(p.apply_op2_no_bwd(
            &dp.contiguous()?,
            &SoftmaxGrad { scale: self.scale },
        )?))
    }
}

/// `scale · P ⊙ (dP − rowsum(dP ⊙ P))` over the last axis.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = slice(self.name(), s1, l1)?;
        let dp = slice(self.name(), s2, l2)?;
        let keys = l1.shape().dims().last().copied().unwrap_or(1);
        let mut ds = vec![0f32; p.len()];
        ds.par_chunks_mut(keys * ROWS_PER_TASK)
            .zip(p.par_chunks(keys * ROWS_PER_TASK))
            .zip(dp.par_chunks(keys * ROWS_PER_TASK))
            .for_each(|((dc, pc), gc)| {
                for ((dr, pr), gr) in dc
                    .chunks_mut(keys)
                    .zip(pc.chunks(keys))
                    .zip(gc.chunks(keys))
                {
                    let dot: f32 = pr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    for ((d, &pj), &gj) in dr.iter_mut().zip(pr).zip(gr) {
                        *d = self.scale * pj * (gj - dot);
                    }
                }
            });
        output(ds, l1.shape().clone())
    }
}
