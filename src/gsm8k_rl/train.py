"""`gsm8k-rl train`: PPO on VERL with the project recipe, sized to the hardware.

    gsm8k-rl train --data data/gsm8k --run-dir runs/ppo                # GPU, vLLM rollout
    gsm8k-rl train --run-dir runs/ppo actor_rollout_ref.actor.optim.lr=2e-6   # any VERL override
    gsm8k-rl train --backend local --smoke --run-dir runs/smoke       # CPU, tiny model, no download
    gsm8k-rl train --dry-run --run-dir runs/x                         # validate + write, start nothing

We configure and launch `verl.trainer.main_ppo`; VERL does the PPO. One run folder per
experiment (see `RunDir`); a restart with the same command resumes from the last checkpoint
(trainer.resume_mode=auto) and keeps every earlier metric line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError, __version__, fast_path, model_ref, write_atomic
from gsm8k_rl.verl_ext import PLUGIN_MODULE
from gsm8k_rl.verl_ext.self_aligned import SELF_ALIGNED_ENV, TRAINER_MODE as SELF_ALIGNED_MODE
from gsm8k_rl.recipe import (
    DEFAULT_CONFIG,
    QWEN3_1_7B,
    REWARD_FILE,
    Hardware,
    compose_config,
    config_names,
    detect_hardware,
    layout_overrides,
    model_shape,
    optim_state_bytes,
    optimizer_overrides,
    validate_config,
)

log = logging.getLogger(__name__)
ACCEPTS_OVERRIDES = True  # free key=value arguments are VERL overrides

# A few PPO steps on the tiny model: every stage of the real loop, minutes on 2 CPU cores.
SMOKE_OVERRIDES = [
    "data.train_batch_size=4",
    "data.max_prompt_length=256",
    "data.max_response_length=32",
    "data.val_max_samples=8",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "critic.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "trainer.total_training_steps=2",
    "trainer.test_freq=2",
    "trainer.save_freq=2",
    "trainer.logger=[console,file]",
]


def smoke_micro_batches(world: int) -> list[str]:
    """Smoke-run batch sizes for `world` ranks: 2 prompts per rank and step, mini-batches of one per
    rank, micro-batches of one (VERL needs every batch to divide by the ranks).

    >>> smoke_micro_batches(2)[:2]
    ['data.train_batch_size=4', 'actor_rollout_ref.actor.ppo_mini_batch_size=2']
    """
    return [f"data.train_batch_size={2 * world}", f"actor_rollout_ref.actor.ppo_mini_batch_size={world}"] + [
        f"{key}=1" for key in ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
                               "critic.ppo_micro_batch_size_per_gpu",
                               "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
                               "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu")]


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


@dataclasses.dataclass
class Launch:
    run: RunDir
    config_name: str
    overrides: list[str]
    cfg: Any
    python_module: str
    env: dict[str, str]
    hardware: Hardware | None  # detected; None without CUDA GPUs
    backend: str
    sized_for: Hardware
    attn: str = "flash_attention_2"  # actor and critic attention; VERL's default
    attn_source: str = ""  # how the kernels were decided (flags, or detected on which machine)
    kernels: fast_path.Kernels | None = None  # attention, packing, fused log-probs (plan() sets it)
    replay_buffer: str = ""  # which replay buffer VERL samples the rollout from, and how often it polls

    def describe_kernels(self) -> str:
        return self.kernels.describe() if self.kernels else f"attention {self.attn}"

    def argv(self) -> list[str]:
        # main_ppo reads back the exact composed config we saved: what we validated is what runs.
        return [
            sys.executable, "-m", self.python_module,
            "--config-path", str(self.run.root), "--config-name", self.run.resolved_config.stem,
            f"hydra.run.dir={self.run.hydra}",
        ]

    def logging_overrides(self, metrics_file: str) -> list[str]:
        """Where VERL's file and tensorboard loggers write, for this launch.

        The loggers run in VERL's TaskRunner, a Ray actor. Ray passes the launching process's
        environment to its actors only when it starts Ray itself; on a cluster started with `ray start`
        (RAY_ADDRESS), the actors get the runtime environment alone, so the paths go there too, as
        overrides on the command line: the metrics file changes with every launch (VERL's file logger
        truncates the file it opens) and must not change the saved config a restart compares."""
        return [f"++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='{metrics_file}'",
                f"++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR='{self.run.tensorboard}'"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, type=model_ref, help="hub id or local HF folder (default: the config's, Qwen/Qwen3-1.7B)")
    p.add_argument("--data", default="data/gsm8k", help="folder with train.parquet/test.parquet from `gsm8k-rl prepare`")
    p.add_argument("--run-dir", default=None, help="experiment folder (default: runs/<experiment_name>)")
    p.add_argument("--config", default=DEFAULT_CONFIG, choices=config_names(), help="named recipe in configs/")
    p.add_argument("--backend", choices=["auto", "vllm", "local"], default="auto",
                   help="rollout engine: vllm (GPU) or local (transformers; CPU or GPU without vLLM)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny random Qwen3 + shipped GSM8K slice + 2 PPO steps: tests the whole loop, no download")
    p.add_argument("--smoke-tokenizer", default=None, type=model_ref, help="with --smoke: use this tokenizer folder (e.g. Qwen3's)")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs per node (default: all visible; without GPUs, e.g. with --dry-run, the layout to plan for)")
    p.add_argument("--gpu-memory-gb", type=float, default=None, help="GPU memory to size for (default: detected, else 80)")
    p.add_argument("--nnodes", type=int, default=1, help="nodes of a running Ray cluster (RAY_ADDRESS); see README")
    p.add_argument("--no-dynamic-bsz", action="store_true", help="fixed micro-batches of 16 (the spec) instead of token budgets")
    p.add_argument("--attn", choices=["auto", "sdpa", "torch_varlen", "flash_attention_2"], default="auto",
                   help="actor/critic attention: flash_attention_2 (VERL's default; flash-attn must be installed where "
                        "training runs), torch_varlen (PyTorch's varlen FlashAttention kernels, packed micro-batches) or "
                        "sdpa (padded micro-batches); auto: flash_attention_2 if flash-attn is importable on the machine "
                        "running this command, else torch_varlen with the fast path, else sdpa")
    p.add_argument("--fast-path", choices=["auto", "on", "off"], default="auto",
                   help="fused log-probs, packed micro-batches and, on GPUs of >= 120 GB, the reference kept on the GPU "
                        "(docs/benchmarks.md, 'Step speed'); auto: on whenever the run trains on GPUs; off: VERL's plain path. "
                        "Unless off, VERL's replay buffer is also polled every 0.1 s instead of 2 s (any device)")
    p.add_argument("--fused", choices=["auto", "liger", "triton", "torch"], default="auto",
                   help="fused log-prob backend with the fast path (VERL's fused_kernel_options.impl_backend); auto: "
                        "triton (VERL's kernel) on a GPU when the model's hidden size is a multiple of 128 and "
                        "micro-batches are packed, else torch (any model)")
    p.add_argument("--liger", choices=["auto", "on", "off"], default="auto",
                   help="liger-kernel's Triton RMSNorm, SwiGLU and RoPE in actor, reference and critic (VERL's "
                        "model.use_liger); auto: on with the fast path and the vllm backend when liger-kernel and "
                        "triton are importable on the machine running this command")
    p.add_argument("--optimizer", choices=["adamw", "adamw8bit"], default=None,
                   help="Adam for actor and critic: adamw (VERL's fp32 AdamW, the default) or adamw8bit (torchao's "
                        "block-quantized states, a quarter of the memory: on 1 x 80 GB or 2 x 40 GB they stay on the "
                        "GPU instead of host memory; pip install -e '.[adam8bit]'; numerics in docs/benchmarks.md, "
                        "'Adam states in 8 bits')")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    p.add_argument("--dry-run", action="store_true", help="validate, write resolved_config.yaml + command.sh, start nothing")
    p.add_argument("--allow-config-change", action="store_true",
                   help="restart an existing run folder with a different config (default: refuse)")
    p.add_argument("overrides", nargs="*", default=[], help="VERL Hydra overrides key=value, passed through untouched")


def _backend(args: argparse.Namespace, hw: Hardware | None) -> str:
    """auto: the tiny smoke model runs on the local backend, everything else on vLLM."""
    if args.backend != "auto":
        return args.backend
    return "local" if args.smoke else "vllm"


def plan(args: argparse.Namespace) -> Launch:
    """Everything about the run, decided before anything starts."""
    for flag, value in (("--gpus", args.gpus), ("--nnodes", args.nnodes), ("--gpu-memory-gb", args.gpu_memory_gb)):
        if value is not None and value <= 0:  # 0 was taken as "not given" and sized for one GPU
            raise UserError(f"{flag} must be positive, got {value}")
    hw = detect_hardware()
    if hw is not None:
        hw = dataclasses.replace(hw, n_gpus_per_node=args.gpus or hw.n_gpus_per_node, nnodes=args.nnodes,
                                 gpu_memory_gb=args.gpu_memory_gb or hw.gpu_memory_gb)
    backend = _backend(args, hw)
    if backend == "vllm" and hw is None and not args.dry_run:
        raise UserError(no_gpu_message())
    # What the run is sized for: the GPUs found, or (planning on a machine without them, e.g. a
    # login node) the --gpus/--gpu-memory-gb given, else one 80 GB GPU.
    target = hw or Hardware(args.gpus or 1, args.gpu_memory_gb or 80.0, args.nnodes)

    # --optimizer is a shorthand for VERL keys: placed before the user's overrides, which still win
    user_ov = optimizer_overrides(args.optimizer) + list(args.overrides)
    base = compose_config(args.config, user_ov)
    run = RunDir(args.run_dir or default_run_dir(base))
    env: dict[str, str] = {}
    ov: list[str] = []
    python_module = "verl.trainer.main_ppo"

    # on CPU, --gpus N is N training ranks (processes) per node, each with its own rollout replica
    ranks_per_node = hw.n_gpus_per_node if hw else (args.gpus or 1)
    # a vLLM run always trains on GPUs, also when planned on a machine without them (--dry-run, doctor)
    on_gpu = hw is not None or backend == "vllm"
    planned_model = model_path(args.model) if args.model else base.actor_rollout_ref.model.path
    config = None if args.smoke else fast_path.model_config(planned_model)
    kernels = fast_path.decide(args.fast_path, args.attn, backend, on_gpu=on_gpu, fused=args.fused,
                               hidden_size=getattr(config, "hidden_size", None), liger=args.liger)
    if backend == "vllm" or hw is not None:  # GPUs (present or planned for): size the layout
        # for the model that trains (doctor's memory estimate reads the same config)
        shape = model_shape(config, str(planned_model)) if config is not None else QWEN3_1_7B
        if config is None and not args.smoke:
            log.info("memory sized for %s: the config of %s cannot be read here", QWEN3_1_7B.name, planned_model)
        ov += layout_overrides(target, base, dynamic_bsz=not args.no_dynamic_bsz, backend=backend, fast=kernels.fast,
                               shape=shape)
    if backend == "local":
        from gsm8k_rl.launch.local_backend import launch_spec

        spec = launch_spec(n_gpus=ranks_per_node, device="cuda" if hw else "cpu",
                           nnodes=args.nnodes, join_cluster=bool(os.environ.get("RAY_ADDRESS")) or args.nnodes > 1)
        python_module, env, ov = spec["python_module"], dict(spec["env"]), ov + list(spec["overrides"])

    log.info("actor/critic kernels: %s (%s)", kernels.describe(), kernels.source)
    if not kernels.remove_padding:
        log.warning("actor and critic use SDPA on padded micro-batches (slower); for speed, install a flash-attn "
                    "wheel matching torch 2.11 where training runs, or use a CUDA torch with varlen attention "
                    "(--attn torch_varlen)")
    env, ov = fast_path.apply(kernels, env, ov, on_gpu=on_gpu)
    sampler_ov, sampler_note = replay_buffer_overrides(base, quick=args.fast_path != "off")
    ov += sampler_ov
    log.info("%s", sampler_note)
    if base.trainer.v1.trainer_mode == SELF_ALIGNED_MODE:  # the trainer lives in the project's VERL plugin
        env = {**env, "VERL_USE_EXTERNAL_MODULES": PLUGIN_MODULE, SELF_ALIGNED_ENV: "1"}
        ov += [f"++ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES='{PLUGIN_MODULE}'",
               f"++ray_kwargs.ray_init.runtime_env.env_vars.{SELF_ALIGNED_ENV}='1'"]
    if "VERL_USE_EXTERNAL_MODULES" in env:  # the project's critic engine runs: record the batch order
        from gsm8k_rl.verl_ext.batch_order import ENV as ORDER_ENV

        env[ORDER_ENV] = str(run.logs / "batch_order.jsonl")
        ov.append(f"++ray_kwargs.ray_init.runtime_env.env_vars.{ORDER_ENV}='{env[ORDER_ENV]}'")

    data = Path(args.data)
    model = args.model
    if args.smoke:
        from omegaconf import OmegaConf

        from gsm8k_rl.task.prompt import DEFAULT_TEMPLATE

        template = OmegaConf.select(base, "prepare.template", default=DEFAULT_TEMPLATE)
        data, model = smoke_assets(run, args.smoke_tokenizer, model, template)
        ov += SMOKE_OVERRIDES
        if ranks_per_node * args.nnodes > 1:  # VERL: (mini-batch / ranks) % micro-batch == 0; the smoke mini-batch is 2
            ov += smoke_micro_batches(ranks_per_node * args.nnodes)
    ov += [
        f"data.train_files={(data / 'train.parquet').resolve()}",
        f"data.val_files={(data / 'test.parquet').resolve()}",
        f"reward.custom_reward_function.path={REWARD_FILE}",
        f"trainer.default_local_dir={run.checkpoints}",
        f"trainer.validation_data_dir={run.val_generations}",
    ]
    if model:
        ov.append(f"actor_rollout_ref.model.path={model_path(model)}")
    if args.wandb:
        ov.append("trainer.logger=[console,file,tensorboard,wandb]")
    _note_optimizer(base)
    # The user's overrides come last: they win over everything the launcher decided.
    cfg = compose_config(args.config, ov + user_ov)
    env.update({
        "TENSORBOARD_DIR": str(run.tensorboard),
        "TOKENIZERS_PARALLELISM": "false",
    })
    return Launch(run, args.config, ov + user_ov, cfg, python_module, env, hw, backend, target,
                  kernels.attn, kernels.source, kernels, sampler_note)


def _note_optimizer(cfg: Any) -> None:
    """Say which Adam runs; a module VERL will import that this machine lacks is worth a warning here
    (this may be a head node without the training stack, so not an error; `gsm8k-rl doctor` plans the
    run the same way and prints the same warning)."""
    import importlib.util

    for role, optim in (("actor", cfg.actor_rollout_ref.actor.optim), ("critic", cfg.critic.optim)):
        impl, name = str(optim.optimizer_impl), str(optim.optimizer)
        if (impl, name) != ("torch.optim", "AdamW"):
            log.info("%s optimizer: %s.%s (Adam states ~%.1f bytes per parameter)", role, impl, name,
                     optim_state_bytes(optim))
        if importlib.util.find_spec(impl.split(".")[0]) is None:
            log.warning("%s optimizer: %s is not importable on this machine; VERL imports it where training runs "
                        "(pip install %s there)", role, impl, impl.split(".")[0])


QUICK_POLL_S = 0.1  # gsm8k_rl.verl_ext.replay_buffer.POLL_INTERVAL_S; that module imports VERL's trainer, this one must not


def replay_buffer_overrides(cfg: Any, quick: bool = True, poll_interval: float = QUICK_POLL_S) -> tuple[list[str], str]:
    """Overrides that make VERL sample the rollout from `gsm8k_rl.verl_ext.replay_buffer` (its own buffer, polled
    every 0.1 s instead of 2 s), and a line for the log saying which buffer runs.

    VERL's own buffer stays (no overrides) with --fast-path off (VERL's plain path), when the config names a
    custom sampler itself, or when the DAPO group filter or the failed-group refill is on: VERL hands
    those settings to its built-in buffer only."""
    from omegaconf import OmegaConf

    def sel(key: str, default: Any = None) -> Any:
        return OmegaConf.select(cfg, key, default=default)

    vanilla = "replay buffer: VERL's own, polled every 2.0 s"
    if not sel("trainer.use_v1", True):
        return [], "replay buffer: none (trainer.use_v1=false)"
    if not quick:
        return [], vanilla + " (--fast-path off)"
    if sel("trainer.v1.sampler.custom_sampler.path"):
        return [], f"replay buffer: the config's custom_sampler ({sel('trainer.v1.sampler.custom_sampler.name')})"
    on = [k for k in ("algorithm.filter_groups.enable", "trainer.v1.sampler.sync_refill_failed_groups") if sel(k, False)]
    if on:
        return [], vanilla + f" ({' and '.join(on)} is on: VERL passes it to its built-in buffer only)"
    name = "QuickPollReplayBuffer" if sel("trainer.v1.trainer_mode", "sync") == "sync" else "QuickPollReplayBufferAsync"
    return (["trainer.v1.sampler.custom_sampler.path=pkg://gsm8k_rl.verl_ext.replay_buffer",
             f"trainer.v1.sampler.custom_sampler.name={name}",
             f"++trainer.v1.sampler.sampler_kwargs.poll_interval={poll_interval}"],
            f"replay buffer: VERL's, polled every {poll_interval} s instead of 2 s (gsm8k_rl.verl_ext.replay_buffer.{name})")


def default_run_dir(cfg: Any) -> Path:
    """runs/<trainer.experiment_name>: where a run goes when no --run-dir is given."""
    return Path("runs") / cfg.trainer.experiment_name


def model_path(model: str) -> str:
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def smoke_assets(run: RunDir, tokenizer: str | None, model: str | None, template: str) -> tuple[Path, str]:
    from gsm8k_rl.task.prepare import prepare
    from gsm8k_rl.smoke import SMOKE_DATA, build_tiny_model

    data = run.smoke / "data"
    info = data / "prepare_info.json"
    prepared = info.is_file() and json.loads(info.read_text()).get("prompt_template") == template
    # a kill may land between the two files; the run's own slice follows the config's prompt
    if not prepared or not all((data / f"{s}.parquet").exists() for s in ("train", "test")):
        prepare(data, source=Path(str(SMOKE_DATA)), template=template, overwrite=True)
    if model is None:
        model = str(build_tiny_model(run.smoke / "model", tokenizer_dir=tokenizer))
    return data, model


def no_gpu_message() -> str:
    return (
        "no CUDA GPU found. The real run (Qwen3-1.7B, PPO with critic, 4096-token responses) needs at least "
        "one 80 GB GPU or two 40 GB GPUs (2xA100 minimum, 4xH100 ideal; see README 'Hardware').\n"
        "  To run the same pipeline end to end on this machine with a tiny random model:\n"
        "    gsm8k-rl train --backend local --smoke --run-dir runs/smoke"
    )


def write_run_files(launch: Launch, allow_config_change: bool = False) -> None:
    """resolved_config.yaml, command.sh, environment.txt; refuse to silently change an existing run's config."""
    from omegaconf import OmegaConf

    run = launch.run
    run.root.mkdir(parents=True, exist_ok=True)
    run.logs.mkdir(exist_ok=True)
    text = OmegaConf.to_yaml(launch.cfg, resolve=True)
    if run.resolved_config.exists() and run.resolved_config.read_text() != text:
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
        f"# Written by gsm8k-rl {__version__} (`gsm8k-rl train`); config {launch.config_name!r}, backend {launch.backend}.\n"
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


def environment_summary(hw: Hardware | None) -> str:
    from importlib.metadata import PackageNotFoundError, version

    lines = [f"python {platform.python_version()} ({sys.executable})", f"platform {platform.platform()}",
             f"cpus {os.cpu_count()}", f"gpus {dataclasses.asdict(hw) if hw else 'none'}"]
    for pkg in ("gsm8k-rl", "verl", "torch", "transformers", "vllm", "ray", "flash-attn", "TransferQueue"):
        try:
            lines.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            lines.append(f"{pkg} not installed")
    return "\n".join(lines) + "\n"


def merge_metrics(run: RunDir) -> int:
    """Rebuild RUN/metrics.jsonl from every attempt's VERL log (VERL opens its file with "wb").

    Each launch logs to its own logs/metrics.<time>.jsonl; a step logged again after a resume
    (steps past the last checkpoint are re-run) keeps the later attempt's line.
    """
    by_step: dict[int, dict] = {}
    for path in sorted(run.logs.glob("metrics.*.jsonl")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                if i == len(lines):  # a launch killed mid-write leaves its last line torn: that step re-runs
                    log.warning("%s: last line %d is incomplete (interrupted launch); ignored", path, i)
                    continue
                raise UserError(f"{path}:{i} is not a JSON line ({exc}); the file is damaged") from exc
            by_step.setdefault(int(rec["step"]), {}).update(rec["data"])
    write_atomic(run.metrics, "".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in sorted(by_step.items())))
    return len(by_step)


# VERL logs this key once per finished PPO step (not for the validation before training)
STEP_KEY = "timing_s/step"


def logged_steps(run: RunDir) -> dict[int, dict]:
    """{step: metrics} of RUN/metrics.jsonl (merge_metrics writes it)."""
    if not run.metrics.exists():
        return {}
    recs = (json.loads(line) for line in run.metrics.read_text().splitlines() if line.strip())
    return {int(r["step"]): r["data"] for r in recs}


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


def _update_run_info(run: RunDir, **fields: Any) -> None:
    info = json.loads(run.run_info.read_text()) if run.run_info.exists() else {}
    info.update(fields)
    write_atomic(run.run_info, json.dumps(info, indent=2, default=str) + "\n")


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
    _update_run_info(
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
        _update_run_info(run, status=status, end_time=ended.isoformat(),
                         wall_time_s=before.get("wall_time_s", 0.0) + (ended - started).total_seconds(),
                         logged_steps=steps,
                         latest_checkpoint=str(final) if (final := latest_checkpoint(run)) else None)
    if rc != 0:
        raise UserError(f"VERL exited with code {rc}; see {run.logs / 'train.log'}. "
                        f"Re-run the same command to resume from the last checkpoint.")
    return 0


def run(args: argparse.Namespace) -> int:
    launch = plan(args)
    extra = ("hf",) if launch.backend == "local" else ()
    # validated before anything is written: a rejected config must not become the run folder's
    # config, against which its own fix would then be refused as "a different config"
    validate_config(launch.cfg, extra_rollouts=extra)
    write_run_files(launch, args.allow_config_change)
    print(f"resolved config: {launch.run.resolved_config}\ncommand:         {launch.run.command}")
    if args.dry_run:
        if launch.hardware is None and launch.backend == "vllm":
            t = launch.sized_for
            print(f"(no GPU here: sized for {t.world_size} x {t.gpu_memory_gb:.0f} GB)")
        return 0
    return launch_training(launch)
