"""What order the trainer's batch is in, and what each PPO mini-batch holds.

Why: VERL 0.9.1's v1 trainer puts each response into its TransferQueue when it finishes, and the
batch keeps that order; without `shuffle`, the mini-batches of a step are consecutive slices of
it. With a continuous-batching rollout (vLLM) short answers finish first, so mini-batch 1 would
hold the short answers and mini-batch 2 the long ones. The recipe shuffles; this module records
the evidence. The project's critic engine (verl_ext/engines.py, used by the local backend and
on GPUs without flash-attn) appends one JSON line per call to GSM8K_RL_BATCH_ORDER_LOG:

    {"role": "values", "rank": 0, "n": 128, "response_lengths": [...]}         # whole batch, trainer order
    {"role": "update_critic", "rank": 0, "n": 64, "response_lengths": [...]}   # one per mini-batch

`summarise` turns the file into per-step figures (Spearman's rho of position vs length, mean
length per mini-batch). Only written when the variable is set (the launcher sets it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ENV = "GSM8K_RL_BATCH_ORDER_LOG"


def response_lengths(data: Any) -> list[int] | None:
    """Response tokens per sequence of a VERL TensorDict (nested or padded response mask)."""
    for key in ("response_mask", "loss_mask"):
        if key in data.keys():
            mask = data[key]
            if getattr(mask, "is_nested", False):
                return [int(t.sum()) for t in mask.unbind()]
            return [int(x) for x in mask.sum(-1).tolist()]
    return None


def record(role: str, data: Any) -> None:
    """Append one line for this call (no-op unless GSM8K_RL_BATCH_ORDER_LOG is set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    lengths = response_lengths(data)
    if lengths is None:
        return
    try:
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
    except Exception:  # pragma: no cover - torch always importable in an engine
        rank = 0
    line = json.dumps({"role": role, "rank": rank, "n": len(lengths), "time": round(time.time(), 3),
                       "response_lengths": lengths})
    with open(path, "a") as f:  # one short write per call: whole lines even when ranks interleave
        f.write(line + "\n")


def read(path: Path) -> list[dict]:
    """The records, a torn last line (a killed run) dropped."""
    from gsm8k_rl.common.files import read_jsonl

    return [record for _, record in read_jsonl(path)]


def summarise(path: Path, rank: int = 0) -> list[dict]:
    """Per training step (each 'values' record starts one): rho(position, length) of the batch
    as the trainer holds it, and the mean response length of each critic mini-batch."""
    from scipy.stats import spearmanr

    steps: list[dict] = []
    for rec in read(path):
        if rec["rank"] != rank:
            continue
        lengths = rec["response_lengths"]
        if rec["role"] == "values":
            rho = spearmanr(range(len(lengths)), lengths).statistic if len(set(lengths)) > 1 else float("nan")
            steps.append({"n": len(lengths), "rho_position_length": float(rho),
                          "mean_length": sum(lengths) / len(lengths), "mini_batch_mean_lengths": []})
        elif rec["role"] == "update_critic" and steps:
            steps[-1]["mini_batch_mean_lengths"].append(sum(lengths) / len(lengths))
    return steps
