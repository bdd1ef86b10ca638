//! Code benchmark items (issue 21): what running code needs to judge a completion, and the
//! CRUXEval and HumanEval loaders with their prompts. Judging is [`crate::eval::code`].

use std::path::Path;

use super::{DataError, Problem};

/// What running code needs to judge a completion of a [`Problem`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeTask {
    /// CRUXEval-O: the output of `f(input)` for the function `code`.
    OutputPrediction { code: String, input: String },
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

/// Reads a JSONL file, one problem per non-empty line via `make(record, field)`, where
/// `field(record, name)` is a string field or an error naming the file, line and field.
fn records(
    path: &Path,
    make: impl Fn(
        &serde_json::Value,
        &dyn Fn(&serde_json::Value, &str) -> Result<String, DataError>,
    ) -> Result<Problem, DataError>,
) -> Result<Vec<Problem>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = i + 1;
        let rec: serde_json::Value = serde_json::from_str(line).map_err(|e| DataError::File {
            path: path.into(),
            message: format!("line {line_no}: not JSON: {e}"),
        })?;
        let field = |rec: &serde_json::Value, name: &str| {
            rec.get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| DataError::File {
                    path: path.into(),
                    message: format!("line {line_no}: field {name:?} is missing or not a string"),
                })
        };
        out.push(make(&rec, &field)?);
    }
    Ok(out)
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
