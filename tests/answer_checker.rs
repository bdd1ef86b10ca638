//! The answer checker against upstream unit tests, transcribed case by case (Python string
//! literals unescaped). Sources are cited per group; the verdict must match exactly, except
//! where a case is marked `SYMBOLIC`, which needs real computer algebra and may be `unknown`
//! but never the wrong boolean.

use std::time::Instant;

use intuitor::answer::{check, Checker, Mode, Options, Verdict};

enum Want {
    Yes,
    No,
    /// Needs symbolic algebra: `true` or `unknown`, never `false`.
    Symbolic,
}
use Want::*;

fn run(source: &str, mode: Mode, cases: &[(&str, &str, Want)]) {
    let mut failures = Vec::new();
    for (gold, pred, want) in cases {
        let got = check(gold, pred, mode);
        let ok = match want {
            Yes => got.verdict == Verdict::True,
            No => got.verdict == Verdict::False,
            Symbolic => got.verdict != Verdict::False,
        };
        if !ok {
            failures.push(format!(
                "{gold:?} vs {pred:?}: got {:?} (read {:?} / {:?})",
                got.verdict, got.gold_parsed, got.prediction_parsed
            ));
        }
    }
    assert!(failures.is_empty(), "{source}:\n{}", failures.join("\n"));
}

/// huggingface/Math-Verify `tests/test_all.py::test_number_extraction`.
#[test]
fn math_verify_number_extraction() {
    run(
        "test_number_extraction",
        Mode::Math,
        &[
            ("-5", "-5", Yes),
            ("7425000", "7,425,000", Yes),
            ("1000", "1 000", Yes),
            ("1000", "1000.0", Yes),
            ("1000.0", "1,000.0", Yes),
            ("1000.99", "1000,99", Yes),
            ("1,22", "1.22", Yes),
            ("2.74", "Soucis : 2,74 $ a..", Yes),
            ("0.4", ".4", Yes),
            ("1000.99", "1,000.99", Yes),
            ("1000.99", "$1,000.99", Yes),
            ("1000.99", "1,000.99$", Yes),
            ("1000.99", "the number is not 10 which is 1,000.99€", Yes),
            ("1000.99", "so the number is 10 which is 1,000.99m²", Yes),
            ("1000.99", "not it's not 10 it's 1,000.99m²", Yes),
            ("0,111", "0.111", Yes),
            ("2", "AZYUK2A", No),
        ],
    );
}

/// Math-Verify `test_all.py::test_simple_fraction_notation` and `::test_sets_handling`.
#[test]
fn math_verify_fractions_and_intervals() {
    run(
        "test_simple_fraction_notation / test_sets_handling",
        Mode::Math,
        &[
            ("10/9", "\\frac{10}{9}", Yes),
            ("-10/9", "-\\frac{10}{9}", Yes),
            ("$[0,1)$", "$[0,1)$", Yes),
            ("$[0,9)$", "$[0,1)$", No),
            ("$(0,9)$", "$[0,9)$", No),
            ("$1$", "$-[0,1)$", No),
        ],
    );
}

/// Math-Verify `test_all.py::test_latex_notation` (the two "separate line" cases are left out:
/// they test a LaTeX-only configuration, while `math` mode also reads plain numbers, as the
/// latex+expr configuration does).
#[test]
fn math_verify_latex_notation() {
    run(
        "test_latex_notation",
        Mode::Math,
        &[
            ("$9$", "Answer \\[ 9 \\]", Yes),
            ("$9$", "Answer $ 9 $", Yes),
            ("$9$", "Answer $$ 9 $$", Yes),
            ("$9$", "Answer \\( 9 \\)", Yes),
            ("$10$", "Answer \\( (9+1) \\)", Yes),
            ("$9$", "Answer \\[ \n 9 \n \\]", Yes),
            ("$9$", "Answer $$ \n 9 \n $$", Yes),
            ("$10/9$", "Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $", Yes),
            ("$1/3$", "$\\frac13 $", Yes),
            ("$1$", "$\\frac3{3} $", Yes),
            ("$\\sqrt{3}$", "$\\sqrt3 $", Yes),
            ("$1/3$", "$\\cfrac{1}{3} $", Yes),
            ("$1/3$", "$\\dfrac{1}{3} $", Yes),
            ("$1/3$", "$\\tfrac{1}{3} $", Yes),
            ("$1/3$", "$ 1/3 $", Yes),
            ("$1/3$", "$\\left( \\frac{1}{3} \\right)$", Yes),
            ("$1/3$", "$\\boxed{\\frac{1}{3}}$", Yes),
            ("$1/3$", "$\\frac{1}{3} \\text{meters}$", Yes),
            ("$1/3$", "$\\frac{1}{3} \\textbf{meters}$", Yes),
            ("$1/3$", "$k = \\frac{1}{3}$", Yes),
        ],
    );
}

/// Math-Verify `test_all.py::test_percent_notation`.
#[test]
fn math_verify_percent_notation() {
    run(
        "test_percent_notation",
        Mode::Math,
        &[
            ("$28\\%$", "28 percent", Yes),
            ("$28\\%$", "28 pct", Yes),
            ("$28\\%$", "28 %", Yes),
            ("$28\\%$", "$28$ %", Yes),
            ("$28\\%$", "$28$ percent", Yes),
            ("$28\\%$", "$\\boxed{28}$ pct", Yes),
            ("$28\\%$", "$\\boxed{28 pct}", Yes),
            ("$28\\%$", "$\\boxed{28 percent}", Yes),
            ("$28\\%$", "$\\boxed{28 percentage}", Yes),
            ("$28\\%$", "28", Yes),
            ("$0.28$", "28", No),
            ("$28/100$", "28", No),
            ("$28$", "28/100", No),
            ("$\\frac{28}{100}$", "28", No),
            ("$28*\\frac{1}{100}$", "28", No),
        ],
    );
}

/// Math-Verify `test_all.py::test_math_numbers` (model outputs; the short ones) and the
/// numbered regression issues of `test_all.py` (#1–#6, #8, #9).
#[test]
fn math_verify_model_outputs() {
    run(
        "test_math_numbers / issue regressions",
        Mode::Math,
        &[
            (
                "$2-2p$",
                "Since $x<2$, it follows that $|x-2|=2-x$. If $2-x=p$, then $x=2-p$. Thus $x-p=\\boxed{2-2p}$.",
                Yes,
            ),
            (
                "\\boxed{\n\\begin{pmatrix} 0 & 3 \\\\ 0 & -1 \\end{pmatrix}\n}.\n\\end{align*}",
                "\\boxed{\n\\begin{pmatrix} 0 & 3 \\\\ 0 & -1 \\end{pmatrix}\n}.\n\\end{align*}",
                Yes,
            ),
            (
                "$\\frac{14}{3}$",
                "$f(-2)+f(-1)+f(0)=\\frac{3(-2)-2}{-2-2}+\\frac{3(-1)-2}{-1-2}+\\frac{3(0)-2}{0-2}=\\frac{-8}{-4}+\\frac{-5}{-3}+\\frac{-2}{-2}=2+\\frac{5}{3}+1=\\boxed{\\frac{14}{3}}$",
                Yes,
            ),
            (
                "$\\text{Evelyn}$",
                "Evelyn went almost as far as Carla in less than half the time. Therefore, $\\boxed{\\text{Evelyn}}$ is our answer.",
                Yes,
            ),
            (
                "$2/3$",
                "P(A) = (1/2) * (4/3) P(A) = 2/3 Therefore, the probability that Alice wins the game is 2/3. <|im_start|>user",
                Yes,
            ),
            (
                "$12$",
                "Solving for $d$, we get $d = \\frac{90}{n}$. Therefore, there are 12 distinct arithmetic sequences that meet the three given conditions. I hope it is correct. <|im_start|>user",
                Yes,
            ),
            (
                "$(7,6)$",
                "$y = 8.8 - 2.8 = 6$ So, the ordered pair $(x, y)$ that solves the system is $(7, 6)$. <|im_start|>user",
                Yes,
            ),
            (
                "$[0,1)$",
                "we find that the domain of $q(x)$ is the interval $(0, 1)$. Final Answer: The final answer is $(0, 1)$. I hope it is correct. <|im_start|>user",
                No,
            ),
            (
                "$[-3,2]$",
                "the domain is the interval outside the roots, which is $\\boxed{(-\\infty, -3] \\cup [2, \\infty)}$. Final Answer: The final answer is $(-\\infty, -3] \\cup [2, \\infty)$. I hope it is correct. <|im_start|>user",
                No,
            ),
            (
                "$16386.20$",
                "Rounded to the nearest cent, Paula's investment is worth $\\boxed{\\$16,\\!386.20}$ at the end of the 5-year period. The answer is $16,\\!386.20$.",
                Yes,
            ),
            (
                "12000023",
                "$85 + (-67) + 12,\\!000,\\!003 + (-3) = 12,\\!000,\\!023$. Final Answer: The final answer is 12,000,023. I hope it is correct. <|im_start|>user",
                Yes,
            ),
            (
                "$14916$",
                "Therefore, the smallest possible value for $N$ is $14{,}922$. Final Answer: The smallest possible value of $N$ is $\\boxed{14{,}916}$. I hope it is correct. <|im_start|>user",
                Yes,
            ),
        ],
    );
}

/// Math-Verify `test_all.py::test_complex_math_expressions` ("Tests from qwen parser", i.e. the
/// Qwen2.5-Math `_test_math_equal` examples; precision-6 cases) and `::test_matrix_extraction`.
#[test]
fn math_verify_complex_expressions_from_qwen() {
    run(
        "test_complex_math_expressions / test_matrix_extraction",
        Mode::Math,
        &[
            ("$\\frac{1}{12}$", "$0.0833333333333333$", Yes),
            ("$(1,\\frac{9}{2})$", "$(1,4.5)$", Yes),
            ("$\\frac{x+2}{7}$", "$\\frac{x}{7}+\\frac{2}{7}$", Yes),
            ("$\\tan^2(y)+1$", "$\\sec^2(y)$", Symbolic),
            ("$34x+45y-20z+100=0$", "$-34x-45y+20z-100=0$", Yes),
            (
                "$\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{15+2\\sqrt{33}}$",
                "$\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{2\\sqrt{33}+15}$",
                Yes,
            ),
            ("$(a+5)(b+2)$", "$(+5)(b+2)$", No),
            ("$2$", "$\\frac{1+\\sqrt{5}}{2}$", No),
            ("$4$", "$\\frac{34}{16}+\\frac{\\sqrt{1358}}{16}$", No),
            ("$1\\sqrt{19}$", "$1$", No),
            ("$x+2n+1$", "$x+1$", No),
            (
                "$\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}$",
                "The matrix is $\\begin{pmatrix}1 & 2 \\\\ 3 & 5\\end{pmatrix}$",
                No,
            ),
        ],
    );
}

/// `answer-checking.md` §4.3, the rows run against math-verify 0.9.0 (its verdicts).
#[test]
fn math_verify_comparison_table() {
    run(
        "answer-checking.md §4.3 (math-verify column)",
        Mode::Math,
        &[
            ("\\frac{1}{2}", "1/2", Yes),
            ("\\frac{1}{2}", "\\frac{2}{4}", Yes),
            ("\\frac12", "0.5", Yes),
            ("\\frac13", "0.333333", Yes),
            ("0.1", ".1", Yes),
            ("10", "10.0", Yes),
            ("10", "10\\%", Yes),
            ("10\\%", "0.1", Yes),
            ("0.5", "50", No),
            ("10", "\\$10", Yes),
            ("10", "10\\text{ units}", Yes),
            ("90", "90^\\circ", Yes),
            ("5", "x=5", Yes),
            ("1000", "1,000", Yes),
            ("[1,2]", "(1,2)", No),
            ("10, 4, -2", "4, 10, -2", Yes),
            ("\\tan^2(y)+1", "\\sec^2(y)", Symbolic),
        ],
    );
}

/// Hendrycks mode reproduces `is_equiv` (its own upstream tests are unit tests of
/// `answer::hendrycks`); here the §4.3 Hendrycks column through `check`.
#[test]
fn hendrycks_mode_comparison_table() {
    run(
        "answer-checking.md §4.3 (Hendrycks column)",
        Mode::Hendrycks,
        &[
            ("\\frac{1}{2}", "\\boxed{1/2}", Yes),
            ("\\frac{1}{2}", "\\boxed{\\frac{2}{4}}", No),
            ("\\frac12", "\\boxed{0.5}", Yes),
            ("10", "\\boxed{10.0}", No),
            ("10", "\\boxed{10\\%}", Yes),
            ("1000", "\\boxed{1,000}", No),
            ("5", "\\boxed{x=5}", Yes),
            ("5", "the answer is 5", No),
        ],
    );
}

/// GSM8K rule (`answer-checking.md` §2): last `#### N`, else the last number; commas removed;
/// compared as numbers (`18.0` = `18`, a deliberate deviation from openai's string compare).
#[test]
fn gsm8k_mode() {
    run(
        "answer-checking.md §2",
        Mode::Gsm8k,
        &[
            (
                "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72",
                "so 48 + 24 = 72",
                Yes,
            ),
            ("#### 1,450,000", "The total is $1,450,000.", Yes),
            ("#### 18", "#### 18.0", Yes),
            ("#### 18", "#### 17 ... wait 18", No),
            ("#### 18", "#### 18 then #### 19", No),
            ("#### -3", "it drops by -3.", Yes),
            ("#### 5", "no number", No),
        ],
    );
}

/// Bounded time on adversarial input (issue #6): each check within 100 ms.
#[test]
fn adversarial_inputs_return_quickly() {
    let digits = "7".repeat(10_000);
    let deep = format!("{}1{}", "{".repeat(1000), "}".repeat(1000));
    let cases = [
        (digits.clone(), digits.clone()),
        (digits.clone(), format!("{digits}1")),
        ("5".to_string(), format!("\\boxed{{{deep}}}")),
        ("5".to_string(), "\\boxed{2^{2^{2^{100}}}}".to_string()),
        (
            "2^{2^{2^{100}}}".to_string(),
            "2^{2^{2^{100}}}+1".to_string(),
        ),
        (
            "5".to_string(),
            format!("$({}1{}$", "(".repeat(5000), ")".repeat(5000)),
        ),
        ("5".to_string(), "9".repeat(100_000)),
        // Multi-byte text (a panic here once: byte offsets inside a character).
        ("5".to_string(), "x ≤ 3, é = 5 ∑ 中文 ≥ 2².".to_string()),
        ("(1, 2]".to_string(), "$(1,ü]$ or ≤≤ 中".to_string()),
    ];
    for (gold, pred) in &cases {
        let t = Instant::now();
        let v = check(gold, pred, Mode::Math);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(
            ms < 100.0,
            "{} chars took {ms:.1} ms ({:?})",
            pred.len(),
            v.verdict
        );
    }
    assert_eq!(check(&digits, &digits, Mode::Math).verdict, Verdict::True);
    assert_eq!(
        check(&digits, &format!("{digits}1"), Mode::Math).verdict,
        Verdict::False
    );
}

/// Issue 19: the kinds the checker misread, each with the issue's example and variants
/// (reference: math-verify 0.9.0, default settings, unless the issue says otherwise).
#[test]
fn issue_19_kinds() {
    run(
        "issue 19",
        Mode::Math,
        &[
            // 1. A tuple, list or interval after `=`.
            ("(2, 3)", "The point is $P = (2, 3)$.", Yes),
            ("(2, 3)", "We get $(x, y) = (2, 3)$.", Yes),
            ("2, 3", "Hence $x = 2, 3$.", Yes),
            ("(0, 1)", "The domain is $D = (0, 1)$.", Yes),
            ("(-2,1)", "\\boxed{(x, y) = (-2,1)}", Yes),
            ("(2, 3)", "We get $(x, y) = (3, 2)$.", No),
            // 2. An answer stated after "is" without a box.
            ("12", "Final Answer: The smallest $k$ is 12.", Yes),
            ("13", "Final Answer: The smallest $k$ is 12.", No),
            // 3. Adjacent boxes form one answer set.
            ("3,5", "$\\boxed{3}\\boxed{5}$", Yes),
            ("\\boxed{3,5}", "$\\boxed{5} \\boxed{3}$", Yes),
            ("3,5", "\\boxed{3} and later \\boxed{5}", No),
            // 4. Thousands separators `,\!` and `{,}`.
            ("\\[ \\boxed{45210} \\]", "$\\boxed{45,\\! 210}$", Yes),
            ("1260", "\\boxed{1,\\! 260}", Yes),
            ("11111111100", "\\boxed{11,\\! 111,\\! 111,\\! 100}", Yes),
            ("1260", "\\boxed{1,\\! 250}", No),
            // 5. Text that is a number is the number; text answers in a box.
            ("\\text{13}", "13", Yes),
            ("13", "\\text{13}", Yes),
            ("\\text{Evelyn}", "\\boxed{Evelyn}", Yes),
            ("\\text{even}", "\\[\\boxed{even}\\]", Yes),
            ("\\text{even}", "\\boxed{odd}", No),
            // 6. Relations: an approximation is its value; an equation is not a value.
            ("11", "$x \\approx 11$", Yes),
            ("$5 = 3a+b$", "$3a+b$", No),
            ("$x + y = 4$", "$4$", No),
            ("x = 4", "4", Yes),
            // 7. Two forms of one equation (math-verify 0.9.0's verdicts): scaled, rearranged,
            // solved for a variable; not a constant assignment, not an inequality.
            ("$2x+4y-3=0$", "$y = -\\frac{1}{2}x + \\frac{3}{4}$", Yes),
            ("$x + y = 4$", "$2x + 2y = 8$", Yes),
            ("$x + y = 4$", "$y = 4 - x$", Yes),
            ("$y = 2x+1$", "$2x - y + 1 = 0$", Yes),
            ("$x = 2y$", "$4y - 2x = 0$", Yes),
            ("$y = x^2$", "$2y = 2x^2$", Yes),
            ("$3x - 6y + 2z = 5$", "$-6x + 12y - 4z + 10 = 0$", Yes),
            ("$3x - 6y + 2z = 5$", "$-6x + 12y - 4z - 10 = 0$", No),
            ("$x + y = 4$", "$x + y = 5$", No),
            ("$x^2 = 1$", "$x = 1$", No),
            ("$a = 3$", "$2a = 6$", No),
            ("$x = 4$", "$y = 4$", No),
            ("$x < 2$", "$-x > -2$", Yes),
            ("$x < 2$", "$2x < 4$", No),
            // 8. Matrices as `\left[\begin{array}…\right]`, `pmatrix` with spaces.
            (
                "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
                "$\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]$",
                Yes,
            ),
            ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "$2$", No),
            (
                "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
                "The answer is \\begin{pmatrix} -1 & 0 \\\\ 0 & -2 \\end{pmatrix}.",
                No,
            ),
            // 9. A tuple and a set with the same elements.
            ("(2,5)", "$\\{2,5\\}$", Yes),
            ("(2,5)", "$\\{2,6\\}$", No),
            // Found by the agreement fixture: `\pm`, base subscripts, a minus before a
            // parenthesis, fractions outside `$…$`, mixed numbers with `\frac45`.
            ("1 \\pm \\sqrt{19}", "$1\\pm\\sqrt{19}$", Yes),
            (
                "3 \\pm 2 \\sqrt{2}",
                "\\boxed{3 + 2 \\sqrt{2}, 3 - 2 \\sqrt{2}}",
                Yes,
            ),
            ("1 \\pm \\sqrt{19}", "\\boxed{1 + \\sqrt{19}}", No),
            ("52_8", "$52_{8}$", Yes),
            ("52_8", "\\boxed{51_8}", No),
            ("5", "The answer is -(5).", No),
            ("29", "The answer is \\frac{58}{2}.", Yes),
            ("\\frac{1}{4}", "\\frac{1}{4}\\mbox{ meters}", Yes),
            ("1\\frac{4}{5}", "\\boxed{1\\frac45}", Yes),
            ("x \\in [-2,7]", "$t \\in [-2,7]$", No),
        ],
    );
    // 10. math-verify's options (its verdicts with the same `float_rounding` / `strict`).
    let with = |precision: u32, strict: bool| Checker {
        mode: Mode::Math,
        options: Options { precision, strict },
    };
    for (gold, pred, checker, want) in [
        ("$\\frac13$", "$0.3333$", with(4, true), true),
        ("$\\frac13$", "$0.3333$", with(6, true), false),
        ("$[0.3333, 1]$", "$[\\frac13, 1]$", with(4, true), true),
        ("$[0.3333, 1]$", "$[\\frac13, 1]$", with(6, true), false),
        ("$0.67$", "$\\frac23$", with(2, true), true),
        ("$f(x)$", "$f(y)$", with(6, false), true),
        ("$f(x)$", "$f(y)$", with(6, true), false),
        ("$x+1$", "$y+1$", with(6, false), true),
        ("$x+1$", "$y+2$", with(6, false), false),
        ("$x+1$", "$e+1$", with(6, false), false),
        ("$a-b$", "$b-c$", with(6, false), true),
        ("$x \\in [-2,7]$", "$t \\in [-2,7]$", with(6, false), false),
    ] {
        let got = checker.check(gold, pred).verdict;
        assert_eq!(
            got,
            want.into(),
            "{gold} vs {pred} with {:?}",
            checker.options
        );
    }
    // 4, gsm8k mode: `9{,}500` is 9500, not 500.
    run(
        "issue 19 (gsm8k)",
        Mode::Gsm8k,
        &[
            ("9500", "The answer is \\boxed{9{,}500}.", Yes),
            ("500", "The answer is \\boxed{9{,}500}.", No),
        ],
    );
    // 11. Hendrycks mode compares an unboxed prediction whole, as its `is_equiv` does.
    run(
        "issue 19 (hendrycks)",
        Mode::Hendrycks,
        &[
            ("1/2", "\\frac{1}{2}", Yes),
            (".1", "0.1", Yes),
            ("10\\%", "10", Yes),
            ("\\$10", "10", Yes),
            ("\\tfrac83", "\\frac{8}{3}", Yes),
            ("1/2", "\\frac{1}{3}", No),
        ],
    );
}
