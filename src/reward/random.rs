//! Random reward: Bernoulli(0.5) per completion (S1 `noise_reward`), seeded.

use rand::{Rng, SeedableRng};

pub fn rewards(n: usize, seed: u64) -> Vec<Option<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_7a5d);
    (0..n)
        .map(|_| Some(if rng.random_bool(0.5) { 1.0 } else { 0.0 }))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeded_and_roughly_half() {
        let a = super::rewards(1000, 3);
        assert_eq!(a, super::rewards(1000, 3));
        let ones = a.iter().flatten().filter(|&&x| x == 1.0).count();
        assert!((400..600).contains(&ones), "{ones}");
    }
}
