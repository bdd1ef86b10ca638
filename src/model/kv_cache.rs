//! The KV cache of incremental decoding, kept outside the weights, and the other ways a forward
//! can see keys and values beyond its own positions ([`KvContext`]).

use std::sync::Arc;

use candle_core::{Result, Tensor};

use crate::kernels::{PrefixRows, SharedPrefix};

/// One layer's cached keys and values: buffers `[batch, kv_heads, capacity, head_dim]` of
/// which the first `len` positions are filled, after the rows' shared prefix if any.
/// Appending writes in place (no copy of the past).
#[derive(Debug, Clone)]
pub(super) struct LayerCache {
    pub(super) k: Tensor,
    pub(super) v: Tensor,
    pub(super) len: usize,
    pub(super) prefix: Option<SharedPrefix>,
    /// Slots ([`KvCache::slots`]): where the next append writes each row's key (a scatter
    /// index `[batch, kv_heads, 1, head_dim]` holding the row's column), and the own width the
    /// forward then attends to. Taken by that append.
    pub(super) write: Option<(Tensor, usize)>,
}

/// A layer's keys and values after an append: the shared prefix, if any, then each row's own.
pub(super) struct CachedKeys {
    pub(super) prefix: Option<SharedPrefix>,
    pub(super) k: Tensor,
    pub(super) v: Tensor,
}

impl LayerCache {
    fn prefix_len(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.k.dim(2).unwrap_or(0))
    }

    fn keys(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.narrow(2, 0, self.len)?,
            self.v.narrow(2, 0, self.len)?,
        ))
    }

    /// Appends `[batch, kv_heads, t, head_dim]` keys/values, growing the buffers when full.
    pub(super) fn append(
        slot: &mut Option<LayerCache>,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<CachedKeys> {
        let t = k.dim(2)?;
        if let Some(c) = slot.as_mut() {
            if let Some((index, width)) = c.write.take() {
                if t != 1 || width > c.k.dim(2)? {
                    candle_core::bail!(
                        "slot append: {t} new positions, width {width} of {}",
                        c.k.dim(2)?
                    );
                }
                c.k.scatter_set(&index, &k.contiguous()?, 2)?;
                c.v.scatter_set(&index, &v.contiguous()?, 2)?;
                c.len = width;
                let (k, v) = c.keys()?;
                return Ok(CachedKeys {
                    prefix: c.prefix.clone(),
                    k,
                    v,
                });
            }
        }
        let len = slot.as_ref().map_or(0, |c| c.len);
        let cap = slot.as_ref().map_or(0, |c| c.k.dim(2).unwrap_or(0));
        if len + t > cap {
            let (b, h, _, d) = k.dims4()?;
            let new_cap = (len + t).max(2 * cap).max(64);
            let grow = |old: Option<&Tensor>, new: &Tensor| -> Result<Tensor> {
                let buf = Tensor::zeros((b, h, new_cap, d), new.dtype(), new.device())?;
                if let Some(old) = old {
                    buf.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let (ok, ov) = (slot.as_ref().map(|c| &c.k), slot.as_ref().map(|c| &c.v));
            *slot = Some(LayerCache {
                k: grow(ok, k)?,
                v: grow(ov, v)?,
                len,
                prefix: slot.as_ref().and_then(|c| c.prefix.clone()),
                write: None,
            });
        }
        let c = slot.as_mut().expect("allocated above");
        c.k.slice_set(&k.contiguous()?, 2, len)?;
        c.v.slice_set(&v.contiguous()?, 2, len)?;
        c.len = len + t;
        let (k, v) = c.keys()?;
        Ok(CachedKeys {
            prefix: c.prefix.clone(),
            k,
            v,
        })
    }
}

/// Per-layer cached keys and values for incremental decoding, kept outside the weights.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(super) layers: Vec<Option<LayerCache>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of positions already cached.
    pub fn seen(&self) -> usize {
        match self.layers.first() {
            Some(Some(c)) => c.prefix_len() + c.len,
            _ => 0,
        }
    }

    /// Keys before the next forward's own: [`Self::seen`], or for slots with write columns
    /// set, the prefix and the own width minus the new one.
    pub fn past(&self) -> usize {
        match self.layers.first() {
            Some(Some(c)) => match &c.write {
                Some((_, width)) => c.prefix_len() + width - 1,
                None => c.prefix_len() + c.len,
            },
            _ => 0,
        }
    }

    /// Slots for a bounded rollout (issue 17), allocated once: `rows` rows of `own_cap` own
    /// positions each, written per row from column 0 ([`Self::set_write_columns`]), and
    /// `prefixes` shared prefixes of `prefix_cap` positions ([`Self::set_prefix`]), each row
    /// attending to one ([`Self::set_prefix_of_row`]). `like` (a prefilled cache) gives the
    /// layers' heads, head size, dtype and device. Memory: `(rows·own_cap +
    /// prefixes·prefix_cap) · layers · 2 · kv_heads · head_dim` values.
    pub fn slots(
        like: &KvCache,
        rows: usize,
        own_cap: usize,
        prefixes: usize,
        prefix_cap: usize,
    ) -> Result<Self> {
        let layers = like
            .layers
            .iter()
            .map(|l| {
                let Some(l) = l else {
                    candle_core::bail!("slots: the template cache has an empty layer");
                };
                let (_, h, _, d) = l.k.dims4()?;
                let zeros =
                    |n: usize, cap: usize| Tensor::zeros((n, h, cap, d), l.k.dtype(), l.k.device());
                Ok(Some(LayerCache {
                    k: zeros(rows, own_cap)?,
                    v: zeros(rows, own_cap)?,
                    len: 0,
                    prefix: Some(SharedPrefix::new(
                        zeros(prefixes, prefix_cap)?,
                        zeros(prefixes, prefix_cap)?,
                        Arc::new(PrefixRows::new(vec![0; rows], prefixes, l.k.device())?),
                    )?),
                    write: None,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// Writes the last `len` positions of row `row` of a cache without a prefix (prefilled
    /// prompts, left-padded) into prefix `p`, right-aligned: the positions before them are
    /// stale (the caller masks them).
    pub fn set_prefix(&mut self, p: usize, prompt: &KvCache, row: usize, len: usize) -> Result<()> {
        for (layer, src) in self.layers.iter_mut().zip(&prompt.layers) {
            let (Some(layer), Some(src)) = (layer.as_mut(), src.as_ref()) else {
                candle_core::bail!("set_prefix: an empty layer");
            };
            let Some(prefix) = layer.prefix.as_ref() else {
                candle_core::bail!("set_prefix: not a slot cache");
            };
            let cap = prefix.k.dim(2)?;
            let (k, v) = src.keys()?;
            let (rows, n) = (k.dim(0)?, k.dim(2)?);
            if len > cap || len > n || row >= rows {
                candle_core::bail!(
                    "set_prefix: {len} positions of row {row} of a [{rows}, {n}] prompt cache in a prefix of {cap}"
                );
            }
            for (dst, part) in [(&prefix.k, &k), (&prefix.v, &v)] {
                let (_, h, _, d) = dst.dims4()?;
                let part = part.narrow(0, row, 1)?.narrow(2, n - len, len)?;
                let block = Tensor::zeros((1, h, cap, d), dst.dtype(), dst.device())?;
                block.slice_set(&part.contiguous()?, 2, cap - len)?;
                dst.slice_set(&block, 0, p)?;
            }
        }
        Ok(())
    }

    /// Which prefix each row attends to. Errors when a row names a prefix the cache has not.
    pub fn set_prefix_of_row(&mut self, of_row: Vec<u32>) -> Result<()> {
        self.map_prefix_rows(|_| of_row)
    }

    /// Replaces every layer's row → prefix map by `f(old map)`, built once for all layers.
    /// Errors, changing nothing, when the new map does not have one entry per batch row or
    /// names a prefix the cache has not.
    fn map_prefix_rows(&mut self, f: impl FnOnce(&[u32]) -> Vec<u32>) -> Result<()> {
        let Some(layer) = self.layers.iter().flatten().find(|l| l.prefix.is_some()) else {
            return Ok(());
        };
        let (first, batch) = (layer.prefix.as_ref().expect("found above"), layer.k.dim(0)?);
        let of_row = f(first.of_row());
        if of_row.len() != batch {
            candle_core::bail!("prefix map: {} rows for a batch of {batch}", of_row.len());
        }
        let rows = Arc::new(PrefixRows::new(of_row, first.k.dim(0)?, first.k.device())?);
        let updated = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .and_then(|l| l.prefix.as_ref())
                    .map(|p| SharedPrefix::new(p.k.clone(), p.v.clone(), rows.clone()))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        for (layer, prefix) in self.layers.iter_mut().zip(updated) {
            if let (Some(layer), Some(prefix)) = (layer.as_mut(), prefix) {
                layer.prefix = Some(prefix);
            }
        }
        Ok(())
    }

    /// Where the next forward (one new position per row) writes each row's key and value:
    /// row `r` at its own column `cols[r]`; that forward attends to the first `max(cols) + 1`
    /// own columns of every row (the caller's key mask says which are each row's).
    pub fn set_write_columns(&mut self, cols: &[u32]) -> Result<()> {
        let width = cols.iter().max().map_or(0, |&c| c as usize + 1);
        // Every layer has the same shape: one index serves them all.
        let Some(first) = self.layers.iter().flatten().next() else {
            return Ok(());
        };
        let (b, h, _, d) = first.k.dims4()?;
        if cols.len() != b {
            candle_core::bail!("set_write_columns: {} columns for {b} rows", cols.len());
        }
        let index = Tensor::new(cols, first.k.device())?
            .reshape((b, 1, 1, 1))?
            .broadcast_as((b, h, 1, d))?
            .contiguous()?;
        for layer in self.layers.iter_mut().flatten() {
            layer.write = Some((index.clone(), width));
        }
        Ok(())
    }

    /// Keeps only the given batch rows, in place and one buffer at a time: each old buffer is
    /// dropped as its replacement is made, so the cache never takes much more than itself (a
    /// rollout's budget holds while it compacts its slots).
    pub fn retain_rows(&mut self, rows: &[u32]) -> Result<()> {
        let Some(Some(first)) = self.layers.first() else {
            return Ok(());
        };
        let batch = first.k.dim(0)?;
        if let Some(r) = rows.iter().find(|&&r| r as usize >= batch) {
            candle_core::bail!("retain_rows: row {r} of a batch of {batch}");
        }
        let idx = Tensor::new(rows, first.k.device())?;
        for c in self.layers.iter_mut().flatten() {
            c.k = c.k.index_select(&idx, 0)?;
            c.v = c.v.index_select(&idx, 0)?;
            c.write = None;
        }
        self.map_prefix_rows(|of_row| rows.iter().map(|&r| of_row[r as usize]).collect())
    }
}

/// Keys and values a forward attends to besides its own positions.
pub enum KvContext<'a> {
    /// Only its own positions.
    Own,
    /// The incremental-decoding cache, appended to in place (no gradient flows through it).
    Cache(&'a mut KvCache),
    /// Keeps every layer's keys and values (graph tensors, `[1, kv_heads, p, head_dim]`) so that
    /// a second forward can attend to them: a prompt shared by a group of completions.
    Capture(&'a mut Vec<(Tensor, Tensor)>),
    /// Attends first to a captured batch-1 prefix, shared by every row, then to its own
    /// positions; gradients flow back into the prefix.
    Prefix(&'a [(Tensor, Tensor)]),
}

impl KvContext<'_> {
    /// Positions before this forward's own.
    pub fn past(&self) -> Result<usize> {
        Ok(match self {
            KvContext::Own | KvContext::Capture(_) => 0,
            KvContext::Cache(c) => c.past(),
            KvContext::Prefix(layers) => match layers.first() {
                Some((k, _)) => k.dim(2)?,
                None => 0,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Result, Tensor};

    use super::{KvCache, LayerCache};

    /// A slot cache of 2 layers, 4 rows and 3 prefixes.
    fn slots() -> Result<KvCache> {
        let zeros = Tensor::zeros((1, 2, 5, 4), DType::F32, &Device::Cpu)?;
        let layer = LayerCache {
            k: zeros.clone(),
            v: zeros,
            len: 5,
            prefix: None,
            write: None,
        };
        KvCache::slots(
            &KvCache {
                layers: vec![Some(layer.clone()), Some(layer)],
            },
            4,
            6,
            3,
            5,
        )
    }

    fn maps(c: &KvCache) -> Vec<Vec<u32>> {
        c.layers
            .iter()
            .flatten()
            .map(|l| l.prefix.as_ref().unwrap().of_row().to_vec())
            .collect()
    }

    #[test]
    fn the_row_to_prefix_map_is_checked_and_follows_compaction() -> Result<()> {
        let mut c = slots()?;
        c.set_prefix_of_row(vec![2, 0, 2, 1])?;
        assert_eq!(maps(&c), [[2, 0, 2, 1], [2, 0, 2, 1]]);
        // A map of the wrong length or naming a missing prefix changes nothing.
        assert!(c.set_prefix_of_row(vec![0, 1]).is_err());
        assert!(c.set_prefix_of_row(vec![0, 1, 2, 3]).is_err());
        assert_eq!(maps(&c), [[2, 0, 2, 1], [2, 0, 2, 1]]);
        c.retain_rows(&[3, 0])?;
        assert_eq!(maps(&c), [[1, 2], [1, 2]]);
        assert_eq!(c.layers[0].as_ref().unwrap().k.dim(0)?, 2);
        Ok(())
    }
}
