//! GRPO's gold-answer reward (spec §6.1): 1 when the completion's extracted answer equals the
//! gold answer, else 0; `None` when the prompt has no gold answer.

use crate::eval::answer::{answers_match, extract_answer};

pub fn rewards(texts: &[String], golds: &[Option<String>]) -> Vec<Option<f64>> {
    texts
        .iter()
        .zip(golds)
        .map(|(text, gold)| {
            let gold = gold.as_ref()?;
            let hit = extract_answer(text)
                .and_then(|pred| answers_match(&pred, gold))
                .unwrap_or(false);
            Some(if hit { 1.0 } else { 0.0 })
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
            "anything".to_string(),
        ];
        let golds = vec![
            Some("42".into()),
            Some("42".into()),
            Some("42".into()),
            None,
        ];
        assert_eq!(
            rewards(&texts, &golds),
            vec![Some(1.0), Some(1.0), Some(0.0), None]
        );
    }
}
