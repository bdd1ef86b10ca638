//! `intuitor eval` end to end on the first 20 GSM8K test problems with the default model, and
//! `intuitor check-answer` on files, single pairs and bad input.

mod common;

use common::{assert_clean_error, data_dir_with, intuitor, read_jsonl};

/// A data directory laid out like `shared/data` with the 20-problem GSM8K excerpt.
fn data_dir() -> tempfile::TempDir {
    data_dir_with("gsm8k_test_first20.jsonl", "gsm8k/test.jsonl")
}

/// Runs `intuitor eval` on the GSM8K excerpt into a fresh output directory, which it returns.
fn eval_gsm8k(extra: &[&str]) -> tempfile::TempDir {
    let data = data_dir();
    let out = tempfile::tempdir().unwrap();
    let mut args = vec![
        "eval",
        "--dataset",
        "gsm8k",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--output-dir",
        out.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = intuitor(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn eval_gsm8k_first_20_writes_every_output() {
    let out = eval_gsm8k(&[
        "--limit",
        "20",
        "--max-new-tokens",
        "96",
        "--system-prompt",
        "boxed",
    ]);
    let summary = read_json(&out.path().join("summary.json"));
    assert_eq!(summary["greedy"]["n"], 20);
    let acc = summary["greedy"]["accuracy"].as_f64().unwrap();
    let ci = summary["greedy"]["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= acc && acc <= ci[1].as_f64().unwrap());
    assert!(summary["mean_length"].as_f64().unwrap() > 0.0);
    assert!(summary["tokens_per_s"].as_f64().unwrap() > 0.0);
    let items = read_jsonl(&out.path().join("items.jsonl"));
    assert_eq!(items.len(), 20);
    assert_eq!(items[0]["gold"], "18", "Janet's ducks: #### 18");
    let correct = items.iter().filter(|i| i["verdict"] == true).count();
    assert_eq!(summary["greedy"]["correct"], correct);
    for i in &items {
        for key in [
            "prompt",
            "completion",
            "answer",
            "verdict",
            "self_certainty",
            "length",
            "finish_reason",
        ] {
            assert!(i.get(key).is_some(), "item lacks {key}: {i}");
        }
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(report.contains("greedy accuracy"), "{report}");
    let png = std::fs::read(out.path().join("self_certainty_hist.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn eval_best_of_n_selects_among_samples() {
    let out = eval_gsm8k(&[
        "--limit",
        "3",
        "--max-new-tokens",
        "24",
        "--samples",
        "4",
        "--temperature",
        "1.0",
    ]);
    let summary = read_json(&out.path().join("summary.json"));
    let sampled = &summary["sampled"];
    assert_eq!(sampled["k"], 4);
    // pass@k bounds every selection rule from above.
    let pass = sampled["pass_at_k"]["correct"].as_u64().unwrap();
    for k in ["majority", "self_certainty", "borda"] {
        assert!(
            sampled["best_of_n"][k]["correct"].as_u64().unwrap() <= pass,
            "{k}"
        );
    }
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(out.path().join("items.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let samples = first["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 4);
    // The self-certainty choice is the highest-scoring sample with an answer.
    let chosen = first["selected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == "self_certainty")
        .unwrap()[1]
        .as_u64()
        .map(|i| i as usize);
    let best = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| !s["answer"].is_null())
        .max_by(|a, b| {
            a.1["self_certainty"]
                .as_f64()
                .unwrap()
                .total_cmp(&b.1["self_certainty"].as_f64().unwrap())
        })
        .map(|(i, _)| i);
    assert_eq!(chosen, best);
}

#[test]
fn eval_names_a_missing_builtin_file() {
    let empty = tempfile::tempdir().unwrap();
    let o = intuitor(&[
        "eval",
        "--dataset",
        "math500",
        "--data-dir",
        empty.path().to_str().unwrap(),
    ]);
    assert_clean_error(&o, &["math500", "math500_test.jsonl", "--data-dir"]);
}

#[test]
fn check_answer_reads_jsonl_and_single_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"gold\": \"\\\\frac{1}{2}\", \"prediction\": \"so \\\\boxed{0.5}\"}\n",
            "{\"gold\": 7, \"prediction\": \"I get 8.\"}\n",
            "\n",
            "{\"gold\": \"5\", \"prediction\": \"\\\\boxed{\\\\int_0^1 x dx}\"}\n",
        ),
    )
    .unwrap();
    let o = intuitor(&["check-answer", "--input", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["verdict"], true);
    assert_eq!(lines[0]["prediction_parsed"], "0.5");
    assert_eq!(lines[1]["verdict"], false);
    assert_eq!(lines[2]["verdict"], "unknown");

    let o = intuitor(&[
        "check-answer",
        "--mode",
        "hendrycks",
        "--gold",
        "10",
        "--prediction",
        "\\boxed{10.0}",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"], false, "Hendrycks compares strings");

    std::fs::write(
        &input,
        "{\"gold\": \"1\", \"prediction\": \"1\"}\nnot json\n",
    )
    .unwrap();
    let o = intuitor(&["check-answer", "--input", input.to_str().unwrap()]);
    assert_clean_error(&o, &["pairs.jsonl line 2", "gold"]);
}

/// `--completions` on a math dataset, with samples: the greedy answer and Chen et al.'s
/// unbiased pass@k over the samples (1 of 4 correct: pass@1 = 1/4, pass@2 = 1 − C(3,2)/C(4,2)).
#[test]
fn given_completions_report_unbiased_pass_at_k() {
    let data = data_dir();
    let out = tempfile::tempdir().unwrap();
    let given = out.path().join("given.jsonl");
    let lines: Vec<String> = [
        "The answer is 18.",
        "\\boxed{18}",
        "\\boxed{17}",
        "\\boxed{16}",
        "\\boxed{15}",
    ]
    .iter()
    .map(|c| serde_json::json!({"index": 0, "completion": c}).to_string())
    .collect();
    std::fs::write(&given, lines.join("\n")).unwrap();
    let o = intuitor(&[
        "eval",
        "--model",
        common::fixture("tiny-qwen2").to_str().unwrap(),
        "--dataset",
        "gsm8k",
        "--limit",
        "1",
        "--completions",
        given.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--output-dir",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = read_json(&out.path().join("summary.json"));
    assert_eq!(summary["greedy"]["correct"], 1, "{summary}");
    let sampled = &summary["sampled"];
    assert_eq!(sampled["pass_at_k"]["correct"], 1, "{sampled}");
    let unbiased = &sampled["pass_at_unbiased"];
    assert!(
        (unbiased["1"].as_f64().unwrap() - 0.25).abs() < 1e-12,
        "{unbiased}"
    );
    assert!(
        (unbiased["2"].as_f64().unwrap() - 0.5).abs() < 1e-12,
        "{unbiased}"
    );
}
