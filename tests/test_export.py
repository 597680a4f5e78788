"""`gsm8k-rl export` keeps the base model's chat template and generation config (issue 15, item 5).

The checkpoint is laid out as VERL 0.9.1's FSDP checkpoint manager writes it at world size 1
(fsdp_config.json, model_world_size_1_rank_0.pt, and huggingface/ with the config, tokenizer and
generation config re-saved by transformers, fsdp_checkpoint_manager.py), and VERL's real model
merger turns it into the HF folder. The base models are the tiny test model with its files written
as hub checkpoints ship them: Qwen3's template inline in tokenizer_config.json, a 4-space-indented
generation_config.json from an older transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gsm8k_rl import UserError
from gsm8k_rl.cli import main
from gsm8k_rl.launch.export import (
    GENERATION_CONFIG,
    TEMPLATE_FILE,
    TOKENIZER_CONFIG,
    keep_base_attention,
    keep_base_files,
)

HUB_GENERATION_CONFIG = """{
    "bos_token_id": 0,
    "do_sample": true,
    "eos_token_id": [
        2,
        0
    ],
    "pad_token_id": 0,
    "temperature": 0.6,
    "top_k": 20,
    "top_p": 0.95,
    "transformers_version": "4.51.0"
}"""


def _base(tiny_model_dir: Path, dst: Path, inline_template: bool, generation_config: bool) -> Path:
    shutil.copytree(tiny_model_dir, dst)
    if inline_template:  # as Qwen/Qwen3-1.7B ships it
        cfg = json.loads((dst / TOKENIZER_CONFIG).read_text())
        cfg["chat_template"] = (dst / TEMPLATE_FILE).read_text()
        (dst / TOKENIZER_CONFIG).write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
        (dst / TEMPLATE_FILE).unlink()
    if generation_config:
        (dst / GENERATION_CONFIG).write_text(HUB_GENERATION_CONFIG)
    else:
        (dst / GENERATION_CONFIG).unlink()
    return dst


def _verl_checkpoint(base: Path, run: Path, step: int = 2) -> dict:
    """The actor checkpoint of a run started from `base`, in VERL's layout; returns the saved weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    actor = run / "checkpoints" / f"global_step_{step}" / "actor"
    hf = actor / "huggingface"
    hf.mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():  # "trained": weights that differ from the base
        for p in model.parameters():
            p.add_(0.01)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}, indent=4))
    try:  # what the checkpoint manager does: generation config from the model's name_or_path, if any
        GenerationConfig.from_pretrained(base).save_pretrained(hf)
    except OSError:
        pass
    AutoConfig.from_pretrained(base).save_pretrained(hf)
    AutoTokenizer.from_pretrained(base).save_pretrained(hf)
    (run / "checkpoints" / "latest_checkpointed_iteration.txt").write_text(str(step))
    (run / "resolved_config.yaml").write_text(f"actor_rollout_ref:\n  model:\n    path: {base}\n")
    return state


@pytest.mark.parametrize("inline_template,generation_config", [(True, True), (False, False)],
                         ids=["hub-layout", "jinja-file-no-generation-config"])
def test_export_keeps_the_base_models_template_and_generation_config(tiny_model_dir, tmp_path, inline_template,
                                                                     generation_config):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gsm8k_rl.common.generation import stop_token_ids
    from gsm8k_rl.task.prompt import build_messages, render

    base = _base(tiny_model_dir, tmp_path / "base", inline_template, generation_config)
    run = tmp_path / "run"
    state = _verl_checkpoint(base, run)
    hf = run / "checkpoints" / "global_step_2" / "actor" / "huggingface"
    if generation_config:  # what VERL's copy would have given: same values, other bytes
        assert (hf / GENERATION_CONFIG).read_bytes() != (base / GENERATION_CONFIG).read_bytes()
    if inline_template:  # ... and the template moved out of tokenizer_config.json
        assert (hf / TEMPLATE_FILE).is_file()

    assert main(["export", "--run-dir", str(run)]) == 0
    out = run / "export" / "global_step_2"

    if generation_config:
        assert (out / GENERATION_CONFIG).read_bytes() == (base / GENERATION_CONFIG).read_bytes()
    else:
        assert not (out / GENERATION_CONFIG).exists()
    if inline_template:
        assert not (out / TEMPLATE_FILE).exists()
        base_template = json.loads((base / TOKENIZER_CONFIG).read_text())["chat_template"]
        assert json.loads((out / TOKENIZER_CONFIG).read_text())["chat_template"] == base_template
    else:
        assert (out / TEMPLATE_FILE).read_bytes() == (base / TEMPLATE_FILE).read_bytes()
        assert "chat_template" not in json.loads((out / TOKENIZER_CONFIG).read_text())
    # what eval sees: the same rendered prompt ids and the same stop tokens as for the base model
    tok_base, tok_out = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(out)
    messages = build_messages("Natalia sold 48 clips in April. How many in May?")
    ids = [tok(render(tok, messages, False))["input_ids"] for tok in (tok_out, tok_base)]
    assert ids[0] == ids[1]
    assert stop_token_ids(str(out), tok_out) == stop_token_ids(str(base), tok_base)
    info = json.loads((out / "export_info.json").read_text())
    assert info["base_model"] == str(base) and info["step"] == 2
    assert set(info["kept_from_base_sha256"]) == (
        {GENERATION_CONFIG} if generation_config else set()) | (
        {f"{TOKENIZER_CONFIG}#chat_template"} if inline_template else {TEMPLATE_FILE})
    # the weights are the checkpoint's, in the bf16 the merger writes
    model = AutoModelForCausalLM.from_pretrained(out)
    key = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(model.state_dict()[key], state[key].to(torch.bfloat16))


def test_export_refuses_a_base_without_a_chat_template(tiny_model_dir, tmp_path):
    base = _base(tiny_model_dir, tmp_path / "base", inline_template=False, generation_config=True)
    (base / TEMPLATE_FILE).unlink()
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(UserError, match="the base model has no chat template"):
        keep_base_files(base, target)


@pytest.mark.parametrize("base_attn", [None, "sdpa"])
def test_export_asks_for_the_base_models_attention(tiny_model_dir, tmp_path, base_attn):
    """A fast-path run's merged config asks for torch_varlen, which only this project registers (the
    H200 run of 2026-12-02 exported such a folder): the export asks for what the base model does."""
    from transformers import AutoModelForCausalLM

    base, target = tmp_path / "base", tmp_path / "target"
    shutil.copytree(tiny_model_dir, base)
    shutil.copytree(tiny_model_dir, target)
    for folder, attn in ((base, base_attn), (target, "torch_varlen")):
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("attn_implementation", None)
        if attn:
            cfg["attn_implementation"] = attn
        (folder / "config.json").write_text(json.dumps(cfg))
    ckpt_cfg = tmp_path / "ckpt_config.json"
    shutil.copyfile(target / "config.json", ckpt_cfg)
    assert keep_base_attention(base, target, ckpt_cfg) == {"checkpoint": "torch_varlen", "export": base_attn}
    cfg = json.loads((target / "config.json").read_text())
    assert cfg.get("attn_implementation") == base_attn
    assert cfg["num_hidden_layers"] == json.loads((base / "config.json").read_text())["num_hidden_layers"]
    AutoModelForCausalLM.from_pretrained(target)  # loads without this project's kernels registered


def test_export_without_a_known_base_model_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints" / "global_step_1" / "actor").mkdir(parents=True)
    (run / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("1")
    assert main(["export", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "resolved_config.yaml not found" in err and "--base-model" in err


def test_interrupted_export_is_replaced_by_a_complete_one(tiny_model_dir, tmp_path):
    """The merger used to write into the export folder in place, and `gsm8k-rl run` counts an export
    done by its files: a kill mid-merge left config.json without weights, the stage was skipped and
    the trained eval failed. Now the export is built in a sibling folder and renamed when verified;
    what an interrupted export leaves (that folder, or an older in-place one) is replaced."""
    from gsm8k_rl.launch.export import EXPORT_INFO, partial_dir

    base = _base(tiny_model_dir, tmp_path / "base", inline_template=False, generation_config=True)
    run = tmp_path / "run"
    _verl_checkpoint(base, run)
    out = run / "export" / "global_step_2"
    out.mkdir(parents=True)
    shutil.copyfile(base / "config.json", out / "config.json")  # an in-place export killed before the weights
    partial_dir(out).mkdir()
    (partial_dir(out) / "model.safetensors").write_bytes(b"half")  # a killed build
    assert main(["export", "--run-dir", str(run), "--overwrite"]) == 0
    assert not partial_dir(out).exists()
    assert (out / EXPORT_INFO).is_file() and list(out.glob("*.safetensors"))
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
