//! Kernels: every op whose implementation depends on the device and dtype, each one function
//! that picks its implementation from its tensors (the shape of candle-nn's `ops::rms_norm`,
//! which dispatches to `cpu_fwd` / `cuda_fwd` / `metal_fwd` inside one op). Callers never test
//! the device.
//!
//! - CPU, f32: hand-written kernels with hand-written backward passes. candle builds RMSNorm,
//!   RoPE, softmax and SwiGLU out of 4–7 element-wise ops each, and a linear layer out of
//!   reshape → transpose → matmul → reshape; in the autograd graph every one of them keeps a
//!   fresh output alive until the backward pass and runs its own pass over memory, mostly on one
//!   thread, and the weight gradient of a transposed matmul comes back transposed (a strided copy
//!   per layer to use it). Each op here is one parallel pass (or one gemm) that keeps only its
//!   output, with a `bwd` that is one more pass (or two gemms). candle's own fused ops
//!   (`rms_norm`, `rope`, `softmax_last_dim`) have no backward (stack-notes), so these are
//!   written by hand. The in-place optimizer ops update their tensor's own storage.
//! - Any other device or dtype: candle's differentiable composite ops, the reference that
//!   `tests/fused.rs` compares the CPU kernels against. A CUDA kernel goes in the same function,
//!   as one more arm of its device test.

pub(crate) mod adamw;
mod attention;
mod blocked_attention;
mod cached_attention;
mod few_rows;
mod head;
mod inplace;
mod linear;
mod mlp;
mod norm;
mod reduce;
pub mod rope;
mod shared_prefix;
mod top_k;

pub use adamw::{adamw_update, Coefficients};
pub use attention::{attention, attention_softmax, AttentionBias, MASKED};
pub use blocked_attention::{blocked, blocked_attention, blocked_attention_with, QUERY_BLOCK};
pub use head::{target_logprob_entropy, target_logprobs, HeadChunk};
pub use inplace::{add_assign, add_rows, fresh, scale};
pub use linear::{add_weight_grad, linear};
pub use mlp::swiglu;
pub use norm::rms_norm;
pub use reduce::{sum_all, sum_of_squares};
pub use rope::{split_heads, Rotary};
pub use shared_prefix::{PrefixRows, SharedPrefix};
pub use top_k::{max_candidates, top_candidates};

use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Tensor};

/// Rows handed to one rayon task.
const ROWS_PER_TASK: usize = 16;

/// Whether the CPU f32 kernels serve tensors like `t`.
/// `t` in f32 when it is bf16 or f16, else `t` itself: where a reduction must accumulate in f32
/// (RMSNorm variance, softmax, log-softmax over the vocabulary; PyTorch AMP's rule).
pub(crate) fn widen(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::BF16 | DType::F16 => t.to_dtype(DType::F32),
        _ => Ok(t.clone()),
    }
}

/// The dtype a low-precision dtype's reductions and additive masks use: f32 for bf16 and f16.
pub(crate) fn accumulation_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        d => d,
    }
}

pub(crate) fn cpu_f32(t: &Tensor) -> bool {
    cpu_f32_on(t.device(), t.dtype())
}

/// Whether the CPU f32 kernels serve tensors on `device` of `dtype`.
pub(crate) fn cpu_f32_on(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && dtype == DType::F32
}

/// The contiguous f32 data of a storage, or an error naming the op.
pub(crate) fn slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("{op}: expected a contiguous input"),
    }
}

/// [`slice`] for the storage an in-place op writes.
pub(crate) fn slice_mut<'a>(op: &str, s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(d), Some((a, b))) => Ok(&mut d[a..b]),
        _ => candle_core::bail!("{op}: expected a contiguous f32 tensor"),
    }
}

/// gemm's threading for the current rayon pool.
fn gemm_parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

pub(crate) fn output(data: Vec<f32>, shape: impl Into<Shape>) -> Result<(CpuStorage, Shape)> {
    Ok((CpuStorage::F32(data), shape.into()))
}
