"""The truncation option (issue 15, item 4) in VERL 0.9.1's real reward loop.

Each test builds the reward worker VERL runs in training (`RewardLoopWorker`, from a composed
config) and scores one batch laid out as VERL's agent loop lays it out (prompt ids, response ids,
attention mask), tokenized by the tiny model's real tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensordict import TensorDict
from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

from gsm8k_rl.launch.compose import REWARD_FILE, compose_config
from gsm8k_rl.launch.validate import check_config
from gsm8k_rl.verl_ext.reward_manager import OPTION, TruncationRewardManager, check_truncation_option

DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"
# what docs/config.md tells a user to add to any config
ENABLE = [
    "reward.reward_manager.source=importlib",
    "reward.reward_manager.module.path=pkg://gsm8k_rl.verl_ext.reward_manager",
    "reward.reward_manager.name=TruncationRewardManager",
]
LONG = "She sold 48 clips, then 24 more: 48 + 24 = 72"


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def cases(tok):
    """(name, response ids, ground truth, truncated?) with the length limit at len(LONG's tokens)."""
    long_ids = tok(LONG, add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    return len(long_ids), [
        ("finished, right", tok("The answer is 72", add_special_tokens=False)["input_ids"] + [eos], "72", False),
        ("cut at the limit, last number right", long_ids, "72", True),
        ("cut at the limit, wrong", long_ids, "73", True),
        # the limit's last token is the stop token: the response ended on its own
        ("stop token as the last allowed token", long_ids[1:] + [eos], "72", False),
        ("shorter than the limit, no stop token", long_ids[:-3], "48", False),
    ]


def _batch(tok, cases) -> DataProto:
    """Left-padded prompts, right-padded responses, as VERL's reward input."""
    prompt = tok.apply_chat_template([{"role": "user", "content": "How many clips?"}], add_generation_prompt=True,
                                     tokenize=False)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    width = max(len(r) for _, r, _, _ in cases)
    pad = tok.pad_token_id
    responses = torch.tensor([r + [pad] * (width - len(r)) for _, r, _, _ in cases])
    mask = torch.tensor([[1] * len(p) + [1] * len(r) + [0] * (width - len(r)) for _, r, _, _ in cases])
    n = len(cases)
    return DataProto(
        batch=TensorDict({"prompts": torch.tensor([p] * n), "responses": responses, "attention_mask": mask},
                         batch_size=n),
        non_tensor_batch={
            "data_source": np.array(["openai/gsm8k"] * n, dtype=object),
            "reward_model": np.array([{"ground_truth": gt} for _, _, gt, _ in cases], dtype=object),
            "extra_info": np.array([{} for _ in cases], dtype=object),
        },
    )


def _worker(model_dir, name: str, overrides: list[str]) -> RewardLoopWorker:
    cfg = compose_config(name, [f"actor_rollout_ref.model.path={model_dir}",
                                f"reward.custom_reward_function.path={REWARD_FILE}", *overrides])
    return RewardLoopWorker(cfg)


def _score(worker: RewardLoopWorker, data: DataProto) -> list[dict]:
    return worker.loop.run_until_complete(worker.compute_score_batch(data))


def test_default_is_verls_naive_manager_which_pays_truncated_answers(tiny_model_dir, tok, cases):
    limit, rows = cases
    worker = _worker(tiny_model_dir, "ppo", [f"data.max_response_length={limit}"])
    assert type(worker.reward_manager) is NaiveRewardManager  # off by default: nothing of ours runs
    out = _score(worker, _batch(tok, rows))
    # the issue: a response cut at the limit whose last number is right earns the full reward
    assert out[1]["reward_score"] == 1.0
    assert all("truncated" not in o["reward_extra_info"] for o in out)


@pytest.mark.parametrize("name,overrides,value", [
    ("ppo_truncated", [], 0.0),
    ("ppo_truncated", ["reward.reward_kwargs.truncated_reward=-0.5"], -0.5),
    ("ppo_thinking", [*ENABLE, "+reward.reward_kwargs.truncated_reward=0.0"], 0.0),  # any config, by overrides
])
def test_truncated_responses_get_the_configured_reward(tiny_model_dir, tok, cases, name, overrides, value):
    limit, rows = cases
    data = _batch(tok, rows)
    naive = _score(_worker(tiny_model_dir, "ppo", [f"data.max_response_length={limit}"]), data)
    worker = _worker(tiny_model_dir, name, [f"data.max_response_length={limit}", *overrides])
    assert type(worker.reward_manager) is TruncationRewardManager
    out = _score(worker, data)
    for (label, _, _, truncated), ours, theirs in zip(rows, out, naive, strict=True):
        assert ours["reward_extra_info"]["truncated"] == float(truncated), label
        # correctness stays in `acc` (validation accuracy keeps its meaning); only the reward changes
        assert ours["reward_extra_info"]["acc"] == theirs["reward_extra_info"]["acc"], label
        assert ours["reward_score"] == (value if truncated else theirs["reward_score"]), label
    assert [o["reward_extra_info"]["acc"] for o in out[:4]] == [1.0, 1.0, 0.0, 1.0]
    # VERL puts each score on the response's last valid token
    rm = TruncationRewardManager.assemble_rm_scores(data, [o["reward_score"] for o in out])
    ends = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:].sum(1) - 1
    assert rm[torch.arange(len(rows)), ends].tolist() == [o["reward_score"] for o in out]
    assert rm.sum().item() == pytest.approx(sum(o["reward_score"] for o in out))


def test_null_value_counts_truncations_without_rescoring(tiny_model_dir, tok, cases):
    limit, rows = cases
    data = _batch(tok, rows)
    naive = _score(_worker(tiny_model_dir, "ppo", [f"data.max_response_length={limit}"]), data)
    out = _score(_worker(tiny_model_dir, "ppo_truncated",
                         [f"data.max_response_length={limit}", "reward.reward_kwargs.truncated_reward=null"]), data)
    assert [o["reward_score"] for o in out] == [o["reward_score"] for o in naive]
    assert [o["reward_extra_info"]["truncated"] for o in out] == [float(t) for *_, t in rows]


def test_bad_or_unread_option_is_named(tiny_model_dir):
    with pytest.raises(ValueError, match=OPTION):
        _worker(tiny_model_dir, "ppo_truncated", ["reward.reward_kwargs.truncated_reward=zero"])
    bad = compose_config("ppo_truncated", ["reward.reward_kwargs.truncated_reward=zero"])
    assert OPTION in check_truncation_option(bad)[0]
    # set on a config whose manager (VERL's naive) would silently ignore it
    ignored = compose_config("ppo", ["+reward.reward_kwargs.truncated_reward=0.0"])
    problems = check_truncation_option(ignored)
    assert len(problems) == 1 and "ignores it" in problems[0] and "--config ppo_truncated" in problems[0]
    assert check_truncation_option(compose_config("ppo")) == []
    assert check_truncation_option(compose_config("ppo_truncated")) == []


def test_check_config_reports_the_option(prepared_gsm8k, tiny_model_dir):
    data = prepared_gsm8k["plain"]
    ready = [f"actor_rollout_ref.model.path={tiny_model_dir}", f"reward.custom_reward_function.path={REWARD_FILE}",
             f"data.train_files={data / 'train.parquet'}", f"data.val_files={data / 'test.parquet'}"]
    assert check_config(compose_config("ppo_truncated", ready)) == []
    problems = check_config(compose_config("ppo", [*ready, "+reward.reward_kwargs.truncated_reward=0.0"]))
    assert any(OPTION in p for p in problems)


def test_docs_give_the_overrides_that_enable_it():
    text = DOCS.read_text()
    for override in [*ENABLE, "+reward.reward_kwargs.truncated_reward=0.0", "--config ppo_truncated"]:
        assert override in text, override


def test_partial_credit_through_verls_reward_loop(tiny_model_dir, tok):
    """Issue 13's partial credit, set as docs/config.md says: VERL's naive manager passes
    reward_kwargs to compute_score; a wrong number marked as the answer earns the option, an unmarked
    one nothing, and `acc` (what VERL's validation accuracy reads) stays correctness."""
    eos = tok.eos_token_id
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"] + [eos]  # noqa: E731
    rows = [("right", ids("#### 72"), "72", False), ("marked, wrong", ids("#### 73"), "72", False),
            ("unmarked, wrong", ids("so 73 clips"), "72", False), ("no number", ids("no idea"), "72", False)]
    worker = _worker(tiny_model_dir, "ppo", ["reward.custom_reward_function.reward_kwargs.partial_credit=0.1"])
    assert type(worker.reward_manager) is NaiveRewardManager
    out = _score(worker, _batch(tok, rows))
    assert [o["reward_score"] for o in out] == pytest.approx([1.0, 0.1, 0.0, 0.0])
    assert [o["reward_extra_info"]["acc"] for o in out] == [1.0, 0.0, 0.0, 0.0]
    assert [o["reward_extra_info"]["partial_credit"] for o in out] == [0.0, 1.0, 0.0, 0.0]
    # off (the recipe's default): the plain float, as before
    plain = _score(_worker(tiny_model_dir, "ppo", []), _batch(tok, rows))
    assert [o["reward_score"] for o in plain] == [1.0, 0.0, 0.0, 0.0]
    assert "partial_credit" not in plain[0]["reward_extra_info"]


@pytest.mark.parametrize("override, message", [
    ("+reward.custom_reward_function.reward_kwargs.partial_credt=0.1", "partial_credt is not an option"),
    ("reward.custom_reward_function.reward_kwargs.partial_credit=1.0", "a number in [0, 1)"),
    ("reward.custom_reward_function.reward_kwargs.partial_credit=-0.2", "a number in [0, 1)"),
])
def test_partial_credit_misspelled_or_out_of_range_is_reported(tiny_model_dir, override, message):
    cfg = compose_config("ppo", [f"actor_rollout_ref.model.path={tiny_model_dir}",
                                 f"reward.custom_reward_function.path={REWARD_FILE}", override])
    assert any(message in p for p in check_config(cfg))
