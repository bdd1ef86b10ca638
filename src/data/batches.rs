//! The prompt sampler (spec §4.3 step 1): shuffle the dataset with the seed each epoch, cut it
//! into chunks of `prompts_per_step` (the last partial chunk is dropped), and remember where it
//! is so a resumed run continues with exactly the same prompts.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Position in the stream of prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cursor {
    pub epoch: usize,
    /// Next chunk within the epoch.
    pub chunk: usize,
}

/// Index order of one epoch.
pub fn epoch_order(n: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(epoch as u64 * 0x9e37_79b9));
        idx.shuffle(&mut rng);
    }
    idx
}

/// Steps per epoch: full chunks only.
pub fn steps_per_epoch(n: usize, prompts_per_step: usize) -> usize {
    n / prompts_per_step.max(1)
}

/// The dataset indices of the next step's prompts, advancing `cursor`.
pub fn next_chunk(
    cursor: &mut Cursor,
    n: usize,
    prompts_per_step: usize,
    seed: u64,
    shuffle: bool,
) -> Vec<usize> {
    if cursor.chunk >= steps_per_epoch(n, prompts_per_step) {
        cursor.epoch += 1;
        cursor.chunk = 0;
    }
    let order = epoch_order(n, seed, cursor.epoch, shuffle);
    let start = cursor.chunk * prompts_per_step;
    cursor.chunk += 1;
    order[start..start + prompts_per_step].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_an_epoch_without_repeats_and_drop_the_tail() {
        let mut c = Cursor::default();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(next_chunk(&mut c, 10, 3, 7, true));
        }
        let mut s = seen.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 9, "3 chunks of 3 from 10, no repeats");
        next_chunk(&mut c, 10, 3, 7, true);
        assert_eq!(
            c.epoch, 1,
            "the partial chunk is dropped; a new epoch starts"
        );
    }

    #[test]
    fn a_cursor_resumes_the_same_stream() {
        let mut a = Cursor::default();
        let first: Vec<_> = (0..5).map(|_| next_chunk(&mut a, 20, 4, 1, true)).collect();
        let mut b = Cursor::default();
        for _ in 0..2 {
            next_chunk(&mut b, 20, 4, 1, true);
        }
        let rest: Vec<_> = (0..3).map(|_| next_chunk(&mut b, 20, 4, 1, true)).collect();
        assert_eq!(&first[2..], &rest[..]);
    }
}
