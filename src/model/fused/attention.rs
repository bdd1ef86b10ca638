//! The attention softmax (scale, additive mask, softmax) with its backward.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{output, slice, ROWS_PER_TASK};

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
