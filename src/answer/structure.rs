//! The shape of a normalised answer: a value, a tuple or interval, a set, a union of intervals,
//! a relation (`x = 5`, `x \le 3`), a matrix or plain text; then comparison of two shapes with
//! math-verify's rules (`answer-checking.md` §4.1), returning `Unknown` where undecidable.

use std::collections::BTreeMap;

use num_rational::BigRational;
use rand::{Rng, SeedableRng};

use super::expr::{self, Expr};
use super::Verdict;

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Value(Expr),
    /// `(a, b]`, `(1, 2, 3)`: bracket characters kept; ordered.
    Bracketed {
        open: char,
        close: char,
        items: Vec<Expr>,
    },
    /// `\{a, b\}` or a bare list `a, b`: unordered.
    Set(Vec<Expr>),
    Union(Vec<Shape>),
    Relation {
        op: Rel,
        lhs: Expr,
        rhs: Expr,
    },
    Matrix(Vec<Vec<Expr>>),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

const RELATIONS: &[(&str, Rel)] = &[
    ("\\leq", Rel::Le),
    ("\\geq", Rel::Ge),
    ("\\neq", Rel::Ne),
    ("\\le", Rel::Le),
    ("\\ge", Rel::Ge),
    ("\\ne", Rel::Ne),
    ("\\lt", Rel::Lt),
    ("\\gt", Rel::Gt),
    ("<=", Rel::Le),
    (">=", Rel::Ge),
    ("≤", Rel::Le),
    ("≥", Rel::Ge),
    ("=", Rel::Eq),
    ("<", Rel::Lt),
    (">", Rel::Gt),
];

/// Splits `s` on `sep` where it is outside every bracket pair.
pub fn split_top(s: &str, seps: &[&str]) -> Vec<(String, Option<usize>)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, 0usize, 0usize);
    let mut last_sep: Option<usize> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < bytes.len() && matches!(bytes[i + 1], b'{' | b'}') {
            depth += if bytes[i + 1] == b'{' { 1 } else { -1 };
            i += 2;
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            if let Some((k, sep)) = seps.iter().enumerate().find(|(_, sep)| {
                s.get(i..).is_some_and(|t| t.starts_with(**sep)) && !cmd_continues(s, i, sep)
            }) {
                out.push((s[start..i].to_string(), last_sep));
                last_sep = Some(k);
                i += sep.len();
                start = i;
                continue;
            }
        }
        i += 1;
    }
    out.push((s[start..].to_string(), last_sep));
    out
}

/// `\le` must not match the start of `\left`.
fn cmd_continues(s: &str, i: usize, sep: &str) -> bool {
    sep.starts_with('\\')
        && s[i + sep.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
}

/// Reads a normalised answer string; `None` when no shape fits.
pub fn parse_shape(s: &str) -> Option<Shape> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(m) = parse_matrix(s) {
        return Some(m);
    }
    let union = split_top(s, &["\\cup"]);
    if union.len() > 1 {
        return union
            .iter()
            .map(|(p, _)| parse_shape(p))
            .collect::<Option<Vec<_>>>()
            .map(Shape::Union);
    }
    if let Some(inner) = s.strip_prefix("\\{").and_then(|r| r.strip_suffix("\\}")) {
        if split_top(inner, &["\\{"]).len() == 1 {
            return list(inner).map(Shape::Set);
        }
    }
    if let Some(b) = bracketed(s) {
        return Some(b);
    }
    let parts = split_top(s, &[",", ";"]);
    if parts.len() > 1 {
        return list(s).map(Shape::Set);
    }
    let seps: Vec<&str> = RELATIONS.iter().map(|(t, _)| *t).collect();
    let rel = split_top(s, &seps);
    if rel.len() > 1 {
        return relation(&rel);
    }
    if let Some(e) = expr::parse(s) {
        return Some(Shape::Value(e));
    }
    text(s).map(Shape::Text)
}

fn list(s: &str) -> Option<Vec<Expr>> {
    split_top(s, &[",", ";"])
        .iter()
        .map(|(p, _)| expr::parse(p.trim()))
        .collect()
}

/// `(a, b)`, `[a, b)`, … when the first bracket closes at the last character and there is a
/// top-level comma inside.
fn bracketed(s: &str) -> Option<Shape> {
    let open = s.chars().next()?;
    let close = s.chars().last()?;
    if !matches!(open, '(' | '[') || !matches!(close, ')' | ']') {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    if split_top(inner, &[","]).len() < 2 {
        return None;
    }
    Some(Shape::Bracketed {
        open,
        close,
        items: split_top(inner, &[","])
            .iter()
            .map(|(p, _)| expr::parse(p.trim()))
            .collect::<Option<_>>()?,
    })
}

fn relation(parts: &[(String, Option<usize>)]) -> Option<Shape> {
    let ops: Vec<Rel> = parts[1..]
        .iter()
        .map(|(_, k)| RELATIONS[k.unwrap()].1)
        .collect();
    let exprs: Vec<Expr> = parts
        .iter()
        .map(|(p, _)| expr::parse(p.trim()))
        .collect::<Option<_>>()?;
    // `a \le x \le b` → the interval [a, b] (math-verify compares it with `x \in [a, b]`).
    if exprs.len() == 3 && ops.iter().all(|o| matches!(o, Rel::Lt | Rel::Le)) {
        return Some(Shape::Bracketed {
            open: if ops[0] == Rel::Le { '[' } else { '(' },
            close: if ops[1] == Rel::Le { ']' } else { ')' },
            items: vec![exprs[0].clone(), exprs[2].clone()],
        });
    }
    // Chains of `=` keep the first left side and the last right side (`x = 5+6 = 11`).
    if ops.iter().all(|o| *o == Rel::Eq) || exprs.len() == 2 {
        return Some(Shape::Relation {
            op: ops[ops.len() - 1],
            lhs: exprs[0].clone(),
            rhs: exprs[exprs.len() - 1].clone(),
        });
    }
    None
}

fn parse_matrix(s: &str) -> Option<Shape> {
    let s = s.trim_start_matches('(').trim_end_matches(')').trim();
    for env in ["pmatrix", "bmatrix", "matrix", "vmatrix"] {
        let begin = format!("\\begin{{{env}}}");
        let end = format!("\\end{{{env}}}");
        if let Some(body) = s.strip_prefix(&begin).and_then(|r| r.strip_suffix(&end)) {
            let rows: Vec<Vec<Expr>> = body
                .split("\\\\")
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| r.split('&').map(|c| expr::parse(c.trim())).collect())
                .collect::<Option<_>>()?;
            return Some(Shape::Matrix(rows));
        }
    }
    None
}

/// Words only (`\text{Evelyn}`, `(C)`) → lower-case text.
fn text(s: &str) -> Option<String> {
    let t: String = s
        .replace("\\text", "")
        .replace("\\mathrm", "")
        .chars()
        .filter(|c| !matches!(c, '{' | '}' | '(' | ')' | ' '))
        .collect();
    (!t.is_empty() && t.chars().all(|c| c.is_alphabetic() || c == '\'')).then(|| t.to_lowercase())
}

/// Gold first (the comparison is not symmetric, as in math-verify).
pub fn compare(gold: &Shape, pred: &Shape) -> Verdict {
    use Shape::*;
    match (gold, pred) {
        // An assignment (`x = 5`) against a bare value compares its right side.
        (
            Relation {
                op: Rel::Eq, rhs, ..
            },
            Value(_),
        ) => compare(&Value(rhs.clone()), pred),
        (
            Value(_),
            Relation {
                op: Rel::Eq, rhs, ..
            },
        ) => compare(gold, &Value(rhs.clone())),
        (Value(a), Value(b)) => values(a, b),
        (Text(a), Text(b)) => (a == b).into(),
        (Text(a), Value(Expr::Sym(b))) | (Value(Expr::Sym(b)), Text(a)) => {
            (a.eq_ignore_ascii_case(b)).into()
        }
        (Text(_), _) | (_, Text(_)) => Verdict::False,
        (
            Bracketed {
                open: o1,
                close: c1,
                items: a,
            },
            Bracketed {
                open: o2,
                close: c2,
                items: b,
            },
        ) => {
            if o1 != o2 || c1 != c2 || a.len() != b.len() {
                return Verdict::False;
            }
            all(a.iter().zip(b).map(|(x, y)| values(x, y)))
        }
        (Set(a), Set(b)) => sets(a, b),
        (Union(a), Union(b)) => unordered(a, b, compare),
        (
            Relation {
                op: o1,
                lhs: l1,
                rhs: r1,
            },
            Relation {
                op: o2,
                lhs: l2,
                rhs: r2,
            },
        ) => relations(*o1, l1, r1, *o2, l2, r2),
        (Matrix(a), Matrix(b)) => {
            if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
                return Verdict::False;
            }
            all(a
                .iter()
                .flatten()
                .zip(b.iter().flatten())
                .map(|(x, y)| values(x, y)))
        }
        _ => Verdict::False,
    }
}

fn all(vs: impl Iterator<Item = Verdict>) -> Verdict {
    let mut out = Verdict::True;
    for v in vs {
        match v {
            Verdict::False => return Verdict::False,
            Verdict::Unknown => out = Verdict::Unknown,
            Verdict::True => {}
        }
    }
    out
}

/// Multiset equality of two lists of values.
fn sets(a: &[Expr], b: &[Expr]) -> Verdict {
    unordered(a, b, values)
}

/// Whether `b` is a permutation of `a` under `same` (greedy matching; `unknown` when a match
/// failed only because some comparison was undecided).
fn unordered<T>(a: &[T], b: &[T], same: impl Fn(&T, &T) -> Verdict) -> Verdict {
    if a.len() != b.len() {
        return Verdict::False;
    }
    let mut used = vec![false; b.len()];
    let mut unknown = false;
    for x in a {
        let hit = (0..b.len()).find(|&j| {
            !used[j]
                && match same(x, &b[j]) {
                    Verdict::True => true,
                    Verdict::Unknown => {
                        unknown = true;
                        false
                    }
                    Verdict::False => false,
                }
        });
        match hit {
            Some(j) => used[j] = true,
            None if unknown => return Verdict::Unknown,
            None => return Verdict::False,
        }
    }
    Verdict::True
}

fn relations(o1: Rel, l1: &Expr, r1: &Expr, o2: Rel, l2: &Expr, r2: &Expr) -> Verdict {
    let d1 = Expr::Add(vec![l1.clone(), Expr::Neg(Box::new(r1.clone()))]);
    let d2 = Expr::Add(vec![l2.clone(), Expr::Neg(Box::new(r2.clone()))]);
    let neg2 = Expr::Neg(Box::new(d2.clone()));
    let flipped = |o: Rel| match o {
        Rel::Lt => Rel::Gt,
        Rel::Gt => Rel::Lt,
        Rel::Le => Rel::Ge,
        Rel::Ge => Rel::Le,
        o => o,
    };
    let same = if o1 == o2 {
        values(&d1, &d2)
    } else {
        Verdict::False
    };
    let flip = if o1 == flipped(o2) {
        values(&d1, &neg2)
    } else {
        Verdict::False
    };
    match (same, flip) {
        (Verdict::True, _) | (_, Verdict::True) => Verdict::True,
        (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
        _ => Verdict::False,
    }
}

/// Two values: exact rationals (rounded to 6 decimals when either was written as a decimal),
/// else numeric evaluation, at random points when there are symbols.
pub fn values(gold: &Expr, pred: &Expr) -> Verdict {
    if gold == pred {
        return Verdict::True;
    }
    if matches!(gold, Expr::Infinity) || matches!(pred, Expr::Infinity) {
        return Verdict::False;
    }
    if let (Expr::Neg(a), Expr::Neg(b)) = (gold, pred) {
        if matches!(**a, Expr::Infinity) || matches!(**b, Expr::Infinity) {
            return (a == b).into();
        }
    }
    let decimal = gold.has_decimal() || pred.has_decimal();
    // `9\%` equals `9` when both are integers (math-verify's integer-percent rule).
    let strip_pct = |e: &Expr| match e {
        Expr::Percent(x) => (**x).clone(),
        e => e.clone(),
    };
    if gold.is_percent() != pred.is_percent() {
        let (g, p) = (strip_pct(gold), strip_pct(pred));
        if let (Some(a), Some(b)) = (g.exact(), p.exact()) {
            if a.is_integer() && b.is_integer() && a == b {
                return Verdict::True;
            }
        }
    }
    if let (Some(a), Some(b)) = (gold.exact(), pred.exact()) {
        return if decimal {
            (round6(&a) == round6(&b)).into()
        } else {
            (a == b).into()
        };
    }
    numeric(gold, pred, decimal)
}

fn round6(r: &BigRational) -> BigRational {
    let scale = BigRational::from_integer(1_000_000.into());
    (r * &scale).round() / scale
}

/// Evaluation at fixed pseudo-random points (5 tries, symbols in [0.5, 2.5]).
fn numeric(gold: &Expr, pred: &Expr, decimal: bool) -> Verdict {
    let mut syms = gold.symbols();
    syms.extend(pred.symbols());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let tries = if syms.is_empty() { 1 } else { 5 };
    let mut agreed = 0;
    for _ in 0..tries {
        let env: BTreeMap<String, f64> = syms
            .iter()
            .map(|s| (s.clone(), rng.random_range(0.5..2.5)))
            .collect();
        let (Some(a), Some(b)) = (gold.approx(&env), pred.approx(&env)) else {
            continue;
        };
        let same = if decimal {
            (a * 1e6).round() == (b * 1e6).round()
        } else {
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
        };
        if !same {
            return Verdict::False;
        }
        agreed += 1;
    }
    if agreed == tries || (agreed >= 3 && !syms.is_empty()) {
        Verdict::True
    } else {
        Verdict::Unknown
    }
}
