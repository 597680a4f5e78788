"""benchmarks/step_speed_summary.py on the recorded H200 runs (stock vs tuned, 300 tokens):
the table it prints is what the docs quote, recomputed from the raw metrics."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

RUNS = REPO / "benchmarks/results/step_speed/h200_2026-12-02_stock_vs_tuned"


def _steps(run: str) -> dict[int, dict]:
    return {r["step"]: r["data"] for r in map(json.loads, (RUNS / run / "metrics.jsonl").read_text().splitlines())}


def test_table_and_plot_from_the_recorded_runs(load_script, tmp_path):
    summary = load_script("benchmarks/step_speed_summary.py")
    out, js, png = tmp_path / "t.md", tmp_path / "t.json", tmp_path / "t.png"
    text = summary.main(["--response-length", "300", "--run", f"stock={RUNS / 'stock_300'}",
                         "--run", f"tuned={RUNS / 'tuned_300'}", "--out", str(out), "--json", str(js), "--png", str(png)])
    runs = json.loads(js.read_text())
    for name in ("stock", "tuned"):
        steps = _steps(f"{name}_300")
        assert sorted(steps) == [1, 2, 3]
        # steady state: steps 2 and 3 (step 1 carries the warm-up)
        assert runs[name]["mean"]["timing_s/step"] == pytest.approx(
            statistics.mean(steps[s]["timing_s/step"] for s in (2, 3)))
        assert runs[name]["checkpointing"] is True  # the launcher's default keeps it on in both
    ratio = runs["stock"]["mean"]["timing_s/step"] / runs["tuned"]["mean"]["timing_s/step"]
    assert f"{ratio:.2f}x" in text and "| **step** | **32.52** | **15.75** |" in text
    assert out.read_text() == text == (RUNS / "step_speed_300.md").read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
