//! Checkpoints: `OUTPUT_DIR/checkpoint-<step>/` is an HF model directory (`config.json`,
//! `model.safetensors`, tokenizer files, chat template; loadable by transformers and by
//! `intuitor generate`; weights in `save_dtype`) plus the trainer state needed to resume exactly
//! (`trainer_state.json` with step and data cursor, `optimizer.safetensors` with the AdamW
//! moments, and the f32 master weights when the model is saved in a lower precision). The sampling and
//! random-reward streams are functions of (seed, step), so they need no saved state.
//!
//! Written atomically: everything goes into a temporary sibling directory that is renamed into
//! place, so a crash mid-write leaves the previous checkpoints intact and loadable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Tensor};
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

/// Room kept free beyond a checkpoint's own size: its small JSON and tokenizer files, and
/// the filesystem's rounding.
const SPACE_MARGIN: u64 = 64 << 20;

/// Bytes a checkpoint of `policy` and `opt` occupies: the weights in `save_dtype`, the masters
/// again when that is a lower precision, the two AdamW moments (the tokenizer and JSON files
/// are within [`SPACE_MARGIN`]).
pub fn checkpoint_bytes(policy: &Policy, opt: &AdamW, save_dtype: DType) -> u64 {
    let bytes = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
    let masters: u64 = policy.vars.iter().map(|v| bytes(v.as_tensor())).sum();
    let elements: u64 = policy.vars.iter().map(|v| v.elem_count() as u64).sum();
    let saved = elements * save_dtype.size_in_bytes() as u64;
    let moments: u64 = opt.m.iter().chain(&opt.v).map(bytes).sum();
    saved
        + if keeps_masters(policy, save_dtype) {
            masters
        } else {
            0
        }
        + moments
}

/// Whether the masters must be saved beside a model written in `save_dtype` (it cannot hold
/// them exactly).
fn keeps_masters(policy: &Policy, save_dtype: DType) -> bool {
    policy.vars.first().is_some_and(|v| v.dtype() != save_dtype)
}

/// Fails, naming the directory and both sizes, unless `dir`'s filesystem has `need` bytes
/// (plus a margin) available.
pub fn ensure_space(dir: &Path, need: u64) -> anyhow::Result<()> {
    let available = fs4::available_space(dir)
        .with_context(|| format!("{}: cannot read the free space", dir.display()))?;
    if available < need.saturating_add(SPACE_MARGIN) {
        anyhow::bail!(
            "{}: a checkpoint needs {:.1} MB but only {:.1} MB are free; free some space (or lower save_total_limit) and resume",
            dir.display(),
            (need + SPACE_MARGIN) as f64 / 1e6,
            available as f64 / 1e6
        );
    }
    Ok(())
}

/// Writes a checkpoint atomically and keeps only the newest `keep` checkpoints. The free space
/// is checked first; a failed write names its file and leaves no temporary directory behind.
pub fn save(
    output: &Path,
    state: &TrainerState,
    policy: &Policy,
    opt: &AdamW,
    base: &LoadedModel,
    keep: usize,
    save_dtype: DType,
) -> anyhow::Result<PathBuf> {
    let dest = checkpoint_dir(output, state.step);
    let tmp = output.join(format!(".checkpoint-{}.tmp", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    ensure_space(output, checkpoint_bytes(policy, opt, save_dtype))?;
    if let Err(e) = write_files(&tmp, state, (policy, opt), base, save_dtype) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // A checkpoint of this step already there is moved aside, not deleted, until the new one
    // is in place: a crash in between leaves one of the two.
    let old = output.join(format!(".checkpoint-{}.old", state.step));
    if dest.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        std::fs::rename(&dest, &old).with_context(|| format!("renaming {}", dest.display()))?;
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    prune(output, keep)?;
    Ok(dest)
}

/// The checkpoint's files in `dir`; every error names the file.
fn write_files(
    dir: &Path,
    state: &TrainerState,
    (policy, opt): (&Policy, &AdamW),
    base: &LoadedModel,
    save_dtype: DType,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    let save = |name: &str, tensors: &HashMap<String, Tensor>| -> anyhow::Result<()> {
        let path = dir.join(name);
        candle_core::safetensors::save(tensors, &path)
            .with_context(|| format!("writing {}", path.display()))
    };
    let tok = &base.tokenizer;
    let hf = policy
        .config()
        .to_hf_json(tok.bos_id, tok.eos_id, save_dtype);
    write("config.json", serde_json::to_string_pretty(&hf)?)?;
    let weights = policy
        .named_tensors()
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(save_dtype)?)))
        .collect::<candle_core::Result<HashMap<_, _>>>()?;
    save("model.safetensors", &weights)?;
    drop(weights);
    tok.save_hf(dir, base.chat_template_source.as_deref())
        .with_context(|| format!("writing the tokenizer files into {}", dir.display()))?;
    let mut moments = HashMap::new();
    let masters = keeps_masters(policy, save_dtype);
    for (i, name) in policy.names.iter().enumerate() {
        moments.insert(format!("m/{name}"), opt.m[i].clone());
        moments.insert(format!("v/{name}"), opt.v[i].clone());
        if masters {
            moments.insert(
                format!("master/{name}"),
                policy.vars[i].as_tensor().detach(),
            );
        }
    }
    save("optimizer.safetensors", &moments)?;
    write("trainer_state.json", serde_json::to_string_pretty(state)?)
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

/// Restores optimizer moments, the master weights when the checkpoint keeps them apart from a
/// lower-precision model (the caller loaded that model as `policy`), and the trainer state
/// from `dir`.
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
        if let Some(master) = moments.get(&format!("master/{name}")) {
            let var = &policy.vars[i];
            if master.shape() != var.shape() || master.dtype() != var.dtype() {
                anyhow::bail!(
                    "{}: tensor `master/{name}` is {:?} {:?}, the model's is {:?} {:?}",
                    opt_path.display(),
                    master.dtype(),
                    master.dims(),
                    var.dtype(),
                    var.dims()
                );
            }
            var.set(master)?;
        }
    }
    policy.sync_compute()?;
    opt.step = state.optimizer_step;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::ensure_space;

    #[test]
    fn a_checkpoint_larger_than_the_free_space_is_refused_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure_space(dir.path(), u64::MAX / 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("needs") && err.contains("free"), "{err}");
        ensure_space(dir.path(), 1 << 20).expect("1 MB fits");
    }
}
