//! Keys and values that several rows attend to before their own: a prompt's, kept once for the
//! G completions sampled from it (issue 17), and how a decode step's queries meet them off the
//! CPU kernels.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor};

/// A shared prefix: every prompt's keys and values, and which prompt each batch row reads.
#[derive(Debug, Clone)]
pub struct SharedPrefix {
    /// `[prompts, kv_heads, p, head_dim]`, each prompt right-aligned (left-padded).
    pub k: Tensor,
    pub v: Tensor,
    rows: Arc<PrefixRows>,
}

/// Which prefix each batch row reads, with the index tensors that gather the rows of each
/// prefix together (built once per decode step, shared by every layer).
#[derive(Debug)]
pub struct PrefixRows {
    of_row: Vec<u32>,
    /// The prefixes the rows are mapped onto.
    prefixes: usize,
    /// `of_row` on the device `[batch]`.
    index: Tensor,
    /// The most rows one prefix has (at least 1).
    width: usize,
    /// `[prefixes · width]`: the row in place `j` of prefix `p`'s group (a filler row where
    /// it has fewer: its results are never read back).
    gather: Tensor,
    /// `[batch]`: each row's place `p · width + j` in the grouped order.
    scatter: Tensor,
}

impl PrefixRows {
    /// `of_row[r]`: the prefix row `r` reads, of `prefixes`. Errors when one is out of range.
    pub fn new(of_row: Vec<u32>, prefixes: usize, device: &Device) -> Result<Self> {
        if let Some(p) = of_row.iter().find(|&&p| p as usize >= prefixes) {
            candle_core::bail!("shared prefix: a row reads prefix {p} of {prefixes}");
        }
        let mut members = vec![Vec::new(); prefixes];
        for (r, &p) in of_row.iter().enumerate() {
            members[p as usize].push(r as u32);
        }
        let width = members.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut gather = Vec::with_capacity(prefixes * width);
        let mut scatter = vec![0u32; of_row.len()];
        for (p, rows) in members.iter().enumerate() {
            for (j, &r) in rows.iter().enumerate() {
                scatter[r as usize] = (p * width + j) as u32;
            }
            let filler = rows.first().copied().unwrap_or(0);
            gather.extend(rows.iter().copied());
            gather.extend(std::iter::repeat_n(filler, width - rows.len()));
        }
        Ok(Self {
            index: Tensor::new(of_row.as_slice(), device)?,
            gather: Tensor::new(gather, device)?,
            scatter: Tensor::new(scatter, device)?,
            of_row,
            prefixes,
            width,
        })
    }
}

impl SharedPrefix {
    /// `k`, `v`: `[prefixes, kv_heads, p, head_dim]`; `rows` maps each batch row to one.
    /// Errors when `rows` is for another number of prefixes.
    pub fn new(k: Tensor, v: Tensor, rows: Arc<PrefixRows>) -> Result<Self> {
        if rows.prefixes != k.dim(0)? {
            candle_core::bail!(
                "shared prefix: a row map for {} prefixes, keys for {}",
                rows.prefixes,
                k.dim(0)?
            );
        }
        Ok(Self { k, v, rows })
    }

    /// The prefix each batch row reads.
    pub fn of_row(&self) -> &[u32] {
        &self.rows.of_row
    }

    /// Every row's keys and values in one `[batch, kv_heads, total, head_dim]` pair (the
    /// prefix copied per row) from the rows' own `k`, `v`, for the attention paths that take
    /// plain tensors.
    pub fn joined(&self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (pk, pv) = self.per_row()?;
        Ok((Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?))
    }

    /// Each row's prefix keys and values, `[batch, kv_heads, p, head_dim]` each (copies).
    fn per_row(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.index_select(&self.rows.index, 0)?,
            self.v.index_select(&self.rows.index, 0)?,
        ))
    }

    /// The scores `q·kᵀ·scale` `[batch, kv_heads, r, p]` of each row's queries `q`
    /// `[batch, kv_heads, r, head_dim]` against its prefix's keys, and what turns the
    /// prefix's share of the attention weights into its share of the output
    /// ([`PrefixValues::weigh`]).
    ///
    /// When the prefixes are few next to the rows (at most twice as many), the rows of each
    /// prefix are gathered into one matmul against that prefix's keys, which are read once and
    /// never copied; only queries and scores (a few hundred bytes a row and head) move. Else
    /// each row's prefix keys are copied ([`Self::per_row`]), which then costs less than
    /// reading every prefix.
    pub(crate) fn scores(&self, q: &Tensor, scale: f64) -> Result<(Tensor, PrefixValues<'_>)> {
        let b = q.dim(0)?;
        if self.k.dim(0)? > 2 * b {
            let (pk, pv) = self.per_row()?;
            let scores = (q.matmul(&pk.t()?)? * scale)?;
            return Ok((scores, PrefixValues::PerRow(pv)));
        }
        let scores = (self.grouped(q)?.matmul(&self.k.t()?)? * scale)?;
        Ok((self.ungrouped(&scores)?, PrefixValues::Grouped(self)))
    }

    /// `x` `[batch, kv_heads, r, c]` in the prefixes' order, `[prefixes, kv_heads, width·r, c]`:
    /// the rows of prefix `p` are its `width` query blocks.
    fn grouped(&self, x: &Tensor) -> Result<Tensor> {
        let (_, h, r, c) = x.dims4()?;
        let (n, w) = (self.k.dim(0)?, self.rows.width);
        x.contiguous()?
            .index_select(&self.rows.gather, 0)?
            .reshape((n, w, h, r, c))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, h, w * r, c))
    }

    /// The inverse of [`Self::grouped`]: `[prefixes, kv_heads, width·r, c]` back to each row's
    /// `[batch, kv_heads, r, c]`.
    fn ungrouped(&self, y: &Tensor) -> Result<Tensor> {
        let (n, h, wr, c) = y.dims4()?;
        let w = self.rows.width;
        y.reshape((n, h, w, wr / w, c))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n * w, h, wr / w, c))?
            .index_select(&self.rows.scatter, 0)
    }
}

/// The prefix's values as [`SharedPrefix::scores`] left them.
pub(crate) enum PrefixValues<'a> {
    Grouped(&'a SharedPrefix),
    /// Each row's copy, `[batch, kv_heads, p, head_dim]`.
    PerRow(Tensor),
}

impl PrefixValues<'_> {
    /// `probs · v` for the prefix's share of the attention weights `probs`
    /// `[batch, kv_heads, r, p]` (the dtype of the values): `[batch, kv_heads, r, head_dim]`.
    pub fn weigh(&self, probs: &Tensor) -> Result<Tensor> {
        match self {
            PrefixValues::PerRow(v) => probs.contiguous()?.matmul(v),
            PrefixValues::Grouped(p) => p.ungrouped(&p.grouped(probs)?.matmul(&p.v)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::{DType, Device, Result, Tensor};

    use super::{PrefixRows, SharedPrefix};
    use crate::kernels::{attention, AttentionBias};

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
    }

    /// Decode attention through a shared prefix equals attention over each row's prefix keys
    /// joined to its own, in both of [`SharedPrefix::scores`]'s forms (f64 on the CPU takes
    /// the device-generic path).
    #[test]
    fn attending_to_a_shared_prefix_equals_attending_to_each_rows_copy() -> Result<()> {
        let cpu = &Device::Cpu;
        let (nkv, groups, d, plen, own) = (2, 3, 8, 4, 3);
        let prompt_len = [2usize, 3, 4];
        // 5 rows over 3 prefixes (prefix 1 unused, prefix 2 has three rows): grouped; a single
        // row against 3 prefixes: per-row copies.
        for of_row in [vec![2u32, 0, 2, 2, 0], vec![1]] {
            let b = of_row.len();
            let pk = Tensor::randn(0f64, 1.0, (3, nkv, plen, d), cpu)?;
            let pv = Tensor::randn(0f64, 1.0, (3, nkv, plen, d), cpu)?;
            let rows = Arc::new(PrefixRows::new(of_row.clone(), 3, cpu)?);
            let prefix = SharedPrefix::new(pk, pv, rows)?;
            let q = Tensor::randn(0f64, 1.0, (b, nkv, groups, d), cpu)?;
            let k = Tensor::randn(0f64, 1.0, (b, nkv, own, d), cpu)?;
            let v = Tensor::randn(0f64, 1.0, (b, nkv, own, d), cpu)?;
            // Each row sees its prompt (right-aligned) and its own keys but the last one of
            // row 0.
            let mask: Vec<u8> = (0..b)
                .flat_map(|r| {
                    let start = plen - prompt_len[of_row[r] as usize];
                    (0..plen + own)
                        .map(move |j| u8::from(j >= start && (r > 0 || j < plen + own - 1)))
                })
                .collect();
            let mask = Tensor::from_vec(mask, (b, plen + own), cpu)?;
            let dims = (b, 1, plen + own - 1);
            let bias = AttentionBias::for_keys(Some(&mask), dims, cpu, DType::F64)?;
            let heads = nkv * groups;
            let (kj, vj) = prefix.joined(&k, &v)?;
            let want = attention(&q, kj, vj, None, bias.as_ref(), heads)?;
            let got = attention(&q, k, v, Some(prefix), bias.as_ref(), heads)?;
            assert_eq!(got.dims(), want.dims());
            assert!(max_diff(&got, &want)? < 1e-12, "rows {of_row:?}");
        }
        Ok(())
    }

    #[test]
    fn rows_are_grouped_by_prefix_and_back() -> Result<()> {
        let cpu = &Device::Cpu;
        let rows = Arc::new(PrefixRows::new(vec![1, 1, 0, 1], 3, cpu)?);
        assert_eq!(rows.width, 3);
        // Prefix 0: row 2 and two fillers; prefix 1: rows 0, 1, 3; prefix 2: fillers.
        assert_eq!(rows.gather.to_vec1::<u32>()?, [2, 2, 2, 0, 1, 3, 0, 0, 0]);
        assert_eq!(rows.scatter.to_vec1::<u32>()?, [3, 4, 0, 5]);
        let zeros = Tensor::zeros((3, 2, 5, 4), DType::F64, cpu)?;
        let prefix = SharedPrefix::new(zeros.clone(), zeros, rows)?;
        let x = Tensor::randn(0f64, 1.0, (4, 2, 2, 4), cpu)?;
        let g = prefix.grouped(&x)?;
        assert_eq!(g.dims(), [3, 2, 6, 4]);
        assert_eq!(max_diff(&prefix.ungrouped(&g)?, &x)?, 0.0);
        assert!(PrefixRows::new(vec![0, 3], 3, cpu).is_err());
        Ok(())
    }
}
