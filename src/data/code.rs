//! Code benchmark items (issue 21): what running code needs to judge a completion, and the
//! CRUXEval loader with its prompt. Judging is [`crate::eval::code`].

use std::path::Path;

use super::{DataError, Problem};

/// What running code needs to judge a completion of a [`Problem`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeTask {
    /// CRUXEval-O: the output of `f(input)` for the function `code`.
    OutputPrediction { code: String, input: String },
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

/// Reads CRUXEval (`code`, `input`, `output`, `id` per line) as problems whose gold answer is
/// the output and whose task is the function and input.
pub fn load_cruxeval(path: &Path) -> Result<Vec<Problem>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let field = |rec: &serde_json::Value, name: &str, line: usize| {
        rec.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| DataError::File {
                path: path.into(),
                message: format!("line {line}: field {name:?} is missing or not a string"),
            })
    };
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let rec: serde_json::Value = serde_json::from_str(line).map_err(|e| DataError::File {
            path: path.into(),
            message: format!("line {}: not JSON: {e}", i + 1),
        })?;
        let (code, input) = (field(&rec, "code", i + 1)?, field(&rec, "input", i + 1)?);
        out.push(Problem {
            id: field(&rec, "id", i + 1)?,
            prompt: Some(cruxeval_prompt(&code, &input)),
            messages: None,
            answer: Some(field(&rec, "output", i + 1)?),
            task: Some(CodeTask::OutputPrediction { code, input }),
        });
    }
    Ok(out)
}
