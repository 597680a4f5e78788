"""Other people's GSM8K answer checkers, side by side with ours, to show what the headline number means.

Each entry of EXTRACTORS is `fn(solution_str, ground_truth) -> float` (1.0 / 0.0) and runs the
published code or rule on the *raw* response, as those tools do by default (none of them strips
a <think> block):

- ours: gsm8k_rl.task.reward.compute_score, the training reward.
- verl_strict: VERL's built-in GSM8K scorer, `verl.utils.reward_score.gsm8k.compute_score`
  (the real function, imported lazily): `#### N` in the last 300 characters, string equality
  with the gold as VERL's examples/data_preprocess/gsm8k.py stores it (commas removed).
- lm_eval_flexible: lm-evaluation-harness' gsm8k "flexible-extract" filter
  (lm_eval/tasks/gsm8k/gsm8k.yaml, metadata version 3.0, commit 47f16bf): regex
  `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match (group_select -1), first non-empty group, strip,
  fallback "[invalid]" (lm_eval/filters/extraction.py RegexFilter); then its exact_match metric:
  regexes_to_ignore `,`, `\\$`, `(?s).*#### `, `\\.$` removed from prediction and reference,
  ignore_case (lm_eval/api/metrics.py exact_match_hf_evaluate). The reference is the gold text
  (a full GSM8K solution or the bare number: the ignore regexes reduce both to the number).
- math_verify: HuggingFace Math-Verify, `verify(parse(gold), parse(response))` with default
  extraction configs. Its timeouts use SIGALRM, which only works in the main thread: there we
  keep its default 5 s limits; in any other thread (e.g. VERL's reward executor) we pass
  `None` (no limit) rather than let it raise, so a pathological sympy parse could then hang.
- paper: the Self-Aligned Reward paper's scorer (arXiv 2509.05489), its training reward and its
  eval metric (its code: verl/utils/global_tools.py `extract_answer`, `valid_answer_pattern`;
  verl/utils/reward_score/general_math_reward.py `compute_score`, `are_numbers_equivalent`): the
  last number or `\\frac{a}{b}` in the raw output, then `,` ` ` `$` removed from it and from the
  gold, equal strings or math-verify `verify(parse(answer), parse(gold))`. As there, the number is
  found before commas are removed, so "1,234" is read as 234.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from gsm8k_rl.task.reward import compute_score, final_answer_text, parse_ground_truth

Extractor = Callable[[Any, Any], float]

# Imported lazily by their extractors; `check_installed` lets a caller fail before hours of generation.
LAZY_IMPORTS = {"math_verify": "math-verify", "verl": "verl"}


def check_installed() -> list[str]:
    """Packages the extractors import lazily that are not installed here, as `pip install` names.

    Looks them up without importing them: importing verl runs torch.cuda.is_available(), and a
    process that has touched CUDA can no longer fork vLLM's engine core ("Cannot re-initialize
    CUDA in forked subprocess", seen on an H100).
    """
    import importlib.util

    return [dist for module, dist in LAZY_IMPORTS.items() if importlib.util.find_spec(module) is None]


def ours(solution_str: Any, ground_truth: Any) -> float:
    """The training reward.

    >>> ours("The answer is **$18**.", "18")
    1.0
    """
    return compute_score("openai/gsm8k", solution_str, ground_truth)


def _gold_text(ground_truth: Any) -> str:
    """The gold as its text: a bare number, or the number after "####" of a full solution."""
    text = str(ground_truth)
    tail = final_answer_text(text)
    return (text if tail is None else tail).strip()


def verl_strict(solution_str: Any, ground_truth: Any) -> float:
    """VERL's own GSM8K scorer (strict "#### N", exact string match).

    >>> verl_strict("9 * 2 = 18\\n#### 18", "18"), verl_strict("The answer is 18.", "18")
    (1.0, 0.0)
    """
    from verl.utils.reward_score import gsm8k

    if not isinstance(solution_str, str):
        return 0.0
    # VERL's examples/data_preprocess/gsm8k.py stores the number after "#### " with commas removed
    gold = _gold_text(ground_truth).replace(",", "")
    return float(gsm8k.compute_score(solution_str, gold))


# lm-evaluation-harness, lm_eval/tasks/gsm8k/gsm8k.yaml (version 3.0): filter "flexible-extract"
_LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# ... and the exact_match metric's regexes_to_ignore (applied in order), ignore_case: true
_LM_EVAL_IGNORE = [re.compile(r","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$")]


def _lm_eval_normalise(text: str) -> str:
    for regex in _LM_EVAL_IGNORE:
        text = regex.sub("", text)
    return text.lower()


def lm_eval_flexible_extract(solution_str: str) -> str:
    """lm-eval's flexible-extract filter: the last regex match, first non-empty group, stripped.

    >>> lm_eval_flexible_extract("So she makes $18.\\nCheck: 16 - 3 - 4 = 9")
    '9'
    >>> lm_eval_flexible_extract("no digits")
    '[invalid]'
    """
    matches = _LM_EVAL_FLEXIBLE.findall(solution_str)
    if not matches:
        return "[invalid]"
    groups = [g for g in matches[-1] if g]
    return groups[0].strip() if groups else "[invalid]"


def lm_eval_flexible(solution_str: Any, ground_truth: Any) -> float:
    """lm-eval gsm8k flexible-extract + exact_match.

    >>> lm_eval_flexible("She makes $1,234.", "1,234"), lm_eval_flexible("18 eggs, then 3 more", "18")
    (1.0, 0.0)
    """
    if not isinstance(solution_str, str):
        return 0.0
    prediction = _lm_eval_normalise(lm_eval_flexible_extract(solution_str))
    return 1.0 if prediction == _lm_eval_normalise(str(ground_truth)) else 0.0


def math_verify(solution_str: Any, ground_truth: Any) -> float:
    """HuggingFace Math-Verify with its default extraction (boxed, "final answer is", last number).

    >>> math_verify("The answer is $\\\\frac{36}{2}$.", "18")
    1.0
    """
    from math_verify import parse, verify

    if not isinstance(solution_str, str):
        return 0.0
    # SIGALRM timeouts only work in the main thread; elsewhere run without them (see module doc)
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${parse_ground_truth(ground_truth)}$", parsing_timeout=limit)
        answer = parse(solution_str, parsing_timeout=limit)
        return 1.0 if verify(gold, answer, timeout_seconds=limit) else 0.0
    except Exception:  # math-verify raises on a few inputs despite raise_on_error=False
        return 0.0


# The Self-Aligned Reward paper's answer pattern (global_tools.py: p_number, p_latex_fraction, valid_answer_pattern)
_PAPER_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)"
_PAPER_FRACTION = r"-?\s*\\frac\s*{\s*" + _PAPER_NUMBER + r"\s*}\s*{\s*" + _PAPER_NUMBER + r"\s*}"
_PAPER_ANSWER = re.compile(r"(?:" + _PAPER_FRACTION + "|" + _PAPER_NUMBER + r")", re.IGNORECASE)


def paper_extract(solution_str: str) -> str:
    """The paper's extract_answer: the last number or \\frac{a}{b} of the text, stripped; "" if none.

    >>> paper_extract("Half is \\\\frac{1}{2}."), paper_extract("It costs $1,234."), paper_extract("none")
    ('\\\\frac{1}{2}', '234.', '')
    """
    last = None
    for last in _PAPER_ANSWER.finditer(solution_str):  # noqa: B007 (the last match is what is wanted)
        pass
    return last.group().strip() if last else ""


def paper(solution_str: Any, ground_truth: Any) -> float:
    """The Self-Aligned Reward paper's scorer (training reward and eval metric of its code).

    >>> (paper("So she makes $18.", "18"), paper("It is -\\\\frac{1}{2}.", "-\\\\frac{1}{2}"),
    ...  paper("18, check: 9", "18"))
    (1.0, 1.0, 0.0)
    """
    from math_verify import parse, verify

    if not isinstance(solution_str, str):
        return 0.0
    answer = paper_extract(solution_str)
    if not answer or not _PAPER_ANSWER.fullmatch(answer):
        return 0.0

    def clean(text: str) -> str:
        return text.replace(",", "").replace(" ", "").replace("$", "").strip()

    answer, gold = clean(answer), clean(_gold_text(ground_truth))
    if answer == gold:
        return 1.0
    # SIGALRM timeouts only work in the main thread; elsewhere run without them (see math_verify above)
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        return 1.0 if verify(parse(answer, parsing_timeout=limit), parse(gold, parsing_timeout=limit),
                             timeout_seconds=limit) else 0.0
    except Exception:  # the paper's code catches everything here too: no verdict is a 0
        return 0.0


EXTRACTORS: dict[str, Extractor] = {
    "ours": ours,
    "verl_strict": verl_strict,
    "lm_eval_flexible": lm_eval_flexible,
    "math_verify": math_verify,
    "paper": paper,
}
