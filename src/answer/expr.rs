//! A small LaTeX/plain math expression language for answer checking: a recursive-descent parser
//! (numbers, `+ − × ÷ / ^`, implicit multiplication, `\frac`, `\sqrt[n]{}`, `\pi`, functions,
//! `!`, `%`, `|x|`, symbols). Its values are computed in `value.rs`.
//!
//! Written here because no Rust crate parses LaTeX math (math-verify uses sympy's
//! latex2sympy, `answer-checking.md` §3.4). Work is bounded: nesting depth, exponent size and
//! rational size are capped, so adversarial input fails fast instead of hanging.

use num_bigint::BigInt;
use num_rational::BigRational;

use super::lex::{tokenize, Tok};

/// Deepest nesting the parser follows.
const MAX_DEPTH: usize = 200;
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
            return self.first_digit(&n);
        }
        self.enter()?;
        let e = self.unary();
        self.depth -= 1;
        e
    }

    /// Consumes only the first digit of the number token `n` (LaTeX reads `x^23` as x²·3 and
    /// `\frac12` as ½); the rest stays as the next token.
    fn first_digit(&mut self, n: &str) -> Option<Expr> {
        if n.len() > 1 {
            self.toks[self.pos] = Tok::Num(n[1..].to_string());
        } else {
            self.pos += 1;
        }
        number(&n[..1])
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
            Tok::Num(n) => self.first_digit(&n),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
