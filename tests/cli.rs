//! The built binary: help, JSON output, and bad input that must give a one-line error naming the
//! file and the problem, a non-zero exit code, and no panic.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_clean_error, fixture, intuitor};

/// Copies a fixture model directory into a fresh temp dir.
fn copy_model(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn truncate(path: &Path, keep: f64) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
}

#[test]
fn help_lists_subcommands_and_option_defaults() {
    let out = intuitor(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("info") && text.contains("generate"), "{text}");
    let gen = String::from_utf8_lossy(&intuitor(&["generate", "--help"]).stdout).to_string();
    for opt in [
        "--max-new-tokens",
        "--temperature",
        "--top-k",
        "--top-p",
        "--seed",
        "--raw",
        "--json",
    ] {
        assert!(gen.contains(opt), "generate --help lacks {opt}");
    }
    assert!(gen.contains("[default: 128]"), "{gen}");
}

#[test]
fn generate_json_reports_ids_text_and_finish_reason() {
    let dir = fixture("tiny-qwen2");
    let out = intuitor(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "What is 2+3?",
        "--max-new-tokens",
        "5",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let completion = v["completion_ids"].as_array().unwrap();
    assert!(!completion.is_empty() && completion.len() <= 5);
    assert!(v["prompt_ids"].as_array().unwrap().len() > 5);
    assert!(v["text"].is_string());
    let reason = v["finish_reason"].as_str().unwrap();
    assert!(reason == "eos" || reason == "length");
    assert_eq!(reason == "length", completion.len() == 5);
}

#[test]
fn info_describes_the_model() {
    let dir = fixture("tiny-llama");
    let out = intuitor(&["info", dir.to_str().unwrap(), "--device", "cpu", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["layers"], 2);
    assert_eq!(v["kv_heads"], 2);
    assert_eq!(v["logits_width"], 360);
    assert_eq!(v["tied_embeddings"], true);
    assert_eq!(v["chat_template"], true);
}

#[test]
fn missing_config_json_is_named() {
    let dir = copy_model("tiny-qwen2");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let out = intuitor(&["info", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, &["config.json", "missing"]);
}

#[test]
fn truncated_safetensors_is_named() {
    let dir = copy_model("tiny-qwen2");
    truncate(&dir.path().join("model.safetensors"), 0.5);
    let out = intuitor(&["info", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, &["model.safetensors", "not a valid safetensors file"]);
}

#[test]
fn truncated_shard_is_named() {
    let dir = copy_model("tiny-llama");
    truncate(&dir.path().join("model-00002-of-00002.safetensors"), 0.9);
    let out = intuitor(&["info", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, &["model-00002-of-00002.safetensors"]);
}

#[test]
fn directory_without_tokenizer_is_named() {
    let dir = copy_model("tiny-qwen2");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let out = intuitor(&["info", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, &["tokenizer.json", "missing"]);
}

#[test]
fn unknown_architecture_lists_supported_ones() {
    let dir = copy_model("tiny-qwen2");
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"qwen2\"", "\"gpt_neox\""),
    )
    .unwrap();
    let out = intuitor(&["info", dir.path().to_str().unwrap()]);
    assert_clean_error(&out, &["config.json", "gpt_neox", "llama, qwen2, mistral"]);
}

#[test]
fn truncated_gguf_is_named() {
    let src = intuitor::loader::default_model_path();
    let bytes = std::fs::read(&src).expect("the test command fetches the default model");
    let dir = tempfile::tempdir().unwrap();
    for (name, keep) in [("head.gguf", 4096), ("half.gguf", bytes.len() / 2)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let out = intuitor(&["info", path.to_str().unwrap()]);
        assert_clean_error(&out, &[name]);
    }
}

#[test]
fn a_missing_model_path_is_named() {
    let out = intuitor(&["info", "/nonexistent/model-dir"]);
    assert_clean_error(&out, &["/nonexistent/model-dir", "missing model"]);
}

#[test]
fn sampling_flags_out_of_range_are_named_before_the_model_loads() {
    // The model does not exist: the flag is checked first.
    let model = "/nonexistent/model-dir";
    let generate: &[&str] = &["generate", "--model", model, "--prompt", "x"];
    let eval: &[&str] = &["eval", "--model", model];
    for (command, flag, value, needle) in [
        (generate, "--min-p", "2", "--min-p must be in [0, 1], got 2"),
        (
            generate,
            "--repetition-penalty",
            "0",
            "--repetition-penalty must be finite and > 0",
        ),
        (
            generate,
            "--temperature",
            "NaN",
            "--temperature must be finite",
        ),
        // Negative values after a space are values, not flags.
        (
            generate,
            "--top-p",
            "-1",
            "--top-p must be in [0, 1], got -1",
        ),
        (
            generate,
            "--top-k",
            "-3",
            "'--top-k <TOP_K>': expected a whole number ≥ 0",
        ),
        (eval, "--top-p", "1.5", "--top-p must be in [0, 1], got 1.5"),
    ] {
        let args = [command, &[flag, value][..]].concat();
        let out = intuitor(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        match flag {
            // A value clap cannot parse is a usage error (exit 2, with clap's help hint).
            "--top-k" => {
                assert_eq!(out.status.code(), Some(2), "{err}");
                assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
            }
            _ => assert_clean_error(&out, &[needle]),
        }
        assert!(!err.contains(model), "{args:?}: {err}");
    }
}

#[test]
fn a_missing_default_model_says_how_to_fetch_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .args(["info", "default"])
        .env("INTUITOR_DEFAULT_MODEL", "/nonexistent/smollm2.gguf")
        .output()
        .unwrap();
    assert_clean_error(
        &out,
        &["/nonexistent/smollm2.gguf", "bash scripts/fetch_model.sh"],
    );
}

#[test]
fn score_writes_one_line_per_input_with_both_alignments() {
    let dir = fixture("tiny-qwen2");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"prompt\": \"What is 2+3?\", \"completion\": \"5<|im_end|>\"}\n",
            "\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"completion\": \"Hello there\", \"id\": 7}\n"
        ),
    )
    .unwrap();
    let output = tmp.path().join("out.jsonl");
    let out = intuitor(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--device",
        "cpu",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let n = l["completion_ids"].as_array().unwrap().len();
        assert_eq!(l["logprobs"].as_array().unwrap().len(), n);
        assert_eq!(l["entropy"].as_array().unwrap().len(), n);
        let sc = l["self_certainty"].as_f64().unwrap();
        let sc_openr1 = l["self_certainty_openr1"].as_f64().unwrap();
        assert!(sc.is_finite() && sc >= 0.0, "KL(U‖p) ≥ 0: {sc}");
        assert!(sc_openr1 > sc, "the logged open-r1 value adds ln V");
        assert!(l["mean_logprob"].as_f64().unwrap() < 0.0);
    }
    assert_eq!(lines[1]["id"], 7);
    // The first completion ends with EOS: the mask stops there.
    let ids = lines[0]["completion_ids"].as_array().unwrap();
    assert_eq!(lines[0]["mask_len"].as_u64().unwrap() as usize, ids.len());
}

#[test]
fn score_names_the_bad_line() {
    let dir = fixture("tiny-qwen2");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n",
    )
    .unwrap();
    let out = intuitor(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_clean_error(&out, &["in.jsonl line 2"]);
}

#[test]
fn generate_n_samples_a_group_with_self_certainty() {
    let dir = fixture("tiny-qwen2");
    let out = intuitor(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "-p",
        "Hi",
        "-n",
        "4",
        "--temperature",
        "0.9",
        "--top-k",
        "50",
        "--max-new-tokens",
        "6",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let comps = v["completions"].as_array().unwrap();
    assert_eq!(comps.len(), 4);
    for c in comps {
        assert!(c["self_certainty"].as_f64().unwrap().is_finite());
    }
}

/// `intuitor plan` on Qwen2.5-1.5B's config.json alone (no weights) with the paper's recipe:
/// bf16 + recompute fits an H200's 141 GB with every completion at once; f32 without
/// recompute fits only with a KV budget, which the plan sizes when none is set and refuses
/// when the one set is too large; an update that cannot fit is refused naming recompute.
#[test]
fn the_memory_plan_of_the_paper_recipe_fits_141_gb_and_sizes_the_kv_budget() {
    let model = format!("model=\"{}\"", fixture("qwen2.5-1.5b-config").display());
    let recipe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/qwen2.5-1.5b-math-intuitor.toml"
    );
    // Planned for the GPU it runs on, from this machine (no GPU is opened).
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--config",
            recipe,
            "--set",
            &model,
            "--set",
            "device=\"cuda\"",
        ];
        args.extend_from_slice(extra);
        args.extend(["--device-memory", "141GB"]);
        intuitor(&args)
    };
    let peak_of = |out: &std::process::Output| -> (f64, String) {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}{err}");
        let peak: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("peak: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|x| x.parse().ok())
            .expect("a peak line");
        assert!(peak > 20.0 && peak < 131.3, "peak {peak} GiB");
        (peak, format!("{text}{err}"))
    };
    let (_, text) = peak_of(&plan(&[]));
    for phase in [
        "rollout KV cache",
        "gradient sums",
        "AdamW moments",
        "recompute",
        "decode attention scores",
    ] {
        assert!(text.contains(phase), "the plan lists {phase}: {text}");
    }
    assert!(!text.contains("sets it to"), "no budget needed: {text}");
    let f32_plain = [
        "--set",
        "dtype=\"f32\"",
        "--set",
        "gradient_checkpointing=false",
    ];
    let (_, text) = peak_of(&plan(&f32_plain));
    assert!(
        text.contains("the memory plan sets it to"),
        "a budget is sized: {text}"
    );
    // Planning a GPU: a device name that is not one, or a memory without a unit, is refused.
    let gpu = |device: &str, memory: &str| {
        let device = format!("device=\"{device}\"");
        let args = [
            "plan", "--config", recipe, "--set", &model, "--set", &device,
        ];
        intuitor(&[&args[..], &["--device-memory", memory]].concat())
    };
    assert_clean_error(
        &gpu("cuda:x", "141GB"),
        &["\"cuda:x\": expected auto, cpu, cuda or cuda:N"],
    );
    assert_clean_error(
        &gpu("cuda", "141"),
        &["--device-memory \"141\": give a unit"],
    );
    let all_at_once = [&f32_plain[..], &["--set", "rollout_kv_budget=\"200GiB\""]].concat();
    assert_clean_error(
        &plan(&all_at_once),
        &[
            "memory plan's peak",
            "dtype = \"bf16\"",
            "rollout_kv_budget",
        ],
    );
    let big_update = [&f32_plain[..], &["--set", "max_completion_length=24000"]].concat();
    assert_clean_error(
        &plan(&big_update),
        &[
            "update (forward + backward)",
            "gradient_checkpointing = true",
        ],
    );
}
