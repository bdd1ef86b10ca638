//! Rotate-half RoPE fused with the split into heads, with its backward.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{output, slice};

/// RoPE for one forward, in the form the device's kernel takes: host tables for the CPU f32
/// kernel ([`rope_heads`]), `[batch, 1, seq, head_dim]` cos/sin tensors (the halves
/// duplicated, HF layout) for candle's differentiable ops elsewhere.
pub enum Rotary {
    Tensors { cos: Tensor, sin: Tensor },
    Host(RopeTables),
}

impl Rotary {
    /// The tables for `positions` `[batch, seq]` (u32) and inverse frequencies `inv_freq`
    /// `[head_dim / 2]` (f32), for activations of `dtype` on `device`.
    pub fn new(
        inv_freq: &Tensor,
        positions: &Tensor,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let (b, t) = positions.dims2()?;
        let half = inv_freq.dim(0)?;
        if super::cpu_f32_on(device, dtype) {
            let inv_freq: Vec<f32> = inv_freq.to_vec1()?;
            let pos: Vec<u32> = positions.flatten_all()?.to_vec1()?;
            let angles = |f: fn(f32) -> f32| -> Arc<Vec<f32>> {
                Arc::new(
                    pos.iter()
                        .flat_map(|&p| inv_freq.iter().map(move |&w| f(p as f32 * w)))
                        .collect(),
                )
            };
            return Ok(Rotary::Host(RopeTables {
                cos: angles(f32::cos),
                sin: angles(f32::sin),
                seq: t,
                half,
            }));
        }
        let pos = positions.to_dtype(DType::F32)?.reshape((b, t, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq.reshape((1, 1, half))?)?;
        let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?.unsqueeze(1)?;
        Ok(Rotary::Tensors {
            cos: emb.cos()?.to_dtype(dtype)?,
            sin: emb.sin()?.to_dtype(dtype)?,
        })
    }

    /// Splits a projection `[batch, seq, heads · head_dim]` into heads and rotates them (HF
    /// rotate-half RoPE, `x·cos + rotate_half(x)·sin`): `[batch, heads, seq, head_dim]`.
    pub fn heads(&self, y: Tensor, heads: usize) -> Result<Tensor> {
        let (cos, sin) = match self {
            Rotary::Host(tables) => return rope_heads(&y, tables, heads),
            Rotary::Tensors { cos, sin } => (cos, sin),
        };
        let x = split_heads(&y, heads)?;
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
    }
}

/// `[batch, seq, heads · head_dim]` → `[batch, heads, seq, head_dim]`, contiguous.
pub fn split_heads(y: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, _) = y.dims3()?;
    y.reshape((b, t, heads, ()))?.transpose(1, 2)?.contiguous()
}

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
