"""The recipe composes against VERL 0.9.1's real config schema and validation."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from gsm8k_rl import UserError
from gsm8k_rl.launch.compose import REWARD_FILE, check_overrides, compose_config, config_names
from gsm8k_rl.launch.layout import Hardware, layout_overrides, max_sequence_length
from gsm8k_rl.launch.validate import check_config, token_budgets, validate_config


def _ready(data, model_dir, extra=()):
    """Overrides that make the config runnable offline: local model, real prepared GSM8K, our reward."""
    return [
        f"actor_rollout_ref.model.path={model_dir}",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'test.parquet'}",
        f"reward.custom_reward_function.path={REWARD_FILE}",
        *extra,
    ]


def test_named_configs():
    assert {"ppo", "ppo_thinking", "ppo_base", "ppo_nokl", "grpo", "paper_ppo", "paper_sa_ppo"} <= set(config_names())


def test_spec_values_in_default_config():
    c = compose_config("ppo")
    a = c.actor_rollout_ref
    # each line of the spec, at its VERL key
    assert c.algorithm.adv_estimator == "gae"
    assert a.actor.optim.lr == 1e-6 and c.critic.optim.lr == 2e-6
    assert c.data.train_batch_size == 128
    assert a.actor.ppo_mini_batch_size == 64 and c.critic.ppo_mini_batch_size == 64
    assert a.actor.ppo_micro_batch_size_per_gpu == 16 and c.critic.ppo_micro_batch_size_per_gpu == 16
    assert a.actor.clip_ratio == 0.2
    assert c.algorithm.use_kl_in_reward and c.algorithm.kl_ctrl.type == "fixed" and c.algorithm.kl_ctrl.kl_coef == 1e-3
    assert not a.actor.use_kl_loss
    assert a.rollout.temperature == 1.0
    assert c.data.max_response_length == 4096
    assert c.trainer.total_training_steps == 500
    assert a.rollout.val_kwargs.temperature == 0 and not a.rollout.val_kwargs.do_sample
    assert c.trainer.val_before_train and c.trainer.test_freq > 0 and c.trainer.save_freq > 0
    assert c.trainer.resume_mode == "auto"
    assert c.data.apply_chat_template_kwargs.enable_thinking is False
    assert c.critic.model.path == a.model.path == "Qwen/Qwen3-1.7B"


def test_variants_differ_only_where_named():
    base = compose_config("ppo")
    assert compose_config("ppo_thinking").data.apply_chat_template_kwargs.enable_thinking is True
    assert compose_config("ppo_base").actor_rollout_ref.model.path == "Qwen/Qwen3-1.7B-Base"
    assert compose_config("ppo_nokl").algorithm.use_kl_in_reward is False
    g = compose_config("grpo")
    assert g.algorithm.adv_estimator == "grpo" and g.actor_rollout_ref.actor.use_kl_loss
    # same sample budget: responses per step and per mini-batch
    assert g.data.train_batch_size * g.actor_rollout_ref.rollout.n == base.data.train_batch_size
    assert g.actor_rollout_ref.actor.ppo_mini_batch_size * g.actor_rollout_ref.rollout.n == 64
    assert g.actor_rollout_ref.actor.optim.lr == base.actor_rollout_ref.actor.optim.lr


def test_paper_configs_match_the_papers_scripts():
    """The Self-Aligned Reward paper's 1.7B runs (its scripts/ppo-1.7B.sh and SA-ppo-1.7B.sh), at
    VERL 0.9.1's keys; docs/config.md ("The paper's setting") gives the script line of each."""
    from omegaconf import OmegaConf

    for name in ("paper_ppo", "paper_sa_ppo"):
        c = compose_config(name)
        a = c.actor_rollout_ref
        assert a.model.path == c.critic.model.path == "Qwen/Qwen3-1.7B-Base"
        assert c.algorithm.adv_estimator == "gae" and c.algorithm.gamma == c.algorithm.lam == 1.0
        assert not c.algorithm.use_kl_in_reward and not a.actor.use_kl_loss  # no KL at all
        assert c.trainer.total_training_steps == 500 and c.data.train_batch_size == 128 and a.rollout.n == 1
        assert a.actor.ppo_mini_batch_size == c.critic.ppo_mini_batch_size == 64 and a.actor.ppo_epochs == 1
        assert a.actor.optim.lr == 1e-6 and c.critic.optim.lr == 2e-6
        for optim in (a.actor.optim, c.critic.optim):
            assert optim.lr_scheduler_type == "constant" and optim.weight_decay == 0.01 and optim.clip_grad == 1.0
        assert a.actor.clip_ratio == 0.2 and a.actor.entropy_coeff == 0 and c.critic.cliprange_value == 0.5
        assert c.data.max_prompt_length == 1024 and c.data.truncation == "left" and not c.data.filter_overlong_prompts
        assert c.data.max_response_length == 4096
        assert a.rollout.temperature == 1.0 and a.rollout.top_p == 1.0 and a.rollout.top_k == -1
        assert c.data.apply_chat_template_kwargs.enable_thinking is True  # the template's default, as the paper
        assert c.trainer.test_freq == 50 and c.trainer.critic_warmup == 0 and c.trainer.total_epochs == 100
        assert a.actor.clip_ratio_c == 3.0 and a.actor.loss_agg_mode == "token-mean"
        assert a.actor.optim.lr_warmup_steps_ratio == 0
        assert a.actor.ppo_micro_batch_size_per_gpu == c.critic.ppo_micro_batch_size_per_gpu == 16
        for model in (a.model, c.critic.model):
            assert model.use_remove_padding and model.enable_gradient_checkpointing
        assert a.rollout.name == "vllm" and a.rollout.val_kwargs.temperature == 0 and not a.rollout.val_kwargs.do_sample
    sa = compose_config("paper_sa_ppo")
    assert sa.self_aligned.alpha == 0.2 and sa.trainer.v1.trainer_mode == "self_aligned_sync"
    # paper_sa_ppo is paper_ppo plus the self-aligned reward, nothing else
    plain, with_sa = (OmegaConf.to_container(compose_config(n)) for n in ("paper_ppo", "paper_sa_ppo"))
    for cfg in (plain, with_sa):
        cfg.pop("self_aligned", None)
        cfg["trainer"].pop("experiment_name")
        cfg["trainer"]["v1"].pop("trainer_mode")
    assert plain == with_sa


def test_full_validation_passes(prepared_gsm8k, tiny_model_dir):
    cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir, layout_overrides(Hardware(1, 80.0))))
    validate_config(cfg)


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_layouts_validate_for_1_2_4_8_gpus(prepared_gsm8k, tiny_model_dir, gpus):
    for name in ("ppo", "grpo"):
        base = compose_config(name)
        layout = layout_overrides(Hardware(gpus, 80.0), base)
        cfg = compose_config(name, _ready(prepared_gsm8k["plain"], tiny_model_dir, layout))
        validate_config(cfg)
        assert cfg.trainer.n_gpus_per_node == gpus


def test_misspelled_key_rejected_readably():
    with pytest.raises(UserError,
                       match=r"actor_rollout_ref\.actor\.optim\.lrr=1e-6: actor_rollout_ref\.actor\.optim has no "
                             r"key 'lrr' in VERL's config or schema; did you mean "
                             r"actor_rollout_ref\.actor\.optim\.lr\?"):
        compose_config("ppo", ["actor_rollout_ref.actor.optim.lrr=1e-6"])
    # what Hydra alone refuses keeps Hydra's words
    with pytest.raises(UserError,
                       match=r"(?s)Could not override 'actor_rollout_ref\.model\.override_config\.x'"
                             r".*'\+key=value' adds"):
        compose_config("ppo", ["actor_rollout_ref.model.override_config.x=1"])


@pytest.mark.parametrize("override, message", [
    # issue 29: '++' (and '+') added any key; VERL never read it and the run used the default
    ("++trainer.total_epochz=3", "trainer has no key 'total_epochz' in VERL's config or schema; did you mean "
                                 "trainer.total_epochs?"),
    ("+actor_rollout_ref.actor.ppo_epochz=2", "did you mean actor_rollout_ref.actor.ppo_epochs?"),
    # a field of VERL's FSDPEngineConfig dataclass, misspelled under a node the YAML fills
    ("++actor_rollout_ref.actor.fsdp_config.param_ofload=true",
     "did you mean actor_rollout_ref.actor.fsdp_config.param_offload?"),
    # issue 29: a wrongly typed value was a ValueError traceback from int() in the launcher
    ("data.train_batch_size=abc", "data.train_batch_size='abc': expected a number (the default is 128)"),
    # VERL's dataclass types the mini-batch as an integer
    ("actor_rollout_ref.actor.ppo_mini_batch_size=12.5",
     "actor_rollout_ref.actor.ppo_mini_batch_size=12.5: expected an integer"),
    ("actor_rollout_ref.actor.optim.lr=fast", "actor_rollout_ref.actor.optim.lr='fast': expected a number"),
    # a string is true to Python: "no" would have turned the dynamic batch on
    ("actor_rollout_ref.actor.use_dynamic_bsz=no",
     "actor_rollout_ref.actor.use_dynamic_bsz='no': expected true or false"),
])
def test_overrides_verl_would_ignore_or_trip_on_are_named(override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        compose_config("ppo", [override])


@pytest.mark.parametrize("override", [
    # what the launcher itself adds, under VERL's free-form dicts (found in VERL's config, not listed here)
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",  # HFModelConfig: dict, {} in VERL
    "++trainer.v1.sampler.sampler_kwargs.poll_interval=0.5",  # {} in VERL's config
    "++actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32",  # FSDPEngineConfig: Optional[dict]
    "+data.apply_chat_template_kwargs.reasoning_effort=low",  # {} in VERL's config (chat template kwargs)
    "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='/runs/x/logs/m.jsonl'",  # ray.init(**...)
    "+reward.reward_kwargs.truncated_reward=0.0",  # read by VERL's reward loop with .get()
    "+reward.custom_reward_function.reward_kwargs.my_option=1",  # passed to the user's compute_score
    "actor_rollout_ref.rollout.val_kwargs.temperature=0.7",  # a float key whose YAML default is 0
    "trainer.esi_redundant_time=0.5",  # no dataclass: its YAML default, 0, says only "a number"
    "trainer.logger=[console,file]",
])
def test_legitimate_added_keys_and_values_compose(override):
    compose_config("ppo", [override])


def test_every_added_key_in_the_docs_composes():
    """The '+'/'++' overrides README.md, docs/ and the lab's pages show pass the added-key check
    (docs/bad_input.md shows the rejected ones on purpose)."""
    repo = Path(__file__).resolve().parents[1]
    lab = [p for p in sorted((repo / "experiments").rglob("*.md")) if "results" not in p.relative_to(repo).parts]
    pages = [repo / "README.md", *sorted((repo / "docs").rglob("*.md")), *lab]
    found = {m for page in pages if page.name != "bad_input.md"
             for m in re.findall(r"(?<![\w+])\+\+?[a-z_][\w.]*=[^\s`'\"|,)]+", page.read_text())}
    assert len(found) >= 5, found
    for override in sorted(found):
        assert check_overrides("ppo", [override]) == [], override


def test_mini_batch_that_does_not_divide_the_batch(prepared_gsm8k, tiny_model_dir):
    """Issue 29: train_batch_size=100 with mini-batches of 64 passed; VERL's own validation lets it through
    and its trainer stops at the first update (make_iterator's assert), after the first rollout."""
    import torch
    from tensordict import TensorDict
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config as verl_validate
    from verl.utils.tensordict_utils import make_iterator

    cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir, ["data.train_batch_size=100"]))
    problems = check_config(cfg)
    assert problems == ["data.train_batch_size=100 is not a multiple of "
                        "actor_rollout_ref.actor.ppo_mini_batch_size=64: VERL would stop at the first update "
                        "(mini-batches must divide the batch); e.g. actor_rollout_ref.actor.ppo_mini_batch_size=50",
                        "data.train_batch_size=100 is not a multiple of critic.ppo_mini_batch_size=64: VERL would stop "
                        "at the first update (mini-batches must divide the batch); e.g. critic.ppo_mini_batch_size=50"]
    verl_validate(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))  # passes
    with pytest.raises(AssertionError, match="100 % 64 != 0"):
        next(iter(make_iterator(TensorDict({"x": torch.zeros(100)}, batch_size=[100]), 64, 1)))
    # a batch that is no count of prompts
    cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir, ["data.train_batch_size=12.5"]))
    assert check_config(cfg) == ["data.train_batch_size=12.5 must be a positive integer (prompts per step)"]


def test_invalid_value_rejected_by_verl(prepared_gsm8k, tiny_model_dir):
    # a mini-batch larger than the 128-prompt batch: VERL's own actor validation says so
    cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir,
                                       ["actor_rollout_ref.actor.ppo_mini_batch_size=256"]))
    with pytest.raises(UserError, match="VERL rejects the config"):
        validate_config(cfg)


@pytest.mark.parametrize("override, message", [
    ("algorithm.adv_estimator=gea", "not an advantage estimator"),
    ("actor_rollout_ref.rollout.name=no_such_engine", "not a registered async rollout"),
    ("actor_rollout_ref.rollout.val_kwargs.temperature=0.7", "not greedy"),
])
def test_checks_verl_lacks(prepared_gsm8k, tiny_model_dir, override, message):
    cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir, [override]))
    assert any(message in p for p in check_config(cfg))


def test_missing_data_and_reward_reported(tmp_path):
    problems = check_config(compose_config("ppo", [f"data.train_files={tmp_path / 'none.parquet'}"]))
    assert any("reward.custom_reward_function.path" in p for p in problems)
    assert any("data.train_files" in p and "gsm8k-rl prepare" in p for p in problems)


def test_indivisible_gpu_count():
    with pytest.raises(UserError, match="do not divide"):
        layout_overrides(Hardware(3, 80.0))


MEASURED_RUNS = Path(__file__).resolve().parents[1] / "experiments" / "results" / "ppo_gpu"


def _measured_overrides(command: Path) -> dict[str, str]:
    """The overrides a measured run was launched with, from the header of its command.sh."""
    measured: dict[str, str] = {}
    for line in command.read_text().splitlines():
        if line.startswith("#   ") and "=" in line:
            key, value = line[4:].split("=", 1)
            measured[key] = value  # later overrides win, as in Hydra
    return measured


@pytest.mark.recorded
@pytest.mark.parametrize("command, gpu_gb, backend", [
    # 1 x H100 80 GB, local rollout: peak 62.1 GiB (first overrides of the file: the layout that OOMed, then the fix)
    ("command300.sh", 79.65, "local"),
    # 1 x H100 80 GB, vLLM rollout: peak 63.3 GiB
    ("h100_vllm_300/command.sh", 79.65, "vllm"),
    # 1 x H200 141 GB, vLLM rollout (300 and 1000 tokens): peak 85.4 / 83.9 GiB; local rollout, 1000 tokens
    ("h200/vllm_300/command.sh", 140.4, "vllm"),
    ("h200/vllm_1000/command.sh", 140.4, "vllm"),
    ("h200/local_1000/command.sh", 140.4, "local"),
])
def test_launcher_layout_is_the_one_measured_to_fit(command, gpu_gb, backend):
    """Issue 5: what the launcher plans for these GPUs is what ran there without running out of
    memory (experiments/notebook.md, "PPO at true scale")."""
    measured = _measured_overrides(MEASURED_RUNS / command)
    # VERL offloaded the reference whatever this key said when these runs were made: the launcher now
    # writes that behaviour down explicitly (the project's engine honours the key)
    measured.setdefault("actor_rollout_ref.ref.fsdp_config.param_offload", "true")
    planned = dict(o.split("=", 1) for o in layout_overrides(Hardware(1, gpu_gb), backend=backend))
    for key, value in planned.items():
        assert measured[key] == value, key
    offloaded = measured.get("actor_rollout_ref.actor.fsdp_config.optimizer_offload") == "true"
    assert offloaded == (gpu_gb < 100)  # Adam states go to the host on 80 GB only


def _verl_splits(budget: int, seq_len: int) -> int:
    """VERL's own micro-batch splitter on two full-length sequences, padded as without packing."""
    import torch
    from tensordict import TensorDict
    from verl.utils.seqlen_balancing import rearrange_micro_batches

    batch = TensorDict({"input_ids": torch.ones(2, seq_len, dtype=torch.long),
                        "attention_mask": torch.ones(2, seq_len, dtype=torch.long)}, batch_size=[2])
    micro_batches, _ = rearrange_micro_batches(batch, max_token_len=budget)
    return len(micro_batches)


LENGTHS = {
    "spec": [],
    "long answers": ["data.max_response_length=8192"],
    "long prompts, short answers": ["data.max_prompt_length=1024", "data.max_response_length=300"],
}


@functools.cache
def _base(name: str, label: str):
    return compose_config(name, LENGTHS[label])


def _check_layout(prepared, model_dir, name, label, gpus, gpu_gb, full_validation):
    lengths = LENGTHS[label]
    cfg = compose_config(name, _ready(prepared[_base(name, label).prepare.template], model_dir,
                                      layout_overrides(Hardware(gpus, gpu_gb), _base(name, label)) + lengths))
    assert check_config(cfg) == [], (name, label)
    if full_validation:
        validate_config(cfg)
    seq = max_sequence_length(cfg)
    for key, (dynamic, budget, sp) in token_budgets(cfg).items():
        assert dynamic, key
        assert _verl_splits(budget * sp, seq) >= 1, (name, label, key)


@pytest.mark.parametrize("gpu_gb", [40, 80, 141])
@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_every_launcher_layout_satisfies_verls_rules(prepared_gsm8k, tiny_model_dir, gpus, gpu_gb):
    """Issue 15: on 2 x 40 GB the budgets were 4096 < 512 + 4096, and VERL died at the first
    full-length answer. Every layout the launcher emits passes VERL's validation and ours, and
    VERL's micro-batch splitter accepts a full-length sequence under every budget."""
    for label in LENGTHS:
        _check_layout(prepared_gsm8k, tiny_model_dir, "ppo", label, gpus, gpu_gb, full_validation=label == "spec")
    # GRPO has its own batch shape (32 prompts x 4)
    _check_layout(prepared_gsm8k, tiny_model_dir, "grpo", "spec", gpus, gpu_gb, full_validation=True)


def test_every_named_config_on_the_minimum_hardware(prepared_gsm8k, tiny_model_dir):
    """The spec's minimum, 2 x 40 GB, for every --config."""
    for name in config_names():
        _check_layout(prepared_gsm8k, tiny_model_dir, name, "spec", 2, 40.0, full_validation=True)


def test_budget_below_the_longest_sequence_is_reported(prepared_gsm8k, tiny_model_dir):
    base = compose_config("ppo")
    layout = layout_overrides(Hardware(2, 40.0), base)
    cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir,
                                       layout + ["critic.forward_max_token_len_per_gpu=4096"]))
    problems = check_config(cfg)
    assert len(problems) == 1
    assert "critic.forward_max_token_len_per_gpu=4096" in problems[0] and ">=4608" in problems[0]
    # and VERL itself would indeed refuse a 4608-token sequence at that budget (only when one arrives)
    with pytest.raises(AssertionError, match="max_token_len must be greater"):
        _verl_splits(4096, 4608)


@pytest.mark.recorded
def test_fast_layout_on_the_h200_is_the_one_measured():
    """Issue 12: the fast path's layout on 1 x H200 (32K/64K token budgets, the reference on the GPU,
    gradient checkpointing on) is what the measured run used
    (experiments/results/step_speed/h200_2026-12-02_quick_poll/budgets_300/: the launcher's default of
    that day plus the budgets as overrides, which come last in its command.sh and win, as in Hydra)."""
    command = MEASURED_RUNS.parent / "step_speed" / "h200_2026-12-02_quick_poll" / "budgets_300" / "command.sh"
    measured = _measured_overrides(command)
    planned = dict(o.split("=", 1) for o in layout_overrides(Hardware(1, 140.4), backend="vllm", fast=True))
    for key, value in planned.items():
        assert measured[key] == value, key
    assert planned["actor_rollout_ref.actor.ppo_max_token_len_per_gpu"] == "32768"
    assert planned["critic.forward_max_token_len_per_gpu"] == "65536"
    assert "actor_rollout_ref.model.enable_gradient_checkpointing" not in measured  # on, as planned
    assert planned["actor_rollout_ref.ref.fsdp_config.param_offload"] == "false"
    # below 120 GB the fast path keeps the budgets measured on the H100 (8K training, 16K forward)
    h100 = dict(o.split("=", 1) for o in layout_overrides(Hardware(1, 79.6), backend="vllm", fast=True))
    assert h100["actor_rollout_ref.actor.ppo_max_token_len_per_gpu"] == "8192"
    assert h100["critic.forward_max_token_len_per_gpu"] == "16384"


@pytest.mark.parametrize("gpu_gb", [40, 80, 141])
@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_every_fast_layout_satisfies_verls_rules(prepared_gsm8k, tiny_model_dir, gpus, gpu_gb):
    """The fast path's layouts (forward budgets x2, the reference resident on >= 120 GB) pass VERL's
    validation and ours, with the fast path's own overrides (packed torch_varlen, fused kernels)."""
    from gsm8k_rl.launch import kernels as fast_path

    kernels = fast_path.Kernels(attn="torch_varlen", fused="torch", source="test", fast=True)
    for label in LENGTHS:
        base = _base("ppo", label)
        _, extra = fast_path.apply(kernels, {}, [], on_gpu=True)
        cfg = compose_config("ppo", _ready(prepared_gsm8k["plain"], tiny_model_dir,
                                           layout_overrides(Hardware(gpus, gpu_gb), base, fast=True)
                                           + extra + LENGTHS[label]))
        assert check_config(cfg) == [], label
        if label == "spec":
            validate_config(cfg)
        offload = cfg.actor_rollout_ref.ref.fsdp_config.param_offload
        assert offload is (gpu_gb < 120)
        for key, (dynamic, budget, sp) in token_budgets(cfg).items():
            assert dynamic and budget * sp >= max_sequence_length(cfg), key
