"""The step-speed runs recorded on the H200 (experiments/results/step_speed/): the tables the notebook
quotes, recomputed from the raw metrics; what their configs differ in; and experiments/step_speed.sh +
experiments/step_speed_summary.py, the one command that measures by fixed rules, on those runs (the
summary) and in its dry run (the plan)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

pytestmark = pytest.mark.recorded  # checks the lab: experiments/

REPO = Path(__file__).resolve().parents[1]

RUNS = REPO / "experiments/results/step_speed/h200_2026-12-02_stock_vs_tuned"


def _steps(run: Path) -> dict[int, dict]:
    """A run folder's logged steps: {step: its metrics}."""
    return {r["step"]: r["data"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def _flat_config(run: Path) -> dict:
    import yaml

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    return dict(flat(yaml.safe_load((run / "resolved_config.yaml").read_text())))


def _differ(a: dict, b: dict, folder_a: str, folder_b: str) -> set[str]:
    """Keys whose values differ once run-folder a's paths are mapped to run-folder b's."""
    a = {k: v.replace(f"/{folder_a}/", f"/{folder_b}/") if isinstance(v, str) else v for k, v in a.items()}
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_the_two_runs_differ_only_in_the_kernels_and_layout():
    """stock and tuned: same data, model, batch and response length; what differs is the fast path."""
    import yaml

    cfg = {n: yaml.safe_load((RUNS / f"{n}_300" / "resolved_config.yaml").read_text()) for n in ("stock", "tuned")}
    for key in ("data", "algorithm"):
        assert cfg["stock"][key] == cfg["tuned"][key], key
    a = {n: cfg[n]["actor_rollout_ref"] for n in cfg}
    # the rollout (vLLM) is the same; its log_prob_* keys size the old-log-prob pass, part of the layout
    rollout = {n: {k: v for k, v in a[n]["rollout"].items() if not k.startswith("log_prob_")} for n in a}
    assert rollout["stock"] == rollout["tuned"]
    assert a["stock"]["model"]["use_fused_kernels"] is False and a["tuned"]["model"]["use_fused_kernels"] is True
    assert a["stock"]["model"]["use_remove_padding"] is False and a["tuned"]["model"]["use_remove_padding"] is True
    assert a["stock"]["actor"]["use_dynamic_bsz"] is False and a["tuned"]["actor"]["use_dynamic_bsz"] is True
    assert a["stock"]["ref"]["fsdp_config"]["param_offload"] is True
    assert a["tuned"]["ref"]["fsdp_config"]["param_offload"] is False


QUICK = REPO / "experiments/results/step_speed/h200_2026-12-02_quick_poll"


def test_the_budget_run_differs_from_the_default_only_in_token_budgets():
    """default_300 and budgets_300: one launcher default, the budgets given as overrides; nothing else
    in VERL's resolved config differs but the run's own paths."""
    cfg = {n: _flat_config(QUICK / n) for n in ("default_300", "budgets_300")}
    # the run folders were /tmp/out/A300 and /tmp/out/B300 on the GPU machine
    assert _differ(cfg["default_300"], cfg["budgets_300"], "A300",
                   "B300") == {"actor_rollout_ref.actor.ppo_max_token_len_per_gpu", "critic.ppo_max_token_len_per_gpu",
                      "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu",
                      "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu",
                                                                               "critic.forward_max_token_len_per_gpu"}
    assert cfg["budgets_300"]["actor_rollout_ref.actor.ppo_max_token_len_per_gpu"] == 32768
    assert cfg["budgets_300"]["critic.forward_max_token_len_per_gpu"] == 65536


LIGER = REPO / "experiments/results/step_speed/h200_2026-12-02_liger"


def test_the_liger_runs_differ_from_the_earlier_ones_only_in_what_they_measure():
    """liger_300 = the 32K/64K budget run plus VERL's use_liger for actor/ref and critic, 6 steps instead
    of 3; its cold-cache first launch is the same config at 3 steps; today's 1000-token run is the earlier
    1000-token default with the 32K/64K budgets. Run folders on the GPU machine: /tmp/out/<launch>."""
    liger, first = _flat_config(LIGER / "liger_300"), _flat_config(LIGER / "liger_300_first")
    assert _differ(_flat_config(QUICK / "budgets_300"), liger, "B300", "A300b") == {
        "actor_rollout_ref.model.use_liger", "critic.model.use_liger", "trainer.total_training_steps"}
    assert liger["critic.model.use_liger"] is True and liger["actor_rollout_ref.model.use_liger"] is True
    assert _differ(first, liger, "A300", "A300b") == {"trainer.total_training_steps"}
    assert _differ(_flat_config(QUICK / "default_1000"), _flat_config(LIGER / "default_1000"), "C1000", "C1000") == {
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu", "critic.ppo_max_token_len_per_gpu",
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu", "critic.forward_max_token_len_per_gpu"}


def test_the_liger_kernel_check_is_within_the_launchers_tolerance():
    """experiments/fast_path_numerics.py on the H200: liger's kernels on the fast path, against the same
    path without them (32K tokens, checkpointing) and against VERL's stock path (8K tokens): within the
    tolerance reproduce_gpu.sh accepts (max |diff| < 0.25, |mean diff| < 0.01), and faster."""
    ckpt = json.loads((LIGER / "kernel_check/liger_32k_ckpt.json").read_text())
    k8 = json.loads((LIGER / "kernel_check/liger_8k.json").read_text())
    assert ckpt["gradient_checkpointing"] and ckpt["tokens"] > 32000 and ckpt["device"] == "NVIDIA H200"
    base, with_liger = ckpt["variants"]["packed+fused-triton"], ckpt["variants"]["packed+fused-triton+liger"]
    assert with_liger["reference"] == "packed+fused-triton"
    assert with_liger["forward_backward_s"] / base["forward_backward_s"] == pytest.approx(0.684, abs=0.001)
    assert with_liger["forward_s"] / base["forward_s"] == pytest.approx(0.690, abs=0.001)
    for row in (with_liger, k8["variants"]["packed+fused-triton+liger"], k8["variants"]["stock+liger"]):
        assert row["logprob_max_abs_diff"] < 0.25 and abs(row["logprob_mean_diff"]) < 0.01
        assert row["grad_norm"] > 0
    fast = k8["variants"]["packed+fused-triton"]["forward_backward_s"]
    assert k8["variants"]["packed+fused-triton+liger"]["forward_backward_s"] < fast


LIGER_1000 = REPO / "experiments/results/step_speed/h200_2026-12-03_liger_1000"


def test_the_1000_token_runs_are_the_launchers_default_with_liger_and_verls_stock_settings():
    """tuned_1000 = the 2026-12-02 1000-token default (32K/64K budgets) with liger turned on by the
    launcher itself (`--liger auto`, no flag given) and 4 steps; without the earlier run's override that
    kept vLLM's compile cache. stock_1000 = the 300-token stock run at 1000 tokens."""
    tuned, stock = _flat_config(LIGER_1000 / "tuned_1000"), _flat_config(LIGER_1000 / "stock_1000")
    assert _differ(_flat_config(LIGER / "default_1000"), tuned, "C1000", "speed/tuned") == {
        "actor_rollout_ref.model.use_liger", "critic.model.use_liger", "trainer.total_training_steps",
        "ray_kwargs.ray_init.runtime_env.env_vars.VLLM_DISABLE_COMPILE_CACHE"}
    assert tuned["actor_rollout_ref.model.use_liger"] is True and tuned["critic.model.use_liger"] is True
    source = json.loads((LIGER_1000 / "tuned_1000/run_info.json").read_text())["attn_source"]
    assert "liger-kernel RMSNorm/SwiGLU/RoPE" in source and "--liger" not in source  # chosen by `--liger auto`
    assert "=== tuned: gsm8k-rl train  (response length 1000" in (LIGER_1000 / "step_speed_sh.txt").read_text()
    assert _differ(_flat_config(RUNS / "stock_300"), stock, "run_300", "run_1000") == {
        "data.max_response_length", "actor_rollout_ref.rollout.response_length",
        "distillation.teacher_models.teacher_model.inference.response_length"}
    assert json.loads((LIGER_1000 / "stock_1000/run_info.json").read_text())["status"] == "running"  # cut, not finished


# ------------------------------------------------------------------------------------------------------------
# The tables recorded before step_speed.sh fixed its rules: each run's mean over the steps after its first
# (after the first two in the 2026-12-03 pair, whose stock run logged two steps: its last stands in).

PLAIN_1000 = REPO / "experiments/results/ppo_gpu/h200/vllm_1000"


def _step_row(table: Path) -> list[float]:
    row = next(line for line in table.read_text().splitlines() if line.startswith("| **step** |"))
    return [float(cell.strip(" *")) for cell in row.strip("|").split("|")[1:]]


def _old_steady_mean(run: Path, warmup: int) -> float:
    steps = _steps(run)
    kept = [d["timing_s/step"] for s, d in steps.items() if s > warmup] or [steps[max(steps)]["timing_s/step"]]
    return statistics.mean(kept)


@pytest.mark.parametrize(("table", "runs", "warmup"), [
    (RUNS / "step_speed_300.md", [RUNS / "stock_300", RUNS / "tuned_300"], 1),
    (QUICK / "step_speed_300.md", [RUNS / "stock_300", QUICK / "default_300", QUICK / "budgets_300"], 1),
    (QUICK / "step_speed_1000.md", [PLAIN_1000, QUICK / "default_1000"], 1),
    (LIGER / "step_speed_300.md",
     [RUNS / "stock_300", QUICK / "default_300", QUICK / "budgets_300", LIGER / "liger_300"], 1),
    (LIGER / "step_speed_1000.md", [PLAIN_1000, QUICK / "default_1000", LIGER / "default_1000"], 1),
    (LIGER_1000 / "step_speed_1000.md", [LIGER_1000 / "stock_1000", LIGER_1000 / "tuned_1000"], 2),
], ids=["stock_vs_tuned_300", "quick_poll_300", "quick_poll_1000", "liger_300", "liger_1000", "liger_1000_pair"])
def test_the_recorded_tables_step_rows_come_from_the_raw_metrics(table, runs, warmup):
    assert _step_row(table) == pytest.approx([round(_old_steady_mean(r, warmup), 2) for r in runs], abs=0.005)


def test_the_300_token_headline_pooled_over_both_launches_of_its_config():
    """The 8.78 s of the "where it stands" table is the second of two launches of one config (the first:
    liger_300_first, 3 steps); all seven steps after step 1 of the two launches average 9.41 s."""
    pooled = [d["timing_s/step"] for run in (LIGER / "liger_300", LIGER / "liger_300_first")
              for s, d in _steps(run).items() if s > 1]
    assert len(pooled) == 7 and statistics.mean(pooled) == pytest.approx(9.41, abs=0.005)


# ------------------------------------------------------------------------------------------------------------
# experiments/step_speed_summary.py: pooled steady steps, the refusals

STOCK_300 = RUNS / "stock_300"
LIGER_300 = LIGER / "liger_300"
RUN_FILES = ("metrics.jsonl", "resolved_config.yaml", "run_info.json", "environment.txt")


def _copy_run(src: Path, dst: Path, gpu_name: str | None = None) -> Path:
    """A recorded run's files the summary reads, copied; optionally recorded as run on another GPU."""
    dst.mkdir(parents=True)
    for name in RUN_FILES:
        (dst / name).write_bytes((src / name).read_bytes())
    (dst / "gpu_mem_300.csv").write_bytes((src / "gpu_mem_300.csv").read_bytes())
    if gpu_name:
        info = json.loads((dst / "run_info.json").read_text())
        info["hardware"]["gpu_name"] = gpu_name
        (dst / "run_info.json").write_text(json.dumps(info))
    return dst


def test_every_steady_step_is_pooled(load_script, tmp_path):
    """liger_300 (6 steps) against itself: steps 3-6 pooled, each phase's statistics numpy's over exactly
    those steps, the ratio 1 inside its interval, the floor at the H200's datasheet rate, peaks the runs'."""
    import numpy as np

    summary = load_script("experiments/step_speed_summary.py")
    result = summary.main(["--pair", str(LIGER_300), str(LIGER_300), "--out-dir", str(tmp_path)])
    steps = _steps(LIGER_300)
    (pair,) = result["pairs"]
    stock = pair["stock"]
    assert stock["pooled_steps"] == [3, 4, 5, 6] and stock["logged_steps"] == [1, 2, 3, 4, 5, 6]
    for phase in [*summary.PHASES, "step"]:
        raw = np.array([steps[s][f"timing_s/{phase}"] for s in (3, 4, 5, 6)])
        st = stock["phases"][phase]
        assert st["n"] == 4 and st["values"] == raw.tolist()
        assert st["mean"] == pytest.approx(np.mean(raw)) and st["median"] == pytest.approx(np.median(raw))
        assert st["sd"] == pytest.approx(np.std(raw, ddof=1))
        assert (st["min"], st["max"]) == (raw.min(), raw.max())
    other = [steps[s]["timing_s/step"] - sum(steps[s][f"timing_s/{p}"] for p in summary.PHASES) for s in (3, 4, 5, 6)]
    assert stock["phases"]["other"]["mean"] == pytest.approx(np.mean(other))
    r = pair["ratio_stock_over_default"]["step"]
    assert r["ratio"] == pytest.approx(1.0) and r["ci95_bootstrap"][0] < 1 < r["ci95_bootstrap"][1]
    assert r["se_delta"] == pytest.approx(np.sqrt(2 * np.var(raw, ddof=1) / 4) / np.mean(raw))
    # the floor: 12 forward passes (4 forwards, 2 updates of 3 + 1 with checkpointing) at 989.5 TFLOP/s
    tokens = np.mean([steps[s]["perf/total_num_tokens"] for s in (3, 4, 5, 6)])
    assert stock["rate"]["card"] == "H200 SXM" and stock["rate"]["spec_tflops"] == 989.5
    assert stock["rate"]["measured_tflops"] == 798.0
    assert stock["floors"]["update_actor"]["forward_passes"] == 4 and stock["floors"]["gen"]["forward_passes"] == 1
    assert stock["floor_step_s"] == pytest.approx(12 * 2 * summary.PARAMS * tokens / 989.5e12)
    assert stock["floor_step_measured_s"] == pytest.approx(12 * 2 * summary.PARAMS * tokens / 798e12)
    # peak memory: the largest VERL logged over all six steps, and nvidia-smi's peak of the whole GPU
    assert stock["peak_memory_gib"]["actor_reserved"] == max(d["actor/perf/max_memory_reserved_gb"]
                                                             for d in steps.values())
    assert 80 < stock["peak_memory_gib"]["nvidia_smi_used"] < 141
    text = (tmp_path / "step_speed.md").read_text()
    assert f"| **step** | stock | 4 | {np.mean(raw):.2f} | {np.median(raw):.2f} |" in text
    assert "| **step** | 8.78 | 8.78 | 1.00x |" in text and "989.5 TFLOP/s" in text and "798 TFLOP/s" in text
    assert json.loads((tmp_path / "step_speed.json").read_text())["pairs"][0]["stock"]["pooled_steps"] == [3, 4, 5, 6]
    assert (tmp_path / "step_speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_side_with_too_few_steady_steps_is_refused(load_script, tmp_path):
    """The recorded 300-token headline pair: VERL's stock run logged 3 steps (1 after the warm-up), and
    the default's launch carried a vLLM compile-cache setting the stock one did not: both reasons named."""
    summary = load_script("experiments/step_speed_summary.py")
    with pytest.raises(SystemExit) as refused:
        summary.main(["--pair", str(STOCK_300), str(LIGER_300), "--out-dir", str(tmp_path)])
    message = str(refused.value)
    assert f"{STOCK_300}: 1 steady step(s) after the 2 warm-up steps (logged: [1, 2, 3])" in message
    assert message.count("a side needs at least 4") == 1  # liger_300's 4 steady steps pass
    assert "VLLM_DISABLE_COMPILE_CACHE: None vs '0'" in message
    assert "refused" in (tmp_path / "step_speed.md").read_text() and not (tmp_path / "step_speed.png").exists()


def test_the_recorded_1000_token_pair_is_refused(load_script, tmp_path):
    """The 2026-12-03 pair: the stock run logged 2 steps (none after the warm-up), the default 4 (2)."""
    summary = load_script("experiments/step_speed_summary.py")
    stock, default = LIGER_1000 / "stock_1000", LIGER_1000 / "tuned_1000"
    with pytest.raises(SystemExit) as refused:
        summary.main(["--pair", str(stock), str(default), "--out-dir", str(tmp_path)])
    assert f"{stock}: 0 steady step(s) after the 2 warm-up steps (logged: [1, 2])" in str(refused.value)
    assert f"{default}: 2 steady step(s) after the 2 warm-up steps (logged: [1, 2, 3, 4])" in str(refused.value)


def test_no_ratio_across_gpus(load_script, tmp_path):
    summary = load_script("experiments/step_speed_summary.py")
    h100 = _copy_run(LIGER_300, tmp_path / "h100", gpu_name="NVIDIA H100 80GB HBM3")
    with pytest.raises(SystemExit, match="different GPUs: .*NVIDIA H200.*NVIDIA H100 80GB HBM3"):
        summary.main(["--pair", str(LIGER_300), str(h100), "--out-dir", str(tmp_path / "out")])
    assert summary.bf16_rate("NVIDIA H100 80GB HBM3")["spec_tflops"] == 989.5
    assert summary.bf16_rate("NVIDIA H100 PCIe")["spec_tflops"] == 756.5
    assert summary.bf16_rate("NVIDIA A100-SXM4-40GB")["spec_tflops"] == 312.0
    assert summary.bf16_rate("NVIDIA GH200 480GB") is None and summary.bf16_rate("NVIDIA H200 NVL") is None


# ------------------------------------------------------------------------------------------------------------
# experiments/step_speed.sh: the plan (DRY_RUN=1), then the summary of a folder laid out as it lays one out

SCRIPT = REPO / "experiments/step_speed.sh"
PINNED = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "BACKEND": "vllm", "VLLM_USE_FLASHINFER_SAMPLER": "0",
          "VLLM_DISABLE_COMPILE_CACHE": "1", "PYTHONHASHSEED": "0"}


def _dry_run(out: Path, *args: str, **env: str):
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k not in ("WARMUP", "LENGTHS", "CUDA_VISIBLE_DEVICES")}
    environ.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DRY_RUN="1", **env)
    return subprocess.run(["bash", str(SCRIPT), str(out), *args], env=environ, capture_output=True, text=True,
                          timeout=120)


def test_the_script_is_valid_bash():
    import subprocess

    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_the_dry_run_fixes_order_warmup_and_one_environment(tmp_path):
    out = tmp_path / "speed"
    done = _dry_run(out, HF_TOKEN="not-a-real-token", WARMUP="3")
    assert done.returncode == 0, done.stderr
    assert "nothing launched" in done.stdout
    plan = json.loads((out / "plan.json").read_text())
    assert plan["dry_run"] is True
    assert plan["order"] == ["stock_300", "default_300", "stock_1000", "default_1000"]
    assert [(x["side"], x["flags"]) for x in plan["launches"][:2]] == [
        ("stock", "--fast-path off --no-dynamic-bsz --attn sdpa"), ("default", "")]
    assert (plan["warmup_steps"], plan["steps_per_launch"], plan["pooled_steps_per_launch"]) == (2, 6, 4)
    assert "WARMUP=3 was set in the environment and ignored" in plan["warmup_env"]
    envs = {x["name"]: json.loads((out / x["folder"] / "launch_env.json").read_text())["env"]
            for x in plan["launches"]}
    assert envs["stock_300"]["TRAIN_FLAGS"] == "--fast-path off --no-dynamic-bsz --attn sdpa"
    assert envs["default_300"]["TRAIN_FLAGS"] == ""
    strip = [{k: v for k, v in env.items() if k != "TRAIN_FLAGS"} for env in envs.values()]
    assert all(env == strip[0] for env in strip)  # one environment, the flags under test aside
    assert plan["launch_env_diff_outside_flags"] == {}
    assert set(plan["launch_env_diff"]["stock_300 vs default_300"]) == {"TRAIN_FLAGS"}
    assert plan["launch_env_diff"]["stock_300 vs stock_1000"] == {}
    env = strip[0]
    assert {k: env[k] for k in PINNED} == PINNED and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["VLLM_CACHE_ROOT"] == f"{out.resolve()}/cache/vllm"
    assert env["HF_TOKEN"].startswith("redacted, sha256 ") and "not-a-real-token" not in (out / "plan.json").read_text()
    assert "WARMUP" not in env and "DRY_RUN" not in env
    # the workers get the cache and sampler settings too, the same in every launch
    assert "++ray_kwargs.ray_init.runtime_env.env_vars.VLLM_DISABLE_COMPILE_CACHE='1'" in plan[
        "verl_overrides_every_launch"]
    assert not list(out.glob("*/run_*")) and not list(out.glob("*/launch.json"))  # nothing launched
    assert "| 1 | stock_300 |" in (out / "plan.md").read_text()


def test_the_dry_run_refuses_too_few_steps_and_a_used_folder(tmp_path):
    done = _dry_run(tmp_path / "a", "5")
    assert done.returncode != 0 and "at least 6 steps" in done.stderr and not (tmp_path / "a/plan.json").exists()
    done = _dry_run(tmp_path / "b", "8", LENGTHS="300")
    assert done.returncode == 0, done.stderr
    plan = json.loads((tmp_path / "b/plan.json").read_text())
    assert plan["order"] == ["stock_300", "default_300"] and plan["pooled_steps_per_launch"] == 6
    assert _dry_run(tmp_path / "b", LENGTHS="300").returncode == 0  # a dry run's plan may be redone
    (tmp_path / "b/plan.json").write_text(json.dumps({**plan, "dry_run": False}))
    done = _dry_run(tmp_path / "b", LENGTHS="300")
    assert done.returncode != 0 and "already holds a measurement" in done.stderr
    done = _dry_run(tmp_path / "c", CUDA_VISIBLE_DEVICES="0,1")
    assert done.returncode != 0 and "one GPU" in done.stderr


def _measured(tmp_path: Path) -> Path:
    """A dry-run plan for 300 tokens, its two launch folders filled with a recorded 6-step run."""
    out = tmp_path / "speed"
    assert _dry_run(out, LENGTHS="300").returncode == 0
    for launch in ("stock_300", "default_300"):
        _copy_run(LIGER_300, out / launch / "run_300")
    return out


def test_the_summary_of_a_step_speed_folder(load_script, tmp_path):
    summary = load_script("experiments/step_speed_summary.py")
    out = _measured(tmp_path)
    result = summary.main([str(out)])
    (pair,) = result["pairs"]
    assert (pair["stock"]["order"], pair["default"]["order"]) == (1, 2)
    assert pair["stock"]["flags"] == "--fast-path off --no-dynamic-bsz --attn sdpa" and pair["default"]["flags"] == ""
    diff = pair["environment_diff"]
    assert set(diff["launch environment (launch_env.json)"]) == {"TRAIN_FLAGS"}
    assert all(not d for section, d in diff.items() if section != "launch environment (launch_env.json)")
    text = (out / "step_speed.md").read_text()
    assert "order stock_300, default_300" in text
    assert "`gsm8k-rl train --fast-path off --no-dynamic-bsz --attn sdpa` (launch 1" in text
    assert "`gsm8k-rl train` (launch 2" in text
    assert (out / "step_speed.png").exists() and json.loads((out / "step_speed.json").read_text())["plan"]["dry_run"]


def test_the_summary_refuses_an_environment_outside_the_flags(load_script, tmp_path):
    summary = load_script("experiments/step_speed_summary.py")
    out = _measured(tmp_path)
    path = out / "default_300/launch_env.json"
    record = json.loads(path.read_text())
    record["env"]["VLLM_DISABLE_COMPILE_CACHE"] = "0"
    path.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"launch environment \(launch_env.json\) differs outside the settings under "
                                         r"test: VLLM_DISABLE_COMPILE_CACHE: '1' vs '0'"):
        summary.main([str(out)])
    record["env"]["VLLM_DISABLE_COMPILE_CACHE"] = "1"
    record["env"]["TRAIN_FLAGS"] = "--liger off"
    path.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"default_300: launched with TRAIN_FLAGS='--liger off', the plan gives "
                                         r"default ''"):
        summary.main([str(out)])


def test_the_summary_refuses_a_failed_launch(load_script, tmp_path):
    summary = load_script("experiments/step_speed_summary.py")
    out = _measured(tmp_path)
    (out / "default_300/run_300/metrics.jsonl").unlink()
    with pytest.raises(SystemExit, match=r"default_300/run_300: no metrics.jsonl: the launch failed"):
        summary.main([str(out)])


FAKE_PPO_GPU = r"""#!/usr/bin/env bash
# stands in for experiments/ppo_gpu.sh: records what it was given, "runs" by copying a recorded run
out=$1; len=$2; steps=$3; shift 3
if [ "${BUILD_ONLY:-0}" = 1 ]; then mkdir -p "$out"; exit 0; fi
env -0 > "$out/seen_env"
printf '%s\n' "$len $steps" "$@" > "$out/seen_args"
[ -e "$TRITON_CACHE_DIR/compiled" ] && echo warm > "$out/seen_cache" || echo cold > "$out/seen_cache"
mkdir -p "$TRITON_CACHE_DIR" && touch "$TRITON_CACHE_DIR/compiled"
echo "${out##*/}" >> "$out/../order.txt"
mkdir -p "$out/run_$len" && cp "$RECORDED_RUN"/* "$out/run_$len/"
"""


def test_the_launches_in_order_in_one_environment_then_the_summary(tmp_path):
    """The script's real path with experiments/ppo_gpu.sh, stop_ray.sh and nvidia-smi stood in for: the
    launches run in the plan's order, each with the environment recorded for it and the same VERL
    overrides, each from empty caches; then the summary."""
    import os
    import subprocess
    import sys

    repo = tmp_path / "repo"
    (repo / "experiments").mkdir(parents=True)
    for name in ("step_speed.sh", "step_speed_summary.py"):
        (repo / "experiments" / name).write_bytes((REPO / "experiments" / name).read_bytes())
    (repo / "experiments/ppo_gpu.sh").write_text(FAKE_PPO_GPU)
    (repo / "experiments/stop_ray.sh").write_text("#!/usr/bin/env bash\ntrue\n")
    recorded = tmp_path / "recorded"
    _copy_run(LIGER_300, recorded)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = "#!/usr/bin/env bash\necho '0, NVIDIA H200, GPU-0000, 143771 MiB, 580.159.04'\n"
    (bin_dir / "nvidia-smi").write_text(smi)
    (bin_dir / "nvidia-smi").chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k not in ("WARMUP", "DRY_RUN", "CUDA_VISIBLE_DEVICES")}
    environ.update(PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]),
                   LENGTHS="300", RECORDED_RUN=str(recorded), TRAIN_FLAGS="--should-not-leak")
    out = tmp_path / "speed"
    done = subprocess.run(["bash", str(repo / "experiments/step_speed.sh"), str(out), "6"], env=environ,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "order.txt").read_text().split() == ["stock_300", "default_300"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["dry_run"] is False and plan["gpu"]["uuid"] == "GPU-0000"
    for launch in plan["launches"]:
        folder = out / launch["folder"]
        seen = dict(item.split("=", 1) for item in (folder / "seen_env").read_text().split("\0") if item)
        recorded_env = json.loads((folder / "launch_env.json").read_text())["env"]
        bash_own = {"PWD", "SHLVL", "_"}  # what the launched shell sets itself
        assert {k: v for k, v in seen.items() if k not in bash_own} == recorded_env  # as the plan recorded it
        assert not bash_own & set(recorded_env)
        assert seen["TRAIN_FLAGS"] == launch["flags"] and "BUILD_ONLY" not in seen
        args = (folder / "seen_args").read_text().splitlines()
        assert args[0] == "300 6" and args[1:] == plan["verl_overrides_every_launch"]
        assert (folder / "seen_cache").read_text().strip() == "cold"
        assert json.loads((folder / "launch.json").read_text())["exit_code"] == 0
        assert "GPU-0000" in (folder / "gpu.csv").read_text()
    assert json.loads((out / "step_speed.json").read_text())["pairs"][0]["ratio_stock_over_default"]["step"][
        "ratio"] == pytest.approx(1.0)
    assert "| **step** | 8.78 | 8.78 | 1.00x |" in done.stdout
    done = subprocess.run(["bash", str(repo / "experiments/step_speed.sh"), str(out), "6"], env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "already holds a measurement" in done.stderr


QWEN_PPO50 = REPO / "experiments/results/real_model/h100_2026-12-07_qwen2.5-coder-1.5b_ppo50"


def test_where_one_runs_step_goes(load_script, tmp_path):
    """--phases on the 50-step Qwen2.5-Coder-1.5B run (one H100 80 GB, the launcher's default, real answers):
    steps 3-49 pooled without the two with a validation pass (25; 50 also saved a checkpoint), each phase
    numpy's statistics over exactly those steps, the floor at the H100 SXM's datasheet rate for the
    model's own 1,777,088,000 parameters; the committed phases.md is what the command writes."""
    import numpy as np

    summary = load_script("experiments/step_speed_summary.py")
    x = summary.main(["--phases", str(QWEN_PPO50), "--params", "1777088000", "--out-dir", str(tmp_path)])
    steps = _steps(QWEN_PPO50)
    pooled = [s for s in range(3, 50) if s != 25]
    assert x["pooled_steps"] == pooled and x["left_out_steps"] == [25, 50]
    for phase in [*summary.PHASES, "step"]:
        raw = np.array([steps[s][f"timing_s/{phase}"] for s in pooled])
        assert x["phases"][phase]["mean"] == pytest.approx(raw.mean())
        assert x["phases"][phase]["sd"] == pytest.approx(raw.std(ddof=1))
    tokens = np.mean([steps[s]["perf/total_num_tokens"] for s in pooled])
    assert x["rate"]["card"] == "H100 SXM" and x["floors"]["update_actor"]["forward_passes"] == 4
    assert x["floor_step_s"] == pytest.approx(12 * 2 * 1777088000 * tokens / 989.5e12)
    assert x["phases"]["step"]["mean"] / x["floor_step_s"] == pytest.approx(4.7, abs=0.05)
    recorded = REPO / "experiments/results/step_speed/h100_2026-12-07_qwen2.5-coder-1.5b_phases/phases.md"
    written = (tmp_path / "phases.md").read_text()
    assert written.replace(str(QWEN_PPO50), "RUN") == recorded.read_text().replace(
        "experiments/results/real_model/h100_2026-12-07_qwen2.5-coder-1.5b_ppo50", "RUN")
    assert "| update_actor | 46 | 3.35 |" in written and "| **step** | 46 | 10.92 |" in written
