//! Comparison of two answer shapes with math-verify's rules (`answer-checking.md` §4.1):
//! values by exact rational arithmetic or numeric evaluation, tuples and intervals in order,
//! sets unordered, relations and matrices structurally; `Unknown` where undecidable.

use std::collections::BTreeMap;

use num_rational::BigRational;
use rand::{Rng, SeedableRng};

use super::expr::Expr;
use super::shape::{Rel, Shape};
use super::{Options, Verdict};

/// Gold first (the comparison is not symmetric, as in math-verify).
pub fn compare(gold: &Shape, pred: &Shape, o: Options) -> Verdict {
    use Shape::*;
    match (gold, pred) {
        // A gold assignment (`x = 5`: a lone symbol on the left) against a bare value compares
        // its right side; a gold equation such as `5 = 3a + b` or `x + y = 4` is not a value
        // (issue 19 item 6).
        (
            Relation {
                op: Rel::Eq,
                lhs: Expr::Sym(_),
                rhs,
            },
            Value(_),
        ) => compare(&Value(rhs.clone()), pred, o),
        // A predicted assignment, or a computation ending in its value (`\frac12 = \frac{10}{9}`),
        // states its right side.
        (
            Value(_),
            Relation {
                op: Rel::Eq,
                lhs,
                rhs,
            },
        ) if matches!(lhs, Expr::Sym(_))
            || (lhs.symbols().is_empty() && rhs.symbols().is_empty()) =>
        {
            compare(gold, &Value(rhs.clone()), o)
        }
        (Value(a), Value(b)) => values(a, b, o),
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
            all(a.iter().zip(b).map(|(x, y)| values(x, y, o)))
        }
        (Set(a), Set(b)) => sets(a, b, o),
        // A tuple and a set of the same elements are equal (math-verify 0.9.0).
        (
            Bracketed {
                open: '(',
                close: ')',
                items: a,
            },
            Set(b),
        )
        | (
            Set(a),
            Bracketed {
                open: '(',
                close: ')',
                items: b,
            },
        ) => sets(a, b, o),
        (Union(a), Union(b)) => unordered(a, b, |x, y| compare(x, y, o)),
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
        ) => relations((*o1, l1, r1), (*o2, l2, r2), o),
        (Matrix(a), Matrix(b)) => {
            if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
                return Verdict::False;
            }
            all(a
                .iter()
                .flatten()
                .zip(b.iter().flatten())
                .map(|(x, y)| values(x, y, o)))
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
fn sets(a: &[Expr], b: &[Expr], o: Options) -> Verdict {
    unordered(a, b, |x, y| values(x, y, o))
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

/// Two relations: the same operator and the same difference of sides (or the flipped operator
/// and the negated difference); and two equations whose differences of sides are a constant
/// multiple of each other: `2x + 4y - 3 = 0` and `y = -\frac12 x + \frac34` are one line
/// (math-verify ≥ 0.6 solves linear equations, 0.5.2 does not; issue 19 item 7). Inequalities
/// are not rescaled (`x < 2` is not `2x < 4` in math-verify 0.9.0).
fn relations(
    (o1, l1, r1): (Rel, &Expr, &Expr),
    (o2, l2, r2): (Rel, &Expr, &Expr),
    o: Options,
) -> Verdict {
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
        values(&d1, &d2, o)
    } else {
        Verdict::False
    };
    let flip = if o1 == flipped(o2) {
        values(&d1, &neg2, o)
    } else {
        Verdict::False
    };
    match (same, flip) {
        (Verdict::True, _) | (_, Verdict::True) => Verdict::True,
        (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
        // Scaled equations, except a constant assignment (`a = 3` is not `2a = 6` in
        // math-verify 0.9.0, while `y = x^2` is `2y = 2x^2`).
        _ if o1 == Rel::Eq
            && o2 == Rel::Eq
            && !assignment(l1, r1)
            && !assignment(l2, r2)
            && ratio(&d1, &d2).is_some() =>
        {
            Verdict::True
        }
        _ => Verdict::False,
    }
}

/// `x = 4`: a lone symbol equal to an expression without symbols.
fn assignment(lhs: &Expr, rhs: &Expr) -> bool {
    matches!(lhs, Expr::Sym(_)) && rhs.symbols().is_empty()
}

/// The constant `c` with `a = c·b` at every point, when `a` and `b` have symbols and agree on
/// one nonzero ratio at 5 pseudo-random points (symbols in [0.5, 2.5]).
fn ratio(a: &Expr, b: &Expr) -> Option<f64> {
    let mut syms = a.symbols();
    syms.extend(b.symbols());
    if a.symbols().is_empty() || b.symbols().is_empty() {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let mut c: Option<f64> = None;
    for _ in 0..5 {
        let env: BTreeMap<String, f64> = syms
            .iter()
            .map(|s| (s.clone(), rng.random_range(0.5..2.5)))
            .collect();
        let (x, y) = (a.approx(&env)?, b.approx(&env)?);
        if !x.is_finite() || !y.is_finite() || y.abs() < 1e-12 || x.abs() < 1e-12 {
            return None;
        }
        let r = x / y;
        match c {
            None => c = Some(r),
            Some(c) if (r - c).abs() > 1e-9 * c.abs().max(1.0) => return None,
            Some(_) => {}
        }
    }
    c
}

/// Two values: exact rationals (rounded to `o.precision` decimals when either was written as a
/// decimal), else numeric evaluation, at random points when there are symbols.
pub fn values(gold: &Expr, pred: &Expr, o: Options) -> Verdict {
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
            (round_to(&a, o.precision) == round_to(&b, o.precision)).into()
        } else {
            (a == b).into()
        };
    }
    numeric(gold, pred, decimal.then_some(o.precision))
}

/// `r` rounded to `digits` decimals (half away from zero).
fn round_to(r: &BigRational, digits: u32) -> BigRational {
    let scale = BigRational::from_integer(num_bigint::BigInt::from(10).pow(digits));
    (r * &scale).round() / scale
}

/// Evaluation at fixed pseudo-random points (5 tries, symbols in [0.5, 2.5]); rounded to
/// `decimal` digits when a side was written as a decimal.
fn numeric(gold: &Expr, pred: &Expr, decimal: Option<u32>) -> Verdict {
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
        let same = if let Some(d) = decimal {
            let scale = 10f64.powi(d as i32);
            (a * scale).round() == (b * scale).round()
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
