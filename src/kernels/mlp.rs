//! The gated activation of the llama MLP, `silu(gate) · up`, with its backward.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{cpu_f32, output, slice};

/// `silu(gate) · up` (the llama MLP's gated activation), same shapes in and out: the CPU f32
/// kernel with its own backward, candle's differentiable ops elsewhere.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if cpu_f32(gate) {
        gate.contiguous()?.apply_op2(&up.contiguous()?, Swiglu)
    } else {
        candle_nn::Activation::Silu.forward(gate)? * up
    }
}

/// Elements handed to one rayon task.
const ELEMS_PER_TASK: usize = 4096;

struct Swiglu;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = slice(self.name(), s1, l1)?;
        let u = slice(self.name(), s2, l2)?;
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(ELEMS_PER_TASK)
            .zip(
                g.par_chunks(ELEMS_PER_TASK)
                    .zip(u.par_chunks(ELEMS_PER_TASK)),
            )
            .for_each(|(yc, (gc, uc))| {
                for ((y, &g), &u) in yc.iter_mut().zip(gc).zip(uc) {
                    *y = g * sigmoid(g) * u;
                }
            });
        output(y, l1.shape().clone())
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = g.apply_op3_no_bwd(u, &dy.contiguous()?, &SwigluGrad)?;
        Ok((Some(packed.get(0)?), Some(packed.get(1)?)))
    }
}

/// SwiGLU's gradients packed as `[2, …]`: `d_gate = dy·u·σ(g)(1 + g(1 − σ(g)))`,
/// `d_up = dy·silu(g)`.
struct SwigluGrad;

impl CustomOp3 for SwigluGrad {
    fn name(&self) -> &'static str {
        "fused-swiglu-grad"
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
        let g = slice(self.name(), s1, l1)?;
        let u = slice(self.name(), s2, l2)?;
        let dy = slice(self.name(), s3, l3)?;
        let n = g.len();
        let mut out = vec![0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(ELEMS_PER_TASK)
            .zip(du.par_chunks_mut(ELEMS_PER_TASK))
            .zip(
                g.par_chunks(ELEMS_PER_TASK)
                    .zip(u.par_chunks(ELEMS_PER_TASK))
                    .zip(dy.par_chunks(ELEMS_PER_TASK)),
            )
            .for_each(|((dgc, duc), ((gc, uc), dyc))| {
                for i in 0..gc.len() {
                    let (g, s) = (gc[i], sigmoid(gc[i]));
                    dgc[i] = dyc[i] * uc[i] * s * (1.0 + g * (1.0 - s));
                    duc[i] = dyc[i] * g * s;
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(l1.shape().dims());
        output(out, dims)
    }
}
