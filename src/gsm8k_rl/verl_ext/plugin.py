"""The module VERL imports in every process (`VERL_USE_EXTERNAL_MODULES=gsm8k_rl.verl_ext.plugin`).

`import verl` imports the modules named in VERL_USE_EXTERNAL_MODULES at the end of its own
`__init__`, in the driver, the TaskRunner and every Ray worker (the variable reaches them through
the Ray runtime env). Importing this module:

1. refuses any VERL but the pinned one (everything below leans on 0.9.1 internals);
2. registers the "hf" async rollout in VERL's rollout registry (`_ROLLOUT_REGISTRY`, by class
   path, so nothing heavy is imported yet) and replica registry (`RolloutReplicaRegistry`);
3. when `VERL_PLATFORM=cpu`: registers the CPU platform (`cpu_platform.py`), and in a VERL training worker process
   starts torch.distributed with gloo before VERL tries (see `_init_cpu_process_group`);
4. registers VERL's FSDP engines for that device (`engines.py`);
5. registers the `torch_varlen` attention with transformers (`varlen_attention.py`), which
   `override_config.attn_implementation=torch_varlen` selects for actor and critic;
6. with GSM8K_RL_SELF_ALIGNED=1 (the launcher sets it for `--config sa_ppo`/`sa_grpo`): registers the
   self-aligned-reward trainer in VERL's trainer registry (`self_aligned.py`).
"""

from __future__ import annotations

import logging
import os

import verl

from gsm8k_rl.verl_ext import ROLLOUT_NAME, VERL_VERSION, check_verl_version

log = logging.getLogger(__name__)


def _register_rollout() -> None:
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    # VERL looks an async rollout up by (name, mode) -> "module.Class" in this dict; it has no
    # register() function in 0.9.1, so an entry is added the way VERL's own are declared.
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = "gsm8k_rl.verl_ext.hf_rollout.HFServerAdapter"

    def _load_replica():
        from gsm8k_rl.verl_ext.hf_rollout import HFReplica

        return HFReplica

    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)


def _init_cpu_process_group() -> None:
    """Start the default process group (gloo) in a VERL Ray training worker.

    VERL's `initialize_global_process_group_ray` builds the backend string
    f"cpu:gloo,{device}:{backend}", which torch rejects when the device is "cpu" ("Duplicate
    device type cpu"); it skips initialisation when a group already exists. A Ray worker of a
    VERL worker group carries WG_BACKEND=ray, RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in
    its environment from the start, so the group VERL would create is created here, with the
    same rendezvous (env://) and gloo, before VERL's worker constructor runs.
    """
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    if os.environ.get("WG_BACKEND") != "ray" or not all(os.environ.get(k) for k in needed):
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    dist.init_process_group(
        backend="gloo",
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        init_method=os.environ.get("DIST_INIT_METHOD", None),
    )
    log.info("gloo process group up: rank %s of %s", os.environ["RANK"], os.environ["WORLD_SIZE"])


check_verl_version(verl.__version__)
_register_rollout()
if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    from gsm8k_rl.verl_ext import cpu_platform as _platform  # noqa: F401  (registers "cpu")

    _init_cpu_process_group()
    _engine_device = "cpu"
else:
    _engine_device = "cuda"

from gsm8k_rl.verl_ext import engines as _engines  # noqa: E402

_engines.register(_engine_device)

from gsm8k_rl.verl_ext import varlen_attention as _varlen  # noqa: E402

_varlen.register()

from gsm8k_rl.verl_ext.self_aligned import SELF_ALIGNED_ENV  # noqa: E402

if os.environ.get(SELF_ALIGNED_ENV) == "1":
    from gsm8k_rl.verl_ext import self_aligned as _self_aligned

    _self_aligned.register()

__all__ = ["VERL_VERSION"]
