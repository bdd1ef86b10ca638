//! The trainable policy: the decoder's weights as candle `Var`s, plus a detached view for
//! rollout (which must record no graph; stack-notes).
//!
//! Mixed precision (PyTorch AMP / DeepSpeed bf16 semantics): the master weights are f32 `Var`s
//! (what AdamW updates and checkpoints keep); the forward and backward run on a copy in the
//! compute dtype (bf16/f16), refreshed from the masters after every optimizer step
//! ([`Policy::sync_compute`]); its gradients are summed into the masters' f32 sums
//! ([`Policy::grad_accumulator`]). In f32 the copy is the masters themselves.

use std::collections::HashMap;

use candle_core::{DType, Result, Tensor, Var};

use crate::optim::GradAccumulator;

use crate::kernels;
use crate::model::{Decoder, ModelConfig};

pub struct Policy {
    /// Parameters in the decoder's order, with their HF names.
    pub names: Vec<String>,
    /// The master weights (the decoder's dtype for [`Policy::from_decoder`], f32 for a
    /// low-precision compute dtype).
    pub vars: Vec<Var>,
    /// The weights the decoder computes with: `vars` themselves, or their bf16/f16 copies.
    pub compute: Vec<Var>,
    /// The decoder built on `compute`: forward passes through it are differentiable.
    pub decoder: Decoder,
    /// Activation recompute in the update (HF `gradient_checkpointing`; [`crate::recompute`]).
    pub gradient_checkpointing: bool,
}

impl Policy {
    /// Makes every parameter of `decoder` trainable in its own dtype (copies the weights into
    /// fresh `Var`s).
    pub fn from_decoder(decoder: &Decoder) -> Result<Self> {
        let dtype = decoder.dtype();
        Self::mixed(decoder, dtype)
    }

    /// Trainable weights for computing in `compute_dtype`: bf16 or f16 keep f32 masters and
    /// compute on a copy; any other dtype trains its weights directly.
    pub fn mixed(decoder: &Decoder, compute_dtype: DType) -> Result<Self> {
        let low = matches!(compute_dtype, DType::BF16 | DType::F16);
        let mut names = Vec::new();
        let (mut vars, mut compute) = (Vec::new(), Vec::new());
        let mut tensors = HashMap::new();
        for (name, t) in decoder.parameters() {
            let master = match low {
                true => Var::from_tensor(&kernels::fresh(&t.to_dtype(DType::F32)?)?)?,
                false => Var::from_tensor(&kernels::fresh(&t.to_dtype(compute_dtype)?)?)?,
            };
            let copy = match low {
                true => Var::from_tensor(&master.as_tensor().to_dtype(compute_dtype)?)?,
                false => master.clone(),
            };
            tensors.insert(name.clone(), copy.as_tensor().clone());
            names.push(name.clone());
            vars.push(master);
            compute.push(copy);
        }
        let decoder = Decoder::new(decoder.config(), &tensors)?;
        Ok(Self {
            names,
            vars,
            compute,
            decoder,
            gradient_checkpointing: false,
        })
    }

    /// The dtype the forward and backward run in.
    pub fn compute_dtype(&self) -> DType {
        self.decoder.dtype()
    }

    /// Copies the master weights into the compute copy (after an optimizer step); nothing to
    /// do when they are the same tensors.
    pub fn sync_compute(&self) -> Result<()> {
        for (master, copy) in self.vars.iter().zip(&self.compute) {
            if master.as_tensor().id() != copy.as_tensor().id() {
                copy.set(&master.as_tensor().to_dtype(copy.dtype())?)?;
            }
        }
        Ok(())
    }

    /// An empty gradient accumulator whose sums are the masters' (the compute copies' gradients
    /// are summed in f32 under their master).
    pub fn grad_accumulator(&self) -> GradAccumulator {
        let mut grads = GradAccumulator::default();
        for (master, copy) in self.vars.iter().zip(&self.compute) {
            grads.alias(copy.as_tensor(), master.as_tensor());
        }
        grads
    }

    pub fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    /// A decoder on the current weights that tracks no gradient (for rollout, scoring, the
    /// frozen reference); shares storage, so it sees later updates only if rebuilt.
    pub fn detached(&self) -> Result<Decoder> {
        let tensors: HashMap<String, Tensor> = self
            .names
            .iter()
            .zip(&self.compute)
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect();
        Decoder::new(self.config(), &tensors)
    }

    /// The name of the first parameter holding a NaN or infinite value (Σ x² in f64 is finite
    /// exactly when every element is), if any.
    pub fn first_non_finite(&self) -> Result<Option<&str>> {
        for (name, v) in self.names.iter().zip(&self.vars) {
            if !kernels::sum_of_squares(v.as_tensor())?.is_finite() {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// `(name, tensor)` pairs of the current weights, e.g. for saving.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .zip(&self.vars)
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect()
    }
}
