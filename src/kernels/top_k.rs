//! The largest logits of each row, found where the logits are, so that sampling needs only a
//! few values per row on the host instead of the whole vocabulary (issue 17: 545 MB per token for
//! 896 rows of Qwen2.5's 151,936 logits).
//!
//! candle's `arg_sort_last_dim` sorts a row inside one CUDA block, with the row's padded width
//! in shared memory: 8,192 columns at most, far from a vocabulary. So in two levels: the row is
//! cut into blocks (the narrowest power of two, at least [`BLOCK`], that makes at most 8,192 of
//! them: 32 logits for Qwen2.5's 151,936, 8 for SmolLM2's 49,152), the blocks are sorted by
//! their maxima, and the `m` best blocks (which hold the `m` largest values: each of those lies
//! in a block whose maximum is at least as large) are gathered and sorted. Narrower blocks
//! allow more candidates (`8,192 / block`: 256 for Qwen2.5) and gather fewer logits.

use candle_core::{DType, Result, Tensor, D};

/// The fewest logits per block of the first level.
const BLOCK: usize = 8;
/// The widest row candle's CUDA sort takes (its padded width × 4 B within 48 KiB of shared
/// memory, as a power of two).
const SORT_WIDTH: usize = 8192;

/// The most candidates [`top_candidates`] returns for a vocabulary of `vocab` logits.
pub fn max_candidates(vocab: usize) -> usize {
    SORT_WIDTH / block_for(vocab)
}

/// Block width for `vocab`: [`BLOCK`], doubled until the blocks fit one sort.
fn block_for(vocab: usize) -> usize {
    let mut b = BLOCK;
    while vocab.div_ceil(b) > SORT_WIDTH {
        b *= 2;
    }
    b
}

/// The `m` largest values of each row of `logits` `[rows, vocab]` (any float dtype, compared in
/// f32) as `(token, logit)` pairs, largest first (the order among equal values is
/// unspecified), copied to the host. Rows must hold no NaN. Errors when `m` exceeds
/// [`max_candidates`]; when `m ≥ vocab`, every logit is returned.
pub fn top_candidates(logits: &Tensor, m: usize) -> Result<Vec<Vec<(u32, f32)>>> {
    let (rows, vocab) = logits.dims2()?;
    if m > max_candidates(vocab) {
        candle_core::bail!(
            "top_candidates: {m} candidates asked, at most {} for a vocabulary of {vocab}",
            max_candidates(vocab)
        );
    }
    let m = m.min(vocab);
    let block = block_for(vocab);
    let blocks = vocab.div_ceil(block);
    let mut z = logits.to_dtype(DType::F32)?;
    if blocks * block > vocab {
        let pad = Tensor::full(
            f32::NEG_INFINITY,
            (rows, blocks * block - vocab),
            z.device(),
        )?;
        z = Tensor::cat(&[&z, &pad], 1)?;
    }
    let z = z.reshape((rows * blocks, block))?;
    let best_blocks = z
        .reshape((rows, blocks, block))?
        .max(D::Minus1)?
        .arg_sort_last_dim(false)?
        .narrow(1, 0, m.min(blocks))?
        .contiguous()?;
    let nb = best_blocks.dim(1)?;
    let offsets = Tensor::arange(0u32, rows as u32, z.device())?
        .affine(blocks as f64, 0.0)?
        .unsqueeze(1)?;
    let flat = best_blocks.broadcast_add(&offsets)?.flatten_all()?;
    let gathered = z.index_select(&flat, 0)?.reshape((rows, nb * block))?;
    let order = gathered
        .arg_sort_last_dim(false)?
        .narrow(1, 0, m)?
        .contiguous()?;
    let values: Vec<Vec<f32>> = gathered.gather(&order, 1)?.to_vec2()?;
    let order: Vec<Vec<u32>> = order.to_vec2()?;
    let best_blocks: Vec<Vec<u32>> = best_blocks.to_vec2()?;
    Ok((0..rows)
        .map(|r| {
            order[r]
                .iter()
                .zip(&values[r])
                .map(|(&pos, &v)| {
                    let pos = pos as usize;
                    (
                        best_blocks[r][pos / block] as usize * block + pos % block,
                        v,
                    )
                })
                // Padding past the vocabulary (−∞) is never a token.
                .filter(|&(token, _)| token < vocab)
                .map(|(token, v)| (token as u32, v))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{max_candidates, top_candidates};

    #[test]
    fn the_largest_values_of_each_row_with_their_tokens() -> candle_core::Result<()> {
        // 3 rows over a vocabulary that is not a multiple of the block, with ties and -inf.
        let vocab = 1000;
        let mut data: Vec<f32> = (0..3 * vocab)
            .map(|i| ((i as f32) * 0.7311).sin() * 5.0)
            .collect();
        data[17] = 9.0;
        data[999] = 9.0;
        data[vocab + 3] = f32::NEG_INFINITY;
        let t = Tensor::from_vec(data.clone(), (3, vocab), &Device::Cpu)?;
        for m in [1, 7, 65, max_candidates(vocab)] {
            let got = top_candidates(&t, m)?;
            for (r, row) in got.iter().enumerate() {
                let full = &data[r * vocab..(r + 1) * vocab];
                let mut want: Vec<f32> = full.to_vec();
                want.sort_by(|a, b| b.total_cmp(a));
                assert_eq!(row.len(), m.min(vocab));
                for (i, &(token, v)) in row.iter().enumerate() {
                    assert_eq!(v, want[i], "row {r}, m {m}, rank {i}");
                    assert_eq!(full[token as usize], v, "row {r}: token {token}");
                }
                let mut tokens: Vec<u32> = row.iter().map(|e| e.0).collect();
                tokens.sort();
                tokens.dedup();
                assert_eq!(tokens.len(), row.len(), "a token twice in row {r}");
            }
        }
        assert!(top_candidates(&t, max_candidates(vocab) + 1).is_err());
        Ok(())
    }

    #[test]
    fn a_qwen_sized_vocabulary_takes_blocks_of_32() -> candle_core::Result<()> {
        assert_eq!(max_candidates(151_936), 256);
        assert_eq!(max_candidates(49_152), 1024);
        assert_eq!(max_candidates(1 << 20), 64);
        let vocab = 151_936;
        let data: Vec<f32> = (0..2 * vocab)
            .map(|i| ((i as f32) * 0.0173).sin() * 9.0)
            .collect();
        let t = Tensor::from_vec(data.clone(), (2, vocab), &Device::Cpu)?;
        for (r, row) in top_candidates(&t, 114)?.iter().enumerate() {
            let full = &data[r * vocab..(r + 1) * vocab];
            let mut want = full.to_vec();
            want.sort_by(|a, b| b.total_cmp(a));
            let got: Vec<f32> = row
                .iter()
                .map(|&(token, v)| {
                    assert_eq!(full[token as usize], v);
                    v
                })
                .collect();
            assert_eq!(got, want[..114]);
        }
        Ok(())
    }
}
