//! GRPO-PV (spec §6.2, after TTRL): within each group, the most common extracted answer is the
//! label (ties go to the answer seen first; unextractable answers do not vote); a completion
//! scores 1 if its answer is equivalent to the label. The vote is `answer::select`'s majority.

use crate::answer::select::{select, Selection};
use crate::answer::{extract_answer, Checker};

pub fn rewards(texts: &[String], group: usize, checker: Checker) -> Vec<Option<f64>> {
    let same = |a: &str, b: &str| checker.equivalent(a, b).is_true();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(group.max(1)) {
        let answers: Vec<Option<String>> = chunk
            .iter()
            .map(|t| extract_answer(t, checker.mode))
            .collect();
        let flat = vec![0.0; answers.len()];
        let label = select(Selection::Majority, &answers, &flat, 0.0, &same)
            .and_then(|i| answers[i].clone());
        for a in &answers {
            let hit = match (a, &label) {
                (Some(a), Some(l)) => same(l, a),
                _ => false,
            };
            out.push(Some(if hit { 1.0 } else { 0.0 }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Mode;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_majority_answer_is_the_label() {
        let r = rewards(
            &s(&["\\boxed{3}", "\\boxed{4}", "\\boxed{3.0}", "no answer here"]),
            4,
            Checker::new(Mode::Math),
        );
        assert_eq!(r, vec![Some(1.0), Some(0.0), Some(1.0), Some(0.0)]);
    }

    #[test]
    fn ties_go_to_the_answer_seen_first() {
        let r = rewards(
            &s(&["\\boxed{5}", "\\boxed{6}", "\\boxed{6}", "\\boxed{5}"]),
            4,
            Checker::new(Mode::Math),
        );
        assert_eq!(r, vec![Some(1.0), Some(0.0), Some(0.0), Some(1.0)]);
    }

    #[test]
    fn groups_vote_separately() {
        let r = rewards(
            &s(&["\\boxed{1}", "\\boxed{1}", "\\boxed{2}", "\\boxed{2}"]),
            2,
            Checker::new(Mode::Math),
        );
        assert_eq!(r, vec![Some(1.0); 4]);
    }
}
