//! AdamW with PyTorch semantics (decoupled weight decay, bias-corrected moments; spec §4.4):
//! the state and the step over all parameters; one parameter's update is
//! [`kernels::adamw_update`] (in place on the CPU).

use candle_core::{Result, Tensor, Var};

use super::GradAccumulator;
use crate::kernels::{self, Coefficients};

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
        let k = coefficients(&self.cfg, self.step, lr);
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
            let g = g.to_dtype(p.dtype())?;
            kernels::adamw_update(p, &mut self.m[i], &mut self.v[i], &g, k)?;
        }
        Ok(())
    }
}

/// The scalars of update number `step` at learning rate `lr`.
fn coefficients(c: &AdamWConfig, step: usize, lr: f64) -> Coefficients {
    Coefficients::new(c.beta1, c.beta2, c.eps, c.weight_decay, step, lr)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::coefficients;
    use crate::kernels::adamw::composite;
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
                let k = coefficients(&cfg, step, lr);
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
