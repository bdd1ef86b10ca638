//! The query-blocked attention with a recomputing backward (issue 16, item 3) against plain
//! attention built from candle's differentiable ops: the same values and the same gradients of
//! `q`, `k` and `v`, in f32, bf16 and f16, with a causal mask over a prefix of shared keys and
//! left padding; and `kernels::attention` taking the blocked path above two blocks.

use candle_core::{backprop::GradStore, DType, Device, Result, Tensor, Var, D};
use intuitor::kernels::{self, AttentionBias};

fn rand(shape: &[usize], seed: u64, dtype: DType) -> Var {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
    Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
}

/// Largest difference relative to the largest magnitude of `b`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let (a, b) = (f(a), f(b));
    let max = |t: &Tensor| -> f32 { t.abs().unwrap().max(0).unwrap().to_scalar().unwrap() };
    max(&(&a - &b).unwrap()) / max(&b).max(1e-30)
}

/// A causal mask over `keys` keys of which the last `t` are the queries' own, with the first
/// `pad` keys of batch row 1 masked as left padding: `[b, 1, t, keys]` f32.
fn causal_padded_bias(b: usize, t: usize, keys: usize, pad: usize) -> Vec<f32> {
    let mut bias = vec![0f32; b * t * keys];
    for r in 0..b {
        for i in 0..t {
            for j in 0..keys {
                if j > keys - t + i || (r == 1 && j < pad) {
                    bias[(r * t + i) * keys + j] = -1e30;
                }
            }
        }
    }
    bias
}

/// The dtype of scores and masks for activations of `dtype`: f32, or f64 for f64.
fn acc(dtype: DType) -> DType {
    match dtype {
        DType::F64 => DType::F64,
        _ => DType::F32,
    }
}

/// Plain attention: the whole score matrix, softmax in f32 (f64 for f64), probabilities in
/// `v`'s dtype.
fn plain(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, groups: usize, scale: f64) -> Tensor {
    let (b, h, rows, _) = q.dims4().unwrap();
    let keys = k.dim(2).unwrap();
    let t = rows / groups;
    let s = q.matmul(&k.t().unwrap()).unwrap();
    let s = (s.to_dtype(acc(q.dtype())).unwrap() * scale).unwrap();
    let s = s
        .reshape((b, h, groups, t, keys))
        .unwrap()
        .broadcast_add(&bias.unsqueeze(1).unwrap())
        .unwrap();
    let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
    p.to_dtype(v.dtype())
        .unwrap()
        .reshape((b, h, rows, keys))
        .unwrap()
        .matmul(v)
        .unwrap()
}

/// Backward of `Σ y ⊙ probe` for a fixed random probe, so every output element matters.
fn grads(y: &Tensor) -> GradStore {
    let probe = rand(y.dims(), 99, y.dtype()).as_tensor().detach();
    (y * probe).unwrap().sum_all().unwrap().backward().unwrap()
}

/// The blocked attention in blocks of `block` against [`plain`]: values and the gradients of
/// `q`, `k`, `v` within `tol` (relative to the largest value).
fn check(dtype: DType, t: usize, block: usize, tol: f32) {
    let (b, nkv, groups, d, prefix) = (2, 2, 3, 8, 5);
    let keys = prefix + t;
    let q = rand(&[b, nkv, groups * t, d], 1, dtype);
    let k = rand(&[b, nkv, keys, d], 2, dtype);
    let v = rand(&[b, nkv, keys, d], 3, dtype);
    let bias = causal_padded_bias(b, t, keys, prefix + 2);
    let bias = Tensor::from_vec(bias, (b, 1, t, keys), &Device::Cpu).unwrap();
    let bias = bias.to_dtype(acc(dtype)).unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    let (q_, k_, v_) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
    let reference = plain(q_, k_, v_, &bias, groups, scale);
    let y = kernels::blocked_attention_with(q_, k_, v_, Some(&bias), groups, scale, block).unwrap();
    assert_eq!(y.dims(), reference.dims());
    assert_eq!(y.dtype(), dtype);
    let d = rel_diff(&y, &reference);
    assert!(d <= tol, "{dtype:?}: values differ by {d}");
    let (gy, gr) = (grads(&y), grads(&reference));
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        let (a, r) = (
            gy.get(x.as_tensor()).unwrap(),
            gr.get(x.as_tensor()).unwrap(),
        );
        assert_eq!(a.dtype(), dtype, "{name}");
        let a32 = a.to_dtype(DType::F32).unwrap();
        let finite: f32 = a32.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(finite.is_finite(), "{dtype:?}: d{name} is not finite");
        let d = rel_diff(a, r);
        assert!(d <= tol, "{dtype:?}: d{name} differs by {d}");
    }
}

#[test]
fn blocked_attention_equals_plain_attention_in_f32() {
    // 10 positions in blocks of 3: three full blocks and a ragged one.
    check(DType::F32, 10, 3, 2e-6);
    // One block holding everything, and blocks of one position.
    check(DType::F32, 10, 16, 2e-6);
    check(DType::F32, 7, 1, 2e-6);
}

#[test]
fn blocked_attention_equals_plain_attention_in_f64() {
    check(DType::F64, 10, 3, 1e-12);
}

#[test]
fn blocked_attention_equals_plain_attention_in_bf16_and_f16() {
    // Both sides round their matmuls to the dtype; the blocked one sums the k and v gradients
    // over blocks in f32, so they differ by about one unit in the last place (bf16: 2⁻⁷ ≈
    // 7.8e-3 relative; measured 4.5e-3. f16: 2⁻¹⁰ ≈ 9.8e-4; measured 5.6e-4).
    check(DType::BF16, 10, 3, 1e-2);
    check(DType::F16, 10, 3, 2e-3);
}

#[test]
fn a_blocked_pass_without_gradients_gives_the_values() -> Result<()> {
    let (b, nkv, groups, t, d) = (1, 1, 2, 9, 4);
    let q = rand(&[b, nkv, groups * t, d], 4, DType::F32)
        .as_tensor()
        .detach();
    let k = rand(&[b, nkv, t, d], 5, DType::F32).as_tensor().detach();
    let v = rand(&[b, nkv, t, d], 6, DType::F32).as_tensor().detach();
    let bias = Tensor::from_vec(causal_padded_bias(b, t, t, 0), (b, 1, t, t), &Device::Cpu)?;
    let y = kernels::blocked_attention_with(&q, &k, &v, Some(&bias), groups, 0.5, 4)?;
    assert!(!y.track_op());
    let d = rel_diff(&y, &plain(&q, &k, &v, &bias, groups, 0.5));
    assert!(d <= 2e-6, "values differ by {d}");
    Ok(())
}

#[test]
fn kernels_attention_takes_the_blocked_path_above_two_blocks() -> Result<()> {
    let t = 2 * kernels::QUERY_BLOCK + 5;
    assert!(kernels::blocked(t) && !kernels::blocked(t - 5));
    let (b, nkv, groups, d) = (2, 1, 2, 4);
    let q = rand(&[b, nkv, groups * t, d], 7, DType::F32);
    let k = rand(&[b, nkv, t, d], 8, DType::F32);
    let v = rand(&[b, nkv, t, d], 9, DType::F32);
    let host = causal_padded_bias(b, t, t, 3);
    let bias = Tensor::from_slice(&host, (b, 1, t, t), &Device::Cpu)?;
    let attention_bias = AttentionBias::new(host.into(), (b, t, t), &Device::Cpu, DType::F32)?;
    let y = kernels::attention(
        q.as_tensor(),
        k.as_tensor().clone(),
        v.as_tensor().clone(),
        None,
        Some(&attention_bias),
        nkv * groups,
    )?;
    let scale = 1.0 / (d as f64).sqrt();
    let reference = plain(
        q.as_tensor(),
        k.as_tensor(),
        v.as_tensor(),
        &bias,
        groups,
        scale,
    );
    let diff = rel_diff(&y, &reference);
    assert!(diff <= 2e-6, "values differ by {diff}");
    let (gy, gr) = (grads(&y), grads(&reference));
    for x in [&q, &k, &v] {
        let diff = rel_diff(
            gy.get(x.as_tensor()).unwrap(),
            gr.get(x.as_tensor()).unwrap(),
        );
        assert!(diff <= 1e-5, "gradients differ by {diff}");
    }
    Ok(())
}
