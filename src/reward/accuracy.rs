//! GRPO's gold-answer reward (spec §6.1): 1 when the completion's extracted answer is
//! equivalent to the gold answer (`answer`), else 0 (`unknown` counts as 0, as an unparsed
//! answer does in math-verify); `None` when the prompt has no gold answer. In `hendrycks` mode
//! a completion without `\boxed{}` scores 0 (verl's `compute_score`), although `check-answer`
//! then compares the whole text.

use crate::answer::{Checker, Mode};

pub fn rewards(texts: &[String], golds: &[Option<String>], checker: Checker) -> Vec<Option<f64>> {
    texts
        .iter()
        .zip(golds)
        .map(|(text, gold)| {
            let gold = gold.as_ref()?;
            let unboxed = checker.mode == Mode::Hendrycks
                && crate::answer::hendrycks::last_boxed(text).is_none();
            Some(if !unboxed && checker.check(gold, text).verdict.is_true() {
                1.0
            } else {
                0.0
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_and_unboxed_answers_score() {
        let texts = vec![
            "so it is \\boxed{42}".to_string(),
            "the answer is 42.".to_string(),
            "I think 41".to_string(),
            "so it is \\boxed{\\frac{84}{2}}".to_string(),
            "anything".to_string(),
        ];
        let golds = vec![
            Some("42".into()),
            Some("42".into()),
            Some("42".into()),
            Some("42".into()),
            None,
        ];
        assert_eq!(
            rewards(&texts, &golds, Checker::new(Mode::Math)),
            vec![Some(1.0), Some(1.0), Some(0.0), Some(1.0), None]
        );
    }
}
