//! A linear layer `x · Wᵀ` as one graph node whose weight gradient comes out in W's own layout.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::{output, slice};

/// `x · Wᵀ` for `x` `[…, in]` and `W` `[out, in]` → `[…, out]`. The backward is two matmuls:
/// `dx = dy · W` and `dW = dyᵀ · x` (already `[out, in]`, where candle's transposed matmul
/// hands back `(xᵀ · dy)ᵀ`, a strided view that costs a transposing copy to use).
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Linear)
}

struct Linear;

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
        let mut y = vec![0f32; rows * out];
        let threads = rayon::current_num_threads();
        let parallelism = match threads {
            1 => gemm::Parallelism::None,
            n => gemm::Parallelism::Rayon(n),
        };
        // SAFETY: the pointers cover `rows × inp` (x), `out × inp` (W) and `rows × out` (y)
        // elements, which is what the strides below address; y is not read (`read_dst` false).
        unsafe {
            gemm::gemm(
                rows,
                out,
                inp,
                y.as_mut_ptr(),
                1,
                out as isize,
                false,
                x.as_ptr(),
                1,
                inp as isize,
                // Wᵀ as an [inp, out] matrix: element (k, j) is W[j, k].
                w.as_ptr(),
                inp as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("checked above") = out;
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
