//! Group-relative advantages (spec §3): each reward is normalised within its group of G
//! completions, `(r − mean) / (std + 1e-4)` with the **unbiased** std (N − 1, `torch.std`), and
//! the per-reward advantages are summed; the sequence advantage is broadcast to every token.

use serde::{Deserialize, Serialize};

/// TRL's `scale_rewards` (HEAD semantics; `true` at S3 = `group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the group's std (+ε).
    Group,
    /// Divide by the std over the whole batch (+ε).
    Batch,
    /// Only subtract the group mean (Dr. GRPO).
    None,
}

/// The ε added to the std (TRL 1e-4; verl uses 1e-6).
pub const STD_EPS: f64 = 1e-4;

/// Mean and unbiased std of `xs` (std 0 for fewer than two values).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// Advantages for one reward over a prompt-major batch of groups of size `g`.
/// `None` rewards (an answer that could not be judged) count as missing: they get advantage 0 and
/// are left out of their group's statistics (TRL's `nanmean`/`nanstd` handling).
pub fn group_advantages(rewards: &[Option<f64>], g: usize, scale: ScaleRewards) -> Vec<f64> {
    let batch: Vec<f64> = rewards.iter().flatten().copied().collect();
    let (_, batch_std) = mean_std(&batch);
    let mut out = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(g) {
        let present: Vec<f64> = group.iter().flatten().copied().collect();
        let (mean, std) = mean_std(&present);
        let denom = match scale {
            ScaleRewards::Group => std + STD_EPS,
            ScaleRewards::Batch => batch_std + STD_EPS,
            ScaleRewards::None => 1.0,
        };
        out.extend(group.iter().map(|r| r.map_or(0.0, |r| (r - mean) / denom)));
    }
    out
}

/// One reward's values in a combination: its weight and how its advantages are scaled.
pub struct WeightedReward<'a> {
    pub values: &'a [Option<f64>],
    /// 0 = computed and logged only.
    pub weight: f64,
    pub scale: ScaleRewards,
}

/// Combines rewards over `n` completions in groups of `g` (spec §3): the sequence advantages,
/// `Σ_k w_k · group_advantages(r_k)`, and the weighted reward of each completion,
/// `Σ_k w_k · r_k` (`None` where a weighted reward is missing). Zero-weight rewards take no
/// part.
pub fn combine(rewards: &[WeightedReward], n: usize, g: usize) -> (Vec<f64>, Vec<Option<f64>>) {
    let mut advantages = vec![0.0; n];
    let mut combined = vec![Some(0.0); n];
    for r in rewards.iter().filter(|r| r.weight != 0.0) {
        for (a, x) in advantages
            .iter_mut()
            .zip(group_advantages(r.values, g, r.scale))
        {
            *a += r.weight * x;
        }
        for (c, x) in combined.iter_mut().zip(r.values) {
            *c = match (*c, x) {
                (Some(c), Some(x)) => Some(c + r.weight * x),
                _ => None,
            };
        }
    }
    (advantages, combined)
}

/// Fraction of groups whose (present) rewards are all equal: they carry no learning signal.
pub fn frac_zero_std(rewards: &[Option<f64>], g: usize) -> f64 {
    let groups: Vec<_> = rewards.chunks(g).collect();
    if groups.is_empty() {
        return 0.0;
    }
    let flat = groups
        .iter()
        .filter(|grp| mean_std(&grp.iter().flatten().copied().collect::<Vec<_>>()).1 == 0.0)
        .count();
    flat as f64 / groups.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_worked_check_group_20_to_26() {
        let r: Vec<Option<f64>> = (20..27).map(|x| Some(x as f64)).collect();
        let (m, s) = mean_std(&r.iter().flatten().copied().collect::<Vec<_>>());
        assert_eq!(m, 23.0);
        assert!((s - 2.160247).abs() < 1e-6);
        let a = group_advantages(&r, 7, ScaleRewards::Group);
        let expect = [
            -1.388666, -0.925777, -0.462889, 0.0, 0.462889, 0.925777, 1.388666,
        ];
        for (x, y) in a.iter().zip(expect) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn flat_groups_get_zero_advantage_and_are_counted() {
        let r = vec![Some(1.0), Some(1.0), Some(0.0), Some(1.0)];
        let a = group_advantages(&r, 2, ScaleRewards::Group);
        assert_eq!(&a[..2], &[0.0, 0.0]);
        assert!(a[2] < 0.0 && a[3] > 0.0);
        assert_eq!(frac_zero_std(&r, 2), 0.5);
    }

    #[test]
    fn missing_rewards_are_left_out() {
        let r = vec![Some(1.0), None, Some(0.0)];
        let a = group_advantages(&r, 3, ScaleRewards::None);
        assert_eq!(a, vec![0.5, 0.0, -0.5]);
    }
}
