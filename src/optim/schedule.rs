//! Learning-rate schedules with HF `transformers` semantics (spec §4.4): the scheduler is
//! stepped after the optimizer, so update `s` (0-based) runs at `lr_at(s)`, and with warmup the
//! first update runs at lr 0.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `get_constant_schedule_with_warmup`.
    Constant,
    /// `get_linear_schedule_with_warmup`.
    Linear,
    /// `get_cosine_schedule_with_warmup` (half a cosine).
    Cosine,
}

/// A learning-rate schedule over a run's optimizer updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub kind: Schedule,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Optimizer updates in the run.
    pub total: usize,
    /// Warmup updates ([`warmup_steps`]).
    pub warmup: usize,
}

impl LrSchedule {
    /// Learning rate of update `step` (0-based), [`lr_at`].
    pub fn at(&self, step: usize) -> f64 {
        lr_at(self.kind, self.learning_rate, step, self.total, self.warmup)
    }
}

/// HF's warmup step count: `ceil(total · ratio)`.
pub fn warmup_steps(total: usize, ratio: f64) -> usize {
    (total as f64 * ratio).ceil() as usize
}

/// Learning rate of update `step` (0-based) out of `total`, with `warmup` warmup updates.
pub fn lr_at(schedule: Schedule, base: f64, step: usize, total: usize, warmup: usize) -> f64 {
    let s = step as f64;
    if step < warmup {
        return base * s / warmup.max(1) as f64;
    }
    let factor = match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => {
            ((total as f64 - s) / (total.saturating_sub(warmup).max(1)) as f64).max(0.0)
        }
        Schedule::Cosine => {
            let progress = (s - warmup as f64) / (total.saturating_sub(warmup).max(1)) as f64;
            (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
        }
    };
    base * factor
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec §4.4: 58 steps, 10% warmup → 6 warmup steps; lr 3e-6 runs 0, 5e-7, 1e-6, 1.5e-6,
    /// 2e-6, 2.5e-6, 3e-6, 2.997e-6, … ending at 2.7e-9. Values from
    /// `transformers.get_cosine_schedule_with_warmup(opt, 6, 58)` stepped after each update.
    #[test]
    fn cosine_matches_hf_for_the_reference_run() {
        let warmup = warmup_steps(58, 0.1);
        assert_eq!(warmup, 6);
        let lrs: Vec<f64> = (0..58)
            .map(|s| lr_at(Schedule::Cosine, 3e-6, s, 58, warmup))
            .collect();
        let expect_head = [0.0, 5e-7, 1e-6, 1.5e-6, 2e-6, 2.5e-6, 3e-6];
        for (a, b) in lrs.iter().zip(expect_head) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
        assert!((lrs[7] - 2.9972633e-6).abs() < 1e-12, "{}", lrs[7]);
        assert!((lrs[57] - 2.736669e-9).abs() < 1e-14, "{}", lrs[57]);
    }

    #[test]
    fn linear_and_constant_follow_hf() {
        assert_eq!(lr_at(Schedule::Linear, 1.0, 0, 10, 2), 0.0);
        assert_eq!(lr_at(Schedule::Linear, 1.0, 1, 10, 2), 0.5);
        assert_eq!(lr_at(Schedule::Linear, 1.0, 2, 10, 2), 1.0);
        assert_eq!(lr_at(Schedule::Linear, 1.0, 6, 10, 2), 0.5);
        assert_eq!(lr_at(Schedule::Constant, 1.0, 9, 10, 0), 1.0);
    }
}
