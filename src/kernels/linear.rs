//! A linear layer `x · Wᵀ` as one graph node whose weight gradient comes out in W's own layout.

use candle_core::{CpuStorage, CustomOp2, InplaceOp3, Layout, Result, Shape, Tensor};

use super::{cpu_f32, few_rows, gemm_parallelism, output, slice, slice_mut};

/// `x · Wᵀ` for `x` `[rows, in]` and `W` `[out, in]` → `[rows, out]`. On the CPU in f32 one
/// graph node whose backward is two matmuls: `dx = dy · W` and `dW = dyᵀ · x` (already
/// `[out, in]`, where candle's transposed matmul hands back `(xᵀ · dy)ᵀ`, a strided view that
/// costs a transposing copy to use); elsewhere candle's `matmul`.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if cpu_f32(x) {
        x.contiguous()?.apply_op2(&w.contiguous()?, Linear)
    } else {
        x.matmul(&w.t()?)
    }
}

struct Linear;

/// Up to this many rows the product runs as `W·xᵀ`.
const FEW_ROWS: usize = 64;

/// From 4 (one full block of x rows; below that gemm's matrix-vector path is faster) up to this
/// many rows the product skips gemm's packing of W ([`few_rows::product`]).
const VERY_FEW_ROWS: usize = 16;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(self.name(), s1, l1)?, slice(self.name(), s2, l2)?);
        let (out, inp) = l2.shape().dims2()?;
        let dims = l1.shape().dims();
        if dims.last() != Some(&inp) {
            candle_core::bail!(
                "{}: input {dims:?} for a [{out}, {inp}] weight",
                self.name()
            );
        }
        let rows = x.len() / inp;
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("checked above") = out;
        if (4..=VERY_FEW_ROWS).contains(&rows) {
            return output(few_rows::product(x, w, rows, inp, out), shape);
        }
        let mut y = vec![0f32; rows * out];
        // Few rows (decoding) run faster as yᵀ = W·xᵀ (gemm blocks over W's rows; measured
        // 1.1–2.9× at 28 rows), written straight into y's row-major layout.
        let (m, n, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, dst_cs, dst_rs) = if rows <= FEW_ROWS {
            (out, rows, w, 1, inp, x, inp, 1, out, 1)
        } else {
            // Wᵀ as an [inp, out] matrix: element (k, j) is W[j, k].
            (rows, out, x, 1, inp, w, inp, 1, 1, out)
        };
        // SAFETY: the pointers cover `rows × inp` (x), `out × inp` (W) and `rows × out` (y)
        // elements, which is what the strides above address; y is not read (`read_dst` false).
        unsafe {
            gemm::gemm(
                m,
                n,
                inp,
                y.as_mut_ptr(),
                dst_cs as isize,
                dst_rs as isize,
                false,
                lhs.as_ptr(),
                lhs_cs as isize,
                lhs_rs as isize,
                rhs.as_ptr(),
                rhs_cs as isize,
                rhs_rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm_parallelism(),
            );
        }
        output(y, shape)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (out, inp) = w.dims2()?;
        let rows = x.elem_count() / inp;
        let dy = dy.reshape((rows, out))?;
        let dx = dy.matmul(&w.detach())?.reshape(x.shape())?;
        let dw = dy.t()?.matmul(&x.detach().reshape((rows, inp))?)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `sum += dyᵀ · x` in place, for `dy` `[rows, out]`, `x` `[rows, in]` and `sum` `[out, in]`
/// (contiguous f32): a weight gradient accumulated by its own gemm, without an `[out, in]`
/// temporary (113 MB for SmolLM2's lm_head, per loss chunk).
pub fn add_weight_grad(sum: &Tensor, dy: &Tensor, x: &Tensor) -> Result<()> {
    sum.inplace_op3(&dy.contiguous()?, &x.contiguous()?, &AddWeightGrad)
}

struct AddWeightGrad;

impl InplaceOp3 for AddWeightGrad {
    fn name(&self) -> &'static str {
        "add-weight-grad"
    }

    fn cpu_fwd(
        &self,
        sum: &mut CpuStorage,
        sl: &Layout,
        dy: &CpuStorage,
        dyl: &Layout,
        x: &CpuStorage,
        xl: &Layout,
    ) -> Result<()> {
        let (dy, x) = (slice(self.name(), dy, dyl)?, slice(self.name(), x, xl)?);
        let (out, inp) = sl.shape().dims2()?;
        let rows = dy.len() / out.max(1);
        let sum = slice_mut(self.name(), sum, sl)?;
        if sum.len() != out * inp || dy.len() != rows * out || x.len() != rows * inp {
            candle_core::bail!(
                "{}: [{out}, {inp}] sum, {} dy and {} x elements",
                self.name(),
                dy.len(),
                x.len()
            );
        }
        // SAFETY: dst is the `out × inp` sum (row-major), lhs is dyᵀ (element (o, r) at
        // r·out + o), rhs is x (element (r, i) at r·inp + i): every pointer stays inside its
        // slice, whose lengths are checked above.
        unsafe {
            gemm::gemm(
                out,
                inp,
                rows,
                sum.as_mut_ptr(),
                1,
                inp as isize,
                true,
                dy.as_ptr(),
                out as isize,
                1,
                x.as_ptr(),
                1,
                inp as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm_parallelism(),
            );
        }
        Ok(())
    }
}
