"""The verifiable reward (gsm8k_rl/task/reward.py): rule table, labelled corpus, properties, every GSM8K
gold solution, adversarial timing, stdlib-only loading, VERL's own reward worker, the CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsm8k_rl.task import prompt, reward
from gsm8k_rl.task.reward import compute_score, extract_answer, parse_ground_truth, score_details

REPO = Path(__file__).resolve().parents[1]
REWARD_FILE = Path(reward.__file__)
CORPUS = Path(__file__).parent / "data" / "reward_corpus.jsonl"

# (model output, gold, extracted answer, rule that found it)
RULE_CASES = [
    # explicit "#### N", the GSM8K/VERL format
    ("9 * 2 = 18.\n#### 18", "18", "18", "hash"),
    # several "####": the last one holding a number counts
    ("#### 13\nNo wait, 9 * 2 = 18\n#### 18", "18", "18", "hash"),
    # "#### Step 1" is a markdown header, not an answer; the header's number is not the answer
    ("#### Step 1\n16 - 7 = 9\n#### Step 2\n9 * 2 = 18 dollars", "18", "18", "last_number"),
    # numbered h4 headers are not answers either
    ("#### 1. Eggs left\n9\n#### 2. Money\n18", "18", "18", "last_number"),
    # "#### $1,234" -> currency and commas go
    ("#### $1,234", "1234", "1234", "hash"),
    # \boxed{} wins over numbers after it (a check line restating a question number)
    ("\\boxed{18}\n\nThis uses the 16 eggs.", "18", "18", "boxed"),
    # an equation inside the box: the value after the last '='
    ("\\boxed{3 \\times 6 = 18}", "18", "18", "boxed"),
    # \frac inside the box is a fraction, not its numerator
    ("\\boxed{\\frac{1}{2}}", "1", "0.5", "boxed"),
    # \$ and \text{} in the box
    ("\\boxed{\\$18 \\text{ dollars}}", "18", "18", "boxed"),
    # LaTeX digit group separators: {,} and \,
    ("\\boxed{70{,}000}", "70000", "70000", "boxed"),
    ("It costs $1\\,234$ dollars.", "1234", "1234", "last_number"),
    # a box cut off by the length limit still says what it says
    ("... so the total is \\boxed{18", "18", "18", "boxed"),
    # "The answer is N" beats the check line after it
    ("The answer is 18.\nCheck: 16 - 3 - 4 = 9", "18", "18", "answer_is"),
    # "**Answer:** <sentence>": the first number of that sentence
    ("**Answer:** Janet makes **$18** a day from 9 eggs.", "18", "18", "answer_is"),
    # an aside in parentheses after the answer is a justification: its '=' does not count
    ("The answer is 18 (she keeps 16 - 7 = 9 eggs).", "18", "18", "answer_is"),
    # ... but an equation before the answer's number does: the value after '='
    ("**Answer:** 9 \\times 2 = 18 dollars", "18", "18", "answer_is"),
    # a "Final Answer" header, the answer on the next line
    ("### Final Answer\n\nShe needs **20 cups**.", "20", "20", "answer_is"),
    # the later "answer" phrase without a number falls back to the earlier one
    ("The answer is 160.\nI hope this answer is helpful!", "160", "160", "answer_is"),
    # "To answer this" is not a marker
    ("To answer this, 9 * 2 = 18", "18", "18", "last_number"),
    # strong markers beat phrase markers wherever they are
    ("\\boxed{18}\nThe answer is consistent with 16 eggs.", "18", "18", "boxed"),
    # thinking: only the text after </think> is the answer
    ("<think>maybe 17</think>\nSo 18.", "18", "18", "last_number"),
    # thinking never closed: no final answer, even if the last number is the gold
    ("<think>16 - 3 - 4 = 9, 9 * 2 = 18", "18", None, None),
    # closed think, nothing after it: no answer
    ("<think>The answer is 18.</think>\n", "18", None, None),
    # subtraction is not a negative number ...
    ("16-3", "3", "3", "last_number"),
    # ... but a minus after a space is, and so is the unicode minus
    ("It drops to -3 degrees.", "-3", "-3", "last_number"),
    ("It drops to \u22123 degrees.", "-3", "-3", "last_number"),
    # "-$45"
    ("The change is -$45.", "-45", "-45", "last_number"),
    # numeric equality: 18.00 == 18; 18.50 != 18
    ("Each pays $18.00.", "18", "18", "last_number"),
    ("Each pays $18.50.", "18", "18.5", "last_number"),
    # percentages and units
    ("The price rose by 25%.", "25", "25", "last_number"),
    ("It takes 5 hours.", "5", "5", "last_number"),
    # ".5"
    ("The average is .5 pounds.", "0.5", "0.5", "last_number"),
    # a comma list stays a list ("3,4,5" is not 345)
    ("She ran 3,4,5 km.", "5", "5", "last_number"),
    # thin spaces between digit groups
    ("Total: 1\u202f234 dollars.", "1234", "1234", "last_number"),
    # no number at all
    ("I cannot solve this.", "18", None, None),
    # issue 29: a division by zero is no number; it scores 0.0 and no other number stands in for it
    # (once "3/0" was read as its last number, 0, and paid against a gold of 0)
    ("The answer is 3/0.", "0", None, "answer_is"),
    ("#### 3/0\nSo the answer is 0", "0", None, "hash"),
    ("So each gets 3/0", "0", None, "last_number"),
    # issue 29: scientific notation is one number (once "1e3" was read as 1 and paid against a gold of 1)
    ("The answer is 1e3.", "1", "1000", "answer_is"),
    ("She makes 2.5E2 dollars.", "250", "250", "last_number"),
    # an exponent no answer has is garbage, not a number
    ("It is 1e500.", "1", None, None),
]


@pytest.mark.parametrize(("text", "gold", "extracted", "rule"), RULE_CASES, ids=[c[0][:40] for c in RULE_CASES])
def test_rule_table(text, gold, extracted, rule):
    details = score_details(text, gold)
    assert (details["extracted"], details["rule"]) == (extracted, rule)
    assert details["score"] == (1.0 if extracted is not None and extracted == parse_ground_truth(gold) else 0.0)
    assert compute_score("openai/gsm8k", text, gold) == details["score"]


def test_issue_29_wrong_answers_are_not_paid():
    """The two wrong answers of issue 29, also with partial credit on (a division by zero is no answer
    to credit), and the right value in scientific notation is paid."""
    assert compute_score("openai/gsm8k", "The answer is 3/0", "0") == 0.0
    assert compute_score("openai/gsm8k", "1e3", "1") == 0.0
    assert compute_score("openai/gsm8k", "1e3", "1000") == 1.0
    assert compute_score("openai/gsm8k", "The answer is 3/0", "0", partial_credit=0.1)["score"] == 0.0


def load_corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def test_corpus_is_well_formed():
    rows = load_corpus()
    assert len(rows) >= 100
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert {"id", "output", "ground_truth", "label", "note"} <= set(r), r["id"]
        assert r["label"] in (0, 1) and r["note"], r["id"]
        parse_ground_truth(r["ground_truth"])
    assert {0, 1} == {r["label"] for r in rows}


@pytest.mark.parametrize("row", load_corpus(), ids=lambda r: r["id"])
def test_corpus_agrees_with_human_labels(row):
    """Every row agrees with its human label, except the rows flagged known_miss (documented limits),
    which must still disagree: a fix that resolves one should drop the flag."""
    score = compute_score("openai/gsm8k", row["output"], row["ground_truth"])
    assert score in (0.0, 1.0)
    if row.get("known_miss"):
        assert score != row["label"], f"{row['id']} now agrees with its label: drop known_miss"
    else:
        details = score_details(row["output"], row["ground_truth"])
        assert score == row["label"], f"{row['id']}: {row['note']} -> {details}"


# --------------------------------------------------------------------------- properties

_PROSE = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz ABCDEFGHXYZ,.!?:;\n")), max_size=80)


def _formats(n: int) -> list[str]:
    sign = "-" if n < 0 else ""
    a = abs(n)
    return [
        f"{n}",
        f"{sign}{a:,}",
        f"{sign}${a:,}",
        f"{sign}${a:,}.00",
        f"{n}.0",
        f"**{n}**",
        f"{sign}\\${a}",
        f"{sign}{a:,}".replace(",", "{,}"),
        f"{n} dollars",
        f"{n}%",
        ("\u2212" if n < 0 else "") + str(a),
    ]


_TEMPLATES = [
    "{pre} {x}{post_nodigit}",
    "{pre} The answer is {x}. {post}",
    "{pre}\n#### {x}\n{post}",
    "{pre} $\\boxed{{{x}}}$ {post}",
    "{pre}\n**Answer:** {x}\n{post}",
    "<think>{pre} 7</think>\n{pre} {x}{post_nodigit}",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=-10**9, max_value=10**12),
    fmt=st.integers(min_value=0, max_value=10),
    template=st.sampled_from(_TEMPLATES),
    pre=_PROSE,
    post=st.text(alphabet=st.sampled_from(list("abcdefghij 0123456789.,\n")), max_size=40),
    post_nodigit=_PROSE,
)
def test_any_formatted_integer_scores_against_itself_only(n, fmt, template, pre, post, post_nodigit):
    x = _formats(n)[fmt]
    text = template.format(pre=pre, x=x, post=post, post_nodigit=post_nodigit)
    assert compute_score("openai/gsm8k", text, n) == 1.0, (text, score_details(text, n))
    assert compute_score("openai/gsm8k", text, str(n + 1)) == 0.0, text
    assert compute_score("openai/gsm8k", text, f"{n + 1:,}") == 0.0, text


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(st.none(), st.integers(), st.binary(max_size=50), st.text(max_size=400)),
    gold=st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=20), st.booleans()),
)
def test_never_raises_and_returns_zero_or_one(text, gold):
    score = compute_score("openai/gsm8k", text, gold, extra_info={"index": 0}, reward_router_address=None)
    assert type(score) is float and score in (0.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("0123456789 -.,$#{}\\boxed<>/think*answer:is=\n")), max_size=300))
def test_extracted_answer_is_a_fixed_point(text):
    """Whatever is extracted reads back as itself and scores 1.0 against the text it came from."""
    ans = extract_answer(text)
    if ans is not None:
        assert extract_answer(ans) == ans
        assert parse_ground_truth(ans) == ans
        assert compute_score("openai/gsm8k", text, ans) == 1.0


# --------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize(
    ("gt", "expected"),
    [
        (72, "72"),  # int
        (18.0, "18"),  # float with an integral value
        (12.5, "12.5"),
        ("1,080", "1080"),  # GSM8K golds keep their commas
        ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),  # a full gold solution
        (" $1,234.00 ", "1234"),
        ("-5", "-5"),
        # MATH / OpenR1 golds (`gsm8k-rl prepare --dataset math`, `paper_mix`): LaTeX or plain fractions
        ("\\frac{3}{4}", "0.75"),
        ("3/4", "0.75"),
        ("\\frac{1}{3}", "1/3"),  # not a terminating decimal: kept as a/b
        ("-\\frac{1}{2}", "-0.5"),
        ("\\dfrac{6}{4}", "1.5"),
    ],
)
def test_parse_ground_truth(gt, expected):
    assert parse_ground_truth(gt) == expected


# (model output, MATH-style gold, score): fractions are compared as numbers, whatever the notation
FRACTION_CASES = [
    ("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}", 1.0),
    ("The answer is 3/4.", "\\frac{3}{4}", 1.0),  # a/b inside an answer marker
    ("The answer is 0.75.", "3/4", 1.0),
    ("\\boxed{\\dfrac{6}{8}}", "3/4", 1.0),  # unreduced, \\dfrac
    ("\\boxed{\\frac{4}{3}}", "\\frac{3}{4}", 0.0),
    # the sign before \\frac is the fraction's: once read as +1/2, a wrong answer scored 1.0
    ("\\boxed{-\\frac{1}{2}}", "-\\frac{1}{2}", 1.0),
    ("\\boxed{\\frac{1}{2}}", "-\\frac{1}{2}", 0.0),
    ("\\boxed{-\\frac{1}{2}}", "\\frac{1}{2}", 0.0),
    ("\\boxed{\\frac{-1}{2}}", "-0.5", 1.0),
    # a minus right after a digit is subtraction, not a sign: the box's first value is 1
    ("\\boxed{1-\\frac{1}{2}}", "\\frac{1}{2}", 0.0),
    # a bare fraction outside any marker: the last number (2) is read, as for GSM8K
    ("so it is 1/2", "\\frac{1}{2}", 0.0),
]


@pytest.mark.parametrize(("text", "gold", "expected"), FRACTION_CASES, ids=[c[0][:30] for c in FRACTION_CASES])
def test_fraction_golds(text, gold, expected):
    assert compute_score("DigitalLearningGmbH/MATH-lighteval", text, gold) == expected


@pytest.mark.parametrize("gt", [None, True, "", "eighteen", "18 or 20", "#### ", [18], "9" * 500])
def test_unusable_ground_truth_raises_in_parse_and_scores_zero(gt, caplog):
    with pytest.raises(ValueError):
        parse_ground_truth(gt)
    details = score_details("#### 18", gt)
    assert details["score"] == 0.0 and details["gold"] is None


def test_unusable_ground_truth_is_logged_once(caplog):
    with caplog.at_level("WARNING"):
        for _ in range(3):
            compute_score("openai/gsm8k", "#### 18", "not a number, logged once")
    assert sum("not a number, logged once" in r.getMessage() for r in caplog.records) == 1


def _gold_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("split", "n_rows"), [("train", 7473), ("test", 1319)])
def test_every_gsm8k_gold_solution_scores_one(gsm8k_dir, split, n_rows):
    rows = _gold_rows(gsm8k_dir / f"{split}.jsonl")
    assert len(rows) == n_rows
    failures = []
    for i, row in enumerate(rows):
        gold = row["answer"].split("####")[-1].strip()
        if compute_score("openai/gsm8k", row["answer"], gold) != 1.0:
            failures.append((i, gold, row["answer"][-80:]))
    assert not failures, f"{len(failures)} {split} gold solutions score 0: {failures[:5]}"


def test_wrong_gold_scores_zero_on_gsm8k_solutions(gsm8k_dir):
    """The complement: each test solution against the next row's (different) gold scores 0.0."""
    rows = _gold_rows(gsm8k_dir / "test.jsonl")
    golds = [r["answer"].split("####")[-1].strip() for r in rows]
    for i, row in enumerate(rows):
        other = golds[(i + 1) % len(golds)]
        if parse_ground_truth(other) != parse_ground_truth(golds[i]):
            assert compute_score("openai/gsm8k", row["answer"], other) == 0.0, i


# --------------------------------------------------------------------------- robustness

ADVERSARIAL = {
    "digits": "9" * 1_000_000,
    "hash_markers": "####" * 250_000,
    "hash_space": "#### " * 200_000,
    "boxed_open": "\\boxed{" * 140_000,
    "braces": "\\boxed" + "{" * 1_000_000,
    "answer_is": "The answer is " * 70_000,
    "answer_colon_spaces": "Answer:" + " " * 1_000_000,
    "commas": "1," * 500_000,
    "thousands": "1" + ",000" * 250_000,
    "dots": "1." * 500_000,
    "minus": "-" * 1_000_000,
    "slashes": "1/" * 500_000,
    "frac": "\\frac{1}{" * 110_000,
    "think_open": "<think>" * 140_000,
    "think_close": "</think>" * 125_000,
    "mixed": "answer: #### \\boxed{1,2 " * 40_000,
    "unicode": "\u2212\u00a0\u2009١٢٣$€" * 140_000,
    "whitespace_then_number": " " * 1_000_000 + "18",
    "asides": "Answer: 1 (" * 90_000,
    "equals": "= 1 " * 250_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_megabyte_strings_are_fast(name):
    """A guard against catastrophic regex backtracking, not a speed benchmark: < 1 s on 1 MB."""
    text = ADVERSARIAL[name]
    assert len(text) >= 900_000
    start = time.perf_counter()
    score = compute_score("openai/gsm8k", text, "18")
    details = score_details(text, "18")
    elapsed = time.perf_counter() - start
    assert score in (0.0, 1.0) and details["score"] == score
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s"


def test_oversized_input_scores_zero():
    assert compute_score("openai/gsm8k", "x" * (reward.MAX_CHARS + 1) + " #### 18", "18") == 0.0


# --------------------------------------------------------------------------- loading


def test_answer_marker_matches_the_prompt():
    assert reward.ANSWER_MARKER == prompt.ANSWER_MARKER


def test_loads_by_path_with_the_standard_library_only():
    """VERL loads reward.py by file path in its reward workers: it must need nothing but the stdlib."""
    code = f"""
import importlib.util, json, sys
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("gsm8k_reward_by_path", {str(REWARD_FILE)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
new = sorted({{name.split(".")[0] for name in set(sys.modules) - before}})
print(json.dumps({{"score": module.compute_score("openai/gsm8k", "#### 18", "18"), "new": new,
                  "stdlib": sorted(sys.stdlib_module_names)}}))
"""
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    result = json.loads(out.stdout)
    assert result["score"] == 1.0
    non_stdlib = [m for m in result["new"] if m not in set(result["stdlib"]) and m != "gsm8k_reward_by_path"]
    assert not non_stdlib, f"reward.py imported non-stdlib modules: {non_stdlib}"
    assert not {"torch", "numpy", "verl", "gsm8k_rl", "sympy", "math_verify"} & set(result["new"])


def test_the_old_path_still_loads_for_runs_made_before_the_move():
    """Run folders made before the layered tree name gsm8k_rl/reward.py as VERL's reward path: loaded
    by path as VERL does, the alias gives the same scorer."""
    alias = REWARD_FILE.parents[1] / "reward.py"
    spec = importlib.util.spec_from_file_location("gsm8k_reward_alias", alias)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score is compute_score
    assert module.compute_score("openai/gsm8k", "#### 18", "18") == 1.0


def test_verl_reward_loop_scores_a_batch_with_our_reward(qwen3_dir):
    """VERL 0.9.1's own reward worker (RewardLoopWorker -> load_reward_manager -> naive manager) loads
    compute_score by path from the project recipe and scores a tokenized batch on CPU.

    The real Qwen3 tokenizer matters: its <think>/</think> are added tokens that are *not* special,
    so they survive VERL's skip_special_tokens decode and reach the reward."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from gsm8k_rl.launch.compose import compose_config

    tok = AutoTokenizer.from_pretrained(qwen3_dir)
    cfg = compose_config(
        overrides=[
            f"actor_rollout_ref.model.path={qwen3_dir}",
            f"reward.custom_reward_function.path={REWARD_FILE}",
            "reward.custom_reward_function.name=compute_score",
        ]
    )
    worker = RewardLoopWorker(cfg)

    samples = [  # (response, gold, expected score)
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "18", 1.0),
        ("The answer is 17.", "18", 0.0),
        ("<think>\n9 eggs, 18 dollars</think>\n\nShe makes **$18**.", "18", 1.0),
        ("The profit is 70,000 dollars.", "70000", 1.0),
        ("<think>\nstill thinking about 18", "18", 0.0),
    ]
    prompt_len, resp_len = 16, 48
    prompts, responses, masks = [], [], []
    for text, _, _ in samples:
        p = tok("Question?", add_special_tokens=False)["input_ids"][:prompt_len]
        r = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert len(r) <= resp_len
        pad = tok.pad_token_id
        prompts.append([pad] * (prompt_len - len(p)) + p)  # prompts are left-padded
        responses.append(r + [pad] * (resp_len - len(r)))  # responses right-padded
        masks.append([0] * (prompt_len - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (resp_len - len(r)))
    data = DataProto.from_dict(
        tensors={
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(responses),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors={
            "data_source": np.array(["openai/gsm8k"] * len(samples), dtype=object),
            "reward_model": np.array([{"ground_truth": g, "style": "rule"} for _, g, _ in samples], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(samples))], dtype=object),
        },
    )
    outputs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    assert [o["reward_score"] for o in outputs] == [s for _, _, s in samples]
    for o in outputs:
        assert type(o["reward_score"]) is float
    # VERL's decode (skip_special_tokens) must reach our function with the text we scored
    assert outputs[2]["reward_extra_info"]["acc"] == 1.0


# --------------------------------------------------------------------------- CLI


def test_cli_prints_answer_rule_and_score(capsys):
    from gsm8k_rl.cli import main

    assert main(["reward", "The answer is **$1,234**.", "--gt", "1234"]) == 0
    out = capsys.readouterr().out
    assert "1234" in out and "answer_is" in out and "1.0" in out


def test_cli_reads_stdin_and_emits_json():
    out = subprocess.run(
        [sys.executable, "-m", "gsm8k_rl.cli", "reward", "-", "--gt", "18", "--json"],
        input="<think>17?</think>\n\\boxed{18}",
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == {"extracted": "18", "gold": "18", "score": 1.0, "rule": "boxed"}


def test_cli_rejects_an_unusable_gold(capsys):
    from gsm8k_rl.cli import main

    assert main(["reward", "#### 18", "--gt", "eighteen"]) == 2
    assert "--gt" in capsys.readouterr().err
