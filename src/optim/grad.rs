//! Gradient accumulation over several backward passes (micro-batches, loss chunks), global
//! gradient-norm clipping, and the backprop sink that adds parameter gradients into the sums as
//! they are produced.

use std::collections::{HashMap, HashSet};

use candle_core::backprop::GradSink;
use candle_core::{Result, Tensor, TensorId, Var};

use crate::kernels;

/// Sums gradients per parameter across backward passes (micro-batches, chunks). Kept in
/// insertion order so that the global norm (and hence clipping) is summed in the same order on
/// every run: exact resume depends on it.
///
/// Mixed precision: sums of bf16/f16 gradients are kept in f32, and a low-precision compute
/// copy of a parameter can be an alias of its f32 master ([`GradAccumulator::alias`]), so that
/// its gradients land in the master's sum (PyTorch AMP / DeepSpeed bf16 semantics).
#[derive(Default)]
pub struct GradAccumulator {
    index: HashMap<TensorId, usize>,
    aliases: HashMap<TensorId, TensorId>,
    grads: Vec<Tensor>,
}

impl GradAccumulator {
    /// From now on gradients of `copy` are summed as gradients of `master` (and
    /// `get(master)` returns them).
    pub fn alias(&mut self, copy: &Tensor, master: &Tensor) {
        if copy.id() != master.id() {
            self.aliases.insert(copy.id(), master.id());
        }
    }

    fn key(&self, param: &Tensor) -> TensorId {
        self.aliases.get(&param.id()).copied().unwrap_or(param.id())
    }

    /// Adds `grad` to the running sum of `param`. Each sum is a contiguous tensor of its own
    /// (backprop may hand out a transposed view, or storage shared with another gradient), so
    /// later gradients are added in place on the CPU and the norm, clipping and AdamW read it
    /// linearly.
    pub fn add(&mut self, param: &Tensor, grad: &Tensor) -> Result<()> {
        let key = self.key(param);
        match self.index.get(&key) {
            Some(&i) => {
                let grad = grad.to_dtype(self.grads[i].dtype())?;
                kernels::add_assign(&mut self.grads[i], &grad)?
            }
            None => {
                self.index.insert(key, self.grads.len());
                let sum_dtype = kernels::accumulation_dtype(grad.dtype());
                self.grads.push(match grad.dtype() == sum_dtype {
                    true => kernels::fresh(&grad.detach())?,
                    false => grad.detach().to_dtype(sum_dtype)?.contiguous()?,
                });
            }
        }
        Ok(())
    }

    /// Adds the gradients of every parameter in `params` found in `store`.
    pub fn add_store(
        &mut self,
        params: &[Var],
        store: &candle_core::backprop::GradStore,
    ) -> Result<()> {
        for p in params {
            if let Some(g) = store.get(p.as_tensor()) {
                self.add(p.as_tensor(), g)?;
            }
        }
        Ok(())
    }

    /// A backprop sink ([`Tensor::backward_into`]) that adds the gradient contributions of
    /// `params` into these sums as they are produced, so that no parameter's gradient is held
    /// twice (the sums and a full gradient store) at the end of a backward pass.
    pub fn sink<'a>(&'a mut self, params: &[Var]) -> ParamSink<'a> {
        ParamSink {
            params: params.iter().map(|p| p.as_tensor().id()).collect(),
            sums: self,
        }
    }

    /// The running sum of `param` (zeros if it has none yet), to add into in place.
    pub fn sum_for(&mut self, param: &Tensor) -> Result<&mut Tensor> {
        let key = self.key(param);
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.index.insert(key, self.grads.len());
                let dtype = kernels::accumulation_dtype(param.dtype());
                self.grads.push(param.zeros_like()?.to_dtype(dtype)?);
                self.grads.len() - 1
            }
        };
        Ok(&mut self.grads[i])
    }

    pub fn get(&self, param: &Tensor) -> Option<&Tensor> {
        self.index.get(&self.key(param)).map(|&i| &self.grads[i])
    }

    /// Global L2 norm over all accumulated gradients (accumulated in f64).
    pub fn global_norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for g in &self.grads {
            sq += kernels::sum_of_squares(g)?;
        }
        Ok(sq.sqrt())
    }

    /// `torch.nn.utils.clip_grad_norm_`: scales every gradient by
    /// `min(1, max_norm / (norm + 1e-6))` and returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.global_norm()?;
        if max_norm > 0.0 && norm.is_finite() {
            let coef = max_norm / (norm + 1e-6);
            if coef < 1.0 {
                for g in self.grads.iter_mut() {
                    kernels::scale(g, coef)?;
                }
            }
        }
        Ok(norm)
    }

    /// Drops the sums (the aliases stay).
    pub fn clear(&mut self) {
        self.index.clear();
        self.grads.clear();
    }
}

/// See [`GradAccumulator::sink`].
pub struct ParamSink<'a> {
    params: HashSet<TensorId>,
    sums: &'a mut GradAccumulator,
}

impl GradSink for ParamSink<'_> {
    fn take(&mut self, var: &Tensor, grad: &Tensor) -> Result<bool> {
        if !self.params.contains(&var.id()) {
            return Ok(false);
        }
        self.sums.add(var, grad)?;
        Ok(true)
    }

    /// An embedding lookup's gradient rows go straight into the sum (no zero tensor of the
    /// embedding's size, 113 MB for SmolLM2, per backward).
    fn take_index_add(
        &mut self,
        var: &Tensor,
        indexes: &Tensor,
        grad: &Tensor,
        dim: usize,
    ) -> Result<bool> {
        if !self.params.contains(&var.id()) {
            return Ok(false);
        }
        let sum = self.sums.sum_for(var)?;
        let grad = grad.to_dtype(sum.dtype())?;
        kernels::add_rows(sum, indexes, &grad, dim)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::GradAccumulator;

    #[test]
    fn the_sink_sums_parameter_gradients_and_backprop_keeps_no_untracked_ones(
    ) -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let w = Var::new(&[1f32, 2., 3.], &dev)?;
        let other = Var::new(&[5f32, 7., 11.], &dev)?;
        // A constant with an op of its own (it is no leaf) but on no path to a variable.
        let mask = (Tensor::new(&[1f32, 0., 1.], &dev)? * 2.0)?;
        let y = ((w.as_tensor() * &mask)? + w.as_tensor().sqr()?)?;
        let loss = (y * other.as_tensor())?.sum_all()?;
        let mut sums = GradAccumulator::default();
        let store = loss.backward_into(&mut sums.sink(std::slice::from_ref(&w)))?;
        // dL/dw = other·mask + 2·w·other, both contributions summed by the sink.
        let want = [5. * 2. + 2. * 5., 0. + 4. * 7., 11. * 2. + 6. * 11.];
        assert_eq!(sums.get(w.as_tensor()).unwrap().to_vec1::<f32>()?, want);
        assert!(store.get(w.as_tensor()).is_none(), "taken by the sink");
        assert!(
            store.get(other.as_tensor()).is_some(),
            "not a sink parameter"
        );
        assert!(store.get(&mask).is_none(), "untracked: no gradient kept");
        // A second backward adds in place into the same sums.
        let loss = (w.as_tensor() * 3.0)?.sum_all()?;
        loss.backward_into(&mut sums.sink(std::slice::from_ref(&w)))?;
        let twice: Vec<f32> = want.iter().map(|x| x + 3.0).collect();
        assert_eq!(sums.get(w.as_tensor()).unwrap().to_vec1::<f32>()?, twice);
        Ok(())
    }

    #[test]
    fn an_embedding_lookup_adds_its_rows_into_the_sum() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let table = Var::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &dev)?;
        let ids = Tensor::new(&[2u32, 0, 2], &dev)?;
        let scale = Tensor::new(&[[1f32, 10.], [100., 1000.], [0.5, 0.25]], &dev)?;
        let mut sums = GradAccumulator::default();
        for _ in 0..2 {
            // The first lookup creates the sum, the second adds into it.
            let loss = (table.as_tensor().embedding(&ids)? * &scale)?.sum_all()?;
            let store = loss.backward_into(&mut sums.sink(std::slice::from_ref(&table)))?;
            assert!(store.get(table.as_tensor()).is_none(), "taken by the sink");
        }
        // Row 2 is looked up twice per pass (scale rows 0 and 2), row 0 once, row 1 never.
        let want = [[2. * 100., 2. * 1000.], [0., 0.], [2. * 1.5, 2. * 10.25]];
        assert_eq!(sums.get(table.as_tensor()).unwrap().to_vec2::<f32>()?, want);
        Ok(())
    }

    #[test]
    fn transposed_gradients_are_summed_into_contiguous_sums() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for dtype in [candle_core::DType::F32, candle_core::DType::BF16] {
            let w = Tensor::zeros((3, 2), dtype, &dev)?;
            // A [2, 3] tensor seen as [3, 2]: a transposed view, as a matmul's weight gradient.
            let g = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev)?.to_dtype(dtype)?;
            let mut sums = GradAccumulator::default();
            sums.add(&w, &g.t()?)?;
            sums.add(&w, &g.t()?)?;
            let sum = sums.get(&w).unwrap();
            assert!(sum.is_contiguous(), "{dtype:?}");
            let want = [[2f32, 8.], [4., 10.], [6., 12.]];
            assert_eq!(
                sum.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?,
                want
            );
            // The sum owns its storage: the gradient is unchanged.
            assert_eq!(
                g.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?[0],
                [1., 2., 3.]
            );
        }
        Ok(())
    }
}
