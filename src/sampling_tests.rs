//! Tests of `sampling.rs`: each warper against HF's rule, and the candidate paths against
//! sampling from the full row.

use super::*;
use rand::SeedableRng;

fn kept(logits: &[f32], p: SamplingParams) -> Vec<usize> {
    let mut ids: Vec<usize> = kept_distribution(logits, &p)
        .unwrap()
        .iter()
        .map(|&(i, _)| i as usize)
        .collect();
    ids.sort();
    ids
}

fn params() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repetition_penalty: 1.0,
    }
}

// Probabilities 0.1, 0.2, 0.3, 0.4 (logits are their logs).
fn probs_1234() -> Vec<f32> {
    [0.1f32, 0.2, 0.3, 0.4].iter().map(|p| p.ln()).collect()
}

#[test]
fn top_k_keeps_exactly_the_k_largest_and_ties_at_the_boundary() {
    let z = [1.0, 5.0, 3.0, 3.0, 0.0];
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                top_k: 2,
                ..params()
            }
        ),
        vec![1, 2, 3]
    );
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                top_k: 1,
                ..params()
            }
        ),
        vec![1]
    );
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    let z = probs_1234();
    // 0.4 < 0.5 so 0.4 + 0.3 is needed.
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                top_p: 0.5,
                ..params()
            }
        ),
        vec![2, 3]
    );
    // 0.4 + 0.3 + 0.2 = 0.9 ≥ 0.85; 0.1 ≤ 0.15 is removed.
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                top_p: 0.85,
                ..params()
            }
        ),
        vec![1, 2, 3]
    );
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                top_p: 0.01,
                ..params()
            }
        ),
        vec![3]
    );
}

#[test]
fn min_p_removes_tokens_below_the_scaled_maximum() {
    let z = probs_1234();
    // threshold 0.45 · 0.4 = 0.18: 0.1 goes, 0.2 stays.
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                min_p: 0.45,
                ..params()
            }
        ),
        vec![1, 2, 3]
    );
    assert_eq!(
        kept(
            &z,
            SamplingParams {
                min_p: 0.9,
                ..params()
            }
        ),
        vec![3]
    );
}

#[test]
fn kept_probabilities_are_renormalised_and_tempered() {
    let z = probs_1234();
    let d = kept_distribution(
        &z,
        &SamplingParams {
            top_k: 2,
            ..params()
        },
    )
    .unwrap();
    assert_eq!(d.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3, 2]);
    assert!((d[0].1 - 4.0 / 7.0).abs() < 1e-6 && (d[1].1 - 3.0 / 7.0).abs() < 1e-6);
    // T = 0.5 squares the odds: 0.4² : 0.3² = 16 : 9.
    let d = kept_distribution(
        &z,
        &SamplingParams {
            top_k: 2,
            temperature: 0.5,
            ..params()
        },
    )
    .unwrap();
    assert!((d[0].1 - 16.0 / 25.0).abs() < 1e-5, "{d:?}");
}

#[test]
fn greedy_takes_the_first_maximum() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    assert_eq!(
        sample(&[0.0, 2.0, 2.0], &[], &SamplingParams::greedy(), &mut rng).unwrap(),
        1
    );
}

#[test]
fn repetition_penalty_follows_hf_sign_rule() {
    let mut z = vec![2.0, -2.0, 1.0];
    apply_repetition_penalty(&mut z, &[0, 1], 2.0);
    assert_eq!(z, vec![1.0, -4.0, 1.0]);
}

#[test]
fn sampling_frequencies_follow_the_distribution() {
    let z = probs_1234();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut counts = [0usize; 4];
    for _ in 0..20_000 {
        counts[sample(&z, &[], &params(), &mut rng).unwrap() as usize] += 1;
    }
    for (i, &c) in counts.iter().enumerate() {
        let f = c as f64 / 20_000.0;
        assert!((f - 0.1 * (i + 1) as f64).abs() < 0.015, "token {i}: {f}");
    }
}

#[test]
fn a_row_without_a_finite_logit_is_an_error_and_non_finite_logits_are_never_kept() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = sample(&[bad; 5], &[], &params(), &mut rng).unwrap_err();
        assert!(err.to_string().contains("no finite logit"), "{err}");
    }
    assert!(!all_finite(&[0.0, f32::NAN]) && all_finite(&[0.0, -1e30]));
    // One finite logit among NaN and ±inf: it is the only token kept.
    let z = [f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY];
    assert_eq!(kept(&z, params()), vec![1]);
    // A NaN does not take a top-k place.
    let z = [f32::NAN, 1.0, 3.0, 2.0];
    let top2 = SamplingParams {
        top_k: 2,
        ..params()
    };
    assert_eq!(kept(&z, top2), vec![2, 3]);
}

/// A row's head decides a draw exactly when [`sample`] on the full row lands in it, and
/// then draws the same token with the same use of the RNG; otherwise it leaves the RNG as
/// it was.
#[test]
fn the_head_of_a_row_decides_the_draws_that_fall_on_it() {
    // 1000 logits: a few large ones, then a long flat tail.
    let z: Vec<f32> = (0..1000)
        .map(|i| match i % 97 {
            0 => 4.0 - (i / 97) as f32 * 0.3,
            _ => ((i as f32) * 0.37).sin(),
        })
        .collect();
    let mut sorted: Vec<(u32, f32)> = z.iter().enumerate().map(|(i, &v)| (i as u32, v)).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let head = &sorted[..HEAD_CANDIDATES];
    let settings = [
        (params(), "all kept"),
        (
            SamplingParams {
                top_p: 0.3,
                ..params()
            },
            "top-p",
        ),
        (
            SamplingParams {
                min_p: 0.5,
                ..params()
            },
            "min-p",
        ),
        (
            SamplingParams {
                min_p: 0.01,
                ..params()
            },
            "min-p past the head",
        ),
        (
            SamplingParams {
                temperature: 0.7,
                top_p: 0.5,
                min_p: 0.05,
                ..params()
            },
            "both",
        ),
    ];
    for (p, name) in settings {
        let t = p.temperature as f64;
        let max = z.iter().copied().fold(f32::MIN, f32::max) as f64;
        let sum: f64 = z.iter().map(|&v| (v as f64 / t - max / t).exp()).sum();
        let lse_t = (max / t + sum.ln()) as f32;
        let (mut decided, mut passed) = (0, 0);
        for seed in 0..400u64 {
            let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut b = a.clone();
            let want = sample(&z, &[], &p, &mut a).unwrap();
            match sample_from_head(head, lse_t, &p, &mut b) {
                Some((token, logit)) => {
                    decided += 1;
                    assert_eq!(token, want, "{name}, seed {seed}");
                    assert_eq!(logit, z[token as usize]);
                    assert_eq!(a.random::<u64>(), b.random::<u64>(), "{name}: RNG");
                }
                None => {
                    passed += 1;
                    // The head's smallest value is left out (ties may continue past it).
                    let decisive = &head[..HEAD_CANDIDATES - 1];
                    assert!(decisive.iter().all(|e| e.0 != want) || name != "all kept");
                    let mut fresh = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                    assert_eq!(
                        fresh.random::<u64>(),
                        b.random::<u64>(),
                        "{name}: untouched"
                    );
                }
            }
        }
        match name {
            // The head holds part of the mass: both outcomes occur.
            "all kept" => assert!(decided > 50 && passed > 50, "{decided} / {passed}"),
            // The kept set lies in the head: every draw is decided.
            "top-p" | "min-p" | "both" => assert_eq!(passed, 0, "{name}"),
            // Every head token is above min-p: the kept set may go past the head.
            _ => assert_eq!(decided, 0, "{name}"),
        }
    }
}

#[test]
fn settings_out_of_range_are_named() {
    let ok = SamplingParams::default();
    assert_eq!(ok.check(), Ok(()));
    for (bad, key) in [
        (
            SamplingParams {
                temperature: f32::NAN,
                ..ok
            },
            "temperature",
        ),
        (
            SamplingParams {
                temperature: -1.0,
                ..ok
            },
            "temperature",
        ),
        (SamplingParams { top_p: 1.5, ..ok }, "top_p"),
        (SamplingParams { min_p: 2.0, ..ok }, "min_p"),
        (
            SamplingParams {
                repetition_penalty: 0.0,
                ..ok
            },
            "repetition_penalty",
        ),
        (
            SamplingParams {
                repetition_penalty: f32::INFINITY,
                ..ok
            },
            "repetition_penalty",
        ),
    ] {
        assert_eq!(bad.check().unwrap_err().0, [key]);
    }
    let flag = SamplingParams { min_p: 2.0, ..ok }
        .check_flags()
        .unwrap_err();
    assert_eq!(flag, "--min-p must be in [0, 1], got 2");
}

/// The most likely token always stays (HF's `min_tokens_to_keep`), also when min-p would
/// remove every token or a tiny temperature overflows z / T; neither sampler panics.
#[test]
fn the_most_likely_token_always_stays() {
    let z = probs_1234();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for p in [
        SamplingParams {
            min_p: 1.0,
            ..params()
        },
        SamplingParams {
            temperature: 1e-39,
            ..params()
        },
        SamplingParams {
            temperature: 1e-39,
            min_p: 0.5,
            top_p: 0.5,
            ..params()
        },
    ] {
        assert_eq!(kept(&z, p), vec![3], "{p:?}");
        assert_eq!(sample(&z, &[], &p, &mut rng).unwrap(), 3, "{p:?}");
        let candidates: Vec<(u32, f32)> =
            z.iter().enumerate().map(|(i, &v)| (i as u32, v)).collect();
        let lse_t = z
            .iter()
            .map(|&v| (v / p.temperature).exp())
            .sum::<f32>()
            .ln();
        // The head either decides the top token or leaves the draw to the full row.
        if let Some((token, _)) = sample_from_head(&candidates, lse_t, &p, &mut rng) {
            assert_eq!(token, 3, "{p:?}");
        }
    }
}
