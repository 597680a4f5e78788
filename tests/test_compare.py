"""`gsm8k-rl compare` on recorded runs; every expected number is recomputed here from the files.

Runs compared:
- gpu: experiments/results/real_model/h200_2026-12-02_ppo50, a REAL 50-step PPO run (SmolLM2-135M,
  1 x H200) with its base and trained evals on all 1319 GSM8K test problems;
- twin: tests/data/report_cpu_run (a REAL tiny VERL run on CPU) given, as both its evals, the gpu
  run's base eval. It stands for a second run evaluated on the same problems with the same prompt
  and generation settings whose trained model answers like the untrained one, so gpu vs twin is a
  real trained-vs-trained pairing (its counts are the gpu run's base-vs-trained ones, seen from the other side);
- syn: the SYNTHETIC run and evals of tests/data/report_synthetic_* (other problems: must not pair with gpu);
- cpu: tests/data/report_cpu_run as it is, without evals (everything eval-based is MISSING).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.stats import binomtest

from gsm8k_rl.cli import main
from gsm8k_rl.report import MISSING

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "experiments/results/real_model/h200_2026-12-02_ppo50"
DATA = Path(__file__).parent / "data"
CPU = DATA / "report_cpu_run"


def _samples(folder: Path) -> dict[int, dict]:
    return {s["index"]: s for s in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _row(md: str, label: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split(" | ")][1:]


def _copy_run(src: Path, dst: Path, base: Path | None, trained: Path | None) -> Path:
    dst.mkdir(parents=True)
    for f in ("metrics.jsonl", "resolved_config.yaml", "run_info.json"):
        shutil.copy(src / f, dst / f)
    for name, ev in (("base", base), ("trained", trained)):
        if ev is not None:
            shutil.copytree(ev, dst / "eval" / name, ignore=shutil.ignore_patterns("batches.jsonl"))
    return dst


def _expected_run(folder: Path) -> dict:
    """Budget and step time straight from metrics.jsonl and resolved_config.yaml."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    cfg = yaml.safe_load((folder / "resolved_config.yaml").read_text())
    def is_val(k: str) -> bool:
        return k.startswith(("val-core/", "val-aux/")) or k == "timing_s/testing"

    steps = max(r["step"] for r in rows if not all(map(is_val, r["data"])))
    times = [r["data"]["timing_s/step"] for r in rows
             if "timing_s/step" in r["data"] and not any(map(is_val, r["data"]))]
    prompts, n = cfg["data"]["train_batch_size"], cfg["actor_rollout_ref"]["rollout"]["n"]
    return {"steps": steps, "prompts": prompts, "n": n, "total": steps * prompts * n,
            "step_time": float(np.mean(times)),
            "n_times": len(times)}


def _acc_cell(samples: dict[int, dict]) -> str:
    k, n = sum(s["score"] >= 0.5 for s in samples.values()), len(samples)
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return f"**{_pct(k / n)}** [{_pct(ci.low)}, {_pct(ci.high)}] ({k}/{n}"


def _discordant(a: dict[int, dict], b: dict[int, dict]) -> tuple[int, int, float]:
    only_a = sum(a[i]["score"] >= 0.5 > b[i]["score"] for i in a)
    only_b = sum(b[i]["score"] >= 0.5 > a[i]["score"] for i in a)
    return only_a, only_b, binomtest(only_a, only_a + only_b, 0.5).pvalue


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    twin = _copy_run(CPU, root / "twin", GPU / "eval/base", GPU / "eval/base")
    syn = _copy_run(DATA / "report_synthetic_run", root / "syn", DATA / "report_synthetic_eval_base",
                    DATA / "report_synthetic_eval_trained")
    out = root / "out"
    assert main(["compare", str(GPU), str(twin), str(syn), str(CPU), "--name", "gpu", "--name", "twin",
                 "--name", "syn", "--name", "cpu", "--out", str(out)]) == 0
    return out, (out / "compare.md").read_text(), json.loads((out / "compare.json").read_text())


@pytest.mark.recorded
def test_per_run_numbers(compared):
    _, md, js = compared
    assert "|  | gpu | twin | syn | cpu |" in md
    base, trained = _samples(GPU / "eval/base"), _samples(GPU / "eval/trained")
    syn_b, syn_t = _samples(DATA / "report_synthetic_eval_base"), _samples(DATA / "report_synthetic_eval_trained")

    acc_base = _row(md, "base greedy accuracy [95% Wilson]")
    acc_trained = _row(md, "trained greedy accuracy [95% Wilson]")
    assert acc_base[0].startswith(_acc_cell(base)) and acc_trained[0].startswith(_acc_cell(trained))
    assert acc_base[1].startswith(_acc_cell(base)) and acc_trained[1].startswith(_acc_cell(base))
    assert acc_base[2].startswith(_acc_cell(syn_b)) and acc_trained[2].startswith(_acc_cell(syn_t))
    assert acc_base[3].startswith(MISSING) and "eval/base" in acc_base[3]

    vs_base = _row(md, "trained vs own base (fixed / broken, exact McNemar p)")
    broken, fixed, p = _discordant(base, trained)
    assert vs_base[0] == f"{fixed} fixed / {broken} broken of {len(base)}, p = {p:.3g}"
    assert vs_base[1] == f"0 fixed / 0 broken of {len(base)}, p = 1"  # the twin's trained eval is its base eval
    broken, fixed, p = _discordant(syn_b, syn_t)
    assert vs_base[2].startswith(f"{fixed} fixed / {broken} broken of {len(syn_b)}, p = {p:.3g}")
    assert vs_base[3].startswith("not paired: needs both the base and the trained eval")

    lengths = np.array([s["n_output_tokens"] for s in trained.values()])
    assert _row(md, "trained output tokens mean / p50 / p90")[0] == \
        f"{lengths.mean():.0f} / {np.percentile(lengths, 50):.0f} / {np.percentile(lengths, 90):.0f}"
    trunc = np.mean([s["finish_reason"] == "length" for s in trained.values()])
    assert _row(md, "trained truncated (hit max new tokens)")[0] == _pct(trunc)
    assert _row(md, "trained truncated (hit max new tokens)")[3] == MISSING

    budgets, times = _row(md, "answers sampled in training (steps x prompts x n)"), \
        _row(md, "mean step time (timing_s/step, steps without validation)")
    for i, folder in enumerate((GPU, CPU, DATA / "report_synthetic_run", CPU)):
        e = _expected_run(folder)
        assert budgets[i] == f"{e['total']:,} ({e['steps']} x {e['prompts']} x {e['n']})"
        assert times[i] == f"{e['step_time']:.1f} s over {e['n_times']} steps"
        r = js["runs"][i]
        assert (r["steps"], r["sampled_answers"], r["step_time_steps"]) == (e["steps"], e["total"], e["n_times"])
        assert r["mean_step_time_s"] == pytest.approx(e["step_time"])
    gpu_cfg = yaml.safe_load((GPU / "resolved_config.yaml").read_text())
    assert _row(md, "algorithm (adv. estimator)")[0] == gpu_cfg["algorithm"]["adv_estimator"]
    kl = gpu_cfg["algorithm"]["kl_ctrl"]["kl_coef"]
    assert _row(md, "KL to reference")[0] == f"in reward {kl} (fixed); no KL loss"
    assert _row(md, "actor lr")[0] == str(gpu_cfg["actor_rollout_ref"]["actor"]["optim"]["lr"])

    g = js["runs"][0]
    assert g["trained"]["correct"] == sum(s["score"] >= 0.5 for s in trained.values())
    assert js["runs"][3]["base"] is None and "no metrics.json" in js["runs"][3]["base_missing"]
    # folders under the folder holding --out are named relative to it
    assert _row(md, "run folder")[1:3] == ["twin", "syn"] and js["runs"][1]["folder"] == "twin"


@pytest.mark.recorded
def test_pairs(compared):
    _, md, js = compared
    pairs = {(p["a"], p["b"]): p for p in js["pairs"]}
    assert len(pairs) == 6
    # gpu vs twin: the gpu run's trained eval against (a copy of) its base eval, problem by problem
    only_a, only_b, p = _discordant(_samples(GPU / "eval/trained"), _samples(GPU / "eval/base"))
    got = pairs[("gpu", "twin")]["paired"]
    assert (got["only_a_right"], got["only_b_right"], got["n"]) == (only_a, only_b, 1319)
    assert got["p_value"] == pytest.approx(p)
    assert "| gpu | twin | 1319 | " in md and f" | {only_a} | {only_b} | {p:.3g} | differ: 6,400 vs 24 |" in md

    # different problems are refused with the reason, naming both data fingerprints
    fp = [json.loads((d / "eval_settings.json").read_text())["settings"]["data_fingerprint"]
          for d in (GPU / "eval/trained", DATA / "report_synthetic_eval_trained")]
    assert pairs[("gpu", "syn")]["paired"] is None
    assert pairs[("gpu", "syn")]["reason"].startswith(f"the two evals used different data ({fp[0]} vs {fp[1]})")
    assert f"**gpu vs syn, not paired:** the two evals used different data ({fp[0]} vs {fp[1]})" in md
    assert pairs[("syn", "cpu")]["reason"].startswith("cpu has no trained eval (no metrics.json in")
    assert "**twin vs cpu, not paired:** cpu has no trained eval" in md


@pytest.mark.recorded
def test_plot_written(compared):
    out, md, _ = compared
    assert "![runs compared](compare.png)" in md
    with Image.open(out / "compare.png") as im:
        im.verify()
    with Image.open(out / "compare.png") as im:
        assert im.format == "PNG" and im.width >= 1000 and im.height >= 700
        assert len(im.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 50  # curves, not an empty canvas


def test_duplicate_and_bad_names_refused(tmp_path, capsys):
    a = _copy_run(CPU, tmp_path / "a" / "run", None, None)
    b = _copy_run(CPU, tmp_path / "b" / "run", None, None)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    assert "two runs are named 'run' (folder name" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--name", "x", "--name", "x", "--out", str(tmp_path / "out")]) == 2
    assert "two runs are named 'x' (--name" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--name", "x", "--out", str(tmp_path / "out")]) == 2
    assert "1 --name for 2 run folders" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert f"run folder {tmp_path / 'nope'} (run 'nope') does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written for a refused comparison


@pytest.mark.recorded
def test_compare_costs_per_point_and_phases_on_the_real_runs(tmp_path):
    """What each run cost and what it gained, from the committed GPU runs: the Qwen2.5-Coder PPO run
    gained +4.3 points for 240 GPU-seconds of steps (16 steps on one H100); the SmolLM2 run gained
    nothing, and says so instead of dividing by it."""
    qwen = REPO / "experiments/results/real_model/h100_2026-12-07_qwen2.5-coder-1.5b_ppo16"
    assert main(["compare", str(GPU), str(qwen), "--out", str(tmp_path / "c")]) == 0
    runs = json.loads((tmp_path / "c" / "compare.json").read_text())["runs"]
    smol, q = runs
    assert q["cost"]["points_gained"] == pytest.approx(100 * (837 - 780) / 1319)
    assert q["cost"]["gpu_seconds"] == pytest.approx(240.0, abs=1.0)
    assert q["cost"]["gpu_seconds_per_point"] == pytest.approx(q["cost"]["gpu_seconds"] / q["cost"]["points_gained"])
    assert smol["cost"]["points_gained"] < 0 and smol["cost"]["gpu_seconds_per_point"] is None
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "| GPU-seconds per point gained | no gain | 56 |" in md
    assert "gen 2.32 / old_log_prob 0.76 / ref 1.04" in md


# -- sampled evals: pass@k across runs and "solved by any of K", paired --------------------------------

QWEN3 = REPO / "experiments/results/real_model/h100_2026-12-07_qwen2.5-coder-1.5b_ppo50_lr2e-6"


def _half_eval(src: Path, dst: Path, part: slice) -> dict[int, bool]:
    """A sampled eval made of some of the REAL answers of the committed pass@16 eval (the first 8 or the
    last 8 of each problem's 16), rescored per problem and summarized by the eval's own code, as if
    `gsm8k-rl eval --samples 8` had drawn them. Returns, per problem, whether any of them is right."""
    from gsm8k_rl.evaluation.metrics import sample_summary, summarize

    rows = []
    for line in (src / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        drawn = r["samples"][part]
        rows.append({**{k: r[k] for k in ("index", "question", "gold", "n_prompt_tokens")}, "samples": drawn,
                     **sample_summary(drawn)})
    dst.mkdir(parents=True)
    (dst / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = json.loads((src / "eval_settings.json").read_text())
    settings["settings"] |= {"samples": 8, "seed": part.start or 0}
    settings["settings_hash"] = f"half-{part.start or 0}"
    (dst / "eval_settings.json").write_text(json.dumps(settings))
    metrics = json.loads((src / "metrics.json").read_text()) | summarize(rows)
    metrics["settings_hash"] = settings["settings_hash"]
    (dst / "metrics.json").write_text(json.dumps(metrics))
    return {r["index"]: any(a["score"] >= 0.5 for a in r["samples"]) for r in rows}


@pytest.mark.recorded
def test_solved_by_any_pairs_sampled_evals_problem_by_problem(tmp_path):
    """compare_solved pairs two sampled evals on "any of the K answers is right" with an exact McNemar test,
    on real answers: the two halves of the Qwen run's 16 samples per problem; evals with different K
    are refused, naming both K."""
    from gsm8k_rl.report.load import compare_solved, load_eval

    src = QWEN3 / "eval" / "trained_pass_at_16"
    a = _half_eval(src, tmp_path / "first8", slice(0, 8))
    b = _half_eval(src, tmp_path / "last8", slice(8, 16))
    p, reason = compare_solved(load_eval("first8", tmp_path / "first8"), load_eval("last8", tmp_path / "last8"))
    assert reason is None and p.n == 1319
    only_a, only_b = sum(a[i] and not b[i] for i in a), sum(b[i] and not a[i] for i in a)
    assert (p.broken, p.fixed, p.both_right) == (only_a, only_b, sum(a[i] and b[i] for i in a))
    assert p.p_value == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert p.trained_accuracy == pytest.approx(sum(b.values()) / 1319)
    assert 0 < only_a + only_b < 200  # two draws of one model: some problems move, most do not

    p, reason = compare_solved(load_eval("first8", tmp_path / "first8"), load_eval("all16", src))
    assert p is None and "different numbers of answers per problem (8 vs 16)" in reason
    p, reason = compare_solved(load_eval("greedy", QWEN3 / "eval" / "trained"), load_eval("all16", src))
    assert p is None and "several answers" in reason


@pytest.mark.recorded
def test_compare_plots_pass_at_k_of_every_run_and_pairs_the_sampled_evals(tmp_path):
    """`gsm8k-rl compare` over two runs holding sampled evals: one pass@k plot with every sampled eval, an
    eval copied into both runs shown once, the evals with the same K paired per problem, the others named
    with the reason they are not."""
    from PIL import Image

    runs = []
    for name, part in (("r1", slice(0, 8)), ("r2", slice(8, 16))):
        run = tmp_path / name
        shutil.copytree(QWEN3, run, ignore=shutil.ignore_patterns("val_generations", "logs", "tensorboard", "report"))
        _half_eval(QWEN3 / "eval" / "trained_pass_at_16", run / "eval" / "half", part)
        runs.append(str(run))
    assert main(["compare", *runs, "--out", str(tmp_path / "c")]) == 0
    md = (tmp_path / "c" / "compare.md").read_text()
    section = md.split("## pass@k: what each model can solve at all", 1)[1].split("\n## ", 1)[0]
    assert "![pass@k](pass_at_k.png)" in section
    assert Image.open(tmp_path / "c" / "pass_at_k.png").size[0] > 400
    assert "r1: trained_pass_at_16" in section and "r2: trained_pass_at_16" not in section  # the same eval, once
    assert "| r1: half | r2: half | 8 | 1319 |" in section
    assert "r1: half vs r1: trained_pass_at_16, not paired:** the two evals sampled different numbers" in section
    pairs = json.loads((tmp_path / "c" / "compare.json").read_text())["solved_by_any_pairs"]
    halves = next(p for p in pairs if (p["a"], p["b"]) == ("r1: half", "r2: half"))["paired"]
    row = next(line for line in section.splitlines() if line.startswith("| r1: half | r2: half |"))
    assert row.split(" | ")[6:8] == [str(halves["only_a_right"]), str(halves["only_b_right"])]
    assert halves["n"] == 1319 and len(pairs) == 3  # r1 16, r1 half, r2 half: three pairs, one of them paired
