"""The training plan: everything about a run decided before anything starts.

`plan(args)` composes the named config with the user's overrides, finds the hardware, sizes the
layout for the model that trains (layout.py), picks the kernels (kernels.py), the rollout backend and
the replay buffer, and returns a `Launch`: the exact config, environment and command VERL will run.
`gsm8k-rl train` and `gsm8k-rl doctor` plan the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.launch.compose import REWARD_FILE, compose_config
from gsm8k_rl.launch.kernels import Kernels, decide, model_config
from gsm8k_rl.launch.kernels import apply as apply_kernels
from gsm8k_rl.launch.layout import (
    QWEN3_1_7B,
    Hardware,
    detect_hardware,
    layout_overrides,
    model_shape,
    optim_state_bytes,
    optimizer_overrides,
)
from gsm8k_rl.launch.ray_env import runtime_env_override, with_ray_env
from gsm8k_rl.launch.run_dir import RunDir, default_run_dir
from gsm8k_rl.verl_ext import PLUGIN_MODULE
from gsm8k_rl.verl_ext.self_aligned import SELF_ALIGNED_ENV
from gsm8k_rl.verl_ext.self_aligned import TRAINER_MODE as SELF_ALIGNED_MODE

log = logging.getLogger(__name__)

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
    kernels: Kernels | None = None  # attention, packing, fused log-probs (plan() sets it)
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
        return [runtime_env_override("VERL_FILE_LOGGER_PATH", metrics_file),
                runtime_env_override("TENSORBOARD_DIR", str(self.run.tensorboard))]


def _backend(args: argparse.Namespace) -> str:
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
    backend = _backend(args)
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
    config = None if args.smoke else model_config(planned_model)
    kernels = decide(args.fast_path, args.attn, backend, on_gpu=on_gpu, fused=args.fused,
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
    env, ov = apply_kernels(kernels, env, ov, on_gpu=on_gpu)
    sampler_ov, sampler_note = replay_buffer_overrides(base, quick=args.fast_path != "off")
    ov += sampler_ov
    log.info("%s", sampler_note)
    if base.trainer.v1.trainer_mode == SELF_ALIGNED_MODE:  # the trainer lives in the project's VERL plugin
        env, ov = with_ray_env(env, ov, VERL_USE_EXTERNAL_MODULES=PLUGIN_MODULE, **{SELF_ALIGNED_ENV: "1"})
    if "VERL_USE_EXTERNAL_MODULES" in env:  # the project's critic engine runs: record the batch order
        from gsm8k_rl.verl_ext.batch_order import ENV as ORDER_ENV

        env, ov = with_ray_env(env, ov, **{ORDER_ENV: str(run.logs / "batch_order.jsonl")})

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


# = gsm8k_rl.verl_ext.replay_buffer.POLL_INTERVAL_S; that module imports VERL's trainer, this one must not
QUICK_POLL_S = 0.1


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
    on = [k for k in ("algorithm.filter_groups.enable", "trainer.v1.sampler.sync_refill_failed_groups")
          if sel(k, False)]
    if on:
        return [], vanilla + f" ({' and '.join(on)} is on: VERL passes it to its built-in buffer only)"
    name = "QuickPollReplayBuffer" if sel("trainer.v1.trainer_mode", "sync") == "sync" else "QuickPollReplayBufferAsync"
    return (["trainer.v1.sampler.custom_sampler.path=pkg://gsm8k_rl.verl_ext.replay_buffer",
             f"trainer.v1.sampler.custom_sampler.name={name}",
             f"++trainer.v1.sampler.sampler_kwargs.poll_interval={poll_interval}"],
            f"replay buffer: VERL's, polled every {poll_interval} s instead of 2 s "
            f"(gsm8k_rl.verl_ext.replay_buffer.{name})")


def model_path(model: str) -> str:
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else model


def smoke_assets(run: RunDir, tokenizer: str | None, model: str | None, template: str) -> tuple[Path, str]:
    from gsm8k_rl.launch.smoke import SMOKE_DATA, build_tiny_model
    from gsm8k_rl.task.prepare import prepare

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
