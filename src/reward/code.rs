//! Code rewards (issue 21), run in the [`Sandbox`]: for a GRPO-code baseline, as open-r1's
//! `code_reward` / `binary_code_reward` / `code_format_reward`. INTUITOR-Code uses neither:
//! self-certainty alone (spec §5).
//!
//! - `code_tests`: the fraction of the problem's tests the completion's program passes
//!   ([`crate::code_check::tests_passed`]).
//! - `code_tests_binary`: 1 when it passes them all, else 0.
//! - `code_format`: 1 when the completion has a fenced ```` ```python ```` block that parses.
//!
//! A completion without code scores 0; a problem without tests gets `None` (no reward).

use crate::code_check::{answer_of, fenced_blocks, par_map, parses, tests_passed};
use crate::data::code::CodeTask;
use crate::sandbox::Sandbox;

/// `code_tests` (`binary` false) or `code_tests_binary`, per completion: `texts[i]` answers
/// `tasks[i]`; up to `jobs` programs at once. Errors only when the sandbox cannot run.
pub fn tests_rewards(
    texts: &[String],
    tasks: &[Option<&CodeTask>],
    sandbox: &Sandbox,
    jobs: usize,
    binary: bool,
) -> anyhow::Result<Vec<Option<f64>>> {
    let pairs: Vec<(&String, Option<&CodeTask>)> =
        texts.iter().zip(tasks.iter().copied()).collect();
    par_map(&pairs, jobs, |(text, task)| {
        let Some(task) = task else {
            return Ok(None);
        };
        let Ok(program) = answer_of(task, text) else {
            return Ok(Some(0.0));
        };
        let (passed, total) = tests_passed(task, &program, sandbox)?;
        Ok(Some(match binary {
            true => f64::from(u8::from(passed == total)),
            false => passed as f64 / total as f64,
        }))
    })?
    .into_iter()
    .collect()
}

/// `code_format`, per completion: 1 when its last ```` ```python ```` (or ```` ```py ````)
/// block is non-empty and parses (one sandboxed `ast.parse` run for the batch).
pub fn format_rewards(texts: &[String], sandbox: &Sandbox) -> anyhow::Result<Vec<Option<f64>>> {
    let blocks: Vec<Option<String>> = texts.iter().map(|t| python_block(t)).collect();
    let present: Vec<String> = blocks.iter().flatten().cloned().collect();
    let mut ok = parses(&present, sandbox)?.into_iter();
    Ok(blocks
        .iter()
        .map(|b| Some(f64::from(u8::from(b.is_some() && ok.next() == Some(true)))))
        .collect())
}

/// The last fenced block tagged `python` or `py`, when it holds code.
fn python_block(text: &str) -> Option<String> {
    fenced_blocks(text)
        .into_iter()
        .rev()
        .find(|(python, _)| *python)
        .map(|(_, code)| code)
        .filter(|code| !code.trim().is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::python_block;

    #[test]
    fn the_last_python_block_is_the_code() {
        let t = "a\n```python\nx = 1\n```\nthen\n```text\nout\n```\n```py\ny = 2\n```";
        assert_eq!(python_block(t).as_deref(), Some("y = 2\n"));
        assert_eq!(python_block("```python\n\n```"), None);
        assert_eq!(python_block("```\nx = 1\n```"), None);
        assert_eq!(python_block("no code"), None);
    }
}
