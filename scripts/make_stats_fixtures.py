"""Mann–Whitney U reference values from SciPy for tests/stats.rs.

Run by scripts/make_fixtures.sh; writes tests/fixtures/mannwhitney.json. Each case: two samples
(correct / incorrect self-certainty-like values, some with ties), SciPy's U (of x) and two-sided
asymptotic p-value (tie and continuity corrected), the effect size r = z / sqrt(n) with z the
continuity-corrected normal deviate SciPy uses, and AUROC from sklearn-free pairwise counting.
"""
import json
import sys

import numpy as np
from scipy.stats import mannwhitneyu, norm

rng = np.random.default_rng(20260527)
cases = []
specs = [
    ("separated", rng.normal(14.0, 1.0, 40), rng.normal(13.0, 1.0, 55)),
    ("overlapping", rng.normal(13.0, 1.0, 23), rng.normal(13.1, 1.0, 31)),
    ("ties", np.round(rng.normal(12.0, 1.0, 30), 1), np.round(rng.normal(11.7, 1.0, 25), 1)),
    ("reversed", rng.normal(12.0, 0.5, 12), rng.normal(12.6, 0.5, 17)),
    ("tiny", np.array([1.0, 2.0, 2.0]), np.array([2.0, 3.0])),
]
for name, x, y in specs:
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    res = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    u1 = float(res.statistic)
    n1, n2 = len(x), len(y)
    # SciPy's z for the two-sided test uses max(U1, U2); sign it by the direction of x.
    z_abs = float(norm.isf(res.pvalue / 2)) if res.pvalue < 1 else 0.0
    z = z_abs if u1 >= n1 * n2 / 2 else -z_abs
    pairs = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    cases.append({
        "name": name, "x": x, "y": y, "u": u1, "p_value": float(res.pvalue),
        "effect_size_r": z / np.sqrt(n1 + n2), "auroc": pairs / (n1 * n2),
    })
out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/mannwhitney.json"
with open(out, "w") as f:
    json.dump({"scipy": __import__("scipy").__version__, "cases": cases}, f, indent=1)
print(f"wrote {out}")
