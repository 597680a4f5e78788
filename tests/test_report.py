"""`gsm8k-rl report` on recorded inputs.

tests/data/report_cpu_run is a REAL (tiny) VERL 0.9.1 main_ppo run on CPU, recorded by
tests/data/report_cpu_run_make.py (random toy model: its accuracy is 0, its metric names and file
format are VERL's own). The run and eval folders in tests/data/report_synthetic_* are SYNTHETIC (written by
tests/data/report_synthetic_make.py: made-up curves, template outputs scored by the real scorer).
Every expected number below is recomputed here from those files (scipy for the statistics),
never copied from the report. One test also feeds the report real `gsm8k-rl eval` folders.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from scipy.stats import binomtest

from gsm8k_rl.cli import main
from gsm8k_rl.report import MISSING, TRAINING_PANELS

DATA = Path(__file__).parent / "data"
SYN_RUN = DATA / "report_synthetic_run"
SYN_BASE = DATA / "report_synthetic_eval_base"
SYN_TRAINED = DATA / "report_synthetic_eval_trained"
PNGS = ("accuracy.png", "validation.png", "training.png")


def _samples(folder: Path) -> dict[int, dict]:
    return {s["index"]: s for s in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}


def _check_pngs(out: Path) -> None:
    for name in PNGS:
        with Image.open(out / name) as im:
            im.verify()  # a complete, valid PNG
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width >= 600 and im.height >= 400
            # not blank: a real plot has many distinct colours
            assert len(im.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 20


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_report_synthetic_run_and_evals(tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--run", str(SYN_RUN), "--base-eval", str(SYN_BASE), "--trained-eval", str(SYN_TRAINED),
                 "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    _check_pngs(out)

    base, trained = _samples(SYN_BASE), _samples(SYN_TRAINED)
    n = len(base)
    kb = sum(s["score"] for s in base.values())
    kt = sum(s["score"] for s in trained.values())
    fixed = sum(1 for i in base if base[i]["score"] == 0 and trained[i]["score"] == 1)
    broken = sum(1 for i in base if base[i]["score"] == 1 and trained[i]["score"] == 0)
    assert fixed > 0 and broken > 0  # the fixture exercises both example lists
    p = binomtest(broken, fixed + broken, 0.5).pvalue
    assert f"{_pct(kb / n)}** ({kb:.0f}/{n})" in md and f"{_pct(kt / n)}** ({kt:.0f}/{n})" in md
    for k in (kb, kt):
        ci = binomtest(int(k), n).proportion_ci(method="wilson")
        assert f"[{_pct(ci.low)}, {_pct(ci.high)}]" in md
    assert f"| fixed (base wrong, PPO right) | {fixed} |" in md
    assert f"| broken (base right, PPO wrong) | {broken} |" in md
    assert f"| exact McNemar p (two-sided, on fixed vs broken) | {p:.3g} |" in md
    assert f"{100 * (kt - kb) / n:+.1f} points" in md
    assert f"**Headline:** base {_pct(kb / n)} -> PPO {_pct(kt / n)} greedy accuracy on gsm8k/test (n={n})" in md
    # examples: the first fixed and the first broken problem are shown with their question
    first_fixed = min(i for i in base if base[i]["score"] == 0 and trained[i]["score"] == 1)
    first_broken = min(i for i in base if base[i]["score"] == 1 and trained[i]["score"] == 0)
    for i in (first_fixed, first_broken):
        assert f"**Problem {i}** (gold answer {base[i]['gold']}): {base[i]['question']}" in md

    # what was run, from run_info.json / resolved_config.yaml / metrics.jsonl
    info = json.loads((SYN_RUN / "run_info.json").read_text())
    lines = [json.loads(x) for x in (SYN_RUN / "metrics.jsonl").read_text().splitlines()]
    last_step = max(x["step"] for x in lines)
    assert f"| steps completed (last logged step) | {last_step} |" in md
    assert f"| model | {info['model']} |" in md and f"| hardware | {info['hardware']} |" in md
    assert "| wall time (run_info) | 1h 40m 00s |" in md  # end - start in run_info.json
    clip = [x["data"]["response_length/clip_ratio"] for x in lines if "response_length/clip_ratio" in x["data"]]
    assert (f"| truncated in training (response_length/clip_ratio) | {_pct(sum(clip) / len(clip))} mean over "
            f"{len(clip)} steps, {_pct(clip[-1])} at step {last_step} (max {_pct(max(clip))}) |") in md
    assert "| reward of a truncated response (reward.reward_kwargs.truncated_reward) | its score, like any other" in md
    val = [(x["step"], x["data"]["val-core/openai/gsm8k/acc/mean@1"]) for x in lines
           if "val-core/openai/gsm8k/acc/mean@1" in x["data"]]
    assert f"| {len(val)} | {val[0][1]:.4g} (step {val[0][0]}) | {val[-1][1]:.4g} (step {val[-1][0]}) |" in md
    # every training metric the fixture holds is tabulated; the one it lacks is marked missing
    present = {k for x in lines for k in x["data"]}
    for _, _, keys, sec in TRAINING_PANELS:
        for key in [k for k, _ in keys] + ([sec[0]] if sec else []):
            assert (f"| `{key}` | {MISSING} |" in md) == (key not in present)
    # extractors side by side, headline first
    m = json.loads((SYN_BASE / "metrics.json").read_text())
    assert "| eval | ours | " in md
    assert set(m["extractors"]) >= {"ours", "verl_strict", "lm_eval_flexible", "math_verify"}
    summary = json.loads((out / "report.json").read_text())
    assert summary["paired"]["fixed"] == fixed and summary["paired"]["p_value"] == pytest.approx(p)


def test_report_real_cpu_verl_run(tmp_path):
    run = DATA / "report_cpu_run"
    out = tmp_path / "report"
    assert main(["report", "--run", str(run), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    _check_pngs(out)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # VERL 0.9.1 logs validation accuracy of a float compute_score as val-core/<source>/acc/mean@1
    val_key = "val-core/openai/gsm8k/acc/mean@1"
    val = [(x["step"], x["data"][val_key]) for x in lines if val_key in x["data"]]
    assert len(val) >= 2 and f"| validation points | {len(val)} |" in md
    assert f"| `{val_key}` | {len(val)} | {val[0][1]:.4g} (step {val[0][0]}) |" in md
    assert f"| steps completed (last logged step) | {max(x['step'] for x in lines)} |" in md
    step_times = [x["data"]["timing_s/step"] for x in lines if "timing_s/step" in x["data"]]
    assert f"| `timing_s/step` | {len(step_times)} |" in md
    info = json.loads((run / "run_info.json").read_text())
    assert f"| hardware | {info['hardware']} |" in md
    # every panel metric is one VERL really logs: none of the eight panels is empty, no right axis is
    # a name VERL does not log (critic/vf_explained_var included)
    for _, _, keys, sec in TRAINING_PANELS:
        assert any(any(k in x["data"] for x in lines) for k, _ in keys)
        assert sec is None or any(sec[0] in x["data"] for x in lines), sec
    assert any(sec and sec[0] == "critic/vf_explained_var" for *_, sec in TRAINING_PANELS)
    # the real run used VERL's naive reward manager: truncated answers were paid like any other
    assert ("| reward of a truncated response (reward.reward_kwargs.truncated_reward) | its score, like any other: "
            "correctness only (reward manager register:naive; the spec) |") in md


def test_report_says_missing_for_what_was_not_given(tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(SYN_BASE), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    _check_pngs(out)  # placeholder panels are still valid, readable images
    assert f"Training run: {MISSING} (no --run given)" in md
    assert f"| trained | {MISSING} |" in md
    assert f"Paired comparison: {MISSING}" in md
    assert "Headline" not in md


def test_report_with_nothing_to_report_is_an_error(tmp_path, capsys):
    """Issue 29: a mistyped or empty --run wrote an all-"missing" report and exited 0 (a typo read as
    success). A folder given must exist; inputs that hold nothing to report are an error; nothing is
    written either way."""
    out = tmp_path / "report"
    assert main(["report", "--out", str(out)]) == 2
    assert "nothing to report: give --run" in capsys.readouterr().err
    assert main(["report", "--run", str(tmp_path / "runs" / "ppp"), "--base-eval", str(SYN_BASE), "--out",
                 str(out)]) == 2
    assert capsys.readouterr().err.strip() == ("gsm8k-rl report: error: no such folder: --run "
                                               f"{tmp_path / 'runs' / 'ppp'} (leave out what has not been run yet)")
    (tmp_path / "empty").mkdir()
    assert main(["report", "--run", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "nothing to report: no training metrics" in capsys.readouterr().err
    assert not out.exists()


def test_report_partial_inputs(tmp_path):
    """A run that logged only some metrics and a trained eval that was interrupted."""
    run = tmp_path / "run"
    run.mkdir()
    kept = {"critic/score/mean", "timing_s/step"}
    with (run / "metrics.jsonl").open("w") as f:
        for line in (SYN_RUN / "metrics.jsonl").read_text().splitlines():
            row = json.loads(line)
            row["data"] = {k: v for k, v in row["data"].items() if k in kept}
            f.write(json.dumps(row) + "\n")
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "samples.jsonl").write_text("".join((SYN_TRAINED / "samples.jsonl").read_text().splitlines(True)[:5]))
    out = tmp_path / "report"
    assert main(["report", "--run", str(run), "--base-eval", str(SYN_BASE), "--trained-eval", str(trained),
                 "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    _check_pngs(out)
    assert "(interrupted: 5 samples written)" in md
    assert f"| `critic/vf_loss` | {MISSING} |" in md and f"| `critic/score/mean` | {MISSING} |" not in md
    assert f"| model | {MISSING} |" in md  # no run_info.json, no resolved_config.yaml
    assert f"Paired comparison: {MISSING} (needs both the base and the trained eval)" in md


def test_report_refuses_to_pair_different_problems(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(SYN_TRAINED, other)
    settings = json.loads((other / "eval_settings.json").read_text())
    settings["settings"]["data_fingerprint"] = "another-dataset"
    (other / "eval_settings.json").write_text(json.dumps(settings))
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(SYN_BASE), "--trained-eval", str(other), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "a paired test needs the same problems" in md and "| fixed (base wrong" not in md


def test_report_shows_the_truncation_option(tmp_path):
    """A run with the truncation reward manager (configs/ppo_truncated.yaml): its value and its count."""
    run = tmp_path / "run"
    shutil.copytree(SYN_RUN, run)
    cfg = (run / "resolved_config.yaml").read_text().replace(
        "reward: {reward_manager: {source: register, name: naive}}",
        "reward: {reward_manager: {source: importlib, name: TruncationRewardManager, "
        "module: {path: 'pkg://gsm8k_rl.verl_ext.reward_manager'}}, reward_kwargs: {truncated_reward: -0.5}}")
    assert "TruncationRewardManager" in cfg
    (run / "resolved_config.yaml").write_text(cfg)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for row in lines:  # what VERL logs from the manager's `truncated` extra info at each validation
        if "val-core/openai/gsm8k/acc/mean@1" in row["data"]:
            row["data"]["val-aux/openai/gsm8k/truncated/mean@1"] = 0.03 if row["step"] < 60 else 0.01
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "report"
    assert main(["report", "--run", str(run), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert ("| reward of a truncated response (reward.reward_kwargs.truncated_reward) | "
            "-0.5 (TruncationRewardManager) |" in md)
    assert "| truncated in validation (`val-aux/openai/gsm8k/truncated/mean@1`), last | 1.0% at step 60 |" in md


def test_report_names_the_truncation_manager_as_it_is_defined():
    from gsm8k_rl.report import TRUNCATION_MANAGER
    from gsm8k_rl.verl_ext.reward_manager import CLASS_NAME

    assert TRUNCATION_MANAGER == CLASS_NAME


def _edited_copy(src: Path, dst: Path, settings: dict | None = None, metrics: dict | None = None) -> Path:
    shutil.copytree(src, dst)
    for name, changes in (("eval_settings.json", settings), ("metrics.json", metrics)):
        if changes:
            doc = json.loads((dst / name).read_text())
            target = doc["settings"] if name == "eval_settings.json" else doc
            for dotted, value in changes.items():
                *parents, leaf = dotted.split(".")
                d = target
                for part in parents:
                    d = d[part]
                if value is None:
                    d.pop(leaf)
                else:
                    d[leaf] = value
            (dst / name).write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize("label,settings,metrics", [
    ("backend", None, {"backend": "transformers"}),
    ("dtype", None, {"decoding.dtype": "float32"}),
    ("rendered prompts (chat template + tokenizer)", {"prompts_fingerprint": "another-template"}, None),
    ("max new tokens", {"max_new_tokens": 1024}, None),
    ("thinking mode", {"thinking": True}, None),
])
def test_report_refuses_to_pair_evals_generated_differently(tmp_path, label, settings, metrics):
    other = _edited_copy(SYN_TRAINED, tmp_path / "other", settings, metrics)
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(SYN_BASE), "--trained-eval", str(other), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "**No headline: the base and trained evals are not paired.** NOT COMPARABLE" in md
    assert "**Paired comparison not made:** NOT COMPARABLE" in md and f"({label}: base " in md
    assert "Headline:" not in md and "| fixed (base wrong" not in md
    assert json.loads((out / "report.json").read_text())["paired"] is None
    # each eval's own accuracy is still reported
    assert md.count("** (16/32)") + md.count("** (21/32)") == 2


def test_report_says_what_an_older_eval_does_not_record(tmp_path):
    old = _edited_copy(SYN_TRAINED, tmp_path / "old", {"prompts_fingerprint": None})
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(SYN_BASE), "--trained-eval", str(old), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "**Headline:**" in md  # still paired, with the gap said
    assert ("Caveat: not checked, because not recorded in both evals' files: rendered prompts (chat template + "
            "tokenizer)." in md)


def test_report_bad_metrics_line_names_file_and_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "data": {"critic/score/mean": 0.5}}\n{"oops": 1}\n')
    assert main(["report", "--run", str(run), "--out", str(tmp_path / "r")]) == 2
    assert "metrics.jsonl:2" in capsys.readouterr().err


def test_report_eval_flag_needs_name(tmp_path):
    with pytest.raises(SystemExit):
        main(["report", "--eval", "just-a-dir", "--out", str(tmp_path)])


def test_report_on_real_evals(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path):
    """Real `gsm8k-rl eval` folders (two tiny random models, 3 problems) -> a paired report."""
    from gsm8k_rl.launch.smoke import build_tiny_model

    other = build_tiny_model(tmp_path / "other_model", tokenizer_dir=tiny_qwen3_tok_model_dir, seed=1)
    common = ["--source", str(gsm8k_dir), "--backend", "transformers", "--limit", "3", "--max-new-tokens", "6"]
    assert main(["eval", "--model", str(tiny_qwen3_tok_model_dir), "--out", str(tmp_path / "base"), *common]) == 0
    assert main(["eval", "--model", str(other), "--out", str(tmp_path / "ppo"), *common]) == 0
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(tmp_path / "base"), "--trained-eval", str(tmp_path / "ppo"),
                 "--eval", f"again={tmp_path / 'base'}", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    _check_pngs(out)
    assert "| problems paired | 3 |" in md
    assert f"| model | {tiny_qwen3_tok_model_dir} |" not in md  # the run section is about training, absent here
    # the eval table names the models: paths under the folder holding the report's folder
    # relative to it (a committed report reads the same on every machine), others absolute
    assert str(tiny_qwen3_tok_model_dir) in md and "| other_model |" in md and str(tmp_path) not in md
    assert "| base |" in md and "| ppo |" in md  # the eval folders, relative
    assert f"Training run: {MISSING}" in md
    # a local --source is named, not passed off as the hub's GSM8K
    assert f"greedy accuracy on test split of {gsm8k_dir} (gsm8k format) (n=3)" in md


def test_report_refuses_real_evals_with_different_chat_templates(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path):
    """Same weights, a chat template changed by one line: `gsm8k-rl eval` records different rendered
    prompts, and the report refuses to credit the difference to training."""
    edited = tmp_path / "edited_template"
    shutil.copytree(tiny_qwen3_tok_model_dir, edited)
    jinja = edited / "chat_template.jinja"
    jinja.write_text("You are being evaluated.\n" + jinja.read_text())
    common = ["--source", str(gsm8k_dir), "--backend", "transformers", "--limit", "3", "--max-new-tokens", "4"]
    assert main(["eval", "--model", str(tiny_qwen3_tok_model_dir), "--out", str(tmp_path / "base"), *common]) == 0
    assert main(["eval", "--model", str(edited), "--out", str(tmp_path / "ppo"), *common]) == 0
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(tmp_path / "base"), "--trained-eval", str(tmp_path / "ppo"),
                 "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "NOT COMPARABLE" in md and "(rendered prompts (chat template + tokenizer): base " in md
    assert "backend:" not in md.split("NOT COMPARABLE", 1)[1].split("\n", 1)[0]  # the one difference, named alone
    assert "| problems paired |" not in md


def _lp_layout(root: Path) -> Path:
    """The learning proof's layout: run, base model, evals side by side, absolute paths inside the files."""
    lp = root / "lp"
    shutil.copytree(SYN_RUN, lp / "run")
    info = json.loads((lp / "run" / "run_info.json").read_text())
    info.update(model=str(lp / "base"), latest_checkpoint=str(lp / "run" / "checkpoints" / "global_step_60"))
    (lp / "run" / "run_info.json").write_text(json.dumps(info))
    for name, src, model in (("eval_base", SYN_BASE, str(lp / "base")),
                             ("eval_trained", SYN_TRAINED, "/models/elsewhere")):
        shutil.copytree(src, lp / name)
        m = json.loads((lp / name / "metrics.json").read_text())
        m.update(model=model, source=str(lp / "data"))
        (lp / name / "metrics.json").write_text(json.dumps(m))
    return lp


def test_report_names_folders_relative_to_where_it_lies(tmp_path, monkeypatch):
    """A report written beside its inputs (--out runs/lp/report) names them relative to that folder, in
    report.md, report.json and the training plot's title, so a committed report carries no paths of the
    machine that made it; anything elsewhere stays absolute."""
    import matplotlib.pyplot as plt

    lp = _lp_layout(tmp_path)
    titles: list[str] = []
    close = plt.close

    def recording_close(fig=None):
        if fig is not None and fig._suptitle is not None:
            titles.append(fig._suptitle.get_text())
        close(fig)

    monkeypatch.setattr(plt, "close", recording_close)
    monkeypatch.chdir(tmp_path)  # inputs given relative to the current directory, as a user types them
    assert main(["report", "--run", "lp/run", "--base-eval", str(lp / "eval_base"), "--trained-eval", "lp/eval_trained",
                 "--out", "lp/report"]) == 0
    md = (lp / "report" / "report.md").read_text()
    summary = (lp / "report" / "report.json").read_text()
    assert str(tmp_path) not in md and str(tmp_path) not in summary
    assert "| run folder | run |" in md and "| latest_checkpoint | run/checkpoints/global_step_60 |" in md
    assert "| model | base |" in md
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if "| greedy, max " in line}  # the eval table
    assert rows["| base"].endswith("| eval_base |") and rows["| trained"].endswith("| eval_trained |")
    assert "| /models/elsewhere |" in rows["| trained"]  # outside the folder: absolute
    assert "test split of data (gsm8k format)" in md
    assert "written relative to it; others are absolute" in md
    assert json.loads(summary)["run"] == "run"
    assert titles == ["PPO training curves — run"]

    # the same inputs reported from elsewhere: named absolute in the report, by the folder's name in the plot
    titles.clear()
    assert main(["report", "--run", "lp/run", "--base-eval", "lp/eval_base", "--out",
                 str(tmp_path / "other" / "report")]) == 0
    md = (tmp_path / "other" / "report" / "report.md").read_text()
    assert f"| run folder | {lp / 'run'} |" in md and f"| {lp / 'eval_base'} |" in md
    assert titles == ["PPO training curves — run"]
    # a report written inside the run folder: the run is ".", the plot names the folder
    titles.clear()
    assert main(["report", "--run", "lp/run", "--out", "lp/run/report"]) == 0
    assert "| run folder | . |" in (lp / "run" / "report" / "report.md").read_text()
    assert titles == ["PPO training curves — run"]


EXPECTED = DATA / "report_expected"


@pytest.mark.parametrize("name, inputs, args", [
    ("synthetic", ["report_synthetic_run", "report_synthetic_eval_base", "report_synthetic_eval_trained"],
     ["--run", "report_synthetic_run", "--base-eval", "report_synthetic_eval_base",
      "--trained-eval", "report_synthetic_eval_trained"]),
    ("cpu_run", ["report_cpu_run"], ["--run", "report_cpu_run"]),
])
def test_report_output_is_unchanged(tmp_path, name, inputs, args):
    """The report's markdown and JSON, rendered from the committed fixtures, are byte for byte the
    committed ones (tests/data/report_expected/, written before report.py was split into a package;
    since then the one row the report gained, partial credit, was added to them), except the
    generation time. The fixtures are copied beside the report's folder so that their
    paths are written relative to it, the same on every machine."""
    import shutil

    for folder in inputs:
        shutil.copytree(DATA / folder, tmp_path / folder)
    out = tmp_path / "report"
    argv = [a if not a.startswith("report_") else str(tmp_path / a) for a in args]
    assert main(["report", *argv, "--out", str(out)]) == 0

    def stamp(text: str) -> str:
        return re.sub(r"Generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ", "Generated TIME ", text)

    for file in ("report.md", "report.json"):
        assert stamp((out / file).read_text()) == stamp((EXPECTED / name / file).read_text()), file


@pytest.mark.recorded
def test_report_names_the_method_of_a_self_aligned_run(tmp_path):
    """A run of --config sa_ppo is reported as SA-PPO, not PPO (the committed GPU run)."""
    pair = Path(__file__).resolve().parents[1] / "experiments" / "results" / "real_model" / "h200_2026-12-02_pair"
    run = pair / "sa_ppo"
    assert main(["report", "--run", str(run), "--base-eval", str(run / "eval" / "base"),
                 "--trained-eval", str(run / "eval" / "trained"), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert text.startswith("# GSM8K SA-PPO report")
    assert "-> SA-PPO 2.0% greedy accuracy" in text and "23 problems fixed, 20 broken" in text
    assert "## Base vs SA-PPO (paired, same problems)" in text and "PPO accuracy" not in text.replace("SA-PPO", "")


@pytest.mark.recorded
def test_report_noise_floor_and_step_time_on_a_real_gpu_run(tmp_path):
    """The noise section pairs each eval with VERL's validation of the same weights (the committed
    SmolLM2 50-step run): its counts are those experiments/real_model/validation_pairs.py found for
    the same files (experiments/real_model/: the trained eval and the step-50 validation agree on 1299 of
    1319 verdicts, 504 outputs identical); the step-time table averages the steps without a
    validation or a checkpoint."""
    run = Path(__file__).resolve().parents[1] / "experiments" / "results" / "real_model" / "h200_2026-12-02_ppo50"
    assert main(["report", "--run", str(run), "--base-eval", str(run / "eval" / "base"),
                 "--trained-eval", str(run / "eval" / "trained"), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert ("| trained weights (step 50): `gsm8k-rl eval` of the export vs VERL's validation at step 50 | 1319 | "
            "21 / 23 | 9 / 11 | **20** (1.5%) | -2 | 504 (38.2%) |") in text
    assert "| base weights: `gsm8k-rl eval` vs VERL's validation at step 0 | 1319 | 23 / 21 |" in text
    assert ("over the 44 logged steps without a validation pass or a checkpoint save (steps 2-49; the first step, 1 "
            "(12.8 s), left out" in text)
    assert "| **step** | 11.60 |" in text and "`timing_s/save_checkpoint`: 5 times" in text
