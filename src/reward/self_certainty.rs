//! The INTUITOR reward: sequence self-certainty (spec §2), from the policy at rollout time
//! (online, the default) or from the frozen initial model (offline, paper §5.4, which gets
//! reward-hacked). The online values come fused from the rollout engine; the frozen scorer needs
//! one extra no-grad forward per completion.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::Decoder;
use crate::rollout::{Completion, PromptRequest};
use crate::score::score_completion;
use crate::self_certainty::Alignment;

/// Which model scores self-certainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scorer {
    /// The policy being trained, at rollout time (spec §2.2, pitfall 1).
    Policy,
    /// The initial model, never updated (the offline variant).
    Frozen,
}

/// Sequence self-certainty of each completion under `alignment`: the policy's, from the
/// rollout's fused statistics, or the frozen model's (`frozen`, one no-grad forward at T = 1
/// per completion after its prompt `prompts[c.prompt_index]`, stopping at `stop_ids`).
pub fn scores(
    scorer: Scorer,
    alignment: Alignment,
    completions: &[Completion],
    prompts: &[PromptRequest],
    frozen: &Decoder,
    stop_ids: &BTreeSet<u32>,
) -> anyhow::Result<Vec<f64>> {
    match scorer {
        Scorer::Policy => Ok(completions
            .iter()
            .map(|c| c.self_certainty(alignment) as f64)
            .collect()),
        Scorer::Frozen => completions
            .iter()
            .map(|c| {
                let prompt = &prompts[c.prompt_index].ids;
                let s = score_completion(frozen, prompt, &c.ids, 1.0, stop_ids)?;
                Ok(s.self_certainty(alignment) as f64)
            })
            .collect(),
    }
}
