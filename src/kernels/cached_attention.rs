//! Inference-only scaled dot-product attention for the CPU.
//!
//! candle runs a batched matmul as one multi-threaded gemm call per batch entry; decoding 28
//! rows × 3 KV heads makes that thousands of tiny gemm calls per step, each paying a thread-pool
//! hand-off (the rollout profile was dominated by it). This kernel instead splits the work across
//! (row, KV head) pairs with rayon and does each pair's small dot products in one thread. It is
//! used only when no gradient is tracked and the tensors are f32 on the CPU; everything else
//! takes the other paths of [`super::attention`]. No crate offers a CPU attention kernel
//! over candle tensors, hence the hand-written loop.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::attention::softmax_in_place;
use super::shared_prefix::SharedPrefix;

/// `softmax(q·kᵀ·scale + bias)·v` for grouped queries.
///
/// * q: `[b, kv_heads, groups·t, d]`, row `g·t + i` is query position `i` of head `kv·groups + g`.
/// * k, v: `[b, kv_heads, own, d]` (any strides with a unit last stride), after the `prefix`
///   keys of each row's prefix when given (`total` = prefix length + `own`).
/// * bias: `[b, t, total]` additive, shared by all heads; `None` = attend to everything.
pub struct CachedAttention {
    pub scale: f32,
    pub t: usize,
    pub bias: Option<Arc<Vec<f32>>>,
    pub prefix: Option<SharedPrefix>,
}

/// A bias at or below this masks its key: its weight is exactly 0 after the softmax.
const MASKED_AT: f32 = -1e29;

impl CachedAttention {
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        q.apply_op3_no_bwd(k, v, self)
    }

    /// The keys of batch row `bi` that some query position of it attends to, in order. A key
    /// masked for all of them would get weight exactly 0 (`exp` underflows), and adding 0 leaves
    /// every sum as it is: skipping it gives the same bits, without its dot products (a
    /// prompt's left padding, the unused columns of a short row's slot). All keys when none is
    /// left (a fully masked row keeps the plain softmax's answer).
    fn unmasked_keys(&self, bi: usize, total: usize) -> Vec<usize> {
        let Some(bias) = &self.bias else {
            return (0..total).collect();
        };
        let rows = &bias[bi * self.t * total..(bi + 1) * self.t * total];
        let keys: Vec<usize> = (0..total)
            .filter(|&j| (0..self.t).any(|i| rows[i * total + j] > MASKED_AT))
            .collect();
        match keys.is_empty() {
            true => (0..total).collect(),
            false => keys,
        }
    }
}

struct View<'a> {
    data: &'a [f32],
    offset: usize,
    stride: [usize; 3],
}

impl View<'_> {
    fn of<'a>(s: &'a Storage, l: &Layout) -> Result<View<'a>> {
        match s {
            Storage::Cpu(s) => View::new(s, l),
            _ => candle_core::bail!("cached-attention: expected a CPU prefix"),
        }
    }

    fn new<'a>(s: &'a CpuStorage, l: &Layout) -> Result<View<'a>> {
        let st = l.stride();
        if st.len() != 4 || st[3] != 1 {
            candle_core::bail!("cached-attention: expected rank-4 tensors with a unit last stride");
        }
        Ok(View {
            data: s.as_slice::<f32>()?,
            offset: l.start_offset(),
            stride: [st[0], st[1], st[2]],
        })
    }

    fn row(&self, b: usize, h: usize, j: usize, d: usize) -> &[f32] {
        let o = self.offset + b * self.stride[0] + h * self.stride[1] + j * self.stride[2];
        &self.data[o..o + d]
    }
}

/// A row's keys (or values): those of its shared prefix, if any, then its own.
struct Keys<'a> {
    own: View<'a>,
    prefix: Option<(View<'a>, &'a [u32])>,
    prefix_len: usize,
}

impl<'a> Keys<'a> {
    fn own(own: View<'a>) -> Self {
        Keys {
            own,
            prefix: None,
            prefix_len: 0,
        }
    }

    fn shared(prefix: View<'a>, of_row: &'a [u32], prefix_len: usize, own: View<'a>) -> Self {
        Keys {
            own,
            prefix: Some((prefix, of_row)),
            prefix_len,
        }
    }

    /// Key `j` of batch row `b`, KV head `h`.
    fn row(&self, b: usize, h: usize, j: usize, d: usize) -> &[f32] {
        match &self.prefix {
            Some((p, of_row)) if j < self.prefix_len => p.row(of_row[b] as usize, h, j, d),
            _ => self.own.row(b, h, j - self.prefix_len, d),
        }
    }
}

/// Dot product with 8 independent partial sums, so the compiler can vectorise it (a single
/// running f32 sum must stay sequential).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let tail: f32 = a[chunks..]
        .iter()
        .zip(&b[chunks..])
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

impl CustomOp3 for CachedAttention {
    fn name(&self) -> &'static str {
        "cached-attention"
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
        let (b, nkv, rows, d) = l1.shape().dims4()?;
        let own = l2.shape().dims4()?.2;
        let (q, k, v) = (View::new(s1, l1)?, View::new(s2, l2)?, View::new(s3, l3)?);
        let guards = self
            .prefix
            .as_ref()
            .map(|p| (p.k.storage_and_layout(), p.v.storage_and_layout()));
        let (k, v) = match (&guards, &self.prefix) {
            (Some(((ks, kl), (vs, vl))), Some(p)) => {
                let prompts = p.k.dim(0)?;
                if p.of_row().len() != b || p.of_row().iter().any(|&g| g as usize >= prompts) {
                    candle_core::bail!("cached-attention: the prefix map does not fit the batch");
                }
                let plen = p.k.dim(2)?;
                (
                    Keys::shared(View::of(ks, kl)?, p.of_row(), plen, k),
                    Keys::shared(View::of(vs, vl)?, p.of_row(), plen, v),
                )
            }
            _ => (Keys::own(k), Keys::own(v)),
        };
        let total = k.prefix_len + own;
        let t = self.t;
        let unmasked: Vec<Vec<usize>> = (0..b).map(|bi| self.unmasked_keys(bi, total)).collect();
        let mut out = vec![0f32; b * nkv * rows * d];
        out.par_chunks_mut(rows * d)
            .enumerate()
            .for_each(|(pair, dst)| {
                let (bi, h) = (pair / nkv, pair % nkv);
                let keys = &unmasked[bi];
                let n = keys.len();
                // Scores of every query row of this (row, KV head) pair, `[rows, n]`: each
                // key and value row is read once for all the queries that share it (GQA).
                let mut p = vec![0f32; rows * n];
                for (jj, &j) in keys.iter().enumerate() {
                    let kj = k.row(bi, h, j, d);
                    for r in 0..rows {
                        p[r * n + jj] = dot(q.row(bi, h, r, d), kj) * self.scale;
                    }
                }
                for (r, pr) in p.chunks_mut(n).enumerate() {
                    if let Some(bias) = &self.bias {
                        let at = (bi * t + r % t) * total;
                        pr.iter_mut()
                            .zip(keys)
                            .for_each(|(x, &j)| *x += bias[at + j]);
                    }
                    softmax_in_place(pr);
                }
                for (jj, &j) in keys.iter().enumerate() {
                    let vj = v.row(bi, h, j, d);
                    for (r, o) in dst.chunks_mut(d).enumerate() {
                        let w = p[r * n + jj];
                        for (oi, vi) in o.iter_mut().zip(vj) {
                            *oi += w * vi;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, nkv, rows, d))))
    }
}
