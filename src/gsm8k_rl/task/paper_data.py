"""The Self-Aligned Reward paper's training data: `gsm8k-rl prepare --dataset math` and `paper_mix`.

Why: to train in the paper's setting (arXiv 2509.05489), on the data its code prepares
(examples/data_preprocess/{math_data,openr1,gsm8k}.py, merge_datasets.py, preconfig.sh):

- math: MATH (`DigitalLearningGmbH/MATH-lighteval`), the answer being the last `\\boxed{}` of the
  solution, kept when it has at most 20 characters and matches the paper's "number or fraction"
  pattern (ANSWER_RE), and when our reward reads it as one number (drops e.g. `2\\frac{1}{2}`).
- paper_mix train: MATH train so filtered, the math word problems of OpenR1-Math-220k with a
  numeric answer and >= 1 generation verified correct (the paper's filter, then its 92/8 split,
  seed 42, through `datasets`' own train_test_split), and GSM8K train; each capped at 10,000
  rows (pandas' sample, random_state 42, as merge_datasets.py), concatenated in the paper's
  order (math, openr1, gsm8k), then deduplicated by question text (the paper's merge does not
  deduplicate) and cleared of questions of the test split. paper_mix test: GSM8K test.

Every dropped row is counted with its reason (logged, and written to prepare_info.json).

Local copies (`--source DIR`): for `math`, DIR holds the hub's files (`data/{split}-*.parquet`)
or `{split}.parquet` / `{split}.jsonl`; for `paper_mix`, DIR holds `gsm8k/` ({split}.jsonl, as
the GSM8K release), `math/` and `openr1/` (`data/train-*.parquet`, `train.parquet` or `train.jsonl`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.task.datasets import DATASETS, MATH_HUB, OPENR1_HUB
from gsm8k_rl.task.gsm8k import BadRow, gold_number, jsonl_records, load_gsm8k_split_and_skipped
from gsm8k_rl.task.reward import parse_ground_truth

log = logging.getLogger(__name__)

MIX_PARTS = ("math", "openr1", "gsm8k")  # the paper's merge order (preconfig.sh --input-dirs)

# The paper's answer filter (math_data.py and openr1.py, `filter_data`): signs, digits, dots,
# parentheses, backslashes and at most one \frac{a}{b} of positive integers; <= 20 characters.
ANSWER_RE = re.compile(r"^[-0-9.()\\]*(\\frac{[1-9][0-9]*}{[1-9][0-9]*})?[-0-9.()\\]*$")
MAX_ANSWER_CHARS = 20
CAP = 10_000  # rows per source (merge_datasets.py: max_samples_per_source)
SEED = 42
OPENR1_TEST_SIZE = 0.08  # openr1.py: train_test_split(test_size=0.08, seed=42)

MATH_COLUMNS = ("problem", "solution", "level", "type")
OPENR1_COLUMNS = ("problem", "solution", "answer", "question_type", "correctness_math_verify", "source")


class Tally:
    """Rows read, kept and dropped (by reason) for one source: nothing leaves without a count."""

    def __init__(self, name: str):
        self.name = name
        self.read = 0
        self.dropped: Counter[str] = Counter()
        self.first: dict[str, str] = {}  # reason -> the first row it dropped, for the log

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] += 1
        self.first.setdefault(reason, where)

    def summary(self, kept: int) -> dict[str, Any]:
        assert self.read == kept + sum(self.dropped.values()), (self.name, self.read, kept, self.dropped)
        return {"read": self.read, "kept": kept, "dropped": dict(sorted(self.dropped.items()))}

    def log(self, kept: int) -> None:
        log.info("%s: read %d rows, kept %d", self.name, self.read, kept)
        for reason, n in sorted(self.dropped.items()):
            log.info("%s: dropped %d: %s (first: %s)", self.name, n, reason, self.first[reason])


def _local_files(folder: Path, split: str) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{folder} not found: --source must be a folder with the dataset's files")
    for pattern in (f"{split}.jsonl", f"{split}.parquet", f"data/{split}-*.parquet", f"{split}-*.parquet"):
        files = sorted(folder.glob(pattern))
        if files:
            return files
    raise UserError(f"{folder}: no {split}.jsonl, {split}.parquet or data/{split}-*.parquet (the hub's layout)")


def read_records(source: Path | None, hub: tuple[str, str | None, str], split: str,
                 columns: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(where, record) for each row of a split, from a local folder or the hub; `where` names the
    file and line (jsonl), the file and row (parquet) or the hub split and row."""
    if source is not None:
        for path in _local_files(Path(source), split):
            if path.suffix == ".jsonl":
                for lineno, record in jsonl_records(path):  # a line not UTF-8 or not JSON: a BadRow
                    yield f"{path}:{lineno}", record
            else:
                import pyarrow.parquet as pq

                names = pq.read_schema(path).names
                table = pq.read_table(path, columns=[c for c in columns if c in names])
                for i, row in enumerate(table.to_pylist()):
                    yield f"{path} row {i}", row
        return
    import datasets

    hub_id, config, _ = hub
    origin = f"hub:{hub_id}" + (f"[{config}]" if config else "") + f"/{split}"
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # network, auth, renamed dataset: all need the user's action
        raise UserError(f"could not load {origin} ({exc}); pass --source DIR with a local copy") from exc
    ds = ds.select_columns([c for c in columns if c in ds.column_names])  # OpenR1's generations stay on disk
    for i, row in enumerate(ds):
        yield f"{origin} row {i}", row


def _text(record: Any, key: str) -> str:
    if isinstance(record, BadRow):
        raise record
    if not isinstance(record, dict):
        raise BadRow(f"expected a JSON object, got {type(record).__name__}")
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRow(f"missing or empty {key!r}")
    return value


def boxed_answer(solution: str) -> str | None:
    """The content of the last `\\boxed{}` of a solution, as the paper reads it (VERL's own helpers,
    verl.utils.reward_score.math_reward, the paper's math_dataset); None when there is none.

    >>> boxed_answer("So $x = \\\\boxed{\\\\frac{3}{4}}$."), boxed_answer("no box")
    ('\\\\frac{3}{4}', None)
    """
    from verl.utils.reward_score.math_reward import last_boxed_only_string, remove_boxed

    boxed = last_boxed_only_string(solution)
    if boxed is None:
        return None
    try:
        return remove_boxed(boxed)
    except AssertionError:  # "\fbox{...}": remove_boxed knows only \boxed
        return None


def pattern_problem(answer: str) -> str | None:
    """Why the paper's answer filter refuses an answer (length, then pattern), or None.

    >>> [pattern_problem(a) for a in ("-\\\\frac{1}{2}", "x^2", "1" * 21)]
    [None, 'answer not a number or a fraction', 'answer longer than 20 characters']
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} characters"
    if not ANSWER_RE.match(answer):
        return "answer not a number or a fraction"
    return None


def reward_problem(answer: str) -> str | None:
    """Why our reward cannot use an answer as the gold, or None: the paper's pattern lets through
    strings that are no single number (a mixed number "2\\frac{1}{2}", "(5)", an empty box).

    >>> reward_problem("-\\\\frac{1}{2}"), reward_problem("2\\\\frac{1}{2}")
    (None, 'answer not one number the reward reads')
    """
    try:
        parse_ground_truth(answer)
    except ValueError:
        return "answer not one number the reward reads"
    return None


def _bad(tally: Tally, where: str, exc: BadRow, skip_invalid: bool) -> None:
    if not skip_invalid:
        raise UserError(f"bad {tally.name} row at {where}: {exc} (use --skip-invalid to skip such rows)") from exc
    log.warning("skipped %s: %s", where, exc)
    tally.drop(f"invalid row ({exc})", where)


def load_math(source: Path | None, split: str, skip_invalid: bool = False) -> tuple[list[dict], Tally]:
    """MATH rows kept by the paper's filter: {question, answer (the solution), ground_truth, source_index}."""
    tally, kept = Tally(f"math/{split}"), []
    for where, record in read_records(source, MATH_HUB, split, MATH_COLUMNS):
        index = tally.read
        tally.read += 1
        try:
            question, solution = _text(record, "problem"), _text(record, "solution")
        except BadRow as exc:
            _bad(tally, where, exc, skip_invalid)
            continue
        answer = boxed_answer(solution)
        if answer is None:
            problem = "no \\boxed{} answer in the solution"
        else:
            problem = pattern_problem(answer) or reward_problem(answer)
        if problem:
            tally.drop(problem, where)
            continue
        kept.append({"question": question, "answer": solution, "ground_truth": answer,
                     "data_source": MATH_HUB[2], "source_index": index, "where": where})
    return kept, tally


def load_openr1(source: Path | None, skip_invalid: bool = False, test_size: float = OPENR1_TEST_SIZE,
                seed: int = SEED) -> tuple[list[dict], Tally]:
    """OpenR1-Math-220k rows the paper trains on: its filter (openr1.py), then the train side of its split."""
    tally, kept = Tally("openr1/train"), []
    for where, record in read_records(source, OPENR1_HUB, "train", OPENR1_COLUMNS):
        index = tally.read
        tally.read += 1
        try:
            question, answer, qtype = _text(record, "problem"), _text(record, "answer"), _text(record, "question_type")
            solution = record.get("solution") or ""  # only searched for URLs, as the paper does
            if not isinstance(solution, str):
                raise BadRow(f"'solution' is a {type(solution).__name__}, not text")
        except BadRow as exc:
            _bad(tally, where, exc, skip_invalid)
            continue
        correct = record.get("correctness_math_verify") or []
        # the paper's checks, in its order (openr1.py, filter_data), then the reward's
        if qtype != "math-word-problem":
            problem = f"question_type {qtype!r}, not a math word problem"
        elif len(answer) > MAX_ANSWER_CHARS:
            problem = f"answer longer than {MAX_ANSWER_CHARS} characters"
        elif not any(correct):
            problem = "no generation verified correct (correctness_math_verify)"
        elif pattern_problem(answer):
            problem = pattern_problem(answer)
        elif "http" in question or "http" in solution:
            problem = "problem or solution holds a URL"
        else:
            problem = reward_problem(answer)
        if problem:
            tally.drop(problem, where)
            continue
        # the paper's own gold trace (openr1.py: f"{thought}\nAnswer: {answer}"), which the reward scores
        answer = answer.strip()
        kept.append({"question": question, "answer": f"{solution.rstrip()}\nAnswer: {answer}", "ground_truth": answer,
                     "data_source": OPENR1_HUB[2], "source_index": index, "where": where})
    if not kept:
        return kept, tally
    import datasets

    split = datasets.Dataset.from_dict({"i": list(range(len(kept)))}).train_test_split(test_size=test_size, seed=seed)
    train = [kept[i] for i in split["train"]["i"]]
    for i in split["test"]["i"]:
        tally.drop(f"in the paper's {test_size:.0%} OpenR1 test split", kept[i]["where"])
    return train, tally


def load_gsm8k(source: Path | None, split: str, skip_invalid: bool = False) -> tuple[list[dict], Tally]:
    """GSM8K rows as the mix's problems (gold: the number after "####"), through the GSM8K loader."""
    rows, skipped = load_gsm8k_split_and_skipped(source, split, "gsm8k", skip_invalid)
    tally = Tally(f"gsm8k/{split}")
    tally.read = len(rows) + len(skipped)
    for where in skipped:  # already logged by the GSM8K loader
        tally.drop("invalid row", where)
    origin = f"{source}/{split}.jsonl" if source is not None else f"hub:{DATASETS['gsm8k'].hub}/{split}"
    return [{"question": r["question"], "answer": r["answer"], "ground_truth": gold_number(r["answer"]),
             "data_source": DATASETS["gsm8k"].data_source, "source_index": i, "where": f"{origin}, valid row {i}"}
            for i, r in enumerate(rows)], tally


def cap(rows: list[dict], tally: Tally, limit: int = CAP, seed: int = SEED) -> list[dict]:
    """At most `limit` rows, drawn as merge_datasets.py draws them (pandas' sample, random_state=seed)."""
    if len(rows) <= limit:
        return rows
    import pandas as pd

    chosen = pd.Series(range(len(rows))).sample(limit, random_state=seed).tolist()
    for i in sorted(set(range(len(rows))) - set(chosen)):
        tally.drop(f"over the {limit:,}-row cap", rows[i]["where"])
    return [rows[i] for i in chosen]


def question_key(question: str) -> str:
    """What makes two questions the same: their words, whatever the spacing.

    >>> question_key(" How many\\n eggs? ") == question_key("How many eggs?")
    True
    """
    return " ".join(question.split())


def _part_source(source: Path | None, part: str) -> Path | None:
    if source is None:
        return None
    folder = Path(source) / part
    if not folder.is_dir():
        raise UserError(f"{folder} not found: --source for paper_mix must hold {', '.join(p + '/' for p in MIX_PARTS)}")
    return folder


def _unique(rows: list[dict], tally: Tally, seen: set[str], held_out: set[str] | None = None) -> list[dict]:
    """Rows whose question is neither in `held_out` (the test split) nor already `seen` (which grows)."""
    out = []
    for r in rows:
        key = question_key(r["question"])
        if held_out and key in held_out:
            tally.drop("question also in the test split (GSM8K test)", r["where"])
        elif key in seen:
            tally.drop("duplicate of an earlier question", r["where"])
        else:
            seen.add(key)
            out.append(r)
    return out


def build(dataset: str, source: str | Path | None, split: str, skip_invalid: bool = False,
          limit_per_source: int = CAP) -> tuple[list[dict], dict[str, Any]]:
    """The problems of one split of `math` or `paper_mix`, and what was read, kept and dropped per source."""
    source = Path(source) if source is not None else None
    if dataset == "math":
        rows, tally = load_math(source, split, skip_invalid)
        parts = [(_unique(rows, tally, set()), tally)]
    elif dataset == "paper_mix" and split == "test":
        parts = [load_gsm8k(_part_source(source, "gsm8k"), "test", skip_invalid)]
    elif dataset == "paper_mix":
        test = {question_key(r["question"]) for r in load_gsm8k(_part_source(source, "gsm8k"), "test", skip_invalid)[0]}
        loaded = {
            "math": load_math(_part_source(source, "math"), "train", skip_invalid),
            "openr1": load_openr1(_part_source(source, "openr1"), skip_invalid),
            "gsm8k": load_gsm8k(_part_source(source, "gsm8k"), "train", skip_invalid),
        }
        seen: set[str] = set()  # across parts, in the paper's order: a later part loses the duplicate
        parts = [(_unique(cap(rows, tally, limit_per_source), tally, seen, test), tally)
                 for rows, tally in (loaded[name] for name in MIX_PARTS)]
    else:
        raise UserError(f"unknown dataset {dataset!r}; paper_data builds math and paper_mix")
    summary = {}
    for rows, tally in parts:
        tally.log(len(rows))
        summary[tally.name] = tally.summary(len(rows))
    problems = [r for rows, _ in parts for r in rows]
    if not problems:
        raise UserError(f"{dataset} {split}: no rows left after filtering ({summary})")
    return problems, summary
