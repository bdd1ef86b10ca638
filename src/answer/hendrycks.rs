//! Hendrycks MATH `is_equiv` exactly as verl-intuitor's `verl/utils/reward_score/math.py`
//! (`answer-checking.md` §1.1, §3.1): last-box extraction and `strip_string` normalisation,
//! then string equality. No arithmetic: `10` ≠ `10.0` here, by design.

/// `last_boxed_only_string` + `remove_boxed` (verl variant: a `\boxed ` space form anywhere in
/// the text wins). `None` when there is no box or it is unbalanced.
pub fn last_boxed(s: &str) -> Option<String> {
    if s.contains("\\boxed ") {
        let tail = s.rsplit("\\boxed ").next()?;
        return Some(tail.split('$').next().unwrap_or("").to_string());
    }
    let idx = s.rfind("\\boxed").or_else(|| s.rfind("\\fbox"))?;
    let mut depth = 0i32;
    for (i, c) in s[idx..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let boxed = &s[idx..idx + i + 1];
                    let open = boxed.find('{')?;
                    return Some(boxed[open + 1..boxed.len() - 1].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// `strip_string`; `None` where the Python raises (two `\text{ ` units, malformed fractions),
/// in which case `is_equiv` compares the raw strings.
pub fn strip_string(s: &str) -> Option<String> {
    let mut s = s
        .replace('\n', "")
        .replace("\\!", "")
        .replace("\\\\", "\\")
        .replace("tfrac", "frac")
        .replace("dfrac", "frac")
        .replace("\\left", "")
        .replace("\\right", "")
        .replace("^{\\circ}", "")
        .replace("^\\circ", "")
        .replace("\\$", "");
    // Units on the right: `\text{ ` must occur exactly once (the Python asserts).
    let parts: Vec<&str> = s.split("\\text{ ").collect();
    if parts.len() == 2 {
        s = parts[0].to_string();
    } else if parts.len() > 2 {
        return None;
    }
    // Both Python replaces remove the two characters `\%`; a bare `%` stays.
    s = s.replace("\\%", "");
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    if s.is_empty() {
        return Some(s);
    }
    if s.starts_with('.') {
        s = format!("0{s}");
    }
    let eq: Vec<&str> = s.split('=').collect();
    if eq.len() == 2 && eq[0].chars().count() <= 2 {
        s = eq[1].to_string();
    }
    s = fix_sqrt(&s);
    s = s.replace(' ', "");
    s = fix_fracs(&s)?;
    if s == "0.5" {
        s = "\\frac{1}{2}".into();
    }
    Some(fix_a_slash_b(&s))
}

fn fix_sqrt(s: &str) -> String {
    if !s.contains("\\sqrt") {
        return s.to_string();
    }
    let mut parts = s.split("\\sqrt");
    let mut out = parts.next().unwrap_or("").to_string();
    for split in parts {
        match split.chars().next() {
            Some(c) if c != '{' => {
                let rest = &split[c.len_utf8()..];
                out.push_str(&format!("\\sqrt{{{c}}}{rest}"));
            }
            _ => out.push_str(&format!("\\sqrt{split}")),
        }
    }
    out
}

fn fix_fracs(s: &str) -> Option<String> {
    let mut subs = s.split("\\frac");
    let mut out = subs.next().unwrap_or("").to_string();
    for sub in subs {
        out.push_str("\\frac");
        if sub.starts_with('{') {
            out.push_str(sub);
            continue;
        }
        let chars: Vec<char> = sub.chars().collect();
        if chars.len() < 2 {
            return None;
        }
        let (a, b) = (chars[0], chars[1]);
        let rest: String = chars[2..].iter().collect();
        if b != '{' {
            out.push_str(&format!("{{{a}}}{{{b}}}{rest}"));
        } else {
            out.push_str(&format!("{{{a}}}{b}{rest}"));
        }
    }
    Some(out)
}

fn fix_a_slash_b(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != 2 {
        return s.to_string();
    }
    let is_int = |t: &str| t.parse::<i64>().is_ok_and(|v| v.to_string() == t);
    if is_int(parts[0]) && is_int(parts[1]) {
        format!("\\frac{{{}}}{{{}}}", parts[0], parts[1])
    } else {
        s.to_string()
    }
}

/// `is_equiv(a, b)`: equal after `strip_string`, or equal raw strings when stripping fails.
pub fn is_equiv(a: &str, b: &str) -> bool {
    match (strip_string(a), strip_string(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hendrycks/math @ 5f3bf91 `modeling/math_equivalence_test.py`, every test of `TestIsEquiv`
    /// (Python string literals unescaped).
    #[test]
    fn upstream_math_equivalence_test() {
        let cases: &[(&str, &str, &str, bool)] = &[
            (
                "test_fractions",
                "\\tfrac{1}{2} + \\frac1{72}",
                "\\\\frac{1}{2} + 2/3",
                false,
            ),
            ("test_order", "10, 4, -2", "4, 10, -2", false),
            ("test_order2", "10, 4, 2", "4, 12, 2", false),
            (
                "test_dfrac",
                "\\tfrac{1}{2} +\\! \\frac1{72}",
                "\\\\dfrac{1}{2} +\\frac{1}{72}",
                true,
            ),
            ("test_units", "10\\text{ units}", "10 ", true),
            ("test_units2", "10\\text{ units}", "100 ", false),
            ("test_dollars", "10", "\\$10", true),
            (
                "test_parentheses",
                "\\left(x-2\\right)\\left(x+2\\right)",
                "(x-2)(x+2)",
                true,
            ),
            ("test_decimals", "0.1, 4, 2", "4, .1, 2", false),
            ("test_decimals2", "0.1", ".1", true),
            ("test_percentage", "10\\%", "10", true),
            (
                "test_sqrt",
                "10\\sqrt{3} + \\sqrt4",
                "10\\sqrt3 + \\sqrt{4}",
                true,
            ),
            ("test_frac", "\\frac34i", "\\frac{3}{4}i", true),
            ("test_tfrac", "\\tfrac83", "\\frac{8}{3}", true),
            (
                "test_expression",
                "5x - 7y + 11z + 4 = 0",
                "x + y - z + 2 = 0",
                false,
            ),
            ("test_half", "1/2", "\\frac{1}{2}", true),
        ];
        for (name, a, b, want) in cases {
            assert_eq!(is_equiv(a, b), *want, "{name}: {a} vs {b}");
        }
    }

    #[test]
    fn boxed_forms() {
        assert_eq!(
            last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}}").unwrap(),
            "\\frac{1}{2}"
        );
        assert_eq!(last_boxed("\\fbox{7}").unwrap(), "7");
        assert_eq!(last_boxed("so \\boxed 5$ done").unwrap(), "5");
        assert_eq!(last_boxed("\\boxed{open"), None);
    }
}
