//! Mann–Whitney U, its p-value, effect size and AUROC against SciPy (`mannwhitneyu`, asymptotic,
//! two-sided), from tests/fixtures/mannwhitney.json written by scripts/make_stats_fixtures.py.

use intuitor::eval::stats::mann_whitney;

#[test]
fn mann_whitney_matches_scipy() {
    let text = std::fs::read_to_string("tests/fixtures/mannwhitney.json").unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mw = mann_whitney(&floats(&c["x"]), &floats(&c["y"])).unwrap();
        let want = |k: &str| c[k].as_f64().unwrap();
        assert_eq!(mw.u, want("u"), "{name}: U");
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
        assert!(
            rel(mw.p_value, want("p_value")) < 1e-6,
            "{name}: p {} vs {}",
            mw.p_value,
            want("p_value")
        );
        assert!(
            (mw.effect_size_r - want("effect_size_r")).abs() < 1e-6,
            "{name}: r {} vs {}",
            mw.effect_size_r,
            want("effect_size_r")
        );
        assert!((mw.auroc - want("auroc")).abs() < 1e-12, "{name}: AUROC");
    }
}
