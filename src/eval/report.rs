//! What an evaluation reports: `summary.json` (accuracy with its 95% Wilson interval, length,
//! truncation, throughput, self-certainty separation, pass@k / maj@k / best-of-N), a short
//! Markdown report, and a PNG histogram of self-certainty split by correctness (paper Fig. 8).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use super::run::{ItemResult, RunStats};
use super::stats::{mann_whitney, mean, pass_at_k, wilson_95, MannWhitney};
use crate::rollout::FinishReason;

#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    pub correct: usize,
    pub n: usize,
    pub accuracy: f64,
    pub ci95: (f64, f64),
}

impl Accuracy {
    fn of(correct: usize, n: usize) -> Self {
        Self {
            correct,
            n,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            ci95: wilson_95(correct, n),
        }
    }
}

/// Self-certainty of correct vs incorrect greedy answers.
#[derive(Debug, Clone, Serialize)]
pub struct Separation {
    pub mean_correct: f64,
    pub mean_incorrect: f64,
    /// Mann–Whitney U (correct vs incorrect), p, r, AUROC; absent when a group is empty.
    pub mann_whitney: Option<MannWhitney>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sampled {
    pub k: usize,
    pub pass_at_k: Accuracy,
    /// The unbiased pass@k (Chen et al. 2021) for k = 1, 2, 4, … below N, averaged over the
    /// problems (each with its own number of samples).
    pub pass_at_unbiased: std::collections::BTreeMap<usize, f64>,
    /// Accuracy of the sample each rule picks (`majority` is maj@k).
    pub best_of_n: std::collections::BTreeMap<&'static str, Accuracy>,
    pub borda_power: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub model: String,
    pub dataset: String,
    /// The answer checker (`math`, `hendrycks`, `gsm8k`), or `code` for a benchmark judged by
    /// running code.
    pub mode: String,
    pub greedy: Accuracy,
    /// Greedy answers whose verdict was `unknown` (counted as incorrect).
    pub unknown_verdicts: usize,
    /// Greedy completions without an extractable answer.
    pub no_answer: usize,
    pub mean_length: f64,
    pub truncation_rate: f64,
    pub mean_self_certainty: f64,
    pub separation: Separation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<Sampled>,
    pub generated_tokens: usize,
    pub tokens_per_s: f64,
    pub wall_s: f64,
}

pub fn summarize(
    items: &[ItemResult],
    stats: &RunStats,
    model: &str,
    dataset: &str,
    mode: &str,
    power: f64,
) -> Summary {
    let n = items.len();
    let correct: Vec<f64> = sc_where(items, true);
    let incorrect: Vec<f64> = sc_where(items, false);
    let k = items.first().map_or(0, |i| i.samples.len());
    let count = |f: &dyn Fn(&ItemResult) -> bool| items.iter().filter(|i| f(i)).count();
    let sampled = (k > 0).then(|| Sampled {
        k,
        pass_at_k: Accuracy::of(count(&|i| i.samples.iter().any(|s| s.verdict.is_true())), n),
        pass_at_unbiased: std::iter::successors(Some(1usize), |k| Some(k * 2))
            .take_while(|&kk| kk < k)
            .map(|kk| {
                let per: Vec<f64> = items
                    .iter()
                    .filter(|i| i.samples.len() >= kk)
                    .map(|i| {
                        let c = i.samples.iter().filter(|s| s.verdict.is_true()).count();
                        pass_at_k(i.samples.len(), c, kk)
                    })
                    .collect();
                (kk, mean(&per))
            })
            .collect(),
        best_of_n: items
            .first()
            .map(|i| i.selected.iter().map(|(how, _)| *how).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|how| {
                let hits = count(&|i| i.selected_correct(how));
                (how.name(), Accuracy::of(hits, n))
            })
            .collect(),
        borda_power: power,
    });
    let lengths: Vec<f64> = items.iter().map(|i| i.greedy.length as f64).collect();
    let all_sc: Vec<f64> = items.iter().map(|i| i.greedy.self_certainty).collect();
    Summary {
        model: model.into(),
        dataset: dataset.into(),
        mode: mode.into(),
        greedy: Accuracy::of(correct.len(), n),
        unknown_verdicts: count(&|i| i.greedy.verdict == crate::answer::Verdict::Unknown),
        no_answer: count(&|i| i.greedy.answer.is_none()),
        mean_length: mean(&lengths),
        truncation_rate: count(&|i| i.greedy.finish_reason == FinishReason::Length) as f64
            / n.max(1) as f64,
        mean_self_certainty: mean(&all_sc),
        separation: Separation {
            mean_correct: mean(&correct),
            mean_incorrect: mean(&incorrect),
            mann_whitney: mann_whitney(&correct, &incorrect),
        },
        sampled,
        generated_tokens: stats.generated_tokens,
        tokens_per_s: stats.generated_tokens as f64 / stats.wall_s.max(1e-9),
        wall_s: stats.wall_s,
    }
}

fn sc_where(items: &[ItemResult], correct: bool) -> Vec<f64> {
    items
        .iter()
        .filter(|i| i.greedy.verdict.is_true() == correct)
        .map(|i| i.greedy.self_certainty)
        .collect()
}

fn pct(a: &Accuracy) -> String {
    format!(
        "{:.1}% ({}/{}; 95% CI {:.1}–{:.1}%)",
        100.0 * a.accuracy,
        a.correct,
        a.n,
        100.0 * a.ci95.0,
        100.0 * a.ci95.1
    )
}

/// The Markdown report.
pub fn markdown(s: &Summary) -> String {
    let mut out = format!(
        "# Evaluation: {} on {}\n\n| metric | value |\n|---|---|\n\
         | greedy accuracy ({}) | {} |\n\
         | unknown verdicts / no answer | {} / {} |\n\
         | mean completion length | {:.1} tokens |\n| truncation rate | {:.1}% |\n\
         | mean self-certainty | {:.3} |\n| throughput | {:.1} generated tokens/s, {:.1} s |\n",
        s.model,
        s.dataset,
        match s.mode.as_str() {
            "code" => "code execution".to_string(),
            mode => format!("{mode} checker"),
        },
        pct(&s.greedy),
        s.unknown_verdicts,
        s.no_answer,
        s.mean_length,
        100.0 * s.truncation_rate,
        s.mean_self_certainty,
        s.tokens_per_s,
        s.wall_s
    );
    if let Some(k) = &s.sampled {
        out += &format!("| pass@{} | {} |\n", k.k, pct(&k.pass_at_k));
        for (kk, p) in &k.pass_at_unbiased {
            out += &format!(
                "| pass@{kk} (unbiased, from {} samples) | {:.1}% |\n",
                k.k,
                100.0 * p
            );
        }
        for (how, acc) in &k.best_of_n {
            let rule = match *how {
                "borda" => format!("Borda vote (p = {})", k.borda_power),
                "majority" => "majority vote (maj@N)".to_string(),
                other => other.replace('_', "-"),
            };
            out += &format!("| best-of-{} by {rule} | {} |\n", k.k, pct(acc));
        }
    }
    out += "\n## Self-certainty of correct vs incorrect greedy answers (paper Fig. 8)\n\n";
    match &s.separation.mann_whitney {
        Some(m) => {
            out += &format!(
                "Mean self-certainty {:.3} (correct, n = {}) vs {:.3} (incorrect, n = {}). \
                 Mann–Whitney U = {:.1}, p = {:.3e}, effect size r = {:.3}, AUROC = {:.3}.\n\n\
                 ![histogram](self_certainty_hist.png)\n",
                s.separation.mean_correct,
                m.n_x,
                s.separation.mean_incorrect,
                m.n_y,
                m.u,
                m.p_value,
                m.effect_size_r,
                m.auroc
            )
        }
        None => out += "Not computed: all answers fall in one group.\n",
    }
    out
}

/// Overlaid histograms of greedy self-certainty, correct vs incorrect.
pub fn histogram(items: &[ItemResult], path: &Path) -> anyhow::Result<()> {
    crate::plot::ensure_font();
    let correct = sc_where(items, true);
    let incorrect = sc_where(items, false);
    let all: Vec<f64> = correct.iter().chain(&incorrect).copied().collect();
    if all.is_empty() {
        return Ok(());
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(lo + 1e-6);
    let bins = 20usize;
    let width = (hi - lo) / bins as f64;
    let counts = |v: &[f64]| {
        let mut c = vec![0usize; bins];
        for &x in v {
            c[(((x - lo) / width) as usize).min(bins - 1)] += 1;
        }
        c
    };
    let (cc, ci) = (counts(&correct), counts(&incorrect));
    let ymax = cc.iter().chain(&ci).copied().max().unwrap_or(1).max(1);
    let root = BitMapBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("self-certainty of greedy answers", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0..ymax + 1)?;
    chart
        .configure_mesh()
        .x_desc("self-certainty (nats)")
        .y_desc("answers")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (counts, color, name) in [(&cc, GREEN, "correct"), (&ci, RED, "incorrect")] {
        chart
            .draw_series(counts.iter().enumerate().map(|(b, &n)| {
                let x0 = lo + b as f64 * width;
                Rectangle::new([(x0, 0), (x0 + width, n)], color.mix(0.45).filled())
            }))?
            .label(format!("{name} (n = {})", counts.iter().sum::<usize>()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    crate::plot::draw_legend(&mut chart)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
