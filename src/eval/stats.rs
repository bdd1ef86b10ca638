//! Statistics of an evaluation: binomial confidence intervals, and how well self-certainty
//! separates correct from incorrect answers (paper Fig. 8: Mann–Whitney U; plus effect size r
//! and AUROC).

use serde::Serialize;

/// Wilson score interval for `k` successes in `n` trials at 95% (z = 1.959964).
pub fn wilson_95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Mann–Whitney U test of `x` against `y`, two-sided, normal approximation with tie and
/// continuity correction: the same numbers as SciPy's
/// `mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of `x`: the number of (x, y) pairs with x > y, ties counting one half.
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The continuity-corrected z, signed (> 0 when `x` tends to be larger).
    pub z: f64,
    /// Effect size r = z / √(n_x + n_y).
    pub effect_size_r: f64,
    /// AUROC of `x` against `y` = U / (n_x · n_y).
    pub auroc: f64,
    pub n_x: usize,
    pub n_y: usize,
}

/// `None` when either sample is empty.
pub fn mann_whitney(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties; Σ(t³ − t) for the variance correction.
    let n = all.len();
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        rank_sum_x += avg_rank * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (f1, f2, fn_) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_x - f1 * (f1 + 1.0) / 2.0;
    let mu = f1 * f2 / 2.0;
    let sigma = (f1 * f2 / 12.0 * ((fn_ + 1.0) - tie_term / (fn_ * (fn_ - 1.0)))).sqrt();
    let diff = u - mu;
    let z = if sigma > 0.0 {
        (diff - 0.5 * diff.signum()) / sigma
    } else {
        0.0
    };
    // SciPy clips the two-sided p at 1 (the continuity correction can push |z| below 0).
    let p_value = if sigma > 0.0 {
        (2.0 * normal_sf((diff.abs() - 0.5) / sigma)).min(1.0)
    } else {
        1.0
    };
    Some(MannWhitney {
        u,
        p_value,
        z,
        effect_size_r: z / fn_.sqrt(),
        auroc: u / (f1 * f2),
        n_x: n1,
        n_y: n2,
    })
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Mean of a slice (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The unbiased estimate of pass@k from `n` samples of which `c` are correct (Chen et al. 2021,
/// "Evaluating Large Language Models Trained on Code", eq. 1): `1 − C(n−c, k) / C(n, k)`,
/// computed as `1 − Π_{i=n−c+1}^{n} (1 − k/i)` (their numerically stable form). `k ≤ n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n < k + c {
        return 1.0;
    }
    1.0 - (n - c + 1..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 8/10: (0.4902, 0.9433) in Newcombe (1998), Table I.
        let (lo, hi) = wilson_95(8, 10);
        assert!(
            (lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert_eq!(wilson_95(0, 0), (0.0, 1.0));
    }

    #[test]
    fn auroc_is_the_pairwise_rank_formula() {
        let x = [0.3, 0.9, 0.5, 0.5];
        let y = [0.1, 0.5, 0.7];
        let mut pairs = 0.0;
        for a in x {
            for b in y {
                pairs += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let mw = mann_whitney(&x, &y).unwrap();
        assert_eq!(mw.u, pairs);
        assert_eq!(mw.auroc, pairs / 12.0);
        assert!(mann_whitney(&x, &[]).is_none());
    }

    #[test]
    fn pass_at_k_is_chens_unbiased_estimate() {
        use super::pass_at_k;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(pass_at_k(5, 1, 1), 0.2));
        assert!(close(pass_at_k(5, 0, 3), 0.0));
        assert!(close(pass_at_k(5, 5, 1), 1.0));
        // 1 − C(7, 5) / C(10, 5) = 1 − 21/252.
        assert!(close(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0));
        // k = n: any correct sample.
        assert!(close(pass_at_k(4, 1, 4), 1.0));
    }
}
