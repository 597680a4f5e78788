"""`gsm8k-rl run --smoke`: the whole chain on CPU (real VERL PPO on a tiny model), then a restart
that skips every finished stage. This is the CI proof that the README's run command works."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from gsm8k_rl.cli import main
from gsm8k_rl.evaluation.backends import TransformersBackend
from gsm8k_rl.evaluation.run import METRICS, SAMPLES, read_samples

# `gsm8k-rl run --smoke` that stops at its plan, so nothing trains: with --response-length auto the
# base eval comes first, then the plan refuses a batch of 100 prompts (the smoke slice has 64)
STOPS_AT_PLAN = ["--response-length", "auto", "data.train_batch_size=100"]


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

    # the same command again: nothing is recomputed but the report; the finished evals are checked
    # against the settings the run would use and kept as they are (metrics.json and its wall time too)
    evals = {name: _files(run / "eval" / name) for name in ("base", "trained")}
    assert main(["run", "--smoke", "--run-dir", str(run), *auto]) == 0
    out = capsys.readouterr().out
    for stage in ("eval base", "train", "export", "eval trained"):
        assert f"=== {stage}: already done" in out
    for name in ("base", "trained"):
        assert f"=== eval {name}: already done, settings match ({run / 'eval' / name}), reused" in out
        assert _files(run / "eval" / name) == evals[name]
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


# -- a finished eval folder is reused only when it was made with the run's settings -----------------


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the folder: its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _smoke_run(run: Path, *extra: str) -> int:
    return main(["run", "--smoke", "--run-dir", str(run), *STOPS_AT_PLAN, *extra])


@pytest.fixture(scope="module")
def finished_base(tmp_path_factory) -> tuple[Path, list[str]]:
    """A base eval made by `gsm8k-rl run --smoke` (8 problems of the shipped slice, 32 tokens, the
    run's tiny model), and the `gsm8k-rl eval` command the run gave that stage, as it printed it."""
    import contextlib
    import io

    run = tmp_path_factory.mktemp("first") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert _smoke_run(run) == 2
    assert "stage 'plan' failed" in stderr.getvalue()
    banner = next(line for line in stdout.getvalue().splitlines() if line.startswith("=== eval base: gsm8k-rl "))
    argv = shlex.split(banner.removeprefix("=== eval base: gsm8k-rl "))
    assert json.loads((run / "eval" / "base" / METRICS).read_text())["n"] == 8
    return run / "eval" / "base", argv


def _with(argv: list[str], **values: str) -> list[str]:
    """The eval command with some options' values replaced (max_new_tokens="16": --max-new-tokens 16)."""
    argv = list(argv)
    for key, value in values.items():
        argv[argv.index("--" + key.replace("_", "-")) + 1] = value
    return argv


def test_run_reuses_a_copied_base_eval_made_with_its_settings(finished_base, tmp_path, capsys, monkeypatch):
    """A finished base eval copied into a new run folder (as gpu_run.sh's BASE_EVAL=DIR does) with the
    run's model, data, prompt and decoding is kept as it is: no model loaded, no file rewritten."""
    base = tmp_path / "run" / "eval" / "base"
    shutil.copytree(finished_base[0], base)
    before = _files(base)
    monkeypatch.setattr(TransformersBackend, "__init__", lambda *a, **k: pytest.fail("a model was loaded"))
    assert _smoke_run(tmp_path / "run") == 2
    out, err = capsys.readouterr()
    assert f"=== eval base: already done, settings match ({base}), reused" in out
    assert "=== eval base: gsm8k-rl" not in out
    assert "stage 'plan' failed" in err  # the run went on past the eval, to the plan
    assert _files(base) == before
    # the length was sized from it
    assert json.loads((tmp_path / "run" / "response_length.json").read_text())["base_eval"] == str(base)


def test_run_refuses_a_finished_base_eval_made_with_other_settings(finished_base, tmp_path, capsys):
    """Another model, or the same model under another token cap: `gsm8k-rl run` stops before anything
    else, with one line naming the folder and each key that differs, and leaves the folder as it was."""
    from gsm8k_rl.launch.smoke import build_tiny_model

    def refused(run: Path, *extra: str) -> str:
        base = run / "eval" / "base"
        before = _files(base)
        capsys.readouterr()
        assert _smoke_run(run, *extra) == 2
        out, err = capsys.readouterr()
        assert "=== eval base: gsm8k-rl" not in out and "=== plan" not in out
        assert _files(base) == before
        [line] = [line for line in err.splitlines() if line.startswith("gsm8k-rl run: error:")]
        assert f"eval base: {base} holds samples made with different settings (" in line
        assert "delete that folder to evaluate again with this run's settings, or use a new --run-dir" in line
        return line

    # the base eval of the smoke model, copied into a run of another model
    other = build_tiny_model(tmp_path / "other_model", hidden_size=32, head_dim=8)
    shutil.copytree(finished_base[0], tmp_path / "a" / "eval" / "base")
    assert "model_fingerprint: " in refused(tmp_path / "a", "--model", str(other))

    # the run's eval command with another --max-new-tokens, written where the run looks for its base eval
    argv = _with(finished_base[1], max_new_tokens="16", out=str(tmp_path / "b" / "eval" / "base"))
    assert main(argv) == 0
    line = refused(tmp_path / "b")
    assert "(max_new_tokens: 16 -> 32);" in line


def test_run_resumes_a_finished_base_eval_missing_problems(finished_base, tmp_path, capsys):
    """A finished eval of the first 5 problems (--limit 5) is not the run's 8: resumed, the 3 missing
    generated, the 5 kept as they were."""
    base = tmp_path / "run" / "eval" / "base"
    assert main(_with(finished_base[1], limit="5", out=str(base))) == 0
    first = (base / SAMPLES).read_text()
    capsys.readouterr()
    assert _smoke_run(tmp_path / "run") == 2
    out = capsys.readouterr().out
    assert f"=== eval base: resuming {base}: no sample for 3 of its 8 problems" in out
    assert "=== eval base: gsm8k-rl eval" in out
    assert (base / SAMPLES).read_text().startswith(first)
    assert sorted(read_samples(base / SAMPLES)) == list(range(8))
    m = json.loads((base / METRICS).read_text())
    assert (m["n"], m["resumed_samples"], m["generated_samples"]) == (8, 5, 3)
