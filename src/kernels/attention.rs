//! Scaled dot-product attention for grouped queries, and the attention softmax (scale,
//! additive mask, softmax) with its backward.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

use super::blocked_attention::{blocked, blocked_attention};
use super::cached_attention::CachedAttention;
use super::shared_prefix::SharedPrefix;
use super::{cpu_f32, cpu_f32_on, output, slice, ROWS_PER_TASK};

/// Up to this many new positions per row, inference attention on the CPU runs
/// [`CachedAttention`] (one thread per row and KV head); a prefill's hundreds of rows go
/// faster through gemm.
const DECODE_ROWS: usize = 4;

/// The additive attention bias (causal plus masked padding keys), in the form the device's
/// attention takes: on the host for the CPU f32 kernels, elsewhere a `[batch, 1, seq, keys]`
/// tensor of the dtype the scores are masked in (f32 for bf16/f16 activations).
pub enum AttentionBias {
    Host(Arc<Vec<f32>>),
    Tensor(Tensor),
}

/// Additive attention bias for masked keys. Finite (not -inf) so that a query row whose keys are
/// all masked (a left-padding position) gives a harmless uniform row instead of NaN.
pub const MASKED: f64 = -1e30;

impl AttentionBias {
    /// The bias of a forward of `t` new positions per row after `past` keys: causal, plus the
    /// keys that `key_mask` (`[b, past + t]`, any dtype, 0 = padding) masks; `None` when
    /// nothing is masked (one new position per row and no mask). For the CPU f32 kernels it is
    /// built on the host; elsewhere on `device` from the mask where it lies, so that a decode
    /// step moves no `[rows, keys]` array between host and device (issue 17). Errors when the
    /// mask's shape is not `[b, past + t]`.
    pub fn for_keys(
        key_mask: Option<&Tensor>,
        (b, t, past): (usize, usize, usize),
        device: &Device,
        dtype: DType,
    ) -> Result<Option<Self>> {
        let total = past + t;
        if let Some(m) = key_mask {
            let dims = m.dims2()?;
            if dims != (b, total) {
                candle_core::bail!("key_mask has shape {dims:?}, expected ({b}, {total})");
            }
        }
        if key_mask.is_none() && t == 1 {
            return Ok(None);
        }
        if on_host(device, dtype, t) {
            return Ok(host_bias(key_mask, (b, t, past))?.map(|h| AttentionBias::Host(Arc::new(h))));
        }
        // 1 where masked: a padding key, or a key after the query (`j > past + i`).
        let keys = Tensor::arange(0u32, total as u32, device)?.reshape((1, total))?;
        let queries = Tensor::arange(past as u32, total as u32, device)?.reshape((t, 1))?;
        let mut masked = keys.broadcast_gt(&queries)?.reshape((1, 1, t, total))?;
        if let Some(m) = key_mask {
            let pad = m.to_device(device)?.eq(0.0)?.reshape((b, 1, 1, total))?;
            masked = masked.broadcast_maximum(&pad)?;
        }
        let bias = masked
            .broadcast_as((b, 1, t, total))?
            .to_dtype(super::accumulation_dtype(dtype))?
            .affine(MASKED, 0.0)?;
        Ok(Some(AttentionBias::Tensor(bias)))
    }

    /// `host` is `[batch, seq, keys]`, row-major; masked entries hold a large finite negative
    /// value (the caller's; it must stay finite in `dtype`).
    pub fn new(
        host: Arc<Vec<f32>>,
        (b, t, keys): (usize, usize, usize),
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if on_host(device, dtype, t) {
            return Ok(AttentionBias::Host(host));
        }
        // bf16/f16 scores are widened to f32 before the mask and softmax (-1e30 is -inf in f16).
        let bias = Tensor::from_slice(host.as_slice(), (b, 1, t, keys), device)?;
        Ok(AttentionBias::Tensor(
            bias.to_dtype(super::accumulation_dtype(dtype))?,
        ))
    }
}

/// Whether attention over `t` query positions on `device` in `dtype` takes its bias on the
/// host: the CPU f32 kernels do, below the blocked attention's threshold.
fn on_host(device: &Device, dtype: DType, t: usize) -> bool {
    cpu_f32_on(device, dtype) && !blocked(t)
}

/// [`AttentionBias::for_keys`] on the host, `[b, t, past + t]` row-major; `None` when nothing
/// is masked.
fn host_bias(
    key_mask: Option<&Tensor>,
    (b, t, past): (usize, usize, usize),
) -> Result<Option<Vec<f32>>> {
    let total = past + t;
    let keys: Option<Vec<Vec<u32>>> = key_mask
        .map(|m| m.to_dtype(DType::U32)?.to_vec2())
        .transpose()?;
    let any_pad = keys
        .as_ref()
        .is_some_and(|k| k.iter().flatten().any(|&v| v == 0));
    if t == 1 && !any_pad {
        return Ok(None);
    }
    let mut bias = vec![0f32; b * t * total];
    for r in 0..b {
        for i in 0..t {
            for j in 0..total {
                let causal = j > past + i;
                let pad = keys.as_ref().is_some_and(|k| k[r][j] == 0);
                if causal || pad {
                    bias[(r * t + i) * total + j] = MASKED as f32;
                }
            }
        }
    }
    Ok(Some(bias))
}

/// `softmax(q·kᵀ/√d + bias)·v` for grouped-query attention without copying K/V: the query
/// heads of each KV group are folded into the sequence axis, so one KV head serves its group
/// in a single matmul (HF `repeat_kv` semantics: query head h reads KV head h / groups).
///
/// * `q`: `[b, kv_heads, groups·t, d]`, row `g·t + i` is position `i` of query head
///   `kv·groups + g`; `heads` = kv_heads · groups.
/// * `k`, `v`: `[b, kv_heads, own, d]`, after the `prefix` keys of each row when given.
/// * Returns `[b, kv_heads, groups·t, d]`.
///
/// Above two query blocks (any device): [`blocked_attention`], whose backward recomputes the
/// scores. Else, CPU f32: `CachedAttention` for a few inference rows, else gemm scores through
/// [`attention_softmax`] (with its backward); elsewhere candle's differentiable ops.
pub fn attention(
    q: &Tensor,
    mut k: Tensor,
    mut v: Tensor,
    mut prefix: Option<SharedPrefix>,
    bias: Option<&AttentionBias>,
    heads: usize,
) -> Result<Tensor> {
    let (b, nkv, rows, hd) = q.dims4()?;
    let groups = heads / nkv;
    let t = rows / groups;
    let scale = 1.0 / (hd as f64).sqrt();
    let host = match bias {
        Some(AttentionBias::Host(h)) => Some(h.clone()),
        _ => None,
    };
    let fused = cpu_f32(q);
    let kernel = fused && !q.track_op() && !k.track_op() && t <= DECODE_ROWS;
    let total = k.dim(2)? + prefix.as_ref().map_or(Ok(0), |p| p.k.dim(2))?;
    if (fused && !kernel) || blocked(t) {
        // These paths take every row's keys in one tensor; cached keys are a view into a
        // larger buffer, which the CPU kernels cannot stride over.
        if let Some(p) = prefix.take() {
            (k, v) = p.joined(&k, &v)?;
        }
        (k, v) = (k.contiguous()?, v.contiguous()?);
    }
    if blocked(t) {
        let bias = match bias {
            Some(AttentionBias::Tensor(bias)) => Some(bias.clone()),
            Some(AttentionBias::Host(h)) => Some(Tensor::from_slice(
                h.as_slice(),
                (b, 1, t, total),
                q.device(),
            )?),
            None => None,
        };
        blocked_attention(q, &k, &v, bias.as_ref(), groups, scale)
    } else if kernel {
        let op = CachedAttention {
            scale: scale as f32,
            t,
            bias: host,
            prefix,
        };
        op.forward(q, &k, &v)
    } else if fused {
        let probs = attention_softmax(&q.matmul(&k.t()?)?, scale, t, host)?;
        probs.matmul(&v)
    } else {
        // The cache's keys are used in place (a strided view of its buffer, which the batched
        // matmul takes), and a shared prompt's are not joined to every row's own: its scores
        // and its share of the output are their own matmuls (`SharedPrefix::scores`).
        let shared = prefix.as_ref().map(|p| p.scores(q, scale)).transpose()?;
        let (k, v) = (strided_rows(k)?, strided_rows(v)?);
        let own = (q.matmul(&k.t()?)? * scale)?;
        let scaled = match &shared {
            Some((pre, _)) => Tensor::cat(&[pre, &own], 3)?,
            None => own,
        };
        // Softmax in f32 for bf16/f16 (HF: `softmax(…, dtype=torch.float32).to(q.dtype)`).
        let scores = super::widen(&scaled)?.reshape((b, heads, t, total))?;
        let scores = match bias {
            Some(AttentionBias::Tensor(bias)) => scores.broadcast_add(bias)?,
            _ => scores,
        };
        let probs = if scores.track_op() {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let probs = probs
            .to_dtype(v.dtype())?
            .reshape((b, nkv, groups * t, total))?;
        match shared {
            None => probs.matmul(&v),
            Some((pre, values)) => {
                let n = pre.dim(3)?;
                let own = probs.narrow(3, n, total - n)?.contiguous()?.matmul(&v)?;
                values.weigh(&probs.narrow(3, 0, n)?)? + own
            }
        }
    }
}

/// `x` `[b, h, n, d]` as the batched matmul takes it without a copy: each position's `d`
/// values contiguous, positions `d` apart, heads and batch rows at regular strides (a view of
/// a larger cache buffer qualifies); any other layout is copied.
fn strided_rows(x: Tensor) -> Result<Tensor> {
    let (_, h, _, d) = x.dims4()?;
    match *x.stride() {
        [s0, s1, s2, 1] if s2 == d && s0 == s1 * h => Ok(x),
        _ => x.contiguous(),
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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Result, Tensor};

    use super::{AttentionBias, MASKED};

    fn bias_values(bias: Option<AttentionBias>) -> Result<Vec<f32>> {
        Ok(match bias {
            Some(AttentionBias::Host(h)) => h.to_vec(),
            Some(AttentionBias::Tensor(t)) => t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            None => Vec::new(),
        })
    }

    #[test]
    fn the_bias_is_the_same_built_on_the_host_or_from_the_mask_where_it_lies() -> Result<()> {
        let cpu = &Device::Cpu;
        // 2 rows, 3 new positions after 2 cached keys; row 0 is left-padded, row 1 has a hole.
        let mask = Tensor::new(&[[0u8, 1, 1, 1, 1], [1, 1, 0, 1, 1]], cpu)?;
        let dims = (2, 3, 2);
        let host = AttentionBias::for_keys(Some(&mask), dims, cpu, DType::F32)?;
        assert!(matches!(host, Some(AttentionBias::Host(_))));
        let host = bias_values(host)?;
        let m = MASKED as f32;
        // Row 0, query 0 (position 2): the padding key and the two later keys are masked.
        assert_eq!(&host[..5], &[m, 0.0, 0.0, m, m]);
        // Row 1, query 2 (position 4): only the hole.
        assert_eq!(&host[25..], &[0.0, 0.0, m, 0.0, 0.0]);
        for dtype in [DType::F64, DType::BF16] {
            let device = AttentionBias::for_keys(Some(&mask), dims, cpu, dtype)?;
            let Some(AttentionBias::Tensor(t)) = &device else {
                panic!("{dtype:?}: expected a tensor bias");
            };
            assert_eq!(t.dims(), &[2, 1, 3, 5]);
            assert_eq!(bias_values(device)?, host, "{dtype:?}");
        }
        // No mask: causal only, or nothing at all for a single new position.
        let causal = bias_values(AttentionBias::for_keys(None, (1, 2, 1), cpu, DType::F64)?)?;
        assert_eq!(causal, [0.0, 0.0, m, 0.0, 0.0, 0.0]);
        assert!(AttentionBias::for_keys(None, (4, 1, 9), cpu, DType::F64)?.is_none());
        assert!(AttentionBias::for_keys(Some(&mask), (2, 1, 3), cpu, DType::F32).is_err());
        Ok(())
    }
}
