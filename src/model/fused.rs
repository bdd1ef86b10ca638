//! Fused CPU kernels with hand-written backward passes for the training forward.
//!
//! candle builds RMSNorm, RoPE, softmax and SwiGLU out of 4–7 element-wise ops each; in the
//! autograd graph every one of them keeps a fresh output alive until the backward pass and runs
//! its own pass over memory, mostly on one thread (the update profile: ~15% element-wise maps,
//! ~11% of the worker thread idle-spinning, gigabytes of kept intermediates). Each op here is one
//! parallel pass that keeps only its output, with a `bwd` that is one more pass. candle's own
//! fused ops (`rms_norm`, `rope`, `softmax_last_dim`) have no backward (stack-notes), so these
//! are written by hand. They run for f32 tensors on the CPU ([`enabled`]); other devices and
//! dtypes keep the differentiable composite path in `decoder.rs`, which the tests compare these
//! against.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

/// Rows handed to one rayon task.
const ROWS_PER_TASK: usize = 16;

/// Whether the fused kernels serve tensors like `t` (f32 on the CPU).
pub fn enabled(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The contiguous f32 data of a storage, or an error naming the op.
fn slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{op}: expected a contiguous input"),
    }
}

fn output(data: Vec<f32>, shape: impl Into<Shape>) -> Result<(CpuStorage, Shape)> {
    Ok((CpuStorage::F32(data), shape.into()))
}

/// `y = x / sqrt(mean(x²) + eps) · w` over the last axis (HF `LlamaRMSNorm`).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps: eps as f32 })
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
                    let mut max = f32::NEG_INFINITY;
                    for (j, (pj, xj)) in pr.iter_mut().zip(xr).enumerate() {
                        *pj = xj * self.scale + bias.map_or(0.0, |m| m[j]);
                        max = max.max(*pj);
                    }
                    let mut sum = 0f32;
                    for pj in pr.iter_mut() {
                        *pj = (*pj - max).exp();
                        sum += *pj;
                    }
                    let inv = 1.0 / sum;
                    pr.iter_mut().for_each(|pj| *pj *= inv);
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

/// `silu(gate) · up` (the llama MLP's gated activation).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, Swiglu)
}

struct Swiglu;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = slice(self.name(), s1, l1)?;
        let u = slice(self.name(), s2, l2)?;
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(4096)
            .zip(g.par_chunks(4096).zip(u.par_chunks(4096)))
            .for_each(|(yc, (gc, uc))| {
                for ((y, &g), &u) in yc.iter_mut().zip(gc).zip(uc) {
                    *y = g * sigmoid(g) * u;
                }
            });
        output(y, l1.shape().clone())
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = g.apply_op3_no_bwd(u, &dy.contiguous()?, &SwigluGrad)?;
        Ok((Some(packed.get(0)?), Some(packed.get(1)?)))
    }
}

/// SwiGLU's gradients packed as `[2, …]`: `d_gate = dy·u·σ(g)(1 + g(1 − σ(g)))`,
/// `d_up = dy·silu(g)`.
struct SwigluGrad;

impl CustomOp3 for SwigluGrad {
    fn name(&self) -> &'static str {
        "fused-swiglu-grad"
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
        let g = slice(self.name(), s1, l1)?;
        let u = slice(self.name(), s2, l2)?;
        let dy = slice(self.name(), s3, l3)?;
        let n = g.len();
        let mut out = vec![0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(4096)
            .zip(du.par_chunks_mut(4096))
            .zip(
                g.par_chunks(4096)
                    .zip(u.par_chunks(4096))
                    .zip(dy.par_chunks(4096)),
            )
            .for_each(|((dgc, duc), ((gc, uc), dyc))| {
                for i in 0..gc.len() {
                    let (g, s) = (gc[i], sigmoid(gc[i]));
                    dgc[i] = dyc[i] * uc[i] * s * (1.0 + g * (1.0 - s));
                    duc[i] = dyc[i] * g * s;
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(l1.shape().dims());
        output(out, dims)
    }
}

/// For logits `[n, V]`: `[n, 2]` with column 0 = `log_softmax(logits · inv_t)[target]` and
/// column 1 = the entropy of that distribution. Only column 0 has a gradient (the entropy is a
/// metric): `dlogits = g · inv_t · (onehot(target) − softmax)`.
pub fn target_logprob_entropy(logits: &Tensor, targets: &[u32], inv_t: f64) -> Result<Tensor> {
    logits.contiguous()?.apply_op1(TargetLogprob {
        targets: Arc::new(targets.to_vec()),
        inv_t: inv_t as f32,
    })
}

struct TargetLogprob {
    targets: Arc<Vec<u32>>,
    inv_t: f32,
}

impl TargetLogprob {
    /// Row max of `row · inv_t`, `Σ exp(z)` and `Σ exp(z)·z` with `z = row · inv_t − max`
    /// (exponentials in f32, sums in f64).
    fn sums(&self, row: &[f32]) -> (f32, f64, f64) {
        let max = row
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v * self.inv_t));
        let (mut s, mut sz) = (0f64, 0f64);
        for &v in row {
            let z = v * self.inv_t - max;
            let e = z.exp() as f64;
            s += e;
            sz += e * z as f64;
        }
        (max, s, sz)
    }
}

impl CustomOp1 for TargetLogprob {
    fn name(&self) -> &'static str {
        "fused-target-logprob"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s, l)?;
        let (n, v) = l.shape().dims2()?;
        if self.targets.len() != n {
            candle_core::bail!(
                "{}: {} targets for {n} rows",
                self.name(),
                self.targets.len()
            );
        }
        if let Some(bad) = self.targets.iter().find(|&&t| t as usize >= v) {
            candle_core::bail!(
                "{}: target token {bad} outside the vocabulary of {v}",
                self.name()
            );
        }
        let mut out = vec![0f32; 2 * n];
        out.par_chunks_mut(2)
            .zip(x.par_chunks(v))
            .zip(self.targets.par_iter())
            .for_each(|((o, row), &target)| {
                let (max, s, sz) = self.sums(row);
                let lse = s.ln();
                // H = −Σ p·(z − lse) = lse − Σ e^z·z / Σ e^z.
                o[0] = ((row[target as usize] * self.inv_t - max) as f64 - lse) as f32;
                o[1] = (lse - sz / s) as f32;
            });
        output(out, (n, 2))
    }

    fn bwd(&self, logits: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let g = dy.narrow(1, 0, 1)?.contiguous()?;
        let grad = TargetLogprobGrad {
            forward: TargetLogprob {
                targets: self.targets.clone(),
                inv_t: self.inv_t,
            },
        };
        Ok(Some(logits.apply_op2_no_bwd(&g, &grad)?))
    }
}

struct TargetLogprobGrad {
    forward: TargetLogprob,
}

impl CustomOp2 for TargetLogprobGrad {
    fn name(&self) -> &'static str {
        "fused-target-logprob-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(self.name(), s1, l1)?;
        let g = slice(self.name(), s2, l2)?;
        let (_, v) = l1.shape().dims2()?;
        let f = &self.forward;
        let mut d = vec![0f32; x.len()];
        d.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .enumerate()
            .for_each(|(i, (dr, row))| {
                let (max, s, _) = f.sums(row);
                let shift = max + s.ln() as f32;
                let scale = g[i] * f.inv_t;
                for (dj, &xj) in dr.iter_mut().zip(row) {
                    *dj = -scale * (xj * f.inv_t - shift).exp();
                }
                dr[f.targets[i] as usize] += scale;
            });
        output(d, l1.shape().clone())
    }
}
