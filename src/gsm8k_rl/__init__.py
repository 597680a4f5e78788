"""gsm8k-rl: reference pipeline for PPO of Qwen3-1.7B on GSM8K with a verifiable reward, on VERL.

One command, `gsm8k-rl` (cli.py), one subcommand per stage: prepare -> eval -> train -> export ->
eval -> report; `run` (pipeline.py) chains them. The code in layers, each a folder:

- task/        what the model is asked and how it is judged: the prompt, the reward, the datasets
- launch/      configure, check, start and supervise VERL: the configs, the hardware layout, the
               run folder; export a checkpoint
- verl_ext/    what VERL imports in its own processes: the plugin, the hf rollout, the CPU
               platform, attention, trainers (a new algorithm goes here), replay buffer
- evaluation/  greedy or sampled answers, scored as training scores them
- report/      report.md and plots; `compare` of finished runs
- common/      small jobs every layer shares (atomic files, torn JSON lines, stop tokens, generate)
- configs/     the named VERL configs; _recipe.yaml holds the PPO hyperparameters

Old module paths that recorded runs name (gsm8k_rl.reward's file, gsm8k_rl.local_backend.plugin,
gsm8k_rl.replay_buffer, gsm8k_rl.reward_manager) are kept as aliases of their new homes.
"""

__version__ = "0.1.0"


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
