//! Packing prompt ⊕ completion sequences into forward passes: consecutive sequences with the
//! same prompt (a GRPO group) share one forward of it, others are left-padded together; the
//! scoring rows are the hidden states that predict each completion token.

use candle_core::{Result, Tensor};

use crate::model::{Decoder, KvContext};

/// One sequence: the prompt and the completion tokens that count (cut at the mask).
#[derive(Debug, Clone)]
pub struct Sequence<'a> {
    pub prompt_ids: &'a [u32],
    pub completion_ids: &'a [u32],
}

/// Sequences batched for one scoring forward, with the scored tokens in sequence order.
///
/// Consecutive sequences with the same prompt (a GRPO group) share it: the prompt runs once
/// with batch 1 and its keys/values are attended to by every completion of the group
/// ([`KvContext::Prefix`]), gradients included. With G = 7 completions of ~110 tokens after a
/// ~85-token prompt that removes over a third of the positions of a step's forward passes. A
/// batch in which no two neighbours share a prompt is left-padded into one forward instead.
pub struct PackedBatch {
    layout: Layout,
    /// The scored tokens, in order.
    pub targets: Vec<u32>,
    /// Number of scored tokens per sequence.
    pub lens: Vec<usize>,
}

enum Layout {
    /// `[batch, seq]` left-padded; `rows` index the flattened hidden states.
    LeftPadded {
        input_ids: Tensor,
        positions: Tensor,
        key_mask: Tensor,
        rows: Tensor,
    },
    SharedPrompts(Vec<SharedPrompt>),
}

/// One prompt and the completions that follow it. A completion's first token is predicted by
/// the prompt's last position and token `k` by its own position `k − 1`, so a completion forward
/// takes each completion without its last token, right-padded (causal attention keeps the
/// padding out of every real position).
pub struct SharedPrompt {
    prompt: Tensor,
    prompt_positions: Tensor,
    /// The scored tokens of each completion.
    completions: Vec<Vec<u32>>,
}

/// What the completions of a [`SharedPrompt`] read from its forward: every layer's keys and
/// values (`[1, kv_heads, p, head_dim]`) and the last position's hidden state (`[1, hidden]`),
/// which predicts each completion's first token.
pub struct PromptStates {
    pub kv: Vec<(Tensor, Tensor)>,
    pub last: Tensor,
}

impl PromptStates {
    /// Every state in one list: each layer's keys, then its values, then the last hidden row.
    pub fn into_states(self) -> Vec<Tensor> {
        self.kv
            .into_iter()
            .flat_map(|(k, v)| [k, v])
            .chain([self.last])
            .collect()
    }

    /// The inverse of [`PromptStates::into_states`].
    pub fn from_states(mut states: Vec<Tensor>) -> Result<Self> {
        let last = match (states.pop(), states.len() % 2) {
            (Some(last), 0) => last,
            _ => candle_core::bail!("prompt states: expected key/value pairs and a last row"),
        };
        let kv = states
            .chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        Ok(Self { kv, last })
    }
}

impl PackedBatch {
    pub fn new(seqs: &[Sequence], device: &candle_core::Device) -> Result<Self> {
        if let Some(i) = seqs.iter().position(|s| s.prompt_ids.is_empty()) {
            candle_core::bail!("sequence {i} has an empty prompt");
        }
        let targets = seqs.iter().flat_map(|s| s.completion_ids.iter().copied());
        let lens = seqs.iter().map(|s| s.completion_ids.len()).collect();
        let prompts: Vec<&[u32]> = seqs.iter().map(|s| s.prompt_ids).collect();
        let groups = same_prompt_runs(&prompts, usize::MAX);
        let layout = if groups.len() < seqs.len() {
            let groups = groups
                .into_iter()
                .map(|r| SharedPrompt::new(&seqs[r], device))
                .collect::<Result<_>>()?;
            Layout::SharedPrompts(groups)
        } else {
            left_padded(seqs, device)?
        };
        Ok(Self {
            layout,
            targets: targets.collect(),
            lens,
        })
    }

    /// The prompt groups, when the batch shares prompts (`None`: one left-padded forward).
    pub fn groups(&self) -> Option<&[SharedPrompt]> {
        match &self.layout {
            Layout::SharedPrompts(groups) => Some(groups),
            Layout::LeftPadded { .. } => None,
        }
    }

    /// The hidden states that predict each scored token, `[n_scored, hidden]`.
    pub fn scoring_rows(&self, decoder: &Decoder) -> Result<Tensor> {
        self.scoring_rows_with(&mut plain(decoder))
    }

    /// [`PackedBatch::scoring_rows`] with the final hidden states from `hidden` (for a
    /// left-padded batch: one call).
    pub fn scoring_rows_with(&self, hidden: &mut HiddenStates) -> Result<Tensor> {
        match &self.layout {
            Layout::LeftPadded {
                input_ids,
                positions,
                key_mask,
                rows,
            } => {
                let hidden = hidden(input_ids, positions, Some(key_mask), KvContext::Own)?;
                let (b, t, h) = hidden.dims3()?;
                hidden.reshape((b * t, h))?.index_select(rows, 0)
            }
            Layout::SharedPrompts(groups) => {
                let parts = groups
                    .iter()
                    .map(|g| g.scoring_rows(hidden))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&parts, 0)
            }
        }
    }
}

/// Consecutive runs of equal prompt keys, each cut into pieces of at most `cap` sequences.
pub fn same_prompt_runs<T: PartialEq>(prompts: &[T], cap: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=prompts.len() {
        if i == prompts.len() || prompts[i] != prompts[start] || i - start == cap.max(1) {
            out.push(start..i);
            start = i;
        }
    }
    out
}

fn left_padded(seqs: &[Sequence], device: &candle_core::Device) -> Result<Layout> {
    let t = seqs
        .iter()
        .map(|s| s.prompt_ids.len() + s.completion_ids.len())
        .max()
        .unwrap_or(0);
    let b = seqs.len();
    let mut ids = vec![0u32; b * t];
    let mut mask = vec![0u32; b * t];
    let mut pos = vec![0u32; b * t];
    let mut rows = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        let (p, c) = (s.prompt_ids.len(), s.completion_ids.len());
        let pad = t - p - c;
        for (k, &tok) in s.prompt_ids.iter().chain(s.completion_ids).enumerate() {
            ids[i * t + pad + k] = tok;
            mask[i * t + pad + k] = 1;
            pos[i * t + pad + k] = k as u32;
        }
        rows.extend((0..c).map(|k| (i * t + pad + p + k - 1) as u32));
    }
    Ok(Layout::LeftPadded {
        input_ids: Tensor::from_vec(ids, (b, t), device)?,
        positions: Tensor::from_vec(pos, (b, t), device)?,
        key_mask: Tensor::from_vec(mask, (b, t), device)?,
        rows: Tensor::new(rows, device)?,
    })
}

impl SharedPrompt {
    fn new(seqs: &[Sequence], device: &candle_core::Device) -> Result<Self> {
        let prompt = seqs[0].prompt_ids;
        Ok(Self {
            prompt: Tensor::new(prompt, device)?.unsqueeze(0)?,
            prompt_positions: positions(0, prompt.len(), 1, device)?,
            completions: seqs.iter().map(|s| s.completion_ids.to_vec()).collect(),
        })
    }

    /// Number of completions.
    pub fn len(&self) -> usize {
        self.completions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.completions.is_empty()
    }

    /// Scored tokens of completion `i`.
    pub fn scored(&self, i: usize) -> usize {
        self.completions[i].len()
    }

    /// The prompt's forward, batch 1, keeping what its completions read.
    pub fn prompt_forward(&self, decoder: &Decoder) -> Result<PromptStates> {
        self.prompt_forward_with(&mut plain(decoder))
    }

    /// [`SharedPrompt::prompt_forward`] with the final hidden states from `hidden`.
    pub fn prompt_forward_with(&self, hidden: &mut HiddenStates) -> Result<PromptStates> {
        let mut kv = Vec::new();
        let hidden = hidden(
            &self.prompt,
            &self.prompt_positions,
            None,
            KvContext::Capture(&mut kv),
        )?;
        let p = hidden.dim(1)?;
        Ok(PromptStates {
            kv,
            last: hidden.squeeze(0)?.narrow(0, p - 1, 1)?,
        })
    }

    /// The scoring rows of completions `range` (in order, `[Σ scored, hidden]`), one forward
    /// attending to `prompt`.
    pub fn completion_rows(
        &self,
        decoder: &Decoder,
        range: std::ops::Range<usize>,
        prompt: &PromptStates,
    ) -> Result<Tensor> {
        self.completion_rows_with(&mut plain(decoder), range, prompt)
    }

    /// [`SharedPrompt::completion_rows`] with the final hidden states from `hidden` (one call,
    /// none when every completion has a single scored token).
    pub fn completion_rows_with(
        &self,
        hidden: &mut HiddenStates,
        range: std::ops::Range<usize>,
        prompt: &PromptStates,
    ) -> Result<Tensor> {
        let device = prompt.last.device();
        let seqs = &self.completions[range];
        let p = self.prompt.dim(1)?;
        let width = seqs
            .iter()
            .map(|c| c.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let mut ids = vec![0u32; seqs.len() * width];
        let mut rows = Vec::new();
        for (i, c) in seqs.iter().enumerate() {
            for (k, &tok) in c.iter().take(c.len().saturating_sub(1)).enumerate() {
                ids[i * width + k] = tok;
            }
            // Row 0 is the prompt's last position; then the completions' own positions.
            rows.extend((0..c.len()).map(|k| match k {
                0 => 0,
                k => (1 + i * width + k - 1) as u32,
            }));
        }
        let mut parts = vec![prompt.last.clone()];
        if width > 0 {
            let ids = Tensor::from_vec(ids, (seqs.len(), width), device)?;
            let pos = positions(p, width, seqs.len(), device)?;
            let hidden = hidden(&ids, &pos, None, KvContext::Prefix(&prompt.kv))?;
            parts.push(hidden.reshape(((), prompt.last.dim(1)?))?);
        }
        Tensor::cat(&parts, 0)?.index_select(&Tensor::new(rows, device)?, 0)
    }

    fn scoring_rows(&self, hidden: &mut HiddenStates) -> Result<Tensor> {
        let prompt = self.prompt_forward_with(hidden)?;
        self.completion_rows_with(hidden, 0..self.len(), &prompt)
    }
}

/// Final hidden states of a forward: `(input_ids, positions, key_mask, context)` →
/// `[batch, seq, hidden]`, as [`Decoder::hidden_states_with`] computes them (or activation
/// recompute, which keeps its own record of the forward).
pub type HiddenStates<'a> =
    dyn FnMut(&Tensor, &Tensor, Option<&Tensor>, KvContext) -> Result<Tensor> + 'a;

/// [`HiddenStates`] by `decoder`'s plain forward.
pub fn plain(
    decoder: &Decoder,
) -> impl FnMut(&Tensor, &Tensor, Option<&Tensor>, KvContext) -> Result<Tensor> + '_ {
    move |ids, pos, mask, ctx| decoder.hidden_states_with(ids, pos, mask, ctx)
}

/// Positions `from .. from + n` for `copies` rows, `[copies, n]`.
fn positions(from: usize, n: usize, copies: usize, device: &candle_core::Device) -> Result<Tensor> {
    let one: Vec<u32> = (from..from + n).map(|x| x as u32).collect();
    Tensor::new(one.as_slice(), device)?
        .unsqueeze(0)?
        .repeat((copies, 1))
}

#[cfg(test)]
mod tests {
    use super::same_prompt_runs;

    #[test]
    fn runs_split_at_prompts_and_at_the_cap() {
        let prompt_of = [0, 0, 0, 0, 0, 1, 1, 2];
        assert_eq!(
            same_prompt_runs(&prompt_of, 3),
            vec![0..3, 3..5, 5..7, 7..8]
        );
        assert_eq!(same_prompt_runs(&prompt_of, 8), vec![0..5, 5..7, 7..8]);
        assert!(same_prompt_runs::<usize>(&[], 4).is_empty());
    }
}
