"""`gsm8k-rl train --dry-run`: the run folder, the resolved config and the command, without training."""

from __future__ import annotations

import json

import pytest
import yaml

from gsm8k_rl import UserError
from gsm8k_rl.cli import main
from gsm8k_rl.launch.run_dir import (
    STEP_KEY,
    RunDir,
    latest_checkpoint,
    merge_metrics,
    roll_back_unlogged_checkpoint,
    training_complete,
)


@pytest.fixture(scope="module")
def data_dir(gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(out), "--limit", "128"]) == 0
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
    assert cfg["reward"]["custom_reward_function"]["path"].endswith("gsm8k_rl/task/reward.py")
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


def test_a_run_folder_made_before_the_layered_tree_resumes(tmp_path, data_dir, tiny_model_dir):
    """Its resolved_config.yaml names the modules by their old paths (kept as aliases): the same command
    resumes it, with the config rewritten under today's paths, instead of refusing "a different config"."""
    from gsm8k_rl.launch.run_dir import RENAMED_MODULES

    args = ["train", "--dry-run", "--run-dir", str(tmp_path), "--data", str(data_dir), "--model", str(tiny_model_dir),
            "--backend", "local"]
    assert main(args) == 0
    config = tmp_path / "resolved_config.yaml"
    today = config.read_text()
    old = today
    for was, now in RENAMED_MODULES.items():
        old = old.replace(now, was)
    assert old != today and "gsm8k_rl.local_backend.plugin" in old and "/gsm8k_rl/reward.py" in old
    config.write_text(old)
    assert main(args) == 0
    assert config.read_text() == today and not list(tmp_path.glob("resolved_config.*.yaml"))


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


def test_metrics_merge_drops_a_torn_last_line_and_refuses_a_damaged_one(tmp_path):
    """A launch killed while VERL wrote a line leaves it without its newline: that step re-runs, so
    the line is dropped. A whole line that is not JSON is damage, not a kill: said, with its place."""
    run = RunDir(tmp_path)
    run.logs.mkdir()
    lines = "".join(json.dumps({"step": s, "data": {"x": s}}) + "\n" for s in range(3))
    (run.logs / "metrics.20260101T000000.jsonl").write_text(lines + '{"step": 3, "da')
    assert merge_metrics(run) == 3
    (run.logs / "metrics.20260101T000000.jsonl").write_text(lines + "garbage\n" + lines)
    with pytest.raises(UserError, match=r"metrics.20260101T000000.jsonl:4: not a JSON line"):
        merge_metrics(run)


def test_interrupted_launch_is_recorded_and_its_metrics_kept(tmp_path, data_dir, tiny_model_dir):
    """Ctrl-C / SIGINT during training (a pre-empted job; seen on the GPU): run_info said
    "running" forever. Now the launch is marked interrupted and the metrics logged so far are
    merged. The trainer stand-in is a real subprocess that writes one VERL metrics line and waits.
    The launcher runs in its own interpreter, as `gsm8k-rl train` does: in the full suite this
    process's SIGINT arrives blocked (left so by an earlier test), and the test then measured that,
    not the launcher."""
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "waiting_trainer.py").write_text(
        "import json, os, sys, time\n"
        "with open(os.environ['VERL_FILE_LOGGER_PATH'], 'w') as f:\n"
        "    f.write(json.dumps({'step': 1, 'data': {'critic/score/mean': 0.5}}) + '\\n')\n"
        "open(sys.argv[0] + '.pid', 'w').write(str(os.getpid()))\n"
        "print('step:1', flush=True)\n"
        "time.sleep(60)\n")
    # the launcher, with the trainer module swapped for the stand-in (plan -> run files -> launch)
    # A shell gives `gsm8k-rl train` SIGINT unblocked and Python's handler; the test process may not
    # (its mask and dispositions are inherited: in the full suite SIGINT arrived blocked), so the
    # launcher restores both first.
    (tmp_path / "launcher.py").write_text(
        "import dataclasses, json, os, signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from gsm8k_rl.cli import build_parser\n"
        "from gsm8k_rl.launch.plan import plan\n"
        "from gsm8k_rl.launch.run_dir import write_run_files\n"
        "from gsm8k_rl.launch.supervisor import launch_training\n"
        "launch = plan(build_parser().parse_args(json.loads(sys.argv[1])))\n"
        "write_run_files(launch)\n"
        "env = {**launch.env, 'PYTHONPATH': sys.argv[2] + os.pathsep + os.environ.get('PYTHONPATH', '')}\n"
        "try:\n"
        "    launch_training(dataclasses.replace(launch, python_module='waiting_trainer', env=env))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n")
    argv = ["train", "--run-dir", str(run), "--data", str(data_dir), "--model", str(tiny_model_dir), "--backend",
            "local"]
    proc = subprocess.Popen([sys.executable, str(tmp_path / "launcher.py"), json.dumps(argv), str(tmp_path / "mods")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in proc.stdout:  # the launcher echoes the trainer's console: wait for its step
            seen.append(line)
            if line.startswith("step:1"):
                proc.send_signal(signal.SIGINT)  # Ctrl-C / a scheduler's pre-emption
                break
        rest, _ = proc.communicate(timeout=50)
    finally:
        proc.kill()
    assert proc.returncode == 130, "".join(seen) + rest  # KeyboardInterrupt reached the launcher's caller
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "interrupted" and info["logged_steps"] == 1 and info["wall_time_s"] > 0
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    # and the trainer did not outlive the launcher (the launcher forwards SIGINT, then stops it)
    pid = int((tmp_path / "mods" / "waiting_trainer.py.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _checkpointed_run(tmp_path, saved: list[int], logged: list[int], tracker: str) -> RunDir:
    """A run folder as VERL leaves it: checkpoints of `saved` steps, a tracker, and one attempt's
    metrics log with the steps `logged` (step 0 is the validation before training)."""
    run = RunDir(tmp_path)
    run.logs.mkdir(parents=True, exist_ok=True)
    run.checkpoints.mkdir(exist_ok=True)
    for s in saved:
        (run.checkpoints / f"global_step_{s}" / "actor").mkdir(parents=True)
    (run.checkpoints / "latest_checkpointed_iteration.txt").write_text(tracker)
    (run.logs / "metrics.20260101T000000.jsonl").write_text("".join(
        json.dumps({"step": s, "data": {"val/score": 0.0} if s == 0 else {STEP_KEY: 1.0}}) + "\n"
        for s in [0, *logged]))
    return run


def test_checkpoint_whose_step_was_never_logged_is_rolled_back(tmp_path):
    """VERL saves step N's checkpoint, then validates, then logs step N. The fault-injection harness
    killed a run in between: the pipeline saw the final checkpoint, skipped training, and
    metrics.jsonl lacked the last step for good. Now that step counts as not done and is re-run."""
    run = _checkpointed_run(tmp_path / "a", saved=[1, 2], logged=[1], tracker="2")
    assert not training_complete(run, 2)
    assert roll_back_unlogged_checkpoint(run) == 1  # resume from the newest logged checkpoint
    assert latest_checkpoint(run).name == "global_step_1"
    assert sorted(p.name for p in run.checkpoints.glob("global_step_*")) == ["global_step_1"]

    run = _checkpointed_run(tmp_path / "b", saved=[2], logged=[1], tracker="2")  # the smoke run's layout
    assert roll_back_unlogged_checkpoint(run) == 0  # no earlier checkpoint: from scratch
    assert latest_checkpoint(run) is None and not list(run.checkpoints.glob("global_step_*"))

    run = _checkpointed_run(tmp_path / "c", saved=[2], logged=[1, 2], tracker="2")  # a finished run
    assert training_complete(run, 2)
    assert roll_back_unlogged_checkpoint(run) is None
    assert latest_checkpoint(run).name == "global_step_2"


def test_checkpoints_without_any_logged_step_are_kept(tmp_path, caplog):
    """Issue 16's two-node run: VERL's file logger ran on a node that did not have the launcher's
    VERL_FILE_LOGGER_PATH, no step reached metrics.jsonl, and the restart took the checkpoints for
    unlogged ones and deleted them all. With several checkpoints and not one logged step, the
    launcher keeps them and says why."""
    run = _checkpointed_run(tmp_path / "a", saved=[1, 2], logged=[], tracker="2")
    assert roll_back_unlogged_checkpoint(run) is None
    assert latest_checkpoint(run).name == "global_step_2"
    assert sorted(p.name for p in run.checkpoints.glob("global_step_*")) == ["global_step_1", "global_step_2"]
    assert "no logged step" in caplog.text


def test_logger_paths_reach_verls_actors_on_the_command_line(tmp_path, data_dir, tiny_model_dir):
    """The file logger's per-launch path and the tensorboard folder go to VERL's Ray runtime env as
    command-line overrides (actors on other nodes see only that), not into the saved config."""
    run = tmp_path / "run"
    assert main(["train", "--dry-run", "--run-dir", str(run), "--data", str(data_dir), "--model",
                 str(tiny_model_dir)]) == 0
    command = (run / "command.sh").read_text()
    assert "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='$metrics'" in command
    assert f"++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR='{run / 'tensorboard'}'" in command
    assert "VERL_FILE_LOGGER_PATH" not in (run / "resolved_config.yaml").read_text()


def test_torn_checkpoint_tracker_is_no_checkpoint(tmp_path):
    """A kill while VERL rewrites latest_checkpointed_iteration.txt ("w", then the number) leaves
    it empty: that reads as no checkpoint, and the launch resumes from the newest logged one."""
    run = _checkpointed_run(tmp_path, saved=[1, 2], logged=[1], tracker="")
    assert latest_checkpoint(run) is None and not training_complete(run, 2)
    assert roll_back_unlogged_checkpoint(run) == 1
    assert latest_checkpoint(run).name == "global_step_1"


def test_without_the_file_logger_checkpoints_are_never_rolled_back(tmp_path, data_dir, tiny_model_dir):
    """With trainer.logger lacking "file" no step is ever logged: the roll-back would have deleted
    every checkpoint at each restart. Then the checkpoint alone says what is done."""
    import dataclasses

    from gsm8k_rl.cli import build_parser
    from gsm8k_rl.launch.plan import plan
    from gsm8k_rl.launch.run_dir import file_logged, write_run_files
    from gsm8k_rl.launch.supervisor import launch_training

    run_dir = tmp_path / "run"
    args = build_parser().parse_args(["train", "--run-dir", str(run_dir), "--data", str(data_dir), "--model",
                                      str(tiny_model_dir), "--backend", "local", "trainer.logger=[console]"])
    launch = plan(args)
    assert not file_logged(launch.cfg.trainer.logger)
    write_run_files(launch)
    run = _checkpointed_run(run_dir, saved=[2], logged=[], tracker="2")
    assert training_complete(run, 2, logged=False) and not training_complete(run, 2)
    # a trainer stand-in that exits at once: what matters is what the launch did to the checkpoints
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "done_trainer.py").write_text("print('nothing to do')\n")
    env = {**launch.env, "PYTHONPATH": str(tmp_path / "mods")}
    launch_training(dataclasses.replace(launch, python_module="done_trainer", env=env))
    assert latest_checkpoint(run).name == "global_step_2" and (run.checkpoints / "global_step_2" / "actor").is_dir()


def test_data_prepared_with_another_prompt_is_refused(tmp_path, prepared_gsm8k, data_dir, tiny_model_dir, capsys):
    """The config's prepare.template is the prompt it trains on, and the one `gsm8k-rl run` evaluates
    with: rows carrying another (extra_info.prompt_template) are refused, naming the file and the fix.
    Issue 29: the refused config left resolved_config.yaml behind, and the fix the message gives was
    then refused in the same --run-dir as "a different config"."""
    hashed = prepared_gsm8k["hash"]
    run = tmp_path / "r"
    args = ["train", "--dry-run", "--run-dir", str(run), "--data", str(hashed), "--model", str(tiny_model_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{hashed / 'train.parquet'} holds rows prepared with --template hash (128 of 128 rows)" in err
    assert "prepare.template=plain" in err and "prepare.template=hash" in err
    assert not run.exists()  # nothing written that the fix would be compared against
    # the fix the message gives, in the same run folder: the override makes the config's prompt the data's
    assert main(args + ["prepare.template=hash"]) == 0
    # the paper's preset wants its own prompt: the spec's data is refused for it
    paper = ["train", "--dry-run", "--config", "paper_ppo", "--run-dir", str(tmp_path / "p"), "--data", str(data_dir),
             "--model", str(tiny_model_dir)]
    assert main(paper) == 2
    assert "prepare.template=paper" in capsys.readouterr().err


def test_prompt_is_checked_in_the_rows_of_each_file(tmp_path, gsm8k_dir, tiny_model_dir, capsys):
    """Issue 29: the check read prepare_info.json alone. Train prepared plain and test with `hash` in one
    folder: the error names test.parquet; without prepare_info.json the rows still say which prompt."""
    data = tmp_path / "data"
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(data), "--limit", "128", "--splits", "train"]) == 0
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(data), "--limit", "128", "--splits", "test",
                 "--template", "hash"]) == 0
    (data / "prepare_info.json").unlink()
    args = ["train", "--dry-run", "--run-dir", str(tmp_path / "r"), "--data", str(data), "--model", str(tiny_model_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"data.val_files: {data / 'test.parquet'} holds rows prepared with --template hash" in err
    assert str(data / "train.parquet") not in err


def test_training_set_smaller_than_one_batch_is_refused(tmp_path, gsm8k_dir, tiny_model_dir, capsys):
    """Issue 29: 10 training rows and train_batch_size=128 passed the dry run and doctor without a word
    (VERL drops the incomplete batch and has nothing to train)."""
    data = tmp_path / "data"
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(data), "--limit", "10"]) == 0
    common = ["--run-dir", str(tmp_path / "r"), "--data", str(data), "--model", str(tiny_model_dir)]
    assert main(["train", "--dry-run", *common]) == 2
    assert (f"data.train_files: {data / 'train.parquet'} has 10 rows, fewer than data.train_batch_size=128"
            in capsys.readouterr().err)
    assert main(["doctor", *common]) == 1
    assert "has 10 rows, fewer than data.train_batch_size=128" in capsys.readouterr().out
    assert main(["train", "--dry-run", *common, "data.train_batch_size=10",
                 "actor_rollout_ref.actor.ppo_mini_batch_size=5"]) == 0


def test_memory_is_planned_for_the_model_that_trains(tmp_path, tiny_model_dir, qwen3_dir):
    """On one 80 GB GPU the recipe's Qwen3-1.7B needs its Adam states on the host; a tiny model does
    not, and the plan now says so (it used to size every model as Qwen3-1.7B). A model whose config
    cannot be read here is planned as Qwen3-1.7B."""
    from gsm8k_rl.cli import build_parser
    from gsm8k_rl.launch.plan import plan

    def offloaded(model: str) -> bool:
        args = build_parser().parse_args(["train", "--dry-run", "--backend", "vllm", "--gpus", "1", "--gpu-memory-gb",
                                          "80", "--model", model, "--run-dir", str(tmp_path / "r")])
        return plan(args).cfg.actor_rollout_ref.actor.fsdp_config.optimizer_offload

    assert offloaded(str(qwen3_dir)) is True
    assert offloaded(str(tiny_model_dir)) is False
    assert offloaded("no-such-org/no-such-model") is True
