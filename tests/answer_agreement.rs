//! The math checker against math-verify 0.9.0's verdicts on 3,121 (gold, prediction) pairs
//! built from the 500 MATH500 gold answers (scripts/make_answer_agreement.py; issue 19).
//!
//! Scope of the figure: predictions that put the answer where math-verify reads answers (in
//! `$…$`, `\[…\]` or `\boxed{}`) and from which it extracted something. For LaTeX written
//! outside a math environment ("The answer is \frac{1}{4}.") math-verify extracts a stray
//! number or nothing, so its `false` there says what it could read, not whether the answers
//! agree; those pairs are counted and printed apart.

use intuitor::answer::{check, Mode, Verdict};

/// Pairs where we say true and math-verify says false, on purpose (gold, prediction, why).
const DELIBERATE: &[(&str, &str, &str)] = &[
    (
        "6+9i",
        "Final Answer: The final answer is $9 i + 6$. I hope it is correct.",
        "math-verify reads `9 i` (with a space) differently from `9i`; the same value",
    ),
    (
        "-2 + 7i",
        "So the answer is $\\boxed{7 i - 2}$.",
        "spaced i, as above",
    ),
    (
        "1+274i",
        "So the answer is $\\boxed{274 i + 1}$.",
        "spaced i, as above",
    ),
    ("1+2i", "$2 i + 1$", "spaced i, as above"),
    (
        "6+9i",
        "So the answer is $\\boxed{3 \\left(3 i + 2\\right)}$.",
        "spaced i, as above",
    ),
    (
        "10,\\!080",
        "So the answer is $\\boxed{x = 10,\\!080}$.",
        "`,\\!` is a thousands separator; math-verify loses it after an assignment",
    ),
    (
        "11,\\! 111,\\! 111,\\! 100",
        "Final Answer: The final answer is $k = 11,\\! 111,\\! 111,\\! 100$. I hope it is correct.",
        "thousands separators after an assignment, as above",
    ),
    (
        "\\$32,\\!348",
        "Putting it together,\n\\[\n\\boxed{a = \\$32,\\!348}\n\\]",
        "thousands separators after an assignment, as above",
    ),
];

#[derive(serde::Deserialize)]
struct Pair {
    gold: String,
    prediction: String,
    kind: String,
    wrap: String,
    mathverify: bool,
    mv_extracted: Option<String>,
}

#[test]
fn agreement_with_math_verify_is_at_least_99_percent_with_no_unexplained_false_true() {
    let text = include_str!("fixtures/answer_agreement.jsonl");
    let pairs: Vec<Pair> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(pairs.len() >= 2000, "{} pairs", pairs.len());
    let (mut n, mut equal, mut outside, mut outside_equal) = (0, 0, 0, 0);
    let mut false_true = Vec::new();
    let mut misses = std::collections::BTreeMap::<String, usize>::new();
    for p in &pairs {
        let ours = check(&p.gold, &p.prediction, Mode::Math).verdict;
        let same = ours == Verdict::from(p.mathverify);
        let in_scope =
            !matches!(p.wrap.as_str(), "bare" | "plain_sentence") && p.mv_extracted.is_some();
        if !in_scope {
            outside += 1;
            outside_equal += same as usize;
            continue;
        }
        n += 1;
        if same {
            equal += 1;
            continue;
        }
        *misses.entry(p.kind.clone()).or_default() += 1;
        if ours == Verdict::True && !p.mathverify {
            false_true.push((p.gold.as_str(), p.prediction.as_str()));
        }
    }
    let rate = equal as f64 / n as f64;
    println!(
        "agreement {equal}/{n} = {:.2}% (outside math environments: {outside_equal}/{outside}); \
         disagreements by kind: {misses:?}",
        100.0 * rate
    );
    assert!(
        rate >= 0.99,
        "agreement {:.2}% < 99%: {misses:?}",
        100.0 * rate
    );
    let expected: Vec<(&str, &str)> = DELIBERATE.iter().map(|(g, p, _)| (*g, *p)).collect();
    let unexplained: Vec<_> = false_true
        .iter()
        .filter(|x| !expected.contains(x))
        .collect();
    assert!(
        unexplained.is_empty(),
        "we say true, math-verify false: {unexplained:#?}"
    );
    let stale: Vec<_> = expected
        .iter()
        .filter(|x| !false_true.contains(x))
        .collect();
    assert!(
        stale.is_empty(),
        "no longer differing, drop from DELIBERATE: {stale:#?}"
    );
}
