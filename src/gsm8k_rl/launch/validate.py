"""The checks of a composed config that VERL 0.9.1 does not make, then VERL's own validation.

Each check names the key and what to set: a run that would fail hours in (a token budget below the
longest sequence, mini-batches that do not divide the batch, data prepared with another prompt)
fails here, before anything starts. `validate_config` is run by `gsm8k-rl train` and `doctor`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.launch.compose import REWARD_FILE
from gsm8k_rl.launch.layout import max_sequence_length


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

    want = OmegaConf.select(cfg, "prepare.template", default=None)
    dataset = OmegaConf.select(cfg, "prepare.dataset", default=None)
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
