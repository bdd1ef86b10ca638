//! Rewards, each in its own module, selected by name and combined with weights. Each reward is
//! normalised within its group separately and the weighted advantages are summed (spec §3).

pub mod accuracy;
pub mod code;
pub mod format;
pub mod neg_entropy;
pub mod plurality_vote;
pub mod random;
pub mod self_certainty;

use serde::{Deserialize, Serialize};

use crate::advantage::ScaleRewards;
use crate::answer::Checker;
use crate::data::code::CodeTask;
use crate::rollout::Completion;
use crate::sandbox::Sandbox;

/// The reward functions, spelled as in configs and metric names (`rewards/<name>/mean`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// INTUITOR: the policy's own self-certainty (spec §2).
    SelfCertainty,
    /// GRPO: 1 if the extracted answer equals the dataset's gold answer (spec §6.1).
    Accuracy,
    /// GRPO-PV: 1 if the answer equals the group's most common answer (spec §6.2).
    PluralityVote,
    /// 1 if a non-empty `\boxed{}` answer is present.
    Format,
    /// EM-RL: mean token entropy / V, negated (spec §6.3).
    NegEntropy,
    /// Bernoulli(0.5) noise (spec §6.3).
    Random,
    /// GRPO-code: the fraction of the problem's tests the completion's program passes
    /// (open-r1's `code_reward`).
    CodeTests,
    /// 1 when the program passes all the problem's tests (open-r1's `binary_code_reward`).
    CodeTestsBinary,
    /// 1 when the completion has a fenced Python block that parses.
    CodeFormat,
}

impl RewardKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SelfCertainty => "self_certainty",
            Self::Accuracy => "accuracy",
            Self::PluralityVote => "plurality_vote",
            Self::Format => "format",
            Self::NegEntropy => "neg_entropy",
            Self::Random => "random",
            Self::CodeTests => "code_tests",
            Self::CodeTestsBinary => "code_tests_binary",
            Self::CodeFormat => "code_format",
        }
    }

    /// Whether this reward runs completions' code (in the sandbox).
    pub fn runs_code(&self) -> bool {
        matches!(
            self,
            Self::CodeTests | Self::CodeTestsBinary | Self::CodeFormat
        )
    }

    /// Whether this reward needs each problem's tests.
    pub fn needs_tests(&self) -> bool {
        matches!(self, Self::CodeTests | Self::CodeTestsBinary)
    }

    /// How this reward's advantages are scaled given the configured `scale_rewards`: the
    /// self-certainty advantage is always divided by its group's std (S1 ignores
    /// `scale_rewards` for it, spec §3 step 3).
    pub fn advantage_scale(&self, configured: ScaleRewards) -> ScaleRewards {
        match self {
            Self::SelfCertainty => ScaleRewards::Group,
            _ => configured,
        }
    }
}

/// What a reward may look at for one prompt-major batch of completions.
pub struct RewardInput<'a> {
    pub completions: &'a [Completion],
    /// Decoded completion texts (special tokens skipped).
    pub texts: &'a [String],
    /// Gold answer of each completion's prompt, if the dataset has one.
    pub golds: &'a [Option<String>],
    /// Group size G.
    pub group: usize,
    /// Sequence self-certainty of each completion from the configured scorer.
    pub self_certainty: &'a [f64],
    /// Seed for the random reward (the step's seed).
    pub seed: u64,
    /// How answers are extracted and compared (accuracy, plurality vote).
    pub checker: Checker,
    /// Each completion's code problem (its tests), if the dataset has one.
    pub tasks: &'a [Option<&'a CodeTask>],
    /// Where the code rewards run completions (`None` when no reward runs code).
    pub sandbox: Option<&'a Sandbox>,
    /// Programs run at once by the code rewards.
    pub jobs: usize,
}

/// One reward value per completion; `None` where the reward cannot judge it. Errors only when
/// a code reward's sandbox cannot run.
pub fn compute(kind: RewardKind, input: &RewardInput) -> anyhow::Result<Vec<Option<f64>>> {
    let sandbox = || {
        input
            .sandbox
            .ok_or_else(|| anyhow::anyhow!("the {} reward needs a sandbox", kind.name()))
    };
    Ok(match kind {
        RewardKind::SelfCertainty => input.self_certainty.iter().map(|&s| Some(s)).collect(),
        RewardKind::Accuracy => accuracy::rewards(input.texts, input.golds, input.checker),
        RewardKind::PluralityVote => {
            plurality_vote::rewards(input.texts, input.group, input.checker)
        }
        RewardKind::Format => format::rewards(input.texts),
        RewardKind::NegEntropy => neg_entropy::rewards(input.completions),
        RewardKind::Random => random::rewards(input.completions.len(), input.seed),
        RewardKind::CodeTests | RewardKind::CodeTestsBinary => code::tests_rewards(
            input.texts,
            input.tasks,
            sandbox()?,
            input.jobs,
            kind == RewardKind::CodeTestsBinary,
        )?,
        RewardKind::CodeFormat => code::format_rewards(input.texts, sandbox()?)?,
    })
}
