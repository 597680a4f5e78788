"""The fast path (issue 12): torch_varlen attention, fused log-probs, the launcher's choices.

What runs on CPU runs here against the real components: transformers models with the registered
attention, VERL 0.9.1's own micro-batch code and PPO loss (experiments/fast_path_numerics.py), VERL's
real trainer on the local backend. The CUDA kernels themselves (varlen FlashAttention, liger,
VERL's Triton kernel) are checked on a GPU by the same script (experiments/notebook.md, "Step speed").
"""

from __future__ import annotations

import json

import pytest

from gsm8k_rl.launch import kernels as fast_path
from gsm8k_rl.verl_ext import varlen_attention


def _tiny(model_type: str, attn: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                               tie_word_embeddings=True)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, attn_implementation=attn).eval()


@pytest.mark.parametrize("model_type", ["qwen3", "llama"])  # Qwen3-1.7B's and SmolLM2's architectures
def test_packed_row_equals_the_padded_batch(model_type):
    """One packed row through torch_varlen gives, token for token, what SDPA gives the padded batch:
    no token attends across a sequence boundary, and padded batches still work."""
    import torch

    varlen_attention.register()
    sdpa, packed_model = _tiny(model_type, "sdpa"), _tiny(model_type, varlen_attention.NAME)
    packed_model.load_state_dict(sdpa.state_dict())
    lens = [5, 9, 3, 12]
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, 300, (n,), generator=gen) for n in lens]
    ids = torch.zeros(len(lens), max(lens), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = s, 1
    with torch.no_grad():
        reference = sdpa(input_ids=ids, attention_mask=mask).logits
        packed = packed_model(input_ids=torch.cat(seqs)[None], attention_mask=None,
                              position_ids=torch.cat([torch.arange(n) for n in lens])[None]).logits[0]
        padded = packed_model(input_ids=ids, attention_mask=mask).logits
    want = torch.cat([reference[i, :n] for i, n in enumerate(lens)])
    assert torch.allclose(packed, want, atol=1e-5)
    assert torch.allclose(torch.cat([padded[i, :n] for i, n in enumerate(lens)]), want, atol=1e-6)
    # and the mask really matters: without position_ids the row is one long sequence
    with torch.no_grad():
        one_sequence = packed_model(input_ids=torch.cat(seqs)[None]).logits[0]
    assert not torch.allclose(one_sequence, want, atol=1e-3)


@pytest.mark.recorded
def test_fused_and_packed_match_the_plain_path_through_verls_code(tmp_path, tiny_qwen3_tok_model_dir, gsm8k_dir,
                                                                  load_script):
    """VERL's fused `torch` backend and packed torch_varlen micro-batches against VERL's unfused
    per-token log-probs on padded SDPA: same log-probs, entropy, PPO loss and gradient (fp32, CPU)."""
    script = load_script("experiments/fast_path_numerics.py")
    report = script.main(["--model", str(tiny_qwen3_tok_model_dir), "--gsm8k", str(gsm8k_dir / "test.jsonl"),
                          "--device", "cpu", "--tokens", "2048", "--reps", "0", "--out", str(tmp_path / "n.json")])
    assert json.loads((tmp_path / "n.json").read_text()) == json.loads(json.dumps(report))
    v = report["variants"]
    assert set(v) == {"stock", "fused-torch", "packed", "packed+fused-torch"}
    assert report["sequences"] >= 3 and 0 < report["padding_share"] < 1
    stock = v["stock"]
    for name, row in v.items():
        assert "error" not in row, (name, row)
        assert row["logprob_max_abs_diff"] < 1e-4, name
        assert abs(row["logprob_mean_diff"]) < 1e-6, name
        assert row["entropy_max_abs_diff"] < 1e-4, name
        assert row["loss"] == pytest.approx(stock["loss"], rel=1e-5, abs=1e-7), name
        assert row["grad_norm"] == pytest.approx(stock["grad_norm"], rel=1e-4), name
    assert stock["grad_norm"] > 0


@pytest.mark.recorded
def test_numerics_script_variant_subset_checkpointing_and_liger(tmp_path, tiny_qwen3_tok_model_dir, gsm8k_dir,
                                                                  load_script):
    """--variants picks the reference (the first named), --gradient-checkpointing recomputes activations
    as VERL does without changing the numbers, and --liger reruns each variant with liger's kernels:
    where liger-kernel cannot load (no Triton on this CPU) its rows say why instead of failing the run."""
    import importlib.util

    script = load_script("experiments/fast_path_numerics.py")
    common = ["--model", str(tiny_qwen3_tok_model_dir), "--gsm8k", str(gsm8k_dir / "test.jsonl"),
              "--device", "cpu", "--tokens", "1024", "--reps", "0", "--variants", "packed+fused-torch", "stock"]
    plain = script.main(common + ["--out", str(tmp_path / "a.json")])
    ckpt = script.main(common + ["--gradient-checkpointing", "--liger", "--out", str(tmp_path / "b.json")])
    assert list(plain["variants"]) == ["packed+fused-torch", "stock"]
    assert list(ckpt["variants"]) == ["packed+fused-torch", "stock", "packed+fused-torch+liger", "stock+liger"]
    assert ckpt["gradient_checkpointing"] and not plain["gradient_checkpointing"]
    for name in plain["variants"]:
        a, b = plain["variants"][name], ckpt["variants"][name]
        assert a["reference"] == b["reference"] == "packed+fused-torch"
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6, abs=1e-8), name
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5), name
    assert plain["variants"]["packed+fused-torch"]["logprob_max_abs_diff"] == 0
    assert plain["variants"]["stock"]["logprob_max_abs_diff"] < 1e-4
    liger_loads = all(importlib.util.find_spec(m) is not None for m in ("liger_kernel", "triton"))
    for name in ("packed+fused-torch+liger", "stock+liger"):
        row = ckpt["variants"][name]
        if liger_loads:
            assert row["liger"] and row["logprob_max_abs_diff"] < 1e-3, (name, row)
        else:
            assert "error" in row and "liger" not in row, (name, row)


@pytest.mark.parametrize("on_gpu, flash, triton, varlen, hidden, want", [
    (False, False, False, True, 2048, ("sdpa", None, False)),  # CPU: VERL's plain path
    (True, False, True, True, 2048, ("torch_varlen", "triton", True)),  # Qwen3-1.7B on an H200
    (True, False, True, True, 576, ("torch_varlen", "torch", True)),  # SmolLM2-135M: 576 % 128 != 0
    (True, False, True, True, None, ("torch_varlen", "torch", True)),  # hidden size unknown: the safe one
    (True, False, False, True, 2048, ("torch_varlen", "torch", True)),  # no triton
    (True, True, True, True, 2048, ("flash_attention_2", "triton", True)),
    (True, False, True, False, 2048, ("sdpa", "torch", True)),  # no varlen kernels: padded, so not triton
])
def test_auto_decides_from_what_is_installed(monkeypatch, on_gpu, flash, triton, varlen, hidden, want):
    found = {"flash_attn": flash, "triton": triton, "liger_kernel": True}
    monkeypatch.setattr(fast_path, "_importable", lambda name: found[name])
    monkeypatch.setattr(fast_path, "_varlen_available", lambda: varlen)
    k = fast_path.decide("auto", "auto", "vllm", on_gpu=on_gpu, hidden_size=hidden)
    assert (k.attn, k.fused, k.fast) == want
    assert k.liger == (on_gpu and triton)  # liger-kernel's kernels are Triton
    assert k.remove_padding == (k.attn != "sdpa")
    assert "the machine that planned the run" in k.source
    off = fast_path.decide("off", "auto", "vllm", on_gpu=on_gpu, hidden_size=hidden)
    assert off.fused is None and not off.fast


@pytest.mark.parametrize("liger, backend, on_gpu, importable, want, why", [
    ("auto", "vllm", True, True, True, "liger-kernel RMSNorm/SwiGLU/RoPE"),  # the H200 setting
    ("auto", "vllm", True, False, False, "pip install liger-kernel==0.8.5"),
    ("auto", "local", True, True, False, "the local backend"),  # not measured there
    ("auto", "vllm", False, True, False, "no GPU"),
    ("off", "vllm", True, True, False, "--liger off"),
    ("on", "local", True, False, True, "--liger on"),  # an explicit choice is the user's, installed or not here
])
def test_liger_decision_and_its_reason(monkeypatch, liger, backend, on_gpu, importable, want, why):
    monkeypatch.setattr(fast_path, "_importable",
                        lambda name: importable if name == "liger_kernel" else name == "triton")
    monkeypatch.setattr(fast_path, "_varlen_available", lambda: True)
    k = fast_path.decide("auto", "auto", backend, on_gpu=on_gpu, hidden_size=2048, liger=liger)
    assert k.liger is want and why in k.source
    assert ("liger-kernel RMSNorm/SwiGLU/RoPE" in k.describe()) is want
    _, ov = fast_path.apply(k, {}, [], on_gpu=on_gpu)
    assert ("actor_rollout_ref.model.use_liger=True" in ov) is want and ("critic.model.use_liger=True" in ov) is want
    assert fast_path.decide("off", "auto", backend, on_gpu=on_gpu, liger="auto").liger is False


def test_liger_version_is_the_one_pinned_in_the_gpu_extra():
    """The version the launcher names in its install hint is the one `make run` installs."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()  # no tomllib on Python 3.10
    gpu = [line for line in text.splitlines() if line.startswith("gpu = [")]
    assert len(gpu) == 1 and f'"liger-kernel=={fast_path.LIGER_VERSION}"' in gpu[0]


def test_liger_on_refused_on_cpu_and_its_keys_pass_verls_validation(prepared_gsm8k, tiny_model_dir):
    """liger's kernels are Triton: --liger on for a CPU run is refused before anything starts. The two
    keys the launcher writes pass VERL 0.9.1's own validation (its dataclasses for actor/reference and
    critic models carry them)."""
    from verl.utils.config import omega_conf_to_dataclass

    from gsm8k_rl import UserError
    from gsm8k_rl.launch.compose import REWARD_FILE, compose_config
    from gsm8k_rl.launch.validate import validate_config

    with pytest.raises(UserError, match="--liger on"):
        fast_path.decide("on", "auto", "local", on_gpu=False, liger="on")
    k = fast_path.Kernels(attn="torch_varlen", fused="triton", source="test", fast=True, liger=True)
    _, ov = fast_path.apply(k, {}, [], on_gpu=True)
    data = prepared_gsm8k["plain"]
    cfg = compose_config("ppo", ov + [f"actor_rollout_ref.model.path={tiny_model_dir}",
                                      f"data.train_files={data / 'train.parquet'}",
                                      f"data.val_files={data / 'test.parquet'}",
                                      f"reward.custom_reward_function.path={REWARD_FILE}"])
    validate_config(cfg)
    assert omega_conf_to_dataclass(cfg.critic.model).use_liger is True
    assert omega_conf_to_dataclass(cfg.actor_rollout_ref.model).use_liger is True


def test_triton_refused_for_a_model_its_kernel_cannot_run():
    """The H200 run of SmolLM2-135M died in its first log-prob pass: VERL's Triton kernel asserts
    hidden_size % 128 == 0 (SmolLM2: 576). An explicit --fused triton is refused before anything starts."""
    from gsm8k_rl import UserError

    with pytest.raises(UserError, match="hidden size 576 is not a multiple of 128"):
        fast_path.decide("auto", "torch_varlen", "vllm", on_gpu=True, fused="triton", hidden_size=576)
    assert fast_path.decide("auto", "torch_varlen", "vllm", on_gpu=True, fused="triton",
                            hidden_size=2048).fused == "triton"


def test_hidden_size_read_from_the_model_folder(tiny_model_dir, smollm2_dir):
    import json as _json

    hidden = _json.loads((tiny_model_dir / "config.json").read_text())["hidden_size"]
    assert fast_path.model_config(str(tiny_model_dir)).hidden_size == hidden
    assert fast_path.model_config(str(smollm2_dir)).hidden_size == 576
    assert fast_path.model_config("/no/such/folder") is None


def test_apply_writes_every_switch_and_loads_the_plugin():
    k = fast_path.Kernels(attn="torch_varlen", fused="triton", source="test", fast=True)
    env, ov = fast_path.apply(k, {}, [], on_gpu=True)
    assert env["VERL_USE_EXTERNAL_MODULES"] == "gsm8k_rl.verl_ext.plugin"
    for line in ("++actor_rollout_ref.model.override_config.attn_implementation=torch_varlen",
                 "++critic.model.override_config.attn_implementation=torch_varlen",
                 "actor_rollout_ref.model.use_remove_padding=True", "critic.model.use_remove_padding=True",
                 "actor_rollout_ref.model.use_fused_kernels=True",
                 "actor_rollout_ref.model.fused_kernel_options.impl_backend=triton"):
        assert line in ov


def test_varlen_with_sequence_parallel_is_refused(tmp_path, tiny_model_dir):
    from gsm8k_rl.launch.compose import compose_config
    from gsm8k_rl.launch.validate import check_attention

    cfg = compose_config("ppo", ["++actor_rollout_ref.model.override_config.attn_implementation=torch_varlen",
                                 "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2"])
    problems = check_attention(cfg)
    assert len(problems) == 1 and "ulysses_sequence_parallel_size=2" in problems[0]


@pytest.mark.slow
def test_two_ppo_steps_on_the_fast_path_through_verls_trainer(tmp_path):
    """`--fast-path on` on CPU: VERL's real trainer with fused log-probs (torch backend) and packed
    micro-batches through torch_varlen (its CPU path), actor, reference and critic."""
    from gsm8k_rl.cli import main

    run = tmp_path / "run"
    assert main(["train", "--backend", "local", "--smoke", "--fast-path", "on", "--run-dir", str(run)]) == 0
    log = (run / "logs" / "train.log").read_text()
    assert "Using Torch backend for fused kernels in Qwen3ForCausalLM" in log
    assert "QuickPollReplayBuffer: polling every 0.1 s" in log  # VERL built the launcher's replay buffer
    info = json.loads((run / "run_info.json").read_text())
    assert info["attn_implementation"] == "torch_varlen" and "fused log-probs (torch)" in info["kernels"]
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [s for s in steps if "timing_s/step" in s["data"]]
    assert [s["step"] for s in trained] == [1, 2]
    for s in trained:
        assert s["data"]["actor/entropy"] > 0 and s["data"]["critic/vf_loss"] >= 0

    # The checkpoint names torch_varlen as its attention (VERL saves the model config as trained):
    # VERL's merger must still load it, and the export must ask for the base model's attention, so
    # it loads where this project's kernels are not registered.
    saved = json.loads((run / "checkpoints" / "global_step_2" / "actor" / "huggingface" / "config.json").read_text())
    assert saved.get("attn_implementation") == "torch_varlen"
    assert main(["export", "--run-dir", str(run)]) == 0
    exported = run / "export" / "global_step_2"
    cfg = json.loads((exported / "config.json").read_text())
    from gsm8k_rl.launch.export import base_model_dir, run_base_model
    from gsm8k_rl.launch.run_dir import RunDir

    base_cfg = json.loads((base_model_dir(run_base_model(RunDir(run))) / "config.json").read_text())
    assert cfg.get("attn_implementation") == base_cfg.get("attn_implementation")
    assert json.loads((exported / "export_info.json").read_text())["attn_implementation"] == {
        "checkpoint": "torch_varlen", "export": base_cfg.get("attn_implementation")}
