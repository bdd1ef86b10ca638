//! Extracting a final answer from a completion and comparing it with a gold answer
//! (`answer-checking.md`): the last `\boxed{}`/`\fbox{}` (nested braces), "the answer is …",
//! GSM8K `#### N`, else the last number. Comparison is numeric when both sides parse as numbers
//! (integers, decimals, thousands separators, `$`, `%`, `a/b`, `\frac{a}{b}`), else on a
//! normalised string.

/// Content of the last `\boxed{…}` or `\fbox{…}`, with nested braces; `None` if absent or
/// unbalanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = ["\\boxed{", "\\fbox{"]
        .iter()
        .filter_map(|m| text.rfind(m).map(|i| (i, m.len())))
        .max_by_key(|&(i, _)| i)?;
    let body = &text[start.0 + start.1..];
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(body[..i].trim().to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// The final answer of a completion, by the first rule that applies: last boxed, "the answer
/// is …", `#### …`, last number.
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some(b) = last_boxed(text) {
        return Some(b);
    }
    let lower = text.to_lowercase();
    for phrase in ["the answer is", "the final answer is", "answer:"] {
        if let Some(i) = lower.rfind(phrase) {
            let tail = text[i + phrase.len()..].trim_start_matches([':', ' ', '$']);
            let ans: String = tail
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .trim_end_matches(['.', '$'])
                .to_string();
            if !ans.is_empty() {
                return Some(ans);
            }
        }
    }
    if let Some(i) = text.rfind("####") {
        let ans = text[i + 4..]
            .trim()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if !ans.is_empty() {
            return Some(ans);
        }
    }
    last_number(text)
}

/// The last number in `text` (with sign, thousands separators and decimals).
pub fn last_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut end = chars.len();
    while end > 0 {
        if chars[end - 1].is_ascii_digit() {
            let mut start = end;
            while start > 0
                && (chars[start - 1].is_ascii_digit() || matches!(chars[start - 1], '.' | ','))
            {
                start -= 1;
            }
            if start > 0 && chars[start - 1] == '-' {
                start -= 1;
            }
            let s: String = chars[start..end].iter().collect();
            return Some(s.trim_start_matches([',', '.']).to_string());
        }
        end -= 1;
    }
    None
}

/// A number written in one of the common forms, as f64.
pub fn parse_number(s: &str) -> Option<f64> {
    let mut t = s
        .trim()
        .replace("\\!", "")
        .replace("\\,", "")
        .replace(['$', ' '], "");
    t = t.trim_end_matches('.').to_string();
    if let Some(inner) = t.strip_prefix("\\text{").and_then(|x| x.strip_suffix('}')) {
        t = inner.to_string();
    }
    let pct = t.ends_with("\\%") || t.ends_with('%');
    let t = t.trim_end_matches('%').trim_end_matches('\\');
    let value = if let Some(rest) = t
        .strip_prefix("\\frac")
        .or_else(|| t.strip_prefix("\\dfrac"))
        .or_else(|| t.strip_prefix("\\tfrac"))
    {
        let (a, b) = split_frac(rest)?;
        parse_plain(&a)? / parse_plain(&b)?
    } else if let Some((a, b)) = t.split_once('/') {
        parse_plain(a)? / parse_plain(b)?
    } else {
        parse_plain(t)?
    };
    Some(if pct { value / 100.0 } else { value })
}

fn parse_plain(s: &str) -> Option<f64> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    // Thousands separators only in the 1,234,567 shape.
    let cleaned = if s.contains(',') {
        let parts: Vec<&str> = s.trim_start_matches('-').split(',').collect();
        let ok = parts[0].len() <= 3
            && parts[1..]
                .iter()
                .all(|p| p.len() == 3 || (p.len() > 3 && p.as_bytes()[3] == b'.'));
        if !ok {
            return None;
        }
        s.replace(',', "")
    } else {
        s.to_string()
    };
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `{a}{b}` or the malformed `12` (`\frac12`) → (a, b).
fn split_frac(rest: &str) -> Option<(String, String)> {
    if let Some(body) = rest.strip_prefix('{') {
        let close = body.find('}')?;
        let a = &body[..close];
        let tail = body[close + 1..].trim_start();
        let b = tail.strip_prefix('{')?.strip_suffix('}')?;
        return Some((a.to_string(), b.to_string()));
    }
    let digits: Vec<char> = rest.chars().collect();
    if digits.len() == 2 && digits.iter().all(|c| c.is_ascii_digit()) {
        return Some((digits[0].to_string(), digits[1].to_string()));
    }
    None
}

/// A string form for non-numeric comparison: no spaces, `$`, `\left`/`\right`, `\text{}`,
/// trailing period; `x =` prefix removed.
pub fn normalize(s: &str) -> String {
    let mut t = s
        .replace("\\left", "")
        .replace("\\right", "")
        .replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac")
        .replace(['$', ' '], "");
    while let Some(i) = t.find("\\text{") {
        let Some(close) = t[i..].find('}') else { break };
        let inner = t[i + 6..i + close].to_string();
        t.replace_range(i..i + close + 1, &inner);
    }
    if let Some((lhs, rhs)) = t.split_once('=') {
        if lhs.len() <= 2 && lhs.chars().all(|c| c.is_alphabetic()) {
            t = rhs.to_string();
        }
    }
    t.trim_end_matches('.').to_string()
}

/// Whether `prediction` (already extracted) equals `gold`: numerically when both parse, else by
/// normalised string. `None` when the prediction is empty.
pub fn answers_match(prediction: &str, gold: &str) -> Option<bool> {
    if prediction.trim().is_empty() {
        return None;
    }
    match (
        parse_number(&normalize(prediction)),
        parse_number(&normalize(gold)),
    ) {
        (Some(a), Some(b)) => Some((a - b).abs() <= 1e-6 * b.abs().max(1.0)),
        _ => Some(normalize(prediction) == normalize(gold)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_extraction_handles_nesting_and_takes_the_last() {
        assert_eq!(
            last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}").unwrap(),
            "\\frac{1}{2}"
        );
        assert_eq!(last_boxed("\\fbox{7}").unwrap(), "7");
        assert_eq!(last_boxed("\\boxed{unclosed"), None);
    }

    #[test]
    fn extraction_rules_in_order() {
        assert_eq!(extract_answer("3 + 4 = 7. The answer is 7.").unwrap(), "7");
        assert_eq!(extract_answer("blah\n#### 1,234").unwrap(), "1,234");
        assert_eq!(extract_answer("I got 12 then -3.5").unwrap(), "-3.5");
        assert_eq!(extract_answer("no numbers"), None);
    }

    #[test]
    fn numeric_forms_compare_equal() {
        for (p, g) in [
            ("1,000", "1000"),
            ("$18", "18"),
            ("0.5", "\\frac{1}{2}"),
            ("\\frac12", "0.5"),
            ("3/4", "0.75"),
            ("50\\%", "0.5"),
            ("x = 5", "5"),
            ("\\text{5}", "5"),
            ("7.", "7"),
        ] {
            assert_eq!(answers_match(p, g), Some(true), "{p} vs {g}");
        }
        assert_eq!(answers_match("12", "13"), Some(false));
        assert_eq!(
            answers_match("1,00", "100"),
            Some(false),
            "not a thousands separator"
        );
        assert_eq!(answers_match("", "1"), None);
    }
}
