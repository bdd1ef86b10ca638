//! Math answer checking without Python or sympy (`answer-checking.md`). Three modes:
//! - `math` (default): math-verify-like. Both strings go through extraction, normalisation and
//!   parsing; values compare by exact rational arithmetic (rounded to 6 decimals when a side is
//!   written as a decimal), by numeric evaluation at random points when symbols remain, and
//!   structurally for tuples, intervals (openness matters), sets, unions, relations and matrices.
//! - `hendrycks`: Hendrycks `is_equiv` exactly (verl-intuitor's validation checker).
//! - `gsm8k`: the GSM8K rule (last `#### N`, else the last number; numeric equality).
//!
//! The verdict is `true`, `false` or `unknown` (a side could not be read); never a guess.

pub mod compare;
pub mod expr;
pub mod extract;
pub mod hendrycks;
pub mod lex;
pub mod normalize;
pub mod select;
pub mod shape;
pub mod value;

use serde::{Deserialize, Serialize};

/// Which checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Math,
    Hendrycks,
    Gsm8k,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    True,
    False,
    /// One side could not be read (unsupported notation), so equivalence is undecided.
    Unknown,
}

impl From<bool> for Verdict {
    fn from(b: bool) -> Self {
        if b {
            Verdict::True
        } else {
            Verdict::False
        }
    }
}

impl Verdict {
    pub fn is_true(self) -> bool {
        self == Verdict::True
    }
}

/// JSON form: `true`, `false` or `"unknown"`.
impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verdict::True => s.serialize_bool(true),
            Verdict::False => s.serialize_bool(false),
            Verdict::Unknown => s.serialize_str("unknown"),
        }
    }
}

/// A checked pair, with what was read from each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    pub verdict: Verdict,
    pub gold_parsed: Option<String>,
    pub prediction_parsed: Option<String>,
}

/// The answer a completion gives, in `mode`'s extraction.
pub fn extract_answer(text: &str, mode: Mode) -> Option<String> {
    match mode {
        Mode::Math => extract::extract_math(text),
        // No box: the whole prediction, as Hendrycks' `is_equiv` compares two answer strings
        // (`1/2` vs `\frac{1}{2}` is true in its tests). The training reward keeps verl's rule
        // instead: a solution without a box scores 0 (`crate::reward::accuracy`).
        Mode::Hendrycks => hendrycks::last_boxed(text)
            .or_else(|| Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Mode::Gsm8k => extract::gsm8k_prediction(text),
    }
}

/// The gold answer read from a dataset field.
pub fn extract_gold(gold: &str, mode: Mode) -> Option<String> {
    match mode {
        Mode::Math => extract::extract_gold_math(gold),
        Mode::Hendrycks => {
            hendrycks::last_boxed(gold).or_else(|| Some(gold.to_string()).filter(|g| !g.is_empty()))
        }
        Mode::Gsm8k => extract::gsm8k_gold(gold),
    }
}

/// Whether two extracted answers are equivalent (gold first: the rules are not symmetric).
pub fn equivalent(gold: &str, prediction: &str, mode: Mode) -> Verdict {
    match mode {
        Mode::Hendrycks => hendrycks::is_equiv(gold, prediction).into(),
        Mode::Gsm8k => match (
            expr::number(gold.trim()).and_then(|e| e.exact()),
            expr::number(prediction.trim()).and_then(|e| e.exact()),
        ) {
            (Some(a), Some(b)) => (a == b).into(),
            _ => (gold.trim() == prediction.trim()).into(),
        },
        Mode::Math => {
            // `x \in [a, b]` and `t \in [a, b]` name different variables (math-verify's strict
            // mode); otherwise the variable is dropped.
            if let (Some(a), Some(b)) = (member_of(gold), member_of(prediction)) {
                if a != b {
                    return Verdict::False;
                }
            }
            let (g, p) = (normalize::normalize(gold), normalize::normalize(prediction));
            if g == p {
                return Verdict::True;
            }
            match (shape::parse_shape(&g), shape::parse_shape(&p)) {
                (Some(a), Some(b)) => compare::compare(&a, &b),
                _ => Verdict::Unknown,
            }
        }
    }
}

/// The variable of a membership answer, `x` in `x \in [-2, 7]`.
fn member_of(s: &str) -> Option<char> {
    let s = s.trim().trim_matches('$').trim();
    let mut c = s.chars();
    let v = c.next().filter(char::is_ascii_alphabetic)?;
    c.as_str().trim_start().starts_with("\\in").then_some(v)
}

/// Extracts both sides and compares them. No gold answer → `unknown`; no predicted answer →
/// `false`.
pub fn check(gold: &str, prediction: &str, mode: Mode) -> Checked {
    let gold_parsed = extract_gold(gold, mode);
    let prediction_parsed = extract_answer(prediction, mode);
    let verdict = match (&gold_parsed, &prediction_parsed) {
        (None, _) => Verdict::Unknown,
        (_, None) => Verdict::False,
        (Some(g), Some(p)) => equivalent(g, p, mode),
    };
    Checked {
        verdict,
        gold_parsed,
        prediction_parsed,
    }
}
