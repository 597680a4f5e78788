"""The old module paths that run folders and configs made before the layered tree name (their
resolved_config.yaml and command.sh, the recorded runs among them) still resolve to the code now in
task/ and verl_ext/, loaded the way VERL loads them."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RECORDED = REPO / "experiments" / "results"


def test_the_old_replay_buffer_path_loads_the_same_classes():
    from verl.utils.import_utils import load_extern_object

    from gsm8k_rl.verl_ext import replay_buffer

    for name in ("QuickPollReplayBuffer", "QuickPollReplayBufferAsync"):
        assert load_extern_object("pkg://gsm8k_rl.replay_buffer", name) is getattr(replay_buffer, name)


def test_the_old_reward_manager_path_loads_the_same_class_and_passes_the_check():
    from verl.utils.import_utils import load_extern_object

    from gsm8k_rl.verl_ext.reward_manager import TruncationRewardManager, check_truncation_option

    assert load_extern_object("pkg://gsm8k_rl.reward_manager", "TruncationRewardManager") is TruncationRewardManager
    cfg = OmegaConf.create({"reward": {
        "reward_manager": {"source": "importlib", "name": "TruncationRewardManager",
                           "module": {"path": "pkg://gsm8k_rl.reward_manager"}},
        "reward_kwargs": {"truncated_reward": 0.0}}})
    assert check_truncation_option(cfg) == []


def test_the_old_plugin_module_registers_the_rollout():
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY

    importlib.import_module("gsm8k_rl.local_backend.plugin")
    assert _ROLLOUT_REGISTRY[("hf", "async")] == "gsm8k_rl.verl_ext.hf_rollout.HFServerAdapter"


def _named_modules(text: str) -> set[str]:
    """gsm8k_rl modules a recorded file names: dotted (plugin, pkg://...) or as a file path.

    >>> sorted(_named_modules("X=gsm8k_rl.local_backend.plugin path: /tmp/w/src/gsm8k_rl/reward.py"))
    ['gsm8k_rl.local_backend.plugin', 'gsm8k_rl/reward.py']
    """
    return set(re.findall(r"gsm8k_rl(?:\.[A-Za-z_]+)+|gsm8k_rl(?:/[A-Za-z_]+)+\.py", text))


@pytest.mark.recorded
def test_every_module_the_recorded_runs_name_still_resolves():
    files = [p for p in RECORDED.rglob("*") if p.name.startswith(("resolved_config", "command")) and p.is_file()]
    if not files:
        pytest.skip(f"no recorded run configs under {RECORDED}")
    named = set().union(*(_named_modules(p.read_text()) for p in files))
    assert named, "the recorded configs name no gsm8k_rl module: the scan is broken"
    for name in sorted(named):
        if name.endswith(".py"):
            assert (SRC / name).is_file(), name
        else:
            importlib.import_module(name)
