"""Alias of gsm8k_rl/task/reward.py, kept because run folders made before the layered tree name this
file as VERL's `reward.custom_reward_function.path` (their resolved_config.yaml and command.sh,
among them the recorded runs in experiments/results/). New runs name task/reward.py.

VERL loads the file by path, outside the package: the import below finds the installed package.
"""

from gsm8k_rl.task.reward import *  # noqa: F401,F403
from gsm8k_rl.task.reward import compute_score  # noqa: F401  (what VERL looks up by name)
