//! Per-step metrics under TRL / open-r1 names (spec §8.4), appended to `metrics.jsonl` and
//! `metrics.csv` in the run directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::advantage::{frac_zero_std, mean_std};
use crate::reward::RewardKind;
use crate::rollout::{Completion, FinishReason};
use crate::update::UpdateStats;

/// One step's metrics, keyed by name.
pub type Metrics = BTreeMap<String, f64>;

/// What one training step measured, for [`step_metrics`].
pub struct StepRecord<'a> {
    /// Steps done, this one included.
    pub step: usize,
    pub learning_rate: f64,
    /// The last optimizer pass's statistics (of μ passes).
    pub stats: &'a UpdateStats,
    pub grad_norm: f64,
    pub completions: &'a [Completion],
    /// Group size G.
    pub group: usize,
    /// Weighted reward of each completion (`None` where one is missing).
    pub combined: &'a [Option<f64>],
    pub rewards: &'a [(RewardKind, Vec<Option<f64>>)],
    /// Sequence self-certainty of each completion under the policy (paper alignment).
    pub self_certainty: &'a [f64],
    /// Tokens seen by the run so far (prompts and completions), this step included.
    pub num_tokens: usize,
    /// Prompt and masked completion tokens of this step, and the optimizer passes over them.
    pub step_tokens: usize,
    pub num_iterations: usize,
    /// Seconds: rollout, policy update, whole step.
    pub rollout_time: f64,
    pub update_time: f64,
    pub step_time: f64,
}

/// A step's metrics under TRL / open-r1 names (spec §8.4).
pub fn step_metrics(r: &StepRecord) -> Metrics {
    let mut m = Metrics::new();
    let (stats, completions) = (r.stats, r.completions);
    let n = stats.tokens.max(1) as f64;
    let group_means_stds: Vec<(f64, f64)> = r
        .combined
        .chunks(r.group)
        .map(|grp| mean_std(&grp.iter().flatten().copied().collect::<Vec<_>>()))
        .collect();
    let groups = group_means_stds.len().max(1) as f64;
    m.insert("step".into(), r.step as f64);
    m.insert("learning_rate".into(), r.learning_rate);
    m.insert("loss".into(), stats.loss);
    m.insert("grad_norm".into(), r.grad_norm);
    m.insert("kl".into(), stats.kl_sum / n);
    m.insert("entropy".into(), stats.entropy_sum / n);
    m.insert("clip_ratio/low_mean".into(), stats.clip_low as f64 / n);
    m.insert("clip_ratio/high_mean".into(), stats.clip_high as f64 / n);
    m.insert(
        "clip_ratio/region_mean".into(),
        (stats.clip_low + stats.clip_high) as f64 / n,
    );
    m.insert(
        "reward".into(),
        group_means_stds.iter().map(|x| x.0).sum::<f64>() / groups,
    );
    m.insert(
        "reward_std".into(),
        group_means_stds.iter().map(|x| x.1).sum::<f64>() / groups,
    );
    m.insert(
        "frac_reward_zero_std".into(),
        frac_zero_std(r.combined, r.group),
    );
    for (kind, values) in r.rewards {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        if !present.is_empty() {
            let (mean, std) = mean_std(&present);
            m.insert(format!("rewards/{}/mean", kind.name()), mean);
            m.insert(format!("rewards/{}/std", kind.name()), std);
        }
    }
    let (sc_mean, sc_std) = mean_std(r.self_certainty);
    m.insert("self_certainty/mean".into(), sc_mean);
    m.insert("self_certainty/std".into(), sc_std);
    let lens: Vec<f64> = completions.iter().map(|c| c.ids.len() as f64).collect();
    m.insert("completions/mean_length".into(), mean_std(&lens).0);
    m.insert(
        "completions/min_length".into(),
        lens.iter().copied().fold(f64::INFINITY, f64::min),
    );
    m.insert(
        "completions/max_length".into(),
        lens.iter().copied().fold(0.0, f64::max),
    );
    let clipped = completions
        .iter()
        .filter(|c| c.finish_reason == FinishReason::Length)
        .count();
    m.insert(
        "completions/clipped_ratio".into(),
        clipped as f64 / completions.len().max(1) as f64,
    );
    m.insert("num_tokens".into(), r.num_tokens as f64);
    let generated: usize = completions.iter().map(|c| c.ids.len()).sum();
    m.insert(
        "rollout_tokens_per_s".into(),
        generated as f64 / r.rollout_time.max(1e-9),
    );
    m.insert(
        "train_tokens_per_s".into(),
        (r.step_tokens * r.num_iterations) as f64 / r.update_time.max(1e-9),
    );
    m.insert("rollout_time".into(), r.rollout_time);
    m.insert("update_time".into(), r.update_time);
    m.insert("step_time".into(), r.step_time);
    m
}

/// Appends metrics rows to the JSONL and CSV files of a run.
pub struct MetricsWriter {
    jsonl: PathBuf,
    csv: PathBuf,
    columns: Vec<String>,
}

impl MetricsWriter {
    /// Opens the writer for `dir`; an existing CSV's header is kept (resume).
    pub fn new(dir: &Path) -> Self {
        let csv = dir.join("metrics.csv");
        let columns = std::fs::read_to_string(&csv)
            .ok()
            .and_then(|t| {
                t.lines()
                    .next()
                    .map(|h| h.split(',').map(str::to_owned).collect())
            })
            .unwrap_or_default();
        Self {
            jsonl: dir.join("metrics.jsonl"),
            csv,
            columns,
        }
    }

    /// Appends one row to both files.
    pub fn write(&mut self, m: &Metrics) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.jsonl)
            .with_context(|| format!("opening {}", self.jsonl.display()))?;
        writeln!(f, "{}", serde_json::to_string(m)?)?;
        self.write_csv(m)
    }

    /// Appends one row to the CSV only (its header is written with the first row).
    pub fn write_csv(&mut self, m: &Metrics) -> anyhow::Result<()> {
        let mut c = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.csv)?;
        if self.columns.is_empty() {
            self.columns = m.keys().cloned().collect();
            writeln!(c, "{}", self.columns.join(","))?;
        }
        let row: Vec<String> = self
            .columns
            .iter()
            .map(|k| m.get(k).map_or(String::new(), |v| format!("{v}")))
            .collect();
        writeln!(c, "{}", row.join(","))?;
        Ok(())
    }
}

/// Reads `metrics.jsonl` back (for plots and resume checks).
pub fn read(dir: &Path) -> anyhow::Result<Vec<Metrics>> {
    let path = dir.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: invalid metrics row", path.display(), i + 1))
        })
        .collect()
}
