//! Code benchmark items (issue 21): what running code needs to judge a completion, and the
//! CRUXEval and HumanEval loaders with their prompts. Judging is [`crate::eval::code`].

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

/// The MBPP task ids of the evaluation split (google-research `mbpp/README.md`); the others
/// (1–10 for few-shot prompts, 511–974) are for training.
pub const MBPP_TEST_IDS: std::ops::RangeInclusive<u64> = 11..=510;

/// The MBPP instruction (Austin et al. 2021's wording, with the code asked for in a fenced
/// block for a chat model).
pub fn mbpp_prompt(text: &str, tests: &[String]) -> String {
    format!(
        "You are an expert Python programmer, and here is your task: {text} Your code should \
         pass these tests:\n\n{}\n\nReply with the code in one ```python code block.",
        tests.join("\n")
    )
}

/// Reads MBPP (`text`, `code`, `task_id`, `test_setup_code`, `test_list` per line), keeping
/// the task ids `keep` accepts: problems whose gold answer is the reference code and whose
/// task is the tests.
pub fn load_mbpp(path: &Path, keep: impl Fn(u64) -> bool) -> Result<Vec<Problem>, DataError> {
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
        let entry_point = tests[0]
            .trim_start_matches("assert")
            .trim_start()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string();
        Ok(Problem {
            id: format!("mbpp/{id}"),
            prompt: Some(mbpp_prompt(&field(rec, "text")?, &tests)),
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
