//! Linear weights laid out for decoding: gemm's own packed layout, in place, for one rollout.
//!
//! gemm multiplies out of 16-row "panels" of W stored k-major (`panel[k][16]`), and when x has
//! few rows it re-packs all of W into that layout on every call: in a rollout profile (28 rows)
//! `pack_lhs` was 31% of the time, more than the multiplications (26%). A decoder's weights do
//! not change during a rollout, so [`Panels`] re-lays each weight out once and runs gemm-f32's
//! own 16 × 6 AVX2 microkernel over the panels (x, a few rows, is packed per call: `[6 rows][k]`
//! blocks k-major, also gemm's layout). Measured at 28 rows against gemm: 1.3–1.7× per product
//! (576 → 1536 and the 576 → 49152 head), and faster from 1 to 64 rows. The crate exposes its
//! microkernels but not a product over pre-packed operands, hence the loop here.
//!
//! The re-layout happens **in the weight's own storage** (rows 16p..16p+16 fill the same bytes
//! in both layouts, so each block is transposed in place) and is undone when the [`Panels`] is
//! dropped: a copy would cost as much memory as the policy, more than the whole GRPO step may
//! add (issue #7's peak-RSS target). While it lives, the weight's tensor holds panels, not rows;
//! only [`Panels`] may read it ([`super::Decoder::for_decoding`] keeps that contract).
//!
//! Only x86-64 builds with FMA have the kernel ([`Panels::in_place`] gives `None` elsewhere, and
//! for weights whose row count is not a multiple of 16; the decoder keeps those dense). Sums
//! run in a different order than gemm's, so results match a dense product to float rounding,
//! not bit for bit.

use candle_core::{CpuStorage, CustomOp2, InplaceOp1, Layout, Result, Shape, Storage, Tensor};
use gemm_common::microkernel::MicroKernelFn;
use rayon::prelude::*;

use crate::kernels::{cpu_f32, output, slice, slice_mut};

/// W rows per panel: the microkernel's two 8-lane registers.
const MR: usize = 16;
/// x rows per microkernel call.
const NR: usize = 6;
/// Depth per microkernel call, so that an x block (`KC × NR`) and a panel slice (`KC × MR`)
/// stay in L1.
const KC: usize = 256;
/// Panels handed to one rayon task.
const PANELS_PER_TASK: usize = 4;

/// gemm-f32's `16 × n` microkernels, `n` = 1..=6 at index `n − 1`, where the build has them.
#[cfg(all(target_arch = "x86_64", target_feature = "fma"))]
const KERNELS: Option<&[MicroKernelFn<f32>; NR]> = Some(&gemm_f32::microkernel::fma::f32::UKR[1]);
#[cfg(not(all(target_arch = "x86_64", target_feature = "fma")))]
const KERNELS: Option<&[MicroKernelFn<f32>; NR]> = None;

/// A `[out, k]` weight whose storage holds `out / 16` panels of `k × 16` until this is dropped.
pub struct Panels {
    weight: Tensor,
    out: usize,
    k: usize,
    kernels: &'static [MicroKernelFn<f32>; NR],
}

impl Panels {
    /// Re-lays out a `[out, k]` f32 CPU weight as panels in place; `None` (nothing changed) for
    /// other tensors, for `out` not a multiple of 16, or where the build has no kernel.
    pub fn in_place(weight: &Tensor) -> Result<Option<Self>> {
        let Some(kernels) = KERNELS else {
            return Ok(None);
        };
        let (out, k) = weight.dims2()?;
        if !cpu_f32(weight) || !weight.is_contiguous() || out % MR != 0 || k == 0 {
            return Ok(None);
        }
        weight.inplace_op1(&Relayout { k, to_panels: true })?;
        Ok(Some(Self {
            weight: weight.clone(),
            out,
            k,
            kernels,
        }))
    }

    /// `x · Wᵀ` for `x` `[…, k]` → `[…, out]` (no gradient: a decoding op).
    pub fn linear(&self, x: &Tensor) -> Result<Tensor> {
        let mut ys = Self::linears(&[self], x)?;
        ys.pop()
            .ok_or_else(|| candle_core::Error::Msg("panel-linear: no output".into()))
    }

    /// `x · Wᵢᵀ` for several weights of the same `k` (a layer's Q, K and V; gate and up), in
    /// one pass over the threads instead of one each: a decoding step's matmuls are small
    /// enough that waking the pool is a visible cost.
    pub fn linears(ws: &[&Panels], x: &Tensor) -> Result<Vec<Tensor>> {
        let x = x.contiguous()?;
        let dims = x.dims().to_vec();
        let k = ws.first().map_or(0, |w| w.k);
        if ws.is_empty() || dims.last() != Some(&k) || ws.iter().any(|w| w.k != k) {
            candle_core::bail!("panel-linear: input {dims:?} for weights with k = {k}");
        }
        let (xs, xl) = x.storage_and_layout();
        let guards: Vec<_> = ws.iter().map(|w| w.weight.storage_and_layout()).collect();
        let xv = cpu_slice(&xs, xl)?;
        let w = guards
            .iter()
            .map(|(s, l)| cpu_slice(s, l))
            .collect::<Result<Vec<_>>>()?;
        let ys = products(ws, &w, xv, xv.len() / k);
        ws.iter()
            .zip(ys)
            .map(|(p, y)| {
                let mut shape = dims.clone();
                *shape.last_mut().expect("checked above") = p.out;
                Tensor::from_vec(y, shape, x.device())
            })
            .collect()
    }

    /// Rows of W for token ids (an embedding lookup), `[n]` u32 → `[n, k]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        ids.contiguous()?
            .apply_op2_no_bwd(&self.weight, &Rows(self))
    }
}

/// `yᵢ = x · Wᵢᵀ`, `x` `[rows, k]` and each `yᵢ` `[rows, outᵢ]` row-major, `w[i]` the panels
/// of `ps[i]`: every task is a few panels of one weight.
fn products(ps: &[&Panels], w: &[&[f32]], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
    let k = ps[0].k;
    let mut xp = vec![0f32; rows.div_ceil(NR) * NR * k];
    for (block, xs) in xp.chunks_mut(NR * k).zip(x.chunks(NR * k)) {
        transpose_into(xs, block, k, NR);
    }
    let mut ys: Vec<Vec<f32>> = ps.iter().map(|p| vec![0f32; rows * p.out]).collect();
    let dsts: Vec<SharedDst> = ys.iter_mut().map(|y| SharedDst(y.as_mut_ptr())).collect();
    let tasks: Vec<(usize, usize)> = ps
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            (0..p.out / MR)
                .step_by(PANELS_PER_TASK)
                .map(move |p0| (i, p0))
        })
        .collect();
    tasks.into_par_iter().for_each(|(i, p0)| {
        let (p, out, dst) = (ps[i], ps[i].out, dsts[i]);
        for panel_index in p0..(p0 + PANELS_PER_TASK).min(out / MR) {
            let panel = &w[i][panel_index * MR * k..][..MR * k];
            let row0 = panel_index * MR;
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                for (b, block) in xp.chunks(NR * k).enumerate() {
                    let n = NR.min(rows - b * NR);
                    // SAFETY: the panel slice holds `kc × MR` elements from `k0 · MR` and the
                    // x block `kc × NR` from `k0 · NR`; the destination is the `MR × n` block
                    // of yᵢ at (rows b·NR.., columns row0..), inside yᵢ's `rows × out` and
                    // written by this task alone (its own panels). The kernel needs FMA,
                    // which `KERNELS` is compiled only with.
                    unsafe {
                        (p.kernels[n - 1])(
                            MR,
                            n,
                            kc,
                            dst.at(b * NR * out + row0),
                            panel.as_ptr().add(k0 * MR),
                            block.as_ptr().add(k0 * NR),
                            out as isize,
                            1,
                            MR as isize,
                            NR as isize,
                            1,
                            1.0,
                            1.0,
                            u8::from(k0 > 0),
                            false,
                            false,
                            false,
                            std::ptr::null(),
                        )
                    };
                }
            }
        }
    });
    ys
}

impl Drop for Panels {
    /// Puts the weight's rows back.
    fn drop(&mut self) {
        let back = Relayout {
            k: self.k,
            to_panels: false,
        };
        // Cannot fail: the storage was checked to be contiguous f32 on the CPU when it was
        // re-laid out, and a tensor's storage never changes kind.
        if let Err(e) = self.weight.inplace_op1(&back) {
            eprintln!("error: restoring a decoding weight's layout: {e}");
        }
    }
}

fn cpu_slice<'a>(s: &'a Storage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(s) => slice("panel-linear", s, l),
        _ => candle_core::bail!("panel-linear: expected CPU tensors"),
    }
}

/// Writes the `r × k` row-major block `src` (r ≤ `width`) k-major into `dst`: `dst[c·width + r]`.
fn transpose_into(src: &[f32], dst: &mut [f32], k: usize, width: usize) {
    for (r, row) in src.chunks(k).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * width + r] = v;
        }
    }
}

/// Rows ↔ panels, one 16-row block at a time (each block keeps its bytes).
struct Relayout {
    k: usize,
    to_panels: bool,
}

impl InplaceOp1 for Relayout {
    fn name(&self) -> &'static str {
        "panel-relayout"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let k = self.k;
        slice_mut(self.name(), s, l)?
            .par_chunks_mut(MR * k)
            .for_each_init(
                || vec![0f32; MR * k],
                |scratch, block| {
                    scratch.copy_from_slice(block);
                    if self.to_panels {
                        transpose_into(scratch, block, k, MR);
                    } else {
                        for (r, row) in block.chunks_mut(k).enumerate() {
                            for (c, v) in row.iter_mut().enumerate() {
                                *v = scratch[c * MR + r];
                            }
                        }
                    }
                },
            );
        Ok(())
    }
}

/// y's buffer, shared by the tasks that each write their own columns of it.
#[derive(Clone, Copy)]
struct SharedDst(*mut f32);
// SAFETY: the tasks of `Panels::product` write disjoint elements.
unsafe impl Send for SharedDst {}
unsafe impl Sync for SharedDst {}

impl SharedDst {
    /// The element `offset` (a method, so that closures capture the whole `Sync` wrapper).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Rows of the panels for token ids.
struct Rows<'a>(&'a Panels);

impl CustomOp2 for Rows<'_> {
    fn name(&self) -> &'static str {
        "panel-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, w) = (self.0, slice(self.name(), s2, l2)?);
        let ids = match (s1, l1.contiguous_offsets()) {
            (CpuStorage::U32(ids), Some((a, b))) => &ids[a..b],
            _ => candle_core::bail!("{}: expected contiguous u32 token ids", self.name()),
        };
        let mut rows = vec![0f32; ids.len() * p.k];
        for (&id, row) in ids.iter().zip(rows.chunks_mut(p.k)) {
            let id = id as usize;
            if id >= p.out {
                candle_core::bail!("{}: token id {id} ≥ vocabulary {}", self.name(), p.out);
            }
            let panel = &w[(id / MR) * MR * p.k..][..MR * p.k];
            for (c, v) in row.iter_mut().enumerate() {
                *v = panel[c * MR + id % MR];
            }
        }
        output(rows, (ids.len(), p.k))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::Panels;

    #[test]
    fn products_and_rows_match_the_dense_weight_which_comes_back_bit_for_bit() {
        // Small integers: every sum is exact in f32, whatever the order. 13 rows of x leave a
        // partial block, k = 300 two depth blocks.
        let (rows, k, out) = (13, 300, 48);
        let xs: Vec<f32> = (0..rows * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let ws: Vec<f32> = (0..out * k).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let w = Tensor::from_slice(&ws, (out, k), &Device::Cpu).unwrap();
        let Some(p) = Panels::in_place(&w).unwrap() else {
            return;
        };
        for n in [1, rows] {
            let x = Tensor::from_slice(&xs[..n * k], (n, k), &Device::Cpu).unwrap();
            let y: Vec<Vec<f32>> = p.linear(&x).unwrap().to_vec2().unwrap();
            for (r, yr) in y.iter().enumerate() {
                for (j, &v) in yr.iter().enumerate() {
                    let want: f32 = (0..k).map(|i| xs[r * k + i] * ws[j * k + i]).sum();
                    assert_eq!(v, want, "rows {n}: ({r}, {j})");
                }
            }
        }
        // Two weights in one pass give each its own product.
        let w2: Vec<f32> = ws[..32 * k].iter().map(|v| v * 2.0).collect();
        let w2 = Tensor::from_slice(&w2, (32, k), &Device::Cpu).unwrap();
        let p2 = Panels::in_place(&w2).unwrap().unwrap();
        let x = Tensor::from_slice(&xs, (rows, k), &Device::Cpu).unwrap();
        let both = Panels::linears(&[&p, &p2], &x).unwrap();
        let one = p.linear(&x).unwrap();
        assert_eq!(
            both[0].to_vec2::<f32>().unwrap(),
            one.to_vec2::<f32>().unwrap()
        );
        let doubled = (one.narrow(1, 0, 32).unwrap() * 2.0).unwrap();
        assert_eq!(
            both[1].to_vec2::<f32>().unwrap(),
            doubled.to_vec2::<f32>().unwrap()
        );
        let ids = Tensor::new(&[47u32, 0, 17], &Device::Cpu).unwrap();
        let got: Vec<Vec<f32>> = p.embedding(&ids).unwrap().to_vec2().unwrap();
        for (row, id) in got.iter().zip([47, 0, 17]) {
            assert_eq!(row.as_slice(), &ws[id * k..(id + 1) * k]);
        }
        assert!(p
            .embedding(&Tensor::new(&[48u32], &Device::Cpu).unwrap())
            .is_err());
        drop(p);
        assert_eq!(w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), ws);
    }

    #[test]
    fn weights_without_whole_panels_stay_dense() {
        let w = Tensor::zeros((40, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(Panels::in_place(&w).unwrap().is_none());
    }
}
