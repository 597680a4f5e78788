"""Which kernels the actor, reference and critic run with: the fast path, or VERL's plain one.

Why: without the flash-attn package (no PyPI wheel) VERL 0.9.1 computes every log-probability with
a Python loop over tokens (`verl.utils.torch_functional.logprobs_from_logits_v2`) and trains on
batches padded to their longest sequence. Two levers remove that, both through VERL's and
transformers' own extension points:

- fused log-probs: `actor_rollout_ref.model.use_fused_kernels=True` with
  `fused_kernel_options.impl_backend` = `triton` (VERL's own kernel; hidden size a multiple of 128,
  packed micro-batches) or `torch` (VERL's chunked PyTorch code, any model) -> log-probs and
  entropy from the hidden states in chunks, the (tokens x vocabulary) logits never materialised.
  `liger` (liger-kernel) is accepted with --fused liger; liger-kernel 0.8.5 needs NVIDIA's CuTe
  DSL for it on Hopper, which failed where it was tried (experiments/notebook.md);
- packed micro-batches (`use_remove_padding=True`) with attention = `flash_attention_2` when
  flash-attn is installed, else `torch_varlen` (gsm8k_rl.verl_ext.varlen_attention: PyTorch's own
  variable-length FlashAttention kernels), else SDPA on padded batches;
- liger-kernel's Triton RMSNorm, SwiGLU and RoPE in actor, reference and critic
  (`actor_rollout_ref.model.use_liger=True`, `critic.model.use_liger=True`: VERL puts them in with
  `_apply_liger_kernel_to_instance(fused_linear_cross_entropy=False)`): the eager fp32 RMSNorm and
  the SiLU-times-up of the model are memory-bound at Qwen3-1.7B's width; on an H200 the kernels cut
  forward+backward of a 32K-token micro-batch by 32% (experiments/notebook.md, "liger-kernel").

The memory-dependent levers (reference kept on the GPU, larger
forward-pass budgets) are the layout's: layout.layout_overrides(fast=True).

`decide` is called by `gsm8k-rl train` (and `doctor`) on the machine that plans the run; it looks
for the packages there and says so in the log, command.sh and run_info.json.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import platform
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.launch.ray_env import with_ray_env
from gsm8k_rl.verl_ext import PLUGIN_MODULE

FUSED_BACKENDS = ("liger", "triton", "torch")
LIGER_VERSION = "0.8.5"  # measured on the H200 (experiments/notebook.md); pinned in pyproject's gpu extra
ATTENTIONS = ("flash_attention_2", "torch_varlen", "sdpa")


@dataclasses.dataclass
class Kernels:
    """The kernel choices of one run, and the reason for each (recorded with the run)."""

    attn: str
    fused: str | None  # FUSED_BACKENDS member, or None: VERL's unfused log-probs
    source: str  # how it was decided
    fast: bool  # the layout's memory levers apply too (layout.layout_overrides(fast=True))
    liger: bool = False  # liger-kernel's RMSNorm/SwiGLU/RoPE in actor, reference and critic (VERL's use_liger)

    @property
    def remove_padding(self) -> bool:
        """Packed micro-batches: every attention here but SDPA takes them."""
        return self.attn != "sdpa"

    @property
    def plain(self) -> bool:
        """Some of VERL's slow path is left: unfused log-probs or padded micro-batches."""
        return self.fused is None or not self.remove_padding

    def describe(self) -> str:
        fused = (f"fused log-probs ({self.fused})" if self.fused
                 else "unfused log-probs (VERL's per-token loop without flash-attn)")
        pad = "packed micro-batches" if self.remove_padding else "padded micro-batches"
        liger = ", liger-kernel RMSNorm/SwiGLU/RoPE" if self.liger else ""
        return f"attention {self.attn}, {pad}, {fused}{liger}"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken install
        return False


def model_config(model: str | None) -> Any | None:
    """The model's config (a local folder, or the hub's cached/fetched config), its text part for a
    multimodal one; None when it cannot be read here."""
    if not model:
        return None
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(model)
    except Exception:  # offline hub id, missing folder: the caller falls back to the safe choice
        return None
    return getattr(cfg, "text_config", None) or cfg


def _varlen_available() -> bool:
    from gsm8k_rl.verl_ext.varlen_attention import available

    return available()


def triton_fits(hidden_size: int | None, remove_padding: bool) -> str | None:
    """Why VERL 0.9.1's Triton kernel cannot run this model, or None when it can.

    `verl.utils.kernel.kernels.efficient_entropy_forward` asserts hidden_size % 128 == 0
    (SmolLM2-135M: 576 fails, Qwen3-1.7B: 2048 passes), and its forward indexes a packed row: on a
    padded (batch, seq) input it raised IndexError on the H200 (experiments/notebook.md, "Step speed").

    >>> triton_fits(2048, True) is None, triton_fits(576, True)
    (True, 'hidden size 576 is not a multiple of 128')
    """
    if hidden_size is None:
        return "the model's hidden size is unknown here"
    if hidden_size % 128:
        return f"hidden size {hidden_size} is not a multiple of 128"
    if not remove_padding:
        return "it needs packed micro-batches"
    return None


def _liger_blocker(mode: str, fast: bool, backend: str, on_gpu: bool, where: str) -> str | None:
    """Why `--liger auto` leaves liger-kernel out of this run, or None when it goes in."""
    if not on_gpu:
        return "no GPU"
    if not fast:
        return f"--fast-path {mode}"
    if backend == "local":
        return "the local backend (not measured with it)"
    if not _importable("liger_kernel"):
        return f"liger-kernel is not importable {where} (pip install liger-kernel=={LIGER_VERSION})"
    if not _importable("triton"):
        return f"triton is not importable {where}"
    return None


def decide(mode: str, attn: str, backend: str, on_gpu: bool, fused: str = "auto",
           hidden_size: int | None = None, liger: str = "auto") -> Kernels:
    """The kernels for `--fast-path MODE --attn ATTN --fused FUSED --liger LIGER` on this machine.

    mode: "auto" (the fast path when a CUDA GPU is present), "on" (also on CPU: the same code paths
    through their CPU fallbacks, for tests), "off" (VERL's plain path: what VERL's GSM8K example runs
    without flash-attn). attn: "auto" or one of ATTENTIONS. fused: "auto" or one of FUSED_BACKENDS.
    hidden_size: the model's, which decides whether VERL's Triton kernel can run (`triton_fits`).
    liger: "auto" (with the fast path, on GPUs, the vllm backend, when liger-kernel and triton import
    here: the setting measured in experiments/notebook.md), "on", "off".
    """
    where = f"on {platform.node()}, the machine that planned the run"
    flash = _importable("flash_attn")
    if backend == "local" and attn == "flash_attention_2":
        raise UserError("--attn flash_attention_2: the local backend trains with SDPA or torch_varlen; use --backend "
                        "vllm")
    fast = mode == "on" or (mode == "auto" and on_gpu)
    notes = []
    if attn == "auto":
        if flash and backend != "local":
            attn = "flash_attention_2"
            notes.append(f"--attn auto: flash-attn is importable {where}")
        elif fast and (_varlen_available() or not on_gpu):
            attn = "torch_varlen"
            notes.append(f"--attn auto: flash-attn is not importable {where}; PyTorch's varlen kernels are")
        else:
            attn = "sdpa"
            notes.append(f"--attn auto: flash-attn is not importable {where}"
                         + ("" if not fast else "; neither are PyTorch's varlen kernels"))
    else:
        notes.append(f"--attn {attn}")
    if fused == "auto":
        if not fast:
            fused = None
            notes.append(f"--fast-path {mode}: unfused log-probs")
        else:
            why_not = ("no GPU" if not on_gpu else f"triton is not importable {where}" if not _importable("triton")
                       else triton_fits(hidden_size, attn != "sdpa"))
            if why_not is None:
                fused = "triton"
                notes.append("fused log-probs: VERL's Triton kernel")
            else:
                fused = "torch"
                notes.append(f"fused log-probs: VERL's chunked torch backend (not its Triton kernel: {why_not})")
    else:
        why_not = triton_fits(hidden_size, attn != "sdpa") if fused == "triton" and hidden_size is not None else None
        if why_not:
            raise UserError(f"--fused triton: VERL's Triton kernel cannot run this model ({why_not}); "
                            "use --fused torch")
        notes.append(f"--fused {fused}")
    if liger == "auto":
        why_not = _liger_blocker(mode, fast, backend, on_gpu, where)
        use_liger = why_not is None
        notes.append("liger-kernel RMSNorm/SwiGLU/RoPE" if use_liger else f"no liger-kernel ({why_not})")
    else:
        if liger == "on" and not on_gpu:
            raise UserError("--liger on: liger-kernel's kernels are Triton, for CUDA GPUs; this run trains on CPU")
        use_liger = liger == "on"
        notes.append(f"--liger {liger}")
    if mode == "auto" and not on_gpu:
        notes.append("--fast-path auto: no CUDA GPU, plain path")
    return Kernels(attn=attn, fused=fused, source="; ".join(notes), fast=fast, liger=use_liger)


def apply(kernels: Kernels, env: dict[str, str], ov: list[str], on_gpu: bool) -> tuple[dict[str, str], list[str]]:
    """Environment and Hydra overrides for these kernels.

    The project's VERL plugin (gsm8k_rl.verl_ext.plugin) is loaded in every worker whenever
    something of the project's is needed there: an attention other than flash_attention_2 (the
    critic's loader and the torch_varlen registration), or a GPU run (the reference-offload switch).
    """
    ov = list(ov)
    if kernels.attn != "flash_attention_2" or on_gpu:
        env, ov = with_ray_env(env, ov, VERL_USE_EXTERNAL_MODULES=PLUGIN_MODULE)
    if kernels.attn != "flash_attention_2":  # flash_attention_2 is VERL's own default: leave it unset
        ov += [f"++actor_rollout_ref.model.override_config.attn_implementation={kernels.attn}",
               f"++critic.model.override_config.attn_implementation={kernels.attn}"]
    flag = str(kernels.remove_padding)
    ov += [f"actor_rollout_ref.model.use_remove_padding={flag}", f"critic.model.use_remove_padding={flag}"]
    if kernels.fused:
        ov += ["actor_rollout_ref.model.use_fused_kernels=True",
               f"actor_rollout_ref.model.fused_kernel_options.impl_backend={kernels.fused}"]
    if kernels.liger:  # the actor's model config is the reference's too
        ov += ["actor_rollout_ref.model.use_liger=True", "critic.model.use_liger=True"]
    return env, ov


__all__ = ["ATTENTIONS", "FUSED_BACKENDS", "LIGER_VERSION", "Kernels", "apply", "decide"]
