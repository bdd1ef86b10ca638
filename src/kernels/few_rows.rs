//! `x · Wᵀ` for a handful of rows with a weight in its own layout, streaming W once.
//!
//! gemm packs W into its block layout on every call, which costs as much as the whole product
//! when x has only a few rows (in a greedy evaluation whose batch shrank as sequences finished,
//! `pack_lhs` was 38% of the profile). Decoding now lays its weights out once instead
//! (`super::super::panels`); this kernel serves the products of a few rows that remain on
//! weights being trained (e.g. a short completion's forward in the update). Here each task
//! takes a block of W's rows straight from memory and dots each with every row of x (which
//! stays in cache), 4 W rows × 4 x rows at a time with 8-lane accumulators held in registers.
//! No BLAS-like crate exposes an unpacked small-n kernel, hence this one. At 28 rows it
//! measured level with gemm and at 1 row slower (gemm has a matrix-vector path), so `linear`
//! uses it for 4 to 16 rows.

use rayon::prelude::*;

/// W rows per rayon task.
const W_ROWS_PER_TASK: usize = 32;
const LANES: usize = 8;

/// `y = x · Wᵀ` with `x` `[rows, k]`, `w` `[out, k]`, `y` `[rows, out]`, all row-major.
pub fn product(x: &[f32], w: &[f32], rows: usize, k: usize, out: usize) -> Vec<f32> {
    // Computed as yᵀ `[out, rows]` so that each task owns a contiguous block, then transposed.
    let mut yt = vec![0f32; out * rows];
    yt.par_chunks_mut(rows * W_ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, dst)| {
            let j0 = task * W_ROWS_PER_TASK;
            let nj = dst.len() / rows;
            for jb in (0..nj).step_by(4) {
                let jn = 4.min(nj - jb);
                let wr: [&[f32]; 4] = std::array::from_fn(|a| {
                    let j = j0 + jb + a.min(jn - 1);
                    &w[j * k..(j + 1) * k]
                });
                for rb in (0..rows).step_by(4) {
                    let rn = 4.min(rows - rb);
                    let xr: [&[f32]; 4] = std::array::from_fn(|b| {
                        let r = rb + b.min(rn - 1);
                        &x[r * k..(r + 1) * k]
                    });
                    let d = block(wr, xr);
                    for (a, da) in d.iter().enumerate().take(jn) {
                        for (b, &v) in da.iter().enumerate().take(rn) {
                            dst[(jb + a) * rows + rb + b] = v;
                        }
                    }
                }
            }
        });
    let mut y = vec![0f32; rows * out];
    for (j, col) in yt.chunks(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * out + j] = v;
        }
    }
    y
}

/// The 4 × 4 dot products of four W rows with four x rows.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[inline(always)]
fn block(w: [&[f32]; 4], x: [&[f32]; 4]) -> [[f32; 4]; 4] {
    use std::arch::x86_64::*;
    let k = w[0].len();
    let body = k / LANES * LANES;
    // SAFETY: AVX2 and FMA are enabled at compile time (the cfg above); every load reads 8
    // floats at an offset `o` with `o + 8 ≤ body ≤ k`, inside rows of length `k`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; 4];
        let mut o = 0;
        while o < body {
            let wv: [__m256; 4] = std::array::from_fn(|a| _mm256_loadu_ps(w[a].as_ptr().add(o)));
            for b in 0..4 {
                let xv = _mm256_loadu_ps(x[b].as_ptr().add(o));
                for a in 0..4 {
                    acc[a][b] = _mm256_fmadd_ps(wv[a], xv, acc[a][b]);
                }
            }
            o += LANES;
        }
        std::array::from_fn(|a| {
            std::array::from_fn(|b| {
                let mut lanes = [0f32; LANES];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc[a][b]);
                let tail: f32 = (body..k).map(|i| w[a][i] * x[b][i]).sum();
                lanes.iter().sum::<f32>() + tail
            })
        })
    }
}

/// The 4 × 4 dot products of four W rows with four x rows (portable).
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
fn block(w: [&[f32]; 4], x: [&[f32]; 4]) -> [[f32; 4]; 4] {
    std::array::from_fn(|a| {
        std::array::from_fn(|b| w[a].iter().zip(x[b]).map(|(p, q)| p * q).sum())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn product_matches_a_plain_triple_loop_on_ragged_shapes() {
        // Small integers: every sum is exact in f32, whatever the order.
        let (rows, k, out) = (7, 21, 45);
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let w: Vec<f32> = (0..out * k).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let y = super::product(&x, &w, rows, k, out);
        for r in 0..rows {
            for j in 0..out {
                let want: f32 = (0..k).map(|i| x[r * k + i] * w[j * k + i]).sum();
                assert_eq!(y[r * out + j], want, "({r}, {j})");
            }
        }
    }
}
