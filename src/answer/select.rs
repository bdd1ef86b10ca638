//! Choosing one answer among N samples (spec §11, Kang et al. 2025): the self-certainty argmax,
//! Borda voting weighted by self-certainty rank, and plain majority vote (Borda with p = 0).

use serde::{Deserialize, Serialize};

/// How to pick one of N samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The sample with the highest self-certainty (no answer counts as −1e9; first on ties).
    #[value(alias = "self_certainty")]
    SelfCertainty,
    /// Votes (N − rank)^p by self-certainty rank, pooled over equal answers.
    Borda,
    /// The most frequent answer (first on ties).
    Majority,
}

impl Selection {
    pub fn name(&self) -> &'static str {
        match self {
            Selection::SelfCertainty => "self_certainty",
            Selection::Borda => "borda",
            Selection::Majority => "majority",
        }
    }
}

/// Index of the chosen sample. `answers[i]` is sample i's extracted answer (None: no answer),
/// `sc[i]` its self-certainty, `same(a, b)` answer equivalence, `power` Borda's p.
pub fn select(
    how: Selection,
    answers: &[Option<String>],
    sc: &[f64],
    power: f64,
    same: &dyn Fn(&str, &str) -> bool,
) -> Option<usize> {
    match how {
        Selection::SelfCertainty => argmax_first(
            &answers
                .iter()
                .zip(sc)
                .map(|(a, &s)| if a.is_some() { s } else { -1e9 })
                .collect::<Vec<_>>(),
        ),
        Selection::Borda => borda(answers, sc, power, same),
        Selection::Majority => borda(answers, sc, 0.0, same),
    }
}

/// Spec §11 Borda: sort by SC descending (stable), vote (N − r)^p at rank r, each vote goes to
/// the earliest sample with an equal answer; the sample with the most votes wins (first on ties).
fn borda(
    answers: &[Option<String>],
    sc: &[f64],
    power: f64,
    same: &dyn Fn(&str, &str) -> bool,
) -> Option<usize> {
    let n = answers.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| sc[b].total_cmp(&sc[a]));
    let mut votes = vec![0.0f64; n];
    for (rank, &i) in order.iter().enumerate() {
        let Some(a) = answers[i].as_deref() else {
            continue;
        };
        let owner = (0..n)
            .find(|&j| answers[j].as_deref().is_some_and(|b| same(a, b)))
            .unwrap_or(i);
        votes[owner] += ((n - rank) as f64).powf(power);
    }
    if votes.iter().all(|&v| v == 0.0) {
        return None;
    }
    argmax_first(&votes)
}

fn argmax_first(v: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &x) in v.iter().enumerate() {
        if best.is_none_or(|b| x > v[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(a: &[&str]) -> Vec<Option<String>> {
        a.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn borda_reproduces_the_spec_worked_check() {
        // Spec §11: SC [0.3, 0.9, 0.5, 0.1], answers [A, B, A, C], p = 0.5 → A (output 0):
        // A = √2 + √3 = 3.146 > B = 2 > C = 1.
        let a = answers(&["A", "B", "A", "C"]);
        let sc = [0.3, 0.9, 0.5, 0.1];
        let eq = |x: &str, y: &str| x == y;
        assert_eq!(select(Selection::Borda, &a, &sc, 0.5, &eq), Some(0));
        // A large p tends to the SC argmax (B); p = 0 is majority (A).
        assert_eq!(select(Selection::Borda, &a, &sc, 8.0, &eq), Some(1));
        assert_eq!(select(Selection::SelfCertainty, &a, &sc, 0.5, &eq), Some(1));
        assert_eq!(select(Selection::Majority, &a, &sc, 0.5, &eq), Some(0));
    }

    #[test]
    fn missing_answers_never_win_and_ties_go_first() {
        let a = vec![None, Some("7".to_string()), Some("8".to_string())];
        let eq = |x: &str, y: &str| x == y;
        assert_eq!(
            select(Selection::SelfCertainty, &a, &[5.0, 1.0, 1.0], 0.5, &eq),
            Some(1)
        );
        assert_eq!(
            select(Selection::Majority, &a, &[5.0, 1.0, 1.0], 0.5, &eq),
            Some(1)
        );
        assert_eq!(
            select(Selection::Borda, &[None, None], &[1.0, 2.0], 0.5, &eq),
            None
        );
    }
}
