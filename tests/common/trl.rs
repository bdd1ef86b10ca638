//! The TRL 1.16 update fixture (scripts/make_trl_fixtures.py): four prompt/completion pairs
//! with TRL's advantages, old and reference log-probs, loss settings and gradients.

use std::collections::HashMap;

use candle_core::Tensor;
use intuitor::loss::{sequence_weights, LossConfig};
use intuitor::update::UpdateSequence;

use super::{fixture, golden, masked_rows};

pub struct TrlFixture {
    pub meta: serde_json::Value,
    pub t: HashMap<String, Tensor>,
    pub prompts: Vec<Vec<u32>>,
    pub completions: Vec<Vec<u32>>,
}

impl TrlFixture {
    pub fn load() -> Self {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("trl_update.json")).unwrap())
                .unwrap();
        let t = golden("trl_update.safetensors");
        let prompts = masked_rows(&t, "prompt_ids", "prompt_mask");
        let completions = masked_rows(&t, "completion_ids", "completion_mask");
        Self {
            meta,
            t,
            prompts,
            completions,
        }
    }

    /// TRL's loss settings for `loss_type` at `beta`.
    pub fn loss_cfg(&self, loss_type: &str, beta: f64) -> LossConfig {
        let m = &self.meta;
        LossConfig {
            loss_type: serde_json::from_value(serde_json::Value::String(loss_type.into())).unwrap(),
            beta,
            epsilon_low: m["epsilon_low"].as_f64().unwrap(),
            epsilon_high: m["epsilon_high"].as_f64().unwrap(),
            max_completion_length: m["max_completion_length"].as_u64().unwrap() as usize,
            temperature: m["temperature"].as_f64().unwrap(),
            // TRL 1.16's default; the fixture records TRL's defaults.
            kl_bias_correction: true,
        }
    }

    /// Completion lengths inside the mask.
    pub fn lens(&self) -> Vec<usize> {
        self.completions.iter().map(Vec::len).collect()
    }

    /// The reference log-probs of sequence `i`, inside the mask.
    pub fn ref_logps(&self, i: usize) -> Vec<f32> {
        let reference: Vec<Vec<f32>> = self.t["ref_logps"].to_vec2().unwrap();
        reference[i][..self.lens()[i]].to_vec()
    }

    /// The four sequences with TRL's advantages and weights (its micro-batch structure), and
    /// its old log-probs when `with_old`.
    pub fn sequences(&self, cfg: &LossConfig, with_old: bool) -> Vec<UpdateSequence> {
        let lens = self.lens();
        let ga = self.meta["gradient_accumulation_steps"].as_u64().unwrap() as usize;
        let items = self.meta["num_items_in_batch"].as_u64().unwrap() as usize;
        let w = sequence_weights(&lens, cfg, ga, items);
        let adv: Vec<f32> = self.t["advantages"].to_vec1().unwrap();
        let old: Vec<Vec<f32>> = self.t["old_logps"].to_vec2().unwrap();
        (0..4)
            .map(|i| UpdateSequence {
                prompt_ids: self.prompts[i].clone(),
                completion_ids: self.completions[i].clone(),
                advantage: adv[i] as f64,
                old_logps: with_old.then(|| old[i][..lens[i]].to_vec()),
                ref_logps: Some(self.ref_logps(i)),
                weight: w[i],
            })
            .collect()
    }
}
