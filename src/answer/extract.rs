//! Finding the final answer in a completion (`answer-checking.md` §1–2), math-verify style: a
//! short answer is taken whole; else the last `\boxed{}`/`\fbox{}`, a "final answer is …" /
//! "answer is …" / "answer: …" phrase, a GSM8K `#### N`, and finally the rightmost LaTeX
//! environment (`$…$`, `$$…$$`, `\(…\)`, `\[…\]`) or number that parses.

use std::sync::LazyLock;

use regex::Regex;

use super::normalize::normalize;
use super::shape::parse_shape;

/// A number as math-verify's plain-expression extraction reads it: thousands separators (`,` or
/// space), decimal point or comma, leading-dot decimals; preceded by a non-word character.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^A-Za-z0-9_.,/\\])(-?(?:\d+\s?/\s?\d+|[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?|[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+))",
    )
    .expect("valid regex")
});

/// LaTeX math environments; `\$` inside `$…$` does not close it.
static ENV: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\((.+?)\\\)|\$((?:[^$\n\\]|\\.)+?)\$")
        .expect("valid regex")
});

/// LaTeX values written outside a math environment: `\frac{58}{2}`, `2\sqrt{3}`.
static LATEX_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-?\d*\\(?:[dt]?frac\{[^{}]*\}\{[^{}]*\}|sqrt\{[^{}]*\})").expect("valid regex")
});

/// The end of a sentence: a period followed by a space (not a decimal point).
static SENTENCE_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\.\s").expect("valid regex"));

static GSM8K_STRICT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"#### (\-?[0-9\.\,]+)").expect("valid regex"));
static GSM8K_FLEXIBLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\-?[0-9\.\,]+)").expect("valid regex"));

/// Content of the last `\boxed{…}`/`\fbox{…}` (balanced braces), or of a last `\boxed 5`.
/// Boxes right next to each other form one answer set: `\boxed{3}\boxed{5}` is `3, 5`.
pub fn last_boxed(text: &str) -> Option<String> {
    let last = one_box(text)?;
    let boxes = brace_boxes(text);
    let Some((mut start, end, _)) = boxes.last().cloned() else {
        return Some(last);
    };
    if text[end..].contains("\\boxed") || text[end..].contains("\\fbox") {
        return Some(last);
    }
    let mut parts = vec![last];
    for (s, e, content) in boxes.iter().rev().skip(1) {
        if !text[*e..start]
            .chars()
            .all(|c| c.is_whitespace() || c == ',')
        {
            break;
        }
        parts.push(content.clone());
        start = *s;
    }
    parts.reverse();
    Some(parts.join(", "))
}

/// Every `\boxed{…}` / `\fbox{…}` with balanced braces: (start, end, content).
fn brace_boxes(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for m in ["\\boxed{", "\\fbox{"] {
        for (start, _) in text.match_indices(m) {
            let body = &text[start + m.len()..];
            if let Some(i) = closing_brace(body) {
                let end = start + m.len() + i + 1;
                out.push((start, end, body[..i].trim().to_string()));
            }
        }
    }
    // Outermost boxes only: a box inside another (`\boxed{\boxed{3}}`) is part of it.
    out.sort_by_key(|b| b.0);
    let mut outer: Vec<(usize, usize, String)> = Vec::with_capacity(out.len());
    for b in out {
        if outer.last().is_none_or(|o| b.0 >= o.1) {
            outer.push(b);
        }
    }
    outer
}

/// Content of the last box in `text`.
fn one_box(text: &str) -> Option<String> {
    let (idx, len) = ["\\boxed", "\\fbox"]
        .iter()
        .filter_map(|m| text.rfind(m).map(|i| (i, m.len())))
        .max_by_key(|&(i, _)| i)?;
    let rest = &text[idx + len..];
    if let Some(space_form) = rest.strip_prefix(' ') {
        let ans = space_form.split(['$', '\n']).next().unwrap_or("").trim();
        return (!ans.is_empty()).then(|| ans.to_string());
    }
    let body = rest.strip_prefix('{')?;
    closing_brace(body).map(|i| body[..i].trim().to_string())
}

/// The index of the `}` that closes a group whose `{` came just before `body`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Candidates (end position, text) from math environments and numbers in `text`.
fn candidates(text: &str) -> Vec<(usize, usize, String)> {
    let mut out: Vec<(usize, usize, String)> = ENV
        .captures_iter(text)
        .filter_map(|c| {
            let m = c.get(0)?;
            let inner = (1..=4).find_map(|k| c.get(k))?;
            Some((m.start(), m.end(), inner.as_str().to_string()))
        })
        .collect();
    out.extend(NUMBER.captures_iter(text).filter_map(|c| {
        let m = c.get(1)?;
        Some((m.start(), m.end(), m.as_str().to_string()))
    }));
    // A fraction or root outside `$…$` is one value, not its numerator.
    out.extend(
        LATEX_VALUE
            .find_iter(text)
            .map(|m| (m.start(), m.end(), m.as_str().to_string())),
    );
    out
}

fn parses(s: &str) -> bool {
    parse_shape(&normalize(s)).is_some()
}

/// Short answers are read whole: no run of two letters outside LaTeX commands.
fn is_bare_answer(text: &str) -> bool {
    static COMMAND: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\\(?:text|mathrm|textbf|mathbf|mbox|textit)\{[^}]*\}|\\[A-Za-z]+")
            .expect("valid regex")
    });
    static WORDS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[A-Za-z]{2,}").expect("valid regex"));
    let stripped = COMMAND.replace_all(text, " ");
    text.len() <= 200 && !WORDS.is_match(&stripped)
}

/// The text after the last anchor phrase, searched case-insensitively.
fn after_anchor<'a>(text: &'a str, lower: &str, phrases: &[&str]) -> Option<&'a str> {
    let (i, len) = phrases
        .iter()
        .filter_map(|p| lower.rfind(p).map(|i| (i, p.len())))
        .max_by_key(|&(i, _)| i)?;
    text.get(i + len..)
}

/// The answer right after an anchor: the rest of the sentence when it is a bare answer
/// (`-(5)`, `\frac{58}{2}`; after the last " is " of a sentence such as "The smallest $k$ is
/// 12"), else its first math environment or number, else the phrase itself.
fn anchored_answer(tail: &str) -> Option<String> {
    let tail = tail.trim_start_matches([':', ' ']);
    let line = tail.split("I hope").next().unwrap_or(tail);
    let sentence = line.split(['\n']).next().unwrap_or("");
    let sentence = SENTENCE_END.split(sentence).next().unwrap_or("").trim();
    // "The smallest $k$ is 12": the value after " is ", unless what comes before it already
    // holds a number ("$12$, since $n$ is 4", "12 when n is 4").
    let stated = match sentence.rsplit_once(" is ") {
        Some((before, after)) if !before.contains(|c: char| c.is_ascii_digit()) => after,
        Some(_) => "",
        None => sentence,
    }
    .trim();
    let stated = stated.trim_end_matches('.').trim();
    if !stated.is_empty() && !stated.contains('$') && is_bare_answer(stated) && parses(stated) {
        return Some(stated.to_string());
    }
    let mut c = candidates(line);
    c.sort_by_key(|&(start, _, _)| start);
    if let Some((_, _, s)) = c.into_iter().find(|(_, _, s)| parses(s)) {
        return Some(s);
    }
    let phrase = line
        .split(['\n'])
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.');
    (!phrase.is_empty() && phrase.len() <= 100).then(|| phrase.to_string())
}

/// The final answer of a completion (math mode).
pub fn extract_math(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if !text.contains("\\boxed") && is_bare_answer(text) && parses(text) {
        return Some(text.to_string());
    }
    if let Some(b) = last_boxed(text) {
        return Some(b);
    }
    let lower = text.to_lowercase();
    for phrases in [
        &["final answer is"][..],
        &["answer is", "answer:"][..],
        &["####"][..],
    ] {
        if let Some(ans) = after_anchor(text, &lower, phrases).and_then(anchored_answer) {
            return Some(ans);
        }
    }
    let mut c = candidates(text);
    c.sort_by_key(|&(start, end, _)| (std::cmp::Reverse(end), start));
    c.into_iter().map(|(_, _, s)| s).find(|s| parses(s))
}

/// A gold answer field: boxed content, the part after `####`, a lone `$…$`, else as written.
pub fn extract_gold_math(gold: &str) -> Option<String> {
    let g = gold.trim();
    if g.is_empty() {
        return None;
    }
    if let Some(b) = last_boxed(g) {
        return Some(b);
    }
    if let Some((_, after)) = g.rsplit_once("####") {
        return Some(after.trim().to_string());
    }
    if is_bare_answer(g) || !g.contains(' ') || parses(g) {
        return Some(g.to_string());
    }
    extract_math(g)
}

/// GSM8K gold: `answer.split("####")[-1].strip().replace(",", "")`.
pub fn gsm8k_gold(answer: &str) -> Option<String> {
    let g = answer.rsplit("####").next()?.trim().replace(',', "");
    (!g.is_empty()).then_some(g)
}

/// GSM8K prediction: the last `#### N` (verl strict), else the last number (verl flexible),
/// commas and `$` removed, a trailing `.` dropped.
pub fn gsm8k_prediction(text: &str) -> Option<String> {
    // LaTeX thousands separators (`9{,}500`, `45,\!210`) are commas.
    let text = &text.replace("{,}", ",").replace(",\\!", ",");
    let raw = GSM8K_STRICT
        .captures_iter(text)
        .last()
        .and_then(|c| c.get(1))
        .or_else(|| {
            GSM8K_FLEXIBLE
                .captures_iter(text)
                .filter_map(|c| c.get(1))
                .filter(|m| !matches!(m.as_str(), "" | "." | "," | "-"))
                .last()
        })?
        .as_str();
    let s = raw
        .replace([',', '$'], "")
        .trim_end_matches('.')
        .to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_and_numbers_before_is() {
        assert_eq!(extract_math("\\boxed{\\boxed{3}}").unwrap(), "3");
        assert_eq!(
            extract_math("\\fbox{x \\boxed{2}} and \\boxed{5}").unwrap(),
            "5"
        );
        assert_eq!(
            extract_math("So the answer is $12$, since $n$ is 4.").unwrap(),
            "12"
        );
        assert_eq!(
            extract_math("The final answer is 12 when n is 4.").unwrap(),
            "12"
        );
        assert_eq!(
            extract_math("Final Answer: The smallest $k$ is 12.").unwrap(),
            "12"
        );
    }

    #[test]
    fn extraction_order() {
        assert_eq!(
            extract_math("so \\boxed{1} then \\boxed{\\frac{1}{2}}").unwrap(),
            "\\frac{1}{2}"
        );
        assert_eq!(extract_math("3 + 4 = 7. The answer is 7.").unwrap(), "7");
        assert_eq!(extract_math("blah\n#### 1,234").unwrap(), "1,234");
        assert_eq!(extract_math("I got 12 then -3.5").unwrap(), "-3.5");
        assert_eq!(extract_math("AZYUK2A"), None);
        assert_eq!(extract_math("no numbers here"), None);
        assert_eq!(extract_math("\\frac{10}{9}").unwrap(), "\\frac{10}{9}");
        assert_eq!(
            extract_math("The final answer is $28 \\%$. I hope it is correct.").unwrap(),
            "28 \\%"
        );
    }

    #[test]
    fn gsm8k_rules() {
        assert_eq!(gsm8k_gold("so\n#### 1,450,000").unwrap(), "1450000");
        assert_eq!(gsm8k_prediction("#### 5 then #### 7").unwrap(), "7");
        assert_eq!(gsm8k_prediction("costs $1,200.").unwrap(), "1200");
        assert_eq!(gsm8k_prediction("none"), None);
    }
}
