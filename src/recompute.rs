//! Activation recompute (HF / TRL `gradient_checkpointing`, issue 16): a forward that keeps
//! only each decoder layer's input, and a backward that re-runs one layer at a time with its
//! graph and back-propagates through it, so the activations alive at once are one layer's
//! instead of the whole model's. The gradients are those of the plain forward (the same kernels
//! give the same values), to f32 rounding.
//!
//! The forward ends in a leaf ([`Checkpointed::last`], the last layer's output): the caller
//! builds the rest of its loss on it (final norm, scoring rows), back-propagates that, and hands
//! the leaf's gradient to [`Checkpointed::backward`].

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use crate::kernels;
use crate::model::decoder::LayerInputs;
use crate::model::{Decoder, KvContext};

/// What the checkpointed forward attended to, for its recomputation.
enum Keys {
    Own,
    /// A shared prompt's keys and values per layer (leaves of the caller's).
    Prefix(Vec<(Tensor, Tensor)>),
    /// The forward's own keys and values were captured for a later forward.
    Capture,
}

/// A forward that kept only each layer's input.
pub struct Checkpointed {
    inputs: LayerInputs,
    /// Each layer's input `[batch, seq, hidden]`, detached (index 0: the embeddings).
    saved: Vec<Tensor>,
    /// The last layer's output as a leaf.
    pub last: Var,
    keys: Keys,
}

/// `backward(loss)`: back-propagates `loss` into the parameter gradient sums and returns the
/// store with the other leaves' gradients (the update's `Backprop::backward`).
pub type Backward<'a> = dyn FnMut(Tensor) -> Result<GradStore> + 'a;

impl Checkpointed {
    /// The forward of [`Decoder::hidden_states_with`] up to (not including) the final norm,
    /// keeping each layer's input. With `KvContext::Capture` the captured keys and values are
    /// detached (the caller's completions attend to leaf copies anyway). The incremental
    /// decoding cache is not for training and is refused.
    pub fn forward(
        decoder: &Decoder,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        mut ctx: KvContext,
    ) -> Result<Self> {
        let keys = match &ctx {
            KvContext::Own => Keys::Own,
            KvContext::Prefix(p) => Keys::Prefix(p.to_vec()),
            KvContext::Capture(_) => Keys::Capture,
            KvContext::Cache(_) => candle_core::bail!("activation recompute has no KV cache"),
        };
        let inputs = decoder.layer_inputs(input_ids, positions, key_mask, ctx.past()?)?;
        let mut x = decoder.embed(&inputs)?.detach();
        let mut saved = Vec::with_capacity(decoder.num_layers());
        for i in 0..decoder.num_layers() {
            saved.push(x.clone());
            x = decoder.layer(i, &x, &inputs, &mut ctx)?.detach();
        }
        if let KvContext::Capture(out) = &mut ctx {
            for (k, v) in out.iter_mut() {
                (*k, *v) = (k.detach(), v.detach());
            }
        }
        Ok(Self {
            inputs,
            saved,
            last: Var::from_tensor(&x)?,
            keys,
        })
    }

    /// Back-propagates from `grad_last` (the gradient of [`Checkpointed::last`]; `None`: zero)
    /// down to the embeddings, one recomputed layer at a time, through `backward`. For a
    /// capturing forward `kv_grads` holds each layer's (∂L/∂keys, ∂L/∂values) from the forwards
    /// that attended to them (`None`: zero). Returns, for a forward that attended to a prefix,
    /// each layer's (∂L/∂keys, ∂L/∂values) of that prefix (else an empty list).
    pub fn backward(
        self,
        decoder: &Decoder,
        grad_last: Option<Tensor>,
        kv_grads: &[(Option<Tensor>, Option<Tensor>)],
        backward: &mut Backward,
    ) -> Result<Vec<(Option<Tensor>, Option<Tensor>)>> {
        let mut g = match grad_last {
            Some(g) => g,
            None => self.last.as_tensor().zeros_like()?,
        };
        let mut prefix_grads = Vec::new();
        for i in (0..self.saved.len()).rev() {
            let x = Var::from_tensor(&self.saved[i])?;
            let mut captured = Vec::new();
            let mut ctx = match &self.keys {
                Keys::Own => KvContext::Own,
                Keys::Prefix(p) => KvContext::Prefix(p),
                Keys::Capture => KvContext::Capture(&mut captured),
            };
            let out = decoder.layer(i, x.as_tensor(), &self.inputs, &mut ctx)?;
            let mut surrogate = kernels::sum_all(&(out * &g)?)?;
            if let (Some((k, v)), Some((dk, dv))) = (captured.first(), kv_grads.get(i)) {
                for (state, d) in [(k, dk), (v, dv)] {
                    if let Some(d) = d {
                        surrogate = (surrogate + kernels::sum_all(&(state * d)?)?)?;
                    }
                }
            }
            drop(captured);
            let store = backward(surrogate)?;
            if let Keys::Prefix(p) = &self.keys {
                let (k, v) = &p[i];
                prefix_grads.push((store.get(k).cloned(), store.get(v).cloned()));
            }
            g = match store.get(x.as_tensor()) {
                Some(d) => d.detach(),
                None => x.as_tensor().zeros_like()?,
            };
        }
        prefix_grads.reverse();
        let embeddings = decoder.embed(&self.inputs)?;
        backward(kernels::sum_all(&(embeddings * g)?)?)?;
        Ok(prefix_grads)
    }
}
