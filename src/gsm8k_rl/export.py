"""`gsm8k-rl export`: a VERL FSDP checkpoint -> a HuggingFace model folder (transformers, vLLM).

    gsm8k-rl export --run-dir runs/ppo                 # latest checkpoint -> runs/ppo/export/global_step_N
    gsm8k-rl export --run-dir runs/ppo --step 250 --out /models/ppo-250

Uses VERL's own model merger (`python -m verl.model_merger merge --backend fsdp`), then checks
that the folder loads (config, tokenizer with its chat template, weights).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from gsm8k_rl import UserError
from gsm8k_rl.train import RunDir, latest_checkpoint

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", required=True, help="the training run folder (`gsm8k-rl train --run-dir`)")
    p.add_argument("--step", type=int, default=None, help="global step to export (default: the latest checkpoint)")
    p.add_argument("--out", default=None, help="target folder (default: RUN/export/global_step_N)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")


def checkpoint_dir(run: RunDir, step: int | None) -> Path:
    if step is None:
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            raise UserError(f"no checkpoint in {run.checkpoints} (no latest_checkpointed_iteration.txt): has training saved one?")
    else:
        ckpt = run.checkpoints / f"global_step_{step}"
    if not (ckpt / "actor").is_dir():
        have = sorted(p.name for p in run.checkpoints.glob("global_step_*"))
        raise UserError(f"{ckpt / 'actor'} not found; checkpoints present: {have or 'none'}")
    return ckpt


def export_checkpoint(run_dir: str | Path, step: int | None = None, out: str | Path | None = None,
                      overwrite: bool = False) -> Path:
    """Merge the actor's FSDP shards into `out` and verify the result loads; returns `out`."""
    run = RunDir(Path(run_dir))
    ckpt = checkpoint_dir(run, step)
    target = Path(out) if out else run.export / ckpt.name
    if (target / "config.json").exists() and not overwrite:
        raise UserError(f"{target} already holds a model; pass --overwrite to replace it")
    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
           "--local_dir", str(ckpt / "actor"), "--target_dir", str(target)]
    log.info("merging %s -> %s", ckpt / "actor", target)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"VERL's model merger failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    _verify(target)
    (target / "export_info.json").write_text(json.dumps(
        {"checkpoint": str(ckpt), "step": int(ckpt.name.rsplit("_", 1)[1]), "command": cmd}, indent=2) + "\n")
    return target


def _verify(target: Path) -> None:
    """The folder must load as a causal LM with a tokenizer that carries the chat template."""
    from transformers import AutoConfig, AutoTokenizer

    AutoConfig.from_pretrained(target)
    tok = AutoTokenizer.from_pretrained(target)
    if not getattr(tok, "chat_template", None):
        raise UserError(f"{target}: the exported tokenizer has no chat template")
    if not list(target.glob("*.safetensors")):
        raise UserError(f"{target}: no weights (*.safetensors) were written")


def run(args: argparse.Namespace) -> int:
    target = export_checkpoint(args.run_dir, args.step, args.out, args.overwrite)
    print(f"exported HuggingFace model: {target}")
    return 0
