"""The two generation backends of `gsm8k-rl eval`: transformers (any machine; the batched,
left-padded generate the hf rollout uses too) and vLLM's offline engine (GPUs).

Both return, per prompt, the answers as `Generation`s: the text decoded as VERL decodes responses
for the reward, the tokens generated (the stop token included) and why generation ended.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.common.generation import disable_cudnn_sdpa, generate_batch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "transformers")
DTYPES = ("auto", "bfloat16", "float16", "float32")
# transformers backend: problems per generate call (a batch runs until its longest output ends).
DEFAULT_HF_BATCH_SIZE = {"cpu": 8, "cuda": 64}




@dataclass(frozen=True)
class Generation:
    text: str  # decoded with special tokens skipped, as VERL decodes responses for the reward
    n_tokens: int  # generated tokens, the stop token included
    finish_reason: str  # "stop" (a stop token) or "length" (max_new_tokens reached)


@dataclass(frozen=True)
class Sampling:
    """Sampled decoding: `n` answers per problem (None everywhere means greedy, one answer)."""

    n: int
    temperature: float
    top_p: float = 1.0
    seed: int = 0


class TransformersBackend:
    """Batched `generate` with left padding (common/generation.py, the hf rollout's), greedy or sampled.
    Runs anywhere torch runs (tests use CPU)."""

    name = "transformers"

    def __init__(self, model: str, tokenizer: Any, dtype: str, max_new_tokens: int, stop_ids: list[int],
                 sampling: Sampling | None = None):
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bfloat16" if self.device == "cuda" else "float32"
        self.dtype = dtype
        if self.device == "cuda":
            disable_cudnn_sdpa()
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(self.device).eval()
        # A clean generation config: the checkpoint's sampling defaults (Qwen3 ships temperature 0.6,
        # top_k 20) would otherwise be merged in; greedy needs none of them.
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
        self.model.generation_config = GenerationConfig(eos_token_id=stop_ids, pad_token_id=self.pad_id)
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.stop_ids = set(stop_ids)
        self.sampling = sampling

    def close(self) -> None:
        """Nothing runs outside this process; the model is freed with the object."""

    def generate(self, prompts: Sequence[list[int]], first_index: int = 0) -> list[list[Generation]]:
        """One list of answers per prompt: one greedy answer, or `sampling.n` samples (seeded by
        `sampling.seed` and the batch's first problem index: reproducible for the same batches)."""
        import torch

        n = 1
        params: dict[str, Any] = {"temperature": 0.0}
        if self.sampling is not None:
            n = self.sampling.n
            params = {"temperature": self.sampling.temperature, "top_p": self.sampling.top_p, "top_k": -1}
            torch.manual_seed(self.sampling.seed * 1_000_003 + first_index)
        # a prompt's n samples side by side, as generate(num_return_sequences=n) lays them out
        batch = [list(p) for p in prompts for _ in range(n)]
        with torch.inference_mode():
            done = generate_batch(self.model, batch, params, self.max_new_tokens, self.stop_ids, self.pad_id)
        results = [Generation(text=self.tokenizer.decode(c.token_ids, skip_special_tokens=True),
                              n_tokens=len(c.token_ids), finish_reason="stop" if c.stopped else "length")
                   for c in done]
        return [results[k : k + n] for k in range(0, len(results), n)]


VLLM_MP_ENV = "VLLM_WORKER_MULTIPROC_METHOD"


def use_spawned_engine(environ: dict | None = None) -> str:
    """Start vLLM's engine core with `spawn`, unless the user chose otherwise.

    vLLM forks its engine core by default, and a forked child cannot use CUDA once the parent has
    touched it. Inside `gsm8k-rl run` the parent has: the plan stage imports VERL, which initialises
    CUDA, before the base eval starts vLLM in the same process ("Cannot re-initialize CUDA in forked
    subprocess", seen on an H200).

    >>> env = {}
    >>> use_spawned_engine(env), env
    ('spawn', {'VLLM_WORKER_MULTIPROC_METHOD': 'spawn'})
    >>> use_spawned_engine({"VLLM_WORKER_MULTIPROC_METHOD": "fork"})
    'fork'
    """
    environ = os.environ if environ is None else environ
    return environ.setdefault(VLLM_MP_ENV, "spawn")


class VLLMBackend:
    """vLLM offline engine; one `generate` call per batch (by default the whole set)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        tokenizer_path: str,
        dtype: str,
        max_new_tokens: int,
        stop_ids: list[int],
        tensor_parallel_size: int,
        gpu_memory_utilization: float,
        max_model_len: int | None,
        sampling: Sampling | None = None,
    ):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise UserError(
                f"--backend vllm needs vLLM, which is not importable here ({exc}); install the GPU extra "
                "(pip install 'gsm8k-rl[gpu]') or pass --backend transformers"
            ) from exc
        self.dtype = dtype
        use_spawned_engine()
        kwargs: dict[str, Any] = dict(
            model=model,
            tokenizer=tokenizer_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=0,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        self.llm = LLM(**kwargs)
        # the dtype vLLM resolved "auto" to (the checkpoint's torch_dtype), for metrics.json
        resolved = getattr(getattr(self.llm.llm_engine, "model_config", None), "dtype", None)
        self.dtype = str(resolved).removeprefix("torch.") if resolved is not None else dtype
        if sampling is None:
            self.params = SamplingParams(
                temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=stop_ids, skip_special_tokens=True
            )
        else:  # a seed per request: each problem's samples do not depend on what else is in the batch
            self.params = SamplingParams(
                n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed,
                max_tokens=max_new_tokens, stop_token_ids=stop_ids, skip_special_tokens=True,
            )

    def close(self) -> None:
        """Stop vLLM's engine-core process now. Left to interpreter exit after an exception, its
        shutdown hung until killed (vLLM 0.24.0 on an H200; experiments/notebook.md)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def generate(self, prompts: Sequence[list[int]], first_index: int = 0) -> list[list[Generation]]:
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], self.params, use_tqdm=True)
        # "stop" (EOS / stop token) or "length"; anything else (an abort) is kept as vLLM said it
        return [[Generation(text=c.text, n_tokens=len(c.token_ids), finish_reason=str(c.finish_reason))
                 for c in o.outputs] for o in outs]


def resolve_backend(name: str) -> str:
    """auto -> vllm when CUDA and vLLM are both present, else transformers."""
    if name != "auto":
        return name
    import torch

    if not torch.cuda.is_available():
        return "transformers"
    if importlib.util.find_spec("vllm") is None:
        log.warning("CUDA is present but vLLM is not installed: falling back to the (slow) transformers backend")
        return "transformers"
    return "vllm"


def sampling_of(samples: int, temperature: float | None, top_p: float, seed: int) -> Sampling | None:
    """The decoding asked for: None for greedy (one answer, temperature 0), else a Sampling.

    >>> sampling_of(1, None, 1.0, 0) is None, sampling_of(16, None, 1.0, 0)
    (True, Sampling(n=16, temperature=1.0, top_p=1.0, seed=0))
    """
    if samples < 1:
        raise UserError(f"--samples must be >= 1, got {samples}")
    if temperature is None:
        temperature = 0.0 if samples == 1 else 1.0
    if temperature < 0 or not 0 < top_p <= 1:
        raise UserError(f"--temperature must be >= 0 and --top-p in (0, 1], got {temperature} and {top_p}")
    if temperature == 0:
        if samples > 1:
            raise UserError(f"--samples {samples} with --temperature 0: greedy decoding gives the same answer "
                            "every time; pass a temperature > 0 (e.g. 1.0, the training rollout's)")
        return None
    return Sampling(samples, float(temperature), float(top_p), int(seed))
