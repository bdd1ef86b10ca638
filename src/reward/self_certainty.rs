//! The INTUITOR reward: sequence self-certainty (spec §2), from the policy at rollout time
//! (online, the default) or from the frozen initial model (offline, paper §5.4, which gets
//! reward-hacked). The online values come fused from the rollout engine; the frozen scorer needs
//! one extra no-grad forward per completion.

use serde::{Deserialize, Serialize};

/// Which model scores self-certainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scorer {
    /// The policy being trained, at rollout time (spec §2.2, pitfall 1).
    Policy,
    /// The initial model, never updated (the offline variant).
    Frozen,
}
