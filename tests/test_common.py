"""The small jobs every layer shares (gsm8k_rl/common/), each written once: stop tokens, the batched
left-padded generate, JSON lines a kill may have torn, atomic writes, the recorded environment."""

from __future__ import annotations

import json
from types import SimpleNamespace as C

import pytest

from gsm8k_rl import UserError
from gsm8k_rl.common.environment import environment_summary, package_versions
from gsm8k_rl.common.files import read_jsonl, write_atomic
from gsm8k_rl.common.generation import stop_token_ids


def test_stop_tokens_are_every_eos_the_model_and_tokenizer_name():
    configs = (C(eos_token_id=[7, 2]), C(eos_token_id=3), None)
    assert stop_token_ids("m", C(eos_token_id=5), configs=configs) == [2, 3, 5, 7]
    with pytest.raises(UserError, match="no EOS token id"):
        stop_token_ids("m", C(eos_token_id=None), configs=(C(eos_token_id=None),))


def test_stop_tokens_read_from_a_model_folder(tiny_model_dir):
    """generation_config.json and config.json of the folder, and its tokenizer: what eval, the hf
    rollout and the reward manager's truncation check all stop on."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    gen = json.loads((tiny_model_dir / "generation_config.json").read_text())["eos_token_id"]
    cfg = json.loads((tiny_model_dir / "config.json").read_text())["eos_token_id"]
    assert stop_token_ids(str(tiny_model_dir), tok) == sorted({*gen, cfg, tok.eos_token_id})


def test_a_torn_last_line_is_dropped_and_cut_only_when_asked(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_jsonl(path) == [(1, {"a": 1}), (2, {"a": 2})]
    assert path.read_text().endswith('{"a": ')  # read only
    assert read_jsonl(path, cut_torn=True) == [(1, {"a": 1}), (2, {"a": 2})]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'  # appending now starts a fresh line


def test_a_damaged_line_is_named_with_the_hint(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(UserError, match=r"log.jsonl:2: not a JSON line .*; use a new --out"):
        read_jsonl(path, hint="use a new --out")


def test_atomic_write_leaves_no_temp_file(tmp_path):
    write_atomic(tmp_path / "x.json", "{}\n")
    write_atomic(tmp_path / "x.json", '{"b": 1}\n')
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"] and (tmp_path / "x.json").read_text() == '{"b": 1}\n'


def test_the_environment_records_name_the_packages():
    text = environment_summary(None)
    assert text.startswith("python ") and "gpus none" in text and "\nverl " in text and "\ntorch " in text
    versions = package_versions()
    assert versions["gsm8k_rl"] and versions["torch"] and "math-verify" in versions
