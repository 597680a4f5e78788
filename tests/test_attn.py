"""`gsm8k-rl train --attn`: the attention choice is explicit, logged where it was made, and recorded
(issue 15, item 7; torch_varlen and the fast path: issue 12)."""

import importlib.util
import json
import platform

import pytest

from gsm8k_rl.cli import main
from gsm8k_rl.launch.smoke import SMOKE_DATA


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    assert main(["prepare", "--source", str(SMOKE_DATA), "--out", str(out)]) == 0
    return out


def _plan(tmp_path, smoke_data, model, *extra):
    run = tmp_path / "run"
    # the shipped slice holds 64 training rows: batches of 64 (the recipe's 128 would be refused)
    assert main(["train", "--dry-run", "--run-dir", str(run), "--data", str(smoke_data), "--model", str(model),
                 "data.train_batch_size=64", *extra]) == 0
    return run, (run / "command.sh").read_text()


@pytest.mark.parametrize("attn", ["sdpa", "torch_varlen", "flash_attention_2"])
def test_attn_flag_is_applied_and_recorded(tmp_path, smoke_data, tiny_model_dir, attn):
    import yaml

    run, command = _plan(tmp_path, smoke_data, tiny_model_dir, "--attn", attn)
    cfg = yaml.safe_load((run / "resolved_config.yaml").read_text())
    packing = "padded" if attn == "sdpa" else "packed"
    assert f"# Actor/critic kernels: attention {attn}, {packing} micro-batches" in command
    assert f"(--attn {attn};" in command
    for role in ("actor_rollout_ref", "critic"):
        override = cfg[role]["model"].get("override_config", {}).get("attn_implementation")
        assert override == (None if attn == "flash_attention_2" else attn)  # flash_attention_2 is VERL's own default
        assert cfg[role]["model"]["use_remove_padding"] is (attn != "sdpa")


def test_attn_auto_names_the_machine_that_decided(tmp_path, smoke_data, tiny_model_dir, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="gsm8k_rl.launch.plan")
    run, command = _plan(tmp_path, smoke_data, tiny_model_dir)
    # planned for a vLLM run (GPUs), here without flash-attn: PyTorch's varlen kernels are the fallback
    expected = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "torch_varlen"
    assert f"# Actor/critic kernels: attention {expected}, packed micro-batches" in command
    where = f"on {platform.node()}, the machine that planned the run"
    assert f"(--attn auto: flash-attn is not importable {where}" in command
    assert any(platform.node() in r.getMessage() and "attention" in r.getMessage() for r in caplog.records)


def test_attn_flash_refused_on_the_local_backend(tmp_path, smoke_data, tiny_model_dir, capsys):
    rc = main(["train", "--dry-run", "--backend", "local", "--run-dir", str(tmp_path / "r"), "--data", str(smoke_data),
               "--model", str(tiny_model_dir), "--attn", "flash_attention_2"])
    assert rc == 2 and "local backend trains with SDPA or torch_varlen" in capsys.readouterr().err


def test_attn_recorded_in_run_info(tmp_path):
    """launch_training writes run_info.json first; a VERL that exits at once is enough to see it."""
    import sys

    from gsm8k_rl.launch.compose import compose_config
    from gsm8k_rl.launch.layout import Hardware
    from gsm8k_rl.launch.plan import Launch
    from gsm8k_rl.launch.run_dir import RunDir
    from gsm8k_rl.launch.supervisor import launch_training

    run = RunDir(tmp_path / "run")
    run.logs.mkdir(parents=True)
    launch = Launch(run, "ppo", [], compose_config("ppo"), "json.tool", {}, None, "vllm", Hardware(1, 80.0),
                    "sdpa", "--attn sdpa")
    launch.argv = lambda: [sys.executable, "-c", "pass"]  # no VERL: only the bookkeeping is under test
    assert launch_training(launch) == 0
    info = json.loads(run.run_info.read_text())
    assert info["attn_implementation"] == "sdpa" and info["attn_source"] == "--attn sdpa"
