//! PNG charts of a run's metrics (`intuitor plot RUN_DIR`; the trainer draws them at the end).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::metrics::{read, Metrics};
use crate::plot::{draw, ensure_font};

/// The charts drawn: (file stem, title, metric names on one chart).
const CHARTS: &[(&str, &str, &[&str])] = &[
    (
        "self_certainty",
        "self-certainty (KL(U||p), nats)",
        &["self_certainty/mean"],
    ),
    (
        "accuracy",
        "accuracy reward (monitor)",
        &["rewards/accuracy/mean", "rewards/plurality_vote/mean"],
    ),
    ("reward", "reward (weighted)", &["reward"]),
    ("kl", "KL to the reference", &["kl"]),
    (
        "completion_length",
        "mean completion length (tokens)",
        &["completions/mean_length"],
    ),
    ("learning_rate", "learning rate", &["learning_rate"]),
];

/// Draws every chart whose metrics are present; returns the files written.
pub fn plot_run(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font();
    let rows = read(dir)?;
    let mut written = Vec::new();
    for (stem, title, keys) in CHARTS {
        let series: Vec<(&str, Vec<(f64, f64)>)> = keys
            .iter()
            .map(|k| (*k, points(&rows, k)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let path = dir.join(format!("{stem}.png"));
        draw(&path, title, &series).with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn points(rows: &[Metrics], key: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((*r.get("step")?, *r.get(key)?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}
