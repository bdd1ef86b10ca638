//! The shape of a normalised answer: a value, a tuple or interval, a set, a union of intervals,
//! a relation (`x = 5`, `x \le 3`), a matrix or plain text, parsed from its text. Comparing
//! two shapes is [`super::compare`].

use super::expr::{self, Expr};

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

impl Shape {
    /// The same shape with every expression mapped by `f`.
    pub fn map(&self, f: &dyn Fn(&Expr) -> Expr) -> Shape {
        let all = |v: &[Expr]| v.iter().map(f).collect::<Vec<_>>();
        match self {
            Shape::Value(e) => Shape::Value(f(e)),
            Shape::Bracketed { open, close, items } => Shape::Bracketed {
                open: *open,
                close: *close,
                items: all(items),
            },
            Shape::Set(v) => Shape::Set(all(v)),
            Shape::Union(v) => Shape::Union(v.iter().map(|s| s.map(f)).collect()),
            Shape::Relation { op, lhs, rhs } => Shape::Relation {
                op: *op,
                lhs: f(lhs),
                rhs: f(rhs),
            },
            Shape::Matrix(rows) => Shape::Matrix(rows.iter().map(|r| all(r)).collect()),
            Shape::Text(t) => Shape::Text(t.clone()),
        }
    }

    /// Every symbol the shape's expressions name.
    pub fn symbols(&self) -> std::collections::BTreeSet<String> {
        let out = std::cell::RefCell::new(std::collections::BTreeSet::new());
        self.map(&|e| {
            out.borrow_mut().extend(e.symbols());
            e.clone()
        });
        out.into_inner()
    }
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
    if let Some(rhs) = assigned_tuple(s) {
        return parse_shape(rhs);
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
    if s.contains("\\pm") {
        return list(s).map(Shape::Set);
    }
    if let Some(e) = expr::parse(s) {
        return Some(Shape::Value(e));
    }
    text(s).map(Shape::Text)
}

/// The items of a list; an item with `\pm` stands for its two values (`1 \pm \sqrt{19}`).
fn list(s: &str) -> Option<Vec<Expr>> {
    let mut out = Vec::new();
    for (p, _) in split_top(s, &[",", ";"]) {
        let p = p.trim();
        match p.contains("\\pm") {
            true => {
                out.push(expr::parse(&p.replacen("\\pm", "+", 1))?);
                out.push(expr::parse(&p.replacen("\\pm", "-", 1))?);
            }
            false => out.push(expr::parse(p)?),
        }
    }
    Some(out)
}

/// The right side of an assignment whose value is a tuple, interval or list: `P = (2, 3)`,
/// `(x, y) = (2, 3)`, `a = 3, 5, 7`. The left side is a symbol or a tuple of symbols.
fn assigned_tuple(s: &str) -> Option<&str> {
    let eq = s.find('=')?;
    let (lhs, rhs) = (s[..eq].trim(), s[eq + 1..].trim());
    if rhs.contains('=') || matches!(lhs.chars().last(), Some('<' | '>' | '!')) {
        return None;
    }
    let symbol = |t: &str| {
        let t = t.trim();
        let mut c = t.chars();
        matches!(c.next(), Some(c0) if c0.is_ascii_alphabetic())
            && c.all(|c| c.is_ascii_digit() || c == '_' || c == '\'')
    };
    let lhs_ok = symbol(lhs)
        || lhs
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .is_some_and(|inner| inner.split(',').all(symbol));
    let tuple_like = bracketed(rhs).is_some()
        || split_top(rhs, &[","]).len() > 1
        || rhs.contains("\\pm")
        || rhs.starts_with("\\{");
    (lhs_ok && tuple_like).then_some(rhs)
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
    let s = s
        .trim_start_matches(['(', '['])
        .trim_end_matches([')', ']'])
        .trim();
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
