"""gsm8k-rl: reference pipeline for PPO of Qwen3-1.7B on GSM8K with a verifiable reward, on VERL.

Stages (one module each, one CLI `gsm8k-rl`):
prepare (data.py) -> eval (evaluate.py) -> train (train.py) -> export (export.py)
-> eval -> report (report.py); `run` (pipeline.py) chains them.
The prompt lives in prompt.py, the reward in reward.py.
"""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, wrong hardware): printed without a traceback."""
