//! Shared helpers for the integration tests: fixture paths, golden tensors, model loading.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use intuitor::loader::{LoadedModel, ModelSource};

pub mod trl;

/// `tests/fixtures/<name>`; `INTUITOR_FIXTURES` names the folder instead, for a test binary
/// run away from its source tree (scripts/gpu_check.sh on a GPU machine).
pub fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("INTUITOR_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures")
            .join(name),
    }
}

pub fn golden(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).expect("golden fixture loads")
}

pub fn load_tiny(name: &str) -> LoadedModel {
    LoadedModel::load(&ModelSource::HfDir(fixture(name)), DType::F32, &Device::Cpu)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// The default model; the test command fetches it first (`bash scripts/fetch_model.sh`).
pub fn load_default() -> LoadedModel {
    let source = ModelSource::resolve("default")
        .unwrap_or_else(|e| panic!("{e} (the README's test command fetches it)"));
    LoadedModel::load(&source, DType::F32, &Device::Cpu).expect("default model loads")
}

/// A loss with every term on: bnpo, β 0.04, clipping at 0.2, T 0.9, 16 tokens at most.
pub fn bnpo_with_kl() -> intuitor::loss::LossConfig {
    intuitor::loss::LossConfig {
        loss_type: intuitor::loss::LossType::Bnpo,
        beta: 0.04,
        epsilon_low: 0.2,
        epsilon_high: 0.2,
        max_completion_length: 16,
        temperature: 0.9,
        kl_bias_correction: false,
    }
}

/// The rows of the i64 tensor `ids` `[n, len]` where `mask` is 1 (the TRL fixture's prompts
/// and completions, left- and right-padded).
pub fn masked_rows(t: &HashMap<String, Tensor>, ids: &str, mask: &str) -> Vec<Vec<u32>> {
    let ids: Vec<Vec<i64>> = t[ids].to_vec2().unwrap();
    let mask: Vec<Vec<i64>> = t[mask].to_vec2().unwrap();
    ids.iter()
        .zip(&mask)
        .map(|(r, m)| {
            r.iter()
                .zip(m)
                .filter(|(_, &m)| m == 1)
                .map(|(&x, _)| x as u32)
                .collect()
        })
        .collect()
}

pub fn ids_u32(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

/// Largest |a − b| over the rows of `[batch, seq, vocab]` logits whose mask is 1.
pub fn max_abs_diff_masked(a: &Tensor, b: &Tensor, mask: &[Vec<u32>]) -> f32 {
    let a = a.to_vec3::<f32>().unwrap();
    let b = b.to_vec3::<f32>().unwrap();
    let mut worst = 0f32;
    for (r, row) in mask.iter().enumerate() {
        for (t, &m) in row.iter().enumerate() {
            if m == 1 {
                for (x, y) in a[r][t].iter().zip(&b[r][t]) {
                    worst = worst.max((x - y).abs());
                }
            }
        }
    }
    worst
}

/// max |a − b| over all elements (f32 tensors of one shape).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Runs the built `intuitor` binary.
pub fn intuitor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Runs `intuitor train ARGS` and asserts it succeeded.
pub fn train_ok(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .arg("train")
        .args(args)
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts a clean failure: exit ≠ 0, no panic, a single `error:` line mentioning every needle.
pub fn assert_clean_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

/// A training config for the tiny fixture model in `dir/cfg.toml`, with `extra` TOML lines.
pub fn tiny_train_config(dir: &Path, extra: &str) -> PathBuf {
    let model = fixture("tiny-qwen2");
    let text = format!(
        r#"model = "{}"
dataset = "demo"
device = "cpu"
num_generations = 3
prompts_per_step = 2
per_device_train_batch_size = 2
max_completion_length = 6
max_prompt_length = 128
reward_funcs = ["self_certainty", "accuracy", "plurality_vote"]
reward_weights = [1.0, 0.0, 0.0]
beta = 0.02
learning_rate = 1e-3
warmup_ratio = 0.25
max_steps = 4
save_steps = 2
save_total_limit = 3
log_completions_steps = 1
{extra}
"#,
        model.display()
    );
    let path = dir.join("cfg.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Metrics rows without the timing fields (which differ run to run).
pub fn metrics_rows(dir: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut m: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(l).unwrap();
            m.retain(|k, _| !k.contains("time") && !k.contains("per_s"));
            m
        })
        .collect()
}

/// The weights of a checkpoint directory, sorted by name.
pub fn checkpoint_weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let t =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let mut v: Vec<_> = t
        .into_iter()
        .map(|(k, x)| {
            let x = x.to_dtype(candle_core::DType::F32).unwrap();
            (k, x.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A data directory laid out like `shared/data` holding one fixture at `dest` (e.g.
/// `gsm8k/test.jsonl`).
pub fn data_dir_with(fixture_name: &str, dest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(dest);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(fixture(fixture_name), to).unwrap();
    dir
}

/// The JSON lines of a file (an eval run's `items.jsonl`).
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
