"""gsm8k-rl: reference pipeline for PPO of Qwen3-1.7B on GSM8K with a verifiable reward, on VERL.

Stages (one module each, one CLI `gsm8k-rl`):
prepare (data.py) -> eval (evaluate.py) -> train (train.py) -> export (export.py)
-> eval -> report (report/); `run` (pipeline.py) chains them.
The prompt lives in prompt.py, the reward in reward.py.
"""

__version__ = "0.1.0"


def write_atomic(path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a kill leaves the old
    file or the new one, never a torn one that a restart would misread as finished or changed."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, wrong hardware): printed without a traceback."""


def model_ref(value: str) -> str:
    """argparse type for --model/--tokenizer: an existing local folder or a hub id ("owner/name").

    Checked before anything loads, so a mistyped path is reported as a missing folder instead of
    as a malformed hub id by the hub client.

    >>> model_ref("Qwen/Qwen3-1.7B")
    'Qwen/Qwen3-1.7B'
    >>> model_ref("/no/such/dir")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: model folder '/no/such/dir' does not exist
    """
    import argparse
    import re
    from pathlib import Path

    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{value!r} is a file, not a model folder")
        return value
    if value.startswith(("/", ".", "~")) or value.count("/") > 1:
        raise argparse.ArgumentTypeError(f"model folder {value!r} does not exist")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", value):
        raise argparse.ArgumentTypeError(f"{value!r} is neither an existing folder nor a hub id (owner/name)")
    return value
