//! AdamW with PyTorch semantics (decoupled weight decay, bias-corrected moments), global
//! gradient-norm clipping, gradient accumulation over several backward passes, and learning-rate
//! schedules.
//!
//! candle's `AdamW` defaults to weight_decay 0.01 and has no clipping or accumulation; HF's
//! Trainer default (and the reference run, spec §4.4) is weight_decay 0, clip 1.0.

mod adamw;
mod grad;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig};
pub use grad::{GradAccumulator, ParamSink};
