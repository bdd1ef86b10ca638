//! `intuitor-bench ops`: the pieces of one training update timed one at a time on the device,
//! at a training shape, so that a GPU loan without a profiler still shows where an update's
//! time goes: one decoder layer's forward and backward and its parts (attention, RMSNorm,
//! SwiGLU, a linear layer), the attention inputs, a logits chunk of the loss, and the gradient
//! and optimizer bookkeeping. Milliseconds, the median of 3 after a warm-up, each ending with a
//! device synchronisation.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::{json, Map, Value};

use intuitor::kernels::{self, AttentionBias, Coefficients};
use intuitor::model::KvContext;
use intuitor::optim::GradAccumulator;
use intuitor::policy::Policy;

/// Median milliseconds of `f` (3 timed runs after one warm-up).
fn time(device: &Device, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    device.synchronize()?;
    let mut ms = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms[1])
}

/// A trainable random tensor of `shape` in `dtype` (N(0, 0.02²)).
fn var(shape: &[usize], dtype: DType, device: &Device) -> anyhow::Result<Var> {
    let t = Tensor::randn(0f32, 0.02, shape, device)?.to_dtype(dtype)?;
    Ok(Var::from_tensor(&t)?)
}

/// The additive causal mask `[b, t, t]` (−1e30 above the diagonal).
fn causal_bias(b: usize, t: usize) -> Vec<f32> {
    (0..b * t * t)
        .map(|i| match i % t > (i / t) % t {
            true => -1e30,
            false => 0.0,
        })
        .collect()
}

/// Back-propagates Σ `y` (the gradients are dropped).
fn backward(y: &Tensor) -> anyhow::Result<()> {
    kernels::sum_all(y)?.backward()?;
    Ok(())
}

/// Times every piece for `b` sequences of `t` tokens with `policy` (its compute dtype).
pub fn run(policy: &Policy, device: &Device, b: usize, t: usize) -> anyhow::Result<Value> {
    let cfg = policy.config().clone();
    let dtype = policy.compute_dtype();
    let (h, inter, vocab) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (heads, kv, hd) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let n = b * t;
    let mut out = Map::new();
    let mut put = |name: &str, ms: f64| {
        out.insert(name.to_string(), json!(ms));
    };

    // The attention inputs of a left-padded batch: RoPE tables and the additive bias.
    let ids = Tensor::zeros((b, t), DType::U32, device)?;
    let pos = Tensor::arange(0u32, t as u32, device)?
        .unsqueeze(0)?
        .repeat((b, 1))?;
    let mask = Tensor::ones((b, t), DType::U32, device)?;
    let decoder = &policy.decoder;
    put(
        "layer_inputs",
        time(device, || {
            decoder.layer_inputs(&ids, &pos, Some(&mask), 0)?;
            Ok(())
        })?,
    );
    let inputs = decoder.layer_inputs(&ids, &pos, Some(&mask), 0)?;
    let x = var(&[b, t, h], dtype, device)?;
    let detached = policy.detached()?;
    put(
        "layer_forward_no_grad",
        time(device, || {
            detached.layer(0, &x.as_tensor().detach(), &inputs, &mut KvContext::Own)?;
            Ok(())
        })?,
    );
    put(
        "layer_forward_backward",
        time(device, || {
            backward(&decoder.layer(0, x.as_tensor(), &inputs, &mut KvContext::Own)?)
        })?,
    );

    // Attention alone: q `[b, kv, groups·t, d]`, k and v `[b, kv, t, d]`, a causal bias.
    let groups = heads / kv;
    let q = var(&[b, kv, groups * t, hd], dtype, device)?;
    let (k, v) = (
        var(&[b, kv, t, hd], dtype, device)?,
        var(&[b, kv, t, hd], dtype, device)?,
    );
    let bias = AttentionBias::new(Arc::new(causal_bias(b, t)), (b, t, t), device, dtype)?;
    let attend = |track: bool| -> anyhow::Result<Tensor> {
        let (q, k, v) = match track {
            true => (
                q.as_tensor().clone(),
                k.as_tensor().clone(),
                v.as_tensor().clone(),
            ),
            false => (
                q.as_tensor().detach(),
                k.as_tensor().detach(),
                v.as_tensor().detach(),
            ),
        };
        Ok(kernels::attention(&q, k, v, None, Some(&bias), heads)?)
    };
    put(
        "attention_forward_no_grad",
        time(device, || attend(false).map(drop))?,
    );
    put(
        "attention_forward_backward",
        time(device, || backward(&attend(true)?))?,
    );

    // RMSNorm, SwiGLU and one MLP projection on `[n, hidden]` rows.
    let rows = var(&[n, h], dtype, device)?;
    let weight = Var::from_tensor(&Tensor::ones(h, dtype, device)?)?;
    put(
        "rms_norm_forward_backward",
        time(device, || {
            backward(&kernels::rms_norm(
                rows.as_tensor(),
                weight.as_tensor(),
                1e-6,
            )?)
        })?,
    );
    let (gate, up) = (
        var(&[n, inter], dtype, device)?,
        var(&[n, inter], dtype, device)?,
    );
    put(
        "swiglu_forward_backward",
        time(device, || {
            backward(&kernels::swiglu(gate.as_tensor(), up.as_tensor())?)
        })?,
    );
    let w_up = var(&[inter, h], dtype, device)?;
    put(
        "linear_up_forward_backward",
        time(device, || {
            backward(&kernels::linear(rows.as_tensor(), w_up.as_tensor())?)
        })?,
    );

    // One 512-row logits chunk of the loss: log-prob of the target and the entropy.
    let chunk = 512.min(n);
    let head_rows = var(&[chunk, h], dtype, device)?;
    let head = var(&[vocab, h], dtype, device)?;
    let targets: Vec<u32> = (0..chunk as u32).collect();
    let logprob = |track: bool| -> anyhow::Result<Tensor> {
        let (r, w) = match track {
            true => (head_rows.as_tensor().clone(), head.as_tensor().clone()),
            false => (head_rows.as_tensor().detach(), head.as_tensor().detach()),
        };
        Ok(kernels::target_logprobs(&r, &w, &targets, 0.9, true)?.0)
    };
    put(
        "head_chunk_forward_no_grad",
        time(device, || logprob(false).map(drop))?,
    );
    put(
        "head_chunk_forward_backward",
        time(device, || backward(&logprob(true)?))?,
    );

    // Gradient bookkeeping: a transposed weight gradient summed in f32; the embedding's rows.
    let master = Tensor::zeros((inter, h), DType::F32, device)?;
    let grad_t = Tensor::randn(0f32, 1.0, (h, inter), device)?.to_dtype(dtype)?;
    let mut sums = GradAccumulator::default();
    sums.add(&master, &grad_t.t()?)?;
    put(
        "grad_sum_add_transposed",
        time(device, || Ok(sums.add(&master, &grad_t.t()?)?))?,
    );
    let mut table = Tensor::zeros((vocab, h), DType::F32, device)?;
    let row_ids = Tensor::arange(0u32, n as u32, device)?;
    let row_grads = Tensor::randn(0f32, 1.0, (n, h), device)?;
    put(
        "embedding_grad_add_rows",
        time(device, || {
            Ok(kernels::add_rows(&mut table, &row_ids, &row_grads, 0)?)
        })?,
    );
    let theta = var(&[vocab, h], DType::F32, device)?;
    let (mut m, mut v2) = (theta.zeros_like()?, theta.zeros_like()?);
    let g = Tensor::randn(0f32, 1.0, (vocab, h), device)?;
    let k = Coefficients::new(0.9, 0.999, 1e-8, 0.0, 1, 1e-6);
    put(
        "adamw_embedding",
        time(device, || {
            Ok(kernels::adamw_update(&theta, &mut m, &mut v2, &g, k)?)
        })?,
    );
    put(
        "sum_of_squares_embedding",
        time(device, || {
            kernels::sum_of_squares(&g).map(drop).map_err(Into::into)
        })?,
    );
    Ok(json!({
        "shape": {"batch": b, "tokens": t, "dtype": format!("{dtype:?}")},
        "layers": cfg.num_hidden_layers,
        "milliseconds": out,
    }))
}

/// `intuitor-bench attention`: one causal attention's forward and backward over `t` positions
/// (`[b, kv_heads, groups·t, head_dim]` queries) with the query-blocked kernel in blocks of
/// `block` positions, once, reporting seconds and the process's peak RSS: run once with the
/// default block and once with `block = t` (every score at once, as plain attention keeps
/// them) in separate processes to see the memory the blocks save (`bench/attention_memory.sh`).
pub fn attention_memory(
    device: &Device,
    dtype: DType,
    (b, kv, groups, t, hd): (usize, usize, usize, usize, usize),
    block: usize,
) -> anyhow::Result<Value> {
    let q = var(&[b, kv, groups * t, hd], dtype, device)?;
    let (k, v) = (
        var(&[b, kv, t, hd], dtype, device)?,
        var(&[b, kv, t, hd], dtype, device)?,
    );
    let bias = Tensor::from_vec(causal_bias(b, t), (b, 1, t, t), device)?;
    let scale = 1.0 / (hd as f64).sqrt();
    let before = super::peak_rss_mb();
    let start = Instant::now();
    let y = kernels::blocked_attention_with(
        q.as_tensor(),
        k.as_tensor(),
        v.as_tensor(),
        Some(&bias),
        groups,
        scale,
        block,
    )?;
    backward(&y)?;
    device.synchronize()?;
    Ok(json!({
        "shape": {"batch": b, "kv_heads": kv, "groups": groups, "tokens": t, "head_dim": hd,
                  "dtype": format!("{dtype:?}")},
        "block": block,
        "seconds": start.elapsed().as_secs_f64(),
        "inputs_peak_rss_mb": before,
        "peak_rss_mb": super::peak_rss_mb(),
    }))
}
