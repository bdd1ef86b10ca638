//! Values of parsed expressions: exact rational arithmetic where the expression is rational
//! (within size caps, so adversarial input fails fast), and floating-point evaluation at given
//! symbol values otherwise.

use std::collections::{BTreeMap, BTreeSet};

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::expr::{int, Expr, Func};

/// Largest |exponent| evaluated exactly, and largest rational (bits of numerator+denominator).
const MAX_EXACT_EXP: u32 = 4096;
const MAX_BITS: u64 = 40_000;

impl Expr {
    /// Whether a decimal literal occurs (math-verify then compares rounded values).
    pub fn has_decimal(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Num { decimal: true, .. }));
        found
    }

    /// Whether the expression is a bare `x%`.
    pub fn is_percent(&self) -> bool {
        matches!(self, Expr::Percent(_))
    }

    pub fn symbols(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.visit(&mut |e| {
            if let Expr::Sym(s) = e {
                out.insert(s.clone());
            }
        });
        out
    }

    /// The expression with symbols renamed by `names` (others kept).
    pub fn rename(&self, names: &BTreeMap<String, String>) -> Expr {
        let r = |e: &Expr| Box::new(e.rename(names));
        match self {
            Expr::Sym(s) => Expr::Sym(names.get(s).unwrap_or(s).clone()),
            Expr::Neg(a) => Expr::Neg(r(a)),
            Expr::Func(f, a) => Expr::Func(*f, r(a)),
            Expr::Factorial(a) => Expr::Factorial(r(a)),
            Expr::Percent(a) => Expr::Percent(r(a)),
            Expr::Add(v) => Expr::Add(v.iter().map(|e| e.rename(names)).collect()),
            Expr::Mul(v) => Expr::Mul(v.iter().map(|e| e.rename(names)).collect()),
            Expr::Div(a, b) => Expr::Div(r(a), r(b)),
            Expr::Pow(a, b) => Expr::Pow(r(a), r(b)),
            e => e.clone(),
        }
    }

    fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Neg(a) | Expr::Func(_, a) | Expr::Factorial(a) | Expr::Percent(a) => a.visit(f),
            Expr::Add(v) | Expr::Mul(v) => v.iter().for_each(|e| e.visit(f)),
            Expr::Div(a, b) | Expr::Pow(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            _ => {}
        }
    }

    /// The exact rational value, when the expression is rational and within the size caps.
    pub fn exact(&self) -> Option<BigRational> {
        let v = match self {
            Expr::Num { value, .. } => value.clone(),
            Expr::Neg(a) => -a.exact()?,
            Expr::Add(v) => v
                .iter()
                .try_fold(BigRational::zero(), |acc, e| Some(acc + e.exact()?))?,
            Expr::Mul(v) => v
                .iter()
                .try_fold(BigRational::one(), |acc, e| Some(acc * e.exact()?))?,
            Expr::Div(a, b) => {
                let d = b.exact()?;
                if d.is_zero() {
                    return None;
                }
                a.exact()? / d
            }
            Expr::Percent(a) => a.exact()? / BigRational::from_integer(100.into()),
            Expr::Pow(a, b) => {
                let base = a.exact()?;
                let e = b.exact()?;
                if !e.is_integer() {
                    return rational_root(&base, &e);
                }
                let k = e.to_integer().to_i64()?;
                if k.unsigned_abs() > MAX_EXACT_EXP as u64
                    || bits(&base).saturating_mul(k.unsigned_abs()) > MAX_BITS
                {
                    return None;
                }
                if k < 0 && base.is_zero() {
                    return None;
                }
                let p = num_traits::pow(base, k.unsigned_abs() as usize);
                if k < 0 {
                    p.recip()
                } else {
                    p
                }
            }
            Expr::Func(Func::Sqrt, a) => {
                rational_root(&a.exact()?, &BigRational::new(1.into(), 2.into()))?
            }
            Expr::Func(Func::Abs, a) => a.exact()?.abs(),
            Expr::Factorial(a) => {
                let n = a.exact()?;
                let n = n.is_integer().then(|| n.to_integer().to_u32())??;
                if n > 1000 {
                    return None;
                }
                BigRational::from_integer((1..=n).map(BigInt::from).product())
            }
            _ => return None,
        };
        (bits(&v) <= MAX_BITS).then_some(v)
    }

    /// Floating-point value with the given symbol values; `None` for undefined or unknown.
    pub fn approx(&self, env: &BTreeMap<String, f64>) -> Option<f64> {
        let v = match self {
            Expr::Num { value, .. } => value.to_f64()?,
            Expr::Sym(s) => *env.get(s)?,
            Expr::Pi => std::f64::consts::PI,
            Expr::Infinity => return None,
            Expr::Neg(a) => -a.approx(env)?,
            Expr::Add(v) => v
                .iter()
                .try_fold(0.0, |acc, e| Some(acc + e.approx(env)?))?,
            Expr::Mul(v) => v
                .iter()
                .try_fold(1.0, |acc, e| Some(acc * e.approx(env)?))?,
            Expr::Div(a, b) => a.approx(env)? / b.approx(env)?,
            Expr::Percent(a) => a.approx(env)? / 100.0,
            Expr::Pow(a, b) => a.approx(env)?.powf(b.approx(env)?),
            Expr::Factorial(a) => {
                let n = a.approx(env)?;
                if n.fract() != 0.0 || !(0.0..=170.0).contains(&n) {
                    return None;
                }
                (1..=n as u32).map(f64::from).product()
            }
            Expr::Func(f, a) => {
                let x = a.approx(env)?;
                match f {
                    Func::Sin => x.sin(),
                    Func::Cos => x.cos(),
                    Func::Tan => x.tan(),
                    Func::Sec => 1.0 / x.cos(),
                    Func::Csc => 1.0 / x.sin(),
                    Func::Cot => 1.0 / x.tan(),
                    Func::Asin => x.asin(),
                    Func::Acos => x.acos(),
                    Func::Atan => x.atan(),
                    Func::Ln => x.ln(),
                    Func::Log10 => x.log10(),
                    Func::Exp => x.exp(),
                    Func::Sqrt => x.sqrt(),
                    Func::Abs => x.abs(),
                }
            }
        };
        v.is_finite().then_some(v)
    }
}

fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

/// `base^e` for rational `e = p/q` when the q-th root of `base` is rational (`\sqrt{4}` = 2).
fn rational_root(base: &BigRational, e: &BigRational) -> Option<BigRational> {
    let q = e.denom().to_u32()?;
    let p = e.numer().to_i64()?;
    if q > 64 || p.unsigned_abs() > MAX_EXACT_EXP as u64 || base.is_negative() {
        return None;
    }
    let root = |n: &BigInt| -> Option<BigInt> {
        let r = n.nth_root(q);
        (num_traits::pow(r.clone(), q as usize) == *n).then_some(r)
    };
    let r = BigRational::new(root(base.numer())?, root(base.denom())?);
    let e_int = Expr::Pow(
        Box::new(Expr::Num {
            value: r,
            decimal: false,
        }),
        Box::new(int(p)),
    );
    e_int.exact()
}
