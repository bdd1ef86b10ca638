//! One AdamW update (PyTorch semantics: decoupled weight decay, bias-corrected moments; spec
//! §4.4) of one parameter.
//!
//! On the CPU in f32 the update runs in place (three passes: m, v, θ) with the same f32
//! operations, in the same order, as the composite tensor expression used on other devices, so
//! both give identical bits; the composite allocates five temporaries per parameter (~0.5 GB
//! for SmolLM2's embedding alone), which showed up as the peak of a training step.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use super::inplace::CHUNK;
use super::{cpu_f32, slice, slice_mut};

/// `θ`, `m`, `v` ← one AdamW update with gradient `g` (all of `θ`'s shape; `g` in `θ`'s dtype).
/// In place on the CPU when all four are contiguous f32; elsewhere `m`, `v` are replaced and
/// `θ` is set.
pub fn adamw_update(
    theta: &Var,
    m: &mut Tensor,
    v: &mut Tensor,
    g: &Tensor,
    k: Coefficients,
) -> Result<()> {
    let in_place = [theta.as_tensor(), m, v, g]
        .iter()
        .all(|t| cpu_f32(t) && t.is_contiguous());
    if in_place {
        m.inplace_op2(g, &Moment::First(k))?;
        v.inplace_op2(g, &Moment::Second(k))?;
        theta.as_tensor().inplace_op3(m, v, &Apply(k))
    } else {
        let (t, m_new, v_new) = composite(theta.as_tensor(), m, v, g, k)?;
        (*m, *v) = (m_new, v_new);
        theta.set(&t)
    }
}

/// The scalars of one update, as the composite expression applies them.
#[derive(Debug, Clone, Copy)]
pub struct Coefficients {
    beta1: f64,
    beta2: f64,
    /// `1 / sqrt(1 − β2^t)`.
    inv_sqrt_bc2: f64,
    eps: f64,
    /// `lr / (1 − β1^t)`.
    step_size: f64,
    /// `1 − lr · weight_decay`, when weight decay is on.
    decay: Option<f64>,
}

impl Coefficients {
    /// The scalars of update number `step` (from 1) at learning rate `lr`, for
    /// `torch.optim.AdamW`'s `betas = (beta1, beta2)`, `eps` and `weight_decay`.
    pub fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64, step: usize, lr: f64) -> Self {
        Coefficients {
            beta1,
            beta2,
            inv_sqrt_bc2: 1.0 / (1.0 - beta2.powi(step as i32)).sqrt(),
            eps,
            step_size: lr / (1.0 - beta1.powi(step as i32)),
            decay: (weight_decay != 0.0).then_some(1.0 - lr * weight_decay),
        }
    }
}

/// The update as tensor operations (any device and dtype): new θ, m, v.
pub fn composite(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    k: Coefficients,
) -> Result<(Tensor, Tensor, Tensor)> {
    let mut theta = theta.detach();
    if let Some(d) = k.decay {
        theta = (theta * d)?;
    }
    let m = ((m * k.beta1)? + (g * (1.0 - k.beta1))?)?;
    let v = ((v * k.beta2)? + (g.sqr()? * (1.0 - k.beta2))?)?;
    // `* inv_sqrt_bc2` is what candle's `/ sqrt(bc2)` computes (an affine map).
    let denom = ((v.sqrt()? * k.inv_sqrt_bc2)? + k.eps)?;
    let update = ((&m / denom)? * k.step_size)?;
    Ok(((theta - update)?, m, v))
}

/// `m ← β1·m + (1−β1)·g` or `v ← β2·v + (1−β2)·g²`, in place.
enum Moment {
    First(Coefficients),
    Second(Coefficients),
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let g = slice(self.name(), g, gl)?;
        let dst = slice_mut(self.name(), dst, dl)?;
        if dst.len() != g.len() {
            candle_core::bail!(
                "{}: {} moments for {} gradients",
                self.name(),
                dst.len(),
                g.len()
            );
        }
        let zip = dst.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK));
        match *self {
            Moment::First(k) => {
                let (b, a) = (k.beta1 as f32, (1.0 - k.beta1) as f32);
                zip.for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(m, &g)| *m = *m * b + g * a));
            }
            Moment::Second(k) => {
                let (b, a) = (k.beta2 as f32, (1.0 - k.beta2) as f32);
                zip.for_each(|(d, g)| {
                    d.iter_mut()
                        .zip(g)
                        .for_each(|(v, &g)| *v = *v * b + (g * g) * a)
                });
            }
        }
        Ok(())
    }
}

/// `θ ← θ·decay − step_size · m / (sqrt(v)·inv_sqrt_bc2 + ε)`, in place.
struct Apply(Coefficients);

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "adamw-apply"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        tl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let (m, v) = (slice(self.name(), m, ml)?, slice(self.name(), v, vl)?);
        let theta = slice_mut(self.name(), theta, tl)?;
        if m.len() != theta.len() || v.len() != theta.len() {
            candle_core::bail!(
                "{}: {} and {} moments for {} parameters",
                self.name(),
                m.len(),
                v.len(),
                theta.len()
            );
        }
        let k = self.0;
        let (s, eps, step) = (k.inv_sqrt_bc2 as f32, k.eps as f32, k.step_size as f32);
        let decay = k.decay.map(|d| d as f32);
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(t, (m, v))| {
                for ((t, &m), &v) in t.iter_mut().zip(m).zip(v) {
                    let th = decay.map_or(*t, |d| *t * d);
                    *t = th - (m / (v.sqrt() * s + eps)) * step;
                }
            });
        Ok(())
    }
}
