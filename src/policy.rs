//! The trainable policy: the decoder's weights as candle `Var`s, plus a detached view for
//! rollout (which must record no graph; stack-notes).

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

use crate::kernels;
use crate::model::{Decoder, ModelConfig};

pub struct Policy {
    /// Parameters in the decoder's order, with their HF names.
    pub names: Vec<String>,
    pub vars: Vec<Var>,
    /// The decoder built on the `Var`s: forward passes through it are differentiable.
    pub decoder: Decoder,
}

impl Policy {
    /// Makes every parameter of `decoder` trainable (copies the weights into fresh `Var`s).
    pub fn from_decoder(decoder: &Decoder) -> Result<Self> {
        let mut names = Vec::new();
        let mut vars = Vec::new();
        let mut tensors = HashMap::new();
        for (name, t) in decoder.parameters() {
            let v = Var::from_tensor(&t.copy()?)?;
            tensors.insert(name.clone(), v.as_tensor().clone());
            names.push(name.clone());
            vars.push(v);
        }
        let decoder = Decoder::new(decoder.config(), &tensors)?;
        Ok(Self {
            names,
            vars,
            decoder,
        })
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
            .zip(&self.vars)
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
