//! Log-prob of the target token and entropy over the vocabulary from the logits, with the
//! log-prob's backward.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor, Var, D};
use rayon::prelude::*;

use super::{add_weight_grad, cpu_f32, linear, output, slice};

/// `log_softmax(rows · lm_headᵀ / T)` gathered at `targets` (differentiable in `rows` and
/// `lm_head`) and, when asked, each row's entropy (no gradient): `[n]` each for `rows`
/// `[n, hidden]` and `lm_head` `[vocab, hidden]`; f32 for bf16/f16 inputs. On the CPU in f32
/// one fused pass over the logits gives both ([`target_logprob_entropy`]); elsewhere the
/// log-softmax is materialised (in f32).
pub fn target_logprobs(
    rows: &Tensor,
    lm_head: &Tensor,
    targets: &[u32],
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    if cpu_f32(rows) {
        let logits = linear(rows, lm_head)?;
        return logits_logprobs(&logits, targets, temperature, with_entropy);
    }
    // The log-softmax over the vocabulary in f32 whatever the weights' dtype (spec §4.2).
    let logits = super::widen(&rows.matmul(&lm_head.t()?)?)?;
    let logp_all = candle_nn::ops::log_softmax(&(logits / temperature)?, D::Minus1)?;
    let idx = Tensor::new(targets, rows.device())?.unsqueeze(1)?;
    let logp = logp_all.gather(&idx, 1)?.squeeze(1)?;
    let entropy = match with_entropy {
        true => {
            let lp = logp_all.detach();
            Some((lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?)
        }
        false => None,
    };
    Ok((logp, entropy))
}

/// The fused half of [`target_logprobs`] (CPU f32): log-prob of each target under
/// `log_softmax(logits / T)` (differentiable in `logits`) and, when asked, each row's entropy.
fn logits_logprobs(
    logits: &Tensor,
    targets: &[u32],
    temperature: f64,
    with_entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let both = target_logprob_entropy(logits, targets, 1.0 / temperature)?;
    let entropy = both.narrow(1, 1, 1)?.squeeze(1)?.detach();
    Ok((
        both.narrow(1, 0, 1)?.squeeze(1)?,
        with_entropy.then_some(entropy),
    ))
}

/// A chunk of scoring rows through the output projection (lm_head) for a training loss, with
/// the projection's backward done where it is cheapest for the device.
///
/// The rows are `len` rows from `start` of a leaf `[n, hidden]` the caller back-propagates
/// through the decoder afterwards. On the CPU in f32 the logits are a leaf of their own and the
/// projection's backward runs by hand ([`HeadChunk::backward`]): `dz · W` for the rows, and
/// `sum += dzᵀ · rows` by one gemm straight into the lm_head's gradient sum (no
/// `[vocab, hidden]` temporary per chunk, 113 MB for SmolLM2). Elsewhere the chunk stays in the
/// graph and backprop delivers both gradients.
pub enum HeadChunk {
    Leaf {
        logits: Var,
        rows: Tensor,
        head: Tensor,
    },
    Graph {
        leaf: Tensor,
        start: usize,
        len: usize,
        head: Tensor,
    },
}

impl HeadChunk {
    /// Rows `start .. start + len` of `leaf` `[n, hidden]` through `lm_head` `[vocab, hidden]`.
    pub fn new(leaf: &Tensor, start: usize, len: usize, lm_head: &Tensor) -> Result<Self> {
        if cpu_f32(leaf) {
            let (rows, head) = (leaf.narrow(0, start, len)?.detach(), lm_head.detach());
            let logits = Var::from_tensor(&linear(&rows, &head)?)?;
            return Ok(HeadChunk::Leaf { logits, rows, head });
        }
        Ok(HeadChunk::Graph {
            leaf: leaf.clone(),
            start,
            len,
            head: lm_head.clone(),
        })
    }

    /// [`target_logprobs`] of the chunk with entropies: `[len]` each.
    pub fn target_logprobs(&self, targets: &[u32], temperature: f64) -> Result<(Tensor, Tensor)> {
        let (logp, entropy) = match self {
            HeadChunk::Leaf { logits, .. } => {
                logits_logprobs(logits.as_tensor(), targets, temperature, true)?
            }
            HeadChunk::Graph {
                leaf,
                start,
                len,
                head,
            } => target_logprobs(
                &leaf.narrow(0, *start, *len)?,
                head,
                targets,
                temperature,
                true,
            )?,
        };
        let entropy = entropy.ok_or_else(|| candle_core::Error::Msg("no entropy".into()))?;
        Ok((logp, entropy))
    }

    /// After the chunk's loss was back-propagated into `grads`: the gradient of its rows,
    /// `[len, hidden]` (`None` when the loss does not depend on them). For the leaf form the
    /// lm_head's gradient is added into `head_sum()`, the caller's running sum `[vocab,
    /// hidden]`; for the graph form backprop delivered it already.
    pub fn backward<'a>(
        &self,
        grads: &GradStore,
        head_sum: impl FnOnce() -> Result<&'a Tensor>,
    ) -> Result<Option<Tensor>> {
        match self {
            HeadChunk::Leaf { logits, rows, head } => match grads.get(logits.as_tensor()) {
                Some(dz) => {
                    add_weight_grad(head_sum()?, dz, rows)?;
                    Ok(Some(dz.matmul(head)?))
                }
                None => Ok(None),
            },
            HeadChunk::Graph {
                leaf, start, len, ..
            } => grads
                .get(leaf)
                .map(|g| g.narrow(0, *start, *len))
                .transpose(),
        }
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
