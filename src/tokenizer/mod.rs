//! Text ⇄ token ids, with the model's special tokens, built from `tokenizer.json` (+
//! `tokenizer_config.json`) or from GGUF metadata.

pub mod chat;
pub mod gguf;
pub mod pyjson;

use std::collections::BTreeSet;
use std::path::Path;

use crate::model::LoadError;

/// A tokenizer plus the special-token ids the rollout and chat template need.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
    /// Extra end-of-sequence ids (from `generation_config.json`, or the chat template's
    /// end-of-turn token).
    pub extra_eos_ids: BTreeSet<u32>,
    /// Whether raw (non-chat) text gets a BOS prepended (`add_bos_token`).
    pub add_bos: bool,
}

impl TextTokenizer {
    pub fn new(inner: tokenizers::Tokenizer) -> Self {
        Self {
            inner,
            bos_token: None,
            eos_token: None,
            pad_token: None,
            bos_id: None,
            eos_id: None,
            pad_id: None,
            extra_eos_ids: BTreeSet::new(),
            add_bos: false,
        }
    }

    /// Loads `tokenizer.json` and the special tokens of `tokenizer_config.json` from an HF directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, LoadError> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(LoadError::Missing {
                path,
                what: "tokenizer (tokenizer.json)",
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| LoadError::invalid(&path, e.to_string()))?;
        let mut tok = Self::new(inner);
        let cfg_path = dir.join("tokenizer_config.json");
        if cfg_path.exists() {
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| LoadError::io(&cfg_path, e))?;
            let cfg: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| LoadError::invalid(&cfg_path, e.to_string()))?;
            tok.bos_token = special_token(&cfg, "bos_token");
            tok.eos_token = special_token(&cfg, "eos_token");
            tok.pad_token = special_token(&cfg, "pad_token");
            tok.add_bos = cfg
                .get("add_bos_token")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
        }
        tok.resolve_ids();
        Ok(tok)
    }

    /// Sets the ids of the named special tokens from the vocabulary.
    pub fn resolve_ids(&mut self) {
        self.bos_id = self.bos_token.as_deref().and_then(|t| self.token_to_id(t));
        self.eos_id = self.eos_token.as_deref().and_then(|t| self.token_to_id(t));
        self.pad_id = self
            .pad_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
            .or(self.eos_id);
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens (can be smaller than the logits width).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`; special-token strings in the text map to their ids. With
    /// `add_special`, the tokenizer's post-processor runs (HF `add_special_tokens=True`).
    pub fn encode(&self, text: &str, add_special: bool) -> anyhow::Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| anyhow::anyhow!("tokenizing failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, optionally without special tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> anyhow::Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow::anyhow!("detokenizing failed: {e}"))
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` (special tokens, chat template) into
    /// `dir`, as an HF directory carries them.
    pub fn save_hf(&self, dir: &Path, chat_template: Option<&str>) -> anyhow::Result<()> {
        self.inner
            .save(dir.join("tokenizer.json"), false)
            .map_err(|e| anyhow::anyhow!("writing tokenizer.json: {e}"))?;
        let mut cfg = serde_json::json!({
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            "add_bos_token": self.add_bos,
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
        if let Some(t) = chat_template {
            cfg["chat_template"] = serde_json::Value::String(t.to_string());
            std::fs::write(dir.join("chat_template.jinja"), t)?;
        }
        std::fs::write(
            dir.join("tokenizer_config.json"),
            serde_json::to_string_pretty(&cfg)?,
        )?;
        Ok(())
    }

    /// Every id that ends a completion: EOS plus the extra stop ids.
    pub fn stop_ids(&self) -> BTreeSet<u32> {
        let mut ids = self.extra_eos_ids.clone();
        ids.extend(self.eos_id);
        ids
    }
}

/// A special token from `tokenizer_config.json`: a string or `{"content": …}`.
fn special_token(cfg: &serde_json::Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}
