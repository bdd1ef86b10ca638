//! Tokens of LaTeX / plain answer expressions: numbers (`12`, `1.5`, `.5`), single letters,
//! backslash commands, operators and brackets; `·`, `×`, `÷`, `π`, `√` map to their LaTeX forms.

/// A token of an answer expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Op(char),
}

/// Splits `s` into tokens; `None` on a character no answer uses.
pub fn tokenize(s: &str) -> Option<Vec<Tok>> {
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
