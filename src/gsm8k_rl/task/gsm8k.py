"""Reading the sets in GSM8K's format (GSM8K, GSM8K-Platinum, GSM-Symbolic): a local folder of
`{split}.jsonl` or the hub copy, every row checked; the row reading the other builders share.

Row format: {question, answer}, the answer a solution ending in "#### <number>"
(openai/grade-school-math, dataset.py). A bad row names its file and line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.task.datasets import DATASETS, gsm8k_format
from gsm8k_rl.task.reward import final_answer_text

log = logging.getLogger(__name__)

# What follows the final "####" of a GSM8K gold solution: one number (openai/grade-school-math, dataset.py).
_GOLD = re.compile(r"\s*(-?[\d,]*\d(?:\.\d+)?)\s*")


class BadRow(ValueError):
    """A source row that cannot be used, and why (raised, or skipped with --skip-invalid)."""


def gold_number(answer: str) -> str:
    """The number after the final "####" of a GSM8K solution, commas removed.

    >>> gold_number("Natalia sold 48/2 = 24 clips in May.\\n#### 1,072")
    '1072'
    """
    if not isinstance(answer, str) or not answer.strip():
        raise BadRow("empty 'answer'")
    tail = final_answer_text(answer.strip())
    m = _GOLD.fullmatch(tail) if tail is not None else None
    if m is None:
        tail = answer.strip().splitlines()[-1][:80]
        raise BadRow(f"'answer' does not end with '#### <number>' (last line: {tail!r})")
    return m.group(1).replace(",", "")


def _check_row(row: Any) -> tuple[str, str]:
    if not isinstance(row, dict):
        raise BadRow(f"expected a JSON object, got {type(row).__name__}")
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise BadRow("missing or empty 'question'")
    gold_number(answer)
    return question, answer


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line of a jsonl file; a line that is not UTF-8
    text or not JSON comes as a BadRow saying so, for the caller to raise or skip with its place."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, BadRow(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, BadRow(f"not JSON ({exc.msg})")


def _read_jsonl(path: Path, skip_invalid: bool) -> tuple[list[dict], list[str]]:
    rows, skipped = [], []
    for lineno, record in jsonl_records(path):
        try:
            if isinstance(record, BadRow):
                raise record
            question, answer = _check_row(record)
        except BadRow as exc:
            where = f"{path}:{lineno}: {exc}"
            if not skip_invalid:
                raise UserError(f"bad GSM8K row at {where} (use --skip-invalid to skip such rows)") from exc
            skipped.append(where)
            continue
        rows.append({"question": question, "answer": answer})
    return rows, skipped


def load_gsm8k_split(
    source: str | Path | None, split: str, dataset: str = "gsm8k", skip_invalid: bool = False
) -> list[dict]:
    """Validated {question, answer} rows of one split, from a local folder or the hub.

    Args:
        source: a folder holding `{split}.jsonl`, or None to download `DATASETS[dataset]`.
        split: "train" or "test".
        dataset: a name of DATASETS (GSM8K's format).
        skip_invalid: skip bad rows (logged with file:line) instead of failing.
    """
    return load_gsm8k_split_and_skipped(source, split, dataset, skip_invalid)[0]


def load_gsm8k_split_and_skipped(
    source: str | Path | None, split: str, dataset: str = "gsm8k", skip_invalid: bool = False
) -> tuple[list[dict], list[str]]:
    """load_gsm8k_split, plus where each skipped row was and why (for the caller's counts)."""
    if dataset not in gsm8k_format():
        raise UserError(f"unknown dataset {dataset!r}; choose one of {sorted(gsm8k_format())}")
    if source is not None:
        path = Path(source) / f"{split}.jsonl"
        if not path.is_file():
            raise UserError(f"{path} not found: --source must be a folder with {split}.jsonl")
        rows, skipped = _read_jsonl(path, skip_invalid)
        origin = str(path)
    else:
        rows, skipped, origin = _load_hub(dataset, split, skip_invalid)
    for where in skipped:
        log.warning("skipped %s", where)
    if skipped:
        log.warning("%s: skipped %d invalid rows of %d", origin, len(skipped), len(rows) + len(skipped))
    expected = DATASETS[dataset].official_rows.get(split)
    if expected is not None and len(rows) + len(skipped) != expected:
        log.warning("%s has %d rows; the official %s %s split has %d", origin, len(rows) + len(skipped), dataset,
                    split, expected)
    if not rows:
        raise UserError(f"{origin}: no valid rows")
    return rows, skipped


def _load_hub(dataset: str, split: str, skip_invalid: bool) -> tuple[list[dict], list[str], str]:
    import datasets

    hub_id, config = DATASETS[dataset].hub, DATASETS[dataset].config
    origin = f"hub:{hub_id}[{config}]/{split}"
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # network, auth, renamed dataset: all need the user's action
        raise UserError(f"could not load {origin} ({exc}); pass --source DIR with a local {split}.jsonl") from exc
    rows, skipped = [], []
    for i, row in enumerate(ds):
        try:
            question, answer = _check_row(dict(row))
        except BadRow as exc:
            if not skip_invalid:
                raise UserError(f"bad GSM8K row at {origin} row {i}: {exc}") from exc
            skipped.append(f"{origin} row {i}: {exc}")
            continue
        rows.append({"question": question, "answer": answer})
    return rows, skipped, origin
