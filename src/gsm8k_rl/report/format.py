"""Formatting for the report: numbers, percentages, durations, markdown tables; MISSING for gaps."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

MISSING = "missing / not yet run"


def fmt(value: Any, spec: str = "") -> str:
    """A number formatted, or MISSING for None (the report never fills a gap).

    >>> fmt(0.71234, ".3f"), fmt(None, ".3f"), fmt("Qwen/Qwen3-1.7B")
    ('0.712', 'missing / not yet run', 'Qwen/Qwen3-1.7B')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return format(value, spec)


def pct(value: float | None, digits: int = 1) -> str:
    """A proportion as a percentage.

    >>> pct(0.6875), pct(None)
    ('68.8%', 'missing / not yet run')
    """
    return MISSING if value is None else f"{100 * value:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """Seconds as h/m/s.

    >>> duration(3725.0), duration(42.4)
    ('1h 02m 05s', '42.4 s')
    """
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table.

    >>> print(_table(["a", "b"], [(1, "x|y")]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    return "\n".join([_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)])


def _fence(text: str) -> str:
    """A fenced block that no backtick run inside `text` can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"
