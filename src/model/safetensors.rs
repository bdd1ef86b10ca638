//! Loading HF safetensors checkpoints (single file or sharded with `model.safetensors.index.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};

use super::LoadError;

/// Every tensor of the checkpoint in `dir`, converted to `dtype` on `device`.
pub fn load_safetensors_dir(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>, LoadError> {
    let mut out = HashMap::new();
    for file in shard_files(dir)? {
        load_file(&file, dtype, device, &mut out)?;
    }
    Ok(out)
}

/// The weight files of a checkpoint directory: the shards named by the index, or `model.safetensors`.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| LoadError::io(&index, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| LoadError::invalid(&index, e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LoadError::invalid(&index, "field `weight_map` is missing"))?;
        let mut files: Vec<String> = map
            .values()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    LoadError::invalid(&index, "`weight_map` values must be file names")
                })
            })
            .collect::<Result<_, _>>()?;
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        Ok(vec![single])
    } else {
        Err(LoadError::Missing {
            path: single,
            what: "model weights (model.safetensors or model.safetensors.index.json)",
        })
    }
}

fn load_file(
    path: &Path,
    dtype: DType,
    device: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<(), LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::io(path, e))?;
    let st = ::safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| LoadError::invalid(path, format!("not a valid safetensors file: {e}")))?;
    for (name, view) in st.tensors() {
        let t = view
            .load(device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|e| LoadError::invalid(path, format!("tensor `{name}`: {e}")))?;
        out.insert(name, t);
    }
    Ok(())
}
