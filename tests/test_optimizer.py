"""`--optimizer adamw8bit`: torchao's 8-bit Adam for actor and critic through VERL's own optimizer
builder, and the launcher's memory plan that keeps such states on the GPU where fp32 ones are offloaded."""

from __future__ import annotations

import importlib.util

import pytest

from gsm8k_rl.launch.compose import compose_config
from gsm8k_rl.launch.layout import Hardware, adam_state_bytes, layout_overrides, optimizer_overrides

needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None,
                                   reason="torchao not installed (pip install -e '.[adam8bit]'; make setup-test does)")


def _offloads(hw: Hardware, *extra: str) -> bool:
    base = compose_config("ppo", list(extra))
    ov = layout_overrides(hw, base)
    return "actor_rollout_ref.actor.fsdp_config.optimizer_offload=true" in ov


@pytest.mark.parametrize("hw", [Hardware(1, 80.0), Hardware(2, 40.0)])
def test_8bit_states_stay_on_the_gpu_where_fp32_ones_go_to_the_host(hw):
    assert _offloads(hw)
    assert not _offloads(hw, *optimizer_overrides("adamw8bit"))
    assert not _offloads(Hardware(1, 141.0))  # an H200 holds fp32 states anyway


def test_state_bytes_follow_the_config():
    assert adam_state_bytes(compose_config("ppo")) == 8.0
    assert adam_state_bytes(compose_config("ppo", optimizer_overrides("adamw8bit"))) == 2.1
    # only the actor on 8 bits: the critic's fp32 states size the plan
    only_actor = optimizer_overrides("adamw8bit")[:2]
    assert adam_state_bytes(compose_config("ppo", only_actor)) == 8.0


def test_cli_flag_and_user_overrides(tmp_path, qwen3_dir):
    """Planned for the recipe's model (the real Qwen3-1.7B config, no weights needed to plan) on one 80 GB GPU."""
    from gsm8k_rl.cli import build_parser
    from gsm8k_rl.launch.plan import plan

    def planned(*extra):
        args = build_parser().parse_args(["train", "--dry-run", "--backend", "vllm", "--gpus", "1", "--gpu-memory-gb",
                                          "80", "--model", str(qwen3_dir), "--run-dir", str(tmp_path / "r"), *extra])
        return plan(args).cfg

    cfg = planned("--optimizer", "adamw8bit")
    for optim in (cfg.actor_rollout_ref.actor.optim, cfg.critic.optim):
        assert (optim.optimizer_impl, optim.optimizer) == ("torchao.optim", "AdamW8bit")
    assert cfg.actor_rollout_ref.actor.fsdp_config.optimizer_offload is False
    # the user's own keys still win over the shorthand
    cfg = planned("--optimizer", "adamw8bit", "critic.optim.optimizer=AdamW4bit")
    assert cfg.critic.optim.optimizer == "AdamW4bit" and cfg.actor_rollout_ref.actor.optim.optimizer == "AdamW8bit"
    assert planned().actor_rollout_ref.actor.fsdp_config.optimizer_offload is True


@needs_torchao
def test_verl_builds_it_from_the_composed_config_and_it_trains():
    """VERL's own path: the composed config -> its optimizer dataclass -> build_optimizer; one AdamW step
    and one AdamW8bit step from the same weights and gradient agree to 8-bit precision."""
    import torch
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config.optimizer import build_optimizer

    cfg = compose_config("ppo", optimizer_overrides("adamw8bit") + ["actor_rollout_ref.actor.optim.lr=1e-3"])
    optim_cfg = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor.optim)
    torch.manual_seed(0)
    weights = torch.randn(64, 256)  # 16,384 elements: above torchao's size for quantized states
    params = {}
    for name, conf in (("fp32", omega_conf_to_dataclass(compose_config(
            "ppo", ["actor_rollout_ref.actor.optim.lr=1e-3"]).actor_rollout_ref.actor.optim)), ("8bit", optim_cfg)):
        p = torch.nn.Parameter(weights.clone())
        opt = build_optimizer([p], conf)
        for _ in range(3):
            p.grad = torch.sin(p.detach() * 3)  # the same deterministic gradient field for both
            opt.step()
        params[name] = p.detach()
        if name == "8bit":
            assert type(opt).__module__.startswith("torchao.optim")
            state = opt.state[p]
            assert type(state["exp_avg"]).__name__ == "OptimState8bit"
    moved = (params["fp32"] - weights).norm()
    assert moved > 0
    assert (params["8bit"] - params["fp32"]).norm() / moved < 0.05
