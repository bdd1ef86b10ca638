//! The evaluation loop (spec §9): greedy pass@1 on a benchmark with the training system prompt,
//! optionally N samples per problem for pass@k, maj@k and best-of-N selection (spec §11). Every
//! completion carries its self-certainty from the rollout engine (no second forward).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::answer::select::{select, Selection};
use crate::answer::{Checker, Verdict};
use crate::code_check as code;
use crate::data::{self, code as code_data, demo, Fields, Problem};
use crate::loader::LoadedModel;
use crate::model::Decoder;
use crate::rollout::{rollout, Completion, FinishReason, PromptRequest, RolloutConfig};
use crate::sampling::SamplingParams;
use crate::sandbox::Sandbox;
use crate::score::score_completion;
use crate::self_certainty::Alignment;

/// The built-in benchmark names and where their files live under the data directory.
pub const BUILTIN: &[(&str, &str, &str, &str)] = &[
    // (name, file, prompt field, answer field)
    ("gsm8k", "gsm8k/test.jsonl", "question", "answer"),
    ("math500", "math/math500_test.jsonl", "problem", "answer"),
    ("svamp", "extra/svamp.jsonl", "Body+Question", "Answer"),
    ("aime24", "extra/aime24.jsonl", "problem", "answer"),
    ("amc23", "extra/amc23.jsonl", "problem", "answer"),
];

/// The data directory: `--data-dir`, else `$INTUITOR_DATA_DIR`, else the first of `shared/data`
/// and `../shared/data` that exists.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.into();
    }
    if let Ok(d) = std::env::var("INTUITOR_DATA_DIR") {
        return d.into();
    }
    ["shared/data", "../shared/data"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| "../shared/data".into())
}

/// MBPP's evaluation split.
fn load_mbpp_test(path: &Path) -> Result<Vec<Problem>, data::DataError> {
    code_data::load_mbpp(
        path,
        |id| code_data::MBPP_TEST_IDS.contains(&id),
        code_data::mbpp_prompt,
    )
}

/// A code benchmark's loader.
type CodeLoader = fn(&Path) -> Result<Vec<Problem>, data::DataError>;

/// Loads `dataset` (a built-in name, `demo` for held-out demo problems, or a file), skipping
/// `offset` problems and keeping at most `limit`.
pub fn load_dataset(
    dataset: &str,
    data_dir: &Path,
    fields: &Fields,
    offset: usize,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Problem>> {
    let take = |v: Vec<Problem>| -> Vec<Problem> {
        v.into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    };
    if dataset == "demo" {
        let n = offset + limit.unwrap_or(500);
        return Ok(take(demo::problems(demo::Split::Test, n)));
    }
    let code = match dataset {
        "cruxeval" => Some((
            "cruxeval/cruxeval.jsonl",
            code_data::load_cruxeval as CodeLoader,
        )),
        "humaneval" => Some((
            "humaneval/HumanEval.jsonl",
            code_data::load_humaneval as CodeLoader,
        )),
        "mbpp" => Some(("mbpp/mbpp.jsonl", load_mbpp_test as CodeLoader)),
        _ => None,
    };
    if let Some((file, load)) = code {
        let path = data_dir.join(file);
        if !path.is_file() {
            anyhow::bail!(
                "dataset {dataset}: {} not found; pass --data-dir (the folder with {})",
                path.display(),
                file.split('/').next().unwrap_or(file)
            );
        }
        return Ok(take(load(&path)?));
    }
    let problems = match BUILTIN.iter().find(|b| b.0 == dataset) {
        Some((_, file, prompt, answer)) => {
            let path = data_dir.join(file);
            if !path.is_file() {
                anyhow::bail!(
                    "dataset {dataset}: {} not found; pass --data-dir (the folder with gsm8k/, math/, extra/)",
                    path.display()
                );
            }
            data::load(
                &path,
                &Fields {
                    prompt_field: prompt.to_string(),
                    answer_field: Some(answer.to_string()),
                    tests_field: None,
                },
            )?
        }
        None => data::load(Path::new(dataset), fields)?,
    };
    Ok(take(problems))
}

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub system_prompt: Option<String>,
    pub max_new_tokens: usize,
    pub checker: Checker,
    pub alignment: Alignment,
    /// N samples per problem (0: greedy only).
    pub samples: usize,
    pub sampling: SamplingParams,
    pub power: f64,
    /// Best-of-N rules to apply to the samples.
    pub selections: Vec<Selection>,
    pub seed: u64,
    /// Prompts per rollout batch.
    pub batch_prompts: usize,
    pub stop_strings: Vec<String>,
    /// Runs the code of code benchmarks (`None`: a math-only evaluation).
    pub sandbox: Option<Sandbox>,
    /// Completions judged at once (code runs in parallel processes).
    pub jobs: usize,
    /// Bytes the rollout's KV cache may take (`--kv-budget`; `None`: a batch at once).
    pub kv_budget: Option<u64>,
}

/// One generated answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answered {
    pub completion: String,
    pub answer: Option<String>,
    pub verdict: Verdict,
    /// Why a code answer is not right (`wrong output`, `timeout`, `error: …`, or why no
    /// answer could be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub self_certainty: f64,
    pub length: usize,
    pub finish_reason: FinishReason,
}

/// One problem's results.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub id: String,
    pub prompt: String,
    pub gold: Option<String>,
    /// The greedy completion.
    #[serde(flatten)]
    pub greedy: Answered,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Answered>,
    /// Index into `samples` chosen by each selection rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selected: Vec<(Selection, Option<usize>)>,
}

impl ItemResult {
    /// Whether the sample chosen by `how` is correct.
    pub fn selected_correct(&self, how: Selection) -> bool {
        self.selected
            .iter()
            .find(|(s, _)| *s == how)
            .and_then(|(_, i)| *i)
            .is_some_and(|i| self.samples[i].verdict.is_true())
    }
}

fn answered(
    model: &LoadedModel,
    c: &Completion,
    p: &Problem,
    cfg: &EvalConfig,
) -> anyhow::Result<Answered> {
    let text = model.tokenizer.decode(&c.ids, true)?;
    let (answer, verdict, reason) = match (&p.task, &cfg.sandbox) {
        (Some(task), Some(sandbox)) => match code::answer_of(task, &text) {
            Ok(answer) => {
                let (right, why) = code::judge(task, &answer, sandbox)?;
                (Some(answer), right.into(), (!right).then_some(why))
            }
            Err(why) => (None, Verdict::False, Some(why)),
        },
        (Some(_), None) => anyhow::bail!("problem {}: a code task needs a sandbox", p.id),
        // No gold answer → an empty gold, which `check` reports as `unknown`.
        (None, _) => {
            let checked = cfg.checker.check(p.answer.as_deref().unwrap_or(""), &text);
            (checked.prediction_parsed, checked.verdict, None)
        }
    };
    Ok(Answered {
        answer,
        verdict,
        reason,
        self_certainty: c.self_certainty(cfg.alignment) as f64,
        length: c.mask_len,
        finish_reason: c.finish_reason,
        completion: text,
    })
}

/// Whether two answers agree, for the votes of best-of-N: by the checker, or for code answers by
/// their text without spaces.
fn same_answer(p: &Problem, cfg: &EvalConfig, a: &str, b: &str) -> bool {
    match p.task {
        Some(_) => {
            let squash = |s: &str| s.split_whitespace().collect::<String>();
            squash(a) == squash(b)
        }
        None => cfg.checker.equivalent(a, b).is_true(),
    }
}

/// Each problem's results from its completions, `groups[i]` for `problems[i]`: the first its
/// greedy completion, the rest its samples. Every completion is judged first, up to
/// `cfg.jobs` at once.
fn item_results(
    model: &LoadedModel,
    problems: &[Problem],
    groups: &[Vec<&Completion>],
    cfg: &EvalConfig,
) -> anyhow::Result<Vec<ItemResult>> {
    let flat: Vec<(&Problem, &Completion)> = problems
        .iter()
        .zip(groups)
        .flat_map(|(p, g)| g.iter().map(move |c| (p, *c)))
        .collect();
    let mut judged =
        code::par_map(&flat, cfg.jobs, |(p, c)| answered(model, c, p, cfg))?.into_iter();
    problems
        .iter()
        .zip(groups)
        .map(|(p, g)| {
            let mut mine = judged
                .by_ref()
                .take(g.len())
                .collect::<anyhow::Result<Vec<Answered>>>()?;
            let greedy = mine.remove(0);
            Ok(item_result(p, greedy, mine, cfg))
        })
        .collect()
}

/// One problem's results from its judged greedy completion and samples.
fn item_result(p: &Problem, greedy: Answered, mine: Vec<Answered>, cfg: &EvalConfig) -> ItemResult {
    let answers: Vec<Option<String>> = mine.iter().map(|a| a.answer.clone()).collect();
    let sc: Vec<f64> = mine.iter().map(|a| a.self_certainty).collect();
    let same = |a: &str, b: &str| same_answer(p, cfg, a, b);
    let selected = if mine.is_empty() {
        Vec::new()
    } else {
        [
            Selection::SelfCertainty,
            Selection::Borda,
            Selection::Majority,
        ]
        .into_iter()
        .map(|how| (how, select(how, &answers, &sc, cfg.power, &same)))
        .collect()
    };
    ItemResult {
        id: p.id.clone(),
        prompt: p
            .prompt
            .clone()
            .unwrap_or_else(|| format!("{:?}", p.messages)),
        gold: p.answer.clone(),
        greedy,
        samples: mine,
        selected,
    }
}

/// Scores completions written elsewhere (`eval --completions`): `given[i]` holds problem `i`'s
/// completion texts, the first taking the greedy answer's place and the rest the samples'; each
/// is tokenized after the problem's prompt and scored with one forward of `decoder`
/// ([`score_completion`]: self-certainty and length as for a generated one), then judged.
/// Problems without a completion are left out.
pub fn evaluate_given(
    model: &LoadedModel,
    decoder: &Decoder,
    problems: &[Problem],
    given: &[Vec<String>],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<(Vec<ItemResult>, RunStats)> {
    let start = Instant::now();
    let stop_ids = model.tokenizer.stop_ids();
    let t = match cfg.samples {
        0 => 1.0,
        _ => cfg.sampling.temperature.max(f32::EPSILON),
    };
    let mut stats = RunStats::default();
    let (mut kept, mut scored) = (Vec::new(), Vec::new());
    for (p, texts) in problems.iter().zip(given) {
        if texts.is_empty() {
            continue;
        }
        let prompt = model.problem_ids(p, cfg.system_prompt.as_deref())?;
        let mine = texts
            .iter()
            .map(|text| {
                let ids = model.tokenizer.encode(text, false)?;
                score_completion(decoder, &prompt, &ids, t, &stop_ids)
                    .map_err(|e| anyhow::anyhow!("problem {}: {e}", p.id))
            })
            .collect::<anyhow::Result<Vec<Completion>>>()?;
        stats.generated_tokens += mine.iter().map(|c| c.ids.len()).sum::<usize>();
        kept.push(p.clone());
        scored.push(mine);
        progress(kept.len());
    }
    let groups: Vec<Vec<&Completion>> = scored.iter().map(|g| g.iter().collect()).collect();
    let items = item_results(model, &kept, &groups, cfg)?;
    stats.wall_s = start.elapsed().as_secs_f64();
    Ok((items, stats))
}

/// Runs the evaluation; `progress(done)` is called after each batch of problems.
pub fn evaluate(
    model: &LoadedModel,
    decoder: &Decoder,
    problems: &[Problem],
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<(Vec<ItemResult>, RunStats)> {
    let requests: Vec<PromptRequest> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(PromptRequest {
                ids: model.problem_ids(p, cfg.system_prompt.as_deref())?,
                seed: cfg.seed.wrapping_add(i as u64),
                max_new_tokens: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let base = RolloutConfig {
        num_generations: 1,
        max_new_tokens: cfg.max_new_tokens,
        sampling: SamplingParams::greedy(),
        stop_ids: model.tokenizer.stop_ids(),
        stop_strings: cfg.stop_strings.clone(),
        keep_after_last: cfg.alignment == Alignment::Openr1,
        kv_budget: cfg.kv_budget,
        prefill_batch: None,
    };
    let sampled = RolloutConfig {
        num_generations: cfg.samples,
        sampling: cfg.sampling,
        ..base.clone()
    };
    let mut items = Vec::with_capacity(problems.len());
    let mut stats = RunStats::default();
    let start = Instant::now();
    let step = cfg.batch_prompts.max(1);
    for (chunk_p, chunk_r) in problems.chunks(step).zip(requests.chunks(step)) {
        let greedy = rollout(decoder, chunk_r, &base, None)?;
        let samples = if cfg.samples > 0 {
            rollout(decoder, chunk_r, &sampled, None)?
        } else {
            Vec::new()
        };
        for c in greedy.iter().chain(&samples) {
            stats.generated_tokens += c.ids.len();
        }
        let groups: Vec<Vec<&Completion>> = greedy
            .iter()
            .enumerate()
            .map(|(k, c)| {
                std::iter::once(c)
                    .chain(samples.iter().filter(|s| s.prompt_index == k))
                    .collect()
            })
            .collect();
        items.extend(item_results(model, chunk_p, &groups, cfg)?);
        progress(items.len());
    }
    stats.wall_s = start.elapsed().as_secs_f64();
    Ok((items, stats))
}

/// Throughput of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    pub generated_tokens: usize,
    pub wall_s: f64,
}
