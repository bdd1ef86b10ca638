//! Checkpoints: `OUTPUT_DIR/checkpoint-<step>/` is an HF model directory (`config.json`,
//! `model.safetensors`, tokenizer files, chat template; loadable by transformers and by
//! `intuitor generate`) plus the trainer state needed to resume exactly (`trainer_state.json`
//! with step and data cursor, `optimizer.safetensors` with the AdamW moments). The sampling and
//! random-reward streams are functions of (seed, step), so they need no saved state.
//!
//! Written atomically: everything goes into a temporary sibling directory that is renamed into
//! place, so a crash mid-write leaves the previous checkpoints intact and loadable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::data::batches::Cursor;
use crate::loader::LoadedModel;
use crate::optim::AdamW;
use crate::policy::Policy;

/// What `trainer_state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainerState {
    /// Completed training steps.
    pub step: usize,
    /// Completed optimizer steps (μ per training step).
    pub optimizer_step: usize,
    pub cursor: Cursor,
}

pub fn checkpoint_dir(output: &Path, step: usize) -> PathBuf {
    output.join(format!("checkpoint-{step}"))
}

/// Writes a checkpoint atomically and keeps only the newest `keep` checkpoints.
pub fn save(
    output: &Path,
    state: &TrainerState,
    policy: &Policy,
    opt: &AdamW,
    base: &LoadedModel,
    keep: usize,
) -> anyhow::Result<PathBuf> {
    let dest = checkpoint_dir(output, state.step);
    let tmp = output.join(format!(".checkpoint-{}.tmp", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let cfg = policy.config();
    let tok = &base.tokenizer;
    std::fs::write(
        tmp.join("config.json"),
        serde_json::to_string_pretty(&cfg.to_hf_json(tok.bos_id, tok.eos_id))?,
    )?;
    let weights: HashMap<String, Tensor> = policy.named_tensors().into_iter().collect();
    candle_core::safetensors::save(&weights, tmp.join("model.safetensors"))?;
    tok.save_hf(&tmp, base.chat_template_source.as_deref())?;
    let mut moments = HashMap::new();
    for (i, name) in policy.names.iter().enumerate() {
        moments.insert(format!("m/{name}"), opt.m[i].clone());
        moments.insert(format!("v/{name}"), opt.v[i].clone());
    }
    candle_core::safetensors::save(&moments, tmp.join("optimizer.safetensors"))?;
    std::fs::write(
        tmp.join("trainer_state.json"),
        serde_json::to_string_pretty(state)?,
    )?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
    prune(output, keep)?;
    Ok(dest)
}

/// The completed checkpoints of a run directory, oldest first.
pub fn list(output: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(output)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then_some((step, e.path()))
        })
        .collect();
    found.sort();
    found
}

fn prune(output: &Path, keep: usize) -> anyhow::Result<()> {
    let all = list(output);
    if keep > 0 && all.len() > keep {
        for (_, p) in &all[..all.len() - keep] {
            std::fs::remove_dir_all(p)?;
        }
    }
    Ok(())
}

/// Restores optimizer moments and the trainer state from `dir` (the weights are loaded as a
/// model directory by the caller).
pub fn load_state(dir: &Path, policy: &Policy, opt: &mut AdamW) -> anyhow::Result<TrainerState> {
    let state_path = dir.join("trainer_state.json");
    let state: TrainerState = serde_json::from_str(
        &std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?,
    )
    .with_context(|| format!("{}: invalid trainer state", state_path.display()))?;
    let opt_path = dir.join("optimizer.safetensors");
    let moments = candle_core::safetensors::load(&opt_path, policy.decoder.device())
        .with_context(|| format!("reading {}", opt_path.display()))?;
    for (i, name) in policy.names.iter().enumerate() {
        let get = |k: String| {
            moments
                .get(&k)
                .cloned()
                .with_context(|| format!("{}: tensor `{k}` is missing", opt_path.display()))
        };
        opt.m[i] = get(format!("m/{name}"))?;
        opt.v[i] = get(format!("v/{name}"))?;
    }
    opt.step = state.optimizer_step;
    Ok(state)
}
