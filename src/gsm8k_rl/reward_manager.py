"""Alias of gsm8k_rl.verl_ext.reward_manager: configs written before the layered tree name
`pkg://gsm8k_rl.reward_manager` as VERL's reward.reward_manager.module.path (docs/config.md showed it)."""

from gsm8k_rl.verl_ext.reward_manager import TruncationRewardManager  # noqa: F401
