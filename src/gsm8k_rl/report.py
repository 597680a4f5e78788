"""`gsm8k-rl report`: report.md + PNG plots from a training run and eval result folders.

Run: `gsm8k-rl report --run runs/ppo --base-eval evals/base --trained-eval evals/ppo --out report/`
(`--eval NAME=DIR` adds more eval folders, e.g. GSM8K-Platinum results).

Inputs: a run folder written by `gsm8k-rl train` (metrics.jsonl from VERL's file logger,
run_info.json, resolved_config.yaml) and eval folders written by `gsm8k-rl eval` (metrics.json,
samples.jsonl, eval_settings.json). Every number in the report is read from these files or
computed from them; anything absent is printed as "missing / not yet run", never guessed.
The base-vs-trained comparison is paired (same problems): exact McNemar test on the problems
exactly one of the two models solves, with the fixed/broken counts and examples of each.
Folders are named relative to the folder that holds --out when they lie under it (a report written
beside its run, as in `--out runs/ppo/report`, reads the same on every machine), absolute otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError, __version__

log = logging.getLogger(__name__)

MISSING = "missing / not yet run"
# Greedy validation accuracy as VERL 0.9.1 logs it: val-core/<data_source>/<var>/mean@<n>, where var
# is "acc" when compute_score returns a float (the reward manager copies the score into "acc";
# "reward" then goes to val-aux/), and "reward" in older VERL versions.
VAL_KEY = re.compile(r"^val-core/(?P<source>.+)/(?P<var>[^/]+)/mean@\d+$")
# Counted by the truncation reward manager in validation (docs/config.md, "Truncated responses").
VAL_TRUNCATED_KEY = re.compile(r"^val-aux/(?P<source>.+)/truncated/mean@\d+$")
# gsm8k_rl.reward_manager.CLASS_NAME, not imported: that module imports VERL
TRUNCATION_MANAGER = "TruncationRewardManager"
N_EXAMPLES = 3
EXAMPLE_TAIL_CHARS = 700

# (panel title, y label, [(metric key, legend label)], secondary-axis metric or None)
TRAINING_PANELS: list[tuple[str, str, list[tuple[str, str]], tuple[str, str] | None]] = [
    ("Training reward", "mean per response", [("critic/score/mean", "score (accuracy)"), ("critic/rewards/mean", "reward (with KL penalty)")], None),
    ("KL to reference", "KL", [("actor/reward_kl_penalty", "reward KL penalty"), ("actor/kl_loss", "KL loss")], None),
    ("Response length", "tokens", [("response_length/mean", "mean length")], ("response_length/clip_ratio", "clip ratio (hit max length)")),
    ("Policy entropy", "nats / token", [("actor/entropy", "entropy")], None),
    # the critic starts from a random value head: explained variance shows when its values start to mean something
    ("Value loss", "loss", [("critic/vf_loss", "value loss")], ("critic/vf_explained_var", "explained variance")),
    ("Policy loss", "loss", [("actor/pg_loss", "pg loss")], ("actor/pg_clipfrac", "pg clip fraction")),
    ("Step time", "seconds", [("timing_s/step", "step"), ("timing_s/gen", "generation")], None),
    ("Throughput", "tokens / s / GPU", [("perf/throughput", "throughput")], None),
]


# ---------------------------------------------------------------- formatting


def fmt(value: Any, spec: str = "") -> str:
    """A number formatted, or MISSING for None (the report never fills a gap).

    >>> fmt(0.71234, ".3f"), fmt(None, ".3f"), fmt("Qwen/Qwen3-1.7B")
    ('0.712', 'missing / not yet run', 'Qwen/Qwen3-1.7B')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return format(value, spec)


def pct(value: float | None, digits: int = 1) -> str:
    """A proportion as a percentage.

    >>> pct(0.6875), pct(None)
    ('68.8%', 'missing / not yet run')
    """
    return MISSING if value is None else f"{100 * value:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """Seconds as h/m/s.

    >>> duration(3725.0), duration(42.4)
    ('1h 02m 05s', '42.4 s')
    """
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table.

    >>> print(_table(["a", "b"], [(1, "x|y")]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    return "\n".join([_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)])


def _fence(text: str) -> str:
    """A fenced block that no backtick run inside `text` can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


# ---------------------------------------------------------------- inputs


@dataclass
class RunData:
    path: Path | None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why the run is missing, when it is

    @property
    def found(self) -> bool:
        return bool(self.series or self.info or self.config)

    def last_step(self) -> int | None:
        steps = [s for points in self.series.values() for s, _ in points]
        return max(steps) if steps else None


def read_metrics_jsonl(path: Path) -> dict[str, list[tuple[int, float]]]:
    """VERL file-logger lines `{"step": N, "data": {metric: value}}` -> metric -> [(step, value)] by step.

    A step logged twice (a restarted run) keeps its last value. Non-numeric values are skipped.
    """
    by_metric: dict[str, dict[int, float]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                step, data = int(row["step"]), row["data"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise UserError(f"{path}:{lineno}: not a VERL file-logger line ({exc}); expected {{\"step\": N, \"data\": {{...}}}}") from exc
            for key, value in data.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                by_metric.setdefault(key, {})[step] = float(value)
    return {k: sorted(v.items()) for k, v in by_metric.items()}


def load_run(path: str | Path | None) -> RunData:
    if path is None:
        return RunData(None, problem="no --run given")
    path = Path(path)
    if not path.is_dir():
        log.warning("run folder %s does not exist", path)
        return RunData(path, problem=f"{path} does not exist")
    run = RunData(path)
    if (path / "metrics.jsonl").is_file():
        run.series = read_metrics_jsonl(path / "metrics.jsonl")
    if (path / "run_info.json").is_file():
        try:
            run.info = json.loads((path / "run_info.json").read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path / 'run_info.json'} is not valid JSON ({exc})") from exc
    if (path / "resolved_config.yaml").is_file():
        import yaml

        run.config = yaml.safe_load((path / "resolved_config.yaml").read_text()) or {}
    if not run.found:
        run.problem = f"{path} has no metrics.jsonl, run_info.json or resolved_config.yaml"
    return run


@dataclass
class EvalData:
    name: str
    path: Path | None
    metrics: dict[str, Any] | None = None
    samples: dict[int, dict] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def found(self) -> bool:
        return self.metrics is not None


def load_eval(name: str, path: str | Path | None) -> EvalData:
    from gsm8k_rl.evaluate import METRICS, SAMPLES, SETTINGS, read_samples

    if path is None:
        return EvalData(name, None, problem="not given")
    path = Path(path)
    ev = EvalData(name, path)
    if not (path / METRICS).is_file():
        n = len(read_samples(path / SAMPLES)) if (path / SAMPLES).is_file() else 0
        ev.problem = f"no {METRICS} in {path}" + (f" (interrupted: {n} samples written)" if n else "")
        log.warning("eval %s: %s", name, ev.problem)
        return ev
    ev.metrics = json.loads((path / METRICS).read_text())
    if (path / SAMPLES).is_file():
        ev.samples = read_samples(path / SAMPLES)
    if (path / SETTINGS).is_file():
        ev.settings = json.loads((path / SETTINGS).read_text()).get("settings", {})
    return ev


def _get(d: dict[str, Any], dotted: str) -> Any:
    """Nested lookup; None when any level is absent.

    >>> _get({"a": {"b": 3}}, "a.b"), _get({"a": {}}, "a.b.c")
    (3, None)
    """
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _first(d: dict[str, Any], *keys: str) -> Any:
    return next((d[k] for k in keys if d.get(k) not in (None, "")), None)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return None


def run_wall_time(info: dict[str, Any]) -> float | None:
    """Wall time of a run from run_info.json (an explicit duration, or end minus start), else None.

    >>> run_wall_time({"start_time": "2025-01-01T00:00:00", "end_time": "2025-01-01T01:30:00"})
    5400.0
    >>> run_wall_time({"start_time": "2025-01-01T00:00:00"}) is None
    True
    """
    explicit = _first(info, "wall_time_s", "duration_s", "elapsed_s")
    if isinstance(explicit, (int, float)):
        return float(explicit)
    start = _parse_time(_first(info, "start_time", "started_at", "start"))
    end = _parse_time(_first(info, "end_time", "finished_at", "ended_at", "end"))
    return (end - start).total_seconds() if start and end else None


# ---------------------------------------------------------------- analysis


@dataclass
class Paired:
    n: int
    both_right: int
    fixed: int  # base wrong, trained right
    broken: int  # base right, trained wrong
    both_wrong: int
    p_value: float
    base_accuracy: float
    trained_accuracy: float
    fixed_examples: list[int]
    broken_examples: list[int]
    caveats: list[str]


def data_label(m: dict, short: bool = False) -> str:
    """Which problems an eval scored: `gsm8k/test` for the hub copy; a local --source folder is
    named instead, since its rows need not be GSM8K's (the learning proof's are synthetic).

    >>> data_label({"dataset": "gsm8k", "split": "test", "source": "hub"})
    'gsm8k/test'
    >>> data_label({"dataset": "gsm8k", "split": "test", "source": "runs/lp/data"})
    'test split of runs/lp/data (gsm8k format)'
    >>> data_label({"dataset": "gsm8k", "split": "test", "source": "runs/lp/data"}, short=True)
    'data/test'
    """
    source = m.get("source")
    if source and source != "hub":
        if short:  # plot legends: the folder's name is enough
            return f"{Path(source).name}/{fmt(m.get('split'))}"
        return f"{fmt(m.get('split'))} split of {source} ({fmt(m.get('dataset'))} format)"
    return f"{fmt(m.get('dataset'))}/{fmt(m.get('split'))}"


def generation_conditions(ev: EvalData) -> dict[str, Any]:
    """What, besides the model, decides an eval's outputs; None where the eval folder does not record it.

    The rendered prompts' hash covers the chat template and the tokenizer (evaluate.py hashes the
    token ids of every prompt of the split); the dtype is the one the backend resolved "auto" to.
    """
    s, m = ev.settings, ev.metrics or {}
    return {
        "backend": m.get("backend") or s.get("backend"),
        "dtype": _get(m, "decoding.dtype"),
        "prompt template": s.get("prompt_fingerprint"),
        "rendered prompts (chat template + tokenizer)": s.get("prompts_fingerprint"),
        "thinking mode": s.get("thinking"),
        "max new tokens": s.get("max_new_tokens"),
    }


def compare(base: EvalData, trained: EvalData) -> tuple[Paired | None, str | None]:
    """Paired comparison on the problems both evals scored; (None, reason) when not comparable."""
    from gsm8k_rl.stats import mcnemar_exact, paired_counts

    if not (base.found and trained.found):
        return None, "needs both the base and the trained eval"
    caveats = []
    for key, label in (("dataset", "dataset"), ("split", "split"), ("data_fingerprint", "data")):
        a, b = base.settings.get(key), trained.settings.get(key)
        if a is not None and b is not None and a != b:
            return None, f"the two evals used different {label} ({a} vs {b}); a paired test needs the same problems"
    a_cond, b_cond = generation_conditions(base), generation_conditions(trained)
    differ = [f"{label}: base {a_cond[label]}, trained {b_cond[label]}" for label in a_cond
              if None not in (a_cond[label], b_cond[label]) and a_cond[label] != b_cond[label]]
    if differ:
        return None, ("NOT COMPARABLE: the two evals generated under different conditions (" + "; ".join(differ)
                      + "), so a paired test would credit the difference to training; re-run one eval with the "
                      "other's settings")
    unknown = [label for label in a_cond if None in (a_cond[label], b_cond[label])]
    if unknown:
        caveats.append(f"not checked, because not recorded in both evals' files: {', '.join(unknown)}")
    # Pair on the problems each eval's metrics cover (its first n indices).
    n = min(base.metrics["n"], trained.metrics["n"])
    idx = [i for i in range(n) if i in base.samples and i in trained.samples]
    if not idx:
        return None, "no problem was scored by both evals (samples.jsonl missing?)"
    if len(idx) < max(base.metrics["n"], trained.metrics["n"]):
        caveats.append(f"paired on the {len(idx)} problems both evals scored (base n={base.metrics['n']}, trained n={trained.metrics['n']})")
    for i in idx:
        if base.samples[i]["question"] != trained.samples[i]["question"]:
            return None, f"problem {i} differs between the two evals; they were not run on the same data"
    a = [base.samples[i]["score"] for i in idx]
    b = [trained.samples[i]["score"] for i in idx]
    c = paired_counts(a, b)
    return Paired(
        n=c.n,
        both_right=c.both_right,
        fixed=c.only_b,
        broken=c.only_a,
        both_wrong=c.both_wrong,
        p_value=mcnemar_exact(c.only_a, c.only_b),
        base_accuracy=(c.both_right + c.only_a) / c.n,
        trained_accuracy=(c.both_right + c.only_b) / c.n,
        fixed_examples=[i for i, x, y in zip(idx, a, b) if x < 0.5 <= y],
        broken_examples=[i for i, x, y in zip(idx, a, b) if x >= 0.5 > y],
        caveats=caveats,
    ), None


# ---------------------------------------------------------------- plots


def _smooth(values: list[float]) -> list[float] | None:
    """Centered moving average (window ~ n/25) for long noisy curves; None when too short to need it."""
    n = len(values)
    if n < 30:
        return None
    half = (max(3, n // 25) | 1) // 2
    windows = (values[max(0, i - half) : i + half + 1] for i in range(n))
    return [sum(w) / len(w) for w in windows]


def _missing_panel(ax: Any, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, MISSING, ha="center", va="center", transform=ax.transAxes, color="gray", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_series(ax: Any, points: list[tuple[int, float]], label: str, color: str, linestyle: str = "-") -> None:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    smooth = _smooth(ys)
    marker = "o" if len(xs) <= 30 else None
    if smooth is None:
        ax.plot(xs, ys, label=label, color=color, marker=marker, markersize=3, linestyle=linestyle)
    else:
        ax.plot(xs, ys, color=color, alpha=0.3, linewidth=0.8, linestyle=linestyle)
        ax.plot(xs, smooth, label=f"{label} (moving avg.)", color=color, linestyle=linestyle)


def plot_training(run: RunData, path: Path, title: str | None = None) -> None:
    """The eight training panels; `title` names the run (default: its folder as given)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 2, figsize=(12, 13), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, ylabel, keys, secondary) in zip(axes.flat, TRAINING_PANELS):
        present = [(k, lbl) for k, lbl in keys if run.series.get(k)]
        sec = secondary if secondary and run.series.get(secondary[0]) else None
        if not present and not sec:
            _missing_panel(ax, panel)
            continue
        for j, (k, lbl) in enumerate(present):
            _plot_series(ax, run.series[k], lbl, colors[j])
        ax.set_title(panel)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if sec:
            ax2 = ax.twinx()
            _plot_series(ax2, run.series[sec[0]], f"{sec[1]} (right axis)", colors[3], linestyle="--")
            ax2.set_ylabel(sec[1])
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=8, loc="best")
    fig.suptitle(f"PPO training curves — {title or (run.path if run.found else MISSING)}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_validation(run: RunData, path: Path, evals: Sequence[EvalData] = ()) -> None:
    """Validation accuracy over steps, with the standalone evals (base, PPO) as dashed reference lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    keys = sorted(k for k in run.series if VAL_KEY.match(k))
    if not keys:
        _missing_panel(ax, "Validation accuracy (greedy)")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    for k in keys:
        pts = run.series[k]
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", markersize=4,
                label=f"validation during training ({VAL_KEY.match(k).group('source')}, {VAL_KEY.match(k).group('var')})")
        for (s, v), ha, dx in ((pts[0], "left", 6), (pts[-1], "right", -6)):
            ax.annotate(f"{100 * v:.1f}%", (s, 100 * v), textcoords="offset points", xytext=(dx, 8), ha=ha, fontsize=9)
    styles = iter(["--", ":", "-.", (0, (5, 1))] * 4)
    shown = [100 * v for k in keys for _, v in run.series[k]]
    for ev in evals:
        if ev.found:
            m = ev.metrics
            shown.append(100 * m["accuracy"])
            ax.axhline(100 * m["accuracy"], linestyle=next(styles), color="gray",
                       label=f"eval {ev.name}: {data_label(m, short=True)} n={m['n']}, {100 * m['accuracy']:.1f}%")
    # accuracy lives in [0, 100]: pad the data range, at least 10 points tall, never outside it
    lo, hi = max(0.0, min(shown) - 5), min(100.0, max(shown) + 5)
    if hi - lo < 10:
        lo, hi = (lo, min(100.0, lo + 10)) if lo < 50 else (max(0.0, hi - 10), hi)
    ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))  # markers at 0% or 100% stay visible
    ax.set_title("Validation accuracy (greedy, during training)")
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy(evals: list[EvalData], path: Path, paired: Paired | None = None, unpaired: str | None = None) -> None:
    """Bars per eval; the paired summary on top, or `unpaired` (why the bars must not be compared)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(evals) + 2), 4.5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ev in enumerate(evals):
        if not ev.found:
            ax.text(i, 2, MISSING.replace(" / ", "\n"), ha="center", va="bottom", color="gray", fontsize=10)
            continue
        acc = 100 * ev.metrics["accuracy"]
        lo, hi = (100 * x for x in ev.metrics["accuracy_ci95"])
        ax.bar(i, acc, color=colors[i % len(colors)], width=0.6)
        ax.errorbar(i, acc, yerr=[[acc - lo], [hi - acc]], color="black", capsize=6)
        ax.text(i, hi + 1.5, f"{acc:.1f}%\n[{lo:.1f}, {hi:.1f}]", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(evals)), [f"{ev.name}\n(n={ev.metrics['n']})" if ev.found else ev.name for ev in evals])
    ax.set_xlim(-0.6, len(evals) - 0.4)
    ax.set_ylim(0, 125)  # room above 100% for the labels and the paired summary
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Greedy accuracy with 95% Wilson intervals")
    if paired is not None:
        diff = 100 * (paired.trained_accuracy - paired.base_accuracy)
        ax.text(0.5, 0.97, f"paired, n={paired.n}: PPO - base = {diff:+.1f} points\n{paired.fixed} fixed, "
                f"{paired.broken} broken; exact McNemar p = {paired.p_value:.3g}",
                transform=ax.transAxes, ha="center", va="top", fontsize=9)
    elif unpaired:
        ax.text(0.5, 0.97, "base vs PPO: NOT paired, do not compare these bars\n(report.md says why)",
                transform=ax.transAxes, ha="center", va="top", fontsize=9, color="red")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- markdown


def truncation_setting(cfg: dict[str, Any]) -> str:
    """What a response cut at the length limit earned in this run: the spec's rule, or the option.

    >>> truncation_setting({"reward": {"reward_manager": {"source": "register", "name": "naive"}}})
    'its score, like any other: correctness only (reward manager register:naive; the spec)'
    >>> truncation_setting({"reward": {"reward_manager": {"source": "importlib", "name": "TruncationRewardManager"},
    ...                                "reward_kwargs": {"truncated_reward": 0.0}}})
    '0.0 (TruncationRewardManager)'
    >>> truncation_setting({})
    'missing / not yet run'
    """
    manager = _get(cfg, "reward.reward_manager")
    if not isinstance(manager, dict):
        return MISSING
    if manager.get("source") == "importlib" and manager.get("name") == TRUNCATION_MANAGER:
        value = _get(cfg, "reward.reward_kwargs.truncated_reward")
        if value is None:
            return f"its score (truncated_reward null: {TRUNCATION_MANAGER} only counts truncations)"
        return f"{value} ({TRUNCATION_MANAGER})"
    return f"its score, like any other: correctness only (reward manager {manager.get('source')}:{manager.get('name')}; the spec)"


def training_truncation(series: dict[str, list[tuple[int, float]]]) -> str:
    """VERL's share of responses that hit the length limit, over the training steps.

    >>> training_truncation({"response_length/clip_ratio": [(1, 0.02), (2, 0.0)]})
    '1.0% mean over 2 steps, 0.0% at step 2 (max 2.0%)'
    """
    pts = series.get("response_length/clip_ratio")
    if not pts:
        return MISSING
    values = [v for _, v in pts]
    return (f"{pct(sum(values) / len(values))} mean over {len(pts)} steps, {pct(pts[-1][1])} at step {pts[-1][0]} "
            f"(max {pct(max(values))})")


def _run_section(run: RunData, where: Callable[[Path], str] = str) -> list[str]:
    lines = ["## What was run", "", "### Training run", ""]
    if not run.found:
        return lines + [f"Training run: {MISSING} ({run.problem})."]
    info, cfg = run.info, run.config
    planned = _get(cfg, "trainer.total_training_steps")
    val = {k: v for k, v in run.series.items() if VAL_KEY.match(k)}
    step_times = run.series.get("timing_s/step", [])
    hw = _first(info, "hardware", "hardware_summary")
    rows = [
        ("run folder", where(run.path)),
        ("model", fmt(_first(info, "model") or _get(cfg, "actor_rollout_ref.model.path"))),
        ("config", fmt(_first(info, "config", "config_name", "recipe"))),
        ("algorithm (adv. estimator)", fmt(_get(cfg, "algorithm.adv_estimator"))),
        ("steps completed (last logged step)", fmt(run.last_step())),
        ("steps planned (trainer.total_training_steps)", fmt(planned)),
        ("prompts per step (data.train_batch_size)", fmt(_get(cfg, "data.train_batch_size"))),
        ("responses per prompt (rollout.n)", fmt(_get(cfg, "actor_rollout_ref.rollout.n"))),
        ("actor lr / critic lr", f"{fmt(_get(cfg, 'actor_rollout_ref.actor.optim.lr'))} / {fmt(_get(cfg, 'critic.optim.lr'))}"),
        ("KL in reward (coef)", f"{fmt(_get(cfg, 'algorithm.use_kl_in_reward'))} ({fmt(_get(cfg, 'algorithm.kl_ctrl.kl_coef'))})"),
        ("max response length", fmt(_get(cfg, "data.max_response_length"))),
        ("reward of a truncated response (reward.reward_kwargs.truncated_reward)", truncation_setting(cfg)),
        ("truncated in training (response_length/clip_ratio)", training_truncation(run.series)),
        *((f"truncated in validation (`{k}`), last", f"{pct(run.series[k][-1][1])} at step {run.series[k][-1][0]}")
          for k in sorted(run.series) if VAL_TRUNCATED_KEY.match(k)),
        ("chat-template kwargs", fmt(_get(cfg, "data.apply_chat_template_kwargs"))),
        ("GPUs", fmt(_first(info, "n_gpus", "gpus"))),
        ("hardware", fmt(json.dumps(hw) if isinstance(hw, (dict, list)) else hw)),
        ("start / end", f"{fmt(_first(info, 'start_time', 'started_at', 'start'))} / {fmt(_first(info, 'end_time', 'finished_at', 'ended_at', 'end'))}"),
        ("wall time (run_info)", duration(run_wall_time(info))),
        ("sum of logged step times (timing_s/step)", duration(sum(v for _, v in step_times)) if step_times else MISSING),
        ("validation points", fmt(len(next(iter(val.values()))) if val else None)),
    ]
    lines += [_table(["", "value"], rows), ""]
    other = {k: v for k, v in info.items() if not isinstance(v, (dict, list))}
    if other:
        lines += ["<details><summary>run_info.json</summary>", "", _table(["key", "value"], sorted(other.items())), "", "</details>", ""]
    return lines


def _evals_section(evals: list[EvalData], where: Callable[[Path], str] = str) -> list[str]:
    lines = ["### Evaluations", ""]
    rows = []
    for ev in evals:
        if not ev.found:
            rows.append((ev.name, MISSING, "", "", "", "", "", "", ev.problem or ""))
            continue
        m = ev.metrics
        prompt, dec = m.get("prompt", {}), m.get("decoding", {})
        gpus = (m.get("hardware") or {}).get("gpus")
        rows.append((
            ev.name,
            fmt(m.get("model")),
            f"{data_label(m)} (n={m['n']} of {fmt(m.get('n_in_split'))})",
            fmt(m.get("backend")),
            f"greedy, max {fmt(dec.get('max_new_tokens'))} new tokens, {fmt(dec.get('dtype'))}",
            f"{fmt(prompt.get('template'))}, thinking {'on' if prompt.get('thinking') else 'off'}, "
            f"fingerprint {fmt(prompt.get('fingerprint'))} (v{fmt(prompt.get('version'))})",
            ", ".join(gpus) if gpus else "CPU",
            duration(m.get("wall_time_s")),
            where(ev.path),
        ))
    lines += [_table(["eval", "model", "data", "backend", "decoding", "prompt", "hardware", "wall time (last invocation)", "folder"], rows), ""]
    return lines


def _accuracy_section(evals: list[EvalData]) -> list[str]:
    lines = ["## Accuracy", "", "![accuracy](accuracy.png)", ""]
    rows = []
    for ev in evals:
        if not ev.found:
            rows.append((ev.name, MISSING, "", "", "", "", ""))
            continue
        m = ev.metrics
        lo, hi = m["accuracy_ci95"]
        rows.append((
            ev.name,
            f"**{pct(m['accuracy'])}** ({m['correct']}/{m['n']})",
            f"[{pct(lo)}, {pct(hi)}]",
            pct(m.get("no_answer_rate")),
            pct(m.get("truncation_rate")),
            f"{fmt(m['output_tokens']['mean'], '.0f')} / {fmt(m['output_tokens']['p90'], '.0f')} / {fmt(m['output_tokens']['max'])}",
            fmt(m.get("tokens_per_s"), ".0f"),
        ))
    interval = next((ev.metrics.get("interval") for ev in evals if ev.found), None)
    lines += [
        _table(["eval", "accuracy", "95% interval", "no answer", "truncated", "output tokens mean / p90 / max", "tokens/s"], rows),
        "",
        f"Interval: {fmt(interval)}. No answer: no number could be extracted. Truncated: generation hit max new tokens.",
        "",
    ]
    found = [ev for ev in evals if ev.found]
    names = sorted({n for ev in found for n in ev.metrics.get("extractors", {})}, key=lambda n: (n != "ours", n))
    if names:
        lines += ["Accuracy of the same outputs under other answer extractors (headline = `ours`, the training reward):", ""]
        rows = [
            (ev.name, *(pct(_get(ev.metrics, f"extractors.{n}.accuracy")) for n in names)) for ev in found
        ]
        lines += [_table(["eval", *names], rows), ""]
    return lines


def _paired_section(base: EvalData, trained: EvalData, paired: Paired | None, reason: str | None) -> list[str]:
    lines = ["## Base vs PPO (paired, same problems)", ""]
    if paired is None:
        if base.found and trained.found:  # both evals are there, but they cannot be paired
            return lines + [f"**Paired comparison not made:** {reason}.", ""]
        return lines + [f"Paired comparison: {MISSING} ({reason}).", ""]
    diff = paired.trained_accuracy - paired.base_accuracy
    rows = [
        ("problems paired", paired.n),
        ("base accuracy", pct(paired.base_accuracy)),
        ("PPO accuracy", pct(paired.trained_accuracy)),
        ("difference (PPO - base)", f"{100 * diff:+.1f} points"),
        ("fixed (base wrong, PPO right)", paired.fixed),
        ("broken (base right, PPO wrong)", paired.broken),
        ("both right / both wrong", f"{paired.both_right} / {paired.both_wrong}"),
        ("exact McNemar p (two-sided, on fixed vs broken)", f"{paired.p_value:.3g}"),
    ]
    lines += [_table(["", "value"], rows), ""]
    lines += [f"Caveat: {c}." for c in paired.caveats]
    if paired.caveats:
        lines.append("")
    for title, ids in (("fixed by PPO", paired.fixed_examples), ("broken by PPO", paired.broken_examples)):
        lines += [f"### Examples {title}", ""]
        if not ids:
            lines += ["None.", ""]
            continue
        lines.append(f"{min(len(ids), N_EXAMPLES)} of {len(ids)} (lowest problem indices first).")
        lines.append("")
        for i in ids[:N_EXAMPLES]:
            b, t = base.samples[i], trained.samples[i]
            lines += [
                f"**Problem {i}** (gold answer {b['gold']}): {b['question']}",
                "",
                f"- base: extracted `{b.get('extracted')}`, {b.get('n_output_tokens')} tokens, finish {b.get('finish_reason')}",
                f"- PPO: extracted `{t.get('extracted')}`, {t.get('n_output_tokens')} tokens, finish {t.get('finish_reason')}",
                "",
                f"Base output (last {EXAMPLE_TAIL_CHARS} characters):",
                "",
                _fence(b["output"][-EXAMPLE_TAIL_CHARS:]),
                "",
                f"PPO output (last {EXAMPLE_TAIL_CHARS} characters):",
                "",
                _fence(t["output"][-EXAMPLE_TAIL_CHARS:]),
                "",
            ]
    return lines


def _training_section(run: RunData) -> list[str]:
    lines = ["## Training", "", "![validation accuracy](validation.png)", "", "![training curves](training.png)", ""]
    keys = [k for k in sorted(run.series) if VAL_KEY.match(k)]
    keys += [k for _, _, ks, sec in TRAINING_PANELS for k in [*(x for x, _ in ks), *([sec[0]] if sec else [])]]
    rows = []
    for k in keys:
        pts = run.series.get(k)
        if not pts:
            rows.append((f"`{k}`", MISSING, "", "", ""))
            continue
        rows.append((f"`{k}`", len(pts), f"{pts[0][1]:.4g} (step {pts[0][0]})", f"{pts[-1][1]:.4g} (step {pts[-1][0]})",
                     f"{min(v for _, v in pts):.4g} / {max(v for _, v in pts):.4g}"))
    lines += [_table(["metric", "points", "first", "last", "min / max"], rows), ""]
    return lines


def report_root(out: str | Path) -> Path:
    """The folder a report names its inputs relative to: the one holding the report's folder
    (`runs/lp` for `--out runs/lp/report`, beside the run and eval folders it reads).

    >>> str(report_root("/r/lp/report"))
    '/r/lp'
    """
    return Path(os.path.abspath(out)).parent


def _spellings(root: Path) -> list[str]:
    """The root as written and with its symbolic links resolved (either may appear in a path)."""
    forms = [str(root).rstrip("/"), str(root.resolve()).rstrip("/")]
    return [f for i, f in enumerate(forms) if f not in ("", "/") and f not in forms[:i]]


def display_path(path: str | Path, root: Path) -> str:
    """A folder as a report names it: relative to `root` when it lies under it ("." for the root
    itself), else absolute. A relative `path` is taken from the current directory, like every path
    the commands accept, so it is named relative to `root` too, or made absolute.

    >>> display_path("/r/lp/run", Path("/r/lp")), display_path("/r/lp", Path("/r/lp"))
    ('run', '.')
    >>> display_path("/models/qwen3", Path("/r/lp")), display_path("/r/lpx/run", Path("/r/lp"))
    ('/models/qwen3', '/r/lpx/run')
    """
    absolute = Path(os.path.abspath(path))
    for base in _spellings(root):
        for candidate in (absolute, absolute.resolve()):
            try:
                return str(candidate.relative_to(base))
            except ValueError:
                continue
    return str(absolute)


def relative_to_root(text: str, root: Path) -> str:
    """Absolute paths under `root` inside `text` written relative to it (the root itself as "."),
    others left as they are: a committed report names its folders the same way on every machine.
    Used on what the report quotes from its input files (model paths, data folders, checkpoints).

    >>> relative_to_root("run /r/x/run, model /models/q, data /r/x; ckpt /r/x/run/ckpt", Path("/r/x"))
    'run run, model /models/q, data .; ckpt run/ckpt'
    >>> relative_to_root("/r/xy/run /a/r/x/run", Path("/r/x"))
    '/r/xy/run /a/r/x/run'
    """
    for root_s in _spellings(root):
        start = r"(?<![\w.~/-])" + re.escape(root_s)  # not the tail of a longer path
        text = re.sub(start + "/", "", text)
        text = re.sub(start + r"(?![\w.-]*[\w-])", ".", text)
    return text


def write_report(run_dir: str | Path | None, evals: dict[str, str | Path | None], out: str | Path) -> Path:
    """Write report.md, accuracy.png, validation.png, training.png and report.json into `out`.

    Args:
        run_dir: training run folder (or None).
        evals: display name -> eval folder (or None); the names "base" and "trained" are paired.
        out: output folder.
    Returns:
        the path of report.md.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "report.md").exists():
        log.info("replacing the existing report in %s", out)
    run = load_run(run_dir)
    loaded = [load_eval(name, path) for name, path in evals.items()]
    by_name = {ev.name: ev for ev in loaded}
    base, trained = by_name.get("base", EvalData("base", None)), by_name.get("trained", EvalData("trained", None))
    paired, reason = compare(base, trained)

    plot_accuracy(loaded, out / "accuracy.png", paired, reason if base.found and trained.found else None)
    plot_validation(run, out / "validation.png", [ev for ev in loaded if ev.name in ("base", "trained")])
    root = report_root(out)  # paths under the folder holding the report are written relative to it

    def where(path: Path) -> str:
        return display_path(path, root)

    plot_training(run, out / "training.png", title=where(run.path) if run.found else None)

    lines = [
        "# GSM8K PPO report",
        "",
        f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by gsm8k-rl {__version__}. "
        f"Every number below is read from the run and eval folders named here; \"{MISSING}\" marks what they do not contain. "
        "Paths that lie under the folder holding this report's folder (`..` from here) are written relative to it; "
        "others are absolute.",
        "",
    ]
    if base.found and trained.found and paired is not None:
        lines += [
            f"**Headline:** base {pct(paired.base_accuracy)} -> PPO {pct(paired.trained_accuracy)} greedy accuracy on "
            f"{data_label(base.metrics)} (n={paired.n}); "
            f"{paired.fixed} problems fixed, {paired.broken} broken, exact McNemar p = {paired.p_value:.3g}.",
            "",
        ]
    elif base.found and trained.found:  # said before any number, not only in the paired section
        lines += [f"**No headline: the base and trained evals are not paired.** {reason}.", ""]
    lines += _run_section(run, where) + _evals_section(loaded, where) + _accuracy_section(loaded)
    lines += _paired_section(base, trained, paired, reason) + _training_section(run)
    (out / "report.md").write_text(relative_to_root("\n".join(lines) + "\n", root), encoding="utf-8")

    summary = {
        "run": where(run.path) if run.path else None,
        "run_last_step": run.last_step(),
        "evals": {
            ev.name: ({k: ev.metrics.get(k) for k in ("accuracy", "accuracy_ci95", "correct", "n", "model", "dataset")}
                      if ev.found else None)
            for ev in loaded
        },
        "paired": None if paired is None else {
            k: getattr(paired, k) for k in ("n", "both_right", "fixed", "broken", "both_wrong", "p_value", "base_accuracy", "trained_accuracy")
        },
        "paired_missing_reason": reason,
    }
    (out / "report.json").write_text(relative_to_root(json.dumps(summary, indent=2), root) + "\n")
    log.info("wrote %s", out / "report.md")
    return out / "report.md"


def _name_dir(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name, path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", default=None, help="training run folder (metrics.jsonl, run_info.json, resolved_config.yaml)")
    p.add_argument("--base-eval", default=None, help="eval folder of the base model")
    p.add_argument("--trained-eval", default=None, help="eval folder of the PPO model")
    p.add_argument("--eval", action="append", default=[], type=_name_dir, metavar="NAME=DIR", help="more eval folders (repeatable)")
    p.add_argument("--out", required=True, help="folder for report.md and the PNG plots")


def run(args: argparse.Namespace) -> int:
    evals: dict[str, str | None] = {"base": args.base_eval, "trained": args.trained_eval}
    for name, path in args.eval:
        if name in evals:
            raise UserError(f"--eval {name}={path}: the name {name!r} is already used; pick another")
        evals[name] = path
    report = write_report(args.run, evals, args.out)
    print(report)
    return 0
