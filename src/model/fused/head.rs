//! Log-prob of the target token and entropy over the vocabulary from the logits, with the
//! log-prob's backward.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{output, slice};

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

    fn bwd(&self, logits: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let grad = TargetLogprobGrad {
            targets: self.targets.clone(),
            inv_t: self.inv_t,
        };
        Ok(Some(logits.apply_op3_no_bwd(
            &y.contiguous()?,
            &dy.contiguous()?,
            &grad,
        )?))
    }
}

/// `dlogits = g · inv_t · (onehot(target) − softmax)` from the logits, the forward's output and
/// its gradient (column 0 of each). The log-normaliser comes back from the forward's log-prob,
/// `lse = logits[target] · inv_t − logp`, so one pass over the logits suffices.
struct TargetLogprobGrad {
    targets: Arc<Vec<u32>>,
    inv_t: f32,
}

impl CustomOp3 for TargetLogprobGrad {
    fn name(&self) -> &'static str {
        "fused-target-logprob-grad"
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
        let y = slice(self.name(), s2, l2)?;
        let dy = slice(self.name(), s3, l3)?;
        let (_, v) = l1.shape().dims2()?;
        let mut d = vec![0f32; x.len()];
        d.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .enumerate()
            .for_each(|(i, (dr, row))| {
                let target = self.targets[i] as usize;
                let lse = row[target] * self.inv_t - y[2 * i];
                let scale = dy[2 * i] * self.inv_t;
                for (dj, &xj) in dr.iter_mut().zip(row) {
                    *dj = -scale * (xj * self.inv_t - lse).exp();
                }
                dr[target] += scale;
            });
        output(d, l1.shape().clone())
    }
}
