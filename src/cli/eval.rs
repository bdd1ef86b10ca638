//! `intuitor eval` (benchmark accuracy, self-certainty separation, best-of-N) and
//! `intuitor check-answer` (the answer checker on its own).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::ModelArgs;
use crate::answer::select::Selection;
use crate::answer::{Checker, Mode, Options};
use crate::data::Problem;
use crate::data::{field_text, Fields};
use crate::eval::report::{histogram, markdown, summarize};
use crate::eval::run::{data_dir, evaluate, evaluate_given, load_dataset, EvalConfig};
use crate::io::write_atomic;
use crate::sampling::SamplingParams;
use crate::sandbox::{Limits, Sandbox};
use crate::self_certainty::Alignment;

/// System prompt presets (`shared/docs/prompts.md`).
const PRESETS: &[(&str, &str)] = &[
    ("boxed", "Let's think step by step and output the final answer within \\boxed{}."),
    ("intuitor", "You are a helpful AI Assistant, designed to provided well-reasoned and detailed responses. You FIRST think about the reasoning process step by step and then provide the user with the answer. Please enclose your final answer in the box: \\boxed{Your Answer}. Please stop generation immediately after outputing the box."),
    ("intuitor-7b", "You are a helpful AI Assistant, designed to provided well-reasoned and detailed responses. Please provide a step-by-step solution to the following problem."),
    ("verl-1.5b", "You are a helpful AI Assistant, designed to provide well-reasoned and detailed responses. You FIRST think about the reasoning process step by step and then provide the user with the answer. Please enclose your final answer in the box: \\boxed{Your Answer}."),
];

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// gsm8k, math500, svamp, aime24, amc23, cruxeval (CRUXEval-O), humaneval, mbpp (the last
    /// three judged by running code; files under --data-dir), demo (held-out built-in problems), or a
    /// .jsonl/.csv/.parquet path.
    #[arg(long, default_value = "gsm8k")]
    pub dataset: String,
    /// Folder holding gsm8k/, math/ and extra/ (default: $INTUITOR_DATA_DIR, shared/data or
    /// ../shared/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// For a file dataset: the prompt field (`a+b` joins fields) and the gold answer field.
    #[arg(long, default_value = "problem")]
    pub prompt_field: String,
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    /// For a file dataset of code problems: the field with each problem's tests (a list of
    /// asserts, or of `{"input", "output"}` standard-input cases, as for training's
    /// `tests_field`); completions are then judged by running them, and no answer field is read.
    #[arg(long)]
    pub tests_field: Option<String>,
    /// Skip this many problems first.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Evaluate at most this many problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// System prompt: a preset (boxed, intuitor, intuitor-7b, verl-1.5b, none) or the text.
    #[arg(long, default_value = "none")]
    pub system_prompt: String,
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Answer checker.
    #[arg(long, value_enum, default_value_t = Mode::Math)]
    pub mode: Mode,
    /// Decimals a decimal answer is rounded to before comparing (math mode; math-verify's
    /// `float_rounding`).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=crate::answer::MAX_PRECISION as i64))]
    pub precision: u32,
    /// Rename a prediction's free symbols to the gold's in sorted order (math mode;
    /// math-verify's `strict=False`): `f(x)` equals `f(y)`.
    #[arg(long)]
    pub no_strict: bool,
    /// Self-certainty rows: paper (the generating rows) or openr1 (shifted by one).
    #[arg(long, value_enum, default_value_t = Alignment::Paper)]
    pub alignment: Alignment,
    /// N samples per problem besides the greedy one, for pass@N, maj@N and best-of-N.
    #[arg(long, alias = "best-of", default_value_t = 0)]
    pub samples: usize,
    /// Temperature of the --samples, ≥ 0 (the first answer is always greedy).
    #[arg(long, default_value_t = 0.7, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Top-k of the --samples (0 = off).
    #[arg(long, default_value_t = 0, value_parser = super::generate::top_k, allow_negative_numbers = true)]
    pub top_k: usize,
    /// Top-p of the --samples, in [0, 1] (1.0 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Best-of-N rules applied to the samples (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "self-certainty,borda,majority"
    )]
    pub select: Vec<Selection>,
    /// Borda exponent p (0 = majority vote; large = self-certainty argmax).
    #[arg(long, default_value_t = 0.5)]
    pub power: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Prompts generated together.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Stop a completion when its text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop_strings: Vec<String>,
    /// Score these completions instead of generating: JSONL lines with `completion` and the
    /// problem's `id` (or its `index` among the selected problems); a problem's first line is
    /// its greedy answer, further lines its samples. Self-certainty comes from one forward of
    /// --model over prompt + completion.
    #[arg(long)]
    pub completions: Option<PathBuf>,
    /// Python interpreter that runs code benchmarks' code in the sandbox (as root: the first
    /// one on PATH an unprivileged user can run).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Wall-clock and CPU seconds one program of a code benchmark may take.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub code_timeout: u64,
    /// Bytes the KV cache of a batch's generation may take (e.g. 8GiB; default: no bound).
    #[arg(long, value_parser = crate::train::plan::parse_size)]
    pub kv_budget: Option<u64>,
    /// Code programs run at once (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: Option<u64>,
    /// Where items.jsonl, summary.json, report.md and self_certainty_hist.png go.
    #[arg(long, default_value = "runs/eval")]
    pub output_dir: PathBuf,
}

fn system_prompt(arg: &str) -> Option<String> {
    match arg {
        "none" | "" => None,
        other => Some(
            PRESETS
                .iter()
                .find(|(k, _)| *k == other)
                .map_or(other, |(_, v)| v)
                .to_string(),
        ),
    }
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        ..SamplingParams::greedy()
    };
    sampling.check_flags().map_err(anyhow::Error::msg)?;
    if args.tests_field.is_some() && !Path::new(&args.dataset).is_file() {
        anyhow::bail!(
            "--tests-field is for a file of code problems; {:?} is not a file",
            args.dataset
        );
    }
    let dir = data_dir(args.data_dir.as_deref());
    let fields = Fields {
        prompt_field: args.prompt_field.clone(),
        answer_field: match args.tests_field {
            Some(_) => None,
            None => Some(args.answer_field.clone()),
        },
        tests_field: args.tests_field.clone(),
    };
    let problems = load_dataset(&args.dataset, &dir, &fields, args.offset, args.limit)?;
    if problems.is_empty() {
        anyhow::bail!("dataset {}: no problems selected", args.dataset);
    }
    let sandbox = match problems.iter().any(|p| p.task.is_some()) {
        true => Some(Sandbox::new(
            &args.python,
            Limits::with_timeout(args.code_timeout),
        )?),
        false => None,
    };
    let m = args.model.load()?;
    let cfg = EvalConfig {
        kv_budget: args.kv_budget,
        sandbox,
        jobs: args.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            |j| j as usize,
        ),
        system_prompt: system_prompt(&args.system_prompt),
        max_new_tokens: args.max_new_tokens,
        checker: checker(args.mode, args.precision, args.no_strict),
        alignment: args.alignment,
        samples: args.samples,
        sampling,
        power: args.power,
        selections: args.select.clone(),
        seed: args.seed,
        batch_prompts: args.batch,
        stop_strings: args.stop_strings.clone(),
    };
    let bar = ProgressBar::new(problems.len() as u64).with_style(
        ProgressStyle::with_template("eval {bar:30} {pos}/{len} problems, {elapsed} (eta {eta})")
            .expect("valid template"),
    );
    let mut progress = |done: usize| bar.set_position(done as u64);
    let (items, stats) = match &args.completions {
        Some(path) => {
            let given = read_completions(path, &problems)?;
            evaluate_given(&m, &m.decoder, &problems, &given, &cfg, &mut progress)?
        }
        None => evaluate(&m, &m.decoder, &problems, &cfg, &mut progress)?,
    };
    if items.is_empty() {
        anyhow::bail!("no problem has a completion to score");
    }
    bar.finish_and_clear();
    let summary = summarize(
        &items,
        &stats,
        &args.model.model,
        &args.dataset,
        &match cfg.sandbox {
            Some(_) => "code".to_string(),
            None => format!("{:?}", args.mode).to_lowercase(),
        },
        args.power,
    );
    let out = &args.output_dir;
    let mut jsonl = Vec::new();
    for item in &items {
        serde_json::to_writer(&mut jsonl, item)?;
        jsonl.push(b'\n');
    }
    write_atomic(&out.join("items.jsonl"), &jsonl)?;
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let report = markdown(&summary);
    write_atomic(&out.join("report.md"), report.as_bytes())?;
    histogram(&items, &out.join("self_certainty_hist.png"))?;
    println!("{report}");
    eprintln!(
        "wrote {}/{{items.jsonl, summary.json, report.md, self_certainty_hist.png}}",
        out.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct CheckAnswerArgs {
    /// Answer checker.
    #[arg(long, value_enum, default_value_t = Mode::Math)]
    pub mode: Mode,
    /// Decimals a decimal answer is rounded to before comparing (math mode; math-verify's
    /// `float_rounding`).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=crate::answer::MAX_PRECISION as i64))]
    pub precision: u32,
    /// Rename a prediction's free symbols to the gold's in sorted order (math mode;
    /// math-verify's `strict=False`): `f(x)` equals `f(y)`.
    #[arg(long)]
    pub no_strict: bool,
    /// JSONL with `gold` and `prediction` per line (default: standard input).
    #[arg(long, conflicts_with_all = ["gold", "prediction"])]
    pub input: Option<PathBuf>,
    /// One gold answer (with --prediction).
    #[arg(long, requires = "prediction")]
    pub gold: Option<String>,
    /// One prediction (with --gold).
    #[arg(long, requires = "gold")]
    pub prediction: Option<String>,
}

#[derive(serde::Deserialize)]
struct Pair {
    gold: serde_json::Value,
    prediction: serde_json::Value,
}

/// Reads `--completions`: for each of `problems`, the completion texts given for it, in file
/// order. Errors name the file and line.
fn read_completions(
    path: &std::path::Path,
    problems: &[Problem],
) -> anyhow::Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let by_id: std::collections::HashMap<&str, usize> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut given = vec![Vec::new(); problems.len()];
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |msg: String| anyhow::anyhow!("{} line {}: {msg}", path.display(), n + 1);
        let rec: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        let completion = rec
            .get("completion")
            .and_then(|c| c.as_str())
            .ok_or_else(|| at("expected a string field \"completion\"".into()))?;
        let index = match (rec.get("id"), rec.get("index").and_then(|i| i.as_u64())) {
            (Some(id), _) => {
                let id = field_text(id);
                *by_id
                    .get(id.as_str())
                    .ok_or_else(|| at(format!("no selected problem has id {id:?}")))?
            }
            (None, Some(i)) if (i as usize) < problems.len() => i as usize,
            (None, Some(i)) => {
                return Err(at(format!(
                    "index {i} is past the {} selected problems",
                    problems.len()
                )))
            }
            (None, None) => return Err(at("expected \"id\" or \"index\"".into())),
        };
        given[index].push(completion.to_string());
    }
    Ok(given)
}

/// The checker the command-line options describe.
fn checker(mode: Mode, precision: u32, no_strict: bool) -> Checker {
    Checker {
        mode,
        options: Options {
            precision,
            strict: !no_strict,
        },
    }
}

pub fn check_answer(args: &CheckAnswerArgs) -> anyhow::Result<()> {
    let checker = checker(args.mode, args.precision, args.no_strict);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let (Some(g), Some(p)) = (&args.gold, &args.prediction) {
        writeln!(out, "{}", serde_json::to_string(&checker.check(g, p))?)?;
        return Ok(());
    }
    let (name, reader): (String, Box<dyn BufRead>) = match &args.input {
        Some(p) => (
            p.display().to_string(),
            Box::new(std::io::BufReader::new(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            )),
        ),
        None => ("<stdin>".into(), Box::new(std::io::stdin().lock())),
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: reading line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: Pair = serde_json::from_str(&line).with_context(|| {
            format!(
                "{name} line {}: expected {{\"gold\": ..., \"prediction\": ...}}",
                i + 1
            )
        })?;
        let checked = checker.check(&field_text(&pair.gold), &field_text(&pair.prediction));
        writeln!(out, "{}", serde_json::to_string(&checked)?)?;
    }
    Ok(())
}
