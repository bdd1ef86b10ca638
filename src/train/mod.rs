//! `intuitor train`: load → preflight → for each step { step::train_step → log → checkpoint }
//! → final checkpoint, plots and a short report (nanoGPT-style loop, TRL's phases).

pub mod checkpoint;
pub mod holdout;
pub mod interrupt;
pub mod metrics;
pub mod plan;
pub mod plot;
mod preflight;
pub mod step;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::DType;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{PromptOverflow, Resolved, TrainConfig};
use crate::data::batches::steps_per_epoch;
use crate::data::demo::{self, Split};
use crate::data::{self, code, Fields, Problem};
use crate::loader::{LoadedModel, ModelSource};
use crate::optim::AdamW;
use crate::policy::Policy;
use crate::self_certainty::Alignment;
use checkpoint::TrainerState;
use metrics::MetricsWriter;

/// Size of the built-in demo training split.
const DEMO_TRAIN_SIZE: usize = 2000;

pub struct Trainer {
    pub cfg: TrainConfig,
    /// The initial model: tokenizer, chat template, and the frozen initial weights, which serve
    /// as the KL reference (β > 0) and the offline self-certainty scorer. The policy trains a
    /// copy, so `base.decoder` never changes.
    pub base: LoadedModel,
    pub policy: Policy,
    pub opt: AdamW,
    pub problems: Vec<Problem>,
    pub prompts: Vec<Vec<u32>>,
    pub state: TrainerState,
    pub total_steps: usize,
    /// The components' configs, resolved once from `cfg`.
    pub run: Resolved,
    /// What a step holds, phase by phase (checked against the device's memory at start).
    pub memory_plan: plan::MemoryPlan,
    pub output: PathBuf,
    pub num_tokens: usize,
    /// The dtype checkpoints save the model in (`save_dtype`, resolved).
    pub save_dtype: DType,
    /// Where the code rewards run completions (`None` when no reward runs code).
    pub sandbox: Option<crate::sandbox::Sandbox>,
}

impl Trainer {
    /// Sets up a run (or resumes the latest checkpoint of `resume`).
    pub fn new(mut cfg: TrainConfig, resume: Option<&Path>) -> anyhow::Result<Self> {
        let device = crate::runtime::device(&cfg.device)?;
        let dtype = crate::runtime::train_dtype(&cfg.dtype, device.is_cpu())?;
        let sandbox = cfg.sandbox()?;
        // Before anything is loaded: the plan counts the base model itself.
        let available = crate::runtime::available_memory(&device);
        let mut base = LoadedModel::load(&ModelSource::resolve(&cfg.model)?, DType::F32, &device)?;
        let save_dtype = match cfg.save_dtype.as_str() {
            "auto" => crate::loader::stored_dtype(&base.source).unwrap_or(DType::F32),
            s => crate::runtime::dtype(s)?,
        };
        let (problems, prompts, dropped) = load_prompts(&cfg, &base)?;
        if dropped > 0 {
            eprintln!(
                "dropped {dropped} prompts longer than max_prompt_length = {}",
                cfg.max_prompt_length
            );
        }
        if prompts.len() < cfg.prompts_per_step {
            bail!(
                "the dataset has {} usable prompts, fewer than prompts_per_step = {}",
                prompts.len(),
                cfg.prompts_per_step
            );
        }
        let longest = prompts.iter().map(Vec::len).max();
        let memory_plan = plan::fit_kv_budget(&mut cfg, available, |cfg| {
            plan::for_model(base.config(), &base.source, cfg, device.is_cpu(), longest)
        })?;
        if let Some(budget) = cfg.rollout_kv_budget.as_ref().and_then(|b| b.bytes().ok()) {
            // Checked now, not when the longest prompt comes up mid-run: one completion of it.
            if budget < memory_plan.one_completion_kv {
                bail!(
                    "rollout_kv_budget = {budget} bytes holds no completion: the longest prompt ({} tokens) and max_completion_length = {} need {} bytes",
                    longest.unwrap_or(0),
                    cfg.max_completion_length,
                    memory_plan.one_completion_kv
                );
            }
        }
        if let Some(available) = available {
            memory_plan
                .check_fits(available)
                .map_err(anyhow::Error::msg)?;
        }
        let per_epoch = steps_per_epoch(prompts.len(), cfg.prompts_per_step);
        let total_steps = if cfg.max_steps > 0 {
            cfg.max_steps
        } else {
            per_epoch * cfg.num_train_epochs
        };
        let run = cfg.resolve(base.tokenizer.stop_ids(), total_steps);
        let output = match (&resume, &cfg.output_dir) {
            (Some(r), _) => r.to_path_buf(),
            (None, Some(o)) => PathBuf::from(o),
            (None, None) => default_run_dir(),
        };
        let latest = resume.and_then(|r| checkpoint::list(r).pop());
        if resume.is_some() && latest.is_none() {
            bail!("{}: no checkpoint to resume from", output.display());
        }
        // The masters come from f32 weights; the frozen reference computes in the compute dtype.
        let mut policy = match &latest {
            Some((_, dir)) => Policy::mixed(
                &LoadedModel::load(&ModelSource::HfDir(dir.clone()), DType::F32, &device)?.decoder,
                dtype,
            )?,
            None => Policy::mixed(&base.decoder, dtype)?,
        };
        policy.gradient_checkpointing = cfg.recompute(device.is_cpu());
        if dtype != DType::F32 {
            base.decoder = base.decoder.to_dtype(dtype)?;
        }
        base.pack_frozen()?;
        let mut opt = AdamW::new(policy.vars.clone(), run.adamw)?;
        let mut state = TrainerState {
            step: 0,
            optimizer_step: 0,
            cursor: Default::default(),
        };
        let mut num_tokens = 0;
        if let Some((_, dir)) = &latest {
            state = checkpoint::load_state(dir, &policy, &mut opt)?;
            num_tokens = metrics::read(&output)
                .ok()
                .and_then(|rows| rows.into_iter().rfind(|r| r["step"] as usize <= state.step))
                .map_or(0, |r| r.get("num_tokens").copied().unwrap_or(0.0) as usize);
            truncate_logs(&output, state.step)?;
        }
        Ok(Self {
            cfg,
            base,
            policy,
            opt,
            problems,
            prompts,
            state,
            total_steps,
            run,
            memory_plan,
            output,
            num_tokens,
            save_dtype,
            sandbox,
        })
    }

    /// Writes `checkpoint-<step>` atomically, keeping the newest `save_total_limit`.
    pub fn save_checkpoint(&self) -> anyhow::Result<PathBuf> {
        checkpoint::save(
            &self.output,
            &self.state,
            &self.policy,
            &self.opt,
            &self.base,
            self.cfg.save_total_limit,
            self.save_dtype,
        )
    }
}

/// Runs the training loop; returns the run directory. `stop_after` ends this invocation after
/// that many steps with a checkpoint, as an interrupted run would be (resume continues it).
pub fn run(
    cfg: TrainConfig,
    resume: Option<&Path>,
    stop_after: Option<usize>,
) -> anyhow::Result<PathBuf> {
    let mut t = Trainer::new(cfg, resume)?;
    std::fs::create_dir_all(&t.output)
        .with_context(|| format!("creating {}", t.output.display()))?;
    crate::io::write_atomic(&t.output.join("config.toml"), t.cfg.to_toml().as_bytes())?;
    eprintln!(
        "run {}: {} prompts, {} steps × {} prompts × G={} (grad accum {}), from step {}",
        t.output.display(),
        t.prompts.len(),
        t.total_steps,
        t.cfg.prompts_per_step,
        t.cfg.num_generations,
        t.cfg.grad_accum(),
        t.state.step
    );
    eprintln!("{}", t.preflight()?);
    let before = if t.cfg.eval_holdout > 0 && t.state.step == 0 {
        Some(t.holdout_eval(t.cfg.eval_holdout)?)
    } else {
        None
    };
    let mut writer = MetricsWriter::new(&t.output);
    let bar = ProgressBar::new(t.total_steps as u64).with_position(t.state.step as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut length_warned = false;
    let first_step = t.state.step;
    let interrupt = interrupt::Interrupt::install()?;
    while t.state.step < t.total_steps {
        if let Some(stop) = interrupt.received() {
            bar.abandon();
            return Err(stopped(&t, stop));
        }
        if stop_after.is_some_and(|n| t.state.step - first_step >= n) {
            t.save_checkpoint()?;
            bar.abandon();
            eprintln!(
                "stopped after step {} (--stop-after); continue with --resume {}",
                t.state.step,
                t.output.display()
            );
            return Ok(t.output);
        }
        let out = match step::train_step(&mut t) {
            Ok(o) => o,
            Err(e) => {
                bar.abandon();
                let last = checkpoint::list(&t.output)
                    .pop()
                    .map(|(_, p)| p.display().to_string());
                return Err(e.context(format!(
                    "training stopped; last good checkpoint: {}",
                    last.unwrap_or_else(|| "none".into())
                )));
            }
        };
        let m = &out.metrics;
        writer.write(m)?;
        bar.set_message(format!(
            "SC {:.3}  reward {:.3}  kl {:.4}  len {:.0}  {:.1}s/step",
            m["self_certainty/mean"],
            m["reward"],
            m["kl"],
            m["completions/mean_length"],
            m["step_time"]
        ));
        bar.inc(1);
        if t.cfg.log_completions_steps > 0 && t.state.step % t.cfg.log_completions_steps == 0 {
            log_samples(&t, &out)?;
        }
        if t.cfg.max_kl > 0.0 && m["kl"] > t.cfg.max_kl {
            bar.abandon();
            bail!(
                "step {}: kl {:.4} exceeds max_kl {}; stopping",
                t.state.step,
                m["kl"],
                t.cfg.max_kl
            );
        }
        if !length_warned
            && m["completions/mean_length"]
                > t.cfg.warn_length_fraction * t.cfg.max_completion_length as f64
        {
            bar.println(format!(
                "warning: mean completion length {:.0} exceeds {:.0}% of max_completion_length (runaway length is a reward-hacking signature)",
                m["completions/mean_length"],
                t.cfg.warn_length_fraction * 100.0
            ));
            length_warned = true;
        }
        let last = t.state.step == t.total_steps;
        if last || (t.cfg.save_steps > 0 && t.state.step % t.cfg.save_steps == 0) {
            t.save_checkpoint()?;
        }
    }
    // A signal during the last step: training is done and its checkpoint written; the rest
    // (plots, report) follows, and another signal ends the process at once.
    drop(interrupt);
    bar.finish();
    let charts = plot::plot_run(&t.output)?;
    let after = if before.is_some() {
        Some(t.holdout_eval(t.cfg.eval_holdout)?)
    } else {
        None
    };
    let mut report = format!(
        "trained {} steps in {:.1} min\ncheckpoint: {}\nmetrics: {}\nplots: {}\n",
        t.state.step,
        started.elapsed().as_secs_f64() / 60.0,
        checkpoint::checkpoint_dir(&t.output, t.state.step).display(),
        t.output.join("metrics.jsonl").display(),
        charts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(before), Some(after)) = (&before, &after) {
        report.push_str(&holdout::report(before, after, t.cfg.eval_max_new_tokens));
    }
    crate::io::write_atomic(&t.output.join("report.txt"), report.as_bytes())?;
    println!("{report}");
    Ok(t.output)
}

/// The error a run stopped by a signal ends with, after writing its checkpoint (or the reason
/// it could not).
fn stopped(t: &Trainer, stop: interrupt::Interrupted) -> anyhow::Error {
    let done = checkpoint::checkpoint_dir(&t.output, t.state.step);
    let saved = match done.join("trainer_state.json").exists() {
        true => Ok(done),
        false => t.save_checkpoint(),
    };
    let saved = match saved {
        Ok(dir) => format!("checkpoint: {}", dir.display()),
        Err(e) => format!("the checkpoint could not be written ({e:#})"),
    };
    anyhow::Error::new(stop).context(format!(
        "training stopped after step {}; {saved}; continue with `intuitor train --resume {}`",
        t.state.step,
        t.output.display()
    ))
}

fn default_run_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("runs").join(format!("run-{secs}"))
}

/// Problems and their tokenized prompts; over-long prompts are dropped or left-truncated.
fn load_prompts(
    cfg: &TrainConfig,
    base: &LoadedModel,
) -> anyhow::Result<(Vec<Problem>, Vec<Vec<u32>>, usize)> {
    let all = match cfg.dataset.as_str() {
        "demo" => demo::problems(Split::Train, DEMO_TRAIN_SIZE),
        "mbpp" => {
            let path = crate::eval::run::data_dir(None).join("mbpp/mbpp.jsonl");
            if !path.is_file() {
                bail!(
                    "dataset = \"mbpp\": {} not found; set INTUITOR_DATA_DIR to the folder with mbpp/",
                    path.display()
                );
            }
            code::load_mbpp(
                &path,
                |id| !code::MBPP_TEST_IDS.contains(&id),
                code::mbpp_statement,
            )?
        }
        file => {
            let fields = Fields {
                prompt_field: cfg.prompt_field.clone(),
                answer_field: cfg.answer_field.clone(),
                tests_field: cfg.tests_field.clone(),
            };
            data::load(Path::new(file), &fields)?
        }
    };
    let mut problems = Vec::with_capacity(all.len());
    let mut prompts = Vec::with_capacity(all.len());
    let mut dropped = 0;
    for (i, mut p) in all.into_iter().enumerate() {
        // A template per problem, from the seed (S1 draws one at random per problem).
        let pick = step::mix(cfg.seed, usize::MAX, i);
        cfg.prompt_template
            .apply(&mut p, pick)
            .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.dataset))?;
        let mut ids = base.problem_ids(&p, cfg.system_prompt.as_deref())?;
        if ids.len() > cfg.max_prompt_length {
            match cfg.prompt_overflow {
                PromptOverflow::Drop => {
                    dropped += 1;
                    continue;
                }
                PromptOverflow::TruncateLeft => {
                    ids = ids[ids.len() - cfg.max_prompt_length..].to_vec()
                }
            }
        }
        problems.push(p);
        prompts.push(ids);
    }
    Ok((problems, prompts, dropped))
}

/// Appends the first prompt's completions with their rewards to `samples.jsonl`.
fn log_samples(t: &Trainer, out: &step::StepOutput) -> anyhow::Result<()> {
    let path = t.output.join("samples.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let problem = &t.problems[out.prompt_indices[0]];
    for (i, c) in out
        .completions
        .iter()
        .enumerate()
        .take(t.cfg.num_generations)
    {
        let rewards: serde_json::Map<String, serde_json::Value> = out
            .rewards
            .iter()
            .map(|(k, r)| (k.name().to_string(), serde_json::json!(r[i])))
            .collect();
        let line = serde_json::json!({
            "step": t.state.step,
            "prompt": problem.prompt,
            "gold": problem.answer,
            "completion": out.texts[i],
            "self_certainty": c.self_certainty(Alignment::Paper),
            "length": c.ids.len(),
            "rewards": rewards,
        });
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// After a resume, drops log rows of steps beyond the checkpoint (they will be redone).
fn truncate_logs(dir: &Path, step: usize) -> anyhow::Result<()> {
    for (name, step_of) in [("metrics.jsonl", "step"), ("samples.jsonl", "step")] {
        let path = dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get(step_of).and_then(|s| s.as_f64()))
                    .is_some_and(|s| s as usize <= step)
            })
            .collect();
        crate::io::write_atomic(
            &path,
            (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes(),
        )?;
    }
    // Rebuild the CSV from the kept JSONL rows.
    let csv = dir.join("metrics.csv");
    if csv.exists() {
        std::fs::remove_file(&csv)?;
        let mut w = MetricsWriter::new(dir);
        for r in metrics::read(dir).unwrap_or_default() {
            w.write_csv(&r)?;
        }
    }
    Ok(())
}
