"""Files a kill must not corrupt: written whole (temp file + rename), and JSON-lines files read back
with a torn last line (what a killed writer leaves) dropped, or cut off before appending."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError

log = logging.getLogger(__name__)


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a kill leaves the old
    file or the new one, never a torn one that a restart would misread as finished or changed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_jsonl(path: str | Path, *, cut_torn: bool = False, hint: str = "the file is damaged") -> list[tuple[int, Any]]:
    """(line number, record) of every non-blank line of a JSON-lines file.

    A last line without its newline is torn (its writer was killed mid-line; every writer here puts
    a record and its newline in one write): dropped with a warning, and with `cut_torn` cut off the
    file too, so that appending to it starts a fresh line. Any other line that is not JSON is damage:
    a UserError naming the file and line, with `hint` on what to do.

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = p.write_text('{"a": 1}\\n\\n{"a": 2}\\n{"a": 3')
    >>> read_jsonl(p, cut_torn=True), p.read_text()
    ([(1, {'a': 1}), (3, {'a': 2})], '{"a": 1}\\n\\n{"a": 2}\\n')
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        log.warning("%s: dropping a half-written last line (%d bytes) left by an interrupted run", path, len(raw) - cut)
        if cut_torn:
            with path.open("r+b") as f:
                f.truncate(cut)
        raw = raw[:cut]
    records = []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: not a JSON line ({exc}); {hint}") from exc
    return records


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file (a run's resolved_config.yaml) as plain dicts; {} for an empty file."""
    import yaml

    return yaml.safe_load(Path(path).read_text()) or {}
