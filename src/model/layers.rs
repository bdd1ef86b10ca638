//! The decoder's layers with weights. A weight matrix takes one of three forms: a tensor
//! (trained or plain), the GGUF file's quantized blocks dequantized per use (a frozen reference,
//! [`super::packed`]), or panels laid out for decoding ([`super::panels`]). A linear layer is
//! one of them and an optional bias; RMSNorm keeps its scale as a tensor.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::{Result, Tensor};

use super::packed::PackedWeight;
use super::panels::Panels;
use crate::kernels;

#[derive(Clone)]
pub(super) enum Weight {
    Dense(Tensor),
    Packed(Arc<PackedWeight>),
    Panels(Arc<Panels>),
}

impl Weight {
    /// The weight as a tensor (dequantized for a packed one). Panels have none: their storage
    /// holds another layout while they live.
    pub(super) fn dense(&self) -> Result<Cow<'_, Tensor>> {
        match self {
            Weight::Dense(w) => Ok(Cow::Borrowed(w)),
            Weight::Packed(p) => Ok(Cow::Owned(p.dense()?)),
            Weight::Panels(_) => {
                candle_core::bail!("a weight laid out for decoding has no dense form")
            }
        }
    }

    /// `x · Wᵀ` for `x` `[rows, in]`.
    pub(super) fn product(&self, x: &Tensor) -> Result<Tensor> {
        if let Weight::Panels(p) = self {
            return p.linear(x);
        }
        kernels::linear(x, &*self.dense()?)
    }

    /// Rows of W for token ids `[n]` → `[n, in]` (an embedding lookup).
    pub(super) fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Panels(p) => p.embedding(ids),
            w => w.dense()?.embedding(ids),
        }
    }

    /// This weight as [`Panels`] (re-laid out in place) where they exist for it, else itself.
    pub(super) fn for_decoding(&self) -> Result<Self> {
        if let Weight::Dense(w) = self {
            if let Some(p) = Panels::in_place(w)? {
                return Ok(Weight::Panels(Arc::new(p)));
            }
        }
        Ok(self.clone())
    }
}

#[derive(Clone)]
pub(super) struct Linear {
    pub(super) weight: Weight,
    pub(super) bias: Option<Tensor>,
}

impl Linear {
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let y = self.weight.product(&x.reshape((b * t, d))?)?;
        self.finish(y, b, t)
    }

    /// [`Linear::forward`] of several layers on the same input; layers laid out for decoding
    /// share one pass ([`Panels::linears`]).
    pub(super) fn forward_all<const N: usize>(
        layers: [&Linear; N],
        x: &Tensor,
    ) -> Result<[Tensor; N]> {
        let panels: Vec<&Panels> = layers
            .iter()
            .filter_map(|l| match &l.weight {
                Weight::Panels(p) => Some(&**p),
                _ => None,
            })
            .collect();
        let ys = if panels.len() == N {
            let (b, t, d) = x.dims3()?;
            let ys = Panels::linears(&panels, &x.reshape((b * t, d))?)?;
            layers
                .iter()
                .zip(ys)
                .map(|(l, y)| l.finish(y, b, t))
                .collect::<Result<Vec<_>>>()?
        } else {
            layers
                .iter()
                .map(|l| l.forward(x))
                .collect::<Result<Vec<_>>>()?
        };
        ys.try_into()
            .map_err(|_| candle_core::Error::Msg("one output per layer".into()))
    }

    /// Adds the bias to `[b·t, out]` products and shapes them `[b, t, out]`.
    fn finish(&self, y: Tensor, b: usize, t: usize) -> Result<Tensor> {
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape((b, t, ()))
    }

    /// This layer with its weight [`Weight::for_decoding`].
    pub(super) fn for_decoding(&self) -> Result<Self> {
        Ok(Self {
            weight: self.weight.for_decoding()?,
            bias: self.bias.clone(),
        })
    }
}

#[derive(Clone)]
pub(super) struct RmsNorm {
    pub(super) weight: Tensor,
    pub(super) eps: f64,
}

impl RmsNorm {
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::rms_norm(x, &self.weight, self.eps)
    }
}
