//! A small LaTeX/plain math expression language for answer checking: a recursive-descent parser
//! (numbers, `+ − × ÷ / ^`, implicit multiplication, `\frac`, `\sqrt[n]{}`, `\pi`, functions,
//! `!`, `%`, `|x|`, symbols) and two evaluators: exact rational arithmetic where the expression
//! is rational, and floating-point evaluation at given symbol values otherwise.
//!
//! Written here because no Rust crate parses LaTeX math (math-verify uses sympy's
//! latex2sympy, `answer-checking.md` §3.4). Work is bounded: nesting depth, exponent size and
//! rational size are capped, so adversarial input fails fast instead of hanging.

use std::collections::{BTreeMap, BTreeSet};

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// Deepest nesting the parser follows.
const MAX_DEPTH: usize = 200;
/// Largest |exponent| evaluated exactly, and largest rational (bits of numerator+denominator).
const MAX_EXACT_EXP: u32 = 4096;
const MAX_BITS: u64 = 40_000;
/// Longest number literal read (decimal→binary conversion is superlinear).
const MAX_DIGITS: usize = 12_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number literal; `decimal` when written with a decimal point (compared rounded).
    Num {
        value: BigRational,
        decimal: bool,
    },
    Sym(String),
    Pi,
    Infinity,
    Neg(Box<Expr>),
    Add(Vec<Expr>),
    Mul(Vec<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Func(Func, Box<Expr>),
    Factorial(Box<Expr>),
    /// `x%`, i.e. x/100.
    Percent(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Ln,
    Log10,
    Exp,
    Sqrt,
    Abs,
}

const FUNCS: &[(&str, Func)] = &[
    ("arcsin", Func::Asin),
    ("arccos", Func::Acos),
    ("arctan", Func::Atan),
    ("sin", Func::Sin),
    ("cos", Func::Cos),
    ("tan", Func::Tan),
    ("sec", Func::Sec),
    ("csc", Func::Csc),
    ("cot", Func::Cot),
    ("ln", Func::Ln),
    ("log", Func::Log10),
    ("exp", Func::Exp),
    ("sqrt", Func::Sqrt),
];

/// Greek letters and other commands that name a symbol.
const SYMBOL_COMMANDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "phi", "psi", "omega",
    "sigma", "rho", "tau", "varphi", "Delta", "Omega", "Gamma",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Op(char),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            let mut seen_dot = false;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.'
                        && !seen_dot
                        && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                seen_dot |= chars[i] == '.';
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c == '\\' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == start {
                // `\{`, `\}`, `\|`: the character itself.
                let next = *chars.get(i)?;
                out.push(Tok::Op(next));
                i += 1;
            } else {
                out.push(Tok::Cmd(chars[start..i].iter().collect()));
            }
        } else if c.is_alphabetic() {
            out.push(Tok::Letter(c));
            i += 1;
        } else if "+-*/^_(){}[]!%|,'".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c == '·' || c == '×' {
            out.push(Tok::Op('*'));
            i += 1;
        } else if c == '÷' {
            out.push(Tok::Op('/'));
            i += 1;
        } else if c == 'π' {
            out.push(Tok::Cmd("pi".into()));
            i += 1;
        } else if c == '√' {
            out.push(Tok::Cmd("sqrt".into()));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Parses a whole string as one expression; `None` when it is not one.
pub fn parse(s: &str) -> Option<Expr> {
    let toks = tokenize(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    (p.pos == p.toks.len()).then_some(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat_op(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Op(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_cmd(&mut self, name: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Cmd(n)) if n == name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn expr(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut terms = vec![self.term()?];
        loop {
            if self.eat_op('+') {
                terms.push(self.term()?);
            } else if self.eat_op('-') {
                terms.push(Expr::Neg(Box::new(self.term()?)));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(if terms.len() == 1 {
            terms.pop()?
        } else {
            Expr::Add(terms)
        })
    }

    fn term(&mut self) -> Option<Expr> {
        let mut acc = self.unary()?;
        loop {
            if self.eat_op('*') || self.eat_cmd("cdot") || self.eat_cmd("times") {
                acc = mul(acc, self.unary()?);
            } else if self.eat_op('/') || self.eat_cmd("div") {
                acc = Expr::Div(Box::new(acc), Box::new(self.unary()?));
            } else if self.starts_primary() {
                acc = mul(acc, self.power()?);
            } else {
                return Some(acc);
            }
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        if self.eat_op('-') {
            self.enter()?;
            let e = Expr::Neg(Box::new(self.unary()?));
            self.depth -= 1;
            return Some(e);
        }
        if self.eat_op('+') {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Option<Expr> {
        let base = self.postfix()?;
        if self.eat_op('^') {
            let exp = self.exponent()?;
            return Some(self.postfix_ops(Expr::Pow(Box::new(base), Box::new(exp))));
        }
        Some(base)
    }

    /// `^{…}`, `^2` (one digit, as LaTeX reads `x^23`), `^-1`, `^x`.
    fn exponent(&mut self) -> Option<Expr> {
        if let Some(Tok::Num(n)) = self.peek().cloned() {
            let first: String = n.chars().take(1).collect();
            if n.len() > 1 {
                self.toks[self.pos] = Tok::Num(n[1..].to_string());
            } else {
                self.pos += 1;
            }
            return number(&first);
        }
        self.enter()?;
        let e = self.unary();
        self.depth -= 1;
        e
    }

    fn postfix(&mut self) -> Option<Expr> {
        let p = self.primary()?;
        Some(self.postfix_ops(p))
    }

    fn postfix_ops(&mut self, mut e: Expr) -> Expr {
        loop {
            if self.eat_op('!') {
                e = Expr::Factorial(Box::new(e));
            } else if self.eat_op('%') {
                e = Expr::Percent(Box::new(e));
            } else {
                return e;
            }
        }
    }

    fn starts_primary(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Letter(_)) => true,
            Some(Tok::Op(c)) => matches!(c, '(' | '{' | '['),
            Some(Tok::Cmd(c)) => !matches!(c.as_str(), "cdot" | "times" | "div"),
            None => false,
        }
    }

    fn group(&mut self, open: char, close: char) -> Option<Expr> {
        if !self.eat_op(open) {
            return None;
        }
        let e = self.expr()?;
        self.eat_op(close).then_some(e)
    }

    /// A `{…}` argument, or a single token (`\frac12`, `\sqrt3`).
    fn arg(&mut self) -> Option<Expr> {
        if self.peek() == Some(&Tok::Op('{')) {
            return self.group('{', '}');
        }
        match self.peek().cloned()? {
            Tok::Num(n) => {
                let first: String = n.chars().take(1).collect();
                if n.len() > 1 {
                    self.toks[self.pos] = Tok::Num(n[1..].to_string());
                } else {
                    self.pos += 1;
                }
                number(&first)
            }
            Tok::Letter(c) => {
                self.pos += 1;
                Some(Expr::Sym(c.to_string()))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = self.primary_inner();
        self.depth -= 1;
        e
    }

    fn primary_inner(&mut self) -> Option<Expr> {
        match self.peek().cloned()? {
            Tok::Num(n) => {
                self.pos += 1;
                number(&n)
            }
            Tok::Letter(_) => {
                // A function name written without a backslash (`sqrt(2)`, `sin x`)?
                for (name, f) in FUNCS {
                    if self.word_at(name) {
                        self.pos += name.len();
                        return self.func_rest(*f);
                    }
                }
                if self.word_at("pi") {
                    self.pos += 2;
                    return Some(Expr::Pi);
                }
                let Some(Tok::Letter(c)) = self.peek().cloned() else {
                    return None;
                };
                self.pos += 1;
                let mut name = c.to_string();
                // Subscripted symbol: x_1, a_{n}.
                if self.eat_op('_') {
                    name.push('_');
                    name.push_str(&self.subscript()?);
                }
                Some(Expr::Sym(name))
            }
            Tok::Op('(') => self.group('(', ')'),
            Tok::Op('{') => self.group('{', '}'),
            Tok::Op('[') => self.group('[', ']'),
            Tok::Op('|') => {
                self.pos += 1;
                let e = self.expr()?;
                self.eat_op('|').then(|| Expr::Func(Func::Abs, Box::new(e)))
            }
            Tok::Cmd(c) => {
                self.pos += 1;
                self.command(&c)
            }
            Tok::Op(_) => None,
        }
    }

    fn word_at(&self, word: &str) -> bool {
        word.chars()
            .enumerate()
            .all(|(k, ch)| self.toks.get(self.pos + k) == Some(&Tok::Letter(ch)))
    }

    fn subscript(&mut self) -> Option<String> {
        match self.peek().cloned()? {
            Tok::Num(n) => {
                self.pos += 1;
                Some(n)
            }
            Tok::Letter(c) => {
                self.pos += 1;
                Some(c.to_string())
            }
            Tok::Op('{') => {
                let start = self.pos;
                let mut depth = 0;
                while let Some(t) = self.peek() {
                    match t {
                        Tok::Op('{') => depth += 1,
                        Tok::Op('}') => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                Some(format!("{:?}", &self.toks[start..self.pos]))
            }
            _ => None,
        }
    }

    fn command(&mut self, c: &str) -> Option<Expr> {
        match c {
            "frac" => {
                let a = self.arg()?;
                let b = self.arg()?;
                Some(Expr::Div(Box::new(a), Box::new(b)))
            }
            "sqrt" => {
                if self.eat_op('[') {
                    let n = self.expr()?;
                    if !self.eat_op(']') {
                        return None;
                    }
                    let x = self.arg()?;
                    let inv = Expr::Div(Box::new(int(1)), Box::new(n));
                    return Some(Expr::Pow(Box::new(x), Box::new(inv)));
                }
                Some(Expr::Func(Func::Sqrt, Box::new(self.arg()?)))
            }
            "pi" => Some(Expr::Pi),
            "infty" => Some(Expr::Infinity),
            "text" | "mathrm" | "mathit" | "mathbf" | "operatorname" => {
                // `\text{cm}` inside an expression: a named symbol.
                let start = self.pos;
                self.group_raw()?;
                let name: String = self.toks[start..self.pos]
                    .iter()
                    .filter_map(|t| match t {
                        Tok::Letter(c) => Some(*c),
                        _ => None,
                    })
                    .collect();
                Some(Expr::Sym(name))
            }
            "log" if self.eat_op('_') => {
                let base = self.arg()?;
                let x = self.func_arg()?;
                Some(Expr::Div(
                    Box::new(Expr::Func(Func::Ln, Box::new(x))),
                    Box::new(Expr::Func(Func::Ln, Box::new(base))),
                ))
            }
            _ => {
                if let Some((_, f)) = FUNCS.iter().find(|(n, _)| *n == c) {
                    return self.func_rest(*f);
                }
                SYMBOL_COMMANDS
                    .contains(&c)
                    .then(|| Expr::Sym(format!("\\{c}")))
            }
        }
    }

    /// Skips a balanced `{…}`.
    fn group_raw(&mut self) -> Option<()> {
        if !self.eat_op('{') {
            return None;
        }
        let mut depth = 1;
        while depth > 0 {
            match self.peek()? {
                Tok::Op('{') => depth += 1,
                Tok::Op('}') => depth -= 1,
                _ => {}
            }
            self.pos += 1;
        }
        Some(())
    }

    /// After a function name: optional `^k` (`\sin^2 x` = (sin x)²), then its argument.
    fn func_rest(&mut self, f: Func) -> Option<Expr> {
        let power = if self.eat_op('^') {
            Some(self.exponent()?)
        } else {
            None
        };
        let x = if f == Func::Sqrt && self.peek() == Some(&Tok::Op('{')) {
            self.arg()?
        } else {
            self.func_arg()?
        };
        let call = Expr::Func(f, Box::new(x));
        Some(match power {
            Some(p) => Expr::Pow(Box::new(call), Box::new(p)),
            None => call,
        })
    }

    fn func_arg(&mut self) -> Option<Expr> {
        if self.peek() == Some(&Tok::Op('(')) {
            return self.group('(', ')');
        }
        self.power()
    }
}

fn mul(a: Expr, b: Expr) -> Expr {
    match a {
        Expr::Mul(mut v) => {
            v.push(b);
            Expr::Mul(v)
        }
        a => Expr::Mul(vec![a, b]),
    }
}

pub fn int(n: i64) -> Expr {
    Expr::Num {
        value: BigRational::from_integer(n.into()),
        decimal: false,
    }
}

/// `123`, `1.25`, `.5` as an exact rational.
pub fn number(s: &str) -> Option<Expr> {
    let (int_part, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let digits = format!("{int_part}{frac}");
    let numer: BigInt = if digits.is_empty() || digits.len() > MAX_DIGITS {
        return None;
    } else {
        digits.parse().ok()?
    };
    let denom = num_traits::pow(BigInt::from(10), frac.len());
    Some(Expr::Num {
        value: BigRational::new(numer, denom),
        decimal: s.contains('.'),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> BigRational {
        parse(s)
            .unwrap_or_else(|| panic!("parse {s}"))
            .exact()
            .unwrap()
    }

    fn q(a: i64, b: i64) -> BigRational {
        BigRational::new(a.into(), b.into())
    }

    #[test]
    fn exact_arithmetic_follows_latex_conventions() {
        assert_eq!(val("\\frac{1}{2}+\\frac13"), q(5, 6));
        assert_eq!(val("\\frac12"), q(1, 2));
        assert_eq!(val("2^{10}"), q(1024, 1));
        assert_eq!(val("2^23"), q(12, 1), "x^23 is x^2·3 in LaTeX");
        assert_eq!(val("\\sqrt{16}"), q(4, 1));
        assert_eq!(val("\\sqrt[3]{27}"), q(3, 1));
        assert_eq!(val("-3(2+1)"), q(-9, 1));
        assert_eq!(val("5!"), q(120, 1));
        assert_eq!(val("12.5%"), q(1, 8));
        assert_eq!(val(".25"), q(1, 4));
        assert!(parse("\\sqrt{2}").unwrap().exact().is_none());
    }

    #[test]
    fn symbols_and_functions_evaluate() {
        let e = parse("\\sin^2 x + \\cos^2(x)").unwrap();
        let env: BTreeMap<String, f64> = [("x".to_string(), 0.7)].into();
        assert!((e.approx(&env).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(
            parse("2xy").unwrap().symbols(),
            ["x", "y"].iter().map(|s| s.to_string()).collect()
        );
        assert!((parse("\\log_2 8").unwrap().approx(&env).unwrap() - 3.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_garbage_and_bounds_work() {
        assert!(parse("1 +").is_none());
        assert!(parse("(1").is_none());
        let deep = format!("{}1{}", "{".repeat(1000), "}".repeat(1000));
        assert!(parse(&deep).is_none());
        assert!(parse("2^{2^{2^{100}}}").unwrap().exact().is_none());
    }
}
