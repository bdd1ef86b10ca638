//! RMSNorm (HF `LlamaRMSNorm`) with its backward.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{cpu_f32, output, slice, ROWS_PER_TASK};

/// `y = x / sqrt(mean(x²) + eps) · w` over the last axis (HF `LlamaRMSNorm`), `x` `[…, d]`,
/// `weight` `[d]`. With a gradient tracked: the CPU f32 kernel with its own backward, else
/// candle's differentiable composite (its fused `rms_norm` has no backward, stack-notes), which
/// for bf16/f16 normalises in f32 and scales in the input's dtype as HF does; without one,
/// candle's fused op (no f64 kernel: f64 takes the composite).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let track = x.track_op() || weight.track_op();
    if track && cpu_f32(x) {
        x.contiguous()?
            .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
    } else if track || x.dtype() == DType::F64 {
        let xf = super::widen(x)?;
        let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (ms + eps)?.sqrt()?.recip()?;
        xf.broadcast_mul(&inv)?
            .to_dtype(x.dtype())?
            .broadcast_mul(weight)
    } else {
        candle_nn::ops::rms_norm(x, weight, eps as f32)
    }
}

struct RmsNorm {
    eps: f32,
}

impl RmsNorm {
    fn inv_rms(&self, x: &[f32]) -> f32 {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        1.0 / (ms + self.eps).sqrt()
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let h = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h * ROWS_PER_TASK)
            .zip(x.par_chunks(h * ROWS_PER_TASK))
            .for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_mut(h).zip(xc.chunks(h)) {
                    let r = self.inv_rms(xr);
                    for ((yi, xi), wi) in yr.iter_mut().zip(xr).zip(w) {
                        *yi = xi * r * wi;
                    }
                }
            });
        output(y, l1.shape().clone())
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = x.elem_count() / w.elem_count();
        let packed = x.apply_op3_no_bwd(w, &dy.contiguous()?, &RmsNormGrad { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = packed.narrow(0, rows, 1)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// RMSNorm's gradients packed as `[rows + 1, h]`: `dx` rows, then `dw`.
/// With `x̂ = x·r` and `g = dy·w`: `dx = r·(g − x̂·mean(g·x̂))`, `dw = Σ_rows dy·x̂`.
struct RmsNormGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "fused-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let w = slice(self.name(), s2, l2)?;
        let dy = slice(self.name(), s3, l3)?;
        let h = w.len();
        let rows = x.len() / h;
        let mut out = vec![0f32; (rows + 1) * h];
        let (dx, dw) = out.split_at_mut(rows * h);
        let norm = RmsNorm { eps: self.eps };
        let partial = dx
            .par_chunks_mut(h * ROWS_PER_TASK)
            .zip(x.par_chunks(h * ROWS_PER_TASK))
            .zip(dy.par_chunks(h * ROWS_PER_TASK))
            .map(|((dxc, xc), dyc)| {
                let mut dw = vec![0f32; h];
                for ((dxr, xr), dyr) in dxc.chunks_mut(h).zip(xc.chunks(h)).zip(dyc.chunks(h)) {
                    let r = norm.inv_rms(xr);
                    let mut dot = 0f32;
                    for i in 0..h {
                        dot += dyr[i] * w[i] * xr[i] * r;
                        dw[i] += dyr[i] * xr[i] * r;
                    }
                    let mean = dot / h as f32;
                    for i in 0..h {
                        dxr[i] = r * (dyr[i] * w[i] - xr[i] * r * mean);
                    }
                }
                dw
            })
            .reduce(
                || vec![0f32; h],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        dw.copy_from_slice(&partial);
        output(out, (rows + 1, h))
    }
}
