//! Judging code completions by running them in the [`Sandbox`] (issue 21), for the code
//! benchmarks and the code rewards.
//!
//! - CRUXEval-O (spec §10, paper App. B.4): the model sees a Python function and an input and
//!   predicts the output, answering in a JSON object `{"reasoning": …, "answer": …}` (ZeroEval's
//!   protocol); the prediction is right when `assert f(<input>) == <answer>` passes with the
//!   item's code, as the official harness checks it (so Python decides: `[1, 2]` equals
//!   `[1,2]`, `(1, 2)` does not).
//! - HumanEval: the model writes the function; its code is the fenced block that defines the
//!   entry point (else the last block, else the raw text as a continuation of the stub, as
//!   evalplus sanitises), and `stub + code + test + check(entry_point)` must run to the end.
//! - MBPP and assert tests: the code, then the setup, then every assert.
//! - Standard-input cases (code_contests): the program runs once per case and must print the
//!   expected tokens.
//!
//! [`tests_passed`] counts the tests a program passes, one run per test (the `code_tests`
//! reward); [`par_map`] runs many judgements at once.

use crate::data::code::{CodeTask, IoCase};
use crate::sandbox::{Sandbox, Status};

/// What a completion answers to `task`: the predicted output, or the program; `Err` says why
/// nothing could be read.
pub fn answer_of(task: &CodeTask, text: &str) -> Result<String, String> {
    match task {
        CodeTask::OutputPrediction { .. } => extract_output(text),
        CodeTask::Function { entry_point, .. } | CodeTask::Tests { entry_point, .. } => {
            extract_program(text, entry_point)
        }
        CodeTask::StdinStdout { .. } => extract_program(text, ""),
    }
}

/// The code of a completion that writes a function: the fenced block defining `entry_point`
/// (none when it is empty), else the last block tagged `python` (or `py`), else the last
/// fenced block, else the whole text (a continuation of the stub).
pub fn extract_program(text: &str, entry_point: &str) -> Result<String, String> {
    let blocks = fenced_blocks(text);
    let def = format!("def {entry_point}(");
    let code = blocks
        .iter()
        .find(|(_, b)| !entry_point.is_empty() && b.contains(&def))
        .or(blocks.iter().rev().find(|(python, _)| *python))
        .or(blocks.last())
        .map_or(text, |(_, b)| *b);
    match code.trim().is_empty() {
        true => Err("no code in the completion".into()),
        false => Ok(code.trim_matches('\n').to_string()),
    }
}

/// The fenced blocks of a completion, in order: whether the block is tagged `python` (`py`,
/// `python3`), and its code (after the info string and its line break, when there is one).
pub fn fenced_blocks(text: &str) -> Vec<(bool, &str)> {
    text.split("```")
        .skip(1)
        .step_by(2)
        .map(|b| {
            // The info string (`python`, `py`) up to the first line break.
            let first = b.lines().next().unwrap_or("");
            let python = matches!(first.trim(), "python" | "py" | "python3");
            match first.trim().chars().all(|c| c.is_ascii_alphanumeric()) {
                true => {
                    let code = b.get(first.len()..).unwrap_or("");
                    (python, code.strip_prefix('\n').unwrap_or(code))
                }
                false => (false, b),
            }
        })
        .collect()
}

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
        // JSON string syntax is Python's (Rust's `{:?}` is not: `\u{301}`).
        String(_) => v.to_string(),
        Array(a) => format!(
            "[{}]",
            a.iter().map(json_to_python).collect::<Vec<_>>().join(", ")
        ),
        Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    serde_json::Value::from(k.as_str()),
                    json_to_python(v)
                ))
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

/// Whether `answer` answers `task`, run in `sandbox`; the reason when it does not (a wrong
/// output or failed tests, an answer that is not a literal, a timeout…).
pub fn judge(task: &CodeTask, answer: &str, sandbox: &Sandbox) -> anyhow::Result<(bool, String)> {
    let (program, wrong) = match task {
        CodeTask::OutputPrediction { code, input } => {
            // The answer goes in as a string (JSON string syntax is Python's), read as a
            // literal.
            let src = serde_json::to_string(answer)?;
            let program = format!(
                "{code}\n{READ_ANSWER}\n_answer = _read_answer({src})\nassert f({input}) == _answer\n"
            );
            (program, "wrong output")
        }
        CodeTask::Function {
            prompt,
            test,
            entry_point,
        } => {
            // A whole function redefines the stub's (whose imports it keeps); a body continues
            // it.
            let program = match answer.contains(&format!("def {entry_point}(")) {
                true => format!("{prompt}    pass\n\n{answer}\n\n{test}\n\ncheck({entry_point})\n"),
                false => format!("{prompt}{answer}\n\n{test}\n\ncheck({entry_point})\n"),
            };
            (program, "failed tests")
        }
        CodeTask::Tests { setup, tests, .. } => {
            let program = format!("{answer}\n\n{setup}\n{}\n", tests.join("\n"));
            (program, "failed tests")
        }
        CodeTask::StdinStdout { cases } => {
            for (k, case) in cases.iter().enumerate() {
                let (right, why) = run_case(answer, case, sandbox)?;
                if !right {
                    return Ok((false, format!("case {}: {why}", k + 1)));
                }
            }
            return Ok((true, "passed".into()));
        }
    };
    let out = sandbox.run(&program)?;
    Ok(match out.status {
        Status::Passed => (true, "passed".into()),
        Status::Error(reason) if reason.starts_with("AssertionError") => (false, wrong.into()),
        status => (false, failure(status)),
    })
}

/// Why a run that did not pass failed, in the words of the reports.
fn failure(status: Status) -> String {
    match status {
        Status::Passed => "passed".into(),
        Status::Error(reason) => format!("error: {reason}"),
        Status::Timeout => "timeout".into(),
        Status::Memory => "memory".into(),
        Status::FileSize => "file size".into(),
    }
}

/// Runs `program` on one standard-input case: right when it exits normally and prints the
/// expected whitespace-separated tokens (the usual competitive-programming checker; trailing
/// spaces and blank lines do not matter).
fn run_case(program: &str, case: &IoCase, sandbox: &Sandbox) -> anyhow::Result<(bool, String)> {
    // Room for the expected output, however long, and then some: a longer output is wrong
    // whatever its head says.
    let mut sandbox = sandbox.clone();
    let room = 2 * case.output.len() + 4096;
    sandbox.limits.output_bytes = sandbox.limits.output_bytes.max(room);
    let out = sandbox.run_with_input(program, &case.input)?;
    Ok(match out.status {
        Status::Passed
            if out
                .stdout
                .split_whitespace()
                .eq(case.output.split_whitespace()) =>
        {
            (true, "passed".into())
        }
        Status::Passed => (false, "wrong answer".into()),
        status => (false, failure(status)),
    })
}

/// Counts the tests `program` passes, for the `code_tests` rewards: `(passed, total)`, each
/// test in a run of its own ([`judge`] of the program with that one test), so a program cannot
/// touch another test's verdict nor the count.
/// - Assert tests (MBPP): the program, the setup, then the one assert.
/// - Standard-input cases: the program on the case's input.
/// - HumanEval functions and CRUXEval outputs are one test each.
///
/// As in [`judge`] (and the official harnesses, which trust the exit status), a program that
/// reads the run's pass marker out of its own code object and prints it can still fake a pass.
pub fn tests_passed(
    task: &CodeTask,
    program: &str,
    sandbox: &Sandbox,
) -> anyhow::Result<(usize, usize)> {
    match task {
        CodeTask::Tests {
            setup,
            tests,
            entry_point,
        } => {
            let mut passed = 0;
            for test in tests {
                let one = CodeTask::Tests {
                    setup: setup.clone(),
                    tests: vec![test.clone()],
                    entry_point: entry_point.clone(),
                };
                passed += usize::from(judge(&one, program, sandbox)?.0);
            }
            Ok((passed, tests.len()))
        }
        CodeTask::StdinStdout { cases } => {
            let mut passed = 0;
            for case in cases {
                passed += usize::from(run_case(program, case, sandbox)?.0);
            }
            Ok((passed, cases.len()))
        }
        CodeTask::Function { .. } | CodeTask::OutputPrediction { .. } => {
            Ok((usize::from(judge(task, program, sandbox)?.0), 1))
        }
    }
}

/// Which of `blocks` parse as Python (`ast.parse`, in the sandbox: one run for all of them;
/// when that run fails, say on a block that exhausts the parser, each block alone, a failure
/// counting as not parsing). Errors only when the sandbox cannot run.
pub fn parses(blocks: &[String], sandbox: &Sandbox) -> anyhow::Result<Vec<bool>> {
    match parse_all(blocks, sandbox)? {
        Some(ok) => Ok(ok),
        None if blocks.len() == 1 => Ok(vec![false]),
        None => blocks
            .iter()
            .map(|b| Ok(parse_all(std::slice::from_ref(b), sandbox)? == Some(vec![true])))
            .collect(),
    }
}

/// One sandboxed `ast.parse` run over `blocks`; `None` when the run did not end normally.
fn parse_all(blocks: &[String], sandbox: &Sandbox) -> anyhow::Result<Option<Vec<bool>>> {
    if blocks.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let literals = serde_json::to_string(blocks)?;
    let program = format!(
        "import ast, json\nok = []\nfor b in json.loads({}):\n    try:\n        ast.parse(b)\n        \
         ok.append(1)\n    except BaseException:\n        ok.append(0)\nprint(''.join(map(str, ok)))\n",
        serde_json::to_string(&literals)?
    );
    let out = sandbox.run(&program)?;
    let line = out.stdout.trim();
    Ok((out.passed() && line.len() == blocks.len())
        .then(|| line.chars().map(|c| c == '1').collect()))
}

/// `f` over `items` on up to `jobs` threads (a pool of its own, so that sandboxed runs, which
/// mostly wait on their process, overlap), results in order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync + Send,
) -> anyhow::Result<Vec<R>> {
    use rayon::prelude::*;
    if jobs <= 1 || items.len() <= 1 {
        return Ok(items.iter().map(f).collect());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.min(items.len()))
        .build()?;
    Ok(pool.install(|| items.par_iter().map(f).collect()))
}

#[cfg(test)]
mod tests {
    use super::{extract_output, extract_program};

    #[test]
    fn programs_are_the_block_defining_the_entry_point() {
        let text = "Here:\n```python\nimport math\n```\nand\n```python\ndef g(x):\n    return x\n```\n```\nprint(1)\n```";
        assert_eq!(
            extract_program(text, "g").as_deref(),
            Ok("def g(x):\n    return x")
        );
        // No block defines `h`: the last python block, then the last block of any kind.
        assert_eq!(
            extract_program(text, "h").as_deref(),
            Ok("def g(x):\n    return x")
        );
        assert_eq!(
            extract_program("```\nprint(1)\n```\n```text\n1\n```", "h").as_deref(),
            Ok("1")
        );
        assert_eq!(
            extract_program("    return x + 1\n", "g").as_deref(),
            Ok("    return x + 1")
        );
        assert!(extract_program("```python\n```", "g").is_err());
    }

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
            (
                r#"{"answer": {"k": ["e\u0301", "a\"b"]}}"#,
                "{\"k\": [\"e\u{301}\", \"a\\\"b\"]}",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(extract_output(text).as_deref(), Ok(want), "{text}");
        }
        assert!(extract_output("I think it is 5.").is_err());
        assert!(extract_output(r#"{"reasoning": "no answer key"}"#).is_err());
    }
}
