"""The learning proof: the project's own PPO, through its normal commands, measurably raises accuracy.

    python experiments/learning_proof/run.py --out runs/learning_proof
    python experiments/learning_proof/run.py --out runs/learning_proof --docs experiments/learning_proof   # + publish

Real weights cannot be had here, so the spec's "+10 points on GSM8K" cannot be measured; this
shows instead that the pipeline (same data code, reward, VERL PPO recipe, eval and report) makes
a model better, at a size that runs on 2 CPU cores. Stages, each a plain command (see
OUT/commands.sh afterwards):

1. make_data.py: seeded arithmetic word problems in GSM8K jsonl (sft / train / test);
2. `gsm8k-rl prepare`: train/test -> VERL parquet with the project's prompt;
3. warmup.py: a tiny Qwen3 + tokenizer, supervised warm-up on sft.jsonl (the starting model);
4. `gsm8k-rl eval` of the starting model on the held-out test set (greedy);
5. `gsm8k-rl train --backend local`: VERL main_ppo with the `ppo` recipe (GAE critic, KL 1e-3 in
   the reward, greedy validation), scaled down by VERL overrides only (PPO_OVERRIDES);
6. `gsm8k-rl export` of the last checkpoint, `gsm8k-rl eval` of it on the same problems;
7. `gsm8k-rl report`, and OUT/summary.json: accuracies, paired exact McNemar p, wall times.

A stage whose output exists is skipped, so an interrupted run resumes (training resumes from
its last checkpoint). Every random choice is seeded (--seed for data and warm-up; VERL's seeds
are the recipe's).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("learning_proof")

HERE = Path(__file__).resolve().parent
MAX_NEW_TOKENS = 32  # the longest worked solution is < 32 tokens with this tokenizer
STEPS = 60

# The only departures from the `ppo` recipe: sizes for a 1M-parameter model on 2 CPU cores, and a
# learning rate for a model that small (the recipe's 1e-6 / 2e-6 are for 1.7B parameters).
PPO_OVERRIDES = [
    "data.train_batch_size=64",
    "data.max_prompt_length=128",
    f"data.max_response_length={MAX_NEW_TOKENS}",
    "data.val_max_samples=200",  # in-training validation curve on a seeded random 200 of the test problems
    "actor_rollout_ref.actor.ppo_mini_batch_size=32",  # 2 updates per step, as the spec's 128 / 64
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32",
    "critic.ppo_micro_batch_size_per_gpu=32",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=64",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=64",
    "actor_rollout_ref.model.enable_gradient_checkpointing=False",
    "critic.model.enable_gradient_checkpointing=False",
    "actor_rollout_ref.actor.optim.lr=5e-5",
    "critic.optim.lr=1e-4",
    f"trainer.total_training_steps={STEPS}",
    "trainer.test_freq=10",
    f"trainer.save_freq={STEPS}",
    "trainer.experiment_name=learning-proof",
]


class Runner:
    """Runs the stages and records them: commands.sh (every stage's command, in order) and timings.json."""

    def __init__(self, out: Path):
        self.out = out
        self.timings_file = out / "timings.json"
        # kept across invocations, so a resumed run still reports every stage's time
        self.timings: dict[str, float] = json.loads(self.timings_file.read_text()) if self.timings_file.exists() else {}
        self.lines = ["#!/usr/bin/env bash", "# The commands that built this folder, in order (experiments/learning_proof/run.py).",
                      "# Run from the repository root with the project's environment active; OUT_DIR is --out.",
                      "set -euo pipefail", f'OUT_DIR=${{OUT_DIR:-{os.path.relpath(self.out)}}}']

    def portable(self, line: str) -> str:
        """The command as a user would type it: no paths of the machine that ran it."""
        repo = str(Path(__file__).resolve().parents[2])
        line = line.replace(str(self.out.resolve()), "$OUT_DIR")
        line = line.replace(str(Path(sys.executable).parent) + "/", "")
        return line.replace(repo + "/", "")

    def stage(self, name: str, cmd: list[str], done: Path | None) -> None:
        line = " ".join(shlex.quote(c) for c in cmd)
        self.lines += [f"# {name}", self.portable(line)]
        (self.out / "commands.sh").write_text("\n".join(self.lines) + "\n")
        if done is not None and done.exists():
            log.info("[%s] already done (%s exists): skipped", name, done)
            return
        log.info("[%s] %s", name, line)
        started = time.time()
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        self.timings[name] = round(time.time() - started, 1)
        self.timings_file.write_text(json.dumps(self.timings, indent=2) + "\n")
        log.info("[%s] done in %.0f s", name, self.timings[name])


def gsm8k_rl() -> list[str]:
    exe = Path(sys.executable).with_name("gsm8k-rl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gsm8k_rl.cli"]


def answer_style(output: str) -> str:
    """"direct" for a bare "#### N" answer, "worked" when the output shows a computation first.

    >>> answer_style("#### 12"), answer_style("7 + 5 = 12\\n#### 12")
    ('direct', 'worked')
    """
    return "direct" if output.lstrip().startswith("####") else "worked"


def _rate(k: int, n: int) -> dict:
    return {"correct": k, "n": n, "accuracy": round(k / n, 4) if n else None}


def breakdown(samples: list[dict], test_rows: list[dict]) -> dict:
    """Accuracy by answer style and by the number of steps the problem needs (from its gold solution)."""
    out: dict[str, dict] = {"by_style": {}, "by_steps": {}}
    for key, group in (("by_style", lambda s: answer_style(s["output"])),
                       ("by_steps", lambda s: str(len(test_rows[s["index"]]["answer"].splitlines()) - 1))):
        groups: dict[str, list[bool]] = {}
        for sample in samples:
            groups.setdefault(group(sample), []).append(sample["score"] == 1.0)
        out[key] = {g: _rate(sum(v), len(v)) for g, v in sorted(groups.items())}
    return out


def summarize(out: Path, timings: dict[str, float]) -> dict:
    """Accuracies of both evals, the paired exact McNemar test, breakdowns, and where the time went."""
    from gsm8k_rl.evaluation.stats import mcnemar_exact, wilson_interval

    test_rows = [json.loads(x) for x in (out / "data" / "test.jsonl").read_text().splitlines() if x.strip()]
    samples = {}
    for name in ("base", "trained"):
        rows = [json.loads(x) for x in (out / f"eval_{name}" / "samples.jsonl").read_text().splitlines() if x.strip()]
        samples[name] = sorted(rows, key=lambda r: r["index"])
    base = {r["index"]: r["score"] == 1.0 for r in samples["base"]}
    trained = {r["index"]: r["score"] == 1.0 for r in samples["trained"]}
    if base.keys() != trained.keys():
        raise SystemExit(f"the two evals cover different problems ({len(base)} vs {len(trained)})")
    n = len(base)
    fixed = sum(trained[i] and not base[i] for i in base)
    broken = sum(base[i] and not trained[i] for i in base)
    summary: dict = {"n": n}
    for name, correct in (("base", base), ("trained", trained)):
        k = sum(correct.values())
        summary[name] = {**_rate(k, n), "ci95": [round(x, 4) for x in wilson_interval(k, n)],
                         **breakdown(samples[name], test_rows)}
    summary.update({
        "fixed": fixed,
        "broken": broken,
        "mcnemar_p": mcnemar_exact(fixed, broken),
        "ppo_steps": STEPS,
        "ppo_overrides": PPO_OVERRIDES,
        "stage_wall_s": timings,
        "wall_s": round(sum(timings.values()), 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    })
    # probe outside the pipeline: the same models, greedy, but not allowed to start with "####"
    sys.path.insert(0, str(HERE))
    from warmup import show_work_accuracy

    summary["show_work_probe"] = {name: show_work_accuracy(out / folder, test_rows, MAX_NEW_TOKENS)
                                  for name, folder in (("base", "base"), ("trained", "trained"))}
    warm = out / "base" / "warmup.json"
    if warm.exists():
        w = json.loads(warm.read_text())
        summary["warmup"] = {k: w[k] for k in ("params", "vocab", "steps", "batch_size", "lr", "seed") if k in w}
        if w.get("history"):
            summary["warmup"]["last_monitor"] = w["history"][-1]
    return summary


def summary_markdown(s: dict, command: str) -> str:
    """A short human summary of summary.json (the full report is report.md)."""
    def pct(r: dict) -> str:
        return f"{r['accuracy']:.1%} ({r['correct']}/{r['n']})" if r and r["n"] else "-"

    lines = [
        "# Learning proof: summary",
        "",
        f"Command: `{command}`  ",
        f"Machine: {s['machine']}  ",
        f"Wall time: {s['wall_s'] / 60:.1f} min (" + ", ".join(f"{k} {v:.0f} s" for k, v in s["stage_wall_s"].items()) + ")",
        "",
        "| model | greedy accuracy (n=%d) | 95%% interval | direct answers: share, accuracy | worked answers: share, accuracy | one-step | two-step |" % s["n"],
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("base", "trained"):
        m = s[name]
        st, sp = m["by_style"], m["by_steps"]
        share = {k: st[k]["n"] / s["n"] if k in st else 0.0 for k in ("direct", "worked")}
        lines.append(f"| {name} | **{m['accuracy']:.1%}** | [{m['ci95'][0]:.1%}, {m['ci95'][1]:.1%}] | "
                     f"{share['direct']:.0%}, {pct(st.get('direct'))} | {share['worked']:.0%}, {pct(st.get('worked'))} | "
                     f"{pct(sp.get('1'))} | {pct(sp.get('2'))} |")
    lines += [
        "",
        f"Paired on the same {s['n']} held-out problems: {s['fixed']} fixed by PPO, {s['broken']} broken; "
        f"exact McNemar p = {s['mcnemar_p']:.2g}.",
        "",
    ]
    probe = s.get("show_work_probe")
    if probe:
        lines += [
            "Probe (outside the pipeline): greedy accuracy when the first token may not be `####`, so the model "
            "must show its work: " + "; ".join(
                f"{name} {p['accuracy']:.1%} (one-step {pct(p['by_steps'].get('1'))}, two-step {pct(p['by_steps'].get('2'))})"
                for name, p in probe.items()) + ".",
            "",
        ]
    lines += [
        f"PPO: {s['ppo_steps']} steps of the `ppo` recipe; overrides: " + ", ".join(f"`{o}`" for o in s["ppo_overrides"]) + ".",
        "",
    ]
    return "\n".join(lines)


def publish_png(src: Path, dst: Path, colors: int = 128) -> None:
    """Copy a plot as a palette PNG (about a third of the size, visually the same) for committing."""
    from PIL import Image

    with Image.open(src) as im:
        im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                   dither=Image.Dither.NONE).save(dst, optimize=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/learning_proof"), help="working folder (data, models, run, evals)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data generator and the warm-up")
    p.add_argument("--warmup-steps", type=int, default=1500)
    p.add_argument("--docs", type=Path, default=None, help="also copy report.md, PNGs and summary.json here")
    p.add_argument("overrides", nargs="*", default=[], help="extra VERL overrides for `gsm8k-rl train` (after --)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    r = Runner(out)
    py, cli = sys.executable, gsm8k_rl()
    data, parquet, base, run_dir = out / "data", out / "parquet", out / "base", out / "run"
    trained = out / "trained"
    evals = ["--source", str(data), "--backend", "transformers", "--max-new-tokens", str(MAX_NEW_TOKENS),
             "--batch-size", "100"]
    r.stage("data", [py, str(HERE / "make_data.py"), "--out", str(data), "--seed", str(args.seed)], data / "sft.jsonl")
    r.stage("prepare", cli + ["prepare", "--source", str(data), "--out", str(parquet)], parquet / "prepare_info.json")
    r.stage("warmup", [py, str(HERE / "warmup.py"), "--data", str(data), "--out", str(base),
                       "--seed", str(args.seed), "--steps", str(args.warmup_steps), "--lr", "3e-3"], base / "warmup.json")
    r.stage("eval_base", cli + ["eval", "--model", str(base), "--out", str(out / "eval_base")] + evals,
            out / "eval_base" / "metrics.json")
    r.stage("train", cli + ["train", "--backend", "local", "--model", str(base), "--data", str(parquet),
                            "--run-dir", str(run_dir)] + PPO_OVERRIDES + args.overrides,
            run_dir / "checkpoints" / f"global_step_{STEPS}")
    r.stage("export", cli + ["export", "--run-dir", str(run_dir), "--out", str(trained)], trained / "export_info.json")
    r.stage("eval_trained", cli + ["eval", "--model", str(trained), "--out", str(out / "eval_trained")] + evals,
            out / "eval_trained" / "metrics.json")
    r.stage("report", cli + ["report", "--run", str(run_dir), "--base-eval", str(out / "eval_base"),
                             "--trained-eval", str(out / "eval_trained"), "--out", str(out / "report")], None)

    summary = summarize(out, r.timings)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    command = "python experiments/learning_proof/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    (out / "summary.md").write_text(summary_markdown(summary, command))
    print(f"base {summary['base']['accuracy']:.1%} -> trained {summary['trained']['accuracy']:.1%} on n={summary['n']} "
          f"(fixed {summary['fixed']}, broken {summary['broken']}, McNemar p={summary['mcnemar_p']:.2g}); "
          f"{summary['wall_s'] / 60:.1f} min of stages")
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        for f in sorted((out / "report").iterdir()):
            if f.suffix == ".md":
                shutil.copy2(f, args.docs / f.name)
            elif f.suffix == ".png":
                publish_png(f, args.docs / f.name)
        shutil.copy2(out / "summary.json", args.docs / "summary.json")
        shutil.copy2(out / "summary.md", args.docs / "summary.md")
        shutil.copy2(out / "commands.sh", args.docs / "commands.sh")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
