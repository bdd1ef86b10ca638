//! One forward batch of the policy update (spec §4.2, §4.5): forward, the GRPO loss, backward,
//! with gradients accumulated into a [`GradAccumulator`].
//!
//! Memory stays bounded by computing the loss over chunks of completion positions: the decoder
//! runs once with autograd; its scoring rows are cut from the graph into a leaf; each chunk's
//! logits → log-probs → loss is back-propagated on its own (gradients for the rows and the
//! lm_head); finally `Σ rows · ∂L/∂rows` is back-propagated through the decoder. The result is
//! the exact gradient of the whole batch's loss (every aggregation is a per-token weighted
//! sum, see [`crate::loss::sequence_weights`]).

use candle_core::{DType, Result, Tensor, Var};

use crate::logprob::{chunk_logprobs, PackedBatch, Sequence, CHUNK_ROWS};
use crate::loss::{clipped, k3_kl, per_token_loss, LossConfig};
use crate::optim::GradAccumulator;
use crate::policy::Policy;

/// One sequence of a micro-batch with what the loss needs.
#[derive(Debug, Clone)]
pub struct UpdateSequence {
    pub prompt_ids: Vec<u32>,
    /// Completion tokens inside the mask (up to and including the first EOS).
    pub completion_ids: Vec<u32>,
    /// Sequence-level advantage, broadcast to every token (spec §3 step 5).
    pub advantage: f64,
    /// Log-probs at rollout time (μ > 1); `None` uses the detached current ones (ratio 1, μ = 1).
    pub old_logps: Option<Vec<f32>>,
    /// Frozen-reference log-probs (needed when β > 0).
    pub ref_logps: Option<Vec<f32>>,
    /// This sequence's aggregation weight ([`crate::loss::sequence_weights`]).
    pub weight: f64,
}

/// Sums over a micro-batch's masked tokens, for TRL-style metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStats {
    /// Σ w·ℓ: this micro-batch's contribution to the optimizer step's loss.
    pub loss: f64,
    pub tokens: usize,
    pub kl_sum: f64,
    pub entropy_sum: f64,
    pub clip_low: usize,
    pub clip_high: usize,
}

impl UpdateStats {
    pub fn merge(&mut self, o: &UpdateStats) {
        self.loss += o.loss;
        self.tokens += o.tokens;
        self.kl_sum += o.kl_sum;
        self.entropy_sum += o.entropy_sum;
        self.clip_low += o.clip_low;
        self.clip_high += o.clip_high;
    }
}

/// Forward + backward of one batch of sequences (any grouping: the loss weights carry the
/// micro-batch structure); gradients are added to `grads`.
pub fn accumulate_micro_batch(
    policy: &Policy,
    seqs: &[UpdateSequence],
    cfg: &LossConfig,
    temperature: f64,
    grads: &mut GradAccumulator,
) -> Result<UpdateStats> {
    let device = policy.decoder.device();
    let dtype = policy.decoder.dtype();
    let packed_seqs: Vec<Sequence> = seqs
        .iter()
        .map(|s| Sequence {
            prompt_ids: &s.prompt_ids,
            completion_ids: &s.completion_ids,
        })
        .collect();
    let packed = PackedBatch::new(&packed_seqs, device)?;
    let n = packed.targets.len();
    let mut stats = UpdateStats::default();
    if n == 0 {
        return Ok(stats);
    }
    // Per-token inputs, flattened in packing order.
    let mut adv = Vec::with_capacity(n);
    let mut weight = Vec::with_capacity(n);
    let mut old: Vec<Option<f32>> = Vec::with_capacity(n);
    let mut reference: Vec<f32> = Vec::with_capacity(n);
    let need_ref = cfg.beta != 0.0;
    for (i, s) in seqs.iter().enumerate() {
        let len = packed.lens[i];
        let check = |v: &Option<Vec<f32>>, what: &str| -> Result<()> {
            match v {
                Some(v) if v.len() != len => {
                    candle_core::bail!(
                        "sequence {i}: {} {what} for {len} completion tokens",
                        v.len()
                    )
                }
                _ => Ok(()),
            }
        };
        check(&s.old_logps, "old log-probs")?;
        check(&s.ref_logps, "reference log-probs")?;
        for k in 0..len {
            adv.push(s.advantage);
            weight.push(s.weight);
            old.push(s.old_logps.as_ref().map(|v| v[k]));
            if need_ref {
                let r = s.ref_logps.as_ref().ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "sequence {i}: beta > 0 needs reference log-probs"
                    ))
                })?;
                reference.push(r[k]);
            }
        }
    }

    let rows = packed.scoring_rows(&policy.decoder)?;
    let leaf = Var::from_tensor(&rows.detach())?;
    let lm_head = policy.decoder.lm_head();
    let mut rows_grad: Option<Tensor> = None;
    for start in (0..n).step_by(CHUNK_ROWS) {
        let len = CHUNK_ROWS.min(n - start);
        let range = start..start + len;
        let r = leaf.as_tensor().narrow(0, start, len)?;
        let (logp, entropy) = chunk_logprobs(
            &r,
            lm_head,
            &packed.targets[range.clone()],
            temperature,
            true,
        )?;
        let logp_host: Vec<f64> = logp.to_dtype(DType::F64)?.to_vec1()?;
        let old_t = match old[start].is_some() {
            true => {
                let v: Vec<f64> = old[range.clone()]
                    .iter()
                    .map(|o| o.unwrap_or(0.0) as f64)
                    .collect();
                Tensor::new(v, device)?.to_dtype(dtype)?
            }
            false => logp.detach(),
        };
        let adv_t = Tensor::new(&adv[range.clone()], device)?.to_dtype(dtype)?;
        let w_t = Tensor::new(&weight[range.clone()], device)?.to_dtype(dtype)?;
        let ref_t = if need_ref {
            let v: Vec<f64> = reference[range.clone()].iter().map(|&x| x as f64).collect();
            Some(Tensor::new(v, device)?.to_dtype(dtype)?)
        } else {
            None
        };
        let l = per_token_loss(&logp, &old_t, ref_t.as_ref(), &adv_t, cfg)?;
        let loss = (l * &w_t)?.sum_all()?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            candle_core::bail!("the loss is {value} (NaN/Inf); not training on it");
        }
        stats.loss += value;
        let g = loss.backward_into(&mut grads.sink(&policy.vars))?;
        if let Some(gr) = g.get(leaf.as_tensor()) {
            rows_grad = Some(match rows_grad {
                Some(acc) => (acc + gr)?,
                None => gr.clone(),
            });
        }
        grads.add_store(&policy.vars, &g)?;
        // Metrics (no gradient).
        let old_host: Vec<f64> = old_t.to_dtype(DType::F64)?.to_vec1()?;
        for (j, &lp) in logp_host.iter().enumerate() {
            let (lo, hi) = clipped((lp - old_host[j]).exp(), adv[start + j], cfg);
            stats.clip_low += lo as usize;
            stats.clip_high += hi as usize;
        }
        if let Some(r) = &ref_t {
            let mut kl = k3_kl(&logp.detach(), r)?;
            if cfg.kl_bias_correction {
                kl = (kl * (logp.detach() - &old_t)?.exp()?)?;
            }
            stats.kl_sum += kl.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        }
        if let Some(e) = entropy {
            stats.entropy_sum += e.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        }
    }
    stats.tokens = n;
    if let Some(gr) = rows_grad {
        let surrogate = (rows * gr.detach())?.sum_all()?;
        // Parameter gradients go straight into the sums; what backprop kept (a gradient built by
        // scatter, e.g. the embedding's) is added once the activations are freed.
        let g = surrogate.backward_into(&mut grads.sink(&policy.vars))?;
        drop(surrogate);
        grads.add_store(&policy.vars, &g)?;
    }
    Ok(stats)
}
