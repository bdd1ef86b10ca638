//! Issue 17: a rollout's memory is bounded by its KV budget. `intuitor generate` samples 128
//! completions of 24 tokens on the default model with a budget for 16 of them at a time; its
//! peak RSS stays within the budget plus a stated margin of the same process sampling a single
//! token, while the unbounded rollout's KV cache alone (141 MB) would not fit that bound.

use std::process::{Command, Stdio};

/// Runs `intuitor generate ARGS` on the default model and returns its peak RSS in bytes
/// (`wait4`'s resource usage of that child alone).
fn peak_rss(args: &[&str]) -> u64 {
    // Reaped by wait4 below, which std's `wait` cannot replace (it reports no usage).
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .args([
            "generate",
            "--raw",
            "--prompt",
            "Once upon a time, in a small village by the sea, there lived",
            "--temperature",
            "0.8",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4(2) on our own child, which std never reaps.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "generate {args:?} failed (status {status}); is the default model fetched?"
    );
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_kv_budget_bounds_the_rollouts_memory() {
    const MIB: u64 = 1 << 20;
    // SmolLM2-135M: 30 layers × K and V × 3 KV heads × 64 × 4 bytes a position.
    let per_position = 30 * 2 * 3 * 64 * 4;
    let prompt = 13; // tokens of the prompt above
    let unbounded_kv = (128 * 24 + prompt) * per_position;
    let budget = 19 * MIB;
    let margin = 40 * MIB;
    assert!(
        budget + margin < unbounded_kv,
        "the bound must be able to fail"
    );
    let base = peak_rss(&["--n", "1", "--max-new-tokens", "1"]);
    let bounded = peak_rss(&[
        "--n",
        "128",
        "--max-new-tokens",
        "24",
        "--kv-budget",
        "19MiB",
    ]);
    assert!(
        bounded <= base + budget + margin,
        "peak RSS {} MiB with a 19 MiB budget; one token: {} MiB; margin {} MiB (the unbounded KV cache alone is {} MiB)",
        bounded / MIB,
        base / MIB,
        margin / MIB,
        unbounded_kv / MIB
    );
}
