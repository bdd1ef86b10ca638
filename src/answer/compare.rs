//! Comparison of two answer shapes with math-verify's rules (`answer-checking.md` §4.1):
//! values by exact rational arithmetic or numeric evaluation, tuples and intervals in order,
//! sets unordered, relations and matrices structurally; `Unknown` where undecidable.

use std::collections::BTreeMap;

use num_rational::BigRational;
use rand::{Rng, SeedableRng};

use super::expr::Expr;
use super::shape::{Rel, Shape};
use super::Verdict;

/// Gold first (the comparison is not symmetric, as in math-verify).
pub fn compare(gold: &Shape, pred: &Shape) -> Verdict {
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
        ) => compare(&Value(rhs.clone()), pred),
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
            compare(gold, &Value(rhs.clone()))
        }
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
        ) => sets(a, b),
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
