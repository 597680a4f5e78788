"""The PPO recipe as a VERL Hydra config: composition, hardware layout and validation.

`configs/` (= src/gsm8k_rl/configs) holds the named configs; each is VERL's `ppo_trainer.yaml`
plus `_recipe.yaml` plus its own differences. `compose_config` builds exactly the config
`verl.trainer.main_ppo` would run with; `validate_config` runs VERL's own validation plus the
checks VERL 0.9.1 lacks. Used by `gsm8k-rl train`, `gsm8k-rl doctor` and the tests.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError

CONFIG_DIR = Path(str(resources.files("gsm8k_rl") / "configs"))
DEFAULT_CONFIG = "ppo"
REWARD_FILE = Path(str(resources.files("gsm8k_rl") / "reward.py"))
# The metric VERL 0.9.1 logs for validation accuracy on our data_source (a float reward is
# logged as `acc` under val-core; `reward` moves to val-aux).
VAL_ACC_METRIC = "val-core/openai/gsm8k/acc/mean@1"


def config_names() -> list[str]:
    """The named configs (`--config NAME`): every primary YAML in configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def compose_config(name: str = DEFAULT_CONFIG, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Hydra-compose a named config with overrides, as `main_ppo --config-path/--config-name` would.

    A misspelled key or an invalid value raises UserError naming the override.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if name not in config_names():
        raise UserError(f"unknown config {name!r}; choose one of {config_names()} (files in {CONFIG_DIR})")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).splitlines()[0]
        raise UserError(
            f"config {name!r} with overrides {list(overrides)} does not compose: {msg}\n"
            "  (a new key needs a leading '+', an existing one must be spelled as in VERL's "
            "_generated_ppo_trainer.yaml)"
        ) from exc


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
                     n_params: float = QWEN3_1_7B_PARAMS, backend: str = "vllm", fast: bool = False) -> list[str]:
    """Overrides that fit the recipe to the hardware without editing files.

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
    offload = estimate_memory_gb(n_params, n, hw.gpu_memory_gb, vllm_fraction, token_budget, optimizer_offload=False,
                                 fused=fast, adam_bytes=adam_bytes)["peak_estimate"] > 0.9 * hw.gpu_memory_gb
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
    # the project's engine honours this key (local_backend/engines.py); true = VERL's own behaviour
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

    from gsm8k_rl.reward_manager import check_truncation_option

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
        for f in [files] if isinstance(files, str) else list(files):
            if not Path(f).is_file():
                problems.append(f"{key}: {f} not found (run `gsm8k-rl prepare --out DIR` and pass --data DIR)")
    if cfg.actor_rollout_ref.rollout.val_kwargs.temperature != 0 or cfg.actor_rollout_ref.rollout.val_kwargs.do_sample:
        problems.append("validation is not greedy (rollout.val_kwargs.temperature must be 0, do_sample false)")
    problems += check_token_budgets(cfg)
    problems += check_truncation_option(cfg)
    problems += check_attention(cfg)
    problems += check_reward_kwargs(cfg)
    problems += check_prepared_data(cfg)
    return problems


def check_prepared_data(cfg: Any) -> list[str]:
    """The config's `prepare` block against the data it is given.

    Data prepared with another prompt than `prepare.template` would train on one prompt while
    `gsm8k-rl run` evaluates on another; prepare_info.json (beside the parquet files, written by
    `gsm8k-rl prepare`) says which prompt the rows carry.
    """
    import json

    from omegaconf import OmegaConf

    from gsm8k_rl.data import DATASETS, PAPER_DATASETS
    from gsm8k_rl.prompt import PROMPTS

    want, dataset = OmegaConf.select(cfg, "prepare.template", default=None), OmegaConf.select(cfg, "prepare.dataset", default=None)
    problems = []
    if want is not None and want not in PROMPTS:
        problems.append(f"prepare.template={want!r} is not a prompt template: {sorted(PROMPTS)}")
    if dataset is not None and dataset not in DATASETS and dataset not in PAPER_DATASETS:
        problems.append(f"prepare.dataset={dataset!r} is not a dataset `gsm8k-rl prepare` knows: {sorted(DATASETS) + sorted(PAPER_DATASETS)}")
    if want is None or problems:
        return problems
    seen: set[Path] = set()
    for key in ("data.train_files", "data.val_files"):
        files = OmegaConf.select(cfg, key)
        for f in [files] if isinstance(files, str) else list(files or []):
            info = Path(f).parent / "prepare_info.json"
            if info in seen or not info.is_file():
                continue
            seen.add(info)
            try:
                got = json.loads(info.read_text()).get("prompt_template")
            except ValueError as exc:
                problems.append(f"{info}: not valid JSON ({exc})")
                continue
            if got is not None and got != want:
                problems.append(
                    f"{key}: {f} was prepared with --template {got} ({info}), but this config's prompt is "
                    f"prepare.template={want}: run `gsm8k-rl prepare --template {want} --out DIR` and pass "
                    f"--data DIR, or train with that prompt on purpose: prepare.template={got}")
    return problems


def check_reward_kwargs(cfg: Any) -> list[str]:
    """VERL passes `reward.custom_reward_function.reward_kwargs` to compute_score as keyword
    arguments, and compute_score takes **kwargs (VERL adds its own): a misspelled option would be
    ignored without a word. For the project's reward, every key must be one it reads, and
    partial_credit a number in [0, 1)."""
    from omegaconf import OmegaConf

    from gsm8k_rl.reward import REWARD_KWARGS

    reward = cfg.reward.custom_reward_function
    if not reward.path or Path(str(reward.path)).resolve() != REWARD_FILE.resolve():
        return []  # a user's own reward function: its keyword arguments are its own business
    kwargs = OmegaConf.to_container(reward.get("reward_kwargs") or {}, resolve=True)
    problems = [f"reward.custom_reward_function.reward_kwargs.{k} is not an option of gsm8k_rl/reward.py "
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

    from gsm8k_rl.varlen_attention import NAME

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
