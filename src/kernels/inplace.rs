//! In-place ops of gradient accumulation and the optimizer: `sum += g`, `g ← g·c`, an
//! embedding gradient's rows added into its sum, and Σ x². On the CPU in f32 each is one
//! parallel pass over the tensor's own storage (no second buffer of the parameter's size);
//! elsewhere the same values by candle's tensor ops, which replace the tensor.

use candle_core::{
    CpuStorage, InplaceOp1, InplaceOp2, InplaceOp3, Layout, Result, Storage, Tensor,
};
use rayon::prelude::*;

use super::{cpu_f32, slice, slice_mut};

/// Elements per rayon task of the in-place passes (fixed, so sums do not depend on threads).
pub(crate) const CHUNK: usize = 1 << 16;

/// `sum += g` for tensors of one shape; `sum` must be contiguous (in place on the CPU in f32).
pub fn add_assign(sum: &mut Tensor, g: &Tensor) -> Result<()> {
    if cpu_f32(sum) {
        sum.inplace_op2(&g.contiguous()?, &AddAssign)
    } else {
        *sum = (&*sum + g)?;
        Ok(())
    }
}

/// A contiguous copy of `t` that shares no storage with it (candle's `copy` keeps a strided
/// view's strides; `contiguous` returns the tensor itself when it already is).
pub fn fresh(t: &Tensor) -> Result<Tensor> {
    match t.is_contiguous() {
        true => t.copy(),
        false => t.contiguous(),
    }
}

/// `g ← g · c` (what `tensor * c` computes; in place on the CPU in f32).
pub fn scale(g: &mut Tensor, c: f64) -> Result<()> {
    if cpu_f32(g) {
        g.inplace_op1(&Scale(c as f32))
    } else {
        *g = (&*g * c)?;
        Ok(())
    }
}

/// `sum[indexes[r]] += rows[r]` along `dim` (an embedding lookup's gradient, `rows`
/// `[n, width]` for `indexes` `[n]`, u32 or i64): in place on the CPU in f32 for `dim` 0, by
/// `index_add` elsewhere.
pub fn add_rows(sum: &mut Tensor, indexes: &Tensor, rows: &Tensor, dim: usize) -> Result<()> {
    if dim == 0 && cpu_f32(rows) && cpu_f32(sum) {
        sum.inplace_op3(indexes, &rows.contiguous()?, &AddRows)
    } else {
        *sum = sum.index_add(indexes, rows, dim)?;
        Ok(())
    }
}

/// `dst[indexes[r]] += src[r]` for the rows of contiguous f32 tensors (an embedding gradient).
struct AddRows;

impl InplaceOp3 for AddRows {
    fn name(&self) -> &'static str {
        "add-rows"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        ids: &CpuStorage,
        ids_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> Result<()> {
        let (dst, src) = (
            slice_mut(self.name(), dst, dst_l)?,
            slice(self.name(), src, src_l)?,
        );
        let width = dst_l.dims().last().copied().unwrap_or(1);
        let Some((i0, i1)) = ids_l.contiguous_offsets() else {
            candle_core::bail!("add-rows: expected contiguous indexes");
        };
        let ids: Vec<usize> = match ids {
            CpuStorage::U32(v) => v[i0..i1].iter().map(|&i| i as usize).collect(),
            CpuStorage::I64(v) => v[i0..i1].iter().map(|&i| i as usize).collect(),
            _ => candle_core::bail!("add-rows: expected u32 or i64 indexes"),
        };
        if src.len() != ids.len() * width {
            candle_core::bail!(
                "add-rows: {} rows for {} indexes",
                src.len() / width,
                ids.len()
            );
        }
        for (r, &i) in ids.iter().enumerate() {
            let Some(row) = dst.get_mut(i * width..(i + 1) * width) else {
                candle_core::bail!("add-rows: index {i} out of range");
            };
            row.iter_mut()
                .zip(&src[r * width..(r + 1) * width])
                .for_each(|(d, s)| *d += s);
        }
        Ok(())
    }
}

/// [`super::sum_of_squares`] of a contiguous f32 CPU tensor, `None` for any other.
pub(super) fn sum_of_squares_f32(t: &Tensor) -> Option<f64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(s) = &*storage else {
        return None;
    };
    let d = slice("sum-of-squares", s, layout).ok()?;
    Some(
        d.par_chunks(CHUNK)
            .map(|c| c.iter().map(|&x| x as f64 * x as f64).sum::<f64>())
            .collect::<Vec<_>>()
            .iter()
            .sum(),
    )
}

/// `x ← x · c` in place (what `tensor * c` computes, without a second buffer).
struct Scale(f32);

impl InplaceOp1 for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        slice_mut(self.name(), s, l)?
            .par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|x| *x = *x * self.0 + 0.0));
        Ok(())
    }
}

/// `dst += src` in place for contiguous f32 tensors of one shape.
struct AddAssign;

impl InplaceOp2 for AddAssign {
    fn name(&self) -> &'static str {
        "add-assign"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> Result<()> {
        let (dst, src) = (
            slice_mut(self.name(), dst, dst_l)?,
            slice(self.name(), src, src_l)?,
        );
        if dst.len() != src.len() {
            candle_core::bail!("add-assign: {} elements += {}", dst.len(), src.len());
        }
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
        Ok(())
    }
}
