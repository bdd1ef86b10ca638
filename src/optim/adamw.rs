//! AdamW with PyTorch semantics (decoupled weight decay, bias-corrected moments; spec §4.4).
//!
//! On the CPU in f32 the update runs in place (three passes: m, v, θ) with the same f32
//! operations, in the same order, as the composite tensor expression used on other devices, so
//! both give identical bits; the composite allocates five temporaries per parameter (~0.5 GB
//! for SmolLM2's embedding alone), which showed up as the peak of a training step.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use super::{GradAccumulator, CHUNK};
use crate::model::fused::{self, slice, slice_mut};

/// AdamW hyperparameters (`torch.optim.AdamW` names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// HF Trainer defaults: β (0.9, 0.999), ε 1e-8, weight decay 0.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW state: first and second moments per parameter and the step count.
pub struct AdamW {
    pub cfg: AdamWConfig,
    pub params: Vec<Var>,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub step: usize,
}

/// The scalars of one update, as the composite expression applies them.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
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
    /// The scalars of update number `step` (from 1) at learning rate `lr`.
    fn new(c: &AdamWConfig, step: usize, lr: f64) -> Self {
        Coefficients {
            beta1: c.beta1,
            beta2: c.beta2,
            inv_sqrt_bc2: 1.0 / (1.0 - c.beta2.powi(step as i32)).sqrt(),
            eps: c.eps,
            step_size: lr / (1.0 - c.beta1.powi(step as i32)),
            decay: (c.weight_decay != 0.0).then_some(1.0 - lr * c.weight_decay),
        }
    }
}

impl AdamW {
    pub fn new(params: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        // Two separate buffers each (a clone would share storage, and the update is in place).
        let zeros = || -> Result<Vec<Tensor>> {
            params.iter().map(|p| p.as_tensor().zeros_like()).collect()
        };
        let (m, v) = (zeros()?, zeros()?);
        Ok(Self {
            cfg,
            params,
            m,
            v,
            step: 0,
        })
    }

    /// One update at learning rate `lr` with the accumulated gradients (parameters without a
    /// gradient are left alone, as PyTorch does for `grad is None`).
    pub fn step(&mut self, grads: &GradAccumulator, lr: f64) -> Result<()> {
        self.step += 1;
        let k = Coefficients::new(&self.cfg, self.step, lr);
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
            let g = g.to_dtype(p.dtype())?;
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            let in_place = [p.as_tensor(), m, v, &g]
                .iter()
                .all(|t| fused::enabled(t) && t.is_contiguous());
            if in_place {
                m.inplace_op2(&g, &Moment::First(k))?;
                v.inplace_op2(&g, &Moment::Second(k))?;
                p.as_tensor().inplace_op3(m, v, &Apply(k))?;
            } else {
                let (theta, m_new, v_new) = composite(p.as_tensor(), m, v, &g, k)?;
                (*m, *v) = (m_new, v_new);
                p.set(&theta)?;
            }
        }
        Ok(())
    }
}

/// The update as tensor operations (any device and dtype): new θ, m, v.
fn composite(
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{composite, Coefficients};
    use crate::optim::{AdamW, AdamWConfig, GradAccumulator};

    #[test]
    fn the_in_place_update_gives_the_composite_bits() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let n = 70_001; // more than one rayon chunk, not a multiple of it
        let wave =
            |a: f32, b: f32| -> Vec<f32> { (0..n).map(|i| ((i as f32) * a).sin() * b).collect() };
        let theta = Tensor::from_vec(wave(0.37, 0.5), n, &dev)?;
        let g = Tensor::from_vec(wave(1.91, 3e-3), n, &dev)?;
        for weight_decay in [0.0, 0.1] {
            let cfg = AdamWConfig {
                weight_decay,
                ..Default::default()
            };
            let var = Var::from_tensor(&theta.copy()?)?;
            let mut opt = AdamW::new(vec![var.clone()], cfg)?;
            let (mut t, mut m, mut v) = (theta.clone(), theta.zeros_like()?, theta.zeros_like()?);
            for step in 1..=3 {
                let lr = 1e-3 * step as f64;
                let mut sums = GradAccumulator::default();
                sums.add(var.as_tensor(), &(&g * step as f64)?)?;
                opt.step(&sums, lr)?;
                let k = Coefficients::new(&cfg, step, lr);
                (t, m, v) = composite(&t, &m, &v, &(&g * step as f64)?, k)?;
                for (what, a, b) in [
                    ("θ", var.as_tensor(), &t),
                    ("m", &opt.m[0], &m),
                    ("v", &opt.v[0], &v),
                ] {
                    let (a, b) = (a.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
                    let first = a
                        .iter()
                        .zip(&b)
                        .position(|(x, y)| x.to_bits() != y.to_bits());
                    assert_eq!(
                        first, None,
                        "{what}, step {step}, weight decay {weight_decay}"
                    );
                }
            }
        }
        Ok(())
    }
}
