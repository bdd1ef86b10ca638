//! The llama-family decoder (Llama 2/3.x, SmolLM2, Qwen2/2.5, Mistral), with logits at every
//! position, a key mask for left-padded batches and the KV cache kept outside the weights.
//!
//! Every op on the path from the weights to the logits has a backward pass when gradients are
//! tracked (stack-notes: candle's fused `rms_norm`, `softmax_last_dim` and `rope` have none and
//! silently cut the graph). The device-dependent ops are [`crate::kernels`], which pick their
//! implementation from the tensors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};

use super::config::ModelConfig;
use super::kv_cache::{KvCache, KvContext, LayerCache};
use super::layers::{Linear, RmsNorm, Weight};
use super::packed::PackedWeight;
use crate::kernels::{self, split_heads, AttentionBias, Rotary};

#[derive(Clone)]
struct Layer {
    input_layernorm: RmsNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// The decoder's weights, held as tensors named like the HF checkpoint.
pub struct Decoder {
    cfg: ModelConfig,
    device: Device,
    dtype: DType,
    embed_tokens: Weight,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// The same weight as the embedding when tied.
    lm_head: Weight,
    inv_freq: Tensor,
    params: Vec<(String, Tensor)>,
}

impl Decoder {
    /// Builds the decoder from HF-named tensors (`model.layers.0.self_attn.q_proj.weight`, …).
    /// Missing or mis-shaped tensors are errors naming the tensor. Pass `Var`-backed tensors to
    /// train, plain tensors to run inference.
    pub fn new(cfg: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let mut params = Vec::new();
        let mut take = |name: String, shape: &[usize]| -> Result<Tensor> {
            let t = tensors
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor `{name}`")))?;
            if t.dims() != shape {
                candle_core::bail!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.dims()
                );
            }
            params.push((name, t.clone()));
            Ok(t.clone())
        };
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (q_out, kv_out) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let embed_tokens = take("model.embed_tokens.weight".into(), &[cfg.vocab_size, h])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut linear = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
                Ok(Linear {
                    weight: Weight::Dense(take(format!("{p}.{name}.weight"), &[out, inp])?),
                    bias: if bias {
                        Some(take(format!("{p}.{name}.bias"), &[out])?)
                    } else {
                        None
                    },
                })
            };
            let bias = cfg.attention_bias;
            let q_proj = linear("self_attn.q_proj", q_out, h, bias)?;
            let k_proj = linear("self_attn.k_proj", kv_out, h, bias)?;
            let v_proj = linear("self_attn.v_proj", kv_out, h, bias)?;
            let o_proj = linear("self_attn.o_proj", h, q_out, false)?;
            let gate_proj = linear("mlp.gate_proj", cfg.intermediate_size, h, false)?;
            let up_proj = linear("mlp.up_proj", cfg.intermediate_size, h, false)?;
            let down_proj = linear("mlp.down_proj", h, cfg.intermediate_size, false)?;
            let norm = |t: Tensor| RmsNorm {
                weight: t,
                eps: cfg.rms_norm_eps,
            };
            layers.push(Layer {
                input_layernorm: norm(take(format!("{p}.input_layernorm.weight"), &[h])?),
                post_attention_layernorm: norm(take(
                    format!("{p}.post_attention_layernorm.weight"),
                    &[h],
                )?),
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                gate_proj,
                up_proj,
                down_proj,
            });
        }
        let norm = RmsNorm {
            weight: take("model.norm.weight".into(), &[h])?,
            eps: cfg.rms_norm_eps,
        };
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            take("lm_head.weight".into(), &[cfg.vocab_size, h])?
        };
        let device = embed_tokens.device().clone();
        let inv_freq = Tensor::new(cfg.rope_inv_freq(), &device)?;
        Ok(Self {
            cfg: cfg.clone(),
            device,
            dtype: embed_tokens.dtype(),
            embed_tokens: Weight::Dense(embed_tokens),
            layers,
            norm,
            lm_head: Weight::Dense(lm_head),
            inv_freq,
            params,
        })
    }

    /// A copy for decoding (a rollout): on the CPU in f32, the weight matrices are re-laid out
    /// as `Panels` ([`super::panels`]: no per-call packing of W); elsewhere the same weights.
    ///
    /// The re-layout is done in the weights' own storage and undone when the copy is dropped:
    /// until then every decoder sharing these weights (`self`, the `Var`s it was built from)
    /// must not be used. Inference only.
    pub fn for_decoding(&self) -> Result<Decoder> {
        let embed_tokens = self.embed_tokens.for_decoding()?;
        let lm_head = if self.cfg.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            self.lm_head.for_decoding()?
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    q_proj: l.q_proj.for_decoding()?,
                    k_proj: l.k_proj.for_decoding()?,
                    v_proj: l.v_proj.for_decoding()?,
                    o_proj: l.o_proj.for_decoding()?,
                    gate_proj: l.gate_proj.for_decoding()?,
                    up_proj: l.up_proj.for_decoding()?,
                    down_proj: l.down_proj.for_decoding()?,
                    ..l.clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder {
            cfg: self.cfg.clone(),
            device: self.device.clone(),
            dtype: self.dtype,
            embed_tokens,
            layers,
            norm: self.norm.clone(),
            lm_head,
            inv_freq: self.inv_freq.clone(),
            params: Vec::new(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The output projection `[vocab, hidden]` (the embedding itself when tied); dequantized
    /// when packed, an error in a [`Decoder::for_decoding`] copy.
    pub fn lm_head(&self) -> Result<Cow<'_, Tensor>> {
        self.lm_head.dense()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Keeps the weight matrices found in `packed` (layer linears, the embedding and with it a
    /// tied head) quantized, dequantizing each on use (for a decoder that never trains, e.g.
    /// the frozen KL reference); they leave [`Decoder::parameters`]. Returns how many were
    /// packed.
    pub fn pack(&mut self, mut packed: HashMap<String, PackedWeight>) -> Result<usize> {
        let mut slots: Vec<(String, &mut Weight)> = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let linears = [
                ("self_attn.q_proj", &mut layer.q_proj),
                ("self_attn.k_proj", &mut layer.k_proj),
                ("self_attn.v_proj", &mut layer.v_proj),
                ("self_attn.o_proj", &mut layer.o_proj),
                ("mlp.gate_proj", &mut layer.gate_proj),
                ("mlp.up_proj", &mut layer.up_proj),
                ("mlp.down_proj", &mut layer.down_proj),
            ];
            for (name, linear) in linears {
                slots.push((
                    format!("model.layers.{i}.{name}.weight"),
                    &mut linear.weight,
                ));
            }
        }
        slots.push(("model.embed_tokens.weight".into(), &mut self.embed_tokens));
        let mut packed_names = Vec::new();
        for (key, weight) in slots {
            let (Some(p), Weight::Dense(w)) = (packed.remove(&key), &*weight) else {
                continue;
            };
            if p.dims() != w.dims() {
                candle_core::bail!(
                    "packed `{key}` has shape {:?}, the decoder's {:?}",
                    p.dims(),
                    w.dims()
                );
            }
            *weight = Weight::Packed(Arc::new(p));
            packed_names.push(key);
        }
        if self.cfg.tie_word_embeddings {
            self.lm_head = self.embed_tokens.clone();
        }
        self.params.retain(|(n, _)| !packed_names.contains(n));
        Ok(packed_names.len())
    }

    /// The trainable tensors with their HF names (a tied head appears once, as the embedding).
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The same model with its weights in `dtype` (e.g. the frozen reference in the compute
    /// dtype of mixed-precision training).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let tensors = self
            .params
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_dtype(dtype)?)))
            .collect::<Result<HashMap<String, Tensor>>>()?;
        Decoder::new(&self.cfg, &tensors)
    }

    /// Total number of parameters.
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// Final hidden states `[batch, seq, hidden]`.
    ///
    /// * `input_ids`: `[batch, seq]` u32.
    /// * `positions`: `[batch, seq]` u32 RoPE positions (for left padding: cumsum(mask) − 1).
    /// * `key_mask`: `[batch, cache.seen() + seq]`, 1 for real tokens, 0 for padding; `None`
    ///   means every key is real.
    /// * `cache`: appended to in place when given.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let ctx = match cache {
            Some(c) => KvContext::Cache(c),
            None => KvContext::Own,
        };
        self.hidden_states_with(input_ids, positions, key_mask, ctx)
    }

    /// [`Decoder::hidden_states`] with any [`KvContext`]; `key_mask` covers
    /// `ctx.past() + seq` keys.
    pub fn hidden_states_with(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        mut ctx: KvContext,
    ) -> Result<Tensor> {
        let inputs = self.layer_inputs(input_ids, positions, key_mask, ctx.past()?)?;
        let mut x = self.embed(&inputs)?;
        for i in 0..self.layers.len() {
            x = self.layer(i, &x, &inputs, &mut ctx)?;
        }
        self.final_norm(&x)
    }

    /// What every layer of one forward shares (RoPE tables, the attention bias), for a forward
    /// run step by step: [`Decoder::embed`], [`Decoder::layer`] for each of the
    /// [`Decoder::num_layers`], [`Decoder::final_norm`] — what [`Decoder::hidden_states_with`]
    /// does, and what activation recompute re-runs one layer at a time. `past` is the number
    /// of keys before this forward's own (`KvContext::past`).
    pub fn layer_inputs(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        past: usize,
    ) -> Result<LayerInputs> {
        let (b, t) = input_ids.dims2()?;
        let rotary = Rotary::new(&self.inv_freq, positions, &self.device, self.dtype)?;
        let bias = AttentionBias::for_keys(key_mask, (b, t, past), &self.device, self.dtype)?;
        Ok(LayerInputs {
            ids: input_ids.flatten_all()?,
            b,
            t,
            rotary,
            bias,
        })
    }

    /// The token embeddings `[batch, seq, hidden]` of a step-by-step forward.
    pub fn embed(&self, inputs: &LayerInputs) -> Result<Tensor> {
        let x = self.embed_tokens.rows(&inputs.ids)?;
        x.reshape((inputs.b, inputs.t, self.cfg.hidden_size))
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Decoder layer `i` on `x` `[batch, seq, hidden]` (pre-norm attention and SwiGLU MLP with
    /// residuals), with layer `i`'s share of `ctx`.
    pub fn layer(
        &self,
        i: usize,
        x: &Tensor,
        inputs: &LayerInputs,
        ctx: &mut KvContext,
    ) -> Result<Tensor> {
        let layer = &self.layers[i];
        let kv = match ctx {
            KvContext::Own => LayerKv::Own,
            KvContext::Cache(c) => {
                if c.layers.len() < self.layers.len() {
                    c.layers.resize(self.layers.len(), None);
                }
                LayerKv::Cache(&mut c.layers[i])
            }
            KvContext::Capture(out) => LayerKv::Capture(out),
            KvContext::Prefix(layers) => match layers.get(i) {
                Some(kv) => LayerKv::Prefix(kv),
                None => candle_core::bail!("the prefix has no keys for layer {i}"),
            },
        };
        let h = layer.input_layernorm.forward(x)?;
        let h = self.attention(layer, &h, &inputs.rotary, inputs.bias.as_ref(), kv)?;
        let x = (x + h)?;
        let h = layer.post_attention_layernorm.forward(&x)?;
        let [gate, up] = Linear::forward_all([&layer.gate_proj, &layer.up_proj], &h)?;
        let act = kernels::swiglu(&gate, &up)?;
        let h = layer.down_proj.forward(&act)?;
        x + h
    }

    /// The final RMSNorm of a step-by-step forward.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(x)
    }

    /// Logits `[batch, seq, vocab]` from hidden states `[batch, seq, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, t, h) = hidden.dims3()?;
        let x = hidden.reshape((b * t, h))?;
        let y = match &self.lm_head {
            Weight::Panels(p) => p.linear(&x)?,
            // The lm_head keeps x·Wᵀ: W·xᵀ (`kernels::linear`) measured slower here (the
            // transposed [vocab, rows] result is read back column by column).
            w => x.matmul(&w.dense()?.t()?)?,
        };
        y.reshape((b, t, self.cfg.vocab_size))
    }

    /// Logits at every position, `[batch, seq, vocab]`; see [`Decoder::hidden_states`].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let hidden = self.hidden_states(input_ids, positions, key_mask, cache)?;
        self.logits(&hidden)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        rotary: &Rotary,
        bias: Option<&AttentionBias>,
        kv: LayerKv,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let [q, k, v] = Linear::forward_all([&layer.q_proj, &layer.k_proj, &layer.v_proj], x)?;
        let q = rotary.heads(q, nh)?;
        let mut k = rotary.heads(k, nkv)?;
        let mut v = split_heads(&v, nkv)?;
        let mut prefix = None;
        match kv {
            LayerKv::Own => {}
            LayerKv::Cache(slot) => {
                let keys = LayerCache::append(slot, &k, &v)?;
                (k, v, prefix) = (keys.k, keys.v, keys.prefix);
            }
            LayerKv::Capture(out) => out.push((k.clone(), v.clone())),
            LayerKv::Prefix((pk, pv)) => {
                let shared = |p: &Tensor, own: &Tensor| -> Result<Tensor> {
                    let (_, h, n, d) = p.dims4()?;
                    Tensor::cat(&[&p.broadcast_as((b, h, n, d))?, own], 2)
                };
                (k, v) = (shared(pk, &k)?, shared(pv, &v)?);
            }
        }
        let q = q.reshape((b, nkv, cfg.kv_groups() * t, hd))?;
        let out = kernels::attention(&q, k, v, prefix, bias, nh)?;
        let out = out.reshape((b, nh, t, hd))?;
        let out = out.transpose(1, 2)?.reshape((b, t, nh * hd))?;
        layer.o_proj.forward(&out)
    }
}

/// Per-forward inputs of every layer; see [`Decoder::layer_inputs`].
pub struct LayerInputs {
    ids: Tensor,
    b: usize,
    t: usize,
    rotary: Rotary,
    bias: Option<AttentionBias>,
}

/// One layer's share of a [`KvContext`].
enum LayerKv<'a> {
    Own,
    Cache(&'a mut Option<LayerCache>),
    Capture(&'a mut Vec<(Tensor, Tensor)>),
    Prefix(&'a (Tensor, Tensor)),
}

/// RoPE positions for a left-padded batch, as HF computes them: `cumsum(mask) − 1`, clamped at 0.
pub fn positions_from_mask(mask: &[Vec<u32>]) -> Vec<Vec<u32>> {
    mask.iter()
        .map(|row| {
            let mut seen = 0u32;
            row.iter()
                .map(|&m| {
                    seen += m;
                    seen.saturating_sub(1)
                })
                .collect()
        })
        .collect()
}
