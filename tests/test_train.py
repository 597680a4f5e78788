"""`gsm8k-rl train --dry-run`: the run folder, the resolved config and the command, without training."""

from __future__ import annotations

import json

import pytest
import yaml

from gsm8k_rl.cli import main
from gsm8k_rl.train import RunDir, merge_metrics


@pytest.fixture(scope="module")
def data_dir(gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(out), "--limit", "16"]) == 0
    return out


def test_dry_run_writes_resolved_config_and_command(tmp_path, data_dir, tiny_model_dir):
    run = tmp_path / "run"
    rc = main(["train", "--dry-run", "--run-dir", str(run), "--data", str(data_dir), "--model", str(tiny_model_dir),
               "actor_rollout_ref.actor.optim.lr=3e-6", "trainer.test_freq=10"])
    assert rc == 0
    cfg = yaml.safe_load((run / "resolved_config.yaml").read_text())
    # the user's overrides pass through untouched and win
    assert cfg["actor_rollout_ref"]["actor"]["optim"]["lr"] == 3e-6
    assert cfg["trainer"]["test_freq"] == 10
    # the launcher's decisions: data, reward, run folder, hardware layout (no GPU here: sized for 1 x 80 GB)
    assert cfg["data"]["train_files"] == str(data_dir / "train.parquet")
    assert cfg["reward"]["custom_reward_function"]["path"].endswith("gsm8k_rl/reward.py")
    assert cfg["trainer"]["default_local_dir"] == str(run / "checkpoints")
    assert cfg["trainer"]["n_gpus_per_node"] == 1
    assert cfg["actor_rollout_ref"]["model"]["path"] == str(tiny_model_dir)
    assert cfg["critic"]["model"]["path"] == str(tiny_model_dir)  # interpolation resolved
    command = (run / "command.sh").read_text()
    assert "-m verl.trainer.main_ppo" in command and f"--config-path {run}" in command
    assert "actor_rollout_ref.actor.optim.lr=3e-6" in command  # recorded in the header
    assert "VERL_FILE_LOGGER_PATH" in command
    assert "verl 0.9.1" in (run / "environment.txt").read_text()
    assert not (run / "checkpoints").exists()  # nothing started


def test_restart_with_other_config_is_refused(tmp_path, data_dir, tiny_model_dir, capsys):
    args = ["train", "--dry-run", "--run-dir", str(tmp_path), "--data", str(data_dir), "--model", str(tiny_model_dir)]
    assert main(args) == 0
    assert main(args) == 0  # same command: fine (a resume)
    assert main(args + ["trainer.save_freq=7"]) == 2
    assert "different config" in capsys.readouterr().err
    assert main(args + ["trainer.save_freq=7", "--allow-config-change"]) == 0
    assert len(list(tmp_path.glob("resolved_config.*.yaml"))) == 1  # the old one kept


def test_typo_in_override_fails_cleanly(tmp_path, data_dir, tiny_model_dir, capsys):
    rc = main(["train", "--dry-run", "--run-dir", str(tmp_path), "--data", str(data_dir),
               "--model", str(tiny_model_dir), "trainer.totl_training_steps=3"])
    assert rc == 2
    assert "trainer.totl_training_steps" in capsys.readouterr().err


def test_no_gpu_refuses_real_run(tmp_path, data_dir, tiny_model_dir, capsys):
    rc = main(["train", "--run-dir", str(tmp_path), "--data", str(data_dir), "--model", str(tiny_model_dir)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--backend local --smoke" in err


def test_metrics_merge_keeps_every_attempt(tmp_path):
    run = RunDir(tmp_path)
    run.logs.mkdir()
    # first attempt logged steps 0..3 and crashed; the checkpoint was at 2, so the resume re-ran 3
    (run.logs / "metrics.20260101T000000.jsonl").write_text(
        "".join(json.dumps({"step": s, "data": {"x": s, "attempt": 1}}) + "\n" for s in range(4)))
    (run.logs / "metrics.20260101T010000.jsonl").write_text(
        "".join(json.dumps({"step": s, "data": {"x": s, "attempt": 2}}) + "\n" for s in (3, 4)))
    assert merge_metrics(run) == 5
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 1, 2, 3, 4]
    assert [r["data"]["attempt"] for r in lines] == [1, 1, 1, 2, 2]
