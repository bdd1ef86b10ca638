//! The `intuitor` command line: clap definitions and dispatch. Each subcommand lives in its own
//! file; the library does the work.

mod eval;
mod generate;
mod info;
mod score;
mod train;

use clap::{Args, Parser, Subcommand};

use crate::loader::{LoadedModel, ModelSource};

/// intuitor: train language models to reason with their own self-certainty as the reward
/// (INTUITOR, arXiv 2505.19590), plus the paper's baselines and evaluation.
#[derive(Debug, Parser)]
#[command(name = "intuitor", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a model: architecture, sizes, vocabulary, special tokens, chat template, load time.
    Info(info::InfoArgs),
    /// Generate a completion for one prompt (chat-formatted unless --raw).
    Generate(generate::GenerateArgs),
    /// Score given completions: per-token log-probs, entropy and self-certainty (JSONL in/out).
    Score(score::ScoreArgs),
    /// Train with GRPO: INTUITOR (self-certainty reward) by default, or the baselines.
    Train(train::TrainArgs),
    /// Evaluate a model on a benchmark: greedy accuracy, self-certainty separation, best-of-N.
    Eval(Box<eval::EvalArgs>),
    /// Check answers against gold answers (math, hendrycks or gsm8k rules); JSONL in/out.
    CheckAnswer(eval::CheckAnswerArgs),
    /// Draw PNG charts (self-certainty, accuracy, KL, length, lr) of a run directory.
    Plot(train::PlotArgs),
    /// The memory plan of a training config: bytes per phase of a step, the peak, and whether
    /// it fits the device (needs only the model's config.json).
    Plan(train::PlanArgs),
}

/// Which model to load, and where.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// An HF model directory (config.json, *.safetensors, tokenizer.json), a .gguf file, or
    /// `default` (SmolLM2-135M-Instruct Q4_1; fetch it with `bash scripts/fetch_model.sh`).
    #[arg(long, short = 'm', default_value = "default")]
    pub model: String,
    /// Device: auto (CUDA if built with it and present, else CPU), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Weight dtype: f32 (exact, the default on CPU), bf16 or f16 (GPU).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
    pub dtype: String,
    /// Close a conversation that ends with an assistant message and open a new assistant turn,
    /// instead of continuing that message (the default, TRL's `continue_final_message`).
    #[arg(long)]
    pub no_continue_final_message: bool,
}

impl ModelArgs {
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        let device = crate::runtime::device(&self.device)?;
        let dtype = crate::runtime::dtype(&self.dtype)?;
        let source = ModelSource::resolve(&self.model)?;
        let mut m = LoadedModel::load(&source, dtype, &device)?;
        m.continue_final_message = !self.no_continue_final_message;
        Ok(m)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Score(args) => score::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Plot(args) => train::plot(&args),
        Command::Plan(args) => train::plan(&args),
        Command::Eval(args) => eval::run(&args),
        Command::CheckAnswer(args) => eval::check_answer(&args),
    }
}
