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

/// The most decimals [`Options::precision`] takes (f64 holds about 15 significant digits).
pub const MAX_PRECISION: u32 = 12;

/// math-verify's `verify` options, for `math` mode (the other modes have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Decimals a value written as a decimal is rounded to before comparing (math-verify's
    /// `float_rounding`, default 6): `0.3333` equals `\frac13` at 4, not at 6.
    pub precision: u32,
    /// math-verify's `strict` (default true). When false, a prediction naming other free symbols
    /// than the gold, as many of them, has them renamed to the gold's in sorted order (`f(x)`
    /// equals `f(y)`; `t \in [a, b]` still does not answer `x \in [a, b]`, as in math-verify).
    pub strict: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            precision: 6,
            strict: true,
        }
    }
}

/// A checker: its mode and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checker {
    pub mode: Mode,
    pub options: Options,
}

impl Checker {
    /// The checker of `mode` with default options.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            options: Options::default(),
        }
    }

    /// Extracts both sides and compares them. No gold answer → `unknown`; no predicted answer →
    /// `false`.
    pub fn check(&self, gold: &str, prediction: &str) -> Checked {
        let gold_parsed = extract_gold(gold, self.mode);
        let prediction_parsed = extract_answer(prediction, self.mode);
        let verdict = match (&gold_parsed, &prediction_parsed) {
            (None, _) => Verdict::Unknown,
            (_, None) => Verdict::False,
            (Some(g), Some(p)) => self.equivalent(g, p),
        };
        Checked {
            verdict,
            gold_parsed,
            prediction_parsed,
        }
    }

    /// Whether two extracted answers are equivalent (gold first: the rules are not symmetric).
    pub fn equivalent(&self, gold: &str, prediction: &str) -> Verdict {
        match self.mode {
            Mode::Hendrycks => hendrycks::is_equiv(gold, prediction).into(),
            Mode::Gsm8k => match (
                expr::number(gold.trim()).and_then(|e| e.exact()),
                expr::number(prediction.trim()).and_then(|e| e.exact()),
            ) {
                (Some(a), Some(b)) => (a == b).into(),
                _ => (gold.trim() == prediction.trim()).into(),
            },
            Mode::Math => math_equivalent(gold, prediction, self.options),
        }
    }
}

fn math_equivalent(gold: &str, prediction: &str, o: Options) -> Verdict {
    // `x \in [a, b]` and `t \in [a, b]` name different variables (math-verify, strict or not);
    // otherwise the variable is dropped.
    if let (Some(a), Some(b)) = (member_of(gold), member_of(prediction)) {
        if a != b {
            return Verdict::False;
        }
    }
    let (g, p) = (normalize::normalize(gold), normalize::normalize(prediction));
    if g == p {
        return Verdict::True;
    }
    let (Some(a), Some(mut b)) = (shape::parse_shape(&g), shape::parse_shape(&p)) else {
        return Verdict::Unknown;
    };
    if !o.strict {
        // `e` and `i` are constants to math-verify (sympy's E and I), never renamed.
        let free = |s: std::collections::BTreeSet<String>| -> std::collections::BTreeSet<String> {
            s.into_iter().filter(|x| x != "e" && x != "i").collect()
        };
        let (sg, sp) = (free(a.symbols()), free(b.symbols()));
        if sg != sp && sg.len() == sp.len() {
            let names: std::collections::BTreeMap<String, String> =
                sp.into_iter().zip(sg).collect();
            b = b.map(&|e| e.rename(&names));
        }
    }
    compare::compare(&a, &b, o)
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

/// [`Checker::equivalent`] with default options.
pub fn equivalent(gold: &str, prediction: &str, mode: Mode) -> Verdict {
    Checker::new(mode).equivalent(gold, prediction)
}

/// The variable of a membership answer, `x` in `x \in [-2, 7]`.
fn member_of(s: &str) -> Option<char> {
    let s = s.trim().trim_matches('$').trim();
    let mut c = s.chars();
    let v = c.next().filter(char::is_ascii_alphabetic)?;
    c.as_str().trim_start().starts_with("\\in").then_some(v)
}

/// [`Checker::check`] with default options.
pub fn check(gold: &str, prediction: &str, mode: Mode) -> Checked {
    Checker::new(mode).check(gold, prediction)
}
