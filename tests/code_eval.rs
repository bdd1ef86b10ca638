//! Code benchmarks judged by running code (issue 21): every CRUXEval-O gold output and every
//! HumanEval canonical solution passes through the scoring path completions take (extraction →
//! sandboxed run), wrong answers fail, and `intuitor eval --dataset cruxeval` runs end to end.

mod common;

use common::{data_dir_with, fixture, intuitor, read_jsonl};
use intuitor::code_check::{answer_of, extract_output, judge};
use intuitor::data::code::{
    load_cruxeval, load_humaneval, load_mbpp, mbpp_prompt, CodeTask, MBPP_TEST_IDS,
};
use intuitor::sandbox::{Limits, Sandbox};
use rayon::prelude::*;

fn sandbox() -> Sandbox {
    Sandbox::new("python3", Limits::default()).expect("python3 runs")
}

/// A completion in the protocol's format answering `answer`.
fn completion(answer: &str) -> String {
    let json = serde_json::json!({"reasoning": "step by step", "answer": answer});
    format!("Let me trace it.\n```json\n{json}\n```")
}

#[test]
fn every_gold_output_passes_and_shifted_outputs_fail() {
    let problems = load_cruxeval(&fixture("cruxeval.jsonl")).unwrap();
    assert_eq!(problems.len(), 800);
    let s = sandbox();
    let score = |answer: &str, task: &CodeTask| -> (bool, String) {
        let read = extract_output(&completion(answer)).unwrap();
        assert_eq!(read, answer.trim());
        judge(task, &read, &s).unwrap()
    };
    let gold: Vec<(bool, String)> = problems
        .par_iter()
        .map(|p| score(p.answer.as_deref().unwrap(), p.task.as_ref().unwrap()))
        .collect();
    let failed: Vec<String> = gold
        .iter()
        .zip(&problems)
        .filter(|((ok, _), _)| !ok)
        .map(|((_, why), p)| format!("{}: {why}", p.id))
        .collect();
    assert!(failed.is_empty(), "gold outputs that fail: {failed:?}");
    // The next item's output for each item: wrong almost always (some outputs coincide).
    let shifted: Vec<bool> = problems
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let other = problems[(i + 1) % problems.len()]
                .answer
                .as_deref()
                .unwrap();
            score(other, p.task.as_ref().unwrap()).0
        })
        .collect();
    let passed = shifted.iter().filter(|&&ok| ok).count();
    assert!(passed < 40, "{passed} of 800 shifted outputs passed");
}

#[test]
fn every_canonical_humaneval_solution_passes_as_a_body_or_a_whole_function() {
    let problems = load_humaneval(&fixture("humaneval.jsonl")).unwrap();
    assert_eq!(problems.len(), 164);
    let s = sandbox();
    let results: Vec<(String, [(bool, String); 3])> = problems
        .par_iter()
        .map(|p| {
            let task = p.task.as_ref().unwrap();
            let CodeTask::Function { prompt, .. } = task else {
                panic!("{}: not a function task", p.id)
            };
            let body = p.answer.as_deref().unwrap();
            let run = |text: &str| judge(task, &answer_of(task, text).unwrap(), &s).unwrap();
            // As a continuation, as a whole function in a fenced block, and a wrong body.
            let whole = format!("Sure:\n```python\n{prompt}{body}```\nDone.");
            (
                p.id.clone(),
                [run(body), run(&whole), run("    return None\n")],
            )
        })
        .collect();
    let failed: Vec<String> = results
        .iter()
        .flat_map(|(id, r)| {
            r[..2]
                .iter()
                .filter(|(ok, _)| !ok)
                .map(move |(_, why)| format!("{id}: {why}"))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "canonical solutions that fail: {failed:?}"
    );
    let wrong_passed = results.iter().filter(|(_, r)| r[2].0).count();
    assert!(
        wrong_passed <= 2,
        "{wrong_passed} of 164 `return None` bodies passed"
    );
    assert!(results.iter().all(|(_, r)| r[2].0 || r[2].1 != "passed"));
}

#[test]
fn mbpp_reference_solutions_pass_their_tests_on_the_evaluation_split() {
    let problems = load_mbpp(
        &fixture("mbpp.jsonl"),
        |id| MBPP_TEST_IDS.contains(&id),
        mbpp_prompt,
    )
    .unwrap();
    assert_eq!(problems.len(), 500);
    let s = sandbox();
    let results: Vec<(String, (bool, String), bool)> = problems
        .par_iter()
        .map(|p| {
            let task = p.task.as_ref().unwrap();
            let fenced = format!("```python\n{}\n```", p.answer.as_deref().unwrap());
            let run = |text: &str| judge(task, &answer_of(task, text).unwrap(), &s).unwrap();
            (
                p.id.clone(),
                run(&fenced),
                run("def nothing():\n    pass").0,
            )
        })
        .collect();
    // shared/data's README: task 341's tests depend on set order on this platform.
    let failed: Vec<String> = results
        .iter()
        .filter(|(id, (ok, _), _)| !ok && id != "mbpp/341")
        .map(|(id, (_, why), _)| format!("{id}: {why}"))
        .collect();
    assert!(
        failed.is_empty(),
        "reference solutions that fail: {failed:?}"
    );
    assert!(
        results.iter().all(|(_, _, wrong)| !wrong),
        "an empty program passed"
    );
}

#[test]
fn an_answer_must_be_a_literal_and_python_decides_equality() {
    let task = CodeTask::OutputPrediction {
        code: "def f(nums):\n    return sorted(nums)".into(),
        input: "[3, 1, 2]".into(),
    };
    let s = sandbox();
    for (answer, right, why) in [
        ("[1,2,3]", true, "passed"),
        ("[1, 2, 3]", true, "passed"),
        ("(1, 2, 3)", false, "wrong output"),
        (
            "f([3, 1, 2])",
            false,
            "error: ValueError: the answer is not a literal",
        ),
        (
            "__import__('os')._exit(0)",
            false,
            "error: ValueError: the answer is not a literal",
        ),
        (
            "[1, 2, 3]\nprint('x')",
            false,
            "error: SyntaxError: invalid syntax",
        ),
        ("[1, 2,", false, "error: SyntaxError"),
    ] {
        let (ok, reason) = judge(&task, answer, &s).unwrap();
        assert_eq!(ok, right, "{answer:?}: {reason}");
        assert!(reason.starts_with(why), "{answer:?}: {reason}");
    }
    let sets = CodeTask::OutputPrediction {
        code: "def f(s):\n    return set(s)".into(),
        input: "''".into(),
    };
    assert!(judge(&sets, "set()", &s).unwrap().0);
}

#[test]
fn eval_runs_cruxeval_and_records_why_answers_fail() {
    let data = data_dir_with("cruxeval.jsonl", "cruxeval/cruxeval.jsonl");
    let out = tempfile::tempdir().unwrap();
    let o = intuitor(&[
        "eval",
        "--model",
        fixture("tiny-qwen2").to_str().unwrap(),
        "--dataset",
        "cruxeval",
        "--limit",
        "3",
        "--max-new-tokens",
        "8",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--output-dir",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let items = read_jsonl(&out.path().join("items.jsonl"));
    assert_eq!(items.len(), 3);
    for item in &items {
        // A random tiny model writes no JSON answer: wrong, with the reason.
        assert_eq!(item["verdict"], false, "{item}");
        assert!(
            item["reason"].as_str().unwrap().contains("no JSON object"),
            "{item}"
        );
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("greedy accuracy (code execution)"),
        "{report}"
    );
}

#[test]
fn eval_scores_completions_written_elsewhere() {
    let data = data_dir_with("humaneval.jsonl", "humaneval/HumanEval.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let given = dir.path().join("given.jsonl");
    let lines = [
        serde_json::json!({"id": "HumanEval/0", "completion": "```python\nfrom typing import List\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for j, b in enumerate(numbers) if i != j)\n```"}),
        serde_json::json!({"index": 1, "completion": "    return []\n"}),
        serde_json::json!({"id": "HumanEval/0", "completion": "import os\nos._exit(0)"}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&given, text.join("\n")).unwrap();
    let run = |file: &std::path::Path| {
        intuitor(&[
            "eval",
            "--model",
            fixture("tiny-qwen2").to_str().unwrap(),
            "--dataset",
            "humaneval",
            "--limit",
            "3",
            "--completions",
            file.to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
            "--output-dir",
            dir.path().join("out").to_str().unwrap(),
        ])
    };
    let o = run(&given);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let items = read_jsonl(&dir.path().join("out/items.jsonl"));
    // Problem 2 has no completion: left out.
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["verdict"], true, "{}", items[0]);
    assert!(items[0]["self_certainty"].as_f64().unwrap().is_finite());
    let sample = &items[0]["samples"][0];
    assert_eq!(sample["verdict"], false);
    assert!(
        sample["reason"]
            .as_str()
            .unwrap()
            .contains("exited with status 0"),
        "{sample}"
    );
    assert_eq!(items[1]["verdict"], false);
    assert_eq!(items[1]["reason"], "failed tests");
    // An id no selected problem has: one line naming the file and line.
    std::fs::write(
        &given,
        "{\"index\": 0, \"completion\": \"x\"}\n{\"id\": \"nope\", \"completion\": \"x\"}\n",
    )
    .unwrap();
    let o = run(&given);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("given.jsonl line 2: no selected problem has id \"nope\""),
        "{err}"
    );
}

#[test]
fn eval_judges_a_users_code_file_through_its_tests_field_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let problems = dir.path().join("contests.jsonl");
    let records = [
        serde_json::json!({"id": "sum", "description": "Print the sum of two integers.", "tests": {"input": ["1 2\n", "5 5\n"], "output": ["3", "10"]}}),
        serde_json::json!({"id": "double", "description": "Write double(x).", "tests": ["assert double(2) == 4", "assert double(0) == 0"]}),
    ];
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(&problems, lines.join("\n")).unwrap();
    let given = dir.path().join("given.jsonl");
    let answers = [
        serde_json::json!({"id": "sum", "completion": "```python\nprint(sum(map(int, input().split())))\n```"}),
        serde_json::json!({"id": "sum", "completion": "```python\nprint(3)\n```"}),
        serde_json::json!({"id": "double", "completion": "```python\ndef double(x):\n    return x + x\n```"}),
        serde_json::json!({"id": "double", "completion": "```python\ndef double(x):\n    return 2\n```"}),
    ];
    let lines: Vec<String> = answers.iter().map(|r| r.to_string()).collect();
    std::fs::write(&given, lines.join("\n")).unwrap();
    let o = intuitor(&[
        "eval",
        "--model",
        fixture("tiny-qwen2").to_str().unwrap(),
        "--dataset",
        problems.to_str().unwrap(),
        "--prompt-field",
        "description",
        "--tests-field",
        "tests",
        "--completions",
        given.to_str().unwrap(),
        "--jobs",
        "3",
        "--output-dir",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let items = read_jsonl(&dir.path().join("out/items.jsonl"));
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["verdict"], true, "{}", items[0]);
    assert_eq!(items[0]["samples"][0]["reason"], "case 2: wrong answer");
    assert_eq!(items[1]["verdict"], true, "{}", items[1]);
    assert_eq!(items[1]["samples"][0]["reason"], "failed tests");
}
