//! `intuitor generate`: one prompt, one completion, with timings.

use clap::Args;
use serde_json::json;

use super::ModelArgs;
use crate::generate::generate;
use crate::sampling::SamplingParams;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message (or, with --raw, the whole model input).
    #[arg(long, short = 'p')]
    pub prompt: String,
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
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Keep the smallest set of tokens with cumulative probability ≥ p (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Drop tokens whose probability is below min_p × the top probability (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// HF repetition penalty (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Random seed: the same seed gives the same sample.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print one JSON object (prompt_ids, completion_ids, text, finish_reason, timings).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let m = args.model.load()?;
    let ids = m.prompt_ids(&args.prompt, args.system.as_deref(), args.raw)?;
    let params = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
    };
    let out = generate(
        &m.decoder,
        &ids,
        &params,
        args.max_new_tokens,
        &m.tokenizer.stop_ids(),
        args.seed,
    )?;
    let text = m.tokenizer.decode(&out.completion_ids, true)?;
    let n = out.completion_ids.len();
    let decode_s = out.decode_time.as_secs_f64();
    // Decode speed counts the tokens produced by decode steps (the first comes from prefill).
    let tps = if n > 1 && decode_s > 0.0 {
        (n - 1) as f64 / decode_s
    } else {
        0.0
    };
    if args.json {
        println!(
            "{}",
            json!({
                "prompt_ids": ids,
                "completion_ids": out.completion_ids,
                "text": text,
                "finish_reason": out.finish_reason,
                "load_seconds": m.load_time.as_secs_f64(),
                "prefill_seconds": out.prefill_time.as_secs_f64(),
                "decode_seconds": decode_s,
                "decode_tokens_per_second": tps,
            })
        );
    } else {
        println!("{text}");
        eprintln!(
            "[{} prompt + {n} new tokens, finish: {:?}; load {:.2} s, prefill {:.3} s, decode {:.1} tokens/s]",
            ids.len(),
            out.finish_reason,
            m.load_time.as_secs_f64(),
            out.prefill_time.as_secs_f64(),
            tps
        );
    }
    Ok(())
}
