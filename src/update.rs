//! One forward batch of the policy update (spec §4.2, §4.5): forward, the GRPO loss, backward,
//! with gradients accumulated into a [`GradAccumulator`].
//!
//! Memory stays bounded three ways. The loss runs over chunks of completion positions: the
//! scoring rows are cut from the graph into a leaf, each chunk's logits → log-probs → loss is
//! back-propagated on its own, then `Σ rows · ∂L/∂rows` goes back through the decoder. A group
//! sharing a prompt is cut after the prompt, so that one completion's activations are alive at a
//! time (`Backprop::group`). Parameter gradients go into the sums during backward
//! ([`GradAccumulator::sink`]). The result is the exact gradient of the whole batch's loss
//! (every aggregation is a per-token weighted sum, see [`crate::loss::sequence_weights`]).

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

use crate::kernels::{self, HeadChunk};
use crate::logprob::CHUNK_ROWS;
use crate::loss::{clipped, k3_kl, per_token_loss, LossConfig};
use crate::model::{Decoder, KvContext};
use crate::optim::GradAccumulator;
use crate::packing::{PackedBatch, PromptStates, Sequence, SharedPrompt};
use crate::policy::Policy;
use crate::recompute::Checkpointed;

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
///
/// A batch that shares prompts runs group by group with the graph cut after the prompt
/// (`Backprop::group`), so the activations alive at once are one prompt's or one
/// completion's, not the whole batch's.
pub fn accumulate_micro_batch(
    policy: &Policy,
    seqs: &[UpdateSequence],
    cfg: &LossConfig,
    grads: &mut GradAccumulator,
) -> Result<UpdateStats> {
    let packed_seqs: Vec<Sequence> = seqs
        .iter()
        .map(|s| Sequence {
            prompt_ids: &s.prompt_ids,
            completion_ids: &s.completion_ids,
        })
        .collect();
    let packed = PackedBatch::new(&packed_seqs, policy.decoder.device())?;
    let mut stats = UpdateStats::default();
    if packed.targets.is_empty() {
        return Ok(stats);
    }
    let tokens = TokenInputs::new(seqs, &packed, cfg)?;
    let mut run = Backprop {
        policy,
        cfg,
        tokens: &tokens,
        grads,
        stats: &mut stats,
    };
    match packed.groups() {
        Some(groups) => {
            let mut at = 0;
            for group in groups {
                at = run.group(group, at)?;
            }
        }
        None if policy.gradient_checkpointing => {
            let mut forwards = Vec::new();
            let rows =
                packed.scoring_rows_with(&mut checkpointed(&policy.decoder, &mut forwards))?;
            let store = run.rows(rows, 0)?;
            for f in forwards {
                let grad_last = store.get(f.last.as_tensor()).cloned();
                f.backward(&policy.decoder, grad_last, &[], &mut |l| run.backward(l))?;
            }
        }
        None => {
            let rows = packed.scoring_rows(&policy.decoder)?;
            run.rows(rows, 0)?;
        }
    }
    stats.tokens = packed.targets.len();
    Ok(stats)
}

/// The per-token inputs of the loss, flattened in packing order.
struct TokenInputs {
    targets: Vec<u32>,
    adv: Vec<f64>,
    weight: Vec<f64>,
    old: Vec<Option<f32>>,
    reference: Vec<f32>,
}

impl TokenInputs {
    fn new(seqs: &[UpdateSequence], packed: &PackedBatch, cfg: &LossConfig) -> Result<Self> {
        let n = packed.targets.len();
        let mut t = TokenInputs {
            targets: packed.targets.clone(),
            adv: Vec::with_capacity(n),
            weight: Vec::with_capacity(n),
            old: Vec::with_capacity(n),
            reference: Vec::with_capacity(n),
        };
        let need_ref = cfg.uses_reference();
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
                t.adv.push(s.advantage);
                t.weight.push(s.weight);
                t.old.push(s.old_logps.as_ref().map(|v| v[k]));
                if need_ref {
                    let r = s.ref_logps.as_ref().ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "sequence {i}: beta > 0 needs reference log-probs"
                        ))
                    })?;
                    t.reference.push(r[k]);
                }
            }
        }
        Ok(t)
    }
}

/// One forward batch's backward: where the gradients and metrics go.
struct Backprop<'a> {
    policy: &'a Policy,
    cfg: &'a LossConfig,
    tokens: &'a TokenInputs,
    grads: &'a mut GradAccumulator,
    stats: &'a mut UpdateStats,
}

impl Backprop<'_> {
    /// One prompt group, its tokens starting at `at`; returns where the next group starts.
    ///
    /// The graph is cut after the prompt: each completion runs on its own, attending to leaf
    /// copies of the prompt's keys/values and reading a leaf copy of its last hidden row, and is
    /// back-propagated before the next one runs. The leaves' gradients are summed and sent
    /// through the prompt's forward once at the end (`Σ state · ∂L/∂state`), which gives the
    /// same gradient as one backward over the whole group. That forward is run again at the
    /// end rather than kept (the same kernels give the same values), so the prompt's and a
    /// completion's activations are never alive together.
    ///
    /// With activation recompute each forward keeps only its layers' inputs and is
    /// back-propagated one recomputed layer at a time ([`Checkpointed`]).
    fn group(&mut self, group: &SharedPrompt, mut at: usize) -> Result<usize> {
        let policy = self.policy;
        let decoder = &policy.decoder;
        let recompute = policy.gradient_checkpointing;
        let mut prompt_forward = Vec::new();
        let states = match recompute {
            true => group.prompt_forward_with(&mut checkpointed(decoder, &mut prompt_forward))?,
            false => group.prompt_forward(decoder)?,
        };
        // Leaf copies share only the states' storage: the prompt's graph is freed here.
        let leaves = states
            .into_states()
            .iter()
            .map(|t| Var::from_tensor(&t.detach()))
            .collect::<Result<Vec<_>>>()?;
        let cut =
            PromptStates::from_states(leaves.iter().map(|v| v.as_tensor().clone()).collect())?;
        let mut sums: Vec<Option<Tensor>> = vec![None; leaves.len()];
        for i in 0..group.len() {
            let n = group.scored(i);
            if n == 0 {
                continue;
            }
            let mut forwards = Vec::new();
            let rows = match recompute {
                true => group.completion_rows_with(
                    &mut checkpointed(decoder, &mut forwards),
                    i..i + 1,
                    &cut,
                )?,
                false => group.completion_rows(decoder, i..i + 1, &cut)?,
            };
            let g = self.rows(rows, at)?;
            for (leaf, sum) in leaves.iter().zip(sums.iter_mut()) {
                if let Some(d) = g.get(leaf.as_tensor()) {
                    add_into(sum, d.clone())?;
                }
            }
            for f in forwards {
                let grad_last = g.get(f.last.as_tensor()).cloned();
                let prefix = f.backward(decoder, grad_last, &[], &mut |l| self.backward(l))?;
                for (layer, (dk, dv)) in prefix.into_iter().enumerate() {
                    for (j, d) in [(2 * layer, dk), (2 * layer + 1, dv)] {
                        if let Some(d) = d {
                            add_into(&mut sums[j], d)?;
                        }
                    }
                }
            }
            at += n;
        }
        drop(cut);
        if let Some(f) = prompt_forward.pop() {
            // ∂L/∂(last hidden row) through the final norm, then the layers with ∂L/∂(K, V).
            let d_last = sums.pop().flatten();
            let kv_grads: Vec<_> = sums
                .chunks(2)
                .map(|c| (c[0].clone(), c[1].clone()))
                .collect();
            let grad_last = match d_last {
                Some(d) => {
                    let hidden = decoder.final_norm(f.last.as_tensor())?.squeeze(0)?;
                    let last = hidden.narrow(0, hidden.dim(0)? - 1, 1)?;
                    let store = self.backward(kernels::sum_all(&(last * d)?)?)?;
                    store.get(f.last.as_tensor()).cloned()
                }
                None => None,
            };
            f.backward(decoder, grad_last, &kv_grads, &mut |l| self.backward(l))?;
            return Ok(at);
        }
        let states = group.prompt_forward(decoder)?.into_states();
        let mut surrogate: Option<Tensor> = None;
        for (state, sum) in states.into_iter().zip(sums) {
            if let Some(d) = sum {
                add_into(&mut surrogate, kernels::sum_all(&(state * d)?)?)?;
            }
        }
        if let Some(surrogate) = surrogate {
            self.backward(surrogate)?;
        }
        Ok(at)
    }

    /// The loss of the scoring rows `rows` (tokens `at ..` of the batch), back-propagated into
    /// the gradient sums; returns the gradients of the other leaves the rows depend on.
    ///
    /// The rows are cut from the graph into a leaf; each chunk's logits → log-probs → loss is
    /// back-propagated on its own (gradients for the rows and the lm_head), then
    /// `Σ rows · ∂L/∂rows` is back-propagated through the decoder.
    fn rows(&mut self, rows: Tensor, at: usize) -> Result<GradStore> {
        let device = rows.device().clone();
        let (cfg, t) = (self.cfg, self.tokens);
        let n = rows.dim(0)?;
        let leaf = Var::from_tensor(&rows.detach())?;
        let lm_head = &*self.policy.decoder.lm_head()?;
        let mut rows_grad = Vec::new();
        for start in (0..n).step_by(CHUNK_ROWS) {
            let len = CHUNK_ROWS.min(n - start);
            let range = at + start..at + start + len;
            let targets = &t.targets[range.clone()];
            let chunk = HeadChunk::new(leaf.as_tensor(), start, len, lm_head)?;
            let (logp, entropy) = chunk.target_logprobs(targets, cfg.temperature)?;
            // The loss in the log-probs' dtype: f32 for bf16/f16 weights.
            let dtype = logp.dtype();
            let logp_host: Vec<f64> = logp.to_dtype(DType::F64)?.to_vec1()?;
            let old_t = match t.old[range.start].is_some() {
                true => {
                    let v: Vec<f64> = t.old[range.clone()]
                        .iter()
                        .map(|o| o.unwrap_or(0.0) as f64)
                        .collect();
                    Tensor::new(v, &device)?.to_dtype(dtype)?
                }
                false => logp.detach(),
            };
            let adv_t = Tensor::new(&t.adv[range.clone()], &device)?.to_dtype(dtype)?;
            let w_t = Tensor::new(&t.weight[range.clone()], &device)?.to_dtype(dtype)?;
            let ref_t = if cfg.uses_reference() {
                let v: Vec<f64> = t.reference[range.clone()]
                    .iter()
                    .map(|&x| x as f64)
                    .collect();
                Some(Tensor::new(v, &device)?.to_dtype(dtype)?)
            } else {
                None
            };
            let l = per_token_loss(&logp, &old_t, ref_t.as_ref(), &adv_t, cfg)?;
            let loss = kernels::sum_all(&(l * &w_t)?)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                candle_core::bail!("the loss is {value} (NaN/Inf); not training on it");
            }
            self.stats.loss += value;
            let g = self.backward(loss)?;
            let grads = &mut self.grads;
            let part = chunk.backward(&g, || grads.sum_for(lm_head).map(|s| &*s))?;
            rows_grad.push(match part {
                Some(p) => p,
                None => leaf.as_tensor().narrow(0, start, len)?.zeros_like()?,
            });
            // Metrics (no gradient).
            let old_host: Vec<f64> = old_t.to_dtype(DType::F64)?.to_vec1()?;
            for (j, &lp) in logp_host.iter().enumerate() {
                let (lo, hi) = clipped((lp - old_host[j]).exp(), t.adv[range.start + j], cfg);
                self.stats.clip_low += lo as usize;
                self.stats.clip_high += hi as usize;
            }
            if let Some(r) = &ref_t {
                let mut kl = k3_kl(&logp.detach(), r)?;
                if cfg.kl_bias_correction {
                    kl = (kl * (logp.detach() - &old_t)?.exp()?)?;
                }
                self.stats.kl_sum += kl.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
            }
            self.stats.entropy_sum += entropy
                .to_dtype(DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        // Detached: backprop's gradients can carry a graph (dz · W is built from the tracked W).
        let gr = Tensor::cat(&rows_grad, 0)?.detach();
        self.backward(kernels::sum_all(&(rows * gr)?)?)
    }

    /// Back-propagates `loss`: parameter gradients go straight into the sums; what backprop
    /// kept for parameters (a gradient built by scatter, e.g. the embedding's) is added once the
    /// graph is freed. Returns the store with the other leaves' gradients.
    fn backward(&mut self, loss: Tensor) -> Result<GradStore> {
        let g = loss.backward_into(&mut self.grads.sink(&self.policy.compute))?;
        drop(loss);
        self.grads.add_store(&self.policy.compute, &g)?;
        Ok(g)
    }
}

/// [`crate::packing::HiddenStates`] by activation recompute: each forward's record goes into
/// `forwards` (for its backward), and the final norm is applied to its leaf.
fn checkpointed<'a>(
    decoder: &'a Decoder,
    forwards: &'a mut Vec<Checkpointed>,
) -> impl FnMut(&Tensor, &Tensor, Option<&Tensor>, KvContext) -> Result<Tensor> + 'a {
    move |ids, pos, mask, ctx| {
        let f = Checkpointed::forward(decoder, ids, pos, mask, ctx)?;
        let hidden = decoder.final_norm(f.last.as_tensor())?;
        forwards.push(f);
        Ok(hidden)
    }
}

/// `acc += t`, starting from `t`.
fn add_into(acc: &mut Option<Tensor>, t: Tensor) -> Result<()> {
    *acc = Some(match acc.take() {
        Some(a) => (a + t)?,
        None => t,
    });
    Ok(())
}
