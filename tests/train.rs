//! `intuitor train` end to end on the tiny fixture model: artefacts, exact resume, atomic
//! checkpoints, config errors.

mod common;

use std::process::Command;

use common::{
    checkpoint_weights as weights, metrics_rows as rows, tiny_train_config as config_file, train_ok,
};
use intuitor::loader::{LoadedModel, ModelSource};

#[test]
fn a_short_run_writes_every_artefact_and_resume_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "");
    let full = tmp.path().join("full");
    train_ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "--output-dir",
        full.to_str().unwrap(),
    ]);
    for f in [
        "config.toml",
        "metrics.jsonl",
        "metrics.csv",
        "samples.jsonl",
        "report.txt",
        "self_certainty.png",
        "kl.png",
        "completion_length.png",
        "learning_rate.png",
        "accuracy.png",
    ] {
        assert!(full.join(f).exists(), "{f} missing");
    }
    let metrics = rows(&full);
    assert_eq!(metrics.len(), 4);
    for key in [
        "reward",
        "reward_std",
        "rewards/self_certainty/mean",
        "rewards/accuracy/mean",
        "self_certainty/mean",
        "self_certainty/std",
        "kl",
        "entropy",
        "completions/mean_length",
        "completions/clipped_ratio",
        "clip_ratio/region_mean",
        "grad_norm",
        "learning_rate",
        "frac_reward_zero_std",
        "loss",
    ] {
        assert!(metrics[0].contains_key(key), "metric {key} missing");
    }
    assert_eq!(
        metrics[0]["learning_rate"], 0.0,
        "the first update runs at lr 0 (warmup)"
    );
    assert!(metrics[1]["learning_rate"].as_f64().unwrap() > 0.0);
    let csv = std::fs::read_to_string(full.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "header + 4 rows");
    // Checkpoints every 2 steps; the final one is a loadable HF directory that moved.
    let ckpt = full.join("checkpoint-4");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "trainer_state.json",
        "optimizer.safetensors",
    ] {
        assert!(ckpt.join(f).exists(), "checkpoint file {f} missing");
    }
    assert!(full.join("checkpoint-2").exists());
    let trained = LoadedModel::load(
        &ModelSource::HfDir(ckpt.clone()),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let initial = common::load_tiny("tiny-qwen2");
    let a = trained.decoder.parameters()[1].1.clone();
    let b = initial.decoder.parameters()[1].1.clone();
    let moved = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 0.0, "training changed the weights");
    assert_eq!(
        trained.tokenizer.encode("What is 2+3?", false).unwrap(),
        initial.tokenizer.encode("What is 2+3?", false).unwrap()
    );
    assert!(trained.chat_template.is_some());

    // Stop after 2 steps, resume: the same metrics and weights as the uninterrupted run.
    let split = tmp.path().join("split");
    train_ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "--output-dir",
        split.to_str().unwrap(),
        "--stop-after",
        "2",
    ]);
    assert_eq!(rows(&split).len(), 2);
    train_ok(&["--resume", split.to_str().unwrap()]);
    assert_eq!(
        rows(&split),
        metrics,
        "resumed metrics equal the uninterrupted run's"
    );
    assert_eq!(
        weights(&split.join("checkpoint-4")),
        weights(&ckpt),
        "resumed weights are identical"
    );
}

#[test]
fn an_interrupted_checkpoint_write_leaves_the_previous_one_loadable() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "");
    let run = tmp.path().join("run");
    train_ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "--output-dir",
        run.to_str().unwrap(),
        "--set",
        "max_steps=2",
        "--set",
        "save_steps=1",
    ]);
    // A crash mid-write leaves only the temporary directory, with partial files.
    let partial = run.join(".checkpoint-3.tmp");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), b"partial").unwrap();
    let found = intuitor::train::checkpoint::list(&run);
    assert_eq!(
        found.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2]
    );
    LoadedModel::load(
        &ModelSource::HfDir(found[1].1.clone()),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .expect("the last complete checkpoint loads");
}

/// A KV budget that cannot hold the longest prompt and a full completion is refused at the
/// start, not when that prompt comes up; one that holds a single completion trains.
#[test]
fn a_kv_budget_too_small_for_one_completion_is_refused_at_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "");
    let run = |budget: &str| {
        Command::new(env!("CARGO_BIN_EXE_intuitor"))
            .args(["train", "--config", cfg.to_str().unwrap(), "--set"])
            .arg(format!("rollout_kv_budget={budget}"))
            .args([
                "--set",
                "max_steps=1",
                "--set",
                "save_steps=0",
                "--output-dir",
            ])
            .arg(tmp.path().join(budget))
            .output()
            .unwrap()
    };
    common::assert_clean_error(
        &run("1024"),
        &["rollout_kv_budget = 1024 bytes holds no completion"],
    );
    let out = run("\"64KiB\"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "learning_rat = 1.0");
    let out = Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .args(["train", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("learning_rat") && err.contains("cfg.toml"),
        "{err}"
    );
    for (set, needle) in [
        ("num_generations=1", "num_generations"),
        ("per_device_train_batch_size=5", "divisible"),
        ("beta=\"x\"", "beta"),
        ("rollout_kv_budget=\"8 bananas\"", "rollout_kv_budget"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_intuitor"))
            .args(["train", "--set", set])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "--set {set}: {err}"
        );
    }
}
