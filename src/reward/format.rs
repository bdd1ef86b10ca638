//! Format reward: 1 when the completion has a non-empty `\boxed{}` answer.

use crate::answer::extract::last_boxed;

pub fn rewards(texts: &[String]) -> Vec<Option<f64>> {
    texts
        .iter()
        .map(|t| {
            Some(if last_boxed(t).is_some_and(|b| !b.is_empty()) {
                1.0
            } else {
                0.0
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_boxes_do_not_count() {
        let t = vec![
            "\\boxed{}".to_string(),
            "\\boxed{2}".to_string(),
            "2".to_string(),
        ];
        assert_eq!(super::rewards(&t), vec![Some(0.0), Some(1.0), Some(0.0)]);
    }
}
