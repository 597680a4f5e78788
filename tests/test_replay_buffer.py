"""The rollout wait: VERL's replay buffer polled every 0.1 s (gsm8k_rl.verl_ext.replay_buffer), installed by the
launcher through VERL's custom_sampler config and loaded by VERL's own loader, and left out where VERL
would hand its built-in buffer settings a custom one does not get."""

from __future__ import annotations

import pytest

from gsm8k_rl.cli import build_parser, main
from gsm8k_rl.launch.compose import compose_config
from gsm8k_rl.launch.plan import QUICK_POLL_S, plan, replay_buffer_overrides
from gsm8k_rl.launch.validate import validate_config


@pytest.fixture(scope="module")
def data_dir(gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(out), "--limit", "128"]) == 0
    return out


def _plan(tmp_path, data_dir, tiny_model_dir, *extra):
    args = build_parser().parse_args(["train", "--dry-run", "--backend", "local", "--run-dir", str(tmp_path / "run"),
                                      "--data", str(data_dir), "--model", str(tiny_model_dir), *extra])
    return plan(args)


def _build_like_verl(cfg):
    """What VERL 0.9.1's trainer does with a custom sampler (PPOTrainer._build_replay_buffer): load the
    class with its own loader, pass the base constructor arguments from the config."""
    from verl.utils.import_utils import load_extern_type

    sampler = cfg.trainer.v1.sampler
    cls = load_extern_type(sampler.custom_sampler.path, sampler.custom_sampler.name)
    mode = cfg.trainer.v1.trainer_mode
    return cls(trainer_mode=mode, trainer_config=cfg.trainer.v1.get(mode, {}),
               max_off_policy_threshold=sampler.max_off_policy_threshold,
               max_off_policy_strategy=sampler.max_off_policy_strategy,
               sampler_kwargs=sampler.sampler_kwargs, refill_fn=lambda n: None)


def test_launcher_installs_it_and_verl_loads_it(tmp_path, data_dir, tiny_model_dir, capsys):
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

    launch = _plan(tmp_path, data_dir, tiny_model_dir)
    validate_config(launch.cfg, extra_rollouts=("hf",))  # VERL's schema takes the three keys
    assert "polled every 0.1 s" in launch.replay_buffer
    buffer = _build_like_verl(launch.cfg)
    # VERL's own sync buffer (what trainer_mode=sync gets without us), only the poll interval differs
    assert isinstance(buffer, ReplayBuffer) and not isinstance(buffer, ReplayBufferAsync)
    assert buffer.poll_interval == QUICK_POLL_S
    assert ReplayBuffer(trainer_mode="sync", trainer_config={}, max_off_policy_threshold=8,
                        max_off_policy_strategy="drop", sampler_kwargs={}).poll_interval == 2.0
    assert "QuickPollReplayBuffer: polling every 0.1 s" in capsys.readouterr().out  # lands in train.log


def test_self_aligned_mode_gets_the_async_buffer_as_verl_would(tmp_path, data_dir, tiny_model_dir):
    """VERL picks ReplayBufferAsync for every trainer mode but "sync" (sa_ppo's mode is the plugin's)."""
    from verl.trainer.ppo.v1.replay_buffer import ReplayBufferAsync

    launch = _plan(tmp_path, data_dir, tiny_model_dir, "--config", "sa_ppo")
    assert launch.cfg.trainer.v1.trainer_mode != "sync"
    buffer = _build_like_verl(launch.cfg)
    assert isinstance(buffer, ReplayBufferAsync) and buffer.poll_interval == QUICK_POLL_S


def test_user_can_set_the_interval_and_bad_values_are_refused(tmp_path, data_dir, tiny_model_dir):
    launch = _plan(tmp_path, data_dir, tiny_model_dir, "++trainer.v1.sampler.sampler_kwargs.poll_interval=0.5")
    assert _build_like_verl(launch.cfg).poll_interval == 0.5
    launch = _plan(tmp_path, data_dir, tiny_model_dir, "++trainer.v1.sampler.sampler_kwargs.poll_interval=0")
    with pytest.raises(ValueError, match="poll_interval must be a number of seconds > 0, got 0"):
        _build_like_verl(launch.cfg)


@pytest.mark.parametrize("overrides, why", [
    (["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"], "algorithm.filter_groups.enable"),
    (["trainer.v1.sampler.sync_refill_failed_groups=true"], "sync_refill_failed_groups"),
    (["trainer.v1.sampler.custom_sampler.path=pkg://my.sampler", "trainer.v1.sampler.custom_sampler.name=Mine"],
     "custom_sampler (Mine)"),
])
def test_left_to_verl_where_a_custom_sampler_would_lose_settings(overrides, why):
    cfg = compose_config("ppo", overrides)
    ov, note = replay_buffer_overrides(cfg)
    assert ov == [] and why in note


def test_plain_path_keeps_verls_buffer(tmp_path, data_dir, tiny_model_dir):
    launch = _plan(tmp_path, data_dir, tiny_model_dir, "--fast-path", "off")
    assert launch.cfg.trainer.v1.sampler.custom_sampler.path is None
    assert launch.replay_buffer == "replay buffer: VERL's own, polled every 2.0 s (--fast-path off)"


# VERL's real trainer instantiates both classes in the slow smoke runs: the sync one in
# tests/test_fast_path.py::test_two_ppo_steps_on_the_fast_path_through_verls_trainer, the async one in
# tests/test_self_aligned.py::test_two_steps_of_sa_ppo_through_verls_trainer (their train.log).
