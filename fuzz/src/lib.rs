//! The fuzz targets: one function per input format, each feeding arbitrary bytes to the library's
//! public entry points. A target may return errors but must never panic (or hang). The AFL++
//! binaries in `src/bin/` call these (with `fuzz_nohook!`: a panic the library catches and turns
//! into an error, as it does for the `parquet` crate's, is not a crash); `tests/fuzz_corpus.rs` at the root includes this file and
//! replays `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through them. Only `std` and
//! `intuitor` are used here, so the root test can include it with `#[path]`.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use intuitor::answer::{self, Mode};
use intuitor::config::TrainConfig;
use intuitor::data::{self, Fields};
use intuitor::model::gguf::GgufFile;
use intuitor::model::safetensors::load_safetensors_dir;
use intuitor::tokenizer::chat::{ChatTemplate, Message};

/// A fuzz target: arbitrary bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `src/bin/*`, `corpus/*` and `regressions/*`).
pub const TARGETS: [(&str, Target); 9] = [
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("tokenizer_gguf", tokenizer_gguf),
    ("chat_template", chat_template),
    ("dataset_jsonl", dataset_jsonl),
    ("dataset_csv", dataset_csv),
    ("dataset_parquet", dataset_parquet),
    ("config", config),
    ("answer", answer),
];

/// A scratch directory for this process and thread (for the path-based readers).
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "intuitor-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
    dir
}

/// Writes `data` to `name` in the scratch directory and returns its path.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, data).expect("writing a fuzz input");
    path
}

/// `data` split at NUL bytes into (lossy) UTF-8 parts.
fn parts(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The GGUF reader: header and metadata, the decoder config, and (when the config is valid)
/// every tensor dequantized, as `intuitor` does for `--model file.gguf`.
pub fn gguf(data: &[u8]) {
    let path = scratch_file("model.gguf", data);
    let Ok(g) = GgufFile::open(&path) else {
        return;
    };
    let _ = g.architecture();
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
        let _ = g.strings(key);
    }
    let _ = g.ints("tokenizer.ggml.token_type");
    let _ = g.u32("tokenizer.ggml.eos_token_id");
    if let Ok(cfg) = g.config() {
        let _ = g.tensors(&cfg, DType::F32, &Device::Cpu);
        let _ = g.packed_matrices(&cfg, DType::F32, &Device::Cpu);
    }
}

/// An HF checkpoint directory holding `data` as `model.safetensors`.
pub fn safetensors(data: &[u8]) {
    let dir = scratch().join("safetensors");
    std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
    std::fs::write(dir.join("model.safetensors"), data).expect("writing a fuzz input");
    let _ = load_safetensors_dir(&dir, DType::F32, &Device::Cpu);
}

/// The tokenizer built from a GGUF's `tokenizer.ggml.*` metadata (read from memory), then used.
pub fn tokenizer_gguf(data: &[u8]) {
    let Ok(g) = GgufFile::read(Path::new("fuzz.gguf"), &mut Cursor::new(data)) else {
        return;
    };
    let Ok(tok) = intuitor::tokenizer::gguf::from_gguf(&g) else {
        return;
    };
    let _ = tok.vocab_size();
    let _ = tok.stop_ids();
    for text in ["Hello world, 1234 <|im_start|>user\n∑ é\u{0}", ""] {
        if let Ok(ids) = tok.encode(text, true) {
            let _ = tok.decode(&ids, false);
            let _ = tok.decode(&ids, true);
        }
    }
    let _ = tok.decode(&[0, 1, 2, u32::MAX], false);
}

/// A chat template and its messages: `template NUL messages-json [NUL bos NUL eos]`; without a
/// parseable messages part, a fixed system/user/assistant conversation.
pub fn chat_template(data: &[u8]) {
    let p = parts(data);
    let messages: Vec<Message> = p
        .get(1)
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_else(|| {
            vec![
                Message::new("system", "You are helpful."),
                Message::new("user", "What is 2+2?"),
                Message::new("assistant", "4"),
            ]
        });
    let bos = p.get(2).map_or("<s>", String::as_str);
    let eos = p.get(3).map_or("</s>", String::as_str);
    let Ok(t) = ChatTemplate::new(&p[0], Some(bos), Some(eos)) else {
        return;
    };
    let _ = t.render(&messages, true);
    let _ = t.render(&messages, false);
}

fn dataset(name: &str, data: &[u8]) {
    let path = scratch_file(name, data);
    let _ = data::load(&path, &Fields::default());
    let _ = data::load(
        &path,
        &Fields {
            prompt_field: "question+context".into(),
            answer_field: Some("answer".into()),
            tests_field: Some("tests".into()),
        },
    );
}

/// The JSONL dataset reader.
pub fn dataset_jsonl(data: &[u8]) {
    dataset("data.jsonl", data);
}

/// The CSV dataset reader.
pub fn dataset_csv(data: &[u8]) {
    dataset("data.csv", data);
}

/// The Parquet dataset reader.
pub fn dataset_parquet(data: &[u8]) {
    dataset("data.parquet", data);
}

/// The train config: `toml NUL set NUL set …` (each `set` a `--set KEY=VALUE` argument). A config
/// that loads must survive `to_toml` and load again to the same config, and resolve.
pub fn config(data: &[u8]) {
    let p = parts(data);
    let Ok(cfg) = TrainConfig::from_text("fuzz.toml", &p[0], &p[1..]) else {
        return;
    };
    let _ = cfg.grad_accum();
    let _ = cfg.resolve(BTreeSet::from([0, 2]), cfg.max_steps.max(1));
    let again = TrainConfig::from_text("to_toml", &cfg.to_toml(), &[])
        .expect("a loaded config's to_toml loads again");
    assert_eq!(again.to_toml(), cfg.to_toml(), "to_toml round trip");
}

/// The answer checker: `gold NUL prediction` (without a NUL: the input on both sides), in every
/// mode, both ways round.
pub fn answer(data: &[u8]) {
    let p = parts(data);
    let (gold, prediction) = (&p[0], p.get(1).unwrap_or(&p[0]));
    for mode in [Mode::Math, Mode::Hendrycks, Mode::Gsm8k] {
        let _ = answer::check(gold, prediction, mode);
        let _ = answer::check(prediction, gold, mode);
    }
}
