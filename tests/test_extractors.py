"""The comparison extractors (gsm8k_rl/task/extractors.py) on cases whose verdict is not in doubt,
plus the cases where their published rules are known to differ."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from gsm8k_rl.task.extractors import EXTRACTORS, lm_eval_flexible_extract, paper_extract

NAMES = ["ours", "verl_strict", "lm_eval_flexible", "math_verify", "paper"]

# (response, gold, expected score) that every extractor must get right
OBVIOUS = [
    ("Janet sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 = 18 dollars.\n#### 18", "18", 1.0),
    ("She makes 9 * 2 = 18 dollars.\n#### 18", "1,080", 0.0),
    ("Total: 540 + 540 = 1080.\n#### 1080", "1,080", 1.0),  # GSM8K golds keep their commas
    ("The profit is 70000.\n#### 70000", "Josh spent 130,000 ...\n#### 70000", 1.0),  # a full gold solution
    ("It drops 5 degrees.\n#### -5", "-5", 1.0),
    ("9 * 2 = 18 dollars.\n#### 17", "18", 0.0),
    ("I don't know.", "18", 0.0),
    ("", "18", 0.0),
]


def test_registry_names():
    assert list(EXTRACTORS) == NAMES


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("text", "gold", "expected"), OBVIOUS)
def test_obvious_cases(name, text, gold, expected):
    score = EXTRACTORS[name](text, gold)
    assert type(score) is float and score == expected


@pytest.mark.parametrize("name", NAMES)
def test_non_string_response_scores_zero(name):
    assert EXTRACTORS[name](None, "18") == 0.0


# Where the published rules part ways (each verdict follows from the rule, not from a run):
DIFFERENCES = [
    # VERL's strict scorer needs "#### N"; the others read an answer sentence
    ("The answer is 18.", "18", {"ours": 1.0, "verl_strict": 0.0, "lm_eval_flexible": 1.0, "math_verify": 1.0,
                                 "paper": 1.0}),
    # a check line after the answer: last-number rules take the check's number
    (
        "The answer is 18.\nCheck: 16 - 3 - 4 = 9",
        "18",
        {"ours": 1.0, "verl_strict": 0.0, "lm_eval_flexible": 0.0, "math_verify": 1.0, "paper": 0.0},
    ),
    # VERL compares strings: "18.00" != "18"
    ("#### 18.00", "18", {"ours": 1.0, "verl_strict": 0.0, "lm_eval_flexible": 0.0, "math_verify": 1.0, "paper": 1.0}),
    # an unclosed think block: only ours refuses an unfinished response
    ("<think>\n9 * 2 = 18", "18", {"ours": 0.0, "verl_strict": 0.0, "lm_eval_flexible": 1.0, "math_verify": 1.0,
                                   "paper": 1.0}),
]


@pytest.mark.parametrize(("text", "gold", "expected"), DIFFERENCES, ids=[d[0][:30] for d in DIFFERENCES])
def test_known_differences(text, gold, expected):
    assert {name: fn(text, gold) for name, fn in EXTRACTORS.items()} == expected


# The Self-Aligned Reward paper's scorer (its general_math_reward.compute_score), on outputs written
# for its rule: (response, gold, score)
PAPER_CASES = [
    # the last number in the text decides: a check line after a boxed answer wins
    ("So the answer is \\boxed{18}. Check: 16 - 7 = 9", "18", 0.0),
    # \frac{a}{b} is one answer, compared by math-verify with the gold in any notation
    ("The probability is \\frac{3}{4}", "0.75", 1.0),
    ("So 0.5 of the cake is left", "\\frac{1}{2}", 1.0),
    ("Unreduced: \\frac{36}{2}", "18", 1.0),
    # a minus before \frac belongs to it
    ("x = -\\frac{1}{2}", "-\\frac{1}{2}", 1.0),
    ("x = \\frac{1}{2}", "-\\frac{1}{2}", 0.0),
    # "$", "," and " " go from the answer and the gold; a trailing period is part of the number, harmlessly
    ("The total is $18.", "$18", 1.0),
    ("Total: 1080", "1,080", 1.0),
    # ... but the number is found before commas go: "1,234" is read as 234 (its GSM8K quirk)
    ("It costs $1,234", "1234", 0.0),
    # \dfrac is not in its pattern: the denominator is the last number
    ("Half: \\dfrac{1}{2}", "0.5", 0.0),
    # a full GSM8K gold solution: the number after "####"
    ("So 72 clips.", "Natalia sold 48/2 = 24 clips in May.\n#### 72", 1.0),
]


@pytest.mark.parametrize(("text", "gold", "expected"), PAPER_CASES, ids=[c[0][:30] for c in PAPER_CASES])
def test_paper_scorer(text, gold, expected):
    assert EXTRACTORS["paper"](text, gold) == expected


def test_paper_extract_is_the_last_number_or_fraction():
    assert paper_extract("9 eggs, \\frac{1}{2} of them, - \\frac { 3 } { 4 }") == "- \\frac { 3 } { 4 }"
    assert paper_extract("The answer is 18.") == "18."
    assert paper_extract("no digits") == ""


def test_lm_eval_flexible_takes_the_last_match():
    # "[$0-9.,]{2,}" keeps a trailing period and the dollar sign; the metric strips them later
    assert lm_eval_flexible_extract("costs $18.") == "$18."
    assert lm_eval_flexible_extract("a 7") == "7"


@pytest.mark.parametrize(("name", "text"), [("math_verify", "The answer is $\\boxed{18}$."),
                                           ("paper", "It is \\frac{36}{2}")])
def test_math_verify_runs_outside_the_main_thread(name, text):
    """VERL scores in an executor thread, where SIGALRM is unavailable: no raise, same verdict."""
    results = {}

    def worker():
        results["score"] = EXTRACTORS[name](text, "18")

    t = threading.Thread(target=worker)
    t.start()
    t.join(timeout=60)
    assert results == {"score": 1.0}


def test_check_installed_imports_nothing():
    # `gsm8k-rl eval` calls it before starting vLLM; importing verl there (it runs
    # torch.cuda.is_available()) made vLLM's forked engine core fail on an H100:
    # "Cannot re-initialize CUDA in forked subprocess".
    code = ("import sys; from gsm8k_rl.task.extractors import check_installed; missing = check_installed(); "
            "print(missing, sorted(m for m in ('verl', 'math_verify', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] []"
