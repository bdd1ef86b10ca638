//! Code problems (issue 21): what running code needs to judge a completion, the CRUXEval,
//! HumanEval and MBPP loaders with their prompts, the paper's code training templates, and
//! tests read from a dataset field. Judging is [`crate::code_check`].

use std::path::Path;

use super::{DataError, Problem, Record};

/// What running code needs to judge a completion of a [`Problem`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeTask {
    /// CRUXEval-O: the output of `f(input)` for the function `code`.
    OutputPrediction { code: String, input: String },
    /// MBPP: a program to write from a statement, checked by `setup` then the `tests`
    /// (assert statements); `entry_point` is the function the first test calls.
    Tests {
        setup: String,
        tests: Vec<String>,
        entry_point: String,
    },
    /// HumanEval: a function to write from its signature and docstring (`prompt`), checked by
    /// `test` (which defines `check(candidate)`) called on `entry_point`.
    Function {
        prompt: String,
        test: String,
        entry_point: String,
    },
    /// Competitive programming (code_contests, Codeforces): a program reading standard input,
    /// run once per case; it passes a case when its output has the expected whitespace-separated
    /// tokens.
    StdinStdout { cases: Vec<IoCase> },
}

/// One standard-input case of a [`CodeTask::StdinStdout`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IoCase {
    pub input: String,
    pub output: String,
}

/// The paper's four prompt templates for code training (spec §5; Intuitor
/// `scripts/code_process.py`, which picks one at random per problem), each wrapping a problem
/// statement (`{description}`) and ending with a fenced stub.
pub const CODE_TEMPLATES: [&str; 4] = [
    "You are an expert Python programmer. You will be given a question (problem specification) \
     and will generate a correct Python program that meets the requirements and passes all \
     tests. Do not include any explanations or outputs; return only the final code.\n\n\
     ### Question:\n{description}\n\n### Answer:\n```python\n# Your code here\n```",
    "Solve the following problem by writing a correct and efficient Python program. The output \
     should be just the code solution.\n\nProblem:\n{description}\n\nSolution (in Python \
     code):\n```python\n# Your code here\n```",
    "Write a Python function or program that fulfills the task described below. Ensure the \
     solution is correct and handles all edge cases. Provide only the code as output.\n\n\
     Task Description:\n{description}\n\nComplete Solution:\n```python\n# Your code here\n```",
    "{description}\n\nProvide a Python program that solves the above problem. Output only the \
     code, nothing else:\n```python\n# Your code here\n```",
];

/// How training prompts are worded (`prompt_template`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptTemplate {
    /// The record's prompt as it is.
    None,
    /// The statement inside one of [`CODE_TEMPLATES`], chosen per problem.
    Code,
}

impl PromptTemplate {
    /// `problem`'s prompt worded by this template; the code template is
    /// `CODE_TEMPLATES[pick % 4]` (the caller draws `pick` per problem). A problem given as a
    /// `messages` list cannot be templated: `Err` says so.
    pub fn apply(self, problem: &mut Problem, pick: u64) -> Result<(), String> {
        match (self, &mut problem.prompt) {
            (Self::None, _) => Ok(()),
            (Self::Code, Some(prompt)) => {
                *prompt = code_prompt(prompt, (pick % CODE_TEMPLATES.len() as u64) as usize);
                Ok(())
            }
            (Self::Code, None) => Err(format!(
                "problem {}: prompt_template = \"code\" needs a plain prompt, not a messages list",
                problem.id
            )),
        }
    }
}

/// `description` (trimmed, as S1 strips it) in the code template `CODE_TEMPLATES[k % 4]`.
pub fn code_prompt(description: &str, k: usize) -> String {
    CODE_TEMPLATES[k % CODE_TEMPLATES.len()].replace("{description}", description.trim())
}

/// The function a test such as `assert name(…) == …` calls (empty when it calls none).
pub fn entry_point_of(test: &str) -> String {
    test.trim_start()
        .trim_start_matches("assert")
        .trim_start()
        .trim_start_matches("not ")
        .trim_start()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
        .to_string()
}

/// Reads a record's tests (`tests_field`): a list of assert statements (MBPP's `test_list`), a
/// list of `{"input", "output"}` cases, code_contests' `{"input": […], "output": […]}`, or
/// open-r1's `{"test_cases": [{"input", "output", …}]}`; any of these may also come as a JSON
/// string (a CSV or Parquet column). `Err` says what was found instead.
pub fn tests_from_json(v: &serde_json::Value) -> Result<CodeTask, String> {
    use serde_json::Value;
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{what} is not a string"))
    };
    let case = |c: &Value| -> Result<IoCase, String> {
        Ok(IoCase {
            input: text(c.get("input").unwrap_or(&Value::Null), "a case's \"input\"")?,
            output: text(
                c.get("output").unwrap_or(&Value::Null),
                "a case's \"output\"",
            )?,
        })
    };
    let cases = match v {
        Value::String(s) => {
            let inner: Value = serde_json::from_str(s)
                .map_err(|e| format!("a string that is not JSON tests ({e})"))?;
            return match inner {
                Value::String(_) => Err("a JSON string inside a JSON string".into()),
                inner => tests_from_json(&inner),
            };
        }
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let tests: Vec<String> = items
                .iter()
                .filter_map(|t| t.as_str())
                .map(String::from)
                .collect();
            let entry_point = tests.first().map(|t| entry_point_of(t)).unwrap_or_default();
            return match tests.is_empty() {
                true => Err("an empty list".into()),
                false => Ok(CodeTask::Tests {
                    setup: String::new(),
                    tests,
                    entry_point,
                }),
            };
        }
        Value::Array(items) => items.iter().map(case).collect::<Result<Vec<_>, _>>()?,
        Value::Object(o) if o.contains_key("test_cases") => {
            return tests_from_json(&o["test_cases"]);
        }
        Value::Object(o) => match (o.get("input"), o.get("output")) {
            (Some(Value::Array(ins)), Some(Value::Array(outs))) if ins.len() == outs.len() => ins
                .iter()
                .zip(outs)
                .map(|(i, o)| {
                    Ok(IoCase {
                        input: text(i, "an input")?,
                        output: text(o, "an output")?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
            _ => return Err(
                "an object without \"test_cases\" nor equal-length \"input\" and \"output\" lists"
                    .into(),
            ),
        },
        other => return Err(format!("{other}")),
    };
    match cases.is_empty() {
        true => Err("no test cases".into()),
        false => Ok(CodeTask::StdinStdout { cases }),
    }
}

/// The CRUXEval-O instruction (after ZeroEval's `crux` template): the function, the input, and
/// the JSON answer format.
pub fn cruxeval_prompt(code: &str, input: &str) -> String {
    format!(
        "## Instruction\nYou are given a Python function and an input to the function. Execute the \
         program step by step and predict the output of the function on the given input.\n\n\
         ## Code\n```python\n{code}\n```\n\n## Input\nf({input})\n\n## Output format\nAnswer in \
         JSON: {{\"reasoning\": \"<your step-by-step reasoning>\", \"answer\": \"<the output of \
         the function, as a Python literal>\"}}"
    )
}

/// The HumanEval instruction for a chat model: the stub, and the whole function asked back in
/// a fenced block (evalplus's chat protocol).
pub fn humaneval_prompt(stub: &str) -> String {
    format!(
        "Complete the following Python function. Reply with the whole function, imports \
         included, in one ```python code block.\n\n```python\n{stub}```"
    )
}

/// Reads HumanEval (`task_id`, `prompt`, `entry_point`, `canonical_solution`, `test` per
/// line) as problems whose gold answer is the canonical solution (a body to append to the
/// stub) and whose task is the stub, the tests and the entry point.
pub fn load_humaneval(path: &Path) -> Result<Vec<Problem>, DataError> {
    records(path, |rec, field| {
        let prompt = field(rec, "prompt")?;
        Ok(Problem {
            id: field(rec, "task_id")?,
            prompt: Some(humaneval_prompt(&prompt)),
            messages: None,
            answer: Some(field(rec, "canonical_solution")?),
            task: Some(CodeTask::Function {
                prompt,
                test: field(rec, "test")?,
                entry_point: field(rec, "entry_point")?,
            }),
        })
    })
}

/// The MBPP task ids of the evaluation split (google-research `mbpp/README.md`). That README
/// keeps 1–10 for few-shot prompts, 511–600 for validation and 601–974 for training; training
/// here uses all but the evaluation split (issue 21).
pub const MBPP_TEST_IDS: std::ops::RangeInclusive<u64> = 11..=510;

/// An MBPP problem's statement: Austin et al. 2021's wording, the tests included (they name
/// the function).
pub fn mbpp_statement(text: &str, tests: &[String]) -> String {
    format!(
        "You are an expert Python programmer, and here is your task: {text} Your code should \
         pass these tests:\n\n{}",
        tests.join("\n")
    )
}

/// The MBPP evaluation instruction: the statement, with the code asked for in a fenced block
/// for a chat model.
pub fn mbpp_prompt(text: &str, tests: &[String]) -> String {
    format!(
        "{}\n\nReply with the code in one ```python code block.",
        mbpp_statement(text, tests)
    )
}

/// Reads MBPP (`text`, `code`, `task_id`, `test_setup_code`, `test_list` per line), keeping
/// the task ids `keep` accepts: problems whose prompt is `prompt(text, tests)`, whose gold
/// answer is the reference code and whose task is the tests.
pub fn load_mbpp(
    path: &Path,
    keep: impl Fn(u64) -> bool,
    prompt: fn(&str, &[String]) -> String,
) -> Result<Vec<Problem>, DataError> {
    let all = records(path, |rec, field| {
        let bad = |what: &str| DataError::File {
            path: path.into(),
            message: match rec.get("task_id") {
                Some(id) => format!("task {id}: {what}"),
                None => what.to_string(),
            },
        };
        let id = rec
            .get("task_id")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| bad("field \"task_id\" is missing or not a number"))?;
        let tests: Vec<String> = rec
            .get("test_list")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .filter(|t: &Vec<String>| !t.is_empty())
            .ok_or_else(|| bad("field \"test_list\" is missing or empty"))?;
        let entry_point = entry_point_of(&tests[0]);
        Ok(Problem {
            id: format!("mbpp/{id}"),
            prompt: Some(prompt(&field(rec, "text")?, &tests)),
            messages: None,
            answer: Some(field(rec, "code")?),
            task: Some(CodeTask::Tests {
                setup: field(rec, "test_setup_code").unwrap_or_default(),
                tests,
                entry_point,
            }),
        })
    })?;
    Ok(all
        .into_iter()
        .filter(|p| {
            p.id.strip_prefix("mbpp/")
                .and_then(|n| n.parse().ok())
                .is_some_and(&keep)
        })
        .collect())
}

/// Reads a JSONL file ([`super::read_jsonl`]), one problem per record via
/// `make(record, field)`, where `field(record, name)` is a string field or an error naming the
/// file, the record and the field.
fn records(
    path: &Path,
    make: impl Fn(
        &Record,
        &dyn Fn(&Record, &str) -> Result<String, DataError>,
    ) -> Result<Problem, DataError>,
) -> Result<Vec<Problem>, DataError> {
    super::read_jsonl(path)?
        .iter()
        .enumerate()
        .map(|(i, rec)| {
            let field = |rec: &Record, name: &str| {
                rec.get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| DataError::Record {
                        path: path.into(),
                        record: i + 1,
                        message: format!("field {name:?} is missing or not a string"),
                    })
            };
            make(rec, &field)
        })
        .collect()
}

/// Reads CRUXEval (`code`, `input`, `output`, `id` per line) as problems whose gold answer is
/// the output and whose task is the function and input.
pub fn load_cruxeval(path: &Path) -> Result<Vec<Problem>, DataError> {
    records(path, |rec, field| {
        let (code, input) = (field(rec, "code")?, field(rec, "input")?);
        Ok(Problem {
            id: field(rec, "id")?,
            prompt: Some(cruxeval_prompt(&code, &input)),
            messages: None,
            answer: Some(field(rec, "output")?),
            task: Some(CodeTask::OutputPrediction { code, input }),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tests_are_read_from_every_documented_form() {
        let asserts = CodeTask::Tests {
            setup: String::new(),
            tests: vec!["assert not is_odd(2)".into(), "assert is_odd(3)".into()],
            entry_point: "is_odd".into(),
        };
        let list = json!(["assert not is_odd(2)", "assert is_odd(3)"]);
        assert_eq!(tests_from_json(&list), Ok(asserts.clone()));
        assert_eq!(tests_from_json(&json!(list.to_string())), Ok(asserts));
        let io = CodeTask::StdinStdout {
            cases: vec![
                IoCase {
                    input: "1\n".into(),
                    output: "2\n".into(),
                },
                IoCase {
                    input: "5\n".into(),
                    output: "6\n".into(),
                },
            ],
        };
        let cases = json!([{"input": "1\n", "output": "2\n"}, {"input": "5\n", "output": "6\n"}]);
        for form in [
            cases.clone(),
            json!({"input": ["1\n", "5\n"], "output": ["2\n", "6\n"]}),
            json!({"test_cases": cases, "language": "python"}),
            json!(json!({"test_cases": cases}).to_string()),
        ] {
            assert_eq!(tests_from_json(&form), Ok(io.clone()), "{form}");
        }
        for bad in [
            json!(5),
            json!([]),
            json!({"input": ["1"], "output": []}),
            json!([{"input": 1, "output": "2"}]),
            json!("not json"),
            json!({"tests": []}),
        ] {
            assert!(tests_from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_code_templates_wrap_the_trimmed_statement_and_end_with_a_stub() {
        let prompts: Vec<String> = (0..4)
            .map(|k| code_prompt("  Add two numbers.\n", k))
            .collect();
        assert!(prompts[0].starts_with("You are an expert Python programmer."));
        assert!(prompts[0].contains("### Question:\nAdd two numbers.\n\n### Answer:\n"));
        assert!(prompts[1].contains("Problem:\nAdd two numbers.\n\nSolution (in Python code):"));
        assert!(prompts[2].contains("Task Description:\nAdd two numbers.\n\nComplete Solution:"));
        assert!(prompts[3].starts_with("Add two numbers.\n\nProvide a Python program"));
        for p in &prompts {
            assert!(p.ends_with("\n```python\n# Your code here\n```"), "{p}");
            assert!(!p.contains("{description}") && !p.contains("  "), "{p}");
        }
        assert_eq!(code_prompt("x", 5), code_prompt("x", 1));
    }
}
