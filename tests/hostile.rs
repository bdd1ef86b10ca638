//! Hostile inputs to every command: broken, empty, truncated and non-UTF-8 model files,
//! datasets, configs, metrics and answer strings. Each run must end with an error message (or
//! a result), never a panic (exit code 101) or a signal.

mod common;

use std::path::{Path, PathBuf};

use common::fixture;

/// A model directory copied from the tiny fixture with `edit` applied to it.
fn broken_model(root: &Path, name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture("tiny-qwen2")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    edit(&dir);
    dir
}

/// Hostile model arguments: files and directories that are not a loadable model.
fn hostile_models(root: &Path) -> Vec<PathBuf> {
    let truncate = |file: &'static str, keep: usize| {
        move |dir: &Path| {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            std::fs::write(dir.join(file), &bytes[..keep.min(bytes.len())]).unwrap();
        }
    };
    let gguf_head = {
        let real = std::fs::read(intuitor::loader::default_model_path()).unwrap_or_default();
        real[..real.len().min(4096)].to_vec()
    };
    let files: [(&str, Vec<u8>); 5] = [
        ("empty.gguf", Vec::new()),
        (
            "noise.gguf",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("truncated.gguf", gguf_head),
        (
            "magic-only.gguf",
            b"GGUF\x03\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        ),
        ("latin1.gguf", vec![0xe9, 0xff, 0xfe, 0x00, 0x41]),
    ];
    let mut models: Vec<PathBuf> = files
        .into_iter()
        .map(|(name, bytes)| {
            let p = root.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect();
    models.push(broken_model(root, "no-config", |d| {
        std::fs::remove_file(d.join("config.json")).unwrap()
    }));
    models.push(broken_model(root, "bad-config", |d| {
        std::fs::write(d.join("config.json"), b"{\"hidden_size\": -3, \xff}").unwrap()
    }));
    models.push(broken_model(
        root,
        "short-weights",
        truncate("model.safetensors", 1000),
    ));
    models.push(broken_model(
        root,
        "short-tokenizer",
        truncate("tokenizer.json", 300),
    ));
    models.push(broken_model(root, "bad-template", |d| {
        std::fs::write(d.join("chat_template.jinja"), "{% for %}{{ }").unwrap()
    }));
    models.push(root.join("does-not-exist"));
    models
}

/// Asserts the command ended by itself with a status code other than a panic's.
fn assert_no_crash(args: &[&str]) {
    let out = common::intuitor(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code.is_some() && code != Some(101) && !stderr.contains("panicked"),
        "{args:?} crashed ({:?}): {stderr}",
        out.status
    );
}

#[test]
fn broken_model_files_give_errors_in_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let scores = tmp.path().join("score.jsonl");
    std::fs::write(
        &scores,
        "{\"prompt\": \"hi\", \"completion\": \" there\"}\n",
    )
    .unwrap();
    let dataset = tmp.path().join("data.jsonl");
    std::fs::write(&dataset, "{\"question\": \"1+1?\", \"answer\": \"2\"}\n").unwrap();
    for model in hostile_models(tmp.path()) {
        let m = model.to_str().unwrap();
        let set_model = format!("model=\"{m}\"");
        let s = scores.to_str().unwrap();
        let d = dataset.to_str().unwrap();
        assert_no_crash(&["info", m]);
        assert_no_crash(&["generate", "--model", m, "-p", "hi", "-n", "2"]);
        assert_no_crash(&["score", "--model", m, "--input", s]);
        assert_no_crash(&["eval", "--model", m, "--dataset", d, "--limit", "1"]);
        assert_no_crash(&["train", "--set", &set_model, "--set", "max_steps=1"]);
    }
}

#[test]
fn broken_datasets_configs_metrics_and_answers_give_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("tiny-qwen2");
    let m = model.to_str().unwrap();
    let write = |name: &str, bytes: &[u8]| -> String {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let datasets = [
        write("empty.jsonl", b""),
        write("latin1.jsonl", b"{\"question\": \"caf\xe9\"}\n"),
        write("fieldless.jsonl", b"{\"other\": 1}\n{}\n[]\n"),
        write("not-json.jsonl", b"{\"question\": \n"),
        write("bad.csv", b"question\n\"unterminated\n"),
        write("bad.parquet", b"PAR1\0\0\0\0garbagePAR1"),
        write("deep.jsonl", "[".repeat(100_000).as_bytes()),
    ];
    for d in &datasets {
        assert_no_crash(&["eval", "--model", m, "--dataset", d, "--limit", "1"]);
        let set = format!("dataset=\"{d}\"");
        let set_model = format!("model=\"{m}\"");
        assert_no_crash(&[
            "train",
            "--set",
            &set_model,
            "--set",
            &set,
            "--set",
            "max_steps=1",
        ]);
        assert_no_crash(&["score", "--model", m, "--input", d]);
    }
    let configs = [
        write("empty.toml", b""),
        write("latin1.toml", b"model = \"caf\xe9\"\n"),
        write("typed.toml", b"beta = [1, 2]\nmax_steps = -1\n"),
        write("huge.toml", b"max_steps = 99999999999999999999999\n"),
        write("dangling.toml", b"a = "),
    ];
    // A config that parses goes on to load a model that does not exist (no real run starts).
    let nowhere = format!("model=\"{}\"", tmp.path().join("nowhere").display());
    for c in &configs {
        assert_no_crash(&["train", "--config", c, "--set", &nowhere]);
    }
    for set in ["=", "beta", "beta==", "reward_weights=[", "max_steps=1e400"] {
        assert_no_crash(&["train", "--set", set, "--set", &nowhere]);
    }
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    for metrics in [
        &b""[..],
        b"{\"step\": 1, \"loss\": NaN}\n",
        b"not json\n\xff\n",
        b"{\"step\": 1e308, \"self_certainty/mean\": 1e308}\n{\"step\": -1}\n",
    ] {
        std::fs::write(run.join("metrics.jsonl"), metrics).unwrap();
        assert_no_crash(&["plot", run.to_str().unwrap()]);
    }
    assert_no_crash(&["plot", tmp.path().join("missing").to_str().unwrap()]);
    let deep = format!("\\boxed{{{}}}", "\\frac{1}{".repeat(2000));
    let long = "9".repeat(100_000);
    for (gold, prediction) in [
        ("", ""),
        ("\\boxed{", "}}}}"),
        (deep.as_str(), deep.as_str()),
        (long.as_str(), long.as_str()),
        ("1/0", "0/0"),
        ("10^{10^{10^{10}}}", "10^{10^{10^{10}}}"),
        ("x^{99999999999}", "x^{99999999999}"),
        ("\u{202e}\u{feff}", "é"),
    ] {
        for mode in ["math", "hendrycks", "gsm8k"] {
            assert_no_crash(&[
                "check-answer",
                "--mode",
                mode,
                "--gold",
                gold,
                "--prediction",
                prediction,
            ]);
        }
    }
}
