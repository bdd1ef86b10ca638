//! Configuration errors: config and usage errors exit with code 2 naming the file (or `--set`
//! argument) and the key, runtime failures with 1.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::assert_clean_error;

/// Runs the binary in `dir` (so that nothing lands in the repository).
fn intuitor_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs")
}

/// A clean one-line error with exit code `code` that contains every needle.
fn assert_exit(out: &Output, code: i32, needles: &[&str]) {
    assert_clean_error(out, needles);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_errors_exit_2_naming_the_file_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg.toml");
    let path = cfg.to_str().unwrap();
    for (text, needles) in [
        (
            "datset = \"x.jsonl\"\n",
            &["cfg.toml: unknown key datset, did you mean dataset?"][..],
        ),
        (
            "beta = \"high\"\n",
            &["cfg.toml: key beta: invalid type: string \"high\", expected f64"],
        ),
        (
            "num_generations = 1\n",
            &["cfg.toml: key num_generations: must be at least 2"],
        ),
        (
            "prompts_per_step = 3\nper_device_train_batch_size = 5\n",
            &[
                "cfg.toml: key per_device_train_batch_size: ",
                "must be divisible",
            ],
        ),
        (
            "beta = 0.1\nbeta 0.2\n",
            &["cfg.toml: not valid TOML (line 2)"],
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = intuitor_in(tmp.path(), &["train", "--config", path]);
        assert_exit(&out, 2, needles);
    }
    let out = intuitor_in(tmp.path(), &["train", "--config", "missing.toml"]);
    assert_exit(&out, 2, &["missing.toml: cannot read the configuration"]);
}

#[test]
fn set_errors_exit_2_naming_the_set_argument_not_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(&cfg, "num_generations = 3\nprompts_per_step = 2\n").unwrap();
    let path = cfg.to_str().unwrap();
    for (args, needle) in [
        (
            &["train", "--set", "datset=x.jsonl"][..],
            "--set datset=x.jsonl: unknown key datset",
        ),
        (
            &["train", "--config", path, "--set", "num_generations=1"],
            "--set num_generations=1: key num_generations: must be at least 2",
        ),
        (
            &[
                "train",
                "--config",
                path,
                "--set",
                "per_device_train_batch_size=5",
            ],
            "--set per_device_train_batch_size=5: key per_device_train_batch_size: ",
        ),
        (
            &["train", "--set", "beta=\"x\""],
            "--set beta=\"x\": key beta: invalid type",
        ),
        (
            &["train", "--set", "beta"],
            "--set beta: expected KEY=VALUE",
        ),
    ] {
        let out = intuitor_in(tmp.path(), args);
        assert_exit(&out, 2, &[needle]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("cfg.toml") && !err.contains("demo.toml"),
            "{err}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["train", "--no-such-flag"][..],
        &["generate", "--prompt", "hi", "-n", "0"],
    ] {
        let out = intuitor_in(tmp.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_runtime_failure_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let out = intuitor_in(
        tmp.path(),
        &["train", "--set", "model=/nonexistent/model-dir"],
    );
    assert_exit(&out, 1, &["/nonexistent/model-dir"]);
}
