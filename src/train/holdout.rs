//! The held-out check of a run (`eval_holdout`, issue 23): greedy answers to the first n test
//! problems of the built-in generator before and after training, and a report that says in
//! plain words what moved and what is noise: accuracy with 95% Wilson intervals and an exact
//! McNemar test on the paired outcomes, the mean change of self-certainty with its 95%
//! interval, and how well self-certainty separates right from wrong answers (Mann–Whitney, as
//! the paper's Fig. 8).

use crate::data::demo::{self, Split};
use crate::eval::stats::{mann_whitney, wilson_95};
use crate::rollout::{rollout, PromptRequest, RolloutConfig};
use crate::sampling::SamplingParams;
use crate::self_certainty::Alignment;

use super::Trainer;

/// Greedy outcomes on the held-out problems, in problem order.
#[derive(Debug, Clone, PartialEq)]
pub struct Holdout {
    pub correct: Vec<bool>,
    /// Self-certainty of each answer (nats, the paper's alignment).
    pub self_certainty: Vec<f64>,
}

impl Holdout {
    pub fn accuracy(&self) -> f64 {
        self.hits() as f64 / self.correct.len().max(1) as f64
    }

    fn hits(&self) -> usize {
        self.correct.iter().filter(|&&c| c).count()
    }
}

impl Trainer {
    /// Greedy answers of the current policy to the first `n` held-out demo problems.
    pub fn holdout_eval(&self, n: usize) -> anyhow::Result<Holdout> {
        let problems = demo::problems(Split::Test, n);
        let requests: Vec<PromptRequest> = problems
            .iter()
            .map(|p| {
                Ok(PromptRequest {
                    ids: self
                        .base
                        .problem_ids(p, self.cfg.system_prompt.as_deref())?,
                    seed: 0,
                    max_new_tokens: None,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let rc = RolloutConfig {
            num_generations: 1,
            max_new_tokens: self.cfg.eval_max_new_tokens,
            sampling: SamplingParams::greedy(),
            stop_ids: self.base.tokenizer.stop_ids(),
            stop_strings: Vec::new(),
            keep_after_last: false,
            kv_budget: None,
            prefill_batch: None,
        };
        let decoder = self.policy.detached()?;
        let mut out = Holdout {
            correct: Vec::with_capacity(n),
            self_certainty: Vec::with_capacity(n),
        };
        for (chunk_p, chunk_r) in problems.chunks(16).zip(requests.chunks(16)) {
            for (p, c) in chunk_p.iter().zip(rollout(&decoder, chunk_r, &rc, None)?) {
                let text = self.base.tokenizer.decode(&c.ids, true)?;
                let gold = p.answer.as_deref().unwrap_or("");
                out.correct
                    .push(self.cfg.checker().check(gold, &text).verdict.is_true());
                out.self_certainty
                    .push(c.self_certainty(Alignment::Paper) as f64);
            }
        }
        Ok(out)
    }
}

/// Two-sided exact McNemar test on paired outcomes: the p-value of the discordant pairs'
/// split under "training changed nothing" (each discordant pair equally likely either way).
pub fn mcnemar_exact(before: &[bool], after: &[bool]) -> f64 {
    let gained = before
        .iter()
        .zip(after)
        .filter(|(b, a)| !**b && **a)
        .count();
    let lost = before
        .iter()
        .zip(after)
        .filter(|(b, a)| **b && !**a)
        .count();
    let n = gained + lost;
    if n == 0 {
        return 1.0;
    }
    // P(X ≤ k) for X ~ Binomial(n, 1/2), summed in log space.
    let k = gained.min(lost);
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

fn percent_with_interval(h: &Holdout) -> String {
    let (lo, hi) = wilson_95(h.hits(), h.correct.len());
    format!(
        "{:.1}% [{:.1}, {:.1}]",
        100.0 * h.accuracy(),
        100.0 * lo,
        100.0 * hi
    )
}

/// Mann–Whitney separation of the right answers' self-certainty from the wrong ones'.
fn separation(h: &Holdout) -> String {
    let pick = |want: bool| -> Vec<f64> {
        h.correct
            .iter()
            .zip(&h.self_certainty)
            .filter(|(c, _)| **c == want)
            .map(|(_, s)| *s)
            .collect()
    };
    match mann_whitney(&pick(true), &pick(false)) {
        Some(m) => format!(
            "r = {:.2} (AUROC {:.2}, p = {:.2})",
            m.effect_size_r, m.auroc, m.p_value
        ),
        None => "undefined (all answers right or all wrong)".into(),
    }
}

/// The before/after report, in plain words.
pub fn report(before: &Holdout, after: &Holdout, max_new_tokens: usize) -> String {
    let n = before.correct.len();
    let p = mcnemar_exact(&before.correct, &after.correct);
    let diffs: Vec<f64> = after
        .self_certainty
        .iter()
        .zip(&before.self_certainty)
        .map(|(a, b)| a - b)
        .collect();
    let mean = diffs.iter().sum::<f64>() / n.max(1) as f64;
    let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64).sqrt();
    let half = 1.96 * sd / (n.max(1) as f64).sqrt();
    let sc_mean = |h: &Holdout| h.self_certainty.iter().sum::<f64>() / n.max(1) as f64;
    let points = 100.0 * (after.accuracy() - before.accuracy());
    let accuracy_words = match (p < 0.05, points > 0.0) {
        (true, true) => format!("accuracy rose by {points:.1} points, more than chance explains"),
        (true, false) => format!(
            "accuracy fell by {:.1} points, more than chance explains",
            -points
        ),
        (false, _) => {
            format!("the accuracy change ({points:+.1} points) is within noise: it could be chance")
        }
    };
    let sc_words = match (n < 2, mean - half > 0.0, mean + half < 0.0) {
        (true, _, _) => "self-certainty: too few problems to tell (eval_holdout < 2)",
        (_, true, _) => "self-certainty rose (the reward the run maximised)",
        (_, _, true) => "self-certainty fell",
        _ => "self-certainty did not move beyond noise",
    };
    format!(
        "held-out check: the first {n} test problems of the training generator, greedy, ≤ {max_new_tokens} new tokens\n\
         \x20 accuracy        {} → {}  ({points:+.1} points; exact McNemar p = {p:.3})\n\
         \x20 self-certainty  {:.3} → {:.3} nats (change {mean:+.3}, 95% interval [{:+.3}, {:+.3}])\n\
         \x20 right vs wrong by self-certainty (Mann–Whitney): before {}, after {}\n\
         In plain words: {accuracy_words}; {sc_words}.\n",
        percent_with_interval(before),
        percent_with_interval(after),
        sc_mean(before),
        sc_mean(after),
        mean - half,
        mean + half,
        separation(before),
        separation(after),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against SciPy: `binomtest(k, n, 0.5).pvalue` (two-sided, exact).
    #[test]
    fn mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs() {
        // 10 gained, 2 lost: binomtest(2, 12) = 0.03857421875.
        let before = [vec![false; 10], vec![true; 2], vec![true; 30]].concat();
        let after = [vec![true; 10], vec![false; 2], vec![true; 30]].concat();
        assert!((mcnemar_exact(&before, &after) - 0.038_574_218_75).abs() < 1e-12);
        // 3 gained, 3 lost: p = 1; nothing discordant: p = 1.
        let b = [true, true, true, false, false, false];
        let a = [false, false, false, true, true, true];
        assert_eq!(mcnemar_exact(&b, &a), 1.0);
        assert_eq!(mcnemar_exact(&b, &b), 1.0);
    }

    #[test]
    fn the_report_says_whether_the_change_is_noise() {
        let h = |correct: Vec<bool>, sc: f64| Holdout {
            self_certainty: (0..correct.len()).map(|i| sc + 0.01 * i as f64).collect(),
            correct,
        };
        let before = h([vec![false; 90], vec![true; 10]].concat(), 10.0);
        let after = h([vec![false; 70], vec![true; 30]].concat(), 11.0);
        let text = report(&before, &after, 64);
        assert!(text.contains("10.0% [5.5, 17.4] → 30.0%"), "{text}");
        assert!(text.contains("more than chance explains") && text.contains("self-certainty rose"));
        let same = report(&before, &before, 64);
        assert!(
            same.contains("within noise") && same.contains("did not move"),
            "{same}"
        );
    }
}
