//! `intuitor generate`: one prompt, one or more completions from the rollout engine, with timings.

use clap::Args;
use serde_json::json;

use std::time::Instant;

use anyhow::Context;

use super::ModelArgs;
use crate::rollout::{rollout, PromptRequest, RolloutConfig};
use crate::sampling::SamplingParams;
use crate::self_certainty::Alignment;
use crate::tokenizer::chat::Message;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message (or, with --raw, the whole model input).
    #[arg(
        long,
        short = 'p',
        required_unless_present = "messages",
        conflicts_with = "messages"
    )]
    pub prompt: Option<String>,
    /// A JSON file holding the whole conversation, a list of `{"role": …, "content": …}`; one
    /// that ends with an assistant message is continued (unless --no-continue-final-message).
    #[arg(long, conflicts_with_all = ["system", "raw"])]
    pub messages: Option<std::path::PathBuf>,
    /// A system message placed before the prompt (chat mode only; default: none, so the
    /// template's own default system line applies, if it has one).
    #[arg(long)]
    pub system: Option<String>,
    /// Feed --prompt to the model as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature, ≥ 0; 0 means greedy (the other sampling flags then do nothing).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0, value_parser = top_k, allow_negative_numbers = true)]
    pub top_k: usize,
    /// Keep the smallest set of tokens with cumulative probability ≥ p, in [0, 1] (1.0 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens whose probability is below min_p × the top probability, in [0, 1] (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub min_p: f32,
    /// HF repetition penalty, > 0 (1.0 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repetition_penalty: f32,
    /// Random seed: the same seed gives the same sample.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of completions to sample for the prompt (batched, sharing the prompt's KV cache).
    #[arg(
        long,
        short = 'n',
        default_value_t = 1,
        value_parser = at_least_one
    )]
    pub n: usize,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop_strings: Vec<String>,
    /// Bytes the KV cache may take (e.g. 64MiB): as many of the --n completions as fit decode
    /// at once, the rest as slots free up; the same completions whatever the budget.
    #[arg(long, value_parser = crate::train::plan::parse_size)]
    pub kv_budget: Option<u64>,
    /// Print JSON (prompt_ids, completion_ids, text, finish_reason, self_certainty, timings):
    /// one object for -n 1, else one object with a `completions` list.
    #[arg(long)]
    pub json: bool,
}

/// A `--messages` file: a JSON list of role/content objects.
fn read_messages(path: &std::path::Path) -> anyhow::Result<Vec<Message>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let messages: Vec<Message> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON list of {{\"role\": …, \"content\": …}} objects",
            path.display()
        )
    })?;
    if messages.is_empty() {
        anyhow::bail!("{}: the conversation is empty", path.display());
    }
    Ok(messages)
}

/// `--top-k`: a whole number ≥ 0 (clap rejects anything else, a usage error naming the flag).
pub(crate) fn top_k(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .map_err(|_| "expected a whole number ≥ 0 (0 = off)".into())
}

/// `-n`: a count of at least 1 (clap rejects anything else, a usage error).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number ≥ 1".into()),
    }
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
    };
    sampling.check_flags().map_err(anyhow::Error::msg)?;
    if sampling.is_greedy() && (args.top_k > 0 || args.top_p < 1.0 || args.min_p > 0.0) {
        eprintln!(
            "note: --temperature 0 decodes greedily; --top-k, --top-p and --min-p do nothing"
        );
    }
    let m = args.model.load()?;
    let ids = match (&args.messages, &args.prompt) {
        (Some(path), _) => m.chat_ids(&read_messages(path)?)?,
        (None, Some(prompt)) => m.prompt_ids(prompt, args.system.as_deref(), args.raw)?,
        (None, None) => anyhow::bail!("give --prompt or --messages"),
    };
    let cfg = RolloutConfig {
        num_generations: args.n,
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_ids: m.tokenizer.stop_ids(),
        stop_strings: args.stop_strings.clone(),
        keep_after_last: false,
        kv_budget: args.kv_budget,
        prefill_batch: None,
    };
    let request = PromptRequest {
        ids: ids.clone(),
        seed: args.seed,
        max_new_tokens: None,
    };
    let start = Instant::now();
    let outs = rollout(&m.decoder, &[request], &cfg, Some(&m.tokenizer))?;
    let seconds = start.elapsed().as_secs_f64();
    let generated: usize = outs.iter().map(|c| c.ids.len()).sum();
    let tps = generated as f64 / seconds.max(1e-9);
    let mut completions = Vec::with_capacity(outs.len());
    for c in &outs {
        let text = m.tokenizer.decode(&c.ids, true)?;
        completions.push(json!({
            "completion_ids": c.ids,
            "text": text,
            "finish_reason": c.finish_reason,
            "self_certainty": c.self_certainty(Alignment::Paper),
            "mean_logprob": c.mean_logprob(),
        }));
    }
    if args.json {
        let mut obj = json!({
            "prompt_ids": ids,
            "load_seconds": m.load_time.as_secs_f64(),
            "generate_seconds": seconds,
            "generated_tokens": generated,
            "tokens_per_second": tps,
        });
        let map = obj.as_object_mut().expect("object");
        if args.n == 1 {
            for (k, v) in completions[0].as_object().expect("object") {
                map.insert(k.clone(), v.clone());
            }
        } else {
            map.insert("completions".into(), completions.into());
        }
        println!("{obj}");
    } else {
        for (i, c) in completions.iter().enumerate() {
            if args.n > 1 {
                println!(
                    "--- completion {i} (self-certainty {:.4}, finish {})",
                    c["self_certainty"], c["finish_reason"]
                );
            }
            println!("{}", c["text"].as_str().unwrap_or_default());
        }
        eprintln!(
            "[{} prompt tokens, {generated} generated; load {:.2} s, generate {:.2} s, {:.1} tokens/s]",
            ids.len(),
            m.load_time.as_secs_f64(),
            seconds,
            tps
        );
    }
    Ok(())
}
