"""The run folder: one experiment's files, as users know them, and what a restart reads back.

`runs/<name>/`: resolved_config.yaml (the exact config VERL runs), command.sh, environment.txt,
run_info.json, logs/ (train.log, one metrics.<time>.jsonl per launch), metrics.jsonl (every launch's
metrics merged), checkpoints/, val_generations/, tensorboard/, export/, eval/, report/.
A restart resumes from the last checkpoint whose step was logged (`roll_back_unlogged_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsm8k_rl import UserError, __version__
from gsm8k_rl.common.environment import environment_summary
from gsm8k_rl.common.files import read_jsonl, read_yaml, write_atomic

if TYPE_CHECKING:
    from gsm8k_rl.launch.plan import Launch

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunDir:
    """The layout of one experiment's folder."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    resolved_config = property(lambda self: self.root / "resolved_config.yaml")
    command = property(lambda self: self.root / "command.sh")
    run_info = property(lambda self: self.root / "run_info.json")
    env_summary = property(lambda self: self.root / "environment.txt")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    logs = property(lambda self: self.root / "logs")
    checkpoints = property(lambda self: self.root / "checkpoints")
    val_generations = property(lambda self: self.root / "val_generations")
    tensorboard = property(lambda self: self.root / "tensorboard")
    hydra = property(lambda self: self.root / "hydra")
    smoke = property(lambda self: self.root / "smoke")
    export = property(lambda self: self.root / "export")

    def config(self) -> dict[str, Any]:
        """resolved_config.yaml as plain dicts ({} when there is none yet)."""
        return read_yaml(self.resolved_config) if self.resolved_config.is_file() else {}


def default_run_dir(cfg: Any) -> Path:
    """runs/<trainer.experiment_name>: where a run goes when no --run-dir is given."""
    return Path("runs") / cfg.trainer.experiment_name


# Module paths the layered tree renamed (the old ones stay importable as aliases): a run folder made
# before it holds the same run under the old names, which a restart must not take for another config.
RENAMED_MODULES = {
    "gsm8k_rl.local_backend.plugin": "gsm8k_rl.verl_ext.plugin",
    "pkg://gsm8k_rl.replay_buffer": "pkg://gsm8k_rl.verl_ext.replay_buffer",
    "pkg://gsm8k_rl.reward_manager": "pkg://gsm8k_rl.verl_ext.reward_manager",
    "/gsm8k_rl/reward.py": "/gsm8k_rl/task/reward.py",
}


def with_current_module_paths(text: str) -> str:
    """A resolved config with the module paths of before the layered tree renamed to today's.

    >>> with_current_module_paths("VERL_USE_EXTERNAL_MODULES: gsm8k_rl.local_backend.plugin")
    'VERL_USE_EXTERNAL_MODULES: gsm8k_rl.verl_ext.plugin'
    """
    for old, new in RENAMED_MODULES.items():
        text = text.replace(old, new)
    return text


def write_run_files(launch: Launch, allow_config_change: bool = False) -> None:
    """resolved_config.yaml, command.sh, environment.txt; refuse to silently change an existing run's config."""
    from omegaconf import OmegaConf

    run = launch.run
    run.root.mkdir(parents=True, exist_ok=True)
    run.logs.mkdir(exist_ok=True)
    text = OmegaConf.to_yaml(launch.cfg, resolve=True)
    saved = run.resolved_config.read_text() if run.resolved_config.exists() else None
    if saved is not None and saved != text and with_current_module_paths(saved) == text:
        log.info("%s: the same config under the package's current module paths; rewritten with them",
                 run.resolved_config)
    elif saved is not None and saved != text:
        if not allow_config_change:
            raise UserError(
                f"{run.resolved_config} exists with a different config. Resume with the same command, "
                f"use a new --run-dir, or pass --allow-config-change (the old one is kept as a backup)."
            )
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        run.resolved_config.rename(run.root / f"resolved_config.{stamp}.yaml")
    write_atomic(run.resolved_config, text)  # a kill mid-write must not look like a changed config
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(launch.env.items()))
    # a new metrics file per launch: VERL's file logger truncates the file it opens
    env += ' VERL_FILE_LOGGER_PATH="$metrics"'
    logging = " ".join(f'"{o}"' for o in launch.logging_overrides("$metrics"))
    run.command.write_text(
        "#!/usr/bin/env bash\n"
        f"# Written by gsm8k-rl {__version__} (`gsm8k-rl train`); config {launch.config_name!r}, "
        f"backend {launch.backend}.\n"
        f"# Actor/critic kernels: {launch.describe_kernels()} ({launch.attn_source}).\n"
        "# Runs VERL with the exact composed config saved beside this file.\n"
        "# Overrides applied on top of the named config, in order:\n"
        + "".join(f"#   {o}\n" for o in launch.overrides)
        + f"cd {shlex.quote(str(Path.cwd()))}\n"
        + f"metrics={shlex.quote(str(run.logs))}/metrics.$(date -u +%Y%m%dT%H%M%S).jsonl\n"
        + f"env {env} \\\n  " + " ".join(shlex.quote(a) for a in launch.argv()) + f" {logging}" + ' "$@"\n'
    )
    run.command.chmod(0o755)
    run.env_summary.write_text(environment_summary(launch.hardware))


def merge_metrics(run: RunDir) -> int:
    """Rebuild RUN/metrics.jsonl from every attempt's VERL log (VERL opens its file with "wb").

    Each launch logs to its own logs/metrics.<time>.jsonl; a step logged again after a resume
    (steps past the last checkpoint are re-run) keeps the later attempt's line.
    """
    by_step: dict[int, dict] = {}
    for path in sorted(run.logs.glob("metrics.*.jsonl")):
        # a launch killed mid-write leaves its last line torn: dropped, and that step re-runs
        for _, rec in read_jsonl(path):
            by_step.setdefault(int(rec["step"]), {}).update(rec["data"])
    write_atomic(run.metrics, "".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in sorted(by_step.items())))
    return len(by_step)


# VERL logs this key once per finished PPO step (not for the validation before training)
STEP_KEY = "timing_s/step"


def logged_steps(run: RunDir) -> dict[int, dict]:
    """{step: metrics} of RUN/metrics.jsonl (merge_metrics writes it)."""
    if not run.metrics.exists():
        return {}
    return {int(r["step"]): r["data"] for _, r in read_jsonl(run.metrics)}


def file_logged(loggers: Any) -> bool:
    """Whether VERL's file logger (the source of metrics.jsonl) is among trainer.logger.

    >>> file_logged(["console", "file"]), file_logged("console")
    (True, False)
    """
    return "file" in ([loggers] if isinstance(loggers, str) else list(loggers or []))


def training_complete(run: RunDir, total: int, logged: bool = True) -> bool:
    """The last checkpoint is step `total` and (when VERL's file logger runs: `logged`) that
    step's metrics were logged.

    VERL saves a step's checkpoint, then validates, then logs the step: a kill in between leaves
    the final checkpoint without its step's metrics, which only re-running the step brings back.
    """
    ckpt = latest_checkpoint(run)
    if ckpt is None or ckpt.name != f"global_step_{total}":
        return False
    if not logged:
        return True
    merge_metrics(run)
    return STEP_KEY in logged_steps(run).get(total, {})


def roll_back_unlogged_checkpoint(run: RunDir) -> int | None:
    """Before a launch: if the latest checkpoint's step has no logged metrics (killed between VERL's
    save and its log line), resume from the newest earlier checkpoint whose step was logged (or from
    scratch), so that the step is re-run and logged; the unlogged checkpoints are removed. Returns
    the step resumed from (0: from scratch), None when nothing had to change."""
    import shutil

    tracker = run.checkpoints / "latest_checkpointed_iteration.txt"
    if not tracker.exists():
        return None
    ckpt = latest_checkpoint(run)  # None: a tracker torn by a kill during VERL's write of it
    merge_metrics(run)
    steps = logged_steps(run)
    latest = int(ckpt.name.rsplit("_", 1)[1]) if ckpt is not None else 1 << 62
    if STEP_KEY in steps.get(latest, {}):
        return None
    checkpoints = [p for p in run.checkpoints.glob("global_step_*") if _step_of(p) is not None]
    if not any(STEP_KEY in d for d in steps.values()) and len(checkpoints) > 1:
        # several checkpoints and not one logged step: the metrics are not where this launcher reads
        # them (e.g. the file logger ran on a node without VERL_FILE_LOGGER_PATH), not a kill between
        # a save and its log line. Deleting the checkpoints would throw the run away: keep them.
        log.warning("%s: %d checkpoints but no logged step in %s: not rolling back; check where VERL's file logger "
                    "writes (trainer.logger, VERL_FILE_LOGGER_PATH)", run.checkpoints, len(checkpoints), run.logs)
        return None
    ok = [k for p in run.checkpoints.glob("global_step_*") if (k := _step_of(p)) is not None
          and k < latest and (p / "actor").is_dir() and STEP_KEY in steps.get(k, {})]
    back = max(ok, default=0)
    log.warning("%s: step %d was checkpointed but never logged (interrupted between VERL's save and its "
                "log line); resuming from %s so that it is re-run", ckpt or tracker, latest,
                f"global_step_{back}" if back else "scratch")
    if back:
        write_atomic(tracker, str(back))
    else:
        tracker.unlink()
    for p in run.checkpoints.glob("global_step_*"):
        if (k := _step_of(p)) is not None and k > back:
            shutil.rmtree(p)
    return back


def _step_of(path: Path) -> int | None:
    tail = path.name.rsplit("_", 1)[-1]
    return int(tail) if path.is_dir() and tail.isdigit() else None


def latest_checkpoint(run: RunDir) -> Path | None:
    marker = run.checkpoints / "latest_checkpointed_iteration.txt"
    text = marker.read_text().strip() if marker.exists() else ""
    if not text.isdigit():  # none yet, or torn by a kill while VERL wrote it
        return None
    return run.checkpoints / f"global_step_{int(text)}"


def update_run_info(run: RunDir, **fields: Any) -> None:
    info = json.loads(run.run_info.read_text()) if run.run_info.exists() else {}
    info.update(fields)
    write_atomic(run.run_info, json.dumps(info, indent=2, default=str) + "\n")
