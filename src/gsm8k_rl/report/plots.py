"""The PNG plots: accuracy with intervals, validation accuracy over steps, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gsm8k_rl.report.format import MISSING
from gsm8k_rl.report.load import VAL_KEY, EvalData, Paired, RunData, data_label

# (panel title, y label, [(metric key, legend label)], secondary-axis metric or None)
TRAINING_PANELS: list[tuple[str, str, list[tuple[str, str]], tuple[str, str] | None]] = [
    ("Training reward", "mean per response",
     [("critic/score/mean", "score (accuracy)"), ("critic/rewards/mean", "reward (with KL penalty)")], None),
    ("KL to reference", "KL", [("actor/reward_kl_penalty", "reward KL penalty"), ("actor/kl_loss", "KL loss")], None),
    ("Response length", "tokens", [("response_length/mean", "mean length")],
     ("response_length/clip_ratio", "clip ratio (hit max length)")),
    ("Policy entropy", "nats / token", [("actor/entropy", "entropy")], None),
    # the critic starts from a random value head: explained variance shows when its values start to mean something
    ("Value loss", "loss", [("critic/vf_loss", "value loss")], ("critic/vf_explained_var", "explained variance")),
    ("Policy loss", "loss", [("actor/pg_loss", "pg loss")], ("actor/pg_clipfrac", "pg clip fraction")),
    ("Step time", "seconds", [("timing_s/step", "step"), ("timing_s/gen", "generation")], None),
    ("Throughput", "tokens / s / GPU", [("perf/throughput", "throughput")], None),
]


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


def plot_training(run: RunData, path: Path, title: str | None = None, label: str = "PPO") -> None:
    """The eight training panels; `title` names the run (default: its folder as given)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 2, figsize=(12, 13), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, ylabel, keys, secondary) in zip(axes.flat, TRAINING_PANELS, strict=True):
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
    fig.suptitle(f"{label} training curves — {title or (run.path if run.found else MISSING)}")
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
                label=f"validation during training ({VAL_KEY.match(k).group('source')}, "
                      f"{VAL_KEY.match(k).group('var')})")
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


def plot_accuracy(evals: list[EvalData], path: Path, paired: Paired | None = None, unpaired: str | None = None,
                  label: str = "PPO") -> None:
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
    sampled = any(ev.found and "pass_at_k" in ev.metrics for ev in evals)
    ax.set_title("Accuracy with 95% intervals (greedy: Wilson; sampled: pass@1, t-interval)" if sampled
                 else "Greedy accuracy with 95% Wilson intervals")
    if paired is not None:
        diff = 100 * (paired.trained_accuracy - paired.base_accuracy)
        ax.text(0.5, 0.97, f"paired, n={paired.n}: {label} - base = {diff:+.1f} points\n{paired.fixed} fixed, "
                f"{paired.broken} broken; exact McNemar p = {paired.p_value:.3g}",
                transform=ax.transAxes, ha="center", va="top", fontsize=9)
    elif unpaired:
        ax.text(0.5, 0.97, f"base vs {label}: NOT paired, do not compare these bars\n(report.md says why)",
                transform=ax.transAxes, ha="center", va="top", fontsize=9, color="red")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)



def plot_pass_at_k(evals: Sequence[EvalData], path: Path) -> None:
    """pass@k and maj@k against k (log scale) for every sampled eval: whether training moved pass@1
    by widening what the model can solve (pass@k rises at every k) or by narrowing it (falls at large k)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ev in enumerate(e for e in evals if e.found and "pass_at_k" in e.metrics):
        ks = sorted(int(k) for k in ev.metrics["pass_at_k"])
        color = colors[i % len(colors)]
        ax.plot(ks, [100 * ev.metrics["pass_at_k"][str(k)] for k in ks], "-o", ms=3, color=color,
                label=f"{ev.name}: pass@k")
        ax.plot(ks, [100 * ev.metrics["maj_at_k"][str(k)] for k in ks], "--", color=color, label=f"{ev.name}: maj@k")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (answers per problem)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("pass@k (unbiased, from n samples) and majority vote of k samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
