//! Weights kept quantized at rest (the GGUF file's own blocks) and dequantized on each use, for
//! a decoder that never trains: the KL reference of a training run (spec §4.1) needs the initial
//! weights for the whole run, and as f32 copies they cost as much memory as the policy itself.
//!
//! The dense tensor a [`PackedWeight`] gives is exactly the one the dense load produces (the
//! same dequantization and Q/K un-permutation), so log-probs computed through it are unchanged;
//! on SmolLM2-135M the 30 layers (Q4_1) take 66 MB instead of 428 MB and the embedding (Q8_0,
//! tied to the head) 30 MB instead of 113 MB; dequantizing all of it takes ~0.1 s per forward.

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Result, Tensor};

use super::gguf::unpermute_qk;

/// One GGUF tensor, as stored, with what turns it into the decoder's dense weight.
pub struct PackedWeight {
    pub(super) q: QTensor,
    /// Heads to un-permute Q/K by (llama.cpp's interleaved-RoPE layout), if any.
    pub(super) unpermute_heads: Option<usize>,
    pub(super) dtype: DType,
    pub(super) device: Device,
}

impl PackedWeight {
    /// The dense weight (dequantized on the CPU, where every ggml type is supported, then
    /// moved).
    pub fn dense(&self) -> Result<Tensor> {
        let mut t = self.q.dequantize(&Device::Cpu)?;
        if let Some(heads) = self.unpermute_heads {
            t = unpermute_qk(&t, heads)?;
        }
        t.to_dtype(self.dtype)?.to_device(&self.device)
    }

    pub fn dims(&self) -> &[usize] {
        self.q.shape().dims()
    }
}
