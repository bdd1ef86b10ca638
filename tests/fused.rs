//! The CPU f32 kernels (src/kernels/), which the kernel functions pick for f32 CPU tensors,
//! against candle's differentiable composite ops: the same values and the same gradients of a
//! random linear functional.

use std::sync::Arc;

use candle_core::{backprop::GradStore, Device, Result, Tensor, Var, D};
use intuitor::kernels as fused;
use intuitor::kernels::rope::{rope_heads, RopeTables};

fn rand(shape: &[usize], seed: u64) -> Var {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Backward of `Σ y ⊙ probe` for a fixed random probe, so every output element matters.
fn grads(y: &Tensor, seed: u64) -> GradStore {
    let probe = rand(y.dims(), seed).as_tensor().detach();
    (y * probe).unwrap().sum_all().unwrap().backward().unwrap()
}

/// Values within `tol`, and the gradients of every input within `tol` of the composite's.
fn assert_same(fused: &Tensor, composite: &Tensor, inputs: &[&Var], tol: f32) {
    assert_eq!(fused.dims(), composite.dims());
    let d = max_diff(fused, composite);
    assert!(d <= tol, "values differ by {d}");
    let (gf, gc) = (grads(fused, 99), grads(composite, 99));
    for (i, x) in inputs.iter().enumerate() {
        let (a, b) = (gf.get(x.as_tensor()), gc.get(x.as_tensor()));
        let (a, b) = (a.expect("fused gradient"), b.expect("composite gradient"));
        let d = max_diff(a, b);
        assert!(d <= tol, "input {i}: gradients differ by {d}");
    }
}

#[test]
fn rms_norm_matches_the_composite() -> Result<()> {
    let (x, w) = (rand(&[3, 5, 64], 1), rand(&[64], 2));
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let composite = x
        .broadcast_mul(&(ms + 1e-5)?.sqrt()?.recip()?)?
        .broadcast_mul(&w)?;
    let y = fused::rms_norm(&x, &w, 1e-5)?;
    assert_same(&y, &composite, &[&x, &w], 1e-4);
    Ok(())
}

#[test]
fn rope_heads_matches_the_composite() -> Result<()> {
    let (b, t, n, d) = (2, 7, 3, 8);
    let x = rand(&[b, t, n * d], 3);
    let positions: Vec<f32> = (0..b * t).map(|i| ((i * 5) % 11) as f32).collect();
    let inv_freq: Vec<f32> = (0..d / 2)
        .map(|j| 1.0 / 100f32.powf(j as f32 / 4.0))
        .collect();
    let angles: Vec<f32> = positions
        .iter()
        .flat_map(|&p| inv_freq.iter().map(move |&w| p * w))
        .collect();
    let tables = RopeTables {
        cos: Arc::new(angles.iter().map(|a| a.cos()).collect()),
        sin: Arc::new(angles.iter().map(|a| a.sin()).collect()),
        seq: t,
        half: d / 2,
    };
    let table = |v: &Arc<Vec<f32>>| -> Result<Tensor> {
        let half = Tensor::from_slice(v.as_slice(), (b, 1, t, d / 2), &Device::Cpu)?;
        Tensor::cat(&[&half, &half], D::Minus1)
    };
    let (cos, sin) = (table(&tables.cos)?, table(&tables.sin)?);
    let heads = x.reshape((b, t, n, d))?.transpose(1, 2)?;
    let (x1, x2) = (heads.narrow(3, 0, d / 2)?, heads.narrow(3, d / 2, d / 2)?);
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let composite = (heads.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?;
    let y = rope_heads(&x, &tables, n)?;
    assert_same(&y, &composite, &[&x], 1e-5);
    Ok(())
}

#[test]
fn attention_softmax_matches_the_composite_with_a_causal_padded_mask() -> Result<()> {
    // 2 batch rows, 2 KV heads × 3 query heads folded into rows, 4 queries over 6 keys.
    let (b, nkv, groups, t, keys) = (2, 2, 3, 4, 6);
    let scores = rand(&[b, nkv, groups * t, keys], 4);
    let mut bias = vec![0f32; b * t * keys];
    for r in 0..b {
        for i in 0..t {
            for j in 0..keys {
                if j > keys - t + i || (r == 1 && j == 0) {
                    bias[(r * t + i) * keys + j] = -1e30;
                }
            }
        }
    }
    let scale = 0.3;
    let bias_t = Tensor::from_slice(&bias, (b, 1, 1, t, keys), &Device::Cpu)?;
    let composite = (scores.reshape((b, nkv, groups, t, keys))? * scale)?.broadcast_add(&bias_t)?;
    let composite = candle_nn::ops::softmax(&composite, D::Minus1)?.reshape(scores.dims())?;
    let y = fused::attention_softmax(&scores, scale, t, Some(Arc::new(bias)))?;
    assert_same(&y, &composite, &[&scores], 1e-5);
    Ok(())
}

#[test]
fn swiglu_matches_the_composite() -> Result<()> {
    let (g, u) = (rand(&[3, 4, 50], 5), rand(&[3, 4, 50], 6));
    let composite = (g.silu()? * u.as_tensor())?;
    assert_same(&fused::swiglu(&g, &u)?, &composite, &[&g, &u], 1e-5);
    Ok(())
}

#[test]
fn target_logprob_and_entropy_match_the_composite() -> Result<()> {
    let logits = rand(&[5, 300], 7);
    let targets = [0u32, 299, 17, 17, 150];
    let t = 0.7;
    let logp_all = candle_nn::ops::log_softmax(&(logits.as_tensor() / t)?, D::Minus1)?;
    let idx = Tensor::new(&targets, &Device::Cpu)?.unsqueeze(1)?;
    let composite = logp_all.gather(&idx, 1)?.squeeze(1)?;
    let entropy = (logp_all.exp()? * &logp_all)?.sum(D::Minus1)?.neg()?;
    let both = fused::target_logprob_entropy(&logits, &targets, 1.0 / t)?;
    let ours = both.narrow(1, 0, 1)?.squeeze(1)?;
    assert_same(&ours, &composite, &[&logits], 1e-5);
    assert!(max_diff(&both.narrow(1, 1, 1)?.squeeze(1)?, &entropy) <= 1e-4);
    Ok(())
}

#[test]
fn a_target_outside_the_vocabulary_is_an_error() {
    let logits = rand(&[2, 10], 8);
    let err = fused::target_logprob_entropy(&logits, &[1, 10], 1.0).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

#[test]
fn linear_matches_the_composite() -> Result<()> {
    // 10 rows take the unpacked few-rows kernel, 40 rows gemm as W·xᵀ, 120 rows gemm as x·Wᵀ.
    for (rows, seed) in [(5, 9), (20, 13), (60, 11)] {
        let (x, w) = (rand(&[2, rows, 24], seed), rand(&[40, 24], seed + 1));
        let composite = x.broadcast_matmul(&w.t()?)?;
        let y = fused::linear(&x, &w)?;
        assert!(y.is_contiguous());
        assert_same(&y, &composite, &[&x, &w], 1e-4);
        // Weight gradients come back in the weight's own (contiguous) layout.
        assert!(grads(&y, 99).get(w.as_tensor()).unwrap().is_contiguous());
    }
    Ok(())
}

#[test]
fn add_weight_grad_adds_the_weight_gradient_into_the_sum() -> Result<()> {
    let (rows, out, inp) = (37, 21, 13);
    let dy = rand(&[rows, out], 11).as_tensor().clone();
    let x = rand(&[rows, inp], 12).as_tensor().clone();
    let before = rand(&[out, inp], 13).as_tensor().copy()?;
    let sum = before.copy()?;
    fused::add_weight_grad(&sum, &dy, &x)?;
    let want = (before + dy.t()?.matmul(&x)?)?;
    let diff = max_diff(&sum, &want);
    assert!(diff < 1e-5, "Δ {diff}");
    Ok(())
}
