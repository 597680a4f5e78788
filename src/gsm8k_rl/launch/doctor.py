"""`gsm8k-rl doctor`: preflight before any GPU time is spent.

    gsm8k-rl doctor --data data/gsm8k --run-dir runs/ppo [--model DIR] [--config ppo] [key=value ...]

Takes the same arguments as `gsm8k-rl train` and checks, in order: the composed config
(Hydra + VERL's own validation + the checks VERL lacks), the parquet files (rows, schema,
prompt lengths with the model's real tokenizer and chat template), the reward on every gold
solution (must be 100%: a reward that is always 0 trains nothing), the GPUs, the NVIDIA driver
against the CUDA version the torch (and vLLM) wheels were built for, the memory the
layout needs per GPU, and the free disk for checkpoints. Every failure says what to change.
Exit code 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError, model_ref

ACCEPTS_OVERRIDES = True
REQUIRED_COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


@dataclasses.dataclass
class Check:
    name: str
    status: str  # PASS, WARN, FAIL, SKIP (not applicable here, with a note why)
    detail: str


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gsm8k_rl.launch import train

    train.add_arguments(p)
    p.add_argument("--tokenizer", default=None, type=model_ref, help="tokenizer for the prompt-length check (default: "
                                                                     "the model's)")


def _check_config(args: argparse.Namespace) -> tuple[list[Check], Any]:
    from gsm8k_rl.launch.plan import plan
    from gsm8k_rl.launch.validate import validate_config

    try:
        launch = plan(args)
        validate_config(launch.cfg, extra_rollouts=("hf",) if launch.backend == "local" else ())
    except UserError as exc:
        return [Check("config", "FAIL", str(exc))], None
    cfg = launch.cfg
    plain = launch.kernels is not None and launch.kernels.plain
    kernels = Check("kernels", "WARN" if plain and launch.hardware is not None else "PASS",
                    f"{launch.describe_kernels()} ({launch.attn_source})"
                    + ("; the fast path is off or incomplete here: slower steps, same math" if plain else ""))
    return [Check("config", "PASS", f"{args.config!r} composes and passes VERL's validation "
                  f"(backend {launch.backend}, {cfg.trainer.n_gpus_per_node} GPU(s) x {cfg.trainer.nnodes} node(s))"),
            kernels, Check("rollout wait", "PASS", launch.replay_buffer)], launch


def _check_data(cfg: Any, tokenizer_path: str) -> list[Check]:
    import pyarrow.parquet as pq

    from gsm8k_rl.task.prepare import prompt_lengths

    checks = []
    thinking = bool(cfg.data.apply_chat_template_kwargs.get("enable_thinking", True))
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    except Exception as exc:  # offline hub id, missing folder
        tokenizer = None
        checks.append(Check("tokenizer", "WARN", f"cannot load {tokenizer_path!r} ({type(exc).__name__}); "
                            "prompt lengths not checked: pass --tokenizer DIR"))
    for key in ("train_files", "val_files"):
        path = Path(cfg.data[key])
        if not path.is_file():
            checks.append(Check(f"data.{key}", "FAIL", f"{path} not found: run `gsm8k-rl prepare --out {path.parent}`"))
            continue
        table = pq.read_table(path)
        missing = REQUIRED_COLUMNS - set(table.column_names)
        if missing:
            checks.append(Check(f"data.{key}", "FAIL", f"{path} lacks columns {sorted(missing)}: re-run `gsm8k-rl "
                                                       "prepare`"))
            continue
        detail = f"{path}: {table.num_rows} rows, VERL RL schema"
        status = "PASS"
        if tokenizer is not None:
            lengths = prompt_lengths(path, tokenizer, thinking)
            over = sum(n > cfg.data.max_prompt_length for n in lengths)
            detail += f"; prompt tokens max {max(lengths)} (limit data.max_prompt_length={cfg.data.max_prompt_length})"
            if over:
                status, detail = "FAIL", detail + f"; {over} prompts too long: raise data.max_prompt_length"
        checks.append(Check(f"data.{key}", status, detail))
    return checks


def _check_reward(cfg: Any) -> Check:
    """Every gold solution must earn 1.0 through the very file VERL will load."""
    import importlib.util

    import pyarrow.parquet as pq

    path = cfg.reward.custom_reward_function.path
    spec = importlib.util.spec_from_file_location("_doctor_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    score: Callable[..., float] = getattr(module, cfg.reward.custom_reward_function.name)
    total = paid = 0
    failures = []
    for key in ("train_files", "val_files"):
        if not Path(cfg.data[key]).is_file():
            continue
        for row in pq.read_table(cfg.data[key], columns=["data_source", "reward_model", "extra_info"]).to_pylist():
            s = score(row["data_source"], row["extra_info"]["answer"], row["reward_model"]["ground_truth"],
                      row["extra_info"])
            total += 1
            paid += s == 1.0
            if s != 1.0 and len(failures) < 3:
                failures.append(f"{key} index {row['extra_info']['index']}")
    if total == 0:
        return Check("reward", "FAIL", "no data to score")
    status = "PASS" if paid == total else "FAIL"
    detail = f"{paid}/{total} gold solutions score 1.0 through {path}"
    if failures:
        detail += f"; first failures: {failures} (the reward or the ground truth is broken)"
    return Check("reward", status, detail)


# Minimum Linux driver per CUDA major version of the installed wheels (NVIDIA's CUDA Toolkit release
# notes, "CUDA Toolkit and Corresponding Driver Versions"): within a major version, minor-version
# compatibility lets that major's oldest driver run every minor. torch 2.11 and vLLM 0.24 from PyPI
# are CUDA 13 builds.
MIN_DRIVER = {13: "580.65.06", 12: "525.60.13", 11: "450.80.02"}
# The driver each CUDA 12 minor release shipped with (same table, "Toolkit Driver Version"): below it a
# 12.x build runs through minor-version compatibility, where code that JIT-compiles PTX may not.
NATIVE_DRIVER_12 = {0: "525.60.13", 1: "530.30.02", 2: "535.54.03", 3: "545.23.06", 4: "550.54.14",
                    5: "555.42.02", 6: "560.28.03", 8: "570.26", 9: "575.51.03"}


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.strip().split(".") if x.isdigit())


def parse_driver_version(nvidia_smi_output: str) -> str | None:
    """The driver from `nvidia-smi --query-gpu=driver_version --format=csv,noheader` (one line per
    GPU, all the same); None when it printed no version (no GPU, a driver error).

    >>> parse_driver_version("580.159.04\\n580.159.04\\n"), parse_driver_version("No devices were found")
    ('580.159.04', None)
    """
    lines = [line.strip() for line in nvidia_smi_output.splitlines() if line.strip()]
    return lines[0] if lines and re.fullmatch(r"\d+(\.\d+)+", lines[0]) else None


def check_driver(driver: str, cuda: str, built: str = "torch") -> Check:
    """The NVIDIA driver against the CUDA version `built` (the wheels, named) was built for.

    >>> check_driver("580.159.04", "13.0").status
    'PASS'
    >>> check_driver("550.54.15", "13.0").status
    'FAIL'
    >>> check_driver("535.104.05", "12.4").status
    'PASS'
    """
    major, *minor = _version_tuple(cuda)
    need = MIN_DRIVER.get(major)
    if need is None:
        return Check("driver", "WARN", f"NVIDIA driver {driver}; {built} is built for CUDA {cuda}, whose minimum "
                     "driver this check does not know: see NVIDIA's CUDA compatibility table")
    if _version_tuple(driver) >= _version_tuple(need):
        detail = f"NVIDIA driver {driver} >= {need}, the minimum for CUDA {cuda} ({built})"
        native = NATIVE_DRIVER_12.get(minor[0]) if major == 12 and minor else None
        if native and _version_tuple(driver) < _version_tuple(native):
            detail += (f"; runs through CUDA minor-version compatibility (CUDA {cuda}'s own driver is >= {native}; "
                       "code that JIT-compiles PTX may need that)")
        return Check("driver", "PASS", detail)
    return Check("driver", "FAIL", f"NVIDIA driver {driver} is older than {need}, the minimum for CUDA {cuda} "
                 f"that {built} is built for: no CUDA kernel would run. Upgrade the driver to >= {need}, or "
                 f"install a torch build for an older CUDA that this driver supports (e.g. the cu12x wheels: "
                 f"driver >= {MIN_DRIVER[12]}; vLLM must then be a build for that torch too)")


def vllm_cuda(vllm_version: str, torch_cuda: str | None) -> str | None:
    """The CUDA version a vLLM wheel was built for, from its version string: a local tag names it
    (`0.24.0+cu126` -> 12.6); without one it is PyPI's default build, made with the torch it pins,
    so it has that torch's CUDA.

    >>> vllm_cuda("0.24.0+cu126", "13.0"), vllm_cuda("0.24.0", "13.0"), vllm_cuda("0.24.0+cu130", None)
    ('12.6', '13.0', '13.0')
    """
    m = re.search(r"\+cu(\d+?)(\d)$", vllm_version)
    return f"{int(m.group(1))}.{m.group(2)}" if m else torch_cuda


def _driver_version() -> str | None:
    """The driver as nvidia-smi reports it (no CUDA context); None without nvidia-smi or a GPU."""
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return parse_driver_version(out)


def _check_driver(backend: str) -> Check:
    """Runs whatever torch detected: a driver too old for torch's CUDA is exactly when torch sees no GPU."""
    import importlib.metadata

    import torch

    driver = _driver_version()
    if driver is None:
        return Check("driver", "SKIP", "no NVIDIA driver reported (nvidia-smi absent or no GPU): not checked")
    if torch.version.cuda is None:
        status = "WARN" if backend == "local" else "FAIL"
        return Check("driver", status, f"NVIDIA driver {driver}, but torch {torch.__version__} is a CPU build: "
                     "install the CUDA build (`make run` installs VERL's pinned GPU stack)")
    builds = [(f"torch {torch.__version__}", torch.version.cuda)]
    try:  # metadata only: importing vllm would initialise CUDA in this process
        version = importlib.metadata.version("vllm")
        builds.append((f"vllm {version}", vllm_cuda(version, torch.version.cuda)))
    except importlib.metadata.PackageNotFoundError:
        pass
    results = [check_driver(driver, cuda, label) for label, cuda in builds]
    for status in ("FAIL", "WARN"):
        bad = [c.detail for c in results if c.status == status]
        if bad:
            return Check("driver", status, "; ".join(bad))
    return Check("driver", "PASS", "; ".join(c.detail for c in results))


def _check_hardware(launch: Any) -> list[Check]:
    from gsm8k_rl.launch.layout import count_params, host_ram_needed_gib, memory_estimate
    from gsm8k_rl.launch.plan import no_gpu_message

    cfg, hw = launch.cfg, launch.hardware
    checks = []
    if hw is None:
        status = "PASS" if launch.backend == "local" else "FAIL"
        checks.append(Check("gpus", status, "no CUDA GPU" + ("" if status == "PASS" else ": " + no_gpu_message())))
    else:
        checks.append(Check("gpus", "PASS", f"{hw.n_gpus_per_node} x {hw.gpu_name} ({hw.gpu_memory_gb:.0f} GB)"))
    checks.append(_check_driver(launch.backend))
    n_params = model_config = None
    try:
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(cfg.actor_rollout_ref.model.path)
        n_params = count_params(model_config)
    except Exception as exc:
        checks.append(Check("memory", "WARN", f"model config not readable ({type(exc).__name__}); no estimate"))
    if n_params is not None and launch.backend != "local":
        mem = launch.sized_for.gpu_memory_gb
        est = memory_estimate(model_config, cfg, mem)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in est.items())
        status = "PASS" if est["peak_estimate"] < 0.95 * mem else "WARN"
        checks.append(Check("memory", status, f"{n_params / 1e9:.2f}B params; per-GPU GB (estimate, {mem:.0f} GB GPU): "
                                              f"{parts}"
                            + ("" if status == "PASS" else "; may not fit: add GPUs or lower the token budget")))
        import psutil

        need, total = host_ram_needed_gib(n_params, cfg), psutil.virtual_memory().total / 2**30
        status = "PASS" if total >= need else "WARN"
        checks.append(Check("host_memory", status, f"~{need:.0f} GiB of host RAM in use expected (scaled from the "
                            f"measured 1-GPU runs), {total:.0f} GiB here"
                            + ("" if status == "PASS" else ": the offloaded Adam states may not fit; "
                               "add RAM or GPUs (more GPU memory lets the launcher keep them on the GPU)")))
    free = shutil.disk_usage(_existing_parent(Path(cfg.trainer.default_local_dir))).free / 1024**3
    if n_params is not None:
        keep = max(1, cfg.trainer.max_actor_ckpt_to_keep or 1)
        need = n_params * (16 + 16) * keep / 1024**3  # actor + critic, fp32 weights + Adam, per checkpoint kept
        status = "PASS" if free > need * 1.2 else "FAIL"
        checks.append(Check("disk", status, f"{free:.0f} GiB free at {cfg.trainer.default_local_dir}; "
                            f"{keep} checkpoints need ~{need:.0f} GiB"
                            + ("" if status == "PASS" else ": free disk, choose another --run-dir, or lower "
                                                           "trainer.max_actor_ckpt_to_keep")))
    return checks


def _existing_parent(p: Path) -> Path:
    while not p.exists():
        p = p.parent
    return p


def diagnose(args: argparse.Namespace) -> list[Check]:
    checks, launch = _check_config(args)
    if launch is None:
        return checks
    cfg = launch.cfg
    checks += _check_data(cfg, args.tokenizer or cfg.actor_rollout_ref.model.path)
    checks.append(_check_reward(cfg))
    checks += _check_hardware(launch)
    return checks


def run(args: argparse.Namespace) -> int:
    args.dry_run = True  # doctor never starts training; plan() may write the run folder's config files
    checks = diagnose(args)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"[{c.status}] {c.name:<{width}}  {c.detail}")
    failed = [c for c in checks if c.status == "FAIL"]
    print(f"\n{len(checks) - len(failed)} passed, warned or skipped, {len(failed)} failed")
    return 1 if failed else 0
