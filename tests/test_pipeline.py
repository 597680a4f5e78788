"""`gsm8k-rl run --smoke`: the whole chain on CPU (real VERL PPO on a tiny model), then a restart
that skips every finished stage. This is the CI proof that the README's run command works."""

from __future__ import annotations

import json

import pytest

from gsm8k_rl.cli import main


def test_run_without_gpu_stops_before_spending_anything(tmp_path, capsys):
    assert main(["run", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "gsm8k-rl run --smoke" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_smoke_chain_end_to_end_then_restart_skips(tmp_path, capsys):
    """With --response-length auto: the base eval runs before the plan and sizes training's length
    (the smoke eval's cap is 32 tokens, so the length stays 32 and the restarts keep the config)."""
    run = tmp_path / "smoke"
    auto = ["--response-length", "auto"]
    assert main(["run", "--smoke", "--run-dir", str(run), *auto]) == 0
    out = capsys.readouterr().out
    for stage in ("plan", "eval base", "train", "export", "eval trained", "report"):
        assert f"=== {stage}: gsm8k-rl" in out
    assert out.index("=== eval base: gsm8k-rl") < out.index("=== response length: 32 tokens") < out.index("=== plan:")
    sized = json.loads((run / "response_length.json").read_text())
    assert (sized["cap"], sized["chosen"], sized["n"]) == (32, 32, 8) and sized["quantile_tokens"] <= 32
    overrides = [line[4:] for line in (run / "command.sh").read_text().splitlines() if line.startswith("#   ")]
    assert overrides[-1] == "data.max_response_length=32"  # last: the sized length wins
    assert "sized from the base eval by `--response-length auto`" in (run / "report" / "report.md").read_text()
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "finished" and info["total_training_steps"] == 2
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]  # validation before training, two PPO steps
    assert (run / "checkpoints" / "global_step_2" / "actor").is_dir()
    assert (run / "export" / "global_step_2" / "config.json").exists()
    for name in ("base", "trained"):
        metrics = json.loads((run / "eval" / name / "metrics.json").read_text())
        assert metrics["n"] == 8 and 0.0 <= metrics["accuracy"] <= 1.0
    report = (run / "report" / "report.md").read_text()
    assert "base" in report and "trained" in report
    for png in ("accuracy.png", "validation.png", "training.png"):
        assert (run / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same command again: nothing is recomputed but the report
    assert main(["run", "--smoke", "--run-dir", str(run), *auto]) == 0
    out = capsys.readouterr().out
    for stage in ("eval base", "train", "export", "eval trained"):
        assert f"=== {stage}: already done" in out
    assert json.loads((run / "run_info.json").read_text())["attempts"] == 1

    # an export killed half-way by the older, in-place export (config.json, no weights, no
    # export_info.json) used to count as done; the restart now exports again
    exported = run / "export" / "global_step_2"
    for f in exported.glob("*.safetensors"):
        f.unlink()
    (exported / "export_info.json").unlink()
    assert main(["run", "--smoke", "--run-dir", str(run), *auto]) == 0
    out = capsys.readouterr().out
    assert "=== export: gsm8k-rl" in out and "=== train: already done" in out
    assert list(exported.glob("*.safetensors")) and (exported / "export_info.json").is_file()


def test_run_prepares_and_evaluates_with_the_configs_prompt():
    """`gsm8k-rl run` reads the data and prompt from the config's prepare block, so the base and the
    trained eval use the prompt the model trained on (the paper presets: its mix and its prompt)."""
    from pathlib import Path

    from gsm8k_rl.launch.compose import compose_config
    from gsm8k_rl.pipeline import data_choice, default_data_dir, eval_source

    assert data_choice(compose_config("ppo")) == ("gsm8k", "plain")
    assert data_choice(compose_config("grpo")) == ("gsm8k", "plain")
    assert data_choice(compose_config("paper_sa_ppo")) == ("paper_mix", "paper")
    assert data_choice(compose_config("ppo", ["prepare.template=hash"])) == ("gsm8k", "hash")
    assert default_data_dir("gsm8k", "hash") == "data/gsm8k_hash"
    assert eval_source("gsm8k", "/d/gsm8k") == ["--source", "/d/gsm8k"]
    assert eval_source("paper_mix", "/d/paper") == ["--source", str(Path("/d/paper") / "gsm8k")]
    assert eval_source("math", "/d/math") == [] and eval_source("gsm8k", None) == []


def test_eval_stages_take_the_training_prompt_budget_and_gpu_share():
    """Both evals get the trained prompt, thinking flag and response budget; the vLLM share is the
    user's (a GPU shared with another run's training cannot give eval the default 0.9)."""
    import argparse

    from gsm8k_rl.pipeline import add_arguments, eval_options

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = {"data": {"apply_chat_template_kwargs": {"enable_thinking": False}, "max_response_length": 512}}
    opts, src = eval_options(p.parse_args(["--source", "/d/gsm8k"]), cfg, "gsm8k", "plain")
    assert opts == ["--no-thinking", "--template", "plain", "--backend", "auto", "--max-new-tokens", "512",
                    "--gpu-memory-utilization", "0.9"]
    assert src == ["--source", "/d/gsm8k"]
    args = p.parse_args(["--eval-gpu-memory-utilization", "0.3", "--eval-backend", "vllm"])
    opts, src = eval_options(args, cfg, "gsm8k", "plain")
    assert opts[opts.index("--gpu-memory-utilization") + 1] == "0.3" and opts[opts.index("--backend") + 1] == "vllm"
    assert src == []


def test_response_length_sized_from_the_base_eval():
    """The smallest multiple of 128 at or above the 99th percentile of the base answers' lengths,
    never above the eval's cap; a base eval that mostly hits the cap leaves the cap."""
    from gsm8k_rl import UserError
    from gsm8k_rl.pipeline import size_response_length

    def samples(lengths, cap=None):
        return [{"n_output_tokens": n, "finish_reason": "length" if n == cap else "stop"} for n in lengths]

    # 1319 answers like Qwen2.5-Coder-1.5B-Instruct's (p99 ~ 560): 640 covers 99%
    lengths = [300] * 1300 + [560] * 10 + [900] * 8 + [1024]
    r = size_response_length(samples(lengths, 1024), cap=1024)
    assert (r["quantile_tokens"], r["chosen"]) == (560, 640) and r["covered"] == pytest.approx(1310 / 1319)
    assert r["base_truncated_at_cap"] == pytest.approx(1 / 1319)
    assert size_response_length(samples([100] * 99 + [129]), cap=1024, coverage=1.0)["chosen"] == 256
    assert size_response_length(samples([4096] * 10, 4096), cap=4096)["chosen"] == 4096
    with pytest.raises(UserError, match="response-coverage"):
        size_response_length(samples([1]), cap=8, coverage=0)
