//! GGUF files: decoder config from metadata, weights dequantized and renamed to HF names, and the
//! raw tokenizer fields (stack-notes "The default model").
//!
//! llama.cpp stores Q and K of `llama` models permuted for its interleaved RoPE; this decoder uses
//! HF rotate-half RoPE, so they are un-permuted on load ([`unpermute_qk`]). Qwen2 GGUFs are not
//! permuted by llama.cpp's converter.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use super::config::{check_model_type, ModelConfig, RopeScaling};
use super::packed::PackedWeight;
use super::LoadError;

/// The most elements a GGUF tensor may have (2^40; the largest models' matrices have ~2^30).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 40;

/// An opened GGUF file: header, metadata and tensor index (tensor data is read on demand).
pub struct GgufFile {
    pub path: PathBuf,
    content: Content,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let mut f = File::open(path).map_err(|e| LoadError::io(path, e))?;
        Self::read(path, &mut f)
    }

    /// Reads the header, metadata and tensor index from `reader`; `path` names the file in
    /// messages and is where [`Self::tensors`] reads tensor data from.
    ///
    /// Every tensor's shape must have 1 to [`MAX_TENSOR_ELEMENTS`] elements: candle computes
    /// sizes from the shape unchecked (an overflowing product wraps) and reads an empty tensor
    /// through a dangling pointer (both found by fuzzing).
    pub fn read<R: Read + Seek>(path: &Path, reader: &mut R) -> Result<Self, LoadError> {
        let invalid = |m: String| LoadError::invalid(path, format!("not a valid GGUF file: {m}"));
        let content = Content::read(reader).map_err(|e| invalid(e.to_string()))?;
        for (name, info) in &content.tensor_infos {
            let dims = info.shape.dims();
            match dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
                Some(n) if (1..=MAX_TENSOR_ELEMENTS).contains(&n) => {}
                _ => {
                    return Err(invalid(format!(
                    "tensor `{name}` has shape {dims:?}, not 1 to {MAX_TENSOR_ELEMENTS} elements"
                )))
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn need(&self, key: &str) -> Result<&Value, LoadError> {
        self.get(key)
            .ok_or_else(|| LoadError::invalid(&self.path, format!("metadata `{key}` is missing")))
    }

    fn need_usize(&self, key: &str) -> Result<usize, LoadError> {
        value_to_f64(self.need(key)?)
            .map(|v| v as usize)
            .ok_or_else(|| {
                LoadError::invalid(&self.path, format!("metadata `{key}` is not a number"))
            })
    }

    fn opt_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(value_to_f64)
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn u32(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(value_to_f64).map(|v| v as u32)
    }

    /// A string-array field (`tokenizer.ggml.tokens`, `…merges`).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, LoadError> {
        match self.need(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(LoadError::invalid(
                        &self.path,
                        format!("`{key}` holds a non-string"),
                    )),
                })
                .collect(),
            _ => Err(LoadError::invalid(
                &self.path,
                format!("`{key}` is not an array"),
            )),
        }
    }

    /// An integer-array field (`tokenizer.ggml.token_type`).
    pub fn ints(&self, key: &str) -> Result<Vec<i64>, LoadError> {
        match self.need(key)? {
            Value::Array(items) => Ok(items
                .iter()
                .map(|v| value_to_f64(v).unwrap_or(0.0) as i64)
                .collect()),
            _ => Err(LoadError::invalid(
                &self.path,
                format!("`{key}` is not an array"),
            )),
        }
    }

    pub fn architecture(&self) -> Result<String, LoadError> {
        self.string("general.architecture")
            .map(str::to_owned)
            .ok_or_else(|| {
                LoadError::invalid(&self.path, "metadata `general.architecture` is missing")
            })
    }

    /// The decoder configuration from `<arch>.*` metadata.
    pub fn config(&self) -> Result<ModelConfig, LoadError> {
        let arch = self.architecture()?;
        check_model_type(&arch).map_err(|m| LoadError::invalid(&self.path, m))?;
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = self.need_usize(&key("embedding_length"))?;
        let heads = self.need_usize(&key("attention.head_count"))?;
        let kv_heads = self
            .opt_f64(&key("attention.head_count_kv"))
            .map_or(heads, |v| v as usize);
        let embd = self
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| {
                LoadError::invalid(&self.path, "tensor `token_embd.weight` is missing")
            })?;
        let vocab_size = self
            .opt_f64(&key("vocab_size"))
            .map_or(embd.shape.dims()[0], |v| v as usize);
        let head_dim = self
            .opt_f64(&key("attention.key_length"))
            .map_or(hidden / heads.max(1), |v| v as usize);
        let rope_scaling = match self.string(&key("rope.scaling.type")) {
            Some("linear") => RopeScaling::Linear {
                factor: self.opt_f64(&key("rope.scaling.factor")).unwrap_or(1.0),
            },
            _ => RopeScaling::None,
        };
        let cfg = ModelConfig {
            model_type: arch.clone(),
            hidden_size: hidden,
            intermediate_size: self.need_usize(&key("feed_forward_length"))?,
            num_hidden_layers: self.need_usize(&key("block_count"))?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            vocab_size,
            rms_norm_eps: self
                .opt_f64(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            rope_theta: self.opt_f64(&key("rope.freq_base")).unwrap_or(10000.0),
            rope_scaling,
            attention_bias: self.content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            max_position_embeddings: self
                .opt_f64(&key("context_length"))
                .map_or(4096, |v| v as usize),
        }
        .validated()
        .map_err(|m| LoadError::invalid(&self.path, m))?;
        self.with_rope_freqs(cfg)
    }

    /// `cfg` with the scaling a `rope_freqs.weight` tensor encodes (Llama 3.x files from
    /// llama.cpp's converter, [`super::rope_freqs`]), when the file has one.
    fn with_rope_freqs(&self, cfg: ModelConfig) -> Result<ModelConfig, LoadError> {
        if !self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Ok(cfg);
        }
        let mut f = File::open(&self.path).map_err(|e| LoadError::io(&self.path, e))?;
        let factors: Vec<f32> = self
            .content
            .tensor(&mut f, "rope_freqs.weight", &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|t| t.flatten_all()?.to_vec1())
            .map_err(|e| self.tensor_error("rope_freqs.weight", e))?;
        let rope_scaling = super::rope_freqs::llama3_from_factors(&cfg, &factors)
            .map_err(|m| LoadError::invalid(&self.path, m))?;
        Ok(ModelConfig {
            rope_scaling,
            ..cfg
        })
    }

    /// Every tensor dequantized to `dtype`, under its HF name, with Q/K un-permuted for `llama`.
    pub fn tensors(
        &self,
        cfg: &ModelConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>, LoadError> {
        self.packed(cfg, dtype, device, |_| true)?
            .into_iter()
            .map(|(name, p)| {
                let t = p.dense().map_err(|e| self.tensor_error(&name, e))?;
                Ok((name, t))
            })
            .collect()
    }

    /// The decoder's weight matrices (`model.layers.*_proj.weight` and the embedding) as
    /// stored, for a decoder that keeps them packed ([`super::Decoder::pack`]).
    pub fn packed_matrices(
        &self,
        cfg: &ModelConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<HashMap<String, PackedWeight>, LoadError> {
        self.packed(cfg, dtype, device, |hf| {
            (hf.starts_with("model.layers.") && hf.ends_with("_proj.weight"))
                || hf == "model.embed_tokens.weight"
        })
    }

    fn tensor_error(&self, name: &str, e: candle_core::Error) -> LoadError {
        LoadError::invalid(&self.path, format!("tensor `{name}`: {e}"))
    }

    /// The tensors whose HF name passes `keep`, as stored in the file.
    fn packed(
        &self,
        cfg: &ModelConfig,
        dtype: DType,
        device: &Device,
        keep: impl Fn(&str) -> bool,
    ) -> Result<HashMap<String, PackedWeight>, LoadError> {
        let mut f = File::open(&self.path).map_err(|e| LoadError::io(&self.path, e))?;
        let permuted = cfg.model_type == "llama";
        let mut out = HashMap::new();
        for name in self.content.tensor_infos.keys() {
            let Some(hf) = hf_name(name).filter(|hf| keep(hf)) else {
                continue;
            };
            let q = self
                .content
                .tensor(&mut f, name, &Device::Cpu)
                .map_err(|e| self.tensor_error(name, e))?;
            let unpermute_heads = match name {
                n if permuted && n.ends_with("attn_q.weight") => Some(cfg.num_attention_heads),
                n if permuted && n.ends_with("attn_k.weight") => Some(cfg.num_key_value_heads),
                _ => None,
            };
            let p = PackedWeight {
                q,
                unpermute_heads,
                dtype,
                device: device.clone(),
            };
            out.insert(hf, p);
        }
        Ok(out)
    }
}

/// Reverses llama.cpp's `permute` of a Q or K weight `[out, in]`: reshape to
/// `(heads, out/heads/2, 2, in)`, swap axes 1 and 2, reshape back.
pub fn unpermute_qk(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    w.reshape((heads, out / heads / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// GGUF tensor name → HF name (stack-notes name map); `None` for tensors the decoder ignores
/// (e.g. precomputed `rope_freqs`).
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (part, kind) = tail.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

fn value_to_f64(v: &Value) -> Option<f64> {
    Some(match v {
        Value::U8(x) => *x as f64,
        Value::I8(x) => *x as f64,
        Value::U16(x) => *x as f64,
        Value::I16(x) => *x as f64,
        Value::U32(x) => *x as f64,
        Value::I32(x) => *x as f64,
        Value::U64(x) => *x as f64,
        Value::I64(x) => *x as f64,
        Value::F32(x) => *x as f64,
        Value::F64(x) => *x,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hf_names() {
        assert_eq!(
            hf_name("blk.3.attn_q.bias").unwrap(),
            "model.layers.3.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").unwrap(),
            "model.layers.0.mlp.down_proj.weight"
        );
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(heads, 2, out/heads/2, in).swapaxes(1, 2).reshape(out, in)
        let (heads, out, inp) = (2, 8, 3);
        let w = Tensor::arange(0f32, (out * inp) as f32, &Device::Cpu)
            .unwrap()
            .reshape((out, inp))
            .unwrap();
        let permuted = w
            .reshape((heads, 2, out / heads / 2, inp))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((out, inp))
            .unwrap();
        let back = unpermute_qk(&permuted, heads).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
    }
}
