//! The configuration reference and its errors: the README's configuration table and the field
//! docs of `src/config.rs` list every `TrainConfig` key with the default `TrainConfig::default()`
//! has; config and usage errors exit with code 2 naming the file (or `--set` argument) and the
//! key, runtime failures with 1.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::assert_clean_error;
use intuitor::config::TrainConfig;

/// `(key, default)` rows of the README's configuration table; the default as written: a TOML
/// literal in backticks (unwrapped here), or `none`.
fn readme_rows(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (unquote(cells[1]).to_string(), unquote(cells[2]).to_string())
        })
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell)
}

/// `(field, default)` for each field of `pub struct TrainConfig` in `source`: the default is the
/// text after "Default " in its doc comment, a TOML literal in backticks or `none` ("" when the
/// doc states none).
fn doc_rows(source: &str) -> Vec<(String, String)> {
    let body = source
        .split("pub struct TrainConfig {")
        .nth(1)
        .expect("src/config.rs defines TrainConfig");
    let mut rows = Vec::new();
    let mut doc = String::new();
    for line in body.lines().map(str::trim) {
        if line == "}" {
            break;
        }
        if let Some(text) = line.strip_prefix("///") {
            doc.push_str(text);
            doc.push(' ');
        } else if let Some(field) = line.strip_prefix("pub ") {
            let name = field.split(':').next().unwrap_or_default().to_string();
            let default = match doc.split_once("Default ") {
                Some((_, rest)) if rest.starts_with("none") => "none".to_string(),
                Some((_, rest)) => rest
                    .strip_prefix('`')
                    .and_then(|r| r.split('`').next())
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            };
            rows.push((name, default));
            doc.clear();
        }
    }
    rows
}

/// Everything that keeps `rows` from being an exact list of `TrainConfig`'s keys with their
/// defaults. The keys come from serializing the defaults (serde_json keeps `None` as null).
fn disagreements(rows: &[(String, String)]) -> Vec<String> {
    let default = TrainConfig::default();
    let serde_json::Value::Object(fields) = serde_json::to_value(&default).unwrap() else {
        panic!("TrainConfig serializes to an object");
    };
    let mut problems = Vec::new();
    for key in fields.keys() {
        match rows.iter().filter(|(k, _)| k == key).count() {
            0 => problems.push(format!("{key}: missing")),
            1 => {}
            n => problems.push(format!("{key}: listed {n} times")),
        }
    }
    for (key, text) in rows {
        let Some(value) = fields.get(key) else {
            problems.push(format!("{key}: not a TrainConfig key"));
            continue;
        };
        if text == "none" {
            if !value.is_null() {
                problems.push(format!("{key}: listed as none, the default is {value}"));
            }
            continue;
        }
        // Deserialized into the field's own type, so that 0.9 means the f32 0.9.
        let parsed = format!("{key} = {text}")
            .parse::<toml::Table>()
            .map_err(|e| e.message().to_string())
            .and_then(|t| {
                toml::Value::Table(t)
                    .try_into::<TrainConfig>()
                    .map_err(|e| e.message().to_string())
            });
        match parsed {
            Ok(c) if c == default => {}
            Ok(_) => problems.push(format!("{key}: listed as {text}, the default is {value}")),
            Err(e) => problems.push(format!("{key}: default {text:?} does not parse: {e}")),
        }
    }
    problems
}

#[test]
fn the_readme_table_lists_every_key_with_its_default() {
    let rows = readme_rows(include_str!("../README.md"));
    assert_eq!(disagreements(&rows), Vec::<String>::new());
}

#[test]
fn every_field_doc_states_its_default() {
    let rows = doc_rows(include_str!("../src/config.rs"));
    assert_eq!(disagreements(&rows), Vec::<String>::new());
}

#[test]
fn the_reference_check_catches_missing_extra_and_wrong_rows() {
    let mut rows = readme_rows(include_str!("../README.md"));
    rows.retain(|(k, _)| k != "beta");
    for (k, v) in rows.iter_mut() {
        match k.as_str() {
            "temperature" => *v = "1.0".into(),
            "epsilon_high" => *v = "0.2".into(),
            "answer_mode" => *v = "0 (off)".into(),
            _ => {}
        }
    }
    rows.push(("datset".into(), "\"demo\"".into()));
    rows.push(("seed".into(), "7".into()));
    let found = disagreements(&rows);
    for needle in [
        "beta: missing",
        "temperature: listed as 1.0",
        "epsilon_high: listed as 0.2",
        "answer_mode: default \"0 (off)\" does not parse",
        "datset: not a TrainConfig key",
        "seed: listed 2 times",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(needle)),
            "{needle}: {found:?}"
        );
    }
    assert_eq!(found.len(), 6, "{found:?}");
    let doc = "pub struct TrainConfig {\n    /// β. Default `0.04`: TRL.\n    pub beta: f64,\n    /// Undocumented default.\n    pub seed: u64,\n}";
    assert_eq!(
        doc_rows(doc),
        [
            ("beta".to_string(), "0.04".to_string()),
            ("seed".to_string(), String::new())
        ]
    );
}

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
            "gradient_checkpointing = \"sometimes\"\n",
            &["cfg.toml: key gradient_checkpointing: invalid value: string \"sometimes\", expected true, false or \"auto\""],
        ),
        (
            "save_dtype = \"fp8\"\n",
            &["cfg.toml: key save_dtype: expected \"auto\", \"f32\", \"bf16\" or \"f16\", got \"fp8\""],
        ),
        (
            "min_p = 1.5\n",
            &["cfg.toml: key min_p: must be in [0, 1], got 1.5"],
        ),
        (
            "repetition_penalty = 0\n",
            &["cfg.toml: key repetition_penalty: must be finite and > 0 (1 = off), got 0"],
        ),
        (
            "answer_precision = 40\n",
            &["cfg.toml: key answer_precision: must be at most 12 decimals, got 40"],
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
