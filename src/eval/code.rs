//! Code benchmarks judged by running code (issue 21). CRUXEval-O (spec §10, paper App. B.4):
//! the model sees a Python function and an input and predicts the output, answering in a JSON
//! object `{"reasoning": …, "answer": …}` (ZeroEval's protocol); the prediction is right when
//! `assert f(<input>) == <answer>` passes when run with the item's code in the
//! [`Sandbox`], as the official harness checks it (so Python decides: `[1, 2]` equals
//! `[1,2]`, `(1, 2)` does not).

use crate::data::code::CodeTask;
use crate::sandbox::{Sandbox, Status};

/// The predicted output in a completion: the `answer` of the last JSON object that has one (a
/// string is the Python literal itself; a number, list, boolean or null is read as JSON), else
/// the right side of `assert f(…) == X` inside `[ANSWER] … [/ANSWER]` (the original CRUXEval
/// format). `Err` says why nothing could be read.
pub fn extract_output(text: &str) -> Result<String, String> {
    for (start, _) in text
        .match_indices('{')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let mut de = serde_json::Deserializer::from_str(&text[start..]).into_iter();
        if let Some(Ok(serde_json::Value::Object(obj))) = de.next() {
            if let Some(answer) = obj.get("answer") {
                return Ok(match answer {
                    serde_json::Value::String(s) => s.trim().to_string(),
                    v => json_to_python(v),
                });
            }
        }
    }
    if let Some(body) = text
        .rsplit_once("[ANSWER]")
        .map(|(_, rest)| rest.split("[/ANSWER]").next().unwrap_or(rest))
    {
        if let Some((_, rhs)) = body.rsplit_once("==") {
            return Ok(rhs.trim().to_string());
        }
    }
    Err("no JSON object with an \"answer\" (nor [ANSWER] assert f(…) == …)".into())
}

/// A JSON value as the Python literal of the same value.
fn json_to_python(v: &serde_json::Value) -> String {
    use serde_json::Value::*;
    match v {
        Null => "None".into(),
        Bool(b) => if *b { "True" } else { "False" }.into(),
        Number(n) => n.to_string(),
        String(s) => format!("{s:?}"),
        Array(a) => format!(
            "[{}]",
            a.iter().map(json_to_python).collect::<Vec<_>>().join(", ")
        ),
        Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{k:?}: {}", json_to_python(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a predicted output as a Python value: only literals (numbers, strings, bytes,
/// `True`/`False`/`None`, tuples, lists, sets, dicts, unary minus, complex sums) and `set()`,
/// `frozenset(…)`, `float(…)` of literals; anything else, such as calling `f`, is refused
/// (the official harness would run it).
const READ_ANSWER: &str = r#"
import ast as _ast
def _read_answer(src):
    tree = _ast.parse(src.strip(), mode="eval")
    allowed = (_ast.Expression, _ast.Constant, _ast.Tuple, _ast.List, _ast.Set, _ast.Dict,
               _ast.UnaryOp, _ast.USub, _ast.UAdd, _ast.BinOp, _ast.Add, _ast.Sub, _ast.Load)
    for node in _ast.walk(tree):
        if isinstance(node, _ast.Call):
            if not (isinstance(node.func, _ast.Name) and node.func.id in ("set", "frozenset", "float")
                    and not node.keywords):
                raise ValueError("the answer is not a literal")
        elif isinstance(node, _ast.Name):
            if node.id not in ("set", "frozenset", "float"):
                raise ValueError("the answer is not a literal")
        elif not isinstance(node, allowed):
            raise ValueError("the answer is not a literal")
    return eval(compile(tree, "<answer>", "eval"),
                {"__builtins__": {"set": set, "frozenset": frozenset, "float": float}})
"#;

/// Whether `answer` is `task`'s output, run in `sandbox`; the reason when it is not (a wrong
/// output, an answer that is not a literal, a timeout…).
pub fn judge(task: &CodeTask, answer: &str, sandbox: &Sandbox) -> anyhow::Result<(bool, String)> {
    let CodeTask::OutputPrediction { code, input } = task;
    // The answer goes in as a string (JSON string syntax is Python's), read as a literal.
    let src = serde_json::to_string(answer)?;
    let program = format!(
        "{code}\n{READ_ANSWER}\n_answer = _read_answer({src})\nassert f({input}) == _answer\n"
    );
    let out = sandbox.run(&program)?;
    Ok(match out.status {
        Status::Passed => (true, "passed".into()),
        Status::Error(reason) if reason.starts_with("AssertionError") => {
            (false, "wrong output".into())
        }
        Status::Error(reason) => (false, format!("error: {reason}")),
        Status::Timeout => (false, "timeout".into()),
        Status::Memory => (false, "memory".into()),
        Status::FileSize => (false, "file size".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::extract_output;

    #[test]
    fn answers_are_read_from_json_or_the_original_format() {
        let cases = [
            (
                r#"{"reasoning": "count", "answer": "[(4, 1), (2, 3)]"}"#,
                "[(4, 1), (2, 3)]",
            ),
            (r#"Sure. {"reasoning": "x", "answer": 7} done"#, "7"),
            (
                r#"{"reasoning": "a {b}", "answer": [1, true, null]}"#,
                "[1, True, None]",
            ),
            (r#"{"answer": "'abc'"} then {"answer": "'xyz'"}"#, "'xyz'"),
            ("[ANSWER] assert f([1]) == [1, 2] [/ANSWER]", "[1, 2]"),
        ];
        for (text, want) in cases {
            assert_eq!(extract_output(text).as_deref(), Ok(want), "{text}");
        }
        assert!(extract_output("I think it is 5.").is_err());
        assert!(extract_output(r#"{"reasoning": "no answer key"}"#).is_err());
    }
}
