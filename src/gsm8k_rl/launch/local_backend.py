"""The "local" training backend, launcher side: what to run so that `verl.trainer.main_ppo` trains
without vLLM, on CPU or a plain GPU.

VERL 0.9.1 assumes an accelerator with nccl and a vLLM/SGLang/TensorRT-LLM rollout server. What is
missing is plugged into VERL's own extension points by gsm8k_rl/verl_ext/ (the CPU platform, the FSDP
engines for it, the "hf" rollout, all registered by verl_ext/plugin.py in every VERL process).

The launcher asks `launch_spec()` what to run: module, environment and Hydra overrides. Nothing
here imports VERL; VERL is only imported inside the plugin's processes.
"""

from __future__ import annotations

import logging

from gsm8k_rl import UserError
from gsm8k_rl.launch.ray_env import runtime_env_override
from gsm8k_rl.verl_ext import PLUGIN_MODULE, ROLLOUT_NAME, check_verl_version

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")

# The FSDP engine configs of the three models VERL trains or runs forward (VERL 0.9.1 key paths).
ENGINE_CONFIGS = ("actor_rollout_ref.actor.fsdp_config", "actor_rollout_ref.ref.fsdp_config", "critic.fsdp")
CPU_PRECISION_NOTE = (
    "actor, reference and critic compute in fp32 (FSDP mixed_precision fp32, no bf16 autocast: "
    "CPUs without native bf16 emulate it, several times slower); for bf16 pass e.g. "
    "++actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=bf16 (likewise ref.fsdp_config, critic.fsdp)"
)


def cpu_precision_overrides() -> list[str]:
    """Overrides that make actor, reference and critic compute in fp32 on CPU.

    VERL's FSDP engine (0.9.1, `FSDPEngine._build_fsdp_module`) takes FSDP's param/reduce/buffer
    dtypes from the engine config's `mixed_precision` (absent from VERL's yaml: bf16 params, fp32
    reduce) and runs the forward under `torch.autocast` in the param dtype, skipped when that is
    fp32. The weights are already loaded in fp32 (`model_dtype: fp32`, the recipe's and VERL's
    default). On a CPU without native bf16 (e.g. AVX2-only x86) bf16 matmuls are emulated: a
    forward + backward of SmolLM2-135M on 2 x 288 tokens took 172 s under bf16 autocast and 23-35 s
    in fp32 (2-core AMD EPYC). `dtype` (the engine's, read by VERL's Megatron engine only) is set
    to match so the resolved config does not say bfloat16.

    >>> cpu_precision_overrides()[:2]
    ['++actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32',
     '++actor_rollout_ref.actor.fsdp_config.mixed_precision.reduce_dtype=fp32']
    """
    out: list[str] = []
    for role in ENGINE_CONFIGS:
        out += [f"++{role}.mixed_precision.{key}=fp32" for key in ("param_dtype", "reduce_dtype", "buffer_dtype")]
        out.append(f"{role}.dtype=float32")
    return out


def launch_spec(n_gpus: int = 1, device: str = "cpu", nnodes: int = 1, join_cluster: bool = False) -> dict:
    """What the launcher runs to train with this backend.

    Args:
        n_gpus: training worker processes on this node (CPU: logical GPUs, each one worker
            process; CUDA: real GPUs). Each worker holds one FSDP shard and one hf rollout replica.
        device: "cpu" (no accelerator) or "cuda" (GPU machine without vLLM).
        nnodes: nodes of the Ray cluster the run spans (each with `n_gpus` workers).
        join_cluster: a Ray cluster is already running (RAY_ADDRESS, `ray start`): VERL joins it,
            and Ray refuses resource counts from a joining driver, so the nodes' own
            (`ray start --num-gpus N --num-cpus M`) are used instead of declaring them here.
    Returns:
        {"python_module": module for `python -m`, "env": environment for the driver (VERL passes
        it on to the Ray workers), "overrides": Hydra overrides the backend needs}. Batch sizes
        and lengths are the launcher's; see docs/local_backend.md for the constraints on them.

    >>> spec = launch_spec(2, "cpu")
    >>> spec["python_module"], spec["env"]["VERL_PLATFORM"]
    ('verl.trainer.main_ppo', 'cpu')
    >>> "actor_rollout_ref.rollout.name=hf" in spec["overrides"]
    True
    """
    if device not in DEVICES:
        raise UserError(f"local backend device must be one of {DEVICES}, got {device!r}")
    if int(n_gpus) < 1:
        raise UserError(f"n_gpus must be >= 1, got {n_gpus}")
    check_verl_version()
    n = int(n_gpus)
    env = {
        # imported by `import verl` in the driver and, through the Ray runtime env, in every worker
        "VERL_USE_EXTERNAL_MODULES": PLUGIN_MODULE,
    }
    sdpa = "sdpa"  # flash-attn has no wheel; transformers' SDPA works on CPU and GPU
    overrides = [
        f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}",
        "actor_rollout_ref.rollout.mode=async",
        # one hf replica per worker (the hf server has no tensor/pipeline parallelism)
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.data_parallel_size=1",
        "actor_rollout_ref.rollout.pipeline_model_parallel_size=1",
        "actor_rollout_ref.rollout.checkpoint_engine.backend=naive",
        f"++actor_rollout_ref.model.override_config.attn_implementation={sdpa}",
        f"++critic.model.override_config.attn_implementation={sdpa}",
        # remove-padding packs sequences for flash-attn's varlen kernels
        "actor_rollout_ref.model.use_remove_padding=False",
        "critic.model.use_remove_padding=False",
        f"trainer.n_gpus_per_node={n}",
        f"trainer.nnodes={int(nnodes)}",
        f"trainer.device={device}",
    ]
    for key, value in env.items():
        # also through VERL's Ray runtime env, so workers on other nodes of a cluster get them
        overrides.append(runtime_env_override(key, value))
    if device == "cpu":
        cpu_env = {"VERL_PLATFORM": "cpu"}
        env.update(cpu_env)
        overrides += [runtime_env_override(k, v) for k, v in cpu_env.items()]
        overrides += [
            # FSDP1 needs an accelerator; FSDP2 runs on gloo
            "actor_rollout_ref.actor.strategy=fsdp2",
            "actor_rollout_ref.ref.strategy=fsdp2",
            "critic.strategy=fsdp2",
            # torch.compile of VERL's helpers would need a C++ toolchain and minutes of compiling
            "actor_rollout_ref.actor.use_torch_compile=False",
            "actor_rollout_ref.actor.fsdp_config.use_torch_compile=False",
            "actor_rollout_ref.ref.fsdp_config.use_torch_compile=False",
            "critic.fsdp.use_torch_compile=False",
            # one storage actor instead of 8 and one agent-loop/reward worker instead of 8 each
            "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
            "actor_rollout_ref.rollout.agent.num_workers=1",
            "reward.num_workers=1",
            "data.dataloader_num_workers=0",
            "actor_rollout_ref.rollout.dtype=float32",
        ]
        overrides += cpu_precision_overrides()
        log.info("CPU: %s", CPU_PRECISION_NOTE)
        if not join_cluster:
            overrides += [
                # the resource pool asks Ray for GPUs: declare n logical ones, each a CPU worker process
                f"++ray_kwargs.ray_init.num_gpus={n}",
                # logical CPUs: VERL starts ~10 single-CPU actors (TaskRunner, agent loop, reward, storage)
                "ray_kwargs.ray_init.num_cpus=16",
            ]
    return {"python_module": "verl.trainer.main_ppo", "env": env, "overrides": overrides}


__all__ = ["cpu_precision_overrides", "launch_spec"]
