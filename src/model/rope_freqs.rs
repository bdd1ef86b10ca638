//! Llama 3.x RoPE scaling stored the llama.cpp way: its converter writes no `rope_scaling`
//! metadata but a `rope_freqs.weight` tensor of per-frequency divisors (llama.cpp PR #8676,
//! `LlamaModel.generate_extra_tensors` in `convert_hf_to_gguf.py`): inverse frequency `i` is
//! divided by `factors[i]`. This recovers the HF `llama3` parameters those divisors come from,
//! so the model (and a checkpoint written from it) carries HF's own `rope_scaling`.

use super::config::{ModelConfig, RopeScaling};

/// The `llama3` scaling whose inverse frequencies equal `cfg`'s plain ones divided by
/// `factors` (relative error ≤ 1e-5), with llama.cpp's `low_freq_factor` 1 and
/// `high_freq_factor` 4 (every Llama 3.x release); `RopeScaling::None` when every factor is 1.
/// When no frequency falls between the two wavelength bands, any context length in the gap
/// gives the same frequencies; the middle of the gap is taken.
pub fn llama3_from_factors(cfg: &ModelConfig, factors: &[f32]) -> Result<RopeScaling, String> {
    let plain = ModelConfig {
        rope_scaling: RopeScaling::None,
        ..cfg.clone()
    }
    .rope_inv_freq();
    if factors.len() != plain.len() {
        return Err(format!(
            "rope_freqs has {} factors for {} frequencies (head_dim {})",
            factors.len(),
            plain.len(),
            cfg.head_dim
        ));
    }
    if factors.iter().any(|f| !f.is_finite() || *f <= 0.0) {
        return Err("rope_freqs holds a factor that is not a positive number".into());
    }
    let factor = factors.iter().copied().fold(1.0f32, f32::max) as f64;
    if factor <= 1.0 + 1e-6 {
        return Ok(RopeScaling::None);
    }
    let (low, high) = (1.0, 4.0);
    let wavelength = |i: usize| 2.0 * std::f64::consts::PI / plain[i] as f64;
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
    // In the medium band 1/f = (1 − s)/factor + s with s = (old/λ − low)/(high − low).
    let medium = (0..factors.len()).find(|&i| {
        let f = factors[i] as f64;
        !near(f, 1.0) && !near(f, factor)
    });
    let old = match medium {
        Some(i) => {
            let s = (1.0 / factors[i] as f64 - 1.0 / factor) / (1.0 - 1.0 / factor);
            (s * (high - low) + low) * wavelength(i)
        }
        None => {
            let top = (0..factors.len())
                .filter(|&i| near(factors[i] as f64, 1.0))
                .map(wavelength)
                .fold(0.0, f64::max);
            let bottom = (0..factors.len())
                .filter(|&i| near(factors[i] as f64, factor))
                .map(wavelength)
                .fold(f64::INFINITY, f64::min);
            // Frequencies with factor 1 need λ < old/high; those with `factor` need λ > old/low.
            (high * top + low * bottom) / 2.0
        }
    };
    let scaling = RopeScaling::Llama3 {
        factor,
        low_freq_factor: low,
        high_freq_factor: high,
        original_max_position_embeddings: old,
    };
    let scaled = ModelConfig {
        rope_scaling: scaling.clone(),
        ..cfg.clone()
    }
    .rope_inv_freq();
    let matches = plain
        .iter()
        .zip(factors)
        .zip(&scaled)
        .all(|((p, f), s)| near((*s as f64) / (*p as f64), 1.0 / *f as f64));
    match matches {
        true => Ok(scaling),
        false => Err(format!(
            "rope_freqs factors {factors:?} are not a llama3 scaling (low_freq_factor 1, high_freq_factor 4)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama31(head_dim: usize, scaling: RopeScaling) -> ModelConfig {
        ModelConfig {
            model_type: "llama".into(),
            hidden_size: head_dim * 4,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 4,
            num_key_value_heads: 4,
            head_dim,
            vocab_size: 8,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            rope_scaling: scaling,
            attention_bias: false,
            tie_word_embeddings: true,
            max_position_embeddings: 131_072,
        }
    }

    /// Llama 3.1's own parameters (medium-band frequencies present) come back from the
    /// divisors llama.cpp would store; divisors of 1 mean plain RoPE; others are refused.
    #[test]
    fn llama31_parameters_come_back_from_their_divisors() {
        let real = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        let plain = llama31(128, RopeScaling::None).rope_inv_freq();
        let scaled = llama31(128, real).rope_inv_freq();
        let factors: Vec<f32> = plain.iter().zip(&scaled).map(|(p, s)| p / s).collect();
        assert!(
            factors.iter().any(|&f| f > 1.01 && f < 7.99),
            "a medium band"
        );
        match llama3_from_factors(&llama31(128, RopeScaling::None), &factors).unwrap() {
            RopeScaling::Llama3 {
                factor,
                original_max_position_embeddings: old,
                ..
            } => {
                assert_eq!(factor, 8.0);
                assert!((old - 8192.0).abs() < 1.0, "{old}");
            }
            other => panic!("{other:?}"),
        }
        let cfg = llama31(128, RopeScaling::None);
        assert_eq!(llama3_from_factors(&cfg, &[1.0; 64]), Ok(RopeScaling::None));
        let mut odd = factors.clone();
        odd[0] = 3.0;
        assert!(llama3_from_factors(&cfg, &odd).is_err());
        assert!(llama3_from_factors(&cfg, &factors[..10]).is_err());
    }
}
