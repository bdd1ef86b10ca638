//! Whole-tensor reductions that stay parallel on every device.
//!
//! candle's reduce kernels launch one CUDA block per *output* element, so `sum_all` of a large
//! tensor runs on a single block of one SM: Σ g² over Qwen2.5-1.5B's gradients took 1.16 s of a
//! 2.2 s update step on an H200 (bench/results/gpu-2026-11-30.json). Summing the last dimension
//! first gives one block per row, and the second, short sum is cheap.

use candle_core::{DType, Result, Tensor, D};

use super::inplace::sum_of_squares_f32;

/// Elements per f64 chunk of [`sum_of_squares`] off the CPU (a 128 MiB temporary at most).
const F64_CHUNK: usize = 1 << 24;

/// Σ of all elements as a scalar tensor of `t`'s dtype (what `t.sum_all()` gives, and
/// differentiable like it), summed over the last dimension first.
pub fn sum_all(t: &Tensor) -> Result<Tensor> {
    match t.rank() {
        0 | 1 => t.sum_all(),
        _ => t.sum(D::Minus1)?.sum_all(),
    }
}

/// Σ x² accumulated in f64 (finite exactly when every element is). For a contiguous f32 CPU
/// tensor one pass without an f64 copy: fixed chunks summed in order, so the result does not
/// depend on the number of threads. Elsewhere rows of the last dimension are squared and summed
/// on the device in f64, in chunks of at most 2²⁴ elements; one host sync per chunk.
pub fn sum_of_squares(t: &Tensor) -> Result<f64> {
    if let Some(x) = sum_of_squares_f32(t) {
        return Ok(x);
    }
    let width = match t.rank() {
        0 | 1 => t.elem_count().max(1),
        _ => t.dim(D::Minus1)?.max(1),
    };
    let rows = t.elem_count() / width;
    let t = t.reshape((rows, width))?;
    let step = (F64_CHUNK / width).max(1);
    let mut total = 0f64;
    for start in (0..rows).step_by(step) {
        let chunk = t.narrow(0, start, step.min(rows - start))?;
        total += sum_all(&chunk.to_dtype(DType::F64)?.sqr()?)?.to_scalar::<f64>()?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::{sum_all, sum_of_squares};

    #[test]
    fn row_first_sums_match_the_plain_sums() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let values: Vec<f32> = (0..3 * 5 * 7).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f64 = values.iter().map(|&x| x as f64 * x as f64).sum();
        let t = Tensor::from_vec(values, (3, 5, 7), &dev)?;
        for shape in [vec![105], vec![3, 35], vec![3, 5, 7]] {
            let t = t.reshape(shape.as_slice())?;
            let plain = t.sum_all()?.to_scalar::<f32>()?;
            let ours = sum_all(&t)?.to_scalar::<f32>()?;
            assert!((plain - ours).abs() < 1e-5, "{shape:?}: {plain} vs {ours}");
            // bf16 takes the device path (no CPU f32 kernel); its squares are exact in f64.
            let b = t.to_dtype(DType::BF16)?;
            let exact: f64 = b
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?
                .iter()
                .map(|x| x * x)
                .sum();
            assert!(
                (sum_of_squares(&b)? - exact).abs() < 1e-12 * exact,
                "{shape:?}"
            );
            assert!(
                (sum_of_squares(&t)? - want).abs() < 1e-9 * want,
                "{shape:?}"
            );
            if shape.len() > 1 {
                // A strided view takes the device path too.
                let tt = t.t()?;
                assert!(
                    (sum_of_squares(&tt)? - want).abs() < 1e-9 * want,
                    "{shape:?}"
                );
            }
        }
        let inf = Tensor::new(&[1f32, f32::INFINITY, 2.0], &dev)?.to_dtype(DType::BF16)?;
        assert!(!sum_of_squares(&inf)?.is_finite());
        let empty = Tensor::zeros((0, 4), DType::BF16, &dev)?;
        assert_eq!(sum_of_squares(&empty)?, 0.0);
        Ok(())
    }
}
