"""Agreement fixture for the math answer checker (issue 19 item 12): math-verify 0.9.0's verdicts.

Writes tests/fixtures/answer_agreement.jsonl, one JSON object per line:
  gold        the gold answer as `intuitor check-answer --gold` receives it (a bare MATH500 answer
              such as `\\frac{14}{3}`, or an issue-19 string)
  prediction  a model-output-like string (`The answer is $\\boxed{...}$.`, `Final Answer: ...`, ...)
  kind        `eq/<rewrite>` (meant to be equivalent), `ne/<rewrite>` (a near miss, meant not to
              be) or `issue19/<item>` (the example strings of issue 19, items 1-11)
  wrap        how the rewritten value was put into the prediction (`boxed_sentence`, `final`,
              `dollar`, `display`, `plain_sentence`, `bare`; `literal` for issue strings)
  mathverify  math-verify's verdict, true or false (the reference; `kind` is only our intention)
  mv_extracted  the string math-verify extracted from the prediction, or null when it extracted
              nothing (then its `false` says it could not read the prediction, not that the
              answers differ; tests/answer_agreement.rs reports those pairs apart)

Material: every one of the 500 MATH500 gold answers (../shared/data/math/math500_test.jsonl, the
`answer` field; test-split answers used only as gold strings) against rewritings of itself:
equivalent ones (the same value in another wrapper, `\\dfrac`/`\\frac`/`\\tfrac`, `\\frac12`,
`a/b`, fraction <-> decimal, unreduced fractions, spacing, units such as `\\text{ cm}`, degree
signs, `x = ` prefixes, thousands separators, sets/lists in another order or in braces, sums in
another order, `\\sqrt` forms, `\\left( \\right)`, matrix environments, mixed numbers, base
subscripts, sympy's own LaTeX of the parsed value, expanded / factored polynomials) and near misses
(off by one in one number, wrong sign, swapped tuple entries, reciprocal fraction, decimal rounded
to 2 places, x10, a dropped or extra element, interval openness, a renamed variable, a dropped
`\\pi`, one root of `\\pm`, another text answer). Integer golds (311 of 500) get a seeded random
subset of their rewritings so they do not dominate. Deterministic: one seeded `random.Random`,
golds in file order.

Reference verdict, as math-verify's README shows it (`from math_verify import parse, verify`;
"Order here is important!"): `verify(parse(gold), parse(prediction))` with every default
(parse: LatexExtractionConfig + ExprExtractionConfig, extraction_mode="any_match",
fallback_mode="first_match", parsing_timeout=5; verify: float_rounding=6, numeric_precision=15,
strict=True, timeout_seconds=5). The README notes that LaTeX "must be placed in latex environment
to be parsable", so a bare gold is wrapped as `$gold$` before parse (a gold that already has
an unescaped `$`, or `\\[`, `\\(` or `\\boxed`, is passed as is); for all 500 MATH500 golds
`$gold$` parses to the same value as `$\\boxed{gold}$` (checked when this was written), while 51
of them do not parse bare.
The prediction is passed to parse unchanged. `intuitor check-answer` gets the unwrapped gold.

Run (Python only at fixture time; tests never need it):
  target/pyref/bin/pip install "math-verify==0.9.0" "antlr4-python3-runtime==4.13.2"
(math-verify's README says `pip install math-verify[antlr4_13_2]`; with 0.9.0 that extra only pins
the ANTLR runtime, which latex2sympy2_extended 1.11.0 already requires (4.9.3-4.13.2), so the pin
is written out here.)
  target/pyref/bin/python scripts/make_answer_agreement.py [out.jsonl]
It also records math-verify's version (and its parser's) in tests/fixtures/VERSIONS.txt.
"""
import datetime
import json
import random
import re
import sys
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import sympy
from latex2sympy2_extended import latex2sympy
from math_verify import parse, verify

ROOT = Path(__file__).resolve().parent.parent
MATH500 = ROOT.parent / "shared" / "data" / "math" / "math500_test.jsonl"
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "answer_agreement.jsonl"
VERSIONS = ROOT / "tests" / "fixtures" / "VERSIONS.txt"
SEED = 20261129
rng = random.Random(SEED)

INT = re.compile(r"-?\d+")
DEC = re.compile(r"-?\d*\.\d+")
FRAC = re.compile(r"(-?)\\[dt]?frac\s*(?:\{(\d+)\}|(\d))\s*(?:\{(\d+)\}|(\d))")


def wrap_gold(g):
    unescaped_dollar = re.search(r"(?<!\\)\$", g)
    return g if unescaped_dollar or any(t in g for t in ("\\[", "\\(", "\\boxed")) else f"${g}$"


def mathverify(gold, pred):
    """math-verify's verdict, and what it extracted from the prediction (its second element,
    the matched string; None when it extracted nothing: its parser needs LaTeX inside a math
    environment, so a bare `\\frac{1}{4}` gives nothing)."""
    p = parse(pred)
    return bool(verify(parse(wrap_gold(gold)), p)), (str(p[1]) if len(p) > 1 else None)


# ---------------------------------------------------------------- how a value sits in a completion
WRAPS = [
    ("boxed_sentence", 40, lambda v: f"So the answer is $\\boxed{{{v}}}$."),
    ("final", 15, lambda v: f"Final Answer: The final answer is ${v}$. I hope it is correct."),
    ("dollar", 15, lambda v: f"${v}$"),
    ("display", 16, lambda v: f"Putting it together,\n\\[\n\\boxed{{{v}}}\n\\]"),
    ("plain_sentence", 7, lambda v: f"The answer is {v}."),
    ("bare", 7, lambda v: v),
]


def pick_wrap():
    name, _, f = rng.choices(WRAPS, weights=[w for _, w, _ in WRAPS])[0]
    return name, f


# ---------------------------------------------------------------- reading a gold
def rational(g):
    """The gold as an exact Fraction when it is a plain integer, decimal or \\frac of integers."""
    s = g.replace(" ", "")
    if INT.fullmatch(s):
        return Fraction(int(s))
    if DEC.fullmatch(s):
        return Fraction(s)
    m = FRAC.fullmatch(s)
    if m:
        num = int(m.group(2) or m.group(3))
        den = int(m.group(4) or m.group(5))
        return Fraction(-num if m.group(1) else num, den)
    return None


def split_top(s, seps=","):
    """Splits at separators outside any bracket; None if brackets do not balance."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(s):
        if s.startswith("\\{", i) or s.startswith("\\left", i):
            depth += 1
        if s.startswith("\\}", i) or s.startswith("\\right", i):
            depth -= 1
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if depth == 0 and c in seps:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
        if depth < 0:
            return None
    if depth != 0:
        return None
    parts.append(cur)
    return [p.strip() for p in parts]


def tuple_parts(g):
    """(a, b, ...) / \\left( a, b \\right) with top-level commas -> (open, parts, close)."""
    s = g.strip()
    m = re.fullmatch(r"(\\left\s*)?([(\[])(.*?)(\\right\s*)?([)\]])", s, re.S)
    if not m:
        return None
    inner = m.group(3)
    parts = split_top(inner)
    if not parts or len(parts) < 2 or any(not p for p in parts):
        return None
    return m.group(2), parts, m.group(5)


def list_parts(g):
    """A bare comma list `1,-2` or a braced set `\\{a, b\\}` -> (parts, braced)."""
    s = g.strip()
    braced = s.startswith("\\{") and s.endswith("\\}")
    inner = s[2:-2] if braced else s
    if not braced and (s[:1] in "([" or "\\!" in s or "{,}" in s):
        return None
    parts = split_top(inner)
    if not parts or len(parts) < 2 or any(not p for p in parts):
        return None
    if not braced and all(INT.fullmatch(p) for p in parts) and all(len(p) == 3 for p in parts[1:]):
        return None  # 58,500 is a number
    return parts, braced


def is_textual(g):
    return "\\text" in g or "\\mbox" in g


def is_numeric_atom(g):
    """Numbers, fractions, radicals, pi: things a unit can sensibly follow."""
    if is_textual(g) or any(t in g for t in (",", "\\pm", "\\$", "\\circ", "_")):
        return False
    return not re.search(r"[a-zA-Z]", re.sub(r"\\(frac|dfrac|tfrac|sqrt|pi)", "", g))


def fmt_frac(fr):
    if fr.denominator == 1:
        return str(fr.numerator)
    sign = "-" if fr < 0 else ""
    return f"{sign}\\frac{{{abs(fr.numerator)}}}{{{fr.denominator}}}"


def terminating(fr):
    d = fr.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def dec_str(fr, places=None):
    if places is None:
        places = 0
        while (fr * 10**places).denominator != 1:
            places += 1
    q = round(fr * 10**places)
    s = f"{abs(q):0{places + 1}d}"
    out = s[: len(s) - places] + ("." + s[len(s) - places :] if places else "")
    return ("-" if q < 0 else "") + out


# ---------------------------------------------------------------- equivalent rewritings
def eq_dfrac(g):
    if "\\dfrac" in g or "\\tfrac" in g:
        return re.sub(r"\\[dt]frac", r"\\frac", g)
    if "\\frac" in g:
        return g.replace("\\frac", rng.choice(["\\dfrac", "\\tfrac"]))
    return None


def eq_frac_shorthand(g):
    if re.search(r"\\[dt]?frac\{\d\}\{\d\}", g):
        return re.sub(r"\\([dt]?frac)\{(\d)\}\{(\d)\}", r"\\\1\2\3", g)
    if re.search(r"\\[dt]?frac\s*\d\d", g) or re.search(r"\\[dt]?frac\s*\d\{", g) or re.search(r"\\[dt]?frac\{\d+\}\d", g):
        s = re.sub(r"\\([dt]?frac)\s*(\d)(\d)", r"\\\1{\2}{\3}", g)
        s = re.sub(r"\\([dt]?frac)\s*(\d)\{", r"\\\1{\2}{", s)
        s = re.sub(r"\\([dt]?frac)\{(\d+)\}(\d)", r"\\\1{\2}{\3}", s)
        return s
    return None


def eq_slash(g):
    r = rational(g)
    if r is None or r.denominator == 1 or "." in g:
        return None
    return f"{r.numerator}/{r.denominator}"


def eq_frac_to_decimal(g):
    r = rational(g)
    if r is None or r.denominator == 1 or "." in g:
        return None
    if terminating(r):
        return dec_str(r)
    return None


def eq_frac_to_decimal_6dp(g):
    r = rational(g)
    if r is None or r.denominator == 1 or "." in g or terminating(r):
        return None
    return dec_str(r, 6)


def eq_decimal_to_frac(g):
    if not DEC.fullmatch(g.replace(" ", "")):
        return None
    return fmt_frac(Fraction(g.replace(" ", "")))


def eq_leading_zero(g):
    s = g.strip()
    if re.fullmatch(r"-?\.\d+", s):
        return s.replace(".", "0.", 1)
    if re.fullmatch(r"-?0\.\d+", s):
        return s.replace("0.", ".", 1)
    return None


def eq_int_decimal(g):
    return f"{g.strip()}.0" if INT.fullmatch(g.strip()) else None


def eq_int_frac(g):
    if not INT.fullmatch(g.strip()):
        return None
    k = rng.choice([2, 3, 4])
    n = int(g)
    return ("-" if n < 0 else "") + f"\\frac{{{abs(n) * k}}}{{{k}}}"


def eq_unreduced(g):
    r = rational(g)
    if r is None or r.denominator == 1 or "." in g:
        return None
    k = rng.choice([2, 3, 5])
    return ("-" if r < 0 else "") + f"\\frac{{{abs(r.numerator) * k}}}{{{r.denominator * k}}}"


def eq_spacing(g):
    if ",\\!" in g or "{,}" in g or re.search(r"\d,\d{3}", g):
        return None
    if " " in g:
        return re.sub(r"\s+", "", g) if "\\text" not in g and "\\mbox" not in g else None
    s = re.sub(r"([=+<>,]|(?<=[\w}])-)", r" \1 ", g)
    s = re.sub(r"\s+", " ", s).strip()
    return s if s != g else None


def eq_units(g):
    if not is_numeric_atom(g) or "\\pi" in g:
        return None
    unit = rng.choice(["\\text{ cm}", "\\text{ inches}", "\\mbox{ meters}", " \\text{ units}", "\\text{ dollars}", " \\text{cm}^2"])
    return g + unit


def eq_drop_units(g):
    m = re.fullmatch(r"(.*?)\s*\\(?:text|mbox)\{\s*(?:cm|inches|cents|degrees|units|dollars|meters)\s*\}(\^2)?", g)
    return m.group(1).strip() if m else None


def eq_dollar_sign(g):
    if g.startswith("\\$"):
        return g[2:]
    if INT.fullmatch(g) and int(g) > 0:
        return None  # an int gold is not known to be money
    return None


def eq_drop_degree(g):
    if "^\\circ" in g:
        return g.replace("^\\circ", "")
    return None


def eq_degree_braced(g):
    if "^\\circ" in g:
        return g.replace("^\\circ", rng.choice(["^{\\circ}", "^\\circ ", "\\,^\\circ"]))
    return None


def eq_x_equals(g):
    if "=" in g or "\\in" in g or is_textual(g):
        return None
    if tuple_parts(g) and g.strip()[0] == "(" and len(tuple_parts(g)[1]) == 2 and "\\infty" not in g and "\\cup" not in g:
        return None  # handled by eq_tuple_assign
    if re.search(r"(?<!\\)[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", g)) and not re.fullmatch(r"[-\d\s+]*i", g.replace(" ", "")) and not re.search(r"\d+i\b", g):
        return None  # has its own variable
    var = rng.choice(["x", "k", "n", "a"])
    return f"{var} = {g}"


def eq_drop_assign(g):
    m = re.fullmatch(r"\s*[a-zA-Z]\s*(=|\\in)\s*(.+)", g)
    return m.group(2).strip() if m else None


def eq_tuple_assign(g):
    t = tuple_parts(g)
    if not t or t[0] != "(" or t[2] != ")" or "\\infty" in g:
        return None
    names = ["x", "y", "z", "w"][: len(t[1])]
    if len(names) < len(t[1]):
        return None
    return f"({', '.join(names)}) = {g}"


def eq_set_reorder(g):
    lp = list_parts(g)
    if not lp:
        return None
    parts, braced = lp
    new = parts[::-1] if rng.random() < 0.5 or len(parts) == 2 else parts[1:] + parts[:1]
    s = ", ".join(new)
    return f"\\{{{s}\\}}" if braced else s


def eq_set_braces(g):
    lp = list_parts(g)
    if not lp:
        return None
    parts, braced = lp
    return ", ".join(parts) if braced else f"\\{{{', '.join(parts)}\\}}"


def eq_thousands(g):
    s = g.strip()
    if INT.fullmatch(s) and abs(int(s)) >= 1000:
        digits = f"{abs(int(s)):,}"
        sep = rng.choice([",", "{,}", ",\\!", ",\\! "])
        return ("-" if s.startswith("-") else "") + digits.replace(",", sep)
    if ",\\!" in s or "{,}" in s:
        return re.sub(r",\\!\s*|\{,\}", "", s)
    if re.fullmatch(r"\d{1,3}(,\d{3})+", s):
        return s.replace(",", "")
    return None


def eq_sqrt_braces(g):
    if re.search(r"\\sqrt\{\d\}", g):
        return re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", g)
    if re.search(r"\\sqrt\d", g):
        return re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", g)
    return None


def eq_sqrt_merge(g):
    m = re.fullmatch(r"(\d+)\s*\\sqrt\{?(\d+)\}?", g.strip())
    if not m:
        return None
    a, b = int(m.group(1)), int(m.group(2))
    return f"\\sqrt{{{a * a * b}}}"


def eq_unrationalized(g):
    m = re.fullmatch(r"\\[dt]?frac\{\\sqrt\{(\d+)\}\}\{(\d+)\}", g.strip())
    if not m or m.group(1) != m.group(2):
        return None
    return f"\\frac{{1}}{{\\sqrt{{{m.group(1)}}}}}"


def eq_cdot(g):
    m = re.fullmatch(r"(-?\d+)\s*(\\sqrt\{?\d+\}?|\\pi)", g.strip())
    if not m:
        return None
    return rng.choice([f"{m.group(1)} \\cdot {m.group(2)}", f"{m.group(2)} \\cdot {m.group(1)}", f"{m.group(1)} \\times {m.group(2)}"])


def eq_pi_forms(g):
    m = re.fullmatch(r"(-?)\\frac\{(\d*)\\pi\}\{(\d+)\}", g.strip())
    if m:
        num = m.group(2) or "1"
        return rng.choice([f"{m.group(1)}\\frac{{{num}}}{{{m.group(3)}}}\\pi", f"{m.group(1)}{num if num != '1' else ''}\\pi/{m.group(3)}"])
    m = re.fullmatch(r"(\d+)\s*\\pi", g.strip())
    if m:
        return f"\\pi {m.group(1)}" if rng.random() < 0.5 else f"{m.group(1)}\\cdot\\pi"
    return None


def eq_left_right(g):
    s = g.strip()
    if "\\left" in s:
        return re.sub(r"\\(left|right)\s*", "", s)
    t = tuple_parts(s)
    if t and "\\cup" not in s:
        return f"\\left{t[0]} {', '.join(t[1])} \\right{t[2]}"
    return None


def eq_commute_sum(g):
    if any(t in g for t in ("=", ",", "\\pm", "\\cup", "\\begin", "\\text", "\\mbox", "_", "<", ">", "\\in")):
        return None
    terms, depth, cur = [], 0, ""
    for i, c in enumerate(g):
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        if depth == 0 and c in "+-" and cur.strip() and not cur.rstrip().endswith("^"):
            terms.append(cur.strip())
            cur = c
        else:
            cur += c
    terms.append(cur.strip())
    if len(terms) < 2:
        return None
    new = terms[1:] + terms[:1] if rng.random() < 0.5 else terms[::-1]
    out = ""
    for t in new:
        t = t.strip()
        if not out:
            out = t[1:].strip() if t.startswith("+") else t
        else:
            out += f" {t[0]} {t[1:].strip()}" if t[0] in "+-" else f" + {t}"
    return out if out.replace(" ", "") != g.replace(" ", "") else None


def eq_text_unwrap(g):
    m = re.fullmatch(r"\\text\{\s*(.*?)\s*\}", g.strip())
    if not m:
        return None
    inner = m.group(1)
    m2 = re.fullmatch(r"\(([A-E])\)", inner)
    if m2 and rng.random() < 0.5:
        return m2.group(1)
    return inner


def eq_mixed_number(g):
    m = re.fullmatch(r"(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}", g.strip())
    if not m:
        return None
    fr = int(m.group(1)) + Fraction(int(m.group(2)), int(m.group(3)))
    return dec_str(fr) if terminating(fr) and rng.random() < 0.5 else fmt_frac(fr)


def eq_base_subscript(g):
    m = re.fullmatch(r"(\d+)_\{?(\d+)\}?", g.strip())
    if not m:
        return None
    return f"{m.group(1)}_{m.group(2)}" if "{" in g else f"{m.group(1)}_{{{m.group(2)}}}"


def eq_matrix_env(g):
    if "\\begin{pmatrix}" not in g:
        return None
    body = g.split("\\begin{pmatrix}")[1].split("\\end{pmatrix}")[0]
    cols = body.split("\\\\")[0].count("&") + 1
    body2 = re.sub(r"(-?)(\d+)/(\d+)", r"\1\\frac{\2}{\3}", body)
    choice = rng.choice(["bmatrix", "array", "fracs"])
    if choice == "bmatrix":
        return f"\\begin{{bmatrix}}{body}\\end{{bmatrix}}"
    if choice == "array":
        return f"\\left[\\begin{{array}}{{{'c' * cols}}}{body}\\end{{array}}\\right]"
    return f"\\begin{{pmatrix}}{body2}\\end{{pmatrix}}" if body2 != body else f"\\begin{{bmatrix}}{body}\\end{{bmatrix}}"


def eq_pm_split(g):
    m = re.fullmatch(r"(.+?)\s*\\pm\s*(.+)", g.strip())
    if not m or "," in g or "\\{" in g:
        return None
    return f"{m.group(1)} + {m.group(2)}, {m.group(1)} - {m.group(2)}"


def eq_interval_inequality(g):
    m = re.fullmatch(r"\(\s*(-?[\d.]+)\s*,\s*\\infty\s*\)", g.strip())
    if m:
        return f"x > {m.group(1)}"
    m = re.fullmatch(r"\(\s*-\\infty\s*,\s*(-?[\d.]+)\s*\]", g.strip())
    if m:
        return f"x \\le {m.group(1)}"
    m = re.fullmatch(r"x \\in (.*)", g.strip())
    return m.group(1) if m else None


SYMPY_OK = re.compile(r"[-+*/^(){}\s\d.a-zA-Z\\]*")
SYMPY_BAD = ("\\text", "\\mbox", "_", "\\circ", "\\$", ",", "\\begin", "\\cup", "\\pm", "=", "\\in", "\\infty", "[", "]", "\\!")


def sympy_expr(g):
    if any(t in g for t in SYMPY_BAD) or not SYMPY_OK.fullmatch(g):
        return None
    if re.search(r"[A-Z]", re.sub(r"\\[a-zA-Z]+", "", g)):
        return None  # latex2sympy lower-cases symbols: 3R^2 would come back as 3 r^{2}
    try:
        e = latex2sympy(g)
    except Exception:
        return None
    if not isinstance(e, sympy.Expr):
        return None
    try:
        return sympy.sympify(str(e))  # latex2sympy keeps products like (-1)*5*i unevaluated
    except Exception:
        return None


def eq_sympy_latex(g):
    e = sympy_expr(g)
    if e is None:
        return None
    s = sympy.latex(e)
    return s if s.replace(" ", "") != g.replace(" ", "") else None


def eq_sympy_expand(g):
    e = sympy_expr(g)
    if e is None or not e.free_symbols:
        return None
    for f in (sympy.expand, sympy.factor):
        s = sympy.latex(f(e))
        if s.replace(" ", "") != sympy.latex(e).replace(" ", "") and s.replace(" ", "") != g.replace(" ", ""):
            return s
    return None


EQ = {name[3:]: f for name, f in globals().copy().items() if name.startswith("eq_")}


# ---------------------------------------------------------------- near misses
def digit_runs(g):
    """Digit runs that are not base subscripts, array specs or exponents of \\circ."""
    runs = [m for m in re.finditer(r"\d+", g) if not re.search(r"_\{?$", g[: m.start()])]
    return [m for m in runs if not re.search(r"\}\^\{?$", g[: m.start()])]  # cm}^2


def ne_off_by_one(g):
    runs = digit_runs(g)
    if not runs:
        return None
    m = runs[-1] if rng.random() < 0.7 else rng.choice(runs)
    n = int(m.group())
    d = 1 if n == 0 or rng.random() < 0.5 else -1
    if n + d == 1 and re.search(r"\\frac\{?$|\^\{?$", g[: m.start()]) is None and g[m.end():m.end() + 1] == "}":
        d = 1  # \frac{..}{1} would be a lone number, still fine, but avoid x^1 == x trivia
    return g[: m.start()] + str(n + d) + g[m.end():]


def ne_wrong_sign(g):
    s = g.strip()
    if is_textual(s) or "," in s or "=" in s or "\\cup" in s or "\\begin" in s or "\\in" in s:
        return None
    if rational(s) == 0:
        return None
    if s.startswith("-") and s[1:2] != "(":
        return s[1:].strip()
    if rational(s) is not None or re.fullmatch(r"[\d\\{}a-z ]+", s):
        return "-" + s
    return f"-({s})"


def ne_swap_tuple(g):
    t = tuple_parts(g)
    if not t or "\\infty" in g or t[1][0].replace(" ", "") == t[1][1].replace(" ", ""):
        return None
    parts = t[1][:]
    parts[0], parts[1] = parts[1], parts[0]
    return f"{t[0]}{', '.join(parts)}{t[2]}"


def ne_interval_openness(g):
    t = tuple_parts(g)
    if not t or len(t[1]) != 2:
        return None
    if not ("\\infty" in g or t[0] != t[2] or "[" in g or "]" in g or "x" in g):
        return None  # a plain (a, b) is also a point; swap covers it
    o = {"(": "[", "[": "("}
    c = {")": "]", "]": ")"}
    if "\\infty" in t[1][0]:
        return g.strip()[:-1] + c[t[2]]
    s = g.strip()
    i = s.index(t[0])
    return s[:i] + o[t[0]] + s[i + 1:]


def ne_reciprocal(g):
    r = rational(g)
    if r is None or r.denominator == 1 or r.numerator in (0, 1, -1) or "." in g:
        return None
    return fmt_frac(1 / r)


def ne_decimal_2dp(g):
    r = rational(g)
    if r is None or r.denominator == 1 or terminating(r) or "." in g:
        return None
    return dec_str(r, 2)


def ne_times_ten(g):
    s = g.strip()
    if INT.fullmatch(s) and s not in ("0", "-0"):
        return s + "0"
    if DEC.fullmatch(s):
        return dec_str(Fraction(s) * 10)
    return None


def ne_drop_element(g):
    lp = list_parts(g)
    if lp:
        parts, braced = lp
        s = ", ".join(parts[:-1])
        return f"\\{{{s}\\}}" if braced else s
    t = tuple_parts(g)
    if t and len(t[1]) >= 3:
        return f"{t[0]}{', '.join(t[1][:-1])}{t[2]}"
    return None


def ne_extra_element(g):
    lp = list_parts(g)
    if not lp:
        return None
    parts, braced = lp
    extra = str(rng.choice([0, 4, -3, 10]))
    if extra in parts:
        extra = "17"
    s = ", ".join(parts + [extra])
    return f"\\{{{s}\\}}" if braced else s


def ne_rename_var(g):
    if is_textual(g) or "\\begin" in g:
        return None
    letters = set(re.findall(r"(?<![\\a-zA-Z])([a-z])(?![a-zA-Z])", re.sub(r"\\[a-zA-Z]+", " ", g))) - {"i", "e"}
    if not letters:
        return None
    v = sorted(letters)[0]
    new = "t" if v != "t" else "s"
    return re.sub(rf"(?<![\\a-zA-Z]){v}(?![a-zA-Z])", new, g)


def ne_drop_pi(g):
    if "\\pi" not in g or g.count("\\pi") > 1:
        return None
    s = g.replace("\\pi", "").strip()
    s = re.sub(r"\{\s*\}", "{1}", s)
    return s if s and s not in "-" else None


def ne_pm_one_root(g):
    m = re.fullmatch(r"(.+?)\s*\\pm\s*(.+)", g.strip())
    if not m or "," in g or "\\{" in g:
        return None
    return f"{m.group(1)} {rng.choice('+-')} {m.group(2)}"


TEXT_SWAP = {"(A)": "(B)", "(B)": "(C)", "(C)": "(D)", "(D)": "(E)", "(E)": "(A)", "east": "west",
             "even": "odd", "odd": "even", "ellipse": "hyperbola", "Evelyn": "Navin", "Navin": "Evelyn"}


def ne_other_text(g):
    m = re.fullmatch(r"\\text\{\s*(.*?)\s*\}", g.strip())
    if not m:
        return None
    inner = m.group(1)
    other = TEXT_SWAP.get(inner) or (inner[::-1] if len(inner) > 2 else None)
    return f"\\text{{{other}}}" if other else None


NE = {name[3:]: f for name, f in globals().copy().items() if name.startswith("ne_")}

# ---------------------------------------------------------------- issue 19, items 1-11, verbatim
ISSUE19 = [
    ("1", "(2, 3)", "The point is $P = (2, 3)$."),
    ("1", "(2, 3)", "We get $(x, y) = (2, 3)$."),
    ("1", "2, 3", "Hence $x = 2, 3$."),
    ("1", "(0, 1)", "The domain is $D = (0, 1)$."),
    ("1", "The point is $P = (2, 3)$.", "The point is $P = (2, 3)$."),
    ("1", "We get $(x, y) = (2, 3)$.", "We get $(x, y) = (2, 3)$."),
    ("2", "12", "Final Answer: The smallest $k$ is 12."),
    ("3", "3,5", "$\\boxed{3}\\boxed{5}$"),
    ("3", "$\\boxed{3,5}$", "$\\boxed{3}\\boxed{5}$"),
    ("3", "$\\boxed{3}\\boxed{5}$", "$\\boxed{3,5}$"),
    ("4", "\\[ \\boxed{45210} \\]", "$\\boxed{45,\\! 210}$"),
    ("4", "45210", "$\\boxed{45,\\! 210}$"),
    ("4", "9500", "The answer is \\boxed{9{,}500}."),
    ("5", "\\text{13}", "13"),
    ("5", "13", "\\text{13}"),
    ("5", "13", "$\\text{13}$"),
    ("6", "11", "$x \\approx 11$"),
    ("6", "$5 = 3a+b$", "$3a+b$"),
    ("6", "$x + y = 4$", "$4$"),
    ("6", "x = 4", "4"),
    ("6", "x = 4", "$4$"),
    ("7", "$2x+4y-3=0$", "$y = -\\frac{1}{2}x + \\frac{3}{4}$"),
    ("8", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "$\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]$"),
    ("8", "\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", "$\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]$"),
    ("9", "(2,5)", "\\{2,5\\}"),
    ("9", "(2,5)", "$\\{2,5\\}$"),
    ("9", "\\{2,5\\}", "$(2,5)$"),
    ("10", "\\frac13", "0.3333"),
    ("10", "\\frac13", "$0.3333$"),
    ("10", "f(x)", "f(y)"),
    ("10", "f(x)", "$f(y)$"),
    ("11", "1/2", "\\frac{1}{2}"),
    ("11", ".1", "0.1"),
    ("11", "10\\%", "10"),
    ("11", "\\$10", "10"),
    ("11", "\\tfrac83", "\\frac{8}{3}"),
    ("11", "1/2", "$\\frac{1}{2}$"),
    ("11", "10\\%", "$10$"),
    ("11", "\\tfrac83", "$\\frac{8}{3}$"),
]


def main():
    golds = [json.loads(line)["answer"] for line in MATH500.read_text().splitlines() if line.strip()]
    assert len(golds) == 500, len(golds)
    rows = []
    for g in golds:
        cands = []
        for table, tag in ((EQ, "eq"), (NE, "ne")):
            for name, f in table.items():
                v = f(g)
                if v is not None and v.strip() and v != g:
                    cands.append((f"{tag}/{name}", v))
        eq = [c for c in cands if c[0].startswith("eq/")]
        ne = [c for c in cands if c[0].startswith("ne/")]
        if INT.fullmatch(g.strip()):
            eq = rng.sample(eq, min(3, len(eq)))
            ne = rng.sample(ne, min(2, len(ne)))
        chosen = [("eq/same", g)] + eq + ne
        for kind, v in chosen:
            wrap, f = pick_wrap()
            rows.append({"gold": g, "prediction": f(v), "kind": kind, "wrap": wrap})
        # the same value in a second, different wrapper
        wrap, f = pick_wrap()
        rows.append({"gold": g, "prediction": f(g), "kind": "eq/same", "wrap": wrap})
    for item, g, p in ISSUE19:
        rows.append({"gold": g, "prediction": p, "kind": f"issue19/{item}", "wrap": "literal"})
    seen, out = set(), []
    for r in rows:
        key = (r["gold"], r["prediction"])
        if key in seen:
            continue
        seen.add(key)
        r["mathverify"], r["mv_extracted"] = mathverify(r["gold"], r["prediction"])
        out.append(r)
    with open(OUT, "w") as fh:
        for r in out:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_true = sum(r["mathverify"] for r in out)
    print(f"wrote {OUT}: {len(out)} pairs, math-verify true {n_true}, false {len(out) - n_true}")

    names = ["math-verify", "latex2sympy2_extended", "sympy", "antlr4-python3-runtime"]
    lines = [l for l in VERSIONS.read_text().splitlines()
             if l.split(" ")[0] not in names + ["answer_agreement.jsonl"]] if VERSIONS.exists() else []
    lines += [f"{n} {version(n)}" for n in names]
    lines.append(f"answer_agreement.jsonl {datetime.date.today().isoformat()}")
    VERSIONS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
