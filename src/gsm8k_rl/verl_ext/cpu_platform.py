"""A CPU platform for VERL: lets the FSDP2 engine, Ray placement and checkpointing run with no accelerator.

VERL 0.9.1 has no CPU platform: with no CUDA it falls back to "nvidia" (nccl, `torch.cuda`).
This registers one through VERL's own extension point (`PlatformRegistry`, selected by
`VERL_PLATFORM=cpu`): device "cpu", collective backend gloo, and a device module whose
memory/RNG/stream calls work on the host. The Ray resource stays "GPU": VERL's resource pool
always asks for accelerators, so the launcher declares logical GPUs (`ray_init.num_gpus`), each
standing for one CPU worker process.
"""

from __future__ import annotations

import types
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


def _host_memory() -> tuple[int, int]:
    """(free, total) bytes of host memory, the CPU analogue of `torch.cuda.mem_get_info`."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except ImportError:  # psutil comes with ray; keep a fallback anyway
        import os

        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, pages * size


def _process_rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return 0


def _build_device_module() -> types.ModuleType:
    """`torch.cpu` plus the `torch.cuda`-style calls VERL makes on `get_torch_device()`.

    VERL calls empty_cache, mem_get_info, memory_allocated, max_memory_*, get/set_rng_state,
    ipc_collect, set_per_process_memory_fraction, get_device_name (the FLOPs counter looks the
    name up in its table; "CPU" is a known entry) on the device module; `torch.cpu` lacks them.
    """
    mod = types.ModuleType("gsm8k_rl_cpu_device")
    for name in dir(torch.cpu):
        if not name.startswith("__"):
            setattr(mod, name, getattr(torch.cpu, name))

    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    mod.empty_cache = noop
    mod.ipc_collect = noop
    mod.set_per_process_memory_fraction = noop
    mod.reset_peak_memory_stats = noop
    mod.manual_seed = torch.manual_seed
    mod.manual_seed_all = torch.manual_seed
    mod.get_rng_state = lambda *a, **k: torch.get_rng_state()
    mod.set_rng_state = lambda state, *a, **k: torch.set_rng_state(state)
    mod.mem_get_info = lambda *a, **k: _host_memory()
    # "allocated" = this process's resident memory: the closest host measure to GPU memory in use.
    mod.memory_allocated = lambda *a, **k: _process_rss()
    mod.memory_reserved = lambda *a, **k: _process_rss()
    mod.max_memory_allocated = lambda *a, **k: _process_rss()
    mod.max_memory_reserved = lambda *a, **k: _process_rss()
    mod.get_device_name = lambda *a, **k: "CPU"
    mod.current_device = lambda: "cpu"
    mod.device_count = lambda: 1
    mod.set_device = noop
    mod.synchronize = noop
    mod.is_available = lambda: True
    return mod


_CPU_DEVICE = _build_device_module()


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """Host CPU as VERL's "accelerator": one logical Ray GPU = one CPU worker process, gloo collectives."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return _CPU_DEVICE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Only ever chosen explicitly (VERL_PLATFORM=cpu), never by auto-detection.
        return False

    def current_device(self) -> str:  # type: ignore[override]
        # A string on purpose: VERL passes this to `tensor.to(...)`/`torch.device(...)`, where an
        # int would mean cuda:N.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Nothing reads it on CPU; a name no library acts on keeps Ray and torch out of it.
        return "GSM8K_RL_VISIBLE_CPUS"

    @contextmanager
    def nvtx_range(self, msg: str):
        with nullcontext():
            yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> None:
        return None
