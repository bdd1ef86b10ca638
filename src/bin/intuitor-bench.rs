//! Benchmark driver: times intuitor's engine on fixed workloads and prints one JSON object, so
//! `bench/*.sh` can put it side by side with the Python baselines run in the same command.

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use intuitor::model::{LoadedModel, ModelSource};
use intuitor::rollout::{rollout, PromptRequest, RolloutConfig};
use intuitor::sampling::SamplingParams;
use intuitor::self_certainty::Alignment;

/// The four benchmark prompts (GSM8K test problems 1–4).
pub const PROMPTS: [&str; 4] = [
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
    "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
    "Josh decides to try flipping a house. He buys a house for $80,000 and then puts in $50,000 in repairs. This increased the value of the house by 150%. How much profit did he make?",
    "James decides to run 3 sprints 3 times a week. He runs 60 meters each sprint. How many total meters does he run a week?",
];

#[derive(Parser)]
#[command(name = "intuitor-bench", about = "Timed workloads for bench/*.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[arg(long, default_value = "default", global = true)]
    model: String,
}

#[derive(Subcommand)]
enum Command {
    /// 4 prompts × G samples × N new tokens (no early stop), T 0.9, top-k 50, with
    /// self-certainty included.
    Rollout {
        #[arg(long, default_value_t = 7)]
        group: usize,
        #[arg(long, default_value_t = 128)]
        new_tokens: usize,
    },
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    intuitor::runtime::tune_allocator();
    intuitor::runtime::pin_thread_count();
    let cli = Cli::parse();
    let device = intuitor::runtime::device("auto")?;
    let m = LoadedModel::load(
        &ModelSource::resolve(&cli.model)?,
        candle_core::DType::F32,
        &device,
    )
    .context("loading the model")?;
    match cli.command {
        Command::Rollout { group, new_tokens } => {
            let requests: Vec<PromptRequest> = PROMPTS
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Ok(PromptRequest {
                        ids: m.prompt_ids(p, None, false)?,
                        seed: i as u64,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let cfg = RolloutConfig {
                num_generations: group,
                max_new_tokens: new_tokens,
                sampling: SamplingParams::default(),
                stop_ids: Default::default(),
                stop_strings: Vec::new(),
                keep_after_last: false,
            };
            let start = Instant::now();
            let outs = rollout(&m.decoder, &requests, &cfg, None)?;
            let seconds = start.elapsed().as_secs_f64();
            let tokens: usize = outs.iter().map(|c| c.ids.len()).sum();
            let sc: f32 = outs
                .iter()
                .map(|c| c.self_certainty(Alignment::Paper))
                .sum::<f32>()
                / outs.len() as f32;
            println!(
                "{}",
                json!({
                    "seconds": seconds,
                    "generated_tokens": tokens,
                    "tokens_per_second": tokens as f64 / seconds,
                    "peak_rss_mb": peak_rss_mb(),
                    "mean_self_certainty": sc,
                })
            );
        }
    }
    Ok(())
}
