//! Resolved decoder configuration, read from an HF `config.json` or from GGUF metadata.
//!
//! The file's shape (`RawHfConfig`, optional fields with HF key names) is kept apart from the
//! runtime shape (`ModelConfig`, every field resolved), as candle's `LlamaConfig::into_config` does.

use serde::Deserialize;

/// The `model_type` values this decoder implements; all are llama-family decoders.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "qwen2", "mistral"];

/// RoPE frequency scaling, as HF `rope_scaling` / `rope_parameters` describe it.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_type = "default"` or absent).
    None,
    /// `rope_type = "linear"`: every inverse frequency divided by `factor`.
    Linear { factor: f64 },
    /// `rope_type = "llama3"` (Llama 3.1+): wavelength-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// Everything the decoder needs, fully resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Width of the logits (`config.vocab_size`), which may exceed the tokenizer's size (Qwen2.5 pads
    /// 151665 → 151936); the padded rows count in self-certainty (spec §2.2).
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    /// q/k/v projections carry a bias (Qwen2).
    pub attention_bias: bool,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
}

#[derive(Debug, Deserialize)]
struct RawRope {
    #[serde(alias = "type")]
    rope_type: Option<String>,
    rope_theta: Option<f64>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<f64>,
}

/// `config.json` as written by HF transformers 4.x and 5.x (5.x moves `rope_theta` and the
/// scaling into `rope_parameters`).
#[derive(Debug, Deserialize)]
struct RawHfConfig {
    model_type: Option<String>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RawRope>,
    rope_parameters: Option<RawRope>,
    attention_bias: Option<bool>,
    tie_word_embeddings: Option<bool>,
    max_position_embeddings: Option<usize>,
    hidden_act: Option<String>,
}

impl ModelConfig {
    /// Parses an HF `config.json` text. Errors are plain strings; the caller adds the path.
    pub fn from_hf_json(text: &str) -> Result<Self, String> {
        let raw: RawHfConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let model_type = raw
            .model_type
            .ok_or_else(|| "field `model_type` is missing".to_string())?;
        check_model_type(&model_type)?;
        if let Some(act) = raw.hidden_act.as_deref() {
            if act != "silu" {
                return Err(format!(
                    "field `hidden_act` is {act:?}; only \"silu\" is supported"
                ));
            }
        }
        let rope = raw.rope_parameters.as_ref().or(raw.rope_scaling.as_ref());
        let rope_theta = raw
            .rope_theta
            .or(raw.rope_parameters.as_ref().and_then(|r| r.rope_theta))
            .unwrap_or(10000.0);
        let rope_scaling = match rope {
            Some(r) => parse_rope_scaling(r)?,
            None => RopeScaling::None,
        };
        let default_bias = model_type == "qwen2";
        Self {
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1)),
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            vocab_size: raw.vocab_size,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            attention_bias: raw.attention_bias.unwrap_or(default_bias),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            model_type,
        }
        .validated()
    }

    /// Checks the invariants the decoder relies on.
    pub fn validated(self) -> Result<Self, String> {
        let c = &self;
        if c.num_attention_heads == 0 || c.num_key_value_heads == 0 || c.hidden_size == 0 {
            return Err("hidden_size and head counts must be positive".into());
        }
        if !c.num_attention_heads.is_multiple_of(c.num_key_value_heads) {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                c.num_attention_heads, c.num_key_value_heads
            ));
        }
        if !c.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim ({}) must be even for RoPE", c.head_dim));
        }
        Ok(self)
    }

    /// The HF `config.json` for this configuration (loadable by transformers and by intuitor),
    /// its `torch_dtype` naming `dtype`, the dtype the weights are saved in.
    pub fn to_hf_json(
        &self,
        bos: Option<u32>,
        eos: Option<u32>,
        dtype: candle_core::DType,
    ) -> serde_json::Value {
        let arch = match self.model_type.as_str() {
            "qwen2" => "Qwen2ForCausalLM",
            "mistral" => "MistralForCausalLM",
            _ => "LlamaForCausalLM",
        };
        let rope_scaling = match self.rope_scaling {
            RopeScaling::None => serde_json::Value::Null,
            RopeScaling::Linear { factor } => {
                serde_json::json!({"rope_type": "linear", "factor": factor})
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                serde_json::json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                    "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings})
            }
        };
        serde_json::json!({
            "architectures": [arch],
            "model_type": self.model_type,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "attention_bias": self.attention_bias,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": "silu",
            "torch_dtype": match dtype {
                candle_core::DType::BF16 => "bfloat16",
                candle_core::DType::F16 => "float16",
                _ => "float32",
            },
            "bos_token_id": bos,
            "eos_token_id": eos,
        })
    }

    /// Bytes one position takes in a KV cache of `dtype_bytes`-byte values: K and V of every
    /// layer, `layers · 2 · kv_heads · head_dim · dtype_bytes`.
    pub fn kv_bytes_per_position(&self, dtype_bytes: usize) -> u64 {
        (self.num_hidden_layers * 2 * self.num_key_value_heads * self.head_dim * dtype_bytes) as u64
    }

    /// Number of query heads sharing one key/value head (grouped-query attention).
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// RoPE inverse frequencies (length head_dim/2), computed in f32 as HF's
    /// `_compute_default_rope_parameters` / `_compute_llama3_parameters` do.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let base = self.rope_theta as f32;
        let inv: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
            .collect();
        match self.rope_scaling {
            RopeScaling::None => inv,
            RopeScaling::Linear { factor } => inv.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old_ctx,
            } => {
                let (factor, low, high, old_ctx) = (
                    factor as f32,
                    low_freq_factor as f32,
                    high_freq_factor as f32,
                    old_ctx as f32,
                );
                let low_wavelen = old_ctx / low;
                let high_wavelen = old_ctx / high;
                inv.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        let scaled = if wavelen > low_wavelen { f / factor } else { f };
                        let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                        if medium {
                            let smooth = (old_ctx / wavelen - low) / (high - low);
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Rejects a `model_type` the decoder does not implement, naming the supported ones.
pub fn check_model_type(model_type: &str) -> Result<(), String> {
    if SUPPORTED_MODEL_TYPES.contains(&model_type) {
        Ok(())
    } else {
        Err(format!(
            "unsupported model_type {model_type:?}; supported: {}",
            SUPPORTED_MODEL_TYPES.join(", ")
        ))
    }
}

fn parse_rope_scaling(r: &RawRope) -> Result<RopeScaling, String> {
    let need = |v: Option<f64>, name: &str| {
        v.ok_or_else(|| format!("rope scaling field `{name}` is missing"))
    };
    match r.rope_type.as_deref() {
        None | Some("default") => Ok(RopeScaling::None),
        Some("linear") => Ok(RopeScaling::Linear {
            factor: need(r.factor, "factor")?,
        }),
        Some("llama3") => Ok(RopeScaling::Llama3 {
            factor: need(r.factor, "factor")?,
            low_freq_factor: need(r.low_freq_factor, "low_freq_factor")?,
            high_freq_factor: need(r.high_freq_factor, "high_freq_factor")?,
            original_max_position_embeddings: need(
                r.original_max_position_embeddings,
                "original_max_position_embeddings",
            )?,
        }),
        Some(other) => Err(format!(
            "unsupported rope scaling type {other:?}; supported: default, linear, llama3"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_type_lists_supported_ones() {
        let err = ModelConfig::from_hf_json(
            r#"{"model_type":"gpt2","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
                "num_attention_heads":2,"vocab_size":10}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("\"gpt2\"") && err.contains("llama, qwen2, mistral"),
            "{err}"
        );
    }

    #[test]
    fn rope_theta_is_read_from_both_hf_layouts() {
        let v4 = r#"{"model_type":"qwen2","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"vocab_size":10,"rope_theta":1000000.0}"#;
        let v5 = r#"{"model_type":"qwen2","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"vocab_size":10,"rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"}}"#;
        let a = ModelConfig::from_hf_json(v4).unwrap();
        let b = ModelConfig::from_hf_json(v5).unwrap();
        assert_eq!(a.rope_theta, 1e6);
        assert_eq!(a, b);
        assert!(a.attention_bias, "qwen2 has q/k/v bias by default");
    }
}
