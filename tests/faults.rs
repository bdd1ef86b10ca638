//! Reliability under faults, on the tiny fixture model: a diverging run stops with one line
//! naming what went non-finite; a failed checkpoint write names its file and leaves no
//! temporary directory; SIGTERM stops at the end of a step with a checkpoint and resume goes
//! on, a second signal stops at once; SIGKILL at seeded moments, resumed each time, ends with
//! the uninterrupted run's weights and metrics.

mod common;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use common::{checkpoint_weights, metrics_rows, tiny_train_config};
use rand::{Rng, SeedableRng};

fn intuitor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_intuitor"))
}

fn train(cfg: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut c = intuitor();
    c.args(["train", "--config", cfg.to_str().unwrap()])
        .args(["--output-dir", run.to_str().unwrap()])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

fn resume(run: &Path) -> Command {
    let mut c = intuitor();
    c.args(["train", "--resume", run.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

/// The last non-empty line of stderr, which must be the one `error:` line; no panic.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    assert!(last.starts_with("error: "), "{stderr}");
    last.to_string()
}

fn all_finite(dir: &Path) -> bool {
    checkpoint_weights(dir)
        .iter()
        .all(|(_, v)| v.iter().all(|x| x.is_finite()))
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this test owns.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Waits until `done` holds (checked every 20 ms) or the child exits.
fn wait_for(child: &mut Child, done: impl Fn() -> bool) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if done() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_diverging_run_stops_with_one_line_and_writes_no_bad_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(tmp.path(), "");
    let run = tmp.path().join("run");
    let out = train(
        &cfg,
        &run,
        &[
            "--set",
            "learning_rate=1e30",
            "--set",
            "warmup_ratio=0.0",
            "--set",
            "max_steps=3",
            "--set",
            "save_steps=1",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("not finite"), "{line}");
    assert!(line.contains("step "), "{line}");
    assert!(line.contains("last good checkpoint"), "{line}");
    for (_, dir) in intuitor::train::checkpoint::list(&run) {
        assert!(
            all_finite(&dir),
            "{} holds non-finite weights",
            dir.display()
        );
    }
}

#[test]
fn a_failed_checkpoint_write_names_the_file_and_leaves_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(tmp.path(), "");
    let run = tmp.path().join("run");
    // Files over 100 KiB cannot be written (the tiny model's weights are 172 KiB): the write
    // fails with EFBIG, as it would with ENOSPC, once SIGXFSZ is ignored.
    let cmd = format!(
        "ulimit -f 100; trap '' XFSZ; exec '{}' train --config '{}' --output-dir '{}' --set max_steps=1",
        env!("CARGO_BIN_EXE_intuitor"),
        cfg.display(),
        run.display()
    );
    let out = Command::new("bash").args(["-c", &cmd]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("model.safetensors"), "{line}");
    let leftovers: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("checkpoint"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn sigterm_stops_after_the_step_with_a_checkpoint_and_resume_finishes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(tmp.path(), "");
    let run = tmp.path().join("run");
    let steps = 200;
    let mut child = train(
        &cfg,
        &run,
        &[
            "--set",
            &format!("max_steps={steps}"),
            "--set",
            "save_steps=0",
        ],
    )
    .spawn()
    .unwrap();
    let metrics = run.join("metrics.jsonl");
    let early = wait_for(&mut child, || {
        std::fs::read_to_string(&metrics).is_ok_and(|t| t.lines().count() >= 1)
    });
    assert!(
        early.is_none(),
        "the run ended before the signal: {early:?}"
    );
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("SIGTERM") && line.contains("--resume"),
        "{line}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SIGTERM received: stopping after this step"),
        "the signal was not acknowledged: {stderr}"
    );
    let saved = intuitor::train::checkpoint::list(&run);
    let (at, _) = saved.last().expect("a checkpoint was written");
    assert!(*at < steps, "stopped at step {at} of {steps}");
    assert_eq!(metrics_rows(&run).len(), *at);
    let out = resume(&run).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let done: Vec<u64> = metrics_rows(&run)
        .iter()
        .map(|r| r["step"].as_f64().unwrap() as u64)
        .collect();
    assert_eq!(done, (1..=steps as u64).collect::<Vec<_>>());
}

#[test]
fn a_second_signal_stops_at_once_without_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(tmp.path(), "");
    let run = tmp.path().join("run");
    let mut child = train(
        &cfg,
        &run,
        &["--set", "max_steps=200", "--set", "save_steps=0"],
    )
    .spawn()
    .unwrap();
    let metrics = run.join("metrics.jsonl");
    assert!(wait_for(&mut child, || metrics.exists()).is_none());
    // Two different signals are never merged into one delivery; whichever is handled second
    // ends the process with its code.
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let codes = [128 + libc::SIGINT, 128 + libc::SIGTERM];
    assert!(codes.contains(&out.status.code().unwrap_or(0)), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("training stopped"), "{stderr}");
    assert!(intuitor::train::checkpoint::list(&run).is_empty());
}

#[test]
fn weights_that_overflow_in_the_optimizer_step_stop_the_run_before_any_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(tmp.path(), "");
    let run = tmp.path().join("run");
    // A learning rate above f32's range makes the first update infinite.
    let sets = [
        "learning_rate=1e39",
        "warmup_ratio=0.0",
        "max_steps=2",
        "save_steps=1",
    ];
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
    let out = train(&cfg, &run, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("after the optimizer step"), "{line}");
    assert!(line.contains("step 1"), "{line}");
    assert!(intuitor::train::checkpoint::list(&run).is_empty());
}

/// Lines in the run's `metrics.jsonl` (one per step done, a partial last line included).
fn metric_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
}

/// Runs `cmd` to completion, or kills it with SIGKILL `delay` after `run` has `rows` metrics
/// lines; true when it completed.
fn run_or_kill(mut cmd: Command, run: &Path, rows: usize, delay: Duration) -> bool {
    let mut child = cmd.spawn().unwrap();
    if let Some(status) = wait_for(&mut child, || metric_lines(run) >= rows) {
        let out = child.wait_with_output().unwrap();
        assert!(status.success(), "{out:?}");
        return true;
    }
    let start = Instant::now();
    match wait_for(&mut child, || start.elapsed() >= delay) {
        Some(status) => {
            let out = child.wait_with_output().unwrap();
            assert!(status.success(), "{out:?}");
            true
        }
        None => {
            child.kill().unwrap();
            child.wait().unwrap();
            false
        }
    }
}

#[test]
fn sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(tmp.path(), "");
    let steps = [
        "--set",
        "max_steps=40",
        "--set",
        "save_steps=1",
        "--set",
        "save_total_limit=0",
    ];
    let whole = tmp.path().join("whole");
    let out = train(&cfg, &whole, &steps).output().unwrap();
    assert!(out.status.success(), "{out:?}");

    // Each run is killed a seeded 0–30 ms after a seeded number (0–3) of further steps has
    // been logged: while loading, mid-step, or mid-checkpoint (written right after the log).
    let run = tmp.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    let (mut kills, mut resumed_kills, mut finished) = (0, 0, false);
    while !finished {
        let done = intuitor::train::checkpoint::list(&run)
            .last()
            .map_or(0, |c| c.0);
        let has_checkpoint = done > 0;
        if !has_checkpoint && run.exists() {
            // Killed before its first checkpoint: a user starts again.
            std::fs::remove_dir_all(&run).unwrap();
        }
        let cmd = match has_checkpoint {
            true => resume(&run),
            false => train(&cfg, &run, &steps),
        };
        let (rows, delay) = match kills < 16 {
            true => (
                done + rng.random_range(0..4),
                Duration::from_millis(rng.random_range(0..30)),
            ),
            false => (usize::MAX, Duration::MAX),
        };
        finished = run_or_kill(cmd, &run, rows, delay);
        kills += usize::from(!finished);
        resumed_kills += usize::from(!finished && has_checkpoint);
    }
    assert!(kills >= 12, "only {kills} kills landed");
    assert!(
        resumed_kills >= 8,
        "only {resumed_kills} kills after a checkpoint"
    );
    let (a, b) = (metrics_rows(&whole), metrics_rows(&run));
    assert_eq!(a, b, "metrics rows (timings aside) differ");
    let saved = intuitor::train::checkpoint::list(&run);
    assert_eq!(saved.last().map(|s| s.0), Some(40));
    for (_, dir) in &saved {
        intuitor::loader::LoadedModel::load(
            &intuitor::loader::ModelSource::HfDir(dir.clone()),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap_or_else(|e| panic!("{} does not load: {e}", dir.display()));
    }
    assert_eq!(
        checkpoint_weights(&saved.last().unwrap().1),
        checkpoint_weights(&intuitor::train::checkpoint::checkpoint_dir(&whole, 40)),
        "final weights differ"
    );
}
