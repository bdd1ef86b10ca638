//! Normalisation of an extracted answer before parsing, after math-verify's `normalize_latex`
//! (`answer-checking.md` §3.4): LaTeX spacing and sizing commands, `\dfrac`, dollars and
//! currency, degrees, units (trailing `\text{…}` and unit words), percent words, thousands
//! separators, decimal commas, mixed numbers, `x \in`, and a trailing period.

use std::sync::LazyLock;

use regex::Regex;

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("valid regex"));
    };
}

re!(BRACE_COMMA, r"(\d)\{,\}(\d{3})");
// `45,\! 210`: LaTeX's thin-space-free thousands separator, with or without a space after it.
re!(BANG_COMMA, r"(\d),\\!\s*(\d{3})");
// A whole answer in `\text{…}`: `\text{13}`, `\text{Evelyn}` (text that is a number is the number).
re!(WHOLE_TEXT, r"^\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}$");
// A number with a base subscript, `52_8`, `4210_{5}`: math-verify reads the digits.
re!(BASE_SUBSCRIPT, r"\b(\d+)_\{?\d+\}?");
// An assignment before a mixed number or a list: `a = 1\frac{4}{5}`, `x = 2, 3`.
re!(ASSIGNED, r"^[A-Za-z]\s*=\s*([^=]+)$");
re!(
    TEXT_CMD,
    r"\\(?:textbf|textit|textrm|textnormal|mathrm|mathit|mathbf|mbox)\{"
);
re!(
    CONNECTIVE,
    r"\s*\\text\{\s*(?:and|or)\s*\}\s*|\s+(?:and|or)\s+"
);
re!(
    PERCENT_WORD,
    r"\s*(?:\\text\{\s*)?(?:percentage|percent|pct)(?:\s*\})?"
);
re!(
    TRAILING_TEXT,
    r"^(.*\S)\s*\\text\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?\d\}?)?$"
);
re!(
    UNIT_WORD,
    r"(?i)^(.*[\d}])\s*(?:square |cubic )?(?:cm|centimeters?|mm|millimeters?|km|kilometers?|m|meters?|inch(?:es)?|in|feet|foot|ft|yards?|yd|miles?|mph|seconds?|sec|s|minutes?|mins?|hours?|hrs?|h|days?|weeks?|months?|years?|degrees?|dollars?|cents?|units?|kg|grams?|g|pounds?|lbs?|liters?|litres?|ml|l|gallons?|ounces?|oz|m²|cm²)(?:\^\{?\d\}?|²|³)?$"
);
re!(THOUSANDS, r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$");
re!(SPACE_THOUSANDS, r"^-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?$");
re!(DECIMAL_COMMA, r"^(-?\d+),(\d{2,})$");
re!(
    MIXED_NUMBER,
    r"^(-?)(\d+)\s*(?:\\frac(?:\{(\d+)\}\{(\d+)\}|(\d)(\d))|\s(\d+)/(\d+))$"
);
re!(MEMBERSHIP, r"^[A-Za-z]\s*\\in\s*");
re!(ARRAY_SPEC, r"\\begin\{matrix\}\{[lcr|]*\}");
re!(
    SIZING,
    r"\\(?:left|right|mleft|mright|bigl|bigr|Bigl|Bigr|big|Big)\b"
);

/// The normalised form of an extracted answer.
pub fn normalize(s: &str) -> String {
    let mut t = s.trim().to_string();
    if let Some(inner) = t.strip_prefix("\\boxed{").and_then(|r| r.strip_suffix('}')) {
        t = inner.to_string();
    }
    t = BRACE_COMMA.replace_all(&t, "$1$2").into_owned();
    while BANG_COMMA.is_match(&t) {
        t = BANG_COMMA.replace_all(&t, "$1$2").into_owned();
    }
    // LaTeX spacing commands (`\ `, `\,`) must not eat a matrix row separator `\\`.
    const ROW: &str = "\u{1}ROW\u{1}";
    t = t.replace("\\\\", ROW);
    t = t
        .replace("\\begin{array}", "\\begin{matrix}")
        .replace("\\end{array}", "\\end{matrix}");
    t = ARRAY_SPEC.replace_all(&t, "\\begin{matrix}").into_owned();
    for (from, to) in [
        ("\\displaystyle", ""),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\cfrac", "\\frac"),
        ("\\!", ""),
        ("\\,", " "),
        ("\\;", " "),
        ("\\:", " "),
        ("\\ ", " "),
        ("\\quad", " "),
        ("~", " "),
        ("\\$", ""),
        ("$", ""),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\circ", ""),
        ("\\degree", ""),
        ("°", ""),
        ("\\%", "%"),
        ("\\emptyset", "\\{\\}"),
        ("\\varnothing", "\\{\\}"),
        ("\\lbrace", "\\{"),
        ("\\rbrace", "\\}"),
        ("€", ""),
        ("£", ""),
        ("¥", ""),
        ("₹", ""),
        ("\n", " "),
        ("\t", " "),
    ] {
        t = t.replace(from, to);
    }
    t = t.replace(ROW, "\\\\");
    t = SIZING.replace_all(&t, "").into_owned();
    t = TEXT_CMD.replace_all(&t, "\\text{").into_owned();
    // `12 and 13` is a list, never the decimal 12,13.
    let joined = CONNECTIVE.is_match(&t);
    t = CONNECTIVE.replace_all(&t, ",").into_owned();
    t = PERCENT_WORD.replace_all(&t, "%").into_owned();
    t = t.replace("infinity", "\\infty");
    t = t.trim().trim_end_matches('.').trim().to_string();
    // Units: a trailing `\text{…}` after a value, then unit words (twice, as math-verify).
    if let Some(c) = TRAILING_TEXT.captures(&t) {
        t = c[1].trim().to_string();
    }
    for _ in 0..2 {
        if let Some(c) = UNIT_WORD.captures(&t) {
            t = c[1].trim().to_string();
        }
    }
    t = MEMBERSHIP.replace(&t, "").into_owned();
    if let Some(c) = WHOLE_TEXT.captures(&t) {
        t = c[1].trim().to_string();
    }
    t = BASE_SUBSCRIPT.replace_all(&t, "$1").into_owned();
    if let Some(c) = ASSIGNED.captures(&t) {
        let rest = c[1].trim();
        let list = super::shape::split_top(rest, &[","]).len() > 1;
        if list || MIXED_NUMBER.is_match(rest) {
            t = rest.to_string();
        }
    }
    if THOUSANDS.is_match(&t) {
        t = t.replace(',', "");
    } else if SPACE_THOUSANDS.is_match(&t) {
        t = t.replace(' ', "");
    } else if let Some(c) = DECIMAL_COMMA.captures(&t).filter(|_| !joined) {
        t = format!("{}.{}", &c[1], &c[2]);
    }
    if let Some(c) = MIXED_NUMBER.captures(&t) {
        // `\frac{4}{5}`, the shorthand `\frac45`, or `4/5`.
        let (num, den) = match (c.get(3), c.get(5), c.get(7)) {
            (Some(n), _, _) => (n.as_str(), &c[4]),
            (None, Some(n), _) => (n.as_str(), &c[6]),
            (None, None, Some(n)) => (n.as_str(), &c[8]),
            _ => ("0", "1"),
        };
        t = format!("{}({}+{}/{})", &c[1], &c[2], num, den);
    }
    t.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_units_and_separators() {
        assert_eq!(
            normalize("\\left( \\frac{1}{3} \\right)"),
            "( \\frac{1}{3} )"
        );
        assert_eq!(normalize("\\$16,\\!386.20"), "16386.20");
        assert_eq!(normalize("14{,}916"), "14916");
        assert_eq!(normalize("10\\text{ units}"), "10");
        assert_eq!(normalize("\\frac{1}{3} \\textbf{meters}"), "\\frac{1}{3}");
        assert_eq!(normalize("90^\\circ"), "90");
        assert_eq!(normalize("28 percent"), "28%");
        assert_eq!(normalize("1 000"), "1000");
        assert_eq!(normalize("1000,99"), "1000.99");
        assert_eq!(normalize("7 3/4"), "(7+3/4)");
        assert_eq!(normalize("2\\frac{1}{2}"), "(2+1/2)");
        assert_eq!(normalize("x \\in [-2, 7]"), "[-2, 7]");
        assert_eq!(normalize("12 and 13"), "12,13");
        assert_eq!(normalize("5 cm^2"), "5");
    }
}
