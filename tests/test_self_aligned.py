"""SA-PPO (issue 13): the self-aligned reward on VERL 0.9.1, through VERL's own trainer registry.

The formula on a hand-checked batch; the answer-only prompt with the real Qwen3 chat template; and
a 2-step run of VERL's real trainer (local backend, CPU) with `--config sa_ppo`, whose training
scores must carry R_correct + alpha * R_SA.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from gsm8k_rl.verl_ext.self_aligned import answer_only_messages, perplexity, self_aligned_reward


def test_reward_on_a_hand_checked_batch():
    # three responses of two tokens; log-probs with the question (qa) and without it (a)
    qa = torch.tensor([[-1.0, -1.0], [-3.0, -3.0], [-1.0, -5.0]])
    a = torch.tensor([[-2.0, -2.0], [-1.0, -1.0], [-1.0, -9.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])  # the third response has one token
    ppl_qa, ppl_a = perplexity(qa, mask), perplexity(a, mask)
    assert ppl_qa.tolist() == pytest.approx([math.e, math.e**3, math.e])
    assert ppl_a.tolist() == pytest.approx([math.e**2, math.e, math.e])
    r = self_aligned_reward(ppl_qa, ppl_a)
    # (e^2 - e) / e^2 = 1 - 1/e; (e - e^3) / e = 1 - e^2 = -6.39, clipped to -1; equal perplexities: 0
    assert r.tolist() == pytest.approx([1 - 1 / math.e, -1.0, 0.0])
    assert self_aligned_reward(ppl_qa, ppl_a, clip=0.5).tolist() == pytest.approx([0.5, -0.5, 0.0])


def test_answer_only_prompt_keeps_the_system_turn_and_the_template(qwen3_tokenizer):
    from gsm8k_rl.task.prompt import build_messages, chat_template_kwargs

    messages = build_messages("Natalia sold clips to 48 of her friends. How many?")
    full = qwen3_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                               **chat_template_kwargs())
    bare = qwen3_tokenizer.apply_chat_template(answer_only_messages(messages), tokenize=False,
                                               add_generation_prompt=True,
                                               **chat_template_kwargs())
    assert "Natalia" in full and "Natalia" not in bare
    assert bare == full.replace(messages[1]["content"], "")  # only the question is gone
    assert "<|im_start|>user\n<|im_end|>" in bare and bare.endswith("<think>\n\n</think>\n\n")


@pytest.mark.slow
def test_two_steps_of_sa_ppo_through_verls_trainer(tmp_path):
    from gsm8k_rl.cli import main

    run = tmp_path / "run"
    assert main(["train", "--backend", "local", "--smoke", "--config", "sa_ppo", "--run-dir", str(run)]) == 0
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [s["data"] for s in steps if "timing_s/step" in s["data"]]
    assert len(trained) == 2
    for d in trained:
        for series in ("r_correct", "r_sa", "reward", "ppl_qa", "ppl_a"):
            assert f"self_aligned/{series}/mean" in d, series
        reward = d["self_aligned/r_correct/mean"] + 0.2 * d["self_aligned/r_sa/mean"]
        assert d["self_aligned/reward/mean"] == pytest.approx(reward)
        # what the advantages were computed from: VERL's training score is the combined reward
        assert d["critic/score/mean"] == pytest.approx(d["self_aligned/reward/mean"], abs=1e-6)
        assert -1.0 <= d["self_aligned/r_sa/min"] <= d["self_aligned/r_sa/max"] <= 1.0
        # the extra forward pass is timed, and inside the step
        assert 0 < d["timing_s/self_aligned_pass"] < d["timing_s/step"]
    log = (run / "logs" / "train.log").read_text()
    assert "answer-only prompt from each sample's raw_prompt" in log
    assert "QuickPollReplayBufferAsync: polling every 0.1 s" in log  # the buffer VERL picks for this trainer mode
