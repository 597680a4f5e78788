"""Packed-sequence ("remove padding") attention for the actor and critic without the flash-attn package.

Why: VERL packs a micro-batch into one row of `total_tokens` (no padding) only for attention kernels
that take cumulative sequence lengths; transformers' own one, `flash_attention_2`, needs the
flash-attn package, which has no wheel on PyPI. With SDPA the batch must stay padded to its longest
sequence (and a packed row would get a dense tokens x tokens mask). PyTorch itself ships
FlashAttention-2's variable-length kernels (`torch.nn.attention.varlen.varlen_attn`, forward and
backward, CUDA only). This module registers them with transformers under the name `torch_varlen`
(`AttentionInterface`, the documented extension point), so
`override_config.attn_implementation=torch_varlen` + `use_remove_padding=True` trains on packed
micro-batches.

Behaviour of `attention_forward`, by input:
- packed (one row, no 2D mask, position_ids restarting at 0 for each sequence), CUDA, bf16/fp16:
  varlen FlashAttention over the sequences, causal within each;
- packed on CPU (tests): SDPA with the equivalent block-causal mask (same math, dense);
- anything else (padded batches, generation with a cache): plain SDPA with the mask transformers
  built for it.

Ulysses sequence parallelism is not supported (it needs VERL's all-to-all around the kernel);
`launch/validate.py` refuses the combination.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

NAME = "torch_varlen"


def available() -> bool:
    """Whether this torch has the varlen kernels (CUDA builds of torch >= 2.10)."""
    try:
        from torch.nn.attention import varlen  # noqa: F401
    except ImportError:
        return False
    return True


def register() -> None:
    """Register `torch_varlen` with transformers' attention and mask interfaces (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, _mask)


def _mask(*args: Any, attention_mask: Any = None, **kwargs: Any) -> Any:
    """No mask for unpadded input (packed rows are found from position_ids, as flash_attention_2 does);
    SDPA's mask when a 2D padding mask comes in."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


class _SeqLens:
    """cu_seqlens/max length of the packed row a forward pass is running on.

    Every layer of one forward gets the same position_ids tensor: compute once (one host sync), keyed
    on that tensor object (a weak reference, so a new batch never hits a stale entry)."""

    def __init__(self) -> None:
        self._ref: Any = None
        self._value: tuple[Any, int] | None = None

    def __call__(self, position_ids: Any) -> tuple[Any, int]:
        if self._ref is not None and self._ref() is position_ids and self._value is not None:
            return self._value
        cu, longest = cu_seqlens(position_ids)
        self._ref, self._value = weakref.ref(position_ids), (cu, longest)
        return self._value


def _sequence_starts(position_ids: Any) -> Any:
    """Bool per token of a packed row: a sequence starts here (the position does not continue the
    previous one, as transformers' `find_packed_sequence_indices` reads it)."""
    import torch

    pos = position_ids.reshape(-1)
    starts = torch.ones_like(pos, dtype=torch.bool)
    starts[1:] = pos[1:] != pos[:-1] + 1
    return starts


def cu_seqlens(position_ids: Any) -> tuple[Any, int]:
    """Cumulative sequence lengths (int32) and the longest sequence of a packed row.

    A sequence starts where the position does not continue the previous one (as transformers'
    `find_packed_sequence_indices`), so a row may also start mid-sequence.

    >>> import torch
    >>> cu, longest = cu_seqlens(torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]]))
    >>> cu.tolist(), longest
    ([0, 3, 5, 9], 4)
    """
    import torch

    starts = _sequence_starts(position_ids)
    idx = starts.nonzero().reshape(-1).to(torch.int32)
    cu = torch.cat([idx, torch.tensor([starts.numel()], dtype=torch.int32, device=starts.device)])
    return cu, int(cu.diff().max().item())


def block_causal_mask(position_ids: Any) -> Any:
    """(1, 1, T, T) bool mask: token i sees token j iff same sequence and j <= i (the CPU path).

    >>> import torch
    >>> block_causal_mask(torch.tensor([[0, 1, 0, 1]]))[0, 0].int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    """
    import torch

    seq = _sequence_starts(position_ids).cumsum(0)
    same = seq[:, None] == seq[None, :]
    causal = torch.ones_like(same).tril()
    return (same & causal)[None, None]


_seqlens = _SeqLens()
_VARLEN_PARAMS: set[str] | None = None


def _varlen_params() -> set[str]:
    global _VARLEN_PARAMS
    if _VARLEN_PARAMS is None:
        from torch.nn.attention.varlen import varlen_attn

        _VARLEN_PARAMS = set(inspect.signature(varlen_attn).parameters)
    return _VARLEN_PARAMS


def _packed(query: Any, attention_mask: Any, position_ids: Any) -> bool:
    return attention_mask is None and position_ids is not None and query.shape[0] == 1 and query.shape[2] > 1


def attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                      scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers attention function: query (B, H, T, D), key/value (B, Hkv, T, D) -> (B, T, H, D)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    if not _packed(query, attention_mask, position_ids) or dropout:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if not query.is_cuda or not available():
        mask = block_causal_mask(position_ids).to(query.device)
        return sdpa_attention_forward(module, query, key, value, mask, dropout=dropout, scaling=scaling,
                                      is_causal=False, **kwargs)
    return _varlen_forward(query, key, value, position_ids, scaling)


def _varlen_forward(query: Any, key: Any, value: Any, position_ids: Any, scaling: float | None) -> tuple[Any, None]:
    import torch
    from torch.nn.attention.varlen import varlen_attn

    cu, longest = _seqlens(position_ids)
    dtype = query.dtype
    # (1, H, T, D) -> (T, H, D); FlashAttention computes in half precision only
    q, k, v = (t.transpose(1, 2).squeeze(0) for t in (query, key, value))
    if dtype not in (torch.bfloat16, torch.float16):
        q, k, v = q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16)
    params = _varlen_params()
    extra: dict[str, Any] = {}
    if k.shape[1] != q.shape[1]:  # grouped-query attention
        if "enable_gqa" in params:
            extra["enable_gqa"] = True
        else:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    # torch 2.10 takes is_causal; later releases express causality as window_size=(-1, 0)
    if "window_size" in params:
        extra["window_size"] = (-1, 0)
    else:
        extra["is_causal"] = True
    if scaling is not None:
        if "scale" in params:
            extra["scale"] = scaling
        else:  # older signature: the kernel's default 1/sqrt(D), so scale q to match
            q = q * (scaling * q.shape[-1] ** 0.5)
    out = varlen_attn(q.contiguous(), k.contiguous(), v.contiguous(), cu, cu, longest, longest, **extra)
    return out.to(dtype).unsqueeze(0), None


__all__ = ["NAME", "attention_forward", "available", "block_causal_mask", "cu_seqlens", "register"]
