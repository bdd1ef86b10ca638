//! The memory plan of a training run (issue 16): what each phase of a step holds — weights,
//! the f32 master copy and the compute copy, gradient sums, AdamW moments, the frozen
//! reference, the rollout's KV cache, the update's activations per forward batch at the
//! maximum length (with or without activation recompute), logits chunks — for the configured
//! dtype, and the peak. `intuitor plan` prints it; `train` prints its peak and refuses to start
//! when it exceeds the device's memory, naming the settings that would shrink it.
//!
//! The counts follow the implementation (`update.rs`, `recompute.rs`, `rollout/`,
//! `kv_cache.rs`); the per-token activation factors were checked against measured peaks (the
//! README gives planned vs measured figures).

use candle_core::DType;

use crate::config::TrainConfig;
use crate::kernels;
use crate::logprob::CHUNK_ROWS;
use crate::model::ModelConfig;

/// Bytes the process holds besides tensors (binary, tokenizer, allocator slack; measured).
const PROCESS_BYTES: u64 = 160 << 20;

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub what: String,
    pub bytes: u64,
}

/// One phase of a step: what is alive while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// `rollout`, `reference log-probs`, `update (forward + backward)` or `optimizer step`.
    pub name: &'static str,
    pub items: Vec<Item>,
}

impl Phase {
    pub fn total(&self) -> u64 {
        self.items.iter().map(|i| i.bytes).sum()
    }
}

/// The phases of a step and their peak.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    pub phases: Vec<Phase>,
    pub dtype: DType,
    /// Whether the update recomputes activations (`gradient_checkpointing` resolved).
    pub recompute: bool,
    /// KV bytes of one completion of the longest prompt (its prompt and
    /// `max_completion_length` positions): the smallest budget a rollout can run in.
    pub one_completion_kv: u64,
}

/// What the plan needs beyond the two configs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInputs {
    /// The compute dtype (`TrainConfig::dtype` resolved for the device).
    pub dtype: DType,
    /// Bytes of the frozen reference when it stays quantized (a GGUF on the CPU keeps its
    /// quantized layers; `None`: dense in the compute dtype).
    pub packed_reference: Option<u64>,
    /// The device is the CPU, where AdamW updates in place (elsewhere its tensor ops make
    /// temporaries of the largest parameter's size).
    pub cpu: bool,
    /// The update recomputes activations (`gradient_checkpointing` resolved for the device).
    pub recompute: bool,
    /// The longest tokenized prompt of the dataset, when known (`train` knows it; `plan`
    /// assumes `max_prompt_length`).
    pub longest_prompt: Option<usize>,
}

fn bytes_of(dtype: DType) -> u64 {
    dtype.size_in_bytes() as u64
}

impl MemoryPlan {
    /// The plan of one step of `cfg` for a model of shape `m`.
    pub fn new(m: &ModelConfig, cfg: &TrainConfig, inputs: PlanInputs) -> Self {
        let b = bytes_of(inputs.dtype);
        let low = b < 4;
        let p = parameters(m);
        let (h, layers, vocab) = (
            m.hidden_size as u64,
            m.num_hidden_layers as u64,
            m.vocab_size as u64,
        );
        let kv_width = (m.num_key_value_heads * m.head_dim) as u64;
        let item = |what: &str, bytes: u64| Item {
            what: what.to_string(),
            bytes,
        };

        let mut resident = vec![
            item("process (binary, tokenizer, allocator)", PROCESS_BYTES),
            item("policy weights (f32 masters)", 4 * p),
            item("AdamW moments (f32, 2 per parameter)", 8 * p),
            item(
                "frozen reference / base model",
                inputs.packed_reference.unwrap_or(b * p),
            ),
        ];
        if low {
            resident.push(item("compute copy of the weights", b * p));
        }

        // Rollout: every row's KV cache for max_completion_length positions, plus each
        // group's prompt once, or at most `rollout_kv_budget` (the rows that fit decode at
        // once, `rollout::engine::slot_plan`); the decoding logits (f32, on the device and on
        // the host).
        let prompts = cfg.prompts_per_step as u64;
        let rows = prompts * cfg.num_generations as u64;
        let per_position = m.kv_bytes_per_position(b as usize);
        let lp = inputs
            .longest_prompt
            .map_or(cfg.max_prompt_length, |n| n.min(cfg.max_prompt_length))
            as u64;
        let full_kv = (prompts * lp + rows * cfg.max_completion_length as u64) * per_position;
        let budget = cfg.rollout_kv_budget.as_ref().and_then(|b| b.bytes().ok());
        let kv = budget.map_or(full_kv, |b| b.min(full_kv));
        // The rows decoding at once: all, or as many as the budget holds.
        let slots = crate::rollout::engine::slot_plan(
            budget,
            per_position,
            rows as usize,
            prompts as usize,
            cfg.max_completion_length,
            lp as usize,
        )
        .map_or(1, |s| s.rows as u64);
        let mut rollout = resident.clone();
        rollout.push(item(KV_ITEM, kv));
        // Each step's last logits and what sampling makes of them: on the CPU an f32 copy
        // (for bf16/f16) and one on the host; elsewhere (`rollout::sample`) an f32 copy, the
        // row sums' three f32 temporaries and a penalised copy, on the device.
        let per_logit = match inputs.cpu {
            true => b + 4 + if b < 4 { 4 } else { 0 },
            false => b + 4 + 3 * 4 + 4,
        };
        rollout.push(item(
            "rollout logits and sampling temporaries",
            slots * vocab * per_logit,
        ));
        // Prompts prefilled together (one at a time on the CPU): their keys and values and
        // one layer's no-grad activations, while the slots exist.
        let together = match inputs.cpu {
            true => 1,
            false => crate::rollout::engine::PREFILL_BATCH as u64,
        }
        .min(prompts.max(1));
        rollout.push(item(
            "prefill (prompts at once: KV + one layer)",
            together * lp * per_position
                + layer_activations(m, together, lp, lp, b) / 4
                + attention_blocks(m, together, lp, lp),
        ));
        // Off the CPU a decode step's attention scores every row's keys at once, one layer at
        // a time (`kernels::attention`): the prompt's and the row's own scores, joined, and
        // the weights in the compute dtype, the widened, masked and normalised ones in f32.
        // A shared prompt's keys are read in place while the prompts are at most twice the
        // rows (`SharedPrefix::scores`); in a compacted tail (at most half the slots) each
        // row's prompt keys and values are copied instead.
        if !inputs.cpu {
            let heads = m.num_attention_heads as u64;
            rollout.push(item(
                "decode attention scores (one layer)",
                slots * heads * (lp + cfg.max_completion_length as u64) * (3 * b + 3 * 4)
                    + slots.div_ceil(2) * 2 * lp * kv_width * b,
            ));
        }

        // The update at the maximum lengths. Completions sharing a prompt (G > 1) are
        // back-propagated one at a time after the prompt's forward (`Backprop::group`): the
        // larger of one prompt pass and one completion pass is alive, plus the prompt's keys
        // and values per layer as leaves and their gradient sums. Otherwise one left-padded
        // forward batch of the micro-batch size.
        let lc = cfg.max_completion_length as u64;
        let passes: Vec<(u64, u64, u64)> = match cfg.num_generations > 1 {
            true => vec![(1, lp, lp), (1, lc, lp + lc)],
            false => {
                let mb = cfg.per_device_train_batch_size.max(1) as u64;
                vec![(mb, lp + lc, lp + lc)]
            }
        };
        let prompt_states = match cfg.num_generations > 1 {
            true => 2 * 2 * layers * lp * kv_width * b,
            false => 0,
        };
        // Per pass: (one layer's kept activations + the attention blocks of its backward,
        // those activations, those blocks, tokens); the largest pass counts.
        let (_, layer, blocks, tokens) = passes
            .iter()
            .map(|&(rows, t, keys)| {
                let layer = layer_activations(m, rows, t, keys, b);
                let blocks = attention_blocks(m, rows, t, keys);
                (layer + blocks, layer, blocks, rows * t)
            })
            .max()
            .unwrap_or((0, 0, 0, 0));
        // With recompute a group keeps the prompt's layer inputs while a completion's exist.
        let kept_inputs = match cfg.num_generations > 1 {
            true => lp + lc,
            false => tokens,
        };
        let activations = prompt_states
            + blocks
            + match inputs.recompute {
                true => layers * kept_inputs * h * b + layer,
                false => layers * layer,
            };
        let scored = match cfg.num_generations > 1 {
            true => lc,
            false => cfg.per_device_train_batch_size.max(1) as u64 * lc,
        };
        let chunk = CHUNK_ROWS.min(scored as usize) as u64 * vocab * 4 * 3;
        let mut update = resident.clone();
        update.push(item("gradient sums (f32)", 4 * p));
        update.push(item(
            match inputs.recompute {
                true => "activations (recompute: layer inputs + one layer)",
                false => "activations (every layer)",
            },
            activations,
        ));
        update.push(item("logits chunk + its gradient (f32)", chunk));

        // The reference's no-grad forward: one layer's activations and a logits chunk.
        let mut reference = resident.clone();
        let mb = cfg.per_device_train_batch_size.max(1) as u64;
        let no_grad = layer_activations(m, mb, lp + lc, lp + lc, b) / 4
            + attention_blocks(m, mb, lp + lc, lp + lc);
        reference.push(item("activations (one layer, no grad)", no_grad));
        reference.push(item("logits chunk (f32)", chunk / 3 * 2));

        let mut step = resident;
        step.push(item("gradient sums (f32)", 4 * p));
        if !inputs.cpu {
            // Tensor-op AdamW: temporaries of the largest parameter (the embedding).
            step.push(item("optimizer temporaries", 5 * 4 * vocab * h));
        }
        MemoryPlan {
            phases: vec![
                Phase {
                    name: "rollout",
                    items: rollout,
                },
                Phase {
                    name: "reference log-probs",
                    items: reference,
                },
                Phase {
                    name: "update (forward + backward)",
                    items: update,
                },
                Phase {
                    name: "optimizer step",
                    items: step,
                },
            ],
            dtype: inputs.dtype,
            recompute: inputs.recompute,
            one_completion_kv: (lp + cfg.max_completion_length as u64) * per_position,
        }
    }

    /// The largest phase: (name, bytes).
    pub fn peak(&self) -> (&'static str, u64) {
        self.phases
            .iter()
            .map(|p| (p.name, p.total()))
            .max_by_key(|&(_, b)| b)
            .unwrap_or(("none", 0))
    }

    /// The plan as a table, one block per phase, then the peak.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for phase in &self.phases {
            out.push_str(&format!("{} ({}):\n", phase.name, gib(phase.total())));
            for i in &phase.items {
                out.push_str(&format!("  {:<52} {:>10}\n", i.what, gib(i.bytes)));
            }
        }
        let (name, bytes) = self.peak();
        out.push_str(&format!(
            "peak: {} in the {name} phase ({:?})\n",
            gib(bytes),
            self.dtype
        ));
        out
    }

    /// When the rollout phase does not fit `available` bytes: the KV budget that makes it fit,
    /// leaving [`AUTO_BUDGET_HEADROOM`] of `available` free, if that budget holds one
    /// completion (`None` otherwise, or when the rollout fits).
    pub fn kv_budget_to_fit(&self, available: u64) -> Option<u64> {
        let rollout = self.phases.iter().find(|p| p.name == "rollout")?;
        if rollout.total() <= available {
            return None;
        }
        let room = (available as f64 * (1.0 - AUTO_BUDGET_HEADROOM)) as u64;
        room.checked_sub(self.rollout_besides_kv()?)
            .filter(|&b| b >= self.one_completion_kv)
    }

    /// Whether some KV budget, down to one completion's, lets the rollout phase fit.
    fn kv_budget_could_fit(&self, available: u64) -> bool {
        self.rollout_besides_kv()
            .is_some_and(|rest| rest + self.one_completion_kv <= available)
    }

    /// The rollout phase's bytes other than its KV cache.
    fn rollout_besides_kv(&self) -> Option<u64> {
        let rollout = self.phases.iter().find(|p| p.name == "rollout")?;
        let kv = rollout
            .items
            .iter()
            .find(|i| i.what.starts_with(KV_ITEM))?
            .bytes;
        Some(rollout.total() - kv)
    }

    /// `Err` naming what to change when the peak exceeds `available` bytes.
    pub fn check_fits(&self, available: u64) -> Result<(), String> {
        let (name, bytes) = self.peak();
        if bytes <= available {
            return Ok(());
        }
        let mut advice = Vec::new();
        if self.dtype == DType::F32 {
            advice.push("dtype = \"bf16\"");
        }
        match name {
            "rollout" => {
                if self.kv_budget_could_fit(available) {
                    advice.push(
                        "a smaller rollout_kv_budget (completions then wait for a free slot)",
                    );
                }
                advice.extend([
                    "fewer prompts_per_step or num_generations",
                    "a smaller max_completion_length",
                ]);
            }
            "update (forward + backward)" => {
                if !self.recompute {
                    advice.insert(0, "gradient_checkpointing = true");
                }
                advice.extend([
                    "a smaller per_device_train_batch_size",
                    "a smaller max_completion_length",
                ]);
            }
            "reference log-probs" => advice.push("a smaller per_device_train_batch_size"),
            _ => {
                advice.push("a smaller model (the weights, gradients and moments alone do not fit)")
            }
        }
        Err(format!(
            "the memory plan's peak is {} (the {name} phase) but {} is available; set {}",
            gib(bytes),
            gib(available),
            advice.join(", or ")
        ))
    }
}

/// The rollout phase's KV cache item.
const KV_ITEM: &str = "rollout KV cache";

/// The share of the available memory a budget sized by the plan leaves free (allocator slack,
/// the CUDA context, estimates' error).
pub const AUTO_BUDGET_HEADROOM: f64 = 0.05;

/// The memory plan of `cfg` (`plan_of`), with `rollout_kv_budget` sized by it when the key is
/// unset and every completion's keys and values at once do not fit `available` (issue 17):
/// the budget goes into `cfg` and the plan is redone with it (with a note on stderr when it then
/// fits). A budget that would not hold one completion is not set; the caller's
/// [`MemoryPlan::check_fits`] then says what to change.
pub fn fit_kv_budget(
    cfg: &mut TrainConfig,
    available: Option<u64>,
    plan_of: impl Fn(&TrainConfig) -> anyhow::Result<MemoryPlan>,
) -> anyhow::Result<MemoryPlan> {
    let plan = plan_of(cfg)?;
    let (None, Some(available)) = (&cfg.rollout_kv_budget, available) else {
        return Ok(plan);
    };
    let Some(budget) = plan.kv_budget_to_fit(available) else {
        return Ok(plan);
    };
    cfg.rollout_kv_budget = Some(crate::config::ByteSize::Bytes(budget));
    let mut plan = plan_of(cfg)?;
    for item in plan.phases.iter_mut().flat_map(|p| p.items.iter_mut()) {
        if item.what == KV_ITEM {
            item.what = format!("{KV_ITEM} (budget sized by the plan)");
        }
    }
    if plan.check_fits(available).is_ok() {
        eprintln!(
            "rollout_kv_budget is not set and every completion's KV cache at once does not fit \
             {} available: the memory plan sets it to {} (completions wait for a free slot; \
             the same completions; a run keeps it in its config.toml, also on --resume; \
             --set rollout_kv_budget=SIZE overrides it)",
            gib(available),
            gib(budget)
        );
    }
    Ok(plan)
}

/// The plan of `cfg` on the CPU (`cpu`) or a GPU, from the model's config alone (an HF
/// directory's `config.json` or a GGUF's header; no weights are read, no device is opened).
pub fn for_config(
    cfg: &TrainConfig,
    cpu: bool,
    longest_prompt: Option<usize>,
) -> anyhow::Result<MemoryPlan> {
    let source = crate::loader::ModelSource::resolve(&cfg.model)?;
    let model = crate::loader::model_config(&source)?;
    for_model(&model, &source, cfg, cpu, longest_prompt)
}

/// The plan of `cfg` on the CPU (`cpu`) or a GPU for a model of shape `model` loaded from
/// `source`.
pub fn for_model(
    model: &ModelConfig,
    source: &crate::loader::ModelSource,
    cfg: &TrainConfig,
    cpu: bool,
    longest_prompt: Option<usize>,
) -> anyhow::Result<MemoryPlan> {
    let dtype = crate::runtime::train_dtype(&cfg.dtype, cpu)?;
    // On the CPU in f32 a GGUF's frozen reference keeps the file's quantized layers.
    let packed_reference = match source {
        crate::loader::ModelSource::Gguf(path) if cpu && dtype == DType::F32 => {
            std::fs::metadata(path).map(|md| md.len()).ok()
        }
        _ => None,
    };
    Ok(MemoryPlan::new(
        model,
        cfg,
        PlanInputs {
            dtype,
            packed_reference,
            cpu,
            recompute: cfg.recompute(cpu),
            longest_prompt,
        },
    ))
}

/// Parameters of a decoder of shape `m` (tied embeddings counted once).
pub fn parameters(m: &ModelConfig) -> u64 {
    let (h, i, v) = (
        m.hidden_size as u64,
        m.intermediate_size as u64,
        m.vocab_size as u64,
    );
    let q = (m.num_attention_heads * m.head_dim) as u64;
    let kv = (m.num_key_value_heads * m.head_dim) as u64;
    let bias = if m.attention_bias { q + 2 * kv } else { 0 };
    let layer = h * q + 2 * h * kv + q * h + bias + 3 * h * i + 2 * h;
    let head = if m.tie_word_embeddings { 0 } else { v * h };
    v * h + m.num_hidden_layers as u64 * layer + h + head
}

/// One decoder layer's activations kept for its backward, for `rows` × `t` positions
/// attending to `keys` keys, in dtype size `b`: the per-token tensors (norm outputs, q/k/v
/// before and after RoPE, attention output and projection, residual sums, gate/up/activation/
/// down: 12·hidden + 2·kv + 3·intermediate values) and, below two query blocks, the attention
/// scores and probabilities `[rows, heads, t, keys]` in f32 (the softmax widens low
/// precision); blocked attention keeps no scores (see [`attention_blocks`]). The per-token
/// factor puts the planned peaks within 5–7% above the measured ones (README, `intuitor plan`).
fn layer_activations(m: &ModelConfig, rows: u64, t: u64, keys: u64, b: u64) -> u64 {
    let kv = (m.num_key_value_heads * m.head_dim) as u64;
    let per_token = 12 * m.hidden_size as u64 + 2 * kv + 3 * m.intermediate_size as u64;
    let scores = match kernels::blocked(t as usize) {
        true => 0,
        false => rows * m.num_attention_heads as u64 * t * keys * 4 * 2,
    };
    rows * t * per_token * b + scores
}

/// Above two query blocks (`kernels::blocked`), the scores of the one block being computed or
/// recomputed and their backward temporaries, alive for one layer at a time: about five
/// `[rows, heads, QUERY_BLOCK, keys]` f32 tensors (as `bench/attention_memory.sh` measures);
/// 0 below.
fn attention_blocks(m: &ModelConfig, rows: u64, t: u64, keys: u64) -> u64 {
    match kernels::blocked(t as usize) {
        true => rows * m.num_attention_heads as u64 * kernels::QUERY_BLOCK as u64 * keys * 4 * 5,
        false => 0,
    }
}

/// `bytes` as GiB with one decimal (MiB below 1 GiB).
pub fn gib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Parses a size such as `141GB`, `80GiB`, `512MiB` or a byte count.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 80GiB, 141GB or 512MiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    Ok((n * scale) as u64)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
