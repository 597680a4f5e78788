"""An async rollout for VERL that generates with `transformers` `generate()` instead of vLLM/SGLang.

VERL 0.9.1 always rolls out through an "async server": a Ray actor per replica that answers
token-in/token-out `generate` calls from the agent loop, plus a `ServerAdapter` inside each
training worker that pushes the actor's new weights into that server after every update.
It ships servers for vLLM, SGLang and TensorRT-LLM only; this module adds a fourth, "hf", with
the same three parts, registered through VERL's registries (see plugin.py):

- `HFRolloutServer` (Ray actor): holds a HF causal-LM copy of the policy, batches concurrent
  requests that share sampling settings, runs `generate()` in a thread, returns `TokenOutput`.
- `HFReplica` (`RolloutReplica`): starts one server per replica next to its training worker
  (same node, same device), names it the way the adapter looks it up.
- `HFServerAdapter` (`BaseRollout`): in the training worker; streams the synced weights to the
  server in buckets, forwards sleep/wake-up.

Scope: tensor/pipeline/data parallel size 1 per replica (one replica per GPU/worker), text only,
no LoRA adapters (merge them), no OpenAI HTTP endpoint (tool/multi-turn agent loops that call
the chat API are not served). Made for CPU smoke runs and for GPU machines without vLLM; it is
far slower than vLLM (no paged KV cache, no continuous batching).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.device import get_device_name, get_resource_name, get_visible_devices_keyword
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutMode, RolloutReplica, TokenOutput

from gsm8k_rl.common.generation import Completion, disable_cudnn_sdpa, generate_batch, stop_token_ids

log = logging.getLogger(__name__)
# Same knob as VERL's modules; INFO by default so Ray's actor logs show per-batch generation timing.
log.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

ROLLOUT_NAME = "hf"
SERVER_PREFIX = f"{ROLLOUT_NAME}_server_"

GATHER_WINDOW_S = 0.05
GATHER_MAX_S = 1.0
# Sampling keys the agent loop sends that change the result; a batch only mixes requests that agree on them.
_BATCH_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "ignore_eos", "stop_token_ids", "logprobs")


def server_name(replica_rank: int, node_rank: int = 0, suffix: str = "") -> str:
    """Ray actor name of a replica's server; the adapter finds its server by this name.

    >>> server_name(3)
    'hf_server_3_0'
    """
    return f"{SERVER_PREFIX}{replica_rank}_{node_rank}{suffix}"


def _batch_key(params: dict[str, Any], max_tokens: int) -> tuple:
    key = []
    for name in _BATCH_KEYS:
        value = params.get(name)
        key.append(tuple(value) if isinstance(value, list) else value)
    return (*key, max_tokens)


@dataclass
class _Request:
    prompt_ids: list[int]
    params: dict[str, Any]
    max_tokens: int
    future: asyncio.Future = field(repr=False)


class HFRolloutServer:
    """One replica's generation server: a transformers model fed by the agent loop's requests.

    Mirrors the methods VERL calls on `vLLMHttpServer` (generate, wake_up, sleep,
    clear_kv_cache, abort/resume, set_global_steps, ...). Requests are queued; a single loop
    takes everything waiting, groups it by sampling settings and runs batched `generate()`
    in a worker thread so the actor keeps accepting requests meanwhile.
    """

    def __init__(
        self,
        config: RolloutConfig,
        model_config: HFModelConfig,
        rollout_mode: RolloutMode,
        workers: list,
        replica_rank: int,
        node_rank: int,
        visible_devices: str | None,
    ) -> None:
        if visible_devices and get_device_name() != "cpu":
            # Same as vLLM's server: see exactly the GPU of the co-located training worker.
            os.environ[get_visible_devices_keyword()] = visible_devices
        self.config: RolloutConfig = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.rollout_mode = rollout_mode
        self.workers = workers
        self.replica_rank = replica_rank
        self.node_rank = node_rank
        self.global_steps: int | None = None
        self.device = torch.device("cpu") if get_device_name() == "cpu" else torch.device(get_device_name(), 0)
        self._asleep = False
        self._queue: asyncio.Queue[_Request] | None = None
        self._loop_task: asyncio.Task | None = None
        self._accepting = asyncio.Event()
        self._accepting.set()
        self._model = self._load_model()
        self._stop_ids = self._stop_token_ids()
        self._pad_id = self._pad_token_id()
        torch.manual_seed(self.config.seed + replica_rank)
        log.info(
            "hf rollout server %s on %s (%s, %.1fM params), stop ids %s",
            server_name(replica_rank, node_rank),
            self.device,
            self.config.dtype,
            sum(p.numel() for p in self._model.parameters()) / 1e6,
            sorted(self._stop_ids),
        )

    # -- model -------------------------------------------------------------------------------

    def _load_model(self) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM
        from verl.utils.torch_dtypes import PrecisionType

        if self.device.type == "cuda":
            disable_cudnn_sdpa()
        dtype = PrecisionType.to_dtype(self.config.dtype)
        kwargs = dict(dtype=dtype, attn_implementation="sdpa", trust_remote_code=self.model_config.trust_remote_code)
        if self.config.load_format == "dummy":
            # Like vLLM's dummy format: real weights arrive with the first sync. Built on the
            # device itself: random init of billions of parameters on the host takes minutes.
            with torch.device(self.device):
                model = AutoModelForCausalLM.from_config(self.model_config.hf_config, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(self.model_config.local_path, **kwargs)
        # generate() fills every setting a request leaves unset from model.generation_config (Qwen3
        # ships temperature 0.6, top_k 20, top_p 0.95): keep only the token ids, so the request's
        # sampling params are the whole story, as with VERL's vLLM server.
        from transformers import GenerationConfig

        old = model.generation_config
        model.generation_config = GenerationConfig(
            bos_token_id=old.bos_token_id, eos_token_id=old.eos_token_id, pad_token_id=old.pad_token_id
        )
        return model.to(self.device).eval()

    def _stop_token_ids(self) -> set[int]:
        cfg = self.model_config
        return set(stop_token_ids(cfg.local_path, cfg.tokenizer, configs=(cfg.generation_config, cfg.hf_config)))

    def _pad_token_id(self) -> int:
        tok = self.model_config.tokenizer
        if tok is not None and tok.pad_token_id is not None:
            return int(tok.pad_token_id)
        return min(self._stop_ids)

    # -- generation --------------------------------------------------------------------------

    def _max_tokens(self, prompt_len: int, params: dict[str, Any]) -> int:
        """Same budget rule as VERL's vLLM server: response_length, capped by the context left."""
        max_model_len = self.config.max_model_len or (self.config.prompt_length + self.config.response_length)
        room = max_model_len - prompt_len
        if room < 1:
            raise ValueError(f"prompt of {prompt_len} tokens leaves no room within max_model_len={max_model_len}")
        if "max_tokens" in params:
            wanted = params["max_tokens"]
        elif "max_new_tokens" in params:
            wanted = params["max_new_tokens"]
        else:
            wanted = min(
                self.config.response_length, self.config.prompt_length + self.config.response_length - prompt_len
            )
        return max(1, min(int(wanted), room))

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Token-in/token-out generation of one response (the agent loop's call)."""
        if image_data is not None or video_data is not None or kwargs.get("audio_data") is not None:
            raise NotImplementedError("the hf rollout serves text-only models")
        params = dict(sampling_params)
        # as VERL's vLLM server does (vllm_async_server.py): the config's ignore_eos is the default
        params.setdefault("ignore_eos", bool(self.config.ignore_eos))
        prompt_ids = [int(t) for t in prompt_ids]
        max_tokens = self._max_tokens(len(prompt_ids), params)
        await self._accepting.wait()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._loop_task = asyncio.create_task(self._batch_loop())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(prompt_ids, params, max_tokens, future))
        return await future

    async def _batch_loop(self) -> None:
        assert self._queue is not None
        while True:
            waiting = [await self._queue.get()]
            # The agent loop sends a step's requests one RPC at a time, spread over a few tens of
            # ms: keep collecting while they keep coming (at most GATHER_MAX_S), so they share a batch.
            deadline = time.monotonic() + GATHER_MAX_S
            while time.monotonic() < deadline:
                await asyncio.sleep(GATHER_WINDOW_S)
                if self._queue.empty():
                    break
                while not self._queue.empty():
                    waiting.append(self._queue.get_nowait())
            groups: dict[tuple, list[_Request]] = defaultdict(list)
            for req in waiting:
                groups[_batch_key(req.params, req.max_tokens)].append(req)
            for reqs in groups.values():
                longest = max(len(r.prompt_ids) for r in reqs) + reqs[0].max_tokens
                max_batch = self._max_batch(longest)
                for start in range(0, len(reqs), max_batch):
                    chunk = reqs[start : start + max_batch]
                    try:
                        started = time.time()
                        outputs = await asyncio.to_thread(self._generate_batch, chunk)
                        took = time.time() - started
                        n_tokens = sum(len(o.token_ids) for o in outputs)
                        log.info(
                            "hf rollout: %d sequences, %d new tokens in %.2fs (%.0f tok/s, %d still queued)",
                            len(chunk), n_tokens, took, n_tokens / max(took, 1e-9), self._queue.qsize(),
                        )
                    except Exception as exc:  # hand the error to every caller, keep serving
                        log.exception("hf rollout generate failed")
                        for req in chunk:
                            if not req.future.done():
                                req.future.set_exception(exc)
                        continue
                    for req, out in zip(chunk, outputs, strict=True):
                        if not req.future.done():
                            req.future.set_result(out)

    def _generate_splitting_on_oom(self, prompts: list[list[int]], params: dict, max_tokens: int) -> list[Completion]:
        """generate_batch, halving the batch when the accelerator runs out of memory."""
        try:
            return generate_batch(self._model, prompts, params, max_tokens, self._stop_ids, self._pad_id)
        except torch.OutOfMemoryError:
            if len(prompts) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(prompts) // 2
            log.warning("hf rollout: out of memory with %d sequences, retrying in halves", len(prompts))
            return self._generate_splitting_on_oom(prompts[:half], params, max_tokens) + (
                self._generate_splitting_on_oom(prompts[half:], params, max_tokens)
            )

    def _max_batch(self, seq_len: int) -> int:
        """Sequences per generate() call: max_num_seqs, and on a GPU what the KV cache budget allows.

        Budget = gpu_memory_utilization x device memory - the server's weights (vLLM's meaning of
        the setting); each sequence holds 2 x layers x kv_heads x head_dim values per token.
        """
        limit = max(1, int(self.config.max_num_seqs))
        if self.device.type == "cpu":
            return limit
        cfg = self.model_config.hf_config.get_text_config()
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        elem = next(self._model.parameters()).element_size()
        per_seq = 2 * cfg.num_hidden_layers * heads * head_dim * elem * seq_len
        total = torch.cuda.get_device_properties(self.device).total_memory
        weights = sum(p.numel() * p.element_size() for p in self._model.parameters())
        budget = self.config.gpu_memory_utilization * total - weights
        return max(1, min(limit, int(budget // max(per_seq, 1))))

    def _generate_batch(self, reqs: list[_Request]) -> list[TokenOutput]:
        if self._asleep and self.device.type != "cpu":
            raise RuntimeError("hf rollout server got a request while asleep (weights offloaded)")
        outputs = self._generate_splitting_on_oom([r.prompt_ids for r in reqs], reqs[0].params, reqs[0].max_tokens)
        return [
            TokenOutput(
                token_ids=out.token_ids,
                log_probs=out.log_probs,
                stop_reason="completed",
                num_preempted=0,
                extra_fields={"global_steps": self.global_steps, "num_cached_tokens": 0},
            )
            for out in outputs
        ]

    # -- weights and memory ------------------------------------------------------------------

    async def update_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
        """Copy a bucket of synced actor weights (HF names) into the model, in place."""
        state = self._model.state_dict()
        unknown = [name for name, _ in named_tensors if name not in state]
        if unknown:
            raise KeyError(f"synced weights not in the rollout model: {unknown[:5]} ({len(unknown)} in all)")
        with torch.no_grad():
            for name, tensor in named_tensors:
                state[name].copy_(tensor.to(state[name].dtype))
        return len(named_tensors)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def wake_up(self, tags: list[str] | None = None) -> None:
        if self._asleep and self.device.type != "cpu":
            self._model.to(self.device)
        self._asleep = False

    async def sleep(self) -> None:
        """Free accelerator memory for training: weights go to host memory (no-op on CPU)."""
        if self.config.free_cache_engine and self.device.type != "cpu":
            self._model.to("cpu")
            from verl.utils.device import get_torch_device

            get_torch_device().empty_cache()
            self._asleep = True

    async def clear_kv_cache(self) -> None:
        return None  # generate() builds a fresh cache per batch

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        while self._queue is not None and not self._queue.empty():
            await asyncio.sleep(0.05)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        """Stop admitting requests; those already batched finish (generate() cannot be interrupted)."""
        self._accepting.clear()
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        self._accepting.set()

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None

    def get_rollout_config(self) -> RolloutConfig:
        return self.config


class HFReplica(RolloutReplica):
    """A rollout replica served by `HFRolloutServer` (one per training worker: tp = dp = pp = 1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.world_size != 1:
            raise ValueError(
                "the hf rollout runs one replica per worker: set actor_rollout_ref.rollout."
                "{tensor_model_parallel_size,data_parallel_size,pipeline_model_parallel_size}=1 "
                f"(got world size {self.world_size})"
            )

    def _name(self) -> str:
        role = "reward_" if self.is_reward_model else "teacher_" if self.is_teacher_model else ""
        return f"{SERVER_PREFIX}{role}{self.replica_rank}_0{self.name_suffix}"

    async def launch_servers(self) -> None:
        if self.rollout_mode != RolloutMode.HYBRID or len(self.workers) != 1:
            raise NotImplementedError(
                "the hf rollout only runs hybrid (colocated with the actor): "
                "keep actor_rollout_ref.hybrid_engine=True and trainer.v1.trainer_mode at its default"
            )
        worker = self.workers[0]
        node_id, visible = await worker.__ray_call__.remote(
            lambda self: (
                ray.get_runtime_context().get_node_id(),
                ray.get_runtime_context().get_accelerator_ids()[get_resource_name()][0],
            )
        )
        from verl.plugin.platform import get_platform

        env_vars = {var: "1" for var in get_platform().ray_noset_envvars()}
        env_vars.update(get_platform().rollout_env_vars())
        server_cls = ray.remote(HFRolloutServer)
        server = server_cls.options(
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id=node_id,
                                                                                              soft=False),
            runtime_env={"env_vars": env_vars},
            name=self._name(),
            max_concurrency=self.max_concurrency,
            num_cpus=0,
        ).remote(
            config=self.config,
            model_config=self.model_config,
            rollout_mode=self.rollout_mode,
            workers=self.workers,
            replica_rank=self.replica_rank,
            node_rank=0,
            visible_devices=str(visible),
        )
        await server.get_rollout_config.remote()  # wait until the model is loaded
        self.servers = [server]
        self._server_handle = server
        # No HTTP endpoint: the address is only a unique key for VERL's load balancer.
        self._server_address = f"{ROLLOUT_NAME}://{self._name()}"


class HFServerAdapter(BaseRollout):
    """Lives in each training worker: pushes synced weights to its replica's `HFRolloutServer`."""

    def __init__(self, config: RolloutConfig, model_config: HFModelConfig, device_mesh: Any, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ["RANK"])
        self.replica_rank = rank if replica_rank == -1 else replica_rank
        self._server: ray.actor.ActorHandle | None = None

    @property
    def server(self) -> ray.actor.ActorHandle:
        if self._server is None:  # servers start after the training workers
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        if self.config.free_cache_engine:
            await self.server.wake_up.remote(tags=tags)

    async def release(self) -> None:
        if self.config.free_cache_engine:
            await self.server.sleep.remote()

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        global_steps: int | None = None,
        wire_format: str = "named_tensors",
        peft_config: Any = None,
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf rollout takes full named tensors, not wire_format={wire_format!r}")
        if peft_config is not None:
            raise NotImplementedError("the hf rollout has no LoRA adapter path: set "
                                      "actor_rollout_ref.model.lora.merge=True")
        start = time.time()
        bucket_bytes = int(self.config.checkpoint_engine.update_weights_bucket_megabytes) << 20
        bucket: list[tuple[str, torch.Tensor]] = []
        size = sent = 0
        in_flight = None  # one bucket on the wire while the next is gathered: bounded host memory
        from verl.utils.torch_dtypes import PrecisionType

        dtype = PrecisionType.to_dtype(self.config.dtype)
        for name, tensor in weights:
            # cast on the device first: the actor's fp32 master weights would double the bytes moved
            t = tensor.detach()
            t = (t.to(dtype) if t.is_floating_point() else t).to("cpu")
            bucket.append((name, t))
            size += t.numel() * t.element_size()
            if size >= bucket_bytes:
                if in_flight is not None:
                    sent += await in_flight
                in_flight = self.server.update_weights.remote(bucket)
                bucket, size = [], 0
        if in_flight is not None:
            sent += await in_flight
        if bucket:
            sent += await self.server.update_weights.remote(bucket)
        if global_steps is not None:
            await self.server.set_global_steps.remote(global_steps)
        log.info("hf rollout: synced %d tensors to replica %d in %.2fs", sent, self.replica_rank, time.time() - start)
