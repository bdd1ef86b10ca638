//! EM-RL's reward (spec §6.3, paper A.4): `u = −(1/(|o|·|V|)) Σ_i Σ_j p log p`, as printed
//! (including the 1/|V|), i.e. the mean token entropy (untempered, T = 1) divided by V and negated
//! so that lower entropy scores higher.

use crate::rollout::Completion;
use crate::self_certainty::sequence_mean;

pub fn rewards(completions: &[Completion]) -> Vec<Option<f64>> {
    completions
        .iter()
        .map(|c| {
            let h = sequence_mean(&c.entropy_t1, c.mask_len) as f64;
            Some(-h / c.vocab_width as f64)
        })
        .collect()
}
