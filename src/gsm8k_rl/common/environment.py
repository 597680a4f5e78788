"""What a run or an eval records about the machine it ran on: Python, platform, CPUs, GPUs and the
versions of the packages that decide its numbers (run folder: environment.txt; eval: metrics.json)."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from typing import Any

from gsm8k_rl import __version__

# what environment.txt of a run folder lists, and what metrics.json of an eval lists
RUN_PACKAGES = ("gsm8k-rl", "verl", "torch", "transformers", "vllm", "ray", "flash-attn", "TransferQueue")
EVAL_PACKAGES = ("torch", "transformers", "vllm", "verl", "math-verify")


def package_version(name: str) -> str | None:
    """The installed version of a distribution, None when it is not installed.

    >>> package_version("no-such-package-here") is None
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment_summary(hw: Any = None) -> str:
    """environment.txt of a run folder: one line per fact; `hw` is the launcher's Hardware (None: no GPU)."""
    lines = [f"python {platform.python_version()} ({sys.executable})", f"platform {platform.platform()}",
             f"cpus {os.cpu_count()}", f"gpus {dataclasses.asdict(hw) if hw else 'none'}"]
    for pkg in RUN_PACKAGES:
        found = package_version(pkg)
        lines.append(f"{pkg} {found}" if found else f"{pkg} not installed")
    return "\n".join(lines) + "\n"


def package_versions() -> dict[str, str | None]:
    """The versions an eval records in metrics.json ("versions")."""
    return {"python": platform.python_version(), "gsm8k_rl": __version__,
            **{pkg: package_version(pkg) for pkg in EVAL_PACKAGES}}


def hardware() -> dict[str, Any]:
    """The machine an eval ran on, as metrics.json records it ("hardware"): the GPUs torch sees."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "gpus": gpus}
