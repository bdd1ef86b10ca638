//! `intuitor score`: per-token log-probs, entropy and self-certainty of given completions.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::ModelArgs;
use crate::score::score_completion;
use crate::self_certainty::Alignment;
use crate::tokenizer::chat::Message;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// JSONL input, one `{"prompt": …, "completion": …}` or `{"messages": […], "completion": …}`
    /// per line; `-` reads standard input.
    #[arg(long, short = 'i', default_value = "-")]
    pub input: String,
    /// Output JSONL file (written atomically); standard output when absent.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// `prompt` is already the full model input: no chat template.
    #[arg(long)]
    pub raw: bool,
    /// System message placed before `prompt` (chat mode, ignored for `messages`).
    #[arg(long)]
    pub system: Option<String>,
    /// Temperature for `logprobs_t` (the log-probs a trainer uses, logits / T).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    completion: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let m = args.model.load()?;
    let reader: Box<dyn BufRead> = if args.input == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input))?;
        Box::new(std::io::BufReader::new(f))
    };
    let stop = m.tokenizer.stop_ids();
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let lineno = n + 1;
        let line = line.with_context(|| format!("{}: reading line {lineno}", args.input))?;
        if line.trim().is_empty() {
            continue;
        }
        let item: Line = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} line {lineno}: expected {{\"prompt\" or \"messages\", \"completion\"}}",
                args.input
            )
        })?;
        let prompt_ids = match (&item.prompt, &item.messages) {
            (Some(p), None) => m.prompt_ids(p, args.system.as_deref(), args.raw)?,
            (None, Some(msgs)) => m.chat_ids(msgs)?,
            _ => bail!(
                "{} line {lineno}: give exactly one of \"prompt\" and \"messages\"",
                args.input
            ),
        };
        let completion_ids = m.tokenizer.encode(&item.completion, false)?;
        let c = score_completion(
            &m.decoder,
            &prompt_ids,
            &completion_ids,
            args.temperature,
            &stop,
        )
        .with_context(|| format!("{} line {lineno}: scoring", args.input))?;
        let record = json!({
            "id": item.id,
            "prompt_tokens": prompt_ids.len(),
            "completion_ids": c.ids,
            "mask_len": c.mask_len,
            "logprobs": c.logprobs_t1,
            "logprobs_t": c.logprobs,
            "entropy": c.entropy,
            "token_self_certainty": c.token_self_certainty(Alignment::Paper),
            "self_certainty": c.self_certainty(Alignment::Paper),
            "self_certainty_openr1": c.self_certainty_openr1_logged(),
            "mean_logprob": c.mean_logprob(),
        });
        out.push(record.to_string());
    }
    let text = out.join("\n") + if out.is_empty() { "" } else { "\n" };
    match &args.output {
        Some(path) => crate::io::write_atomic(path, text.as_bytes())?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}
