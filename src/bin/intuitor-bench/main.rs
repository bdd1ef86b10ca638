//! Benchmark driver: times intuitor's engine on fixed workloads and prints one JSON object, so
//! `bench/*.sh` can put it side by side with the Python baselines run in the same command.

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

mod ops;

use intuitor::loader::{LoadedModel, ModelSource};
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
    /// Device: auto (CUDA if built with it and present, else CPU), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto", global = true)]
    device: String,
    /// Weight dtype for rollout and logprobs; the compute dtype of the update (f32 master
    /// weights, as `train`'s `dtype`): f32, bf16 or f16.
    #[arg(long, default_value = "f32", global = true)]
    dtype: String,
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
        /// Number of prompts (the four GSM8K problems, repeated).
        #[arg(long, default_value_t = 4)]
        prompts: usize,
        /// Use seeded random prompts of this many tokens instead of the GSM8K text (for
        /// random-weight models whose tokenizer does not match; 0 = the text).
        #[arg(long, default_value_t = 0)]
        prompt_tokens: usize,
        /// Bytes the KV cache may take (e.g. 16GiB): rows beyond it wait for a free slot.
        #[arg(long, value_parser = intuitor::train::plan::parse_size)]
        kv_budget: Option<u64>,
    },
    /// The long tail (issue 17): `rows` prompts whose lengths are spread evenly from
    /// `shortest` to `longest` new tokens (shuffled), with KV room for `slots` rows: continuous
    /// batching (one rollout in the budget) against static batches of `slots` rows, each
    /// waiting for its slowest.
    LongTail {
        #[arg(long, default_value_t = 28)]
        rows: usize,
        #[arg(long, default_value_t = 16)]
        shortest: usize,
        #[arg(long, default_value_t = 512)]
        longest: usize,
        #[arg(long, default_value_t = 8)]
        slots: usize,
    },
    /// Matrix-product throughput (f32 and bf16, n³) and device copy bandwidth through candle.
    Gemm {
        #[arg(long, default_value_t = 4096)]
        size: usize,
    },
    /// Forward + backward + AdamW on `batch` sequences of `prompt + completion` random tokens
    /// (bnpo loss, β = 0), after one warm-up step; also measures the machine's GEMM GFLOP/s.
    Update {
        #[command(flatten)]
        shape: BatchShape,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Activation recompute (the `gradient_checkpointing` key).
        #[arg(long)]
        gradient_checkpointing: bool,
    },
    /// No-grad per-token log-probs of `batch` random `prompt + completion` sequences (what the
    /// frozen reference model computes every step).
    Logprobs {
        #[command(flatten)]
        shape: BatchShape,
    },
    /// One causal attention's forward + backward with the query-blocked kernel (issue 16):
    /// seconds and peak RSS. Qwen2.5-1.5B's heads by default (2 KV heads × 6, head_dim 128).
    Attention {
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 2)]
        kv_heads: usize,
        #[arg(long, default_value_t = 6)]
        groups: usize,
        #[arg(long, default_value_t = 2048)]
        tokens: usize,
        #[arg(long, default_value_t = 128)]
        head_dim: usize,
        /// Query positions per block (the tokens: one block, every score at once).
        #[arg(long, default_value_t = intuitor::kernels::QUERY_BLOCK)]
        block: usize,
    },
    /// Each piece of a training update timed alone (`ops.rs`): milliseconds per piece
    Ops {
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long, default_value_t = 1024)]
        tokens: usize,
    },
}

/// A batch of random token sequences.
#[derive(clap::Args)]
struct BatchShape {
    #[arg(long, default_value_t = 4)]
    batch: usize,
    #[arg(long, default_value_t = 128)]
    prompt: usize,
    #[arg(long, default_value_t = 128)]
    completion: usize,
}

/// `batch` (prompt, completion) pairs of uniformly random tokens, seeded.
fn random_sequences(shape: &BatchShape, vocab: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut tokens =
        |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..vocab as u32)).collect() };
    (0..shape.batch)
        .map(|_| (tokens(shape.prompt), tokens(shape.completion)))
        .collect()
}

/// GEMM throughput on n³ in `dtype` (GFLOP/s), for the roofline; waits for the device.
fn gemm_gflops(
    device: &candle_core::Device,
    dtype: candle_core::DType,
    n: usize,
) -> anyhow::Result<f64> {
    let a = candle_core::Tensor::randn(0f32, 1.0, (n, n), device)?.to_dtype(dtype)?;
    let b = candle_core::Tensor::randn(0f32, 1.0, (n, n), device)?.to_dtype(dtype)?;
    a.matmul(&b)?;
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..10 {
        a.matmul(&b)?;
    }
    device.synchronize()?;
    Ok(10.0 * 2.0 * (n as f64).powi(3) / start.elapsed().as_secs_f64() / 1e9)
}

/// Copy bandwidth (bytes read + written per second, TB/s) of a 1 GiB (CPU: 64 MiB) f32 tensor.
fn copy_tb_per_s(device: &candle_core::Device) -> anyhow::Result<f64> {
    let n = if device.is_cpu() { 1 << 24 } else { 1 << 28 };
    let a = candle_core::Tensor::zeros(n, candle_core::DType::F32, device)?;
    a.copy()?;
    device.synchronize()?;
    let start = Instant::now();
    for _ in 0..10 {
        a.copy()?;
    }
    device.synchronize()?;
    Ok(10.0 * 2.0 * 4.0 * n as f64 / start.elapsed().as_secs_f64() / 1e12)
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
    intuitor::runtime::in_thread_pool(|| run(cli))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device = intuitor::runtime::device(&cli.device)?;
    let dtype = intuitor::runtime::dtype(&cli.dtype)?;
    let load_as = |dtype| {
        LoadedModel::load(&ModelSource::resolve(&cli.model)?, dtype, &device)
            .context("loading the model")
    };
    let load = || load_as(dtype);
    match cli.command {
        Command::Update {
            shape,
            repeats,
            gradient_checkpointing,
        } => {
            // f32 master weights; the forward and backward in `--dtype` (`Policy::mixed`).
            let m = load_as(candle_core::DType::F32)?;
            let BatchShape {
                batch,
                prompt,
                completion,
            } = shape;
            use intuitor::loss::{sequence_weights, LossConfig, LossType};
            use intuitor::optim::{AdamW, AdamWConfig};
            use intuitor::update::{accumulate_micro_batch, UpdateSequence};
            let mut policy = intuitor::policy::Policy::mixed(&m.decoder, dtype)?;
            policy.gradient_checkpointing = gradient_checkpointing;
            let mut opt = AdamW::new(policy.vars.clone(), AdamWConfig::default())?;
            let cfg = LossConfig {
                loss_type: LossType::Bnpo,
                beta: 0.0,
                epsilon_low: 0.2,
                epsilon_high: 0.2,
                max_completion_length: completion,
                temperature: 0.9,
                kl_bias_correction: false,
            };
            let weights = sequence_weights(&vec![completion; batch], &cfg, 1, 0);
            let seqs: Vec<UpdateSequence> = random_sequences(&shape, m.config().vocab_size)
                .into_iter()
                .enumerate()
                .map(|(i, (prompt_ids, completion_ids))| UpdateSequence {
                    prompt_ids,
                    completion_ids,
                    advantage: if i % 2 == 0 { 1.0 } else { -1.0 },
                    old_logps: None,
                    ref_logps: None,
                    weight: weights[i],
                })
                .collect();
            // Each phase ends with a device synchronisation, so that its time is its own.
            let mut phases: [Vec<f64>; 4] = Default::default();
            for _ in 0..repeats + 1 {
                let mut lap = Instant::now();
                let mut done = |phase: usize| -> anyhow::Result<()> {
                    device.synchronize()?;
                    phases[phase].push(lap.elapsed().as_secs_f64());
                    lap = Instant::now();
                    Ok(())
                };
                let mut grads = policy.grad_accumulator();
                accumulate_micro_batch(&policy, &seqs, &cfg, &mut grads)?;
                done(0)?;
                grads.clip_global_norm(1.0)?;
                done(1)?;
                opt.step(&grads, 3e-6)?;
                done(2)?;
                policy.sync_compute()?;
                done(3)?;
            }
            let median = |times: &[f64]| {
                let mut t = times[1..].to_vec();
                t.sort_by(|a, b| a.total_cmp(b));
                t[t.len() / 2]
            };
            let phase_seconds: Vec<f64> = phases.iter().map(|p| median(p)).collect();
            let seconds = phase_seconds.iter().sum::<f64>();
            let tokens = (batch * (prompt + completion)) as f64;
            let params = m.decoder.num_parameters() as f64;
            let gflops = gemm_gflops(&device, candle_core::DType::F32, 1024)?;
            let tps = tokens / seconds;
            println!(
                "{}",
                json!({
                    "seconds_per_step": seconds,
                    "tokens_per_second": tps,
                    "gemm_gflops": gflops,
                    "roofline_fraction": tps * 6.0 * params / (gflops * 1e9),
                    "phase_seconds": {
                        "forward_backward": phase_seconds[0],
                        "clip_grad_norm": phase_seconds[1],
                        "optimizer": phase_seconds[2],
                        "sync_compute": phase_seconds[3],
                    },
                    "peak_rss_mb": peak_rss_mb(),
                })
            );
        }
        Command::Ops { batch, tokens } => {
            let m = load_as(candle_core::DType::F32)?;
            let policy = intuitor::policy::Policy::mixed(&m.decoder, dtype)?;
            println!("{}", ops::run(&policy, &device, batch, tokens)?);
        }
        Command::Attention {
            batch,
            kv_heads,
            groups,
            tokens,
            head_dim,
            block,
        } => {
            let shape = (batch, kv_heads, groups, tokens, head_dim);
            let report = ops::attention_memory(&device, dtype, shape, block)?;
            println!("{report}");
        }
        Command::Logprobs { shape } => {
            let m = load()?;
            use intuitor::logprob::completion_logprobs;
            use intuitor::packing::Sequence;
            let data = random_sequences(&shape, m.config().vocab_size);
            let seqs: Vec<Sequence> = data
                .iter()
                .map(|(p, c)| Sequence {
                    prompt_ids: p,
                    completion_ids: c,
                })
                .collect();
            completion_logprobs(&m.decoder, &seqs, 0.9)?;
            let start = Instant::now();
            completion_logprobs(&m.decoder, &seqs, 0.9)?;
            device.synchronize()?;
            let seconds = start.elapsed().as_secs_f64();
            let tokens = (shape.batch * (shape.prompt + shape.completion)) as f64;
            println!(
                "{}",
                json!({
                    "seconds": seconds,
                    "tokens_per_second": tokens / seconds,
                    "peak_rss_mb": peak_rss_mb(),
                })
            );
        }
        Command::LongTail {
            rows,
            shortest,
            longest,
            slots,
        } => {
            let m = load()?;
            let limits = long_tail_lengths(rows, shortest, longest);
            let requests: Vec<PromptRequest> = limits
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    Ok(PromptRequest {
                        ids: m.prompt_ids(PROMPTS[i % PROMPTS.len()], None, false)?,
                        seed: i as u64,
                        max_new_tokens: Some(n),
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let mut cfg = bench_rollout(1, longest);
            let start = Instant::now();
            let mut waves = Vec::new();
            for chunk in requests.chunks(slots) {
                waves.extend(rollout(&m.decoder, chunk, &cfg, None)?);
            }
            let static_s = start.elapsed().as_secs_f64();
            let plan = intuitor::rollout::slot_plan_for(&m.decoder, &requests, &cfg)
                .map_err(anyhow::Error::msg)?;
            let budget = intuitor::rollout::SlotPlan {
                rows: slots,
                prefixes: slots,
                ..plan
            };
            let per_position = m
                .decoder
                .config()
                .kv_bytes_per_position(m.decoder.dtype().size_in_bytes());
            cfg.kv_budget = Some(budget.bytes(per_position));
            let start = Instant::now();
            let continuous = rollout(&m.decoder, &requests, &cfg, None)?;
            let continuous_s = start.elapsed().as_secs_f64();
            let tokens: usize = continuous.iter().map(|c| c.ids.len()).sum();
            let same = waves.iter().zip(&continuous).all(|(a, b)| a.ids == b.ids);
            println!(
                "{}",
                json!({
                    "rows": rows,
                    "slots": slots,
                    "generated_tokens": tokens,
                    "static_seconds": static_s,
                    "continuous_seconds": continuous_s,
                    "speedup": static_s / continuous_s,
                    "same_completions": same,
                })
            );
        }
        Command::Gemm { size } => {
            let f32 = gemm_gflops(&device, candle_core::DType::F32, size)?;
            let bf16 = gemm_gflops(&device, candle_core::DType::BF16, size)?;
            println!(
                "{}",
                json!({
                    "size": size,
                    "f32_gemm_gflops": f32,
                    "bf16_gemm_gflops": bf16,
                    "copy_tb_per_s": copy_tb_per_s(&device)?,
                })
            );
        }
        Command::Rollout {
            group,
            new_tokens,
            prompts,
            prompt_tokens,
            kv_budget,
        } => {
            let m = load()?;
            let random = random_sequences(
                &BatchShape {
                    batch: prompts,
                    prompt: prompt_tokens,
                    completion: 0,
                },
                m.config().vocab_size,
            );
            let requests: Vec<PromptRequest> = (0..prompts)
                .map(|i| {
                    Ok(PromptRequest {
                        ids: if prompt_tokens > 0 {
                            random[i].0.clone()
                        } else {
                            m.prompt_ids(PROMPTS[i % PROMPTS.len()], None, false)?
                        },
                        seed: i as u64,
                        max_new_tokens: None,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let cfg = RolloutConfig {
                kv_budget,
                ..bench_rollout(group, new_tokens)
            };
            let slots = intuitor::rollout::slot_plan_for(&m.decoder, &requests, &cfg)
                .map_err(anyhow::Error::msg)?
                .rows;
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
                    "slots": slots,
                })
            );
        }
    }
    Ok(())
}

/// `rows` lengths spread evenly from `shortest` to `longest`, in a seeded shuffled order.
fn long_tail_lengths(rows: usize, shortest: usize, longest: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let step = (longest - shortest) as f64 / (rows.max(2) - 1) as f64;
    let mut lengths: Vec<usize> = (0..rows)
        .map(|i| shortest + (i as f64 * step).round() as usize)
        .collect();
    lengths.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    lengths
}

/// The benchmarks' rollout: G samples of exactly `new_tokens` (no stop), T 0.9, top-k 50.
fn bench_rollout(group: usize, new_tokens: usize) -> RolloutConfig {
    RolloutConfig {
        num_generations: group,
        max_new_tokens: new_tokens,
        sampling: SamplingParams::default(),
        stop_ids: Default::default(),
        stop_strings: Vec::new(),
        keep_after_last: false,
        kv_budget: None,
        prefill_batch: None,
    }
}
