//! The contract of the vendored candle-core's `Tensor::backward_into` (third_party/README.md,
//! third_party/candle-core.patch): every gradient contribution that reaches a variable through
//! `GradStore::accumulate` (arithmetic, matmul, reductions, views, ...) is offered to the sink, an
//! embedding lookup as its ids and rows; what the sink takes is not kept in the returned store,
//! what it declines is, and so are the contributions of the ops still on `or_insert` (relu, ...);
//! tensors on no path to a variable keep no gradient; `backward()` gives every variable's.

use std::collections::{HashMap, HashSet};

use candle_core::backprop::{GradSink, GradStore};
use candle_core::{Device, Result, Tensor, TensorId, Var};

/// Records every offer, sums what it takes (as intuitor's `GradAccumulator::sink` does), and
/// takes only the contributions of the variables in `takes`.
#[derive(Default)]
struct Recorder {
    takes: HashSet<TensorId>,
    offered: HashMap<TensorId, Vec<Tensor>>,
    /// (variable, ids, rows, dim) of each `take_index_add` offer.
    index_adds: Vec<(TensorId, Vec<u32>, Tensor, usize)>,
    sums: HashMap<TensorId, Tensor>,
}

impl Recorder {
    fn taking(vars: &[&Var]) -> Self {
        Self {
            takes: vars.iter().map(|v| v.id()).collect(),
            ..Self::default()
        }
    }

    fn offers(&self, var: &Var) -> usize {
        self.offered.get(&var.id()).map_or(0, Vec::len)
    }

    fn sum(&self, var: &Var) -> &Tensor {
        &self.sums[&var.id()]
    }
}

impl GradSink for Recorder {
    fn take(&mut self, var: &Tensor, grad: &Tensor) -> Result<bool> {
        self.offered.entry(var.id()).or_default().push(grad.copy()?);
        if !self.takes.contains(&var.id()) {
            return Ok(false);
        }
        let sum = match self.sums.remove(&var.id()) {
            Some(sum) => (sum + grad)?,
            None => grad.copy()?,
        };
        self.sums.insert(var.id(), sum);
        Ok(true)
    }

    fn take_index_add(
        &mut self,
        var: &Tensor,
        indexes: &Tensor,
        grad: &Tensor,
        dim: usize,
    ) -> Result<bool> {
        self.index_adds
            .push((var.id(), indexes.to_vec1()?, grad.copy()?, dim));
        if !self.takes.contains(&var.id()) {
            return Ok(false);
        }
        let sum = match self.sums.remove(&var.id()) {
            Some(sum) => sum,
            None => var.zeros_like()?,
        };
        self.sums
            .insert(var.id(), sum.index_add(indexes, grad, dim)?);
        Ok(true)
    }
}

fn grad1(store: &GradStore, t: &Tensor) -> Vec<f32> {
    store.get(t).expect("a gradient").to_vec1().unwrap()
}

fn grad2(store: &GradStore, t: &Tensor) -> Vec<Vec<f32>> {
    store.get(t).expect("a gradient").to_vec2().unwrap()
}

#[test]
fn every_contribution_to_a_variable_is_offered_and_they_sum_to_its_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let w = Var::new(&[1f32, 2., 3.], &dev)?;
    let a = Tensor::new(&[5f32, 7., 11.], &dev)?;
    // w reaches the loss twice: through w·a and through w².
    let loss = ((w.as_tensor() * &a)? + w.as_tensor().sqr()?)?.sum_all()?;
    let plain = loss.backward()?;
    assert_eq!(grad1(&plain, &w), [5. + 2., 7. + 4., 11. + 6.]);

    let mut sink = Recorder::taking(&[&w]);
    loss.backward_into(&mut sink)?;
    assert_eq!(sink.offers(&w), 2, "one offer per contribution");
    let mut got: Vec<Vec<f32>> = sink.offered[&w.id()]
        .iter()
        .map(|g| g.to_vec1().unwrap())
        .collect();
    got.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert_eq!(got, [vec![2., 4., 6.], vec![5., 7., 11.]], "2w and a");
    assert_eq!(sink.sum(&w).to_vec1::<f32>()?, grad1(&plain, &w));
    Ok(())
}

#[test]
fn what_the_sink_takes_is_not_stored_and_what_it_declines_is() -> Result<()> {
    let dev = Device::Cpu;
    let w = Var::new(&[1f32, 2., 3.], &dev)?;
    let v = Var::new(&[[1f32, -1.], [2., 0.5], [0., 3.]], &dev)?;
    // w reaches the loss through a matmul, a broadcast product and a sum (three contributions),
    // v through the matmul and the product (two).
    let y = w.as_tensor().unsqueeze(0)?.matmul(v.as_tensor())?; // (1, 2)
    let loss = ((y.sqr()?.sum_all()?
        + v.as_tensor()
            .broadcast_mul(&w.as_tensor().unsqueeze(1)?)?
            .sum_all()?)?
        + w.as_tensor().sum_all()?)?;
    let plain = loss.backward()?;

    let mut sink = Recorder::taking(&[&w]);
    let store = loss.backward_into(&mut sink)?;
    assert!(store.get(&w).is_none(), "taken by the sink: not kept");
    assert_eq!(sink.sum(&w).to_vec1::<f32>()?, grad1(&plain, &w));
    assert_eq!(grad2(&store, &v), grad2(&plain, &v), "declined: stored");
    assert_eq!(sink.offers(&v), 2, "declined contributions are offered too");
    assert_eq!(sink.offers(&w), 3);
    assert!(!sink.sums.contains_key(&v.id()));

    // A sink that declines everything leaves the store as backward() makes it.
    let mut none = Recorder::default();
    let store = loss.backward_into(&mut none)?;
    assert_eq!(grad1(&store, &w), grad1(&plain, &w));
    assert_eq!(grad2(&store, &v), grad2(&plain, &v));
    assert_eq!((none.offers(&w), none.offers(&v)), (3, 2));
    assert!(none.sums.is_empty());
    Ok(())
}

#[test]
fn contributions_of_ops_outside_accumulate_stay_in_the_store() -> Result<()> {
    let dev = Device::Cpu;
    let w = Var::new(&[1f32, -2., 3.], &dev)?;
    // relu's rule still adds through or_insert: its contribution is stored, not offered, so a
    // caller adds the store's leftovers to the sink's sums (intuitor's update does).
    let loss = (w.as_tensor().relu()?.sum_all()? + (w.as_tensor() * 2.0)?.sum_all()?)?;
    let plain = loss.backward()?;
    assert_eq!(grad1(&plain, &w), [3., 2., 3.]);

    let mut sink = Recorder::taking(&[&w]);
    let store = loss.backward_into(&mut sink)?;
    assert_eq!(sink.offers(&w), 1, "only 2·w's");
    assert_eq!(sink.sum(&w).to_vec1::<f32>()?, [2., 2., 2.]);
    assert_eq!(grad1(&store, &w), [1., 0., 1.], "relu's");
    Ok(())
}

#[test]
fn tensors_on_no_path_to_a_variable_get_no_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let w = Var::new(&[1f32, 2., 3.], &dev)?;
    let v = Var::new(&[5f32, 7., 11.], &dev)?;
    let c = Tensor::new(&[1f32, 0., 1.], &dev)?;
    // A mask with an op of its own (not a leaf), computed from constants only.
    let mask = (&c * 2.0)?;
    let frozen = w.as_tensor().detach();
    let h = (w.as_tensor() * &mask)?;
    let loss = ((&h * v.as_tensor())? + (w.as_tensor() * &frozen)?)?.sum_all()?;

    let plain = loss.backward()?;
    let mut sink = Recorder::default();
    let into = loss.backward_into(&mut sink)?;
    for store in [&plain, &into] {
        assert!(store.get(&mask).is_none(), "mask: upstream stores w·v here");
        assert!(store.get(&c).is_none());
        assert!(store.get(&frozen).is_none(), "detached");
        // Intermediate nodes' gradients are consumed as backprop goes (as upstream): only the
        // variables' are left.
        let ids: HashSet<TensorId> = store.get_ids().copied().collect();
        assert_eq!(ids, HashSet::from([w.id(), v.id()]));
    }
    assert!(sink.offered.keys().all(|id| *id == w.id() || *id == v.id()));
    Ok(())
}

#[test]
fn an_embedding_lookup_is_offered_as_its_ids_and_rows() -> Result<()> {
    let dev = Device::Cpu;
    let table = Var::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &dev)?;
    let ids = Tensor::new(&[2u32, 0, 2], &dev)?;
    let scale = Tensor::new(&[[1f32, 10.], [100., 1000.], [0.5, 0.25]], &dev)?;
    let lookup = (table.as_tensor().embedding(&ids)? * &scale)?.sum_all()?;
    // Tied weights: the table also reaches the loss through an ordinary op.
    let loss = (&lookup + (table.as_tensor() * 3.0)?.sum_all()?)?;
    let plain = loss.backward()?;
    let want = [[3. + 100., 3. + 1000.], [3., 3.], [3. + 1.5, 3. + 10.25]];
    assert_eq!(grad2(&plain, &table), want);

    let mut sink = Recorder::taking(&[&table]);
    let store = loss.backward_into(&mut sink)?;
    assert_eq!(sink.index_adds.len(), 1, "one lookup, one offer");
    let (var, got_ids, rows, dim) = &sink.index_adds[0];
    assert_eq!(*var, table.id());
    assert_eq!(*got_ids, [2, 0, 2]);
    assert_eq!(*dim, 0);
    assert_eq!(
        rows.to_vec2::<f32>()?,
        scale.to_vec2::<f32>()?,
        "dL/d(row) = scale"
    );
    assert_eq!(sink.offers(&table), 1, "the ordinary op through take");
    assert!(store.get(&table).is_none(), "taken by the sink: not kept");
    assert_eq!(sink.sum(&table).to_vec2::<f32>()?, want);

    // Declined, the lookup's rows are added into the stored gradient as upstream does.
    let mut none = Recorder::default();
    let store = lookup.backward_into(&mut none)?;
    assert_eq!(none.index_adds.len(), 1);
    assert_eq!(
        grad2(&store, &table),
        [[100., 1000.], [0., 0.], [1.5, 10.25]]
    );
    Ok(())
}

#[test]
fn plain_backward_returns_every_variable_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let table = Var::new(&[[1f32, 2.], [3., 4.]], &dev)?;
    let w = Var::new(&[[1f32, 0., -1.], [2., 1., 0.5]], &dev)?; // (2, 3)
    let b = Var::new(&[0.5f32, -0.5, 1.], &dev)?;
    let unused = Var::new(&[9f32], &dev)?;
    let ids = Tensor::new(&[1u32, 1, 0], &dev)?;
    // logits = table[ids] @ w + b, loss = Σ logits ⊙ t.
    let t = Tensor::new(&[[1f32, 0., 0.], [0., 1., 0.], [0., 0., 2.]], &dev)?;
    let x = table.as_tensor().embedding(&ids)?; // (3, 2)
    let logits = x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
    let loss = (logits * &t)?.sum_all()?;
    let store = loss.backward()?;
    // dL/db = Σ_rows t; dL/dw = xᵀ t; dL/dx = t wᵀ, added into the table at ids.
    assert_eq!(grad1(&store, &b), [1., 1., 2.]);
    assert_eq!(grad2(&store, &w), [[3., 3., 2.], [4., 4., 4.]]);
    assert_eq!(grad2(&store, &table), [[-2., 1.], [1., 3.]]);
    assert!(store.get(&unused).is_none(), "not in the graph");
    let ids: HashSet<TensorId> = store.get_ids().copied().collect();
    assert_eq!(ids, HashSet::from([table.id(), w.id(), b.id()]));
    Ok(())
}
