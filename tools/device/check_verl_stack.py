#!/usr/bin/env python3
"""Smoke-check the VERL training stack on a GPU machine after tools/install_wheelhouse.sh.

Why: a wheelhouse installed with --no-deps can look complete and still fail at the first import
or when Ray starts; this proves, in about 20 s, that the pieces VERL's PPO trainer needs load
and that Ray schedules a GPU task. Run with the wheelhouse on PYTHONPATH:
    PYTHONPATH=/tmp/site:src python3 tools/device/check_verl_stack.py
Exit status 1 if any step failed (each step is reported, the later ones still run).
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback

MODULES = [
    "verl",
    "ray",
    "tensordict",
    "transfer_queue",
    "hydra",
    "omegaconf",
    "codetiming",
    "verl.trainer.main_ppo",
    "verl.trainer.ppo.ray_trainer",
    "verl.workers.engine_workers",
    "verl.utils.dataset.rl_dataset",
]


def step(name: str, fn) -> bool:
    start = time.perf_counter()
    try:
        out = fn()
    except Exception:  # noqa: BLE001 - report every failure and carry on
        print(f"FAIL {name} ({time.perf_counter() - start:.1f} s)\n{traceback.format_exc(limit=3)}", flush=True)
        return False
    print(f"ok   {name} ({time.perf_counter() - start:.1f} s){': ' + str(out) if out is not None else ''}", flush=True)
    return True


def ray_gpu_task() -> str:
    import ray

    ray.init(num_gpus=1)
    try:
        @ray.remote(num_gpus=1)
        def probe() -> str:
            import torch

            x = torch.arange(4.0, device="cuda")
            return f"{torch.cuda.get_device_name()} sum={float((x * x).sum())}"

        return ray.get(probe.remote(), timeout=120)
    finally:
        ray.shutdown()


def versions() -> str:
    out = []
    for name in ("verl", "ray", "torch", "transformers", "tokenizers", "tensordict", "transfer_queue", "packaging"):
        mod = importlib.import_module(name)
        out.append(f"{name} {getattr(mod, '__version__', '?')}")
    return ", ".join(out)


def main() -> int:
    results = [step(f"import {m}", lambda m=m: importlib.import_module(m) and None) for m in MODULES]
    results.append(step("versions", versions))
    results.append(step("ray.init(num_gpus=1) + GPU task", ray_gpu_task))
    print("ALL OK" if all(results) else f"{results.count(False)} step(s) FAILED", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
