"""`gsm8k-rl doctor` on real data: what passes, what fails, and that failures say what to change."""

from __future__ import annotations

import json

import pytest

from gsm8k_rl.cli import main
from gsm8k_rl.launch.layout import count_params


@pytest.fixture(scope="module")
def data_dir(gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(out), "--limit", "128"]) == 0
    return out


def _lines(out: str) -> dict[str, str]:
    return {line.split("]")[1].split()[0]: line for line in out.splitlines() if line.startswith("[")}


@pytest.mark.parametrize("gpus, memory", [(2, 141), (2, 40)])  # 1/2/4/8 x 80 GB: test_recipe.py
def test_layouts_planned_on_cpu(tmp_path, data_dir, tiny_qwen3_tok_model_dir, capsys, gpus, memory):
    """The launcher's layouts for 1-8 GPUs compose and pass VERL's validation here, without GPUs."""
    rc = main(["doctor", "--run-dir", str(tmp_path), "--data", str(data_dir), "--model", str(tiny_qwen3_tok_model_dir),
               "--gpus", str(gpus), "--gpu-memory-gb", str(memory)])
    out = capsys.readouterr().out
    lines = _lines(out)
    assert lines["config"].startswith("[PASS]") and f"{gpus} GPU(s)" in lines["config"]
    assert lines["data.train_files"].startswith("[PASS]") and "128 rows" in lines["data.train_files"]
    assert lines["reward"].startswith("[PASS]") and "256/256 gold solutions" in lines["reward"]
    assert lines["memory"].startswith("[PASS]")
    # this machine has no GPU: the run itself cannot start, and doctor says so (and how to smoke test)
    assert lines["gpus"].startswith("[FAIL]") and "gsm8k-rl train --backend local --smoke" in out
    # no NVIDIA driver here: the driver check is skipped, with the reason, and fails nothing
    assert lines["driver"].startswith("[SKIP]") and "not checked" in lines["driver"]
    assert rc == 1


def test_host_ram_for_offloaded_adam(tmp_path, data_dir, qwen3_dir, capsys):
    """1 x 80 GB: the launcher offloads Adam to the host, which took ~85 GiB of RAM on the H100 run."""
    import psutil

    main(["doctor", "--run-dir", str(tmp_path), "--data", str(data_dir), "--model", str(qwen3_dir),
          "--gpus", "1", "--gpu-memory-gb", "80"])
    line = _lines(capsys.readouterr().out)["host_memory"]
    assert "~87 GiB of host RAM in use expected" in line
    enough = psutil.virtual_memory().total / 2**30 >= 87
    assert line.startswith("[PASS]" if enough else "[WARN]")
    assert enough or "add RAM or GPUs" in line


def test_broken_reward_is_caught(tmp_path, data_dir, tiny_model_dir, capsys):
    """The spec's 'reward always zero' failure: a reward that pays nothing fails the preflight."""
    bad = tmp_path / "bad_reward.py"
    bad.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n    return 0.0\n")
    main(["doctor", "--run-dir", str(tmp_path / "r"), "--data", str(data_dir), "--model", str(tiny_model_dir),
          f"reward.custom_reward_function.path={bad}"])
    line = _lines(capsys.readouterr().out)["reward"]
    assert line.startswith("[FAIL]") and "0/256" in line and "index 0" in line


def test_overlong_prompts_fail_with_the_key_to_change(tmp_path, data_dir, tiny_qwen3_tok_model_dir, capsys):
    main(["doctor", "--run-dir", str(tmp_path), "--data", str(data_dir), "--model", str(tiny_qwen3_tok_model_dir),
          "data.max_prompt_length=64"])
    line = _lines(capsys.readouterr().out)["data.train_files"]
    assert line.startswith("[FAIL]") and "raise data.max_prompt_length" in line


def test_missing_data(tmp_path, tiny_model_dir, capsys):
    assert main(["doctor", "--run-dir", str(tmp_path), "--data", str(tmp_path / "nope"),
                 "--model", str(tiny_model_dir)]) == 1
    assert "gsm8k-rl prepare" in capsys.readouterr().out


def test_count_params_matches_real_qwen3_architecture(qwen3_dir):
    """The memory estimate's parameter count equals the model transformers builds (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(qwen3_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    assert json.loads((qwen3_dir / "config.json").read_text())["num_hidden_layers"] == 28


@pytest.mark.parametrize("driver, cuda, status", [
    ("580.159.04", "13.0", "PASS"),  # the H200 this project measured on, torch 2.11 cu130
    ("580.65.06", "13.0", "PASS"),  # exactly the minimum
    ("575.57.08", "13.0", "FAIL"),  # a CUDA 12.9 driver under CUDA 13 wheels
    ("550.54.15", "13.0", "FAIL"),
    ("535.104.05", "12.4", "PASS"),  # CUDA 12 minor-version compatibility
    ("470.82.01", "12.1", "FAIL"),
])
def test_driver_against_the_wheels_cuda(driver, cuda, status):
    from gsm8k_rl.launch.doctor import check_driver

    check = check_driver(driver, cuda, "torch 2.11.0")
    assert check.status == status
    if status == "FAIL":  # names both versions and the fix
        assert driver in check.detail and cuda in check.detail
        assert "Upgrade the driver to >= " in check.detail and "torch build for an older CUDA" in check.detail


def test_driver_below_a_cuda12_minors_own_driver_says_so():
    from gsm8k_rl.launch.doctor import check_driver

    check = check_driver("535.104.05", "12.8", "torch 2.7.0+cu128")  # passes on 12.x's minimum
    assert check.status == "PASS" and "minor-version compatibility" in check.detail and ">= 570.26" in check.detail
    assert "minor-version" not in check_driver("570.86.10", "12.8").detail


def test_driver_version_parsed_from_nvidia_smi():
    from gsm8k_rl.launch.doctor import parse_driver_version

    assert parse_driver_version("580.159.04\n") == "580.159.04"
    assert parse_driver_version("550.54.15\n550.54.15\n") == "550.54.15"  # one line per GPU
    assert parse_driver_version("") is None
    assert parse_driver_version("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") is None


@pytest.mark.parametrize("version, torch_cuda, cuda", [
    ("0.24.0", "13.0", "13.0"),  # PyPI's build: the CUDA of the torch it pins
    ("0.24.0+cu126", "13.0", "12.6"),  # a build for another CUDA names it in its local tag
    ("0.10.1+cu118", "11.8", "11.8"),
])
def test_vllm_cuda_from_its_version(version, torch_cuda, cuda):
    from gsm8k_rl.launch.doctor import check_driver, vllm_cuda

    assert vllm_cuda(version, torch_cuda) == cuda
    if cuda == "12.6":  # a CUDA 12 vLLM on a CUDA 12 driver passes where the CUDA 13 torch fails
        assert check_driver("550.54.15", vllm_cuda(version, torch_cuda)).status == "PASS"


def test_memory_estimate_follows_the_config_and_the_model(qwen3_dir, tmp_path):
    """doctor's estimate reads what the run will have: the real Qwen3-1.7B architecture, fused
    log-probs (no full-vocabulary logits) and gradient checkpointing (off: every layer's activations)."""
    from transformers import AutoConfig

    from gsm8k_rl.launch.compose import compose_config
    from gsm8k_rl.launch.layout import Hardware, layout_overrides, memory_estimate

    model = AutoConfig.from_pretrained(qwen3_dir)
    base = layout_overrides(Hardware(1, 141.0))

    def est(*extra):
        return memory_estimate(model, compose_config("ppo", base + list(extra)), 141.0)

    plain, fused = est(), est("actor_rollout_ref.model.use_fused_kernels=true")
    no_ckpt = est("actor_rollout_ref.model.use_fused_kernels=true",
                  "actor_rollout_ref.model.enable_gradient_checkpointing=false")
    assert fused["activations"] < plain["activations"] < no_ckpt["activations"]
    assert fused["actor"] == plain["actor"] == no_ckpt["actor"]
    # the H200 run without checkpointing (fused, 8192 tokens) peaked at 122.8 GiB allocated: the
    # estimate is calibrated on it, so it must say that such a run is near the card's edge
    assert no_ckpt["peak_estimate"] > 0.8 * 141.0 > fused["peak_estimate"]


def test_count_params_is_exact_for_qwen2_and_llama(smollm2_dir):
    """The parameter count that sizes the memory plan, against the real models' own counts: SmolLM2-135M
    (Llama, tied head; its conversion record) and Qwen2.5-Coder-1.5B-Instruct (Qwen2: q/k/v biases, untied
    head; its config as converted from the PyPI GGUF, tests/data/, and the count transformers gave)."""
    from pathlib import Path

    from transformers import AutoConfig

    record = json.loads((smollm2_dir / "conversion.json").read_text())
    assert count_params(AutoConfig.from_pretrained(smollm2_dir)) == record["parameters"] == 134_515_008
    qwen = AutoConfig.from_pretrained(Path(__file__).parent / "data" / "qwen2.5-coder-1.5b-instruct-config")
    assert count_params(qwen) == 1_777_088_000
