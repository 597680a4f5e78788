"""The PPO recipe as a VERL Hydra config: composition, hardware layout and validation.

`configs/` (= src/gsm8k_rl/configs) holds the named configs; each is VERL's `ppo_trainer.yaml`
plus `_recipe.yaml` plus its own differences. `compose_config` builds exactly the config
`verl.trainer.main_ppo` would run with; `validate_config` runs VERL's own validation plus the
checks VERL 0.9.1 lacks. Used by `gsm8k-rl train`, `gsm8k-rl doctor` and the tests.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError

CONFIG_DIR = Path(str(resources.files("gsm8k_rl") / "configs"))
DEFAULT_CONFIG = "ppo"
REWARD_FILE = Path(str(resources.files("gsm8k_rl") / "task" / "reward.py"))
# The metric VERL 0.9.1 logs for validation accuracy on our data_source (a float reward is
# logged as `acc` under val-core; `reward` moves to val-aux).
VAL_ACC_METRIC = "val-core/openai/gsm8k/acc/mean@1"


def config_names() -> list[str]:
    """The named configs (`--config NAME`): every primary YAML in configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def compose_config(name: str = DEFAULT_CONFIG, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Hydra-compose a named config with overrides, as `main_ppo --config-path/--config-name` would.

    A misspelled key, a key added with '+'/'++' that VERL's schema does not have, or a value of the
    wrong type raises UserError naming the override (check_overrides).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if name not in config_names():
        raise UserError(f"unknown config {name!r}; choose one of {config_names()} (files in {CONFIG_DIR})")
    if overrides:
        problems = check_overrides(name, overrides)
        if problems:
            raise UserError("\n".join(problems) if len(problems) == 1 else
                            "bad overrides:\n  - " + "\n  - ".join(problems))
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).splitlines()[0]
        raise UserError(
            f"config {name!r} with overrides {list(overrides)} does not compose: {msg}\n"
            "  (an existing key must be spelled as in VERL's _generated_ppo_trainer.yaml; '+key=value' adds "
            "one, '++key=value' adds or overrides)"
        ) from exc


@functools.lru_cache(maxsize=None)
def _defaults(name: str) -> dict:
    """The named config without overrides (`cfg`, and `raw`: plain unresolved containers) and VERL's
    own ppo_trainer.yaml (`verl`): the schema the overrides are checked against."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=name)
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        verl = compose(config_name="ppo_trainer")
    return {"raw": OmegaConf.to_container(cfg, resolve=False), "cfg": cfg,
            "verl": OmegaConf.to_container(verl, resolve=False)}


# Nodes whose keys are free though VERL's YAML does not say so (no `{}` there, no dict-typed field):
# what VERL passes whole to another library or reads with .get() as keyword arguments.
FREE_FORM = {
    "ray_kwargs.ray_init": "verl/trainer/main_ppo.py run_ppo: ray.init(**ray_init_kwargs), runtime_env included",
    "reward.reward_kwargs": "verl/experimental/reward_loop: config.reward.get('reward_kwargs', {}) -> the reward manager",
    "reward.custom_reward_function.reward_kwargs":
        "verl/trainer/ppo/reward.py get_custom_reward_fn: reward_fn_config.get('reward_kwargs', {}) -> compute_score",
}


def _dataclass_of(node: Any) -> type | None:
    """The VERL dataclass a config node is converted to (its `_target_`), if any."""
    import importlib

    target = node.get("_target_") if isinstance(node, dict) else None
    if not isinstance(target, str) or "." not in target:
        return None
    module, _, attr = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    return cls if dataclasses.is_dataclass(cls) else None


def _field_types(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve here: the names are still the schema's
        return {f.name: None for f in dataclasses.fields(cls)}


def _unoptional(tp: Any) -> Any:
    """X for Optional[X] (or X | None); `tp` otherwise."""
    import types
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _free_form(tp: Any) -> bool:
    """A field typed as a dict (or Any): VERL hands its content on without a schema."""
    import collections.abc
    import typing

    return tp is typing.Any or tp is dict or typing.get_origin(tp) in (dict, collections.abc.Mapping)


@dataclasses.dataclass
class _Found:
    exists: bool  # the key is in the config (or its schema) already
    open: bool = False  # it lies under a node whose keys are free (a kwargs dict)
    parent: str = ""  # where it was not found
    missing: str = ""  # the part that was not found there
    known: tuple[str, ...] = ()  # the keys that node has
    annotation: Any = None  # the key's type in VERL's dataclass, when it has one


def find_key(raw: dict, key: str, verl: dict | None = None) -> _Found:
    """Where `key` (dotted) stands in a composed config (`raw`), VERL's own config (`verl`) and VERL's
    dataclass schemas.

    A key is known when the YAML has it or the VERL dataclass of its node (`_target_`) declares the
    field. Under a free-form node any key is: a dict-typed dataclass field, a mapping that is empty in
    VERL's config and no dataclass describes (its `*_kwargs: {}`, `override_config: {}`), FREE_FORM."""
    parts = key.split(".")
    node: Any = raw
    vnode: Any = verl if verl is not None else raw
    annotation: Any = None
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        cls = _dataclass_of(node) or (annotation if dataclasses.is_dataclass(annotation) else None)
        if where in FREE_FORM or _free_form(annotation):
            return _Found(True, open=True)
        if isinstance(node, str) and "${" in node:
            return _Found(True, open=True)  # an interpolation: its target is checked where it points
        if cls is None and any(isinstance(n, dict) and not n for n in (node, vnode)):
            return _Found(True, open=True)
        hints = _field_types(cls) if cls else {}
        keys = (set(node) if isinstance(node, dict) else set()) | set(hints)
        keys.discard("_target_")
        keys |= {k.rsplit(".", 1)[1] for k in FREE_FORM if k.rsplit(".", 1)[0] == where}
        if part not in keys:
            return _Found(False, parent=where, missing=part, known=tuple(sorted(keys)))
        annotation = _unoptional(hints.get(part))
        node = node.get(part) if isinstance(node, dict) else None
        vnode = vnode.get(part) if isinstance(vnode, dict) else None
    return _Found(True, annotation=annotation)


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number"}


def _wrong_type(value: Any, expected: type) -> bool:
    """Whether a parsed override value cannot be a value of `expected` (bool, int or float).

    >>> _wrong_type("abc", int), _wrong_type(12, int), _wrong_type(2.5, int), _wrong_type(1, float)
    (True, False, True, False)
    >>> _wrong_type("no", bool), _wrong_type(None, int), _wrong_type("${data.x}", int)
    (True, False, False)
    """
    if value is None or (isinstance(value, str) and "${" in value):
        return False  # null, or an interpolation resolved later
    if expected is bool:
        return isinstance(value, str)  # "no" / "off" are strings to Hydra, and a non-empty string is true
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return expected is int and isinstance(value, float) and not value.is_integer()


def check_overrides(name: str, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """Overrides Hydra would take but VERL would ignore or trip over later, one problem each.

    - a key added with '+' or '++' that neither the config nor VERL's dataclass schema has, outside a
      free-form dict: Hydra adds it, nothing reads it (the run silently uses the default);
    - a value of the wrong type for a boolean, integer or float key (`data.train_batch_size=abc`):
      Hydra stores the string, and VERL fails on it later, far from the override.
    """
    import difflib

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return []  # compose reports the syntax error with Hydra's own message
    defaults = _defaults(name)
    problems = []
    for text, o in zip(overrides, parsed):
        key = o.key_or_group
        if o.is_delete() or "/" in key or "@" in key or key.startswith("hydra.") or o.package:
            continue
        found = find_key(defaults["raw"], key, defaults["verl"])
        if not found.exists:
            close = difflib.get_close_matches(found.missing, found.known, n=1)
            hint = f"; did you mean {'.'.join(filter(None, [found.parent, close[0]]))}?" if close else ""
            why = ("Hydra would add it and nothing would read it" if o.is_add() or o.is_force_add() else
                   "'+'/'++' add a key, which only VERL's free-form dicts take")
            problems.append(f"{text}: {found.parent or 'the config'} has no key {found.missing!r} in VERL's "
                            f"config or schema{hint} ({why})")
            continue
        if found.open:
            continue
        try:
            default = OmegaConf.select(defaults["cfg"], key, default=None)
        except Exception:  # an interpolation that only resolves with the launcher's overrides
            default = None
        # VERL's dataclass says the type. A plain YAML key (data.*, trainer.*) has its default's, except
        # that an integer default says "a number" (trainer.esi_redundant_time: 0 takes 0.5)
        if found.annotation in _EXPECTED:
            expected = found.annotation
        else:
            expected = float if type(default) is int else type(default)
        if expected in _EXPECTED and not isinstance(o.value(), (list, dict)) and _wrong_type(o.value(), expected):
            shown = f" (the default is {default})" if default is not None else ""
            problems.append(f"{key}={o.value()!r}: expected {_EXPECTED[expected]}{shown}")
    return problems


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
# benchmarks/optimizer_numerics.py: small tensors such as norms stay fp32, hence a little above 2 and 1).
ADAM_STATE_BYTES = {
    ("torch.optim", "AdamW"): 8.0,
    ("torchao.optim", "AdamW8bit"): 2.1,
    ("torchao.optim", "AdamW4bit"): 1.1,
}
LOW_BIT_OPTIMIZERS = {"adamw8bit": "AdamW8bit"}  # gsm8k-rl train --optimizer (4 bits drift: docs/benchmarks.md)


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
    An estimate for sizing; docs/benchmarks.md has measured peaks.
    """
    gb = 1024**3
    trained = n_params * (8 + (0 if optimizer_offload else adam_bytes)) / world / gb
    ref = n_params * 4 / world / gb if with_ref else 0.0
    vllm = vllm_fraction * gpu_memory_gb
    logits = 512 * vocab * 4 * 3 if fused else token_budget * vocab * 4 * 2
    # without checkpointing: ~32 bytes per token per layer per (hidden + MLP width), calibrated on the
    # H200 run without it (122.8 GiB allocated at 8192 tokens, docs/benchmarks.md "Step speed")
    per_layer = hidden * 2 if checkpointing else 32 * (hidden + intermediate)
    act = (logits + token_budget * per_layer * layers) / gb
    return {"actor": trained, "critic": trained, "ref": ref, "vllm_reserved": vllm, "activations": act,
            "peak_estimate": 2 * trained + ref + max(vllm, act)}


# The memory lever of the fast path (docs/benchmarks.md, "Step speed"): on GPUs of at least this
# size the reference stays on the GPU (fp32 Qwen3-1.7B: 6.4 GiB). Gradient checkpointing stays on:
# without it the H200 run peaked at 138.1 of 139.8 GiB (nvidia-smi), too close to the edge.
FAST_RESIDENT_GB = 120
# On those GPUs the fast path also packs 32K tokens per training micro-batch and 64K per forward pass
# (8K / 16K below that size). Measured on 1 x H200 (docs/benchmarks.md, "The launcher's default on
# the GPU with the quick poll"): the actor update fell from 4.0 to 2.7 s per step, with the same peak
# (57.8 GiB allocated); fewer micro-batches means less of VERL's per-micro-batch host work (moving
# each TensorDict to the GPU) and bigger kernels.
FAST_TRAIN_TOKENS, FAST_FORWARD_TOKENS = 32768, 65536


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
    micro = min(16, mini * rollout_n // n)
    # Measured on 1 x H100 80 GB (docs/benchmarks.md, "PPO at true scale"): 8192-token micro-batches
    # for training AND forward passes fit (peak 62 GiB); 16384/32768 ran out of memory in the
    # actor's log-prob pass (fp32 logits over a 152K vocabulary). Smaller GPUs: half, not measured.
    # Never below the longest sequence: VERL cannot split one sequence across micro-batches and
    # asserts max_token_len >= max_seq_len (verl/utils/seqlen_balancing.py).
    memory_budget = 8192 if hw.gpu_memory_gb >= 70 else 4096
    longest = max_sequence_length(cfg) if cfg is not None else 512 + 4096
    resident = fast and hw.gpu_memory_gb >= FAST_RESIDENT_GB
    if resident:
        token_budget = max(FAST_TRAIN_TOKENS, longest)
        forward_budget = max(FAST_FORWARD_TOKENS, longest)
    else:
        token_budget = max(memory_budget, longest)
        forward_budget = max(2 * memory_budget, longest) if fast else token_budget
    # The rollout engine's share of the GPU while generating, measured to fit beside actor + critic
    # + ref (docs/benchmarks.md): local (transformers) rollout at 0.2 on 1 x H100 (peak 62 GiB);
    # vLLM at 0.3 on 1 x H100 (63 GiB, Adam on the host) and 1 x H200 (85 GiB, no offload).
    if backend == "local":
        vllm_fraction = 0.2
    else:
        vllm_fraction = 0.3 if hw.gpu_memory_gb >= 70 else 0.25
    adam_bytes = adam_state_bytes(cfg) if cfg is not None else 8.0
    offload = estimate_memory_gb(shape.n_params, n, hw.gpu_memory_gb, vllm_fraction, token_budget,
                                 optimizer_offload=False, vocab=shape.vocab, hidden=shape.hidden, layers=shape.layers,
                                 intermediate=shape.intermediate, fused=fast,
                                 adam_bytes=adam_bytes)["peak_estimate"] > 0.9 * hw.gpu_memory_gb
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


def token_budgets(cfg: Any) -> dict[str, tuple[bool, int, int]]:
    """Every micro-batch token budget VERL reads: key -> (dynamic batching on?, budget per GPU,
    sequence-parallel size). VERL splits by `budget x sp` tokens (verl/workers/engine/utils.py)."""
    a, c = cfg.actor_rollout_ref, cfg.critic
    actor_sp = int(a.actor.ulysses_sequence_parallel_size)
    ref_sp = int(a.ref.get("ulysses_sequence_parallel_size", actor_sp))
    critic_sp = int(c.get("ulysses_sequence_parallel_size", 1))
    return {
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu":
            (bool(a.actor.use_dynamic_bsz), int(a.actor.ppo_max_token_len_per_gpu), actor_sp),
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu":
            (bool(a.rollout.log_prob_use_dynamic_bsz), int(a.rollout.log_prob_max_token_len_per_gpu), actor_sp),
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu":
            (bool(a.ref.log_prob_use_dynamic_bsz), int(a.ref.log_prob_max_token_len_per_gpu), ref_sp),
        "critic.ppo_max_token_len_per_gpu": (bool(c.use_dynamic_bsz), int(c.ppo_max_token_len_per_gpu), critic_sp),
        "critic.forward_max_token_len_per_gpu":
            (bool(c.use_dynamic_bsz), int(c.forward_max_token_len_per_gpu), critic_sp),
    }


def check_token_budgets(cfg: Any) -> list[str]:
    """VERL asserts each micro-batch budget holds the longest sequence, but only when one arrives
    (at the first full-length answer, possibly hours in); say so before anything starts."""
    need = max_sequence_length(cfg)
    problems = []
    for key, (dynamic, budget, sp) in token_budgets(cfg).items():
        if dynamic and budget * sp < need:
            problems.append(
                f"{key}={budget} (x sequence parallel {sp}) is below the longest sequence, "
                f"data.max_prompt_length + data.max_response_length = {need}: VERL stops at the first answer "
                f"that long (seqlen_balancing: max_token_len >= max_seq_len); set {key}>={need // sp + (need % sp > 0)}"
            )
    return problems


def registered_rollouts() -> set[str]:
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY

    return {name for name, mode in _ROLLOUT_REGISTRY if mode == "async"}


def check_config(cfg: Any, extra_rollouts: tuple[str, ...] = ()) -> list[str]:
    """The checks VERL 0.9.1 does not make; returns human-readable problems (empty = fine)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, AdvantageEstimator

    from gsm8k_rl.verl_ext.reward_manager import check_truncation_option

    problems = []
    missing = sorted(OmegaConf.missing_keys(cfg))
    if not cfg.reward.reward_model.enable:  # a disabled reward model's ??? fields are never read
        missing = [k for k in missing if not k.startswith("reward.reward_model.")]
    if missing:
        problems.append(f"missing values (???) for {missing}: set them as key=value overrides")
    est = cfg.algorithm.adv_estimator
    known = {e.value for e in AdvantageEstimator} | set(ADV_ESTIMATOR_REGISTRY)
    if est not in known:
        problems.append(f"algorithm.adv_estimator={est!r} is not an advantage estimator VERL knows: {sorted(known)}")
    rollout = OmegaConf.select(cfg, "actor_rollout_ref.rollout.name", default=None)
    backends = registered_rollouts() | set(extra_rollouts)
    if rollout not in backends:
        problems.append(
            f"actor_rollout_ref.rollout.name={rollout!r} is not a registered async rollout {sorted(backends)} "
            "(VERL 0.9.1 accepts it in the config and fails only at worker start; use --backend local for 'hf')"
        )
    reward = cfg.reward.custom_reward_function
    if not reward.path or not Path(reward.path).is_file():
        problems.append(f"reward.custom_reward_function.path={reward.path!r} is not a file")
    elif f"def {reward.name}(" not in Path(reward.path).read_text():
        problems.append(f"{reward.path} defines no function {reward.name!r}")
    for key in ("data.train_files", "data.val_files"):
        files = OmegaConf.select(cfg, key)
        if not files:
            problems.append(f"{key}={files!r} names no file (pass --data DIR with train.parquet and test.parquet)")
        for f in [files] if isinstance(files, str) else list(files or []):
            if not Path(f).is_file():
                problems.append(f"{key}: {f} not found (run `gsm8k-rl prepare --out DIR` and pass --data DIR)")
    if cfg.actor_rollout_ref.rollout.val_kwargs.temperature != 0 or cfg.actor_rollout_ref.rollout.val_kwargs.do_sample:
        problems.append("validation is not greedy (rollout.val_kwargs.temperature must be 0, do_sample false)")
    problems += check_batches(cfg)
    problems += check_token_budgets(cfg)
    problems += check_truncation_option(cfg)
    problems += check_attention(cfg)
    problems += check_reward_kwargs(cfg)
    problems += check_prepared_data(cfg)
    return problems


def _files(cfg: Any, key: str) -> list[str]:
    from omegaconf import OmegaConf

    files = OmegaConf.select(cfg, key)
    return [files] if isinstance(files, str) else [str(f) for f in files or []]


def check_batches(cfg: Any) -> list[str]:
    """Mini-batches that do not divide the batch. VERL's config validation lets them through (it checks
    only mini <= batch) and its trainer stops at the first update, after the first rollout:
    verl/utils/tensordict_utils.py make_iterator asserts `batch % mini_batch_size == 0`."""
    import warnings

    from verl.trainer.ppo.utils import need_critic

    batch = cfg.data.train_batch_size
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        return [f"data.train_batch_size={batch!r} must be a positive integer (prompts per step)"]
    roles = [("actor_rollout_ref.actor.ppo_mini_batch_size", cfg.actor_rollout_ref.actor.ppo_mini_batch_size)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VERL warns that GRPO has no critic; validate_config says it once
        critic = need_critic(cfg)
    if critic:
        roles.append(("critic.ppo_mini_batch_size", cfg.critic.ppo_mini_batch_size))
    problems = []
    for key, mini in roles:
        if isinstance(mini, int) and 0 < mini <= batch and batch % mini:
            fits = max(d for d in range(1, mini + 1) if batch % d == 0)
            problems.append(f"data.train_batch_size={batch} is not a multiple of {key}={mini}: VERL would stop at the "
                            f"first update (mini-batches must divide the batch); e.g. {key}={fits}")
    return problems


def check_prepared_data(cfg: Any) -> list[str]:
    """The parquet files the config trains and validates on, read before anything starts.

    Every row must carry the config's prompt (`prepare.template`, the prompt `gsm8k-rl run` evaluates
    with): `gsm8k-rl prepare` writes it into each row's extra_info.prompt_template, which is checked
    for all rows of each file (one column read). The training files must hold at least one batch:
    VERL drops the incomplete last batch, and with none left its trainer divides by zero steps per
    epoch after starting everything (verl/trainer/ppo/v1/trainer_base.py, fit).
    """
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf

    from gsm8k_rl.task.datasets import DATASETS, preparable
    from gsm8k_rl.task.prompt import PROMPTS

    want, dataset = OmegaConf.select(cfg, "prepare.template", default=None), OmegaConf.select(cfg, "prepare.dataset", default=None)
    problems = []
    if want is not None and want not in PROMPTS:
        problems.append(f"prepare.template={want!r} is not a prompt template: {sorted(PROMPTS)}")
    if dataset is not None and dataset not in DATASETS:
        problems.append(f"prepare.dataset={dataset!r} is not a dataset `gsm8k-rl prepare` knows: {preparable()}")
    for key in ("data.train_files", "data.val_files"):
        rows = {}
        for f in _files(cfg, key):
            if not Path(f).is_file():
                continue  # check_config names it
            try:
                parquet = pq.ParquetFile(f)
            except Exception as exc:
                problems.append(f"{key}: {f} is not a readable parquet file ({str(exc).splitlines()[0]})")
                continue
            rows[f] = parquet.metadata.num_rows
            if want in PROMPTS:
                problems += _template_problems(key, f, parquet, want)
        batch = cfg.data.train_batch_size
        if key == "data.train_files" and rows and isinstance(batch, int) and sum(rows.values()) < batch:
            shown = ", ".join(f"{f} has {n} rows" for f, n in rows.items())
            problems.append(f"data.train_files: {shown}, fewer than data.train_batch_size={batch}: not one training "
                            "batch (VERL drops an incomplete one); prepare more rows or lower data.train_batch_size")
    return problems


def _template_problems(key: str, f: str, parquet: Any, want: str) -> list[str]:
    """The prompt templates the rows of one parquet file carry, against the config's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # the one nested field, not the whole extra_info (which holds every question and solution)
    table = parquet.read(columns=["extra_info.prompt_template"]) if "extra_info" in parquet.schema_arrow.names else None
    struct = table.column("extra_info").combine_chunks() if table is not None and table.num_columns else None
    if struct is None or not pa.types.is_struct(struct.type) or struct.type.get_field_index("prompt_template") < 0:
        return [f"{key}: {f} has no extra_info.prompt_template (it was not written by `gsm8k-rl prepare`): its prompt "
                f"cannot be checked against prepare.template={want}; prepare it with `gsm8k-rl prepare --template "
                f"{want}`, or set prepare.template=null to train on it unchecked"]
    counts = {c["values"]: c["counts"] for c in pc.value_counts(struct.field("prompt_template")).to_pylist()}
    if set(counts) == {want}:
        return []
    got = ", ".join(f"{t} ({n} of {len(struct)} rows)" for t, n in sorted(counts.items(), key=lambda c: str(c[0])))
    other = next((t for t in counts if t not in (want, None)), want)
    return [f"{key}: {f} holds rows prepared with --template {got} (extra_info.prompt_template), but this config's "
            f"prompt is prepare.template={want}: run `gsm8k-rl prepare --template {want} --out DIR` and pass --data "
            f"DIR, or train with that prompt on purpose: prepare.template={other}"]


def check_reward_kwargs(cfg: Any) -> list[str]:
    """VERL passes `reward.custom_reward_function.reward_kwargs` to compute_score as keyword
    arguments, and compute_score takes **kwargs (VERL adds its own): a misspelled option would be
    ignored without a word. For the project's reward, every key must be one it reads, and
    partial_credit a number in [0, 1)."""
    from omegaconf import OmegaConf

    from gsm8k_rl.task.reward import REWARD_KWARGS

    reward = cfg.reward.custom_reward_function
    if not reward.path or Path(str(reward.path)).resolve() != REWARD_FILE.resolve():
        return []  # a user's own reward function: its keyword arguments are its own business
    kwargs = OmegaConf.to_container(reward.get("reward_kwargs") or {}, resolve=True)
    problems = [f"reward.custom_reward_function.reward_kwargs.{k} is not an option of gsm8k_rl/task/reward.py "
                f"(it reads {list(REWARD_KWARGS)}): VERL would pass it and compute_score would ignore it"
                for k in kwargs if k not in REWARD_KWARGS]
    value = kwargs.get("partial_credit", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        problems.append(f"reward.custom_reward_function.reward_kwargs.partial_credit={value!r}: a number in [0, 1) "
                        "(the reward of a wrong but explicitly marked final answer; a correct one earns 1.0)")
    return problems


def check_attention(cfg: Any) -> list[str]:
    """torch_varlen runs one GPU's packed micro-batch; Ulysses sequence parallelism would need VERL's
    all-to-all around it (VERL patches only flash-attn's function for that)."""
    from omegaconf import OmegaConf

    from gsm8k_rl.verl_ext.varlen_attention import NAME

    problems = []
    for role, sp_key in (("actor_rollout_ref", "actor_rollout_ref.actor.ulysses_sequence_parallel_size"),
                         ("critic", "critic.ulysses_sequence_parallel_size")):
        attn = OmegaConf.select(cfg, f"{role}.model.override_config.attn_implementation", default=None)
        sp = int(OmegaConf.select(cfg, sp_key, default=1) or 1)
        if attn == NAME and sp > 1:
            problems.append(f"{role}.model.override_config.attn_implementation={NAME} does not support "
                            f"{sp_key}={sp}: use flash_attention_2 (flash-attn installed) or sequence parallel 1")
    return problems


def validate_config(cfg: Any, extra_rollouts: tuple[str, ...] = ()) -> None:
    """VERL's own validation (trainer + dataclass schemas) + check_config; UserError listing every problem.

    VERL builds the critic's model config here, so the model path must open offline or online.
    """
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config as verl_validate

    problems = check_config(cfg, extra_rollouts)
    if not problems:
        try:
            verl_validate(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        except (AssertionError, ValueError, TypeError, KeyError, AttributeError) as exc:
            problems.append(f"VERL rejects the config: {type(exc).__name__}: {exc}")
        except Exception as exc:  # omegaconf errors from the dataclass schemas
            if "omegaconf" not in type(exc).__module__:
                raise
            problems.append(f"VERL's schema rejects the config: {str(exc).splitlines()[0]}")
    if problems:
        raise UserError("invalid training config:\n  - " + "\n  - ".join(problems))
