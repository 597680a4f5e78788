"""The hardware layout: how the recipe is fitted to the GPUs it runs on, in one place.

What the launcher finds (`detect_hardware`: GPU count and memory, no CUDA context), what the model
needs (`ModelShape`: its real size, read from its config), the memory model (`estimate_memory_gb`,
the same estimate `gsm8k-rl doctor` prints) and the rules that turn them into VERL overrides
(`layout_overrides`): FSDP over every GPU, one vLLM replica per GPU, micro-batch token budgets,
what is offloaded. The measured numbers behind each rule are named beside it (experiments/notebook.md).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from gsm8k_rl import UserError


@dataclasses.dataclass
class Hardware:
    """What the launcher sizes the run for."""

    n_gpus_per_node: int
    gpu_memory_gb: float
    nnodes: int = 1
    gpu_name: str = ""

    @property
    def world_size(self) -> int:
        return self.n_gpus_per_node * self.nnodes


def detect_hardware() -> Hardware | None:
    """CUDA GPUs of this node via nvidia-smi (no CUDA context in the launcher); None without GPUs."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    rows = [r.rsplit(",", 1) for r in out.strip().splitlines() if r.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        keep = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        rows = [rows[i] for i in keep if i < len(rows)]
    if not rows:
        return None
    return Hardware(
        n_gpus_per_node=len(rows),
        gpu_memory_gb=min(float(m) for _, m in rows) / 1024,
        gpu_name=rows[0][0].strip(),
    )


QWEN3_1_7B_PARAMS = 1_720_574_976  # from ../shared/models/qwen3-1.7b/config.json (tied embeddings)


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs of a model: its parameters and the sizes its activations scale with."""

    n_params: int
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    name: str = ""


QWEN3_1_7B = ModelShape(QWEN3_1_7B_PARAMS, 151936, 2048, 28, 6144, "Qwen3-1.7B (the recipe's model)")


def count_params(model_config: Any) -> int:
    """Parameters of a decoder-only HF config (Qwen2, Qwen3, Llama shapes), without building the model:
    Qwen2 has q/k/v biases, Qwen3 per-head q/k norms, an untied LM head counts twice the embedding.

    >>> from types import SimpleNamespace as C
    >>> count_params(C(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, model_type="qwen3",
    ...     num_key_value_heads=1, head_dim=2, intermediate_size=8, tie_word_embeddings=True))
    200
    """
    h, v, layers = model_config.hidden_size, model_config.vocab_size, model_config.num_hidden_layers
    kind = getattr(model_config, "model_type", "")
    hd = getattr(model_config, "head_dim", None) or h // model_config.num_attention_heads
    q_dim, kv_dim = model_config.num_attention_heads * hd, model_config.num_key_value_heads * hd
    attn = h * q_dim + 2 * h * kv_dim + q_dim * h
    if getattr(model_config, "attention_bias", kind == "qwen2"):  # Qwen2: biases on q, k and v
        attn += q_dim + 2 * kv_dim
    mlp = 3 * h * model_config.intermediate_size
    norms = 2 * h + (2 * hd if kind == "qwen3" else 0)  # input/post-attention norms (+ Qwen3's q/k norms)
    embed = v * h * (1 if model_config.tie_word_embeddings else 2)
    return embed + layers * (attn + mlp + norms) + h


def model_shape(model_config: Any, name: str = "") -> ModelShape:
    """The ModelShape of a HF config (its text part for a multimodal one)."""
    cfg = getattr(model_config, "text_config", None) or model_config
    return ModelShape(count_params(cfg), cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers,
                      cfg.intermediate_size, name)


# Bytes of Adam moments per parameter for the optimizers VERL can build (`optim.optimizer_impl` +
# `optim.optimizer`): fp32 m and v; torchao's block-quantized states (measured with
# experiments/optimizer_numerics.py: small tensors such as norms stay fp32, hence a little above 2 and 1).
ADAM_STATE_BYTES = {
    ("torch.optim", "AdamW"): 8.0,
    ("torchao.optim", "AdamW8bit"): 2.1,
    ("torchao.optim", "AdamW4bit"): 1.1,
}
LOW_BIT_OPTIMIZERS = {"adamw8bit": "AdamW8bit"}  # gsm8k-rl train --optimizer (4 bits drift: experiments/notebook.md)


def optim_state_bytes(optim: Any) -> float:
    """Adam state bytes per parameter of one role's `optim` config (8 for anything not in the table)."""
    key = (str(optim.get("optimizer_impl", "torch.optim")), str(optim.get("optimizer", "AdamW")))
    return ADAM_STATE_BYTES.get(key, 8.0)


def adam_state_bytes(cfg: Any) -> float:
    """Adam state bytes per parameter of the larger of actor and critic."""
    return max(optim_state_bytes(o) for o in (cfg.actor_rollout_ref.actor.optim, cfg.critic.optim))


def optimizer_overrides(name: str | None) -> list[str]:
    """`gsm8k-rl train --optimizer`: the same torchao optimizer for actor and critic, through VERL's own
    optimizer builder (verl/workers/config/optimizer.py: importlib(optimizer_impl).optimizer).

    >>> optimizer_overrides("adamw8bit")[:2]
    ['actor_rollout_ref.actor.optim.optimizer_impl=torchao.optim', 'actor_rollout_ref.actor.optim.optimizer=AdamW8bit']
    >>> optimizer_overrides(None), optimizer_overrides("adamw")
    ([], [])
    """
    if name in (None, "adamw"):
        return []
    cls = LOW_BIT_OPTIMIZERS[name]
    return [f"{role}.optim.{key}" for role in ("actor_rollout_ref.actor", "critic")
            for key in ("optimizer_impl=torchao.optim", f"optimizer={cls}")]


def estimate_memory_gb(
    n_params: float, world: int, gpu_memory_gb: float, vllm_fraction: float, token_budget: int,
    optimizer_offload: bool, with_ref: bool = True, vocab: int = 151936, hidden: int = 2048, layers: int = 28,
    fused: bool = False, checkpointing: bool = True, intermediate: int = 6144, adam_bytes: float = 8.0,
) -> dict[str, float]:
    """Rough per-GPU peak of colocated PPO (FSDP actor + critic + ref, vLLM asleep during updates).

    fp32 weights + grads (8 B/param) and Adam moments (`adam_bytes` per param: 8 for fp32 AdamW, ~2
    for torchao's AdamW8bit; none on the GPU if offloaded) for actor and
    critic, fp32 weights for the reference, all sharded over `world` GPUs; vLLM holds its
    `vllm_fraction` of the GPU while generating; activations ~ token budget x (the fp32 logits over
    the vocabulary, twice for log-softmax, unless `fused` computes them in 512-token chunks) + the
    hidden states kept for the backward pass: one bf16 vector per layer with gradient checkpointing,
    every layer's intermediates without (calibrated on a measured peak).
    An estimate for sizing; experiments/notebook.md has measured peaks.
    """
    gb = 1024**3
    trained = n_params * (8 + (0 if optimizer_offload else adam_bytes)) / world / gb
    ref = n_params * 4 / world / gb if with_ref else 0.0
    vllm = vllm_fraction * gpu_memory_gb
    logits = 512 * vocab * 4 * 3 if fused else token_budget * vocab * 4 * 2
    # without checkpointing: ~32 bytes per token per layer per (hidden + MLP width), calibrated on the
    # H200 run without it (122.8 GiB allocated at 8192 tokens, experiments/notebook.md "Step speed")
    per_layer = hidden * 2 if checkpointing else 32 * (hidden + intermediate)
    act = (logits + token_budget * per_layer * layers) / gb
    return {"actor": trained, "critic": trained, "ref": ref, "vllm_reserved": vllm, "activations": act,
            "peak_estimate": 2 * trained + ref + max(vllm, act)}


def memory_estimate(model_config: Any, cfg: Any, gpu_memory_gb: float) -> dict[str, float]:
    """estimate_memory_gb for a composed config and the model it trains: its architecture, token
    budget, fused log-probs and gradient checkpointing, as the run will have them (`gsm8k-rl doctor`)."""
    from omegaconf import OmegaConf

    arr = cfg.actor_rollout_ref
    if arr.actor.use_dynamic_bsz:
        tokens = arr.actor.ppo_max_token_len_per_gpu
    else:
        tokens = arr.actor.ppo_micro_batch_size_per_gpu * (cfg.data.max_prompt_length + cfg.data.max_response_length)
    # an offloaded reference still comes to the GPU for its forward pass: counted either way
    ref = bool(cfg.algorithm.use_kl_in_reward or arr.actor.use_kl_loss)
    shape = model_shape(model_config)
    return estimate_memory_gb(
        shape.n_params, cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes, gpu_memory_gb,
        arr.rollout.gpu_memory_utilization, tokens, bool(arr.actor.fsdp_config.optimizer_offload),
        with_ref=ref, vocab=shape.vocab, hidden=shape.hidden, layers=shape.layers, intermediate=shape.intermediate,
        fused=bool(OmegaConf.select(cfg, "actor_rollout_ref.model.use_fused_kernels", default=False)),
        checkpointing=bool(OmegaConf.select(cfg, "actor_rollout_ref.model.enable_gradient_checkpointing",
                                            default=True)),
        adam_bytes=adam_state_bytes(cfg),
    )


# Host RAM in use during the 1-GPU PPO runs (VERL's perf/cpu_memory_used_gb, experiments/notebook.md):
# ~49-51 GiB with everything on the GPU, ~85-87 GiB with the Adam states of actor and critic
# offloaded (Qwen3-1.7B): ~18.5 GiB per offloaded model, i.e. ~11.5 bytes per parameter.
HOST_BASE_GIB = 50.0
HOST_BYTES_PER_OFFLOADED_PARAM = 11.5


def host_ram_needed_gib(n_params: int, cfg: Any) -> float:
    """Host memory the run will have in use, scaled from the measured 1-GPU runs.

    >>> from types import SimpleNamespace as C
    >>> off = lambda on: C(optimizer_offload=on)
    >>> cfg = C(actor_rollout_ref=C(actor=C(fsdp_config=off(True))), critic=C(fsdp=off(True)))
    >>> round(host_ram_needed_gib(1_720_574_976, cfg))
    87
    """
    offloaded = (int(bool(cfg.actor_rollout_ref.actor.fsdp_config.optimizer_offload))
                 + int(bool(cfg.critic.fsdp.optimizer_offload)))
    return HOST_BASE_GIB + offloaded * n_params * HOST_BYTES_PER_OFFLOADED_PARAM / 2**30


# The layout's measured settings, by GPU memory (experiments/notebook.md has every measurement).
# A table row (at least GB, value) applies to GPUs of at least that size; the first row that fits wins.
SPEC_MICRO_BATCH = 16  # the spec's micro-batch per GPU (sequences), capped by what the mini-batch leaves
# Token budget per micro-batch, training and forward passes: on 1 x H100 80 GB ("PPO at true scale")
# 8192-token micro-batches fit (peak 62 GiB); 16384/32768 ran out of memory in the actor's log-prob pass
# (fp32 logits over a 152K vocabulary). Smaller GPUs: half, not measured.
TOKEN_BUDGET = ((70, 8192), (0, 4096))
# The rollout engine's share of the GPU while generating, measured to fit beside actor + critic + ref:
# local (transformers) rollout at 0.2 on 1 x H100 (peak 62 GiB); vLLM at 0.3 on 1 x H100 (63 GiB, Adam
# on the host) and 1 x H200 (85 GiB, no offload); 0.25 below 70 GB, not measured.
ROLLOUT_SHARE = {"local": ((0, 0.2),), "vllm": ((70, 0.3), (0, 0.25))}
# Adam states go to host memory when the estimated peak passes this share of the GPU.
OFFLOAD_ABOVE = 0.9
# The memory lever of the fast path ("Step speed"): on GPUs of at least this size the reference stays
# on the GPU (fp32 Qwen3-1.7B: 6.4 GiB). Gradient checkpointing stays on: without it the H200 run
# peaked at 138.1 of 139.8 GiB (nvidia-smi), too close to the edge.
FAST_RESIDENT_GB = 120
# On those GPUs the fast path also packs 32K tokens per training micro-batch and 64K per forward pass
# (below that size: the TOKEN_BUDGET, twice it for forward passes). Measured on 1 x H200 ("The
# launcher's default on the GPU with the quick poll"): the actor update fell from 4.0 to 2.7 s per step,
# with the same peak (57.8 GiB allocated); fewer micro-batches means less of VERL's per-micro-batch host
# work (moving each TensorDict to the GPU) and bigger kernels.
FAST_TRAIN_TOKENS, FAST_FORWARD_TOKENS = 32768, 65536


def by_memory(table: tuple[tuple[float, Any], ...], gpu_memory_gb: float) -> Any:
    """The value of the first row of `table` whose size the GPU reaches.

    >>> by_memory(TOKEN_BUDGET, 80), by_memory(TOKEN_BUDGET, 40), by_memory(ROLLOUT_SHARE["vllm"], 141)
    (8192, 4096, 0.3)
    """
    return next(value for at_least, value in table if gpu_memory_gb >= at_least)


def layout_overrides(hw: Hardware, cfg: Any | None = None, dynamic_bsz: bool = True,
                     shape: ModelShape = QWEN3_1_7B, backend: str = "vllm", fast: bool = False) -> list[str]:
    """Overrides that fit the recipe to the hardware without editing files; `shape` is the model's
    (the launcher reads it from the model's config; Qwen3-1.7B's when that cannot be read).

    - FSDP over all GPUs; one vLLM replica per GPU (tensor parallel 1: a 1.7B model fits any
      40 GB+ GPU, and independent replicas give the most rollout throughput).
    - vLLM's share of GPU memory while generating (its KV cache is freed during updates).
    - Micro-batches: the spec's 16 per GPU, capped by what the mini-batch leaves per GPU
      (VERL requires mini/world % micro == 0). With `dynamic_bsz`, VERL packs micro-batches
      by a token budget instead (same math, bounded memory: 16 x 4.6K tokens of 152K-vocab
      logits alone can take ~40 GB).
    - Adam states go to host memory when the estimate says the GPU would not hold them (8-bit states,
      `--optimizer adamw8bit`, are a quarter of fp32's and fit where those do not, e.g. 1 x 80 GB).
    - `fast` (the fast path's fused log-probs: no full logits in memory): forward-only passes
      (log-probs, reference, values) get twice the training budget; on GPUs of >= 120 GB the
      reference stays on the GPU (VERL moves its weights host -> GPU for every micro-batch) and the
      budgets are 32K tokens for training and 64K for forward passes (measured on the H200).
      Without `fast` the reference is offloaded, as VERL does.
    """
    n = hw.world_size
    prompts = int(cfg.data.train_batch_size) if cfg is not None else 128
    mini = int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size) if cfg is not None else 64
    rollout_n = int(cfg.actor_rollout_ref.rollout.n) if cfg is not None else 1
    if (prompts * rollout_n) % n or (mini * rollout_n) % n:
        raise UserError(
            f"{n} GPUs do not divide the batch: data.train_batch_size={prompts} x rollout.n={rollout_n} "
            f"and ppo_mini_batch_size={mini} x rollout.n must be multiples of the GPU count"
        )
    micro = min(SPEC_MICRO_BATCH, mini * rollout_n // n)
    # Never below the longest sequence: VERL cannot split one sequence across micro-batches and
    # asserts max_token_len >= max_seq_len (verl/utils/seqlen_balancing.py).
    memory_budget = by_memory(TOKEN_BUDGET, hw.gpu_memory_gb)
    longest = max_sequence_length(cfg) if cfg is not None else 512 + 4096
    resident = fast and hw.gpu_memory_gb >= FAST_RESIDENT_GB
    if resident:
        token_budget = max(FAST_TRAIN_TOKENS, longest)
        forward_budget = max(FAST_FORWARD_TOKENS, longest)
    else:
        token_budget = max(memory_budget, longest)
        forward_budget = max(2 * memory_budget, longest) if fast else token_budget
    vllm_fraction = by_memory(ROLLOUT_SHARE["local" if backend == "local" else "vllm"], hw.gpu_memory_gb)
    adam_bytes = adam_state_bytes(cfg) if cfg is not None else 8.0
    offload = estimate_memory_gb(shape.n_params, n, hw.gpu_memory_gb, vllm_fraction, token_budget,
                                 optimizer_offload=False, vocab=shape.vocab, hidden=shape.hidden, layers=shape.layers,
                                 intermediate=shape.intermediate, fused=fast,
                                 adam_bytes=adam_bytes)["peak_estimate"] > OFFLOAD_ABOVE * hw.gpu_memory_gb
    ov = [
        f"trainer.n_gpus_per_node={hw.n_gpus_per_node}",
        f"trainer.nnodes={hw.nnodes}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={vllm_fraction}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"critic.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
    ]
    if dynamic_bsz:
        ov += [
            "actor_rollout_ref.actor.use_dynamic_bsz=true",
            f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={token_budget}",
            f"actor_rollout_ref.ref.log_prob_max_token_len_per_gpu={forward_budget}",
            f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={forward_budget}",
            "critic.use_dynamic_bsz=true",
            f"critic.ppo_max_token_len_per_gpu={token_budget}",
            f"critic.forward_max_token_len_per_gpu={forward_budget}",
        ]
    # the project's engine honours this key (verl_ext/engines.py); true = VERL's own behaviour
    ov += [f"actor_rollout_ref.ref.fsdp_config.param_offload={str(not resident).lower()}"]
    if offload:
        ov += ["actor_rollout_ref.actor.fsdp_config.optimizer_offload=true", "critic.fsdp.optimizer_offload=true"]
    return ov


def max_sequence_length(cfg: Any) -> int:
    """The longest sequence a step can hold: prompt + response, the width VERL pads to.

    >>> from omegaconf import OmegaConf
    >>> max_sequence_length(OmegaConf.create({"data": {"max_prompt_length": 512, "max_response_length": 4096}}))
    4608
    """
    return int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
