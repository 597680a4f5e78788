"""A VERL reward manager that can re-score truncated responses. Off by default.

The spec pays correctness only, so a response cut at `data.max_response_length` whose last number
happens to be the answer earns 1.0, and that can pay for rambling. This manager is VERL's naive
manager plus one rule: a response that reached `actor_rollout_ref.rollout.response_length` (=
`data.max_response_length`) without ending on a stop token gets `reward.reward_kwargs.truncated_reward`
instead of its score. With that key null it only counts them. Either way it adds `truncated` (1.0 /
0.0) to the reward's extra info, which VERL logs for validation as
`val-aux/<data_source>/truncated/mean@1` and writes into the validation generation dumps.

VERL loads it by module path (configs/ppo_truncated.yaml, or on any config, docs/config.md):

    reward.reward_manager.source=importlib
    reward.reward_manager.module.path=pkg://gsm8k_rl.verl_ext.reward_manager
    reward.reward_manager.name=TruncationRewardManager
    +reward.reward_kwargs.truncated_reward=0.0

The key sits under `reward.reward_kwargs`, where VERL's DAPO manager reads its own options.
The `acc` extra-info field keeps the answer's correctness, so validation accuracy
(`val-core/.../acc`) still means the same as `gsm8k-rl eval`. What the option changes is the
training reward (`critic/score/mean`).
DAPO's other answer, dropping truncated samples from the loss ("overlong filtering"), cannot be
done from here: a reward manager returns a score, and the loss mask is built by the agent loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

from gsm8k_rl.common.generation import stop_token_ids

OPTION = "reward.reward_kwargs.truncated_reward"
MODULE_PATH = "pkg://gsm8k_rl.verl_ext.reward_manager"
# the paths configs made before the layered tree name it by (gsm8k_rl/reward_manager.py is an alias)
OLD_MODULE_PATHS = ("pkg://gsm8k_rl.reward_manager",)
CLASS_NAME = "TruncationRewardManager"


def truncated_reward_option(cfg: Any) -> float | None:
    """The configured score for a truncated response, or None (count only). Raises ValueError naming the key.

    >>> from omegaconf import OmegaConf
    >>> truncated_reward_option(OmegaConf.create({"reward": {"reward_kwargs": {"truncated_reward": 0}}}))
    0.0
    >>> truncated_reward_option(OmegaConf.create({"reward": {}})) is None
    True
    """
    kwargs = cfg.reward.get("reward_kwargs") or {}
    value = kwargs.get("truncated_reward")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{OPTION} must be a number (the reward of a truncated response) or null, got {value!r}")
    return float(value)


def uses_truncation_manager(cfg: Any) -> bool:
    """Whether VERL will load this manager for `cfg`."""
    m = cfg.reward.reward_manager
    path = (m.get("module") or {}).get("path") or ""
    return m.get("source") == "importlib" and m.get("name") == CLASS_NAME and (
        path in (MODULE_PATH, *OLD_MODULE_PATHS) or path.endswith(("gsm8k_rl/verl_ext/reward_manager.py",
                                                                   "gsm8k_rl/reward_manager.py")))


def check_truncation_option(cfg: Any) -> list[str]:
    """Config problems, for `launch/validate.py`: a bad value, or a value that no manager reads."""
    try:
        value = truncated_reward_option(cfg)
    except ValueError as exc:
        return [str(exc)]
    if value is not None and not uses_truncation_manager(cfg):
        m = cfg.reward.reward_manager
        return [f"{OPTION}={value} is set, but the reward manager is {m.get('source')}:{m.get('name')}, which ignores "
                "it; use --config ppo_truncated, or set reward.reward_manager.source=importlib "
                f"reward.reward_manager.module.path={MODULE_PATH} reward.reward_manager.name={CLASS_NAME}"]
    return []


def is_truncated(response_ids: Sequence[int], max_length: int, stop_ids: set[int]) -> bool:
    """Cut by the length limit: `max_length` tokens and the last one is not a stop token.

    A response whose last allowed token is the stop token ended on its own.

    >>> is_truncated([5, 6, 7], 3, {2}), is_truncated([5, 6, 2], 3, {2}), is_truncated([5, 6], 3, {2})
    (True, False, False)
    """
    return len(response_ids) >= max_length and (not response_ids or int(response_ids[-1]) not in stop_ids)


class TruncationRewardManager(NaiveRewardManager):
    """VERL's naive manager. A truncated response's reward is replaced when the option is set."""

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score, reward_router_address, reward_model_tokenizer)
        self.truncated_reward = truncated_reward_option(config)
        # the agent loop cuts every response to rollout.response_length (single_turn_agent_loop.py)
        self.max_response_length = int(config.actor_rollout_ref.rollout.response_length)
        model = config.actor_rollout_ref.model
        self.stop_ids = set(stop_token_ids(model.get("path"), tokenizer))

    async def run_single(self, data) -> dict:
        result = await super().run_single(data)
        item = data[-1:][0]  # the sequence the naive manager scored
        responses = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-responses.shape[-1]:].sum())
        truncated = is_truncated(responses[:valid].tolist(), self.max_response_length, self.stop_ids)
        result["reward_extra_info"]["truncated"] = float(truncated)
        if truncated and self.truncated_reward is not None:
            result["reward_score"] = self.truncated_reward
        return result
