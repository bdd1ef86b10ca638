//! intuitor: INTUITOR (arXiv 2505.19590), GRPO whose reward is the policy's own self-certainty,
//! in one Rust binary. The algorithm is specified in `docs/intuitor-spec.md` (shared docs).
//!
//! Module map:
//! - [`model`]: loading (HF directory, GGUF, `default`) and the llama-family [`model::Decoder`].
//! - [`tokenizer`]: tokenizers + special tokens; [`tokenizer::chat`] renders chat templates.
//! - [`sampling`]: logits → next token (temperature, top-k, top-p, min-p).
//! - [`rollout`]: batched group sampling (B prompts × G) with fused per-token statistics.
//! - [`self_certainty`]: KL(U‖p) per token and per sequence, paper / open-r1 alignment (spec §2).
//! - [`score`]: one no-grad forward over given prompt ⊕ completion pairs.
//! - [`logprob`]: chunked per-token log-probs of completions under logits / T (spec §4.1).
//! - [`loss`]: clipped surrogate + k3 KL, TRL's grpo / bnpo / dr_grpo / dapo aggregation (§4.2).
//! - [`policy`]: the trainable weights (`Var`s) and detached copies for rollout and reference.
//! - [`update`]: one micro-batch forward/backward with bounded memory.
//! - [`optim`]: AdamW (PyTorch semantics), grad-norm clipping, LR schedules (spec §4.4).
//! - [`advantage`]: group z-scored advantages (spec §3).
//! - [`reward`]: self_certainty, accuracy, plurality_vote, format, neg_entropy, random.
//! - [`eval`]: answer extraction and checking.
//! - [`data`]: JSONL/CSV/Parquet problems, the built-in demo set, the seeded prompt sampler.
//! - [`train`]: the training loop, metrics, checkpoints, plots; `train::step` is one step.
//! - [`config`]: the train configuration (TOML + `--set`).
//! - [`cli`]: the `intuitor` command line.
//! - [`runtime`]: process start-up (allocator tuning, device choice).

pub mod advantage;
pub mod answer;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod io;
pub mod kernels;
pub mod loader;
pub mod logprob;
pub mod loss;
pub mod model;
pub mod optim;
pub mod packing;
pub mod plot;
pub mod policy;
pub mod reward;
pub mod rollout;
pub mod runtime;
pub mod sampling;
pub mod score;
pub mod self_certainty;
pub mod tokenizer;
pub mod train;
pub mod update;
