//! Tests of the memory plan (`plan.rs`): hand counts on the tiny fixture model.

use super::*;

fn tiny() -> ModelConfig {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny-qwen2/config.json"
    );
    ModelConfig::from_hf_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// 2 prompts of up to 10 tokens × `g` completions of up to `completion`, micro-batch 2.
fn two_prompts(g: usize, completion: usize) -> TrainConfig {
    TrainConfig {
        num_generations: g,
        prompts_per_step: 2,
        per_device_train_batch_size: 2,
        max_prompt_length: 10,
        max_completion_length: completion,
        ..TrainConfig::default()
    }
}

/// f32 on the CPU without recompute, the longest prompt `longest` tokens.
fn f32_cpu(longest: usize) -> PlanInputs {
    PlanInputs {
        dtype: DType::F32,
        packed_reference: None,
        cpu: true,
        recompute: false,
        longest_prompt: Some(longest),
    }
}

/// The tiny Qwen2 (hidden 32, 2 layers, 4/2 heads of 8, MLP 64, vocab 384, untied, q/k/v
/// biases) counted by hand.
#[test]
fn the_tiny_models_plan_is_the_hand_count() {
    let m = tiny();
    // Per layer: q 32·32+32, k and v 32·16+16 each, o 32·32, MLP 3·32·64, 2 norms of 32.
    let layer = (1024 + 32) + 2 * (512 + 16) + 1024 + 3 * 2048 + 64;
    let p = 384 * 32 + 2 * layer + 32 + 384 * 32;
    assert_eq!(parameters(&m), p);
    let cfg = two_prompts(3, 6);
    let inputs = f32_cpu(8);
    let plan = MemoryPlan::new(&m, &cfg, inputs);
    let rollout = &plan.phases[0];
    let get = |phase: &Phase, what: &str| {
        phase
            .items
            .iter()
            .find(|i| i.what.starts_with(what))
            .unwrap()
            .bytes
    };
    // 2 prompts of 8 tokens + 6 rows of 6 positions, 2 layers × K and V × 16 wide × 4 B;
    // a KV budget below that is the cache's size.
    let per_position = 2 * 2 * 16 * 4;
    assert_eq!(
        get(rollout, "rollout KV cache"),
        (2 * 8 + 6 * 6) * per_position
    );
    let budgeted = TrainConfig {
        rollout_kv_budget: Some(crate::config::ByteSize::Text("1KiB".into())),
        ..cfg.clone()
    };
    let small = MemoryPlan::new(&m, &budgeted, inputs);
    assert_eq!(get(&small.phases[0], "rollout KV cache"), 1024);
    assert_eq!(get(rollout, "policy weights"), 4 * p);
    assert_eq!(get(rollout, "AdamW moments"), 8 * p);
    let update = &plan.phases[2];
    // G > 1: the larger of the prompt pass (8 tokens, 8 keys) and one completion (6
    // tokens, 14 keys), per layer: 12·32 + 2·16 + 3·64 = 608 values a token, scores f32 ×2.
    let layer_act = |t: u64, keys: u64| t * 608 * 4 + 4 * t * keys * 8;
    let act = 2 * 2 * 2 * 8 * 16 * 4 + 2 * layer_act(8, 8).max(layer_act(6, 14));
    assert_eq!(get(update, "activations"), act);
    assert_eq!(plan.peak().0, "update (forward + backward)");
    // The prefill: one prompt at a time on the CPU, both prompts at once elsewhere, each
    // with its 8 positions of keys and a quarter of a layer's activations.
    let prefill = |n: u64| n * 8 * per_position + n * layer_act(8, 8) / 4;
    assert_eq!(get(rollout, "prefill"), prefill(1));
    let gpu = MemoryPlan::new(
        &m,
        &cfg,
        PlanInputs {
            cpu: false,
            ..inputs
        },
    );
    assert_eq!(get(&gpu.phases[0], "prefill"), prefill(2));
}

/// Past two query blocks no layer keeps attention scores; the backward's block
/// temporaries are counted once, not per layer.
#[test]
fn blocked_attention_keeps_no_scores_per_layer() {
    let m = tiny();
    let plan = MemoryPlan::new(&m, &two_prompts(1, 1100), f32_cpu(10));
    let activations = plan.phases[2]
        .items
        .iter()
        .find(|i| i.what.starts_with("activations"))
        .unwrap()
        .bytes;
    // 2 rows × 1,110 positions × 608 values × 4 B per layer, 2 layers; one block of 512
    // queries × 4 heads × 1,110 keys × 4 B × 5 tensors per row.
    let (rows, t) = (2, 1110);
    assert!(kernels::blocked(t as usize));
    let blocks = rows * 4 * kernels::QUERY_BLOCK as u64 * t * 4 * 5;
    assert_eq!(activations, 2 * rows * t * 608 * 4 + blocks);
}

/// An unset `rollout_kv_budget` is sized so that the rollout phase fits, leaving the
/// headroom; with room for less than one completion it stays unset.
#[test]
fn an_unset_kv_budget_is_sized_to_fit_the_rollout() {
    let m = tiny();
    let plan_of = |c: &TrainConfig| Ok(MemoryPlan::new(&m, c, f32_cpu(10)));
    let mut cfg = two_prompts(64, 1000);
    let full = plan_of(&cfg).unwrap();
    let rollout = full.phases[0].total();
    let kv = full.phases[0]
        .items
        .iter()
        .find(|i| i.what == KV_ITEM)
        .unwrap()
        .bytes;
    assert_eq!(full.kv_budget_to_fit(rollout), None, "it fits");
    let available = rollout - kv / 2;
    assert!(full.kv_budget_could_fit(available));
    let plan = fit_kv_budget(&mut cfg, Some(available), plan_of).unwrap();
    let budget = cfg.rollout_kv_budget.as_ref().unwrap().bytes().unwrap();
    let room = (available as f64 * (1.0 - AUTO_BUDGET_HEADROOM)) as u64;
    assert_eq!(budget, room - (rollout - kv));
    assert!(plan.phases[0].total() <= room);
    assert!(plan.phases[0]
        .items
        .iter()
        .any(|i| i.what.contains("sized by the plan")));
    // Room, after the headroom, for half a completion's keys beside the rest of the rollout:
    // no budget is set. Without the headroom no budget could fit, and the advice
    // (`check_fits`) does not offer one.
    let rest = rollout - kv;
    let half = rest + full.one_completion_kv / 2;
    let available = (half as f64 / (1.0 - AUTO_BUDGET_HEADROOM)).ceil() as u64;
    let mut cfg = two_prompts(64, 1000);
    let plan = fit_kv_budget(&mut cfg, Some(available), plan_of).unwrap();
    assert_eq!(cfg.rollout_kv_budget, None);
    assert_eq!(plan.phases[0].total(), rollout);
    assert!(plan.kv_budget_could_fit(available));
    assert!(!plan.kv_budget_could_fit(half));
    // A budget set by the user is never changed.
    let mut cfg = TrainConfig {
        rollout_kv_budget: Some(crate::config::ByteSize::Bytes(u64::MAX)),
        ..two_prompts(64, 1000)
    };
    fit_kv_budget(&mut cfg, Some(available), plan_of).unwrap();
    assert_eq!(
        cfg.rollout_kv_budget,
        Some(crate::config::ByteSize::Bytes(u64::MAX))
    );
}

#[test]
fn sizes_parse_with_units_and_refuse_garbage() {
    assert_eq!(parse_size("141GB").unwrap(), 141_000_000_000);
    assert_eq!(parse_size("80GiB").unwrap(), 80 << 30);
    assert_eq!(parse_size("512 MiB").unwrap(), 512 << 20);
    assert_eq!(parse_size("1024").unwrap(), 1024);
    assert!(parse_size("lots").is_err() && parse_size("3XB").is_err());
}
