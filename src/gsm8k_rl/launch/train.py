"""`gsm8k-rl train`: PPO on VERL with the project recipe, sized to the hardware.

    gsm8k-rl train --data data/gsm8k --run-dir runs/ppo                # GPU, vLLM rollout
    gsm8k-rl train --run-dir runs/ppo actor_rollout_ref.actor.optim.lr=2e-6   # any VERL override
    gsm8k-rl train --backend local --smoke --run-dir runs/smoke       # CPU, tiny model, no download
    gsm8k-rl train --dry-run --run-dir runs/x                         # validate + write, start nothing

We configure and launch `verl.trainer.main_ppo`; VERL does the PPO. The plan (plan.py) decides
everything first; the config is validated (validate.py) before the run folder (run_dir.py) is
written; the supervisor (supervisor.py) runs VERL. A restart with the same command resumes from the
last checkpoint (trainer.resume_mode=auto) and keeps every earlier metric line.
"""


from __future__ import annotations

import argparse

from gsm8k_rl import model_ref
from gsm8k_rl.launch.compose import DEFAULT_CONFIG, config_names
from gsm8k_rl.launch.plan import plan
from gsm8k_rl.launch.run_dir import write_run_files
from gsm8k_rl.launch.supervisor import launch_training
from gsm8k_rl.launch.validate import validate_config

ACCEPTS_OVERRIDES = True  # free key=value arguments are VERL overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, type=model_ref, help="hub id or local HF folder (default: the config's, "
                                                                 "Qwen/Qwen3-1.7B)")
    p.add_argument("--data", default="data/gsm8k", help="folder with train.parquet/test.parquet from `gsm8k-rl "
                                                        "prepare`")
    p.add_argument("--run-dir", default=None, help="experiment folder (default: runs/<experiment_name>)")
    p.add_argument("--config", default=DEFAULT_CONFIG, choices=config_names(), help="named recipe in configs/")
    p.add_argument("--backend", choices=["auto", "vllm", "local"], default="auto",
                   help="rollout engine: vllm (GPU) or local (transformers; CPU or GPU without vLLM)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny random Qwen3 + shipped GSM8K slice + 2 PPO steps: tests the whole loop, no download")
    p.add_argument("--smoke-tokenizer", default=None, type=model_ref, help="with --smoke: use this tokenizer folder "
                                                                           "(e.g. Qwen3's)")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs per node (default: all visible; without GPUs, e.g. with --dry-run, the layout to plan "
                        "for)")
    p.add_argument("--gpu-memory-gb", type=float, default=None, help="GPU memory to size for (default: detected, else "
                                                                     "80)")
    p.add_argument("--nnodes", type=int, default=1, help="nodes of a running Ray cluster (RAY_ADDRESS); see README")
    p.add_argument("--no-dynamic-bsz", action="store_true", help="fixed micro-batches of 16 (the spec) instead of "
                                                                 "token budgets")
    p.add_argument("--attn", choices=["auto", "sdpa", "torch_varlen", "flash_attention_2"], default="auto",
                   help="actor/critic attention: flash_attention_2 (VERL's default; flash-attn must be installed "
                        "where training runs), torch_varlen (PyTorch's varlen FlashAttention kernels, packed "
                        "micro-batches) or sdpa (padded micro-batches); auto: flash_attention_2 if flash-attn is "
                        "importable on the machine running this command, else torch_varlen with the fast path, else "
                        "sdpa")
    p.add_argument("--fast-path", choices=["auto", "on", "off"], default="auto",
                   help="fused log-probs, packed micro-batches and, on GPUs of >= 120 GB, the reference kept on the "
                        "GPU (experiments/notebook.md, 'Step speed'); auto: on whenever the run trains on GPUs; off: "
                        "VERL's plain path. Unless off, VERL's replay buffer is also polled every 0.1 s instead of 2 "
                        "s (any device)")
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
                        "GPU instead of host memory; pip install -e '.[adam8bit]'; numerics in "
                        "experiments/notebook.md, 'Adam states in 8 bits')")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    p.add_argument("--dry-run", action="store_true", help="validate, write resolved_config.yaml + command.sh, start "
                                                          "nothing")
    p.add_argument("--allow-config-change", action="store_true",
                   help="restart an existing run folder with a different config (default: refuse)")
    p.add_argument("overrides", nargs="*", default=[], help="VERL Hydra overrides key=value, passed through untouched")


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
