//! GRPO-PV (spec §6.2, after TTRL): within each group, the most common extracted answer is the
//! label (ties go to the answer seen first; unextractable answers do not vote); a completion
//! scores 1 if its answer matches the label.

use crate::eval::answer::{answers_match, extract_answer, normalize};

pub fn rewards(texts: &[String], group: usize) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(group.max(1)) {
        let answers: Vec<Option<String>> = chunk.iter().map(|t| extract_answer(t)).collect();
        // (normalised answer, first raw form, count), in order of first appearance.
        let mut votes: Vec<(String, String, usize)> = Vec::new();
        for a in answers.iter().flatten() {
            let key = normalize(a);
            match votes
                .iter_mut()
                .find(|(k, raw, _)| *k == key || answers_match(raw, a) == Some(true))
            {
                Some(v) => v.2 += 1,
                None => votes.push((key, a.clone(), 1)),
            }
        }
        let label = votes
            .iter()
            .fold(None::<&(String, String, usize)>, |best, v| match best {
                Some(b) if b.2 >= v.2 => Some(b),
                _ => Some(v),
            })
            .map(|v| v.1.clone());
        for a in &answers {
            let hit = match (a, &label) {
                (Some(a), Some(l)) => answers_match(a, l) == Some(true),
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

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_majority_answer_is_the_label() {
        let r = rewards(
            &s(&["\\boxed{3}", "\\boxed{4}", "\\boxed{3.0}", "no answer here"]),
            4,
        );
        assert_eq!(r, vec![Some(1.0), Some(0.0), Some(1.0), Some(0.0)]);
    }

    #[test]
    fn ties_go_to_the_answer_seen_first() {
        let r = rewards(
            &s(&["\\boxed{5}", "\\boxed{6}", "\\boxed{6}", "\\boxed{5}"]),
            4,
        );
        assert_eq!(r, vec![Some(1.0), Some(0.0), Some(0.0), Some(1.0)]);
    }

    #[test]
    fn groups_vote_separately() {
        let r = rewards(
            &s(&["\\boxed{1}", "\\boxed{1}", "\\boxed{2}", "\\boxed{2}"]),
            2,
        );
        assert_eq!(r, vec![Some(1.0); 4]);
    }
}
