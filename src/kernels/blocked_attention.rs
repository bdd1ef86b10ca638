//! Exact memory-efficient attention for long sequences (issue 16, item 3): the algorithm of
//! FlashAttention (Dao et al. 2022, Alg. 1–2) at the granularity of tensor ops, so it runs on
//! every device and dtype candle has. Queries are taken in blocks of [`QUERY_BLOCK`] positions,
//! so one block's scores `[b, kv_heads, groups·block, keys]` exist at a time instead of the
//! whole `[groups·t, keys]`; the forward keeps only each query row's softmax statistics (max and sum), and the
//! backward recomputes a block's scores and probabilities from it (scores are never saved for
//! the backward). The values are the plain attention's to f32 rounding.
//!
//! candle's autograd records custom ops only, so the op ([`BlockedAttention`]) is a
//! `CustomOp3` over `(q, k, v)` whose forward hands back the output computed block by block
//! with candle's device-generic ops before it, and whose `bwd` is the recomputing backward.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, D};

use super::{accumulation_dtype, widen};

/// Query positions per block.
pub const QUERY_BLOCK: usize = 512;

/// Whether a forward over `t` query positions attends in blocks: above two blocks. Shorter
/// sequences (every CPU benchmark and the demo) keep the plain path and its CPU kernels.
pub fn blocked(t: usize) -> bool {
    t > 2 * QUERY_BLOCK
}

/// `softmax(q·kᵀ·scale + bias)·v`, [`QUERY_BLOCK`] query positions at a time, differentiable
/// in `q`, `k`, `v` through the recomputing backward when any of them tracks gradients.
///
/// * `q`: `[b, kv_heads, groups·t, d]` (row `g·t + i`: position `i` of the group's head `g`).
/// * `k`, `v`: `[b, kv_heads, keys, d]`, every row's keys (a shared prefix already joined).
/// * `bias`: the additive mask `[b, 1, t, keys]` in f32, or none.
/// * Scores, softmax and the gradient sums of `k` and `v` are f32 whatever the dtype (bf16 and
///   f16 widen, as the plain path does). Returns `[b, kv_heads, groups·t, d]` in `q`'s dtype.
pub fn blocked_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
    scale: f64,
) -> Result<Tensor> {
    blocked_attention_with(q, k, v, bias, groups, scale, QUERY_BLOCK)
}

/// [`blocked_attention`] with blocks of `block` positions (tests use small ones).
pub fn blocked_attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    groups: usize,
    scale: f64,
    block: usize,
) -> Result<Tensor> {
    let blocks = Blocks::new(q, groups, block, bias.cloned(), scale)?;
    let (qd, kd, vd) = (q.detach(), k.detach(), v.detach());
    let mut outs = Vec::new();
    let (mut maxes, mut sums) = (Vec::new(), Vec::new());
    for (i0, n) in blocks.spans() {
        let s = blocks.scores(&qd, &kd, i0, n)?;
        let m = s.max_keepdim(D::Minus1)?;
        let e = s.broadcast_sub(&m)?.exp()?;
        let l = e.sum_keepdim(D::Minus1)?;
        let p = e.broadcast_div(&l)?;
        outs.push(p.to_dtype(vd.dtype())?.matmul(&vd)?);
        maxes.push(m);
        sums.push(l);
    }
    let out = blocks.join(&outs)?;
    if !(q.track_op() || k.track_op() || v.track_op()) {
        return Ok(out);
    }
    let op = BlockedAttention {
        out: Mutex::new(Some(out)),
        max: blocks.join(&maxes)?,
        sum: blocks.join(&sums)?,
        blocks,
    };
    q.apply_op3(k, v, op)
}

/// The block geometry of one attention call.
struct Blocks {
    groups: usize,
    t: usize,
    block: usize,
    bias: Option<Tensor>,
    scale: f64,
}

impl Blocks {
    fn new(
        q: &Tensor,
        groups: usize,
        block: usize,
        bias: Option<Tensor>,
        scale: f64,
    ) -> Result<Self> {
        let rows = q.dim(2)?;
        if groups == 0 || rows % groups != 0 || block == 0 {
            candle_core::bail!(
                "blocked attention: {rows} query rows in {groups} groups, blocks of {block}"
            );
        }
        Ok(Self {
            groups,
            t: rows / groups,
            block,
            bias,
            scale,
        })
    }

    /// `(first position, positions)` of each block.
    fn spans(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.t)
            .step_by(self.block)
            .map(|i0| (i0, self.block.min(self.t - i0)))
    }

    /// Rows of positions `i0..i0+n` of every group: `[b, h, groups·t, x]` → `[b, h, groups·n, x]`.
    fn rows(&self, x: &Tensor, i0: usize, n: usize) -> Result<Tensor> {
        let (b, h, _, w) = x.dims4()?;
        x.reshape((b, h, self.groups, self.t, w))?
            .narrow(3, i0, n)?
            .reshape((b, h, self.groups * n, w))
    }

    /// The blocks' rows back in order: the inverse of [`Blocks::rows`] over [`Blocks::spans`].
    fn join(&self, blocks: &[Tensor]) -> Result<Tensor> {
        let parts = blocks
            .iter()
            .map(|x| {
                let (b, h, r, w) = x.dims4()?;
                x.reshape((b, h, self.groups, r / self.groups, w))
            })
            .collect::<Result<Vec<_>>>()?;
        let joined = Tensor::cat(&parts, 3)?;
        let (b, h, _, _, w) = joined.dims5()?;
        joined.reshape((b, h, self.groups * self.t, w))
    }

    /// The block's scaled, masked scores `[b, h, groups·n, keys]` in f32.
    fn scores(&self, q: &Tensor, k: &Tensor, i0: usize, n: usize) -> Result<Tensor> {
        let s = (widen(&self.rows(q, i0, n)?.matmul(&k.t()?)?)? * self.scale)?;
        let Some(bias) = &self.bias else {
            return Ok(s);
        };
        let (b, h, r, keys) = s.dims4()?;
        let bias = bias.narrow(2, i0, n)?.unsqueeze(1)?;
        s.reshape((b, h, self.groups, n, keys))?
            .broadcast_add(&bias)?
            .reshape((b, h, r, keys))
    }
}

/// The op that ties the block-wise output to `(q, k, v)` in the graph; see the module doc.
struct BlockedAttention {
    /// The forward's output, handed over once.
    out: Mutex<Option<Tensor>>,
    /// The maximum of each query row's masked scores and the sum of their exponentials after
    /// subtracting it, `[b, h, groups·t, 1]` f32 each. (Kept apart rather than as one
    /// log-sum-exp: a row whose keys are all masked has scores of -1e30, which would absorb
    /// the logarithm of the sum.)
    max: Tensor,
    sum: Tensor,
    blocks: Blocks,
}

impl BlockedAttention {
    /// The forward's output as the storage of the device `pick` selects (it is handed over
    /// once: the op keeps no copy).
    fn hand_over<S: BackendStorage>(
        &self,
        pick: impl Fn(&Storage) -> Option<&S>,
    ) -> Result<(S, Shape)> {
        let out = match self.out.lock().ok().and_then(|mut o| o.take()) {
            Some(out) => out,
            None => candle_core::bail!("blocked attention: the forward ran twice"),
        };
        let (storage, layout) = out.storage_and_layout();
        // `try_clone` copies the whole buffer: `out` is fresh (a `cat`), so that is its data.
        debug_assert!(layout.is_contiguous() && layout.start_offset() == 0);
        match pick(&storage) {
            Some(s) => Ok((s.try_clone(layout)?, out.shape().clone())),
            None => candle_core::bail!("blocked attention: the output is on another device"),
        }
    }
}

impl CustomOp3 for BlockedAttention {
    fn name(&self) -> &'static str {
        "blocked-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.hand_over(|s| match s {
            Storage::Cpu(s) => Some(s),
            _ => None,
        })
    }

    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        self.hand_over(|s| match s {
            Storage::Cuda(s) => Some(s),
            _ => None,
        })
    }

    /// Per block: `P = exp(S − max) / sum`, `dP = dO·vᵀ`, `dS = scale · P ⊙ (dP − rowsum(dP ⊙ P))`,
    /// `dq = dS·k`, `dk += dSᵀ·q`, `dv += Pᵀ·dO` (sums in f32, f64 for f64), each only for
    /// an input that is part of the graph.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let b = &self.blocks;
        let need = (q.track_op(), k.track_op(), v.track_op());
        let (q, k, v, grad) = (q.detach(), k.detach(), v.detach(), grad.detach());
        let acc = accumulation_dtype(k.dtype());
        let mut dk = Tensor::zeros(k.shape(), acc, k.device())?;
        let mut dv = Tensor::zeros(v.shape(), acc, v.device())?;
        let mut dq = Vec::new();
        for (i0, n) in b.spans() {
            let gb = b.rows(&grad, i0, n)?.to_dtype(v.dtype())?;
            let p = b
                .scores(&q, &k, i0, n)?
                .broadcast_sub(&b.rows(&self.max, i0, n)?)?
                .exp()?
                .broadcast_div(&b.rows(&self.sum, i0, n)?)?;
            if need.2 {
                dv = (dv + widen(&p.to_dtype(v.dtype())?.t()?.matmul(&gb)?)?)?;
            }
            if !(need.0 || need.1) {
                continue;
            }
            let dp = widen(&gb.matmul(&v.t()?)?)?;
            let dot = (&dp * &p)?.sum_keepdim(D::Minus1)?;
            let ds = ((dp.broadcast_sub(&dot)? * &p)? * b.scale)?.to_dtype(q.dtype())?;
            if need.0 {
                dq.push(ds.matmul(&k)?);
            }
            if need.1 {
                dk = (dk + widen(&ds.t()?.matmul(&b.rows(&q, i0, n)?)?)?)?;
            }
        }
        Ok((
            need.0.then(|| b.join(&dq)).transpose()?,
            need.1.then(|| dk.to_dtype(k.dtype())).transpose()?,
            need.2.then(|| dv.to_dtype(v.dtype())).transpose()?,
        ))
    }
}
