"""The supervisor: runs VERL as a child process and keeps the run folder true whatever happens.

The console is teed to logs/train.log; each launch logs its metrics to its own file, merged into
metrics.jsonl when VERL exits, is interrupted or crashes; run_info.json says running, finished,
failed or interrupted. An interrupted launcher stops VERL (SIGINT, then SIGKILL) so that nothing
keeps holding the GPUs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import subprocess
import sys

from gsm8k_rl import UserError
from gsm8k_rl.launch.plan import Launch
from gsm8k_rl.launch.run_dir import (
    file_logged,
    latest_checkpoint,
    merge_metrics,
    roll_back_unlogged_checkpoint,
    update_run_info,
)

log = logging.getLogger(__name__)


def _stop(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGINT (VERL and Ray shut down cleanly on it), then SIGKILL after `grace_s`."""
    import signal

    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launch_training(launch: Launch) -> int:
    """Run VERL in a subprocess, tee its console to logs/train.log, merge metrics whatever happens."""
    run = launch.run
    started = dt.datetime.now(dt.timezone.utc)
    cfg = launch.cfg
    before = json.loads(run.run_info.read_text()) if run.run_info.exists() else {}
    # only where metrics.jsonl is written at all: without VERL's file logger no step is ever
    # "logged", and rolling back would throw every checkpoint away
    rolled_back = roll_back_unlogged_checkpoint(run) if file_logged(cfg.trainer.logger) else None
    resume_from = latest_checkpoint(run)
    update_run_info(
        run, model=cfg.actor_rollout_ref.model.path, config=launch.config_name, backend=launch.backend,
        attn_implementation=launch.attn, attn_source=launch.attn_source, kernels=launch.describe_kernels(),
        hardware=dataclasses.asdict(launch.hardware) if launch.hardware else "cpu",
        n_gpus=launch.hardware.world_size if launch.hardware else 0,
        total_training_steps=cfg.trainer.total_training_steps, attempts=before.get("attempts", 0) + 1,
        resumed_from=str(resume_from) if resume_from else None,
        **({"rolled_back_to_step": rolled_back} if rolled_back is not None else {}),
        status="running", last_start=started.isoformat(),
        start_time=before.get("start_time", started.isoformat()),
    )
    metrics_file = str(run.logs / f"metrics.{started:%Y%m%dT%H%M%S}.jsonl")
    env = {**os.environ, **launch.env, "PYTHONUNBUFFERED": "1", "VERL_FILE_LOGGER_PATH": metrics_file}
    argv = launch.argv() + launch.logging_overrides(metrics_file)
    log.info("launching VERL: %s (console -> %s)", " ".join(argv), run.logs / "train.log")
    rc: int | None = None
    proc: subprocess.Popen | None = None
    try:
        with open(run.logs / "train.log", "ab") as console:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert proc.stdout is not None
            for line in proc.stdout:
                console.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            rc = proc.wait()
    except BaseException:
        if proc is not None:
            _stop(proc)  # an interrupted launcher must not leave VERL running (and holding the GPUs)
        raise
    finally:  # also on Ctrl-C / SIGINT: the metrics logged so far land in metrics.jsonl, and
        # run_info says the launch was interrupted instead of "running" forever
        steps = merge_metrics(run)
        ended = dt.datetime.now(dt.timezone.utc)
        status = "interrupted" if rc is None else "finished" if rc == 0 else f"failed (exit {rc})"
        update_run_info(run, status=status, end_time=ended.isoformat(),
                         wall_time_s=before.get("wall_time_s", 0.0) + (ended - started).total_seconds(),
                         logged_steps=steps,
                         latest_checkpoint=str(final) if (final := latest_checkpoint(run)) else None)
    if rc != 0:
        raise UserError(f"VERL exited with code {rc}; see {run.logs / 'train.log'}. "
                        f"Re-run the same command to resume from the last checkpoint.")
    return 0
