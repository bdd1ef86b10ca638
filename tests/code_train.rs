//! Code training (issue 21): the code rewards judged in the sandbox (asserts and standard-input
//! cases, forged counts and early exits), tests read from a dataset field, and training runs on
//! code problems: GRPO-code on MBPP's training part, and the Codeforces recipe on a user's file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_clean_error, data_dir_with, fixture, read_jsonl, tiny_train_config};
use intuitor::code_check::judge;
use intuitor::data::code::{tests_from_json, CodeTask};
use intuitor::reward::code::{format_rewards, tests_rewards};
use intuitor::sandbox::{Limits, Sandbox};

fn sandbox() -> Sandbox {
    let limits = Limits {
        timeout: Duration::from_secs(3),
        cpu_seconds: 3,
        ..Limits::default()
    };
    Sandbox::new("python3", limits).expect("python3 runs")
}

fn texts(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

#[test]
fn code_tests_counts_the_asserts_a_program_passes() {
    let task = CodeTask::Tests {
        setup: String::new(),
        tests: texts(&[
            "assert add(1, 2) == 3",
            "assert add(2, 2) == 4",
            "assert add(0, 5) == 5",
        ]),
        entry_point: "add".into(),
    };
    let completions = texts(&[
        "Here:\n```python\ndef add(a, b):\n    return a + b\n```",
        // 2 * 2 == 4 only.
        "```python\ndef add(a, b):\n    return a * b\n```",
        "I do not know.",
        "```python\nwhile True:\n    pass\n```",
        // A forged count before the tests, an exit inside them, an exit before them.
        "```python\ndef add(a, b):\n    return 0\nprint(3)\n```",
        "```python\ndef add(a, b):\n    raise SystemExit(0)\n```",
        "```python\nimport os\ndef add(a, b):\n    return a + b\nos._exit(0)\n```",
        // Shadowing the harness's tools, and printing 100 KB before a right answer.
        "```python\nexec = lambda *a, **k: None\nassert_ = print\ndef add(a, b):\n    return 0\n```",
        "```python\nprint('x' * 100_000)\ndef add(a, b):\n    return a + b\n```",
        "anything",
    ]);
    let mut tasks = vec![Some(&task); completions.len()];
    tasks[9] = None;
    let s = sandbox();
    let fraction = tests_rewards(&completions, &tasks, &s, 2, false).unwrap();
    assert_eq!(
        fraction,
        vec![
            Some(1.0),
            Some(1.0 / 3.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(1.0),
            None
        ]
    );
    let binary = tests_rewards(&completions[..2], &tasks[..2], &s, 1, true).unwrap();
    assert_eq!(binary, vec![Some(1.0), Some(0.0)]);
}

#[test]
fn stdin_cases_are_judged_by_their_output_tokens() {
    let task = tests_from_json(&serde_json::json!({
        "input": ["1 2\n", "3 4\n"],
        "output": ["3\n", "7"],
    }))
    .unwrap();
    assert!(matches!(&task, CodeTask::StdinStdout { cases } if cases.len() == 2));
    let completions = texts(&[
        "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        "```python\nimport sys\nprint(' ', sum(map(int, sys.stdin.read().split())), '\\n')\n```",
        "```python\nprint(3)\n```",
        "```python\nprint(int(input()))\n```",
    ]);
    let tasks = vec![Some(&task); completions.len()];
    let s = sandbox();
    assert_eq!(
        tests_rewards(&completions, &tasks, &s, 2, false).unwrap(),
        vec![Some(1.0), Some(1.0), Some(0.5), Some(0.0)]
    );
    let program = |i: usize| completions[i].split("```python\n").nth(1).unwrap();
    assert_eq!(
        judge(&task, program(0).trim_end_matches("```"), &s).unwrap(),
        (true, "passed".to_string())
    );
    assert_eq!(
        judge(&task, "print(3)", &s).unwrap(),
        (false, "case 2: wrong answer".to_string())
    );
    let (right, why) = judge(&task, "print(int(input()))", &s).unwrap();
    assert!(
        !right && why.starts_with("case 1: error: ValueError"),
        "{why}"
    );
    let (right, why) = judge(&task, "import time\ntime.sleep(60)", &s).unwrap();
    assert_eq!((right, why.as_str()), (false, "case 1: timeout"));
    // An expected output longer than the sandbox's output bound is still compared whole; a
    // trailing block of sample output is not taken for the program.
    let long = tests_from_json(&serde_json::json!([
        {"input": "70000\n", "output": "x".repeat(70_000)},
    ]))
    .unwrap();
    let program = "Code:\n```python\nprint('x' * int(input()))\n```\nOutput:\n```\nxxx\n```";
    assert_eq!(
        tests_rewards(&texts(&[program]), &[Some(&long)], &s, 1, false).unwrap(),
        vec![Some(1.0)]
    );
}

#[test]
fn code_format_needs_a_python_block_that_parses() {
    let completions = texts(&[
        "```python\nx = 1\n```",
        "```python\ndef f(:\n    pass\n```",
        "x = 1",
        "```python\nprint('hi')\n```\nand finally\n```python\nif True\n```",
        "```py\nimport os\n```",
        "```python\n\n```",
    ]);
    assert_eq!(
        format_rewards(&completions, &sandbox()).unwrap(),
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0].map(Some).to_vec()
    );
}

/// `intuitor train` with `config` and `--set` overrides, MBPP under `data`.
fn train(
    config: &std::path::Path,
    data: &std::path::Path,
    sets: &[String],
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intuitor"));
    cmd.args(["train", "--config", config.to_str().unwrap()])
        .env("INTUITOR_DATA_DIR", data);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.output().expect("binary runs")
}

#[test]
fn grpo_code_trains_on_mbpp_with_the_papers_templates() {
    let data = data_dir_with("mbpp.jsonl", "mbpp/mbpp.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config(dir.path(), "");
    let out = dir.path().join("run");
    let sets = [
        "dataset=\"mbpp\"".to_string(),
        "prompt_template=\"code\"".into(),
        "max_prompt_length=512".into(),
        "reward_funcs=[\"code_tests\", \"code_format\", \"self_certainty\"]".into(),
        "reward_weights=[1.0, 0.0, 0.0]".into(),
        "max_steps=2".into(),
        "save_steps=0".into(),
        format!("output_dir=\"{}\"", out.display()),
    ];
    let o = train(&cfg, data.path(), &sets);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let samples = read_jsonl(&out.join("samples.jsonl"));
    assert!(!samples.is_empty());
    for s in &samples {
        let prompt = s["prompt"].as_str().unwrap();
        assert!(
            prompt.ends_with("```python\n# Your code here\n```")
                && prompt.contains("Your code should pass these tests:\n\nassert "),
            "{prompt}"
        );
        let tests = s["rewards"]["code_tests"].as_f64().unwrap();
        let format = s["rewards"]["code_format"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&tests) && (format == 0.0 || format == 1.0),
            "{s}"
        );
    }
    // One template per problem, not one for all: the two steps' logged prompts differ in it.
    let opening = |s: &serde_json::Value| s["prompt"].as_str().unwrap()[..24].to_string();
    assert!(samples.iter().any(|s| opening(s) != opening(&samples[0])));
    let rows = common::metrics_rows(&out);
    assert!(
        rows[0]["rewards/code_tests/mean"].as_f64().is_some(),
        "{:?}",
        rows[0]
    );
}

#[test]
fn the_codeforces_recipe_trains_on_a_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/qwen2.5-3b-codeforces-intuitor.toml");
    let small = |out: &std::path::Path, dataset: &std::path::Path| {
        vec![
            format!("model=\"{}\"", fixture("tiny-qwen2").display()),
            format!("dataset=\"{}\"", dataset.display()),
            "device=\"cpu\"".into(),
            "num_generations=2".into(),
            "prompts_per_step=2".into(),
            "per_device_train_batch_size=2".into(),
            "max_completion_length=6".into(),
            "max_steps=1".into(),
            "save_steps=0".into(),
            format!("output_dir=\"{}\"", out.display()),
        ]
    };
    // S1's CSV: a templated `prompt` column.
    let csv = dir.path().join("codeforces.csv");
    std::fs::write(
        &csv,
        "task_id,prompt\n1,\"Read two integers and print their sum.\n```python\n# Your code here\n```\"\n2,\"Print hello.\"\n",
    )
    .unwrap();
    let o = train(&recipe, dir.path(), &small(&dir.path().join("a"), &csv));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(common::metrics_rows(&dir.path().join("a")).len(), 1);
    // code_contests records: the raw statement templated, the public tests monitored.
    let jsonl = dir.path().join("contests.jsonl");
    let records = [
        serde_json::json!({"description": "Print the sum of two integers.", "public_tests": {"input": ["1 2\n"], "output": ["3\n"]}}),
        serde_json::json!({"description": "Print the product of two integers.", "public_tests": {"input": ["2 3\n"], "output": ["6\n"]}}),
    ];
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let mut sets = small(&dir.path().join("b"), &jsonl);
    sets.extend([
        "prompt_field=\"description\"".to_string(),
        "prompt_template=\"code\"".into(),
        "tests_field=\"public_tests\"".into(),
        "reward_funcs=[\"self_certainty\", \"code_tests\"]".into(),
        "reward_weights=[1.0, 0.0]".into(),
    ]);
    let o = train(&recipe, dir.path(), &sets);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let samples = read_jsonl(&dir.path().join("b/samples.jsonl"));
    let prompt = samples[0]["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("Print the") && prompt.ends_with("```python\n# Your code here\n```"),
        "{prompt}"
    );
    assert_eq!(samples[0]["rewards"]["code_tests"], 0.0, "{}", samples[0]);
    // A tests field of the wrong shape: one line naming the file, the record and the field.
    std::fs::write(&jsonl, "{\"description\": \"x\", \"public_tests\": 5}\n").unwrap();
    let o = train(&recipe, dir.path(), &sets);
    assert_clean_error(
        &o,
        &["contests.jsonl record 1", "public_tests", "tests_field"],
    );
    // The code_tests reward without a tests field is refused before anything loads.
    let o = train(
        &recipe,
        dir.path(),
        &[
            "reward_funcs=[\"code_tests\"]".to_string(),
            "reward_weights=[1.0]".into(),
        ],
    );
    assert_clean_error(&o, &["tests_field"]);
}
