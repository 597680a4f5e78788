"""The verifiable GSM8K reward: 1.0 when the model's final number equals the gold answer, else 0.0.

One scorer for training and evaluation. VERL loads this file *by path*
(`reward.custom_reward_function.path=<this file>`, `.name=compute_score`) inside its reward
workers, so it imports the standard library only and nothing from `gsm8k_rl`.

    gsm8k-rl reward "Janet makes **$18** a day." --gt 18     # try it from the shell

Four small pure steps:
1. strip thinking: keep the text after the last `</think>`; an unclosed `<think>` (the model ran
   out of tokens while thinking) has no final answer and scores 0.0;
2. find the answer: the last strong marker (`#### N`, `\\boxed{N}`), else the last phrase
   marker ("answer is N", "Answer: N", "**Final Answer**" + N), else the last number in the text;
3. normalise the number: commas, thin spaces and `{,}` between digit groups, currency symbols,
   `%`, units, markdown bold, `\\text{}` and the unicode minus are ignored; `\\frac{a}{b}` (with
   its sign: `-\\frac{1}{2}`) and `a/b` are read as fractions inside an answer marker, and in golds
   (MATH's `\\frac{3}{4}`, `3/4`); scientific notation is read as its value (`1e3` = 1000);
   an answer that divides by zero (`3/0`) has no value and scores 0.0, also when it is the last
   number: no other number of the response stands in for it;
4. compare exactly as rational numbers, so 18 == 18.00 == 36/2 (GSM8K golds are integers).

Sources: the official GSM8K normalisation (openai/grade-school-math, grade_school_math/dataset.py:
`#### (\\-?[0-9\\.\\,]+)`, commas removed, string equality); VERL's built-in scorer
(verl/utils/reward_score/gsm8k.py: same regex on the last 300 characters, strict string equality);
lm-evaluation-harness' flexible-extract (lm_eval/tasks/gsm8k/gsm8k.yaml:
`(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match). We accept what those accept and more formats
(boxed, answer phrases, thinking), compare numerically instead of as strings, and refuse the
known traps: a markdown header `#### Step 1` is not an answer, `16-3` is not minus 3, `3,4,5`
is three numbers, a number in a check line after an explicit answer is not the answer.
Not handled (documented limits): numbers written in words, mixed numbers (`2 1/2`), European
decimal commas (`12,5`).

Safety: never raises, returns 0.0 for None, non-str, empty or hostile input, and does linear
work only (str.rfind/replace in C, regexes without nested quantifiers run on bounded windows),
so a 1 MB adversarial string takes milliseconds, not minutes.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

log = logging.getLogger(__name__)

# Same value as gsm8k_rl.task.prompt.ANSWER_MARKER (copied: this file must load standalone; a test
# checks they agree). GSM8K's gold solutions end with "#### N".
ANSWER_MARKER = "####"

MAX_CHARS = 10_000_000  # a 4096-token response is far shorter; anything longer is not an answer
MAX_NUMBER_CHARS = 60  # longer digit runs are garbage, not answers (and Fraction() stays cheap)
MAX_EXPONENT = 100  # 1e100 is already no answer; a longer exponent would make Fraction() build a huge integer
WINDOW = 300  # characters read after a marker
MAX_MARKERS = 16  # occurrences of each marker tried, from the last one backwards

# A number: optional sign (a minus right after a digit, letter or closing bracket is subtraction:
# "16-3" is 16 minus 3), digits with optional thousands groups "1,234,567" (exactly three digits
# per group, so the list "3,4,5" stays three numbers), optional decimals, or ".5", then an optional
# exponent ("1e3", "2.5E-2": read whole, not as 1 and 3). ASCII digits only. No nested quantifiers:
# every repetition is followed by a character it cannot match.
_NUM = (r"(?:(?<![\w)\]}])-)?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|(?<![0-9.])\.[0-9]+)"
        r"(?:[eE][-+]?[0-9]+)?")
_NUMBER_RE = re.compile(_NUM)
# The value after an answer marker: \frac{a}{b} (also \dfrac, \tfrac; a minus before it, as in
# MATH's "-\frac{1}{2}", is the fraction's sign under the same rule as a number's), a/b, or a number.
_VALUE_RE = re.compile(
    r"(?:(?<![\w)\]}])(?P<fs>-)[ \t]*)?\\[dt]?frac\{\s*(?P<fn>" + _NUM + r")\s*\}\{\s*(?P<fd>" + _NUM + r")\s*\}"
    r"|(?P<n>" + _NUM + r")(?:[ \t]*/[ \t]*(?P<d>" + _NUM + r"))?"
)
# What follows the word "answer" when it really introduces the answer: "answer is", "answer:",
# "answer =", "**Answer**", "Final Answer\n" (a header). Rejects "to answer this", "answers".
_PHRASE_RE = re.compile(r"answer[ \t]*(?:\*\*)?[ \t]*(?:is\b|was\b|:|=|\*\*|\n|$)", re.IGNORECASE)
_ANSWER_WORD_RE = re.compile(r"answer", re.IGNORECASE)
# "#### N" only when a number follows at once: "#### Step 1" is a markdown header.
_HASH_RE = re.compile(re.escape(ANSWER_MARKER) + r"[ \t]*(?:\*\*)?[ \t]*")
_FILLER_RE = re.compile(r"[\s*:#=]*")
_SENTENCE_END_RE = re.compile(r"\n|[.!?](?=\s|$)")
_HEADER_NUMBERING_RE = re.compile(r"[.):][ \t]*[A-Za-z]")  # "#### 1. Compute ..." / "#### 2) ..."

# Text rewrites applied before extraction, in order. Currency and "\$" go (spec: strip currency
# symbols; "$" is also LaTeX's math delimiter, meaningless for numbers); LaTeX/typographic digit
# group separators become commas; the unicode minus becomes "-"; "\approx" reads like "=".
_REWRITES = (
    ("\\$", ""),
    ("$", ""),
    ("€", ""),
    ("£", ""),
    ("¥", ""),
    ("₹", ""),
    ("\u2212", "-"),  # unicode minus
    ("{,}", ","),  # LaTeX 1{,}234
    ("\\,", ","),  # LaTeX thin space 1\,234
    ("\u2009", ","),  # thin space
    ("\u202f", ","),  # narrow no-break space
    ("\u00a0", ","),  # no-break space
    ("\\approx", "="),
    ("≈", "="),
)


def strip_thinking(text: str) -> str | None:
    """The part of a response after the thinking block; None if the block never closed.

    >>> strip_thinking("<think>maybe 17</think>It is 18.")
    'It is 18.'
    >>> strip_thinking("<think>maybe 17 ... (cut off)") is None
    True
    """
    close = text.rfind("</think>")
    if close >= 0:
        return text[close + len("</think>") :]
    if "<think>" in text:
        return None  # still thinking when generation stopped: no final answer was given
    return text


# The value of an answer that divides by zero ("3/0"): the response states its answer, and it is no
# number. Not None ("no answer here"), which would let an earlier or later number stand in for it.
UNDEFINED: Any = object()


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace(",", "")
    if len(token) > MAX_NUMBER_CHARS:
        return None
    _, e, exponent = token.lower().partition("e")
    if e and abs(int(exponent)) > MAX_EXPONENT:
        return None
    try:
        value = Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None
    # written out, an exponent's number must still be one an answer could be (and read back as itself)
    return None if e and len(format_number(value)) > MAX_NUMBER_CHARS else value


def _value(match: re.Match[str]) -> Fraction | None:
    """The rational value of a _VALUE_RE match (a fraction or a plain number); UNDEFINED for x/0.

    >>> _value(_VALUE_RE.match("3/4")), _value(_VALUE_RE.match("3/0")) is UNDEFINED, _value(_VALUE_RE.match("1e3"))
    (Fraction(3, 4), True, Fraction(1000, 1))
    """
    num, den = (match["fn"], match["fd"]) if match["fn"] is not None else (match["n"], match["d"])
    value = _to_fraction(num)
    if value is None:
        return None
    if den is not None:
        d = _to_fraction(den)
        if d is None:
            return None
        if d == 0:
            return UNDEFINED
        value = value / d
    return -value if match["fn"] is not None and match["fs"] else value


def _first_value(s: str) -> Fraction | None:
    """The value an answer span states: its first number (or fraction), read after the last '='
    when there is one, and before an aside in parentheses that follows a number.

    >>> _first_value(" 3 \\\\times 6 = 18 eggs"), _first_value(" 18 (she keeps 16 - 7 = 9 eggs)")
    (Fraction(18, 1), Fraction(18, 1))
    """
    paren = s.find("(")
    if paren > 0 and _VALUE_RE.search(s, 0, paren):
        s = s[:paren]  # "18 (because 16 - 7 = 9 ...)": the aside is a justification, not the answer
    if "=" in s:
        m = _VALUE_RE.search(s, s.rfind("=") + 1)
        if m:
            return _value(m)
    m = _VALUE_RE.search(s)
    return _value(m) if m else None


def _window(text: str, pos: int, size: int = WINDOW) -> str:
    """text[pos:pos+size], minus a number cut in half at its end (a cut number is not a number)."""
    window = text[pos : pos + size]
    return window.rstrip("0123456789,.-/eE+") if pos + size < len(text) else window


def _sentence_after(text: str, pos: int) -> str:
    """The answer span after a phrase marker: skip ':', '*', '#', blank lines; stop at the sentence end."""
    window = _window(text, pos)
    start = _FILLER_RE.match(window).end()
    end = _SENTENCE_END_RE.search(window, start)
    return window[start : end.start() if end else len(window)]


def _boxed_content(text: str, brace: int) -> str | None:
    """Content of a balanced {...} starting at text[brace] == '{', read at most WINDOW chars."""
    depth = 0
    for i in range(brace, min(len(text), brace + WINDOW)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    # unbalanced: an output cut off inside the box still says what it says; a runaway box does not
    return text[brace + 1 :] if brace + WINDOW >= len(text) else None


def _last_positions(text: str, needle: str, limit: int = MAX_MARKERS) -> list[int]:
    """Start indices of the last `limit` occurrences of `needle`, last first (C-speed rfind)."""
    out, end = [], len(text)
    while len(out) < limit:
        i = text.rfind(needle, 0, end)
        if i < 0:
            break
        out.append(i)
        end = i
    return out


def _from_hash(text: str, pos: int) -> Fraction | None:
    """`#### N`: the number must follow at once ("#### Step 1" and "#### 1. Compute" are headers)."""
    if pos > 0 and text[pos - 1] == "#":
        return None  # "##### ..." is a deeper header
    start = _HASH_RE.match(text, pos).end()
    window = _window(text, start, 2 * MAX_NUMBER_CHARS + 8)
    v = _VALUE_RE.match(window)
    if v is None or _HEADER_NUMBERING_RE.match(window, v.end()):
        return None
    return _value(v)


def _from_boxed(text: str, pos: int) -> Fraction | None:
    """`\\boxed{...}` / `\\fbox{...}`: the first value in the box (after its last '=')."""
    brace = text.find("{", pos, pos + 8)
    if brace < 0 or text[pos:brace].strip() not in ("\\boxed", "\\fbox"):
        return None
    content = _boxed_content(text, brace)
    return _first_value(content) if content is not None else None


def _strong_marker(text: str) -> tuple[Fraction | None, str | None]:
    """The last `#### N` or `\\boxed{N}` that holds a number, and which of the two it was."""
    candidates = [(p, "hash", _from_hash) for p in _last_positions(text, ANSWER_MARKER)]
    candidates += [(p, "boxed", _from_boxed) for n in ("\\boxed", "\\fbox") for p in _last_positions(text, n)]
    for pos, rule, read in sorted(candidates, reverse=True):
        value = read(text, pos)
        if value is not None:
            return value, rule
    return None, None


def _phrase_marker(text: str) -> Fraction | None:
    """The last "answer is N" / "Answer: N" / "**Final Answer**  N" that holds a number."""
    last: deque[int] = deque(maxlen=MAX_MARKERS)
    for m in _ANSWER_WORD_RE.finditer(text):
        last.append(m.start())
    for pos in reversed(last):
        if pos > 0 and text[pos - 1].isalpha():
            continue  # "...answer" inside another word
        m = _PHRASE_RE.match(text, pos, pos + 20)
        if m is None:
            continue
        value = _first_value(_sentence_after(text, m.end()))
        if value is not None:
            return value
    return None


def _last_number(text: str) -> Fraction | None:
    """The last number in the text, found from its last digit without scanning the rest; UNDEFINED
    when it is the zero of a division ("so it is 3/0")."""
    last_digit = max(text.rfind(d) for d in "0123456789")
    if last_digit < 0:
        return None
    lo = max(0, last_digit + 1 - 2 * MAX_NUMBER_CHARS)
    m = None
    for m in _NUMBER_RE.finditer(text, lo, last_digit + 1):  # noqa: B007 (the last match is what is wanted)
        pass
    if m is None or (lo > 0 and m.start() < lo + 8):
        return None  # the last number reaches back to the window's start: longer than any answer
    value = _to_fraction(m.group())
    before = text[max(0, m.start() - 16) : m.start()].rstrip(" \t")
    if value == 0 and before.endswith("/") and before[:-1].rstrip(" \t")[-1:].isdigit():
        return UNDEFINED
    return value


def _find_answer(text: Any) -> tuple[Fraction | None, str | None]:
    """(value, rule) for a model response; rule is "hash"/"boxed"/"answer_is"/"last_number"/None."""
    if not isinstance(text, str) or not text or len(text) > MAX_CHARS:
        return None, None
    text = strip_thinking(text)
    if not text:
        return None, None
    for old, new in _REWRITES:
        text = text.replace(old, new)
    value, rule = _strong_marker(text)
    if value is None:
        value, rule = _phrase_marker(text), "answer_is"
    if value is None:
        value, rule = _last_number(text), "last_number"
    if value is UNDEFINED:
        return None, rule  # the answer divides by zero: no number, and no other number replaces it
    return (value, rule) if value is not None else (None, None)


def format_number(value: Fraction) -> str:
    """Canonical text of a number: integers plainly, terminating decimals without trailing zeros, else a/b.

    >>> format_number(Fraction(18)), format_number(Fraction("18.50")), format_number(Fraction(1, 3))
    ('18', '18.5', '1/3')
    """
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_NUMBER_CHARS
        return format((Decimal(value.numerator) / Decimal(value.denominator)).normalize(), "f")


def extract_answer(text: Any) -> str | None:
    """The model's final number, normalised; None when there is none.

    >>> extract_answer("She makes 9 * 2 = $18 every day.\\n#### 18")
    '18'
    >>> extract_answer("**Answer:** Janet makes **$1,234.50** a day. Check: 16 - 3 - 4 = 9.")
    '1234.5'
    >>> extract_answer("<think>16-3-4 = 9, so 18</think>\\n\\nThe answer is $\\\\boxed{18}$.")
    '18'
    """
    value, _ = _find_answer(text)
    return format_number(value) if value is not None else None


def final_answer_text(solution: str) -> str | None:
    """What follows the last `####` of a GSM8K-style solution (its final answer, unparsed); None
    without one. The one place a gold solution is cut: the reward, prepare and the extractors use it.

    >>> final_answer_text("2 + 3 = 5\\n#### 5"), final_answer_text("5")
    (' 5', None)
    """
    i = solution.rfind(ANSWER_MARKER)
    return None if i < 0 else solution[i + len(ANSWER_MARKER) :]


def _gold_value(gt: Any) -> Fraction:
    if isinstance(gt, bool) or gt is None:
        raise ValueError(f"ground truth {gt!r} is not a number")
    text = str(gt)  # int, float, numpy scalars, str
    tail = final_answer_text(text)
    if tail is not None:
        text = tail
    for old, new in _REWRITES:
        text = text.replace(old, new)
    text = text.strip().rstrip(".")
    m = _VALUE_RE.fullmatch(text) if len(text) <= 2 * MAX_NUMBER_CHARS else None
    value = _value(m) if m else None
    if value is None or value is UNDEFINED:
        raise ValueError(
            f"ground truth {str(gt)[:80]!r} is not a single number (expected e.g. 18, '1,234' or '... #### 18')"
        )
    return value


def parse_ground_truth(gt: Any) -> str:
    """The gold number as canonical text, from a number, "1,234", or a full GSM8K solution "... #### N".

    Raises ValueError when `gt` holds no single number (a data bug, not a model error).

    >>> parse_ground_truth(72), parse_ground_truth("1,080"), parse_ground_truth("2 + 3 = 5\\n#### 5")
    ('72', '1080', '5')
    >>> parse_ground_truth(18.0)
    '18'
    """
    return format_number(_gold_value(gt))


_WARNED_GOLDS: set[str] = set()


def score_details(solution_str: Any, ground_truth: Any) -> dict[str, Any]:
    """Everything behind one score, for evaluation reports.

    Returns {"extracted": str|None, "gold": str|None, "score": 0.0|1.0,
    "rule": "hash"|"boxed"|"answer_is"|"last_number"|None} (rule: which step found the answer).

    >>> score_details("The answer is 18 dollars.", "18")
    {'extracted': '18', 'gold': '18', 'score': 1.0, 'rule': 'answer_is'}
    """
    try:
        gold: Fraction | None = _gold_value(ground_truth)
    except Exception as exc:  # a bad gold must not crash a training step: say so once, loudly
        key = repr(ground_truth)[:200]
        if key not in _WARNED_GOLDS:
            _WARNED_GOLDS.add(key)
            log.warning("unusable ground truth, every response to it scores 0.0: %s", exc)
        gold = None
    try:
        value, rule = _find_answer(solution_str)
    except Exception:  # defensive only: no str is known to make the steps above raise
        log.exception("reward extraction failed; scoring 0.0")
        value, rule = None, None
    return {
        "extracted": format_number(value) if value is not None else None,
        "gold": format_number(gold) if gold is not None else None,
        "score": 1.0 if value is not None and value == gold else 0.0,
        "rule": rule,
    }


# Rules that found an explicitly marked final answer (`#### N`, `\boxed{N}`, "the answer is N"):
# what partial credit pays for when the number is wrong.
MARKED_RULES = ("hash", "boxed", "answer_is")
REWARD_KWARGS = ("partial_credit",)


def compute_score(data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None,
                  partial_credit: float = 0.0, **kwargs: Any) -> float | dict[str, float]:
    """VERL's custom reward: 1.0 if the final number in `solution_str` equals `ground_truth`, else 0.0.

    `data_source`, `extra_info` and extra keyword arguments (VERL passes e.g. `reward_router_address`)
    are accepted and ignored: one rule for every GSM8K-style source.

    `partial_credit` (default 0: off, the spec's rule) is paid for a wrong final number that the
    response marks explicitly as its answer (MARKED_RULES), from
    `reward.custom_reward_function.reward_kwargs.partial_credit`. With it on, the result is VERL's
    dict form: "score" is the reward, "acc" stays correctness (VERL's validation accuracy reads
    "acc"), "partial_credit" is 1.0 where it was paid.

    >>> compute_score("openai/gsm8k", "So she makes 9 * $2 = $18.", "18")
    1.0
    >>> compute_score("openai/gsm8k", None, "18")
    0.0
    >>> compute_score("openai/gsm8k", "#### 17", "18", partial_credit=0.1)
    {'score': 0.1, 'acc': 0.0, 'partial_credit': 1.0}
    >>> compute_score("openai/gsm8k", "so 17 apples", "18", partial_credit=0.1)
    {'score': 0.0, 'acc': 0.0, 'partial_credit': 0.0}
    """
    details = score_details(solution_str, ground_truth)
    correct = float(details["score"])
    if not partial_credit:
        return correct
    paid = correct == 0.0 and details["extracted"] is not None and details["rule"] in MARKED_RULES
    return {"score": float(partial_credit) if paid else correct, "acc": correct, "partial_credit": float(paid)}
