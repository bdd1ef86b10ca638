//! The llama-family decoder and its weights: configuration, GGUF and safetensors reading, the
//! layers' weight forms, the KV cache. Bundling it with a tokenizer is [`crate::loader`].

pub mod config;
pub mod decoder;
pub mod gguf;
pub mod kv_cache;
mod layers;
pub mod packed;
pub mod panels;
pub mod rope_freqs;
pub mod safetensors;

use std::path::{Path, PathBuf};

pub use config::ModelConfig;
pub use decoder::Decoder;
pub use kv_cache::{KvCache, KvContext};

/// File name of the default model inside `models/smollm2/`.
pub const DEFAULT_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The command that fetches the default model.
pub const FETCH_COMMAND: &str = "bash scripts/fetch_model.sh";

/// Why a model could not be loaded; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing {what}")]
    Missing { path: PathBuf, what: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("default model not found at {path}; fetch it with `{FETCH_COMMAND}` (run from the repository root)")]
    DefaultMissing { path: PathBuf },
}

impl LoadError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A file that exists but is wrong. Only the first line of `message` is kept: candle errors
    /// carry a backtrace after it when `RUST_BACKTRACE` is set.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self::Invalid {
            path: path.to_path_buf(),
            message: message.lines().next().unwrap_or_default().to_string(),
        }
    }
}
