//! Replays the fuzz corpora through the fuzz targets (no AFL needed): every file of
//! `fuzz/corpus/<target>/` (the committed seeds) and `fuzz/regressions/<target>/` (every crash
//! the fuzzer found, kept once fixed) must go through its target without a panic. This is the
//! fuzzers' CI run; `bash scripts/fuzz.sh` fuzzes for real (README "Fuzzing").

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(root.join(kind).join(target)).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_runs_without_a_panic() {
    let mut failed = Vec::new();
    for (name, target) in targets::TARGETS {
        let files = inputs(name);
        assert!(!files.is_empty(), "fuzz/corpus/{name}/ has no seeds");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "fuzz targets panicked on: {failed:#?}");
}

/// The seeds reach past the parsers: the tiny GGUF seeds load as models and tokenizers.
#[test]
fn gguf_seeds_load() {
    use intuitor::model::gguf::GgufFile;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for seed in ["gguf/llama.gguf", "gguf/qwen2.gguf"] {
        let g = GgufFile::open(&dir.join(seed)).unwrap();
        let cfg = g.config().unwrap();
        let t = g
            .tensors(&cfg, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
        assert_eq!(
            t.len(),
            if seed.contains("qwen2") { 12 } else { 11 },
            "{seed}"
        );
    }
    for seed in ["smollm", "qwen2", "llama-bpe"] {
        let g = GgufFile::open(&dir.join(format!("tokenizer_gguf/{seed}.gguf"))).unwrap();
        let tok = intuitor::tokenizer::gguf::from_gguf(&g).unwrap();
        let ids = tok.encode("Hello<|im_end|>", false).unwrap();
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            "Hello<|im_end|>",
            "{seed}"
        );
    }
}
