//! The rollout engine against a full no-cache forward, its determinism, masking, and the
//! self-certainty alignments.

mod common;

use std::collections::BTreeSet;

use candle_core::{DType, Device};
use common::*;
use intuitor::loader::{LoadedModel, ModelSource};
use intuitor::rollout::{rollout, Completion, FinishReason, PromptRequest, RolloutConfig};
use intuitor::sampling::SamplingParams;
use intuitor::score::score_completion;
use intuitor::self_certainty::Alignment;

fn config(g: usize, max_new: usize, stop: BTreeSet<u32>) -> RolloutConfig {
    RolloutConfig {
        num_generations: g,
        max_new_tokens: max_new,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 50,
            ..SamplingParams::default()
        },
        stop_ids: stop,
        stop_strings: Vec::new(),
        keep_after_last: true,
        kv_budget: None,
        prefill_batch: None,
    }
}

/// Four prompts of different lengths.
const FOUR_PROMPTS: [&str; 4] = [
    "Hi",
    "What is 17 plus 25?",
    "Count to three.",
    "A longer prompt about apples and pears.",
];

fn prompts(m: &LoadedModel, texts: &[&str]) -> Vec<PromptRequest> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| PromptRequest {
            ids: m.prompt_ids(t, None, false).unwrap(),
            seed: 100 + i as u64,
            max_new_tokens: None,
        })
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}

fn check_against_forward(
    m: &LoadedModel,
    reqs: &[PromptRequest],
    outs: &[Completion],
    cfg: &RolloutConfig,
) {
    for c in outs {
        let prompt = &reqs[c.prompt_index].ids;
        let s = score_completion(
            &m.decoder,
            prompt,
            &c.ids,
            cfg.sampling.temperature,
            &cfg.stop_ids,
        )
        .unwrap();
        close(&c.logprobs, &s.logprobs, 1e-4, "logprob (T)");
        close(&c.logprobs_t1, &s.logprobs_t1, 1e-4, "logprob (T=1)");
        close(&c.entropy, &s.entropy, 1e-4, "entropy");
        close(&c.entropy_t1, &s.entropy_t1, 1e-4, "entropy (T=1)");
        close(
            &c.lse_minus_mean,
            &s.lse_minus_mean,
            1e-4,
            "self-certainty rows",
        );
        assert!((c.lse_minus_mean_after.unwrap() - s.lse_minus_mean_after.unwrap()).abs() <= 1e-4);
        assert_eq!(c.mask_len, s.mask_len);
        for a in [Alignment::Paper, Alignment::Openr1] {
            let (x, y) = (c.self_certainty(a), s.self_certainty(a));
            assert!((x - y).abs() <= 1e-4, "{a:?}: {x} vs {y}");
        }
    }
}

#[test]
fn engine_statistics_equal_a_full_forward_with_mixed_prompt_lengths() {
    mixed_prompt_lengths(&load_tiny("tiny-qwen2"));
}

/// In f64 the decode attends through the device-generic path (a shared prompt's keys read by
/// one matmul for its rows, the bias built from the mask tensor) rather than the f32 CPU
/// kernel.
#[test]
fn engine_statistics_equal_a_full_forward_in_f64() {
    let source = ModelSource::HfDir(fixture("tiny-qwen2"));
    mixed_prompt_lengths(&LoadedModel::load(&source, DType::F64, &Device::Cpu).unwrap());
}

fn mixed_prompt_lengths(m: &LoadedModel) {
    let reqs = prompts(
        m,
        &["Hi", "What is 17 plus 25, in words?", "Count to three."],
    );
    assert!(reqs[0].ids.len() != reqs[1].ids.len());
    // Many stop ids so that rows finish at different steps (tests retirement + compaction).
    let stop: BTreeSet<u32> = (40..60).collect();
    let cfg = config(3, 12, stop);
    let outs = rollout(&m.decoder, &reqs, &cfg, None).unwrap();
    assert_eq!(outs.len(), 9);
    let lens: BTreeSet<usize> = outs.iter().map(|c| c.ids.len()).collect();
    assert!(lens.len() > 1, "rows finished at different steps: {lens:?}");
    for (i, c) in outs.iter().enumerate() {
        assert_eq!(
            (c.prompt_index, c.sample_index),
            (i / 3, i % 3),
            "prompt-major order"
        );
    }
    check_against_forward(m, &reqs, &outs, &cfg);
}

/// A stop string ends a completion at the first token after which its text contains it
/// (finish reason `stop`); up to there the tokens are those of the run without it.
#[test]
fn a_stop_string_ends_the_completion_where_its_text_appears() {
    let m = load_default();
    let reqs = prompts(&m, &["Name three colors.", "What is 2+3?"]);
    let mut cfg = config(2, 24, BTreeSet::new());
    let free = rollout(&m.decoder, &reqs, &cfg, Some(&m.tokenizer)).unwrap();
    let text = |ids: &[u32]| m.tokenizer.decode(ids, false).unwrap();
    let stop = text(&free[0].ids[6..9]).trim().to_string();
    assert!(!stop.is_empty(), "a stop string from the first completion");
    cfg.stop_strings = vec![stop.clone()];
    let stopped = rollout(&m.decoder, &reqs, &cfg, Some(&m.tokenizer)).unwrap();
    let mut ended = 0;
    for (f, s) in free.iter().zip(&stopped) {
        match (1..=f.ids.len()).find(|&k| text(&f.ids[..k]).contains(&stop)) {
            Some(k) => {
                ended += 1;
                assert_eq!(s.ids, f.ids[..k], "{stop:?}");
                assert_eq!(s.finish_reason, FinishReason::Stop);
                assert_eq!(s.mask_len, k);
            }
            None => assert_eq!(s.ids, f.ids),
        }
    }
    assert!(
        ended >= 1,
        "the first completion at least stops at {stop:?}"
    );
}

#[test]
fn smollm2_engine_statistics_equal_a_full_forward() {
    let m = load_default();
    let reqs = prompts(&m, &["What is 2+3?", "Name a color."]);
    let cfg = config(2, 16, m.tokenizer.stop_ids());
    let outs = rollout(&m.decoder, &reqs, &cfg, None).unwrap();
    check_against_forward(&m, &reqs, &outs, &cfg);
}

#[test]
fn same_seed_same_samples_and_rows_do_not_depend_on_their_batch() {
    let m = load_tiny("tiny-qwen2");
    let reqs = prompts(&m, &FOUR_PROMPTS);
    let cfg = config(7, 10, BTreeSet::new());
    let big = rollout(&m.decoder, &reqs, &cfg, None).unwrap();
    assert_eq!(big.len(), 28);
    assert_eq!(
        big,
        rollout(&m.decoder, &reqs, &cfg, None).unwrap(),
        "same seed, same output"
    );
    // Prompt 2 alone, with all 7 rows, and its row 0 alone.
    let alone = rollout(&m.decoder, &reqs[2..3], &cfg, None).unwrap();
    let single = rollout(
        &m.decoder,
        &reqs[2..3],
        &config(1, 10, BTreeSet::new()),
        None,
    )
    .unwrap();
    // On the CPU a row's completion and statistics are the same bits alone or in a batch
    // (masked keys add exact zeros; each row has its own RNG stream).
    let as_prompt_2 = |c: &Completion| Completion {
        prompt_index: 2,
        ..c.clone()
    };
    for (a, b) in alone.iter().zip(&big[14..21]) {
        assert_eq!(
            as_prompt_2(a),
            *b,
            "row {} alone vs in a batch of 28",
            a.sample_index
        );
    }
    assert_eq!(as_prompt_2(&single[0]), big[14]);
    let different: BTreeSet<&Vec<u32>> = big[14..21].iter().map(|c| &c.ids).collect();
    assert!(
        different.len() > 1,
        "the G rows of a prompt use different streams"
    );
}

#[test]
fn masking_eos_length_and_empty_completions() {
    let m = load_tiny("tiny-qwen2");
    let reqs = prompts(&m, &["Hi there"]);
    let stop: BTreeSet<u32> = (0..200).collect();
    let outs = rollout(&m.decoder, &reqs, &config(4, 6, stop.clone()), None).unwrap();
    for c in &outs {
        match c.finish_reason {
            FinishReason::Eos => {
                assert!(stop.contains(c.ids.last().unwrap()));
                assert!(c.ids[..c.ids.len() - 1].iter().all(|t| !stop.contains(t)));
            }
            FinishReason::Length => assert_eq!(c.ids.len(), 6),
            FinishReason::Stop => unreachable!(),
        }
        assert_eq!(
            c.mask_len,
            c.ids.len(),
            "the whole completion, EOS included, is masked in"
        );
    }
    // Tokens after the first EOS never count.
    let prompt = &reqs[0].ids;
    let eos = m.tokenizer.eos_id.unwrap();
    let stops = m.tokenizer.stop_ids();
    let with_tail =
        score_completion(&m.decoder, prompt, &[300, 301, eos, 302, 303], 0.9, &stops).unwrap();
    let cut = score_completion(&m.decoder, prompt, &[300, 301, eos], 0.9, &stops).unwrap();
    assert_eq!(with_tail.mask_len, 3);
    for a in [Alignment::Paper, Alignment::Openr1] {
        assert!(
            (with_tail.self_certainty(a) - cut.self_certainty(a)).abs() < 1e-5,
            "{a:?}"
        );
    }
    // A completion that hits the length limit counts fully.
    let full = score_completion(&m.decoder, prompt, &[300, 301, 302], 0.9, &stops).unwrap();
    assert_eq!(full.mask_len, 3);
    assert_eq!(full.finish_reason, FinishReason::Length);
    // An empty completion: no NaN, self-certainty 0.
    let empty = score_completion(&m.decoder, prompt, &[], 0.9, &stops).unwrap();
    assert_eq!(empty.mask_len, 0);
    assert_eq!(empty.self_certainty(Alignment::Paper), 0.0);
    assert_eq!(empty.self_certainty(Alignment::Openr1), 0.0);
    assert_eq!(empty.mean_logprob(), 0.0);
}

#[test]
fn openr1_logged_value_is_the_openr1_kl_plus_ln_v() {
    let m = load_tiny("tiny-qwen2");
    let reqs = prompts(&m, &["Hi"]);
    let c = score_completion(
        &m.decoder,
        &reqs[0].ids,
        &[300, 301, 302],
        1.0,
        &BTreeSet::new(),
    )
    .unwrap();
    let ln_v = (384f32).ln();
    assert!(
        (c.self_certainty_openr1_logged() - c.self_certainty(Alignment::Openr1) - ln_v).abs()
            < 1e-5
    );
    // open-r1 rows are the paper rows shifted by one, ending with the row after the last token.
    let paper = c.token_self_certainty(Alignment::Paper);
    let openr1 = c.token_self_certainty(Alignment::Openr1);
    assert_eq!(&openr1[..2], &paper[1..]);
    assert!((openr1[2] + ln_v - c.lse_minus_mean_after.unwrap()).abs() < 1e-6);
}

/// Issue 17: under a KV budget for 1, 2, 5 or 11 rows (of 28) the rows wait for free slots and
/// prompts are prefilled as their first row is admitted, yet every completion and every
/// statistic is bit-identical to the unbounded rollout's, with stops staggered across rows
/// (stop ids taken from the unbounded run) and the distribution after the last token kept.
#[test]
fn a_kv_budget_gives_bit_identical_completions() {
    let m = load_tiny("tiny-qwen2");
    let reqs = prompts(&m, &FOUR_PROMPTS);
    let probe = rollout(&m.decoder, &reqs, &config(7, 12, BTreeSet::new()), None).unwrap();
    let stop: BTreeSet<u32> = [probe[0].ids[2], probe[9].ids[5], probe[20].ids[8]].into();
    let cfg = config(7, 12, stop);
    let full = rollout(&m.decoder, &reqs, &cfg, None).unwrap();
    let lengths: BTreeSet<usize> = full.iter().map(|c| c.ids.len()).collect();
    assert!(lengths.len() >= 3, "staggered stops: {lengths:?}");
    let c = m.decoder.config();
    let per_position = (c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * 4) as u64;
    let unbounded = intuitor::rollout::slot_plan_for(&m.decoder, &reqs, &cfg).unwrap();
    assert_eq!((unbounded.rows, unbounded.prefixes), (28, 4));
    for rows in [1, 2, 5, 11] {
        let slots = intuitor::rollout::SlotPlan {
            rows,
            prefixes: rows.min(4),
            ..unbounded
        };
        let bounded = RolloutConfig {
            kv_budget: Some(slots.bytes(per_position)),
            ..cfg.clone()
        };
        assert_eq!(
            intuitor::rollout::slot_plan_for(&m.decoder, &reqs, &bounded).unwrap(),
            slots
        );
        let out = rollout(&m.decoder, &reqs, &bounded, None).unwrap();
        assert_eq!(out.len(), full.len());
        for (a, b) in out.iter().zip(&full) {
            assert_eq!(
                a, b,
                "{rows} slots: prompt {} sample {}",
                b.prompt_index, b.sample_index
            );
        }
    }
    let too_small = RolloutConfig {
        kv_budget: Some(per_position),
        ..cfg.clone()
    };
    let err = rollout(&m.decoder, &reqs, &too_small, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no sequence"), "{err}");
}

/// Prompts prefilled together in left-padded batches (`prefill_batch`, the default off the
/// CPU) give every row the statistics of a full no-cache forward over its own tokens, with the
/// KV budget bounded or not, and sample the same tokens as one-at-a-time prefill.
#[test]
fn batched_prefill_equals_a_full_forward_and_samples_the_same_tokens() {
    let m = load_tiny("tiny-qwen2");
    let reqs = prompts(&m, &FOUR_PROMPTS);
    let lengths: BTreeSet<usize> = reqs.iter().map(|r| r.ids.len()).collect();
    assert!(
        lengths.len() >= 3,
        "prompts of different lengths: {lengths:?}"
    );
    let stop: BTreeSet<u32> = (40..60).collect();
    let one = RolloutConfig {
        prefill_batch: Some(1),
        ..config(3, 10, stop)
    };
    let alone = rollout(&m.decoder, &reqs, &one, None).unwrap();
    let unbounded = intuitor::rollout::slot_plan_for(&m.decoder, &reqs, &one).unwrap();
    let c = m.decoder.config();
    let per_position = (c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * 4) as u64;
    // Room for 7 of the 12 rows: the first round starts three groups (their rows fill the 7
    // slots), prefilled as a batch of 2 and one alone; the last group starts alone later.
    let seven = intuitor::rollout::SlotPlan {
        rows: 7,
        prefixes: 4,
        ..unbounded
    };
    for (batch, budget) in [(4, None), (3, None), (2, Some(seven.bytes(per_position)))] {
        let cfg = RolloutConfig {
            prefill_batch: Some(batch),
            kv_budget: budget,
            ..one.clone()
        };
        if budget.is_some() {
            let plan = intuitor::rollout::slot_plan_for(&m.decoder, &reqs, &cfg).unwrap();
            assert_eq!(plan, seven);
        }
        let out = rollout(&m.decoder, &reqs, &cfg, None).unwrap();
        assert_eq!(out.len(), alone.len());
        for (a, b) in out.iter().zip(&alone) {
            let what = format!(
                "batch {batch}: prompt {} sample {}",
                b.prompt_index, b.sample_index
            );
            assert_eq!(
                (&a.ids, a.finish_reason),
                (&b.ids, b.finish_reason),
                "{what}"
            );
            close(&a.logprobs, &b.logprobs, 1e-5, &what);
        }
        check_against_forward(&m, &reqs, &out, &cfg);
    }
}
