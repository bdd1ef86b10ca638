//! Rotate-half RoPE fused with the split into heads, with its backward.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{output, slice};

/// Host cos/sin tables of RoPE for one forward: `[batch, seq, head_dim / 2]` each (the HF
/// tables repeat these halves).
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Arc<Vec<f32>>,
    pub sin: Arc<Vec<f32>>,
    pub seq: usize,
    pub half: usize,
}

/// HF rotate-half RoPE fused with the split into heads: `[b, t, n·d]` (a projection's output)
/// → `[b, n, t, d]` rotated. The backward is the inverse rotation (the transpose of a rotation)
/// fused with the merge back.
pub fn rope_heads(x: &Tensor, tables: &RopeTables, heads: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(RopeHeads {
        tables: tables.clone(),
        heads,
        inverse: false,
    })
}

struct RopeHeads {
    tables: RopeTables,
    heads: usize,
    /// false: `[b, t, n·d]` → `[b, n, t, d]`, rotate by +θ; true: the reverse, by −θ.
    inverse: bool,
}

impl CustomOp1 for RopeHeads {
    fn name(&self) -> &'static str {
        "fused-rope-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        let (t, half, n) = (self.tables.seq, self.tables.half, self.heads);
        let d = 2 * half;
        let b = x.len() / (t * n * d);
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let rotate = |src: &[f32], out: &mut [f32], tab: usize| {
            for j in 0..half {
                let (c, s) = (self.tables.cos[tab + j], sign * self.tables.sin[tab + j]);
                let (a, bb) = (src[j], src[j + half]);
                out[j] = a * c - bb * s;
                out[j + half] = bb * c + a * s;
            }
        };
        let mut y = vec![0f32; x.len()];
        if self.inverse {
            // `[b, n, t, d]` → `[b, t, n·d]`: one task per (batch row, position).
            y.par_chunks_mut(n * d).enumerate().for_each(|(i, dst)| {
                let (bi, p) = (i / t, i % t);
                for (h, out) in dst.chunks_mut(d).enumerate() {
                    let src = ((bi * n + h) * t + p) * d;
                    rotate(&x[src..src + d], out, i * half);
                }
            });
            output(y, (b, t, n * d))
        } else {
            // `[b, t, n·d]` → `[b, n, t, d]`: one task per (batch row, head).
            y.par_chunks_mut(t * d).enumerate().for_each(|(i, dst)| {
                let (bi, h) = (i / n, i % n);
                for (p, out) in dst.chunks_mut(d).enumerate() {
                    let src = ((bi * t + p) * n + h) * d;
                    rotate(&x[src..src + d], out, (bi * t + p) * half);
                }
            });
            output(y, (b, n, t, d))
        }
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let inverse = RopeHeads {
            tables: self.tables.clone(),
            heads: self.heads,
            inverse: !self.inverse,
        };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}
