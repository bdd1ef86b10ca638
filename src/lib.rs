//! intuitor: INTUITOR (arXiv 2505.19590), GRPO whose reward is the policy's own self-certainty,
//! in one Rust binary. The algorithm is specified in `docs/intuitor-spec.md` (shared docs).
//!
//! Module map, by floor (a module imports only from its floor or below; README "Architecture"):
//!
//! Kernels, model and leaves
//! - [`kernels`]: every device-dependent op, each picking its implementation from its tensors.
//! - [`model`]: the llama-family [`model::Decoder`], its weights (GGUF, safetensors), KV cache.
//! - [`tokenizer`]: tokenizers + special tokens; [`tokenizer::chat`] renders chat templates.
//! - [`loader`]: `--model` (HF directory, GGUF, `default`) → decoder + tokenizer + template.
//! - [`answer`]: answer extraction and checking, best-of-N selection (pure; no tensors).
//! - [`sandbox`]: runs model-written Python under limits; [`code_check`] judges code with it.
//! - [`data`]: JSONL/CSV/Parquet problems, the built-in demo set, the seeded prompt sampler.
//!
//! Algorithm
//! - [`sampling`]: logits → next token (temperature, top-k, top-p, min-p).
//! - [`rollout`]: batched group sampling (B prompts × G) with fused per-token statistics.
//! - [`self_certainty`]: KL(U‖p) per token and per sequence, paper / open-r1 alignment (spec §2).
//! - [`score`]: one no-grad forward over given prompt ⊕ completion pairs.
//! - [`packing`]: prompt ⊕ completion sequences into forward passes (a shared prompt once).
//! - [`logprob`]: chunked per-token log-probs of completions under logits / T (spec §4.1).
//! - [`reward`]: self_certainty, accuracy, plurality_vote, format, neg_entropy, random, and the
//!   code rewards code_tests, code_tests_binary, code_format.
//! - [`advantage`]: group z-scored advantages, weighted rewards combined (spec §3).
//! - [`loss`]: clipped surrogate + k3 KL, TRL's grpo / bnpo / dr_grpo / dapo aggregation (§4.2).
//! - [`policy`]: the trainable weights (`Var`s) and detached copies for rollout and reference.
//! - [`update`]: one micro-batch forward/backward with bounded memory.
//! - [`optim`]: AdamW (PyTorch semantics), gradient accumulation and clipping, LR schedules.
//!
//! Application
//! - [`config`]: the train configuration (TOML + `--set`), resolved into the components' configs.
//! - [`train`]: the training loop, metrics, checkpoints, plots; `train::step` is one step.
//! - [`eval`]: the evaluation runner, its statistics and report.
//! - [`plot`]: PNG charts shared by `train` and `eval`.
//! - [`cli`]: the `intuitor` command line; [`runtime`]: process start-up; [`io`]: atomic writes.

pub mod advantage;
pub mod answer;
pub mod cli;
pub mod code_check;
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
pub mod recompute;
pub mod reward;
pub mod rollout;
pub mod runtime;
pub mod sampling;
pub mod sandbox;
pub mod score;
pub mod self_certainty;
pub mod tokenizer;
pub mod train;
pub mod update;
