"""The named prompts (gsm8k_rl/task/prompt.py): the spec's two render as they always did, the Self-Aligned
Reward paper's renders its own system turn and suffix with the real Qwen3 chat template, and every
consumer (prepare, eval, the SA-PPO answer-only prompt) takes the name."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from gsm8k_rl.cli import main
from gsm8k_rl.task.prompt import PROMPTS, SYSTEM_PROMPT, TEMPLATES, build_messages, prompt_fingerprint, render
from gsm8k_rl.verl_ext.self_aligned import answer_only_messages, fallback_messages

PAPER_SYSTEM = ("You are a reasoning expert assistant. Given a question, you will use your reasoning skills to solve "
                "the problem.")
PAPER_SUFFIX = " Please explain your reasoning process before providing an answer."


def test_spec_prompts_are_unchanged():
    # fingerprints recorded in earlier eval metrics and the committed report fixtures: a change here
    # would make old evals look like a different prompt
    assert {(n, th): prompt_fingerprint(n, th) for n in ("plain", "hash") for th in (False, True)} == {
        ("plain", False): "8bee35f95c14", ("plain", True): "f2a769614509",
        ("hash", False): "aafa426468f2", ("hash", True): "8763c0d08466",
    }
    for name in ("plain", "hash"):
        assert PROMPTS[name].system == SYSTEM_PROMPT == "You are a helpful assistant."
        assert build_messages(" Q? ", name)[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert TEMPLATES["plain"] == "{question}"


def test_paper_prompt_text_and_fingerprint():
    messages = build_messages("  What is 2+2?\n", "paper")
    assert messages == [{"role": "system", "content": PAPER_SYSTEM},
                        {"role": "user", "content": "What is 2+2?" + PAPER_SUFFIX}]
    assert len({prompt_fingerprint(n) for n in PROMPTS}) == len(PROMPTS)  # the system turn is part of it


def test_unknown_template_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown prompt template 'papr'.*'paper'"):
        build_messages("Q", "papr")


@pytest.mark.parametrize("thinking", [False, True])
def test_paper_prompt_with_the_real_qwen3_template(qwen3_tokenizer, thinking):
    text = render(qwen3_tokenizer, build_messages("How many?", "paper"), thinking=thinking)
    assert text == ("<|im_start|>system\n" + PAPER_SYSTEM + "<|im_end|>\n"
                    "<|im_start|>user\nHow many?" + PAPER_SUFFIX + "<|im_end|>\n"
                    "<|im_start|>assistant\n" + ("" if thinking else "<think>\n\n</think>\n\n"))


def test_answer_only_prompt_keeps_the_paper_system_turn(qwen3_tokenizer):
    """SA-PPO's ppl(a): the sample's own system turn and an empty user turn; without a raw_prompt in
    the batch, the template named in extra_info gives the same."""
    messages = build_messages("Natalia sold 48 clips. How many?", "paper")
    bare = answer_only_messages(messages)
    assert bare == fallback_messages({"prompt_template": "paper"})
    text = render(qwen3_tokenizer, bare, thinking=True)
    assert text == ("<|im_start|>system\n" + PAPER_SYSTEM + "<|im_end|>\n"
                    "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n")
    assert fallback_messages(None)[0]["content"] == SYSTEM_PROMPT  # no template named: the default's


def test_prepare_and_eval_accept_the_paper_template(tmp_path, gsm8k_dir, tiny_qwen3_tok_model_dir, qwen3_tokenizer):
    out = tmp_path / "data"
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(out), "--splits", "test",
                 "--limit", "2", "--template", "paper"]) == 0
    row = pq.read_table(out / "test.parquet").to_pylist()[0]
    assert row["prompt"][0]["content"] == PAPER_SYSTEM and row["prompt"][1]["content"].endswith(PAPER_SUFFIX)
    assert row["extra_info"]["prompt_template"] == "paper"

    ev = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_qwen3_tok_model_dir), "--source", str(gsm8k_dir), "--out", str(ev),
                 "--backend", "transformers", "--max-new-tokens", "2", "--limit", "1", "--template", "paper"]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    assert m["prompt"]["template"] == "paper" and m["prompt"]["fingerprint"] == prompt_fingerprint("paper", False)
    sample = json.loads((ev / "samples.jsonl").read_text().splitlines()[0])
    # the prompt eval rendered is the one VERL renders from the prepared row
    expected = render(qwen3_tokenizer, row["prompt"], thinking=False)
    assert sample["n_prompt_tokens"] == len(qwen3_tokenizer(expected, add_special_tokens=False)["input_ids"])
