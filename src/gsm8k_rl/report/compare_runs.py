"""`gsm8k-rl compare`: finished runs side by side (e.g. PPO vs GRPO vs SA-PPO at one sample budget).

Run: `gsm8k-rl compare runs/ppo runs/grpo runs/sa_ppo --out runs/compare`
(`--name` once per run renames them; the default is each folder's name).

Each RUN_DIR is a folder written by `gsm8k-rl run`: metrics.jsonl, resolved_config.yaml,
run_info.json and eval/base, eval/trained. Written to --out:
- compare.md: per run the algorithm and its sample budget (steps x prompts per step x responses per
  prompt), KL, actor lr, mean step time, base and trained greedy accuracy with Wilson intervals, the
  trained model vs its own base (exact McNemar), the trained eval's output length and truncation;
  then trained vs trained for every pair of runs whose evals scored the same problems under the same
  generation conditions (the report's pairing checks; the reason is printed when a pair fails them);
  Beside them: the no-answer rate, seconds per phase of the steady steps, what training cost (tokens
  through the model, GPU-seconds) and that per point of accuracy gained, and pass@k / maj@k of any
  sampled eval in the run's eval/ folder (`gsm8k-rl eval --samples K`), with every two of them that drew
  the same K paired per problem on "any of the K answers is right" (exact McNemar: did training make
  the model stop solving problems the base could, or reach new ones);
- pass_at_k.png: pass@k and maj@k against k for every sampled eval of the runs (when there are any);
- compare.json: the same numbers (null where absent);
- compare.png: training reward, response length, validation accuracy, KL to the reference and policy
  entropy over steps for every run, and the CDF of the trained evals' output lengths (the self-aligned
  reward claims shorter answers).
Anything the folders do not contain is printed as "missing / not yet run", never guessed.
Why a module of its own: `gsm8k-rl report` describes one run; comparisons need the runs' budgets and
a paired test between trained models, which no single-run report has.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError, __version__
from gsm8k_rl.report.format import MISSING, _table, fmt, pct
from gsm8k_rl.report.load import (
    VAL_KEY,
    EvalData,
    Paired,
    RunData,
    _first,
    _get,
    compare,
    data_label,
    load_eval,
    load_run,
    self_aligned,
    solved_pairs,
)
from gsm8k_rl.report.markdown import display_path, relative_to_root, report_root, solved_by_any_section
from gsm8k_rl.report.plots import _missing_panel, _plot_series, plot_pass_at_k

log = logging.getLogger(__name__)

SCORE_KEY = "critic/score/mean"
LENGTH_KEY = "response_length/mean"
STEP_TIME_KEY = "timing_s/step"
KL_REWARD_KEY = "actor/reward_kl_penalty"  # KL in the reward (PPO): mean per-token KL to the reference
KL_LOSS_KEY = "actor/kl_loss"  # KL as a loss (GRPO)
ENTROPY_KEY = "actor/entropy"
SA_CORRECT_KEY = "self_aligned/r_correct/mean"  # SA runs: critic/score/mean includes alpha * R_SA, this does not
TESTING_KEY = "timing_s/testing"  # VERL times the validation pass of a step under this key


@dataclass
class Entry:
    """One run as the comparison sees it: its folder's files, its two evals, its own base-vs-trained pairing."""

    name: str
    run: RunData
    base: EvalData
    trained: EvalData
    vs_base: Paired | None
    vs_base_reason: str | None
    sampled: dict[str, EvalData]  # its sampled evals (pass_at_k_evals), loaded once


def _is_val(key: str) -> bool:
    return key.startswith(("val-core/", "val-aux/")) or key == TESTING_KEY


def training_steps(run: RunData) -> list[int]:
    """Steps with training metrics (step 0 holds only the validation before training)."""
    return sorted({s for k, pts in run.series.items() if not _is_val(k) for s, _ in pts})


def validation_steps(run: RunData) -> set[int]:
    return {s for k, pts in run.series.items() if _is_val(k) for s, _ in pts}


def mean_step_time(run: RunData) -> tuple[float | None, int]:
    """Mean of timing_s/step over the steps without a validation pass (those include its time), and their count."""
    skip = validation_steps(run)
    times = [v for s, v in run.series.get(STEP_TIME_KEY, []) if s not in skip]
    return (sum(times) / len(times) if times else None), len(times)


def algorithm(cfg: dict[str, Any]) -> str | None:
    """The advantage estimator, plus the self-aligned reward when the run's trainer added it.

    >>> algorithm({"algorithm": {"adv_estimator": "gae"}, "trainer": {"v1": {"trainer_mode": "self_aligned_sync"}},
    ...            "self_aligned": {"alpha": 0.2}})
    'gae + self-aligned reward (alpha 0.2)'
    >>> algorithm({"algorithm": {"adv_estimator": "grpo"}}), algorithm({})
    ('grpo', None)
    """
    est = _get(cfg, "algorithm.adv_estimator")
    if est is None:
        return None
    if self_aligned(cfg):
        return f"{est} + self-aligned reward (alpha {fmt(_get(cfg, 'self_aligned.alpha'))})"
    return est


def kl_setting(cfg: dict[str, Any]) -> str:
    """KL to the reference: as a reward penalty (PPO recipe) and/or as a loss term (GRPO recipe).

    >>> kl_setting({"algorithm": {"use_kl_in_reward": True, "kl_ctrl": {"kl_coef": 0.001, "type": "fixed"}},
    ...             "actor_rollout_ref": {"actor": {"use_kl_loss": False}}})
    'in reward 0.001 (fixed); no KL loss'
    >>> kl_setting({"algorithm": {"use_kl_in_reward": False}, "actor_rollout_ref": {"actor": {
    ...     "use_kl_loss": True, "kl_loss_coef": 0.001, "kl_loss_type": "low_var_kl"}}})
    'no KL in reward; loss 0.001 (low_var_kl)'
    >>> kl_setting({"algorithm": {"use_kl_in_reward": False}})
    'no KL in reward; KL loss missing / not yet run'
    """
    in_reward = _get(cfg, "algorithm.use_kl_in_reward")
    in_loss = _get(cfg, "actor_rollout_ref.actor.use_kl_loss")
    if in_reward is None:
        reward = f"KL in reward {MISSING}"
    elif in_reward:
        reward = f"in reward {fmt(_get(cfg, 'algorithm.kl_ctrl.kl_coef'))} ({fmt(_get(cfg, 'algorithm.kl_ctrl.type'))})"
    else:
        reward = "no KL in reward"
    if in_loss is None:
        loss = f"KL loss {MISSING}"
    elif in_loss:
        loss = (f"loss {fmt(_get(cfg, 'actor_rollout_ref.actor.kl_loss_coef'))} "
                f"({fmt(_get(cfg, 'actor_rollout_ref.actor.kl_loss_type'))})")
    else:
        loss = "no KL loss"
    return f"{reward}; {loss}"


def budget(run: RunData) -> dict[str, int | None]:
    """Steps completed, prompts per step, responses per prompt and their product (answers sampled in training)."""
    steps = training_steps(run)
    done = max(steps) if steps else None
    prompts = _get(run.config, "data.train_batch_size")
    n = _get(run.config, "actor_rollout_ref.rollout.n")
    total = done * prompts * n if None not in (done, prompts, n) else None
    return {"steps": done, "prompts_per_step": prompts, "responses_per_prompt": n, "sampled_answers": total}


def _eval_json(ev: EvalData) -> dict[str, Any] | None:
    if not ev.found:
        return None
    m = ev.metrics
    return {"accuracy": m.get("accuracy"), "accuracy_ci95": m.get("accuracy_ci95"), "correct": m.get("correct"),
            "n": m.get("n"), "data": data_label(m), "truncation_rate": m.get("truncation_rate"),
            "output_tokens": m.get("output_tokens")}


def _paired_json(p: Paired | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {k: getattr(p, k) for k in ("n", "both_right", "fixed", "broken", "both_wrong", "p_value",
                                       "base_accuracy", "trained_accuracy", "caveats")}


def _pair_json(p: Paired | None) -> dict[str, Any] | None:
    """A trained-vs-trained pairing, named by side (compare() puts A in its "base" slot)."""
    if p is None:
        return None
    return {"n": p.n, "a_accuracy": p.base_accuracy, "b_accuracy": p.trained_accuracy, "both_right": p.both_right,
            "only_a_right": p.broken, "only_b_right": p.fixed, "both_wrong": p.both_wrong, "p_value": p.p_value,
            "caveats": p.caveats}


def _accuracy(ev: EvalData) -> str:
    if not ev.found:
        return f"{MISSING} ({ev.problem})"
    m = ev.metrics
    lo, hi = m["accuracy_ci95"]
    return f"**{pct(m['accuracy'])}** [{pct(lo)}, {pct(hi)}] ({m['correct']}/{m['n']}, {data_label(m)})"


def _vs_base(e: Entry) -> str:
    p = e.vs_base
    if p is None:
        return f"not paired: {e.vs_base_reason}"
    text = f"{p.fixed} fixed / {p.broken} broken of {p.n}, p = {p.p_value:.3g}"
    return text + "".join(f" (caveat: {c})" for c in p.caveats)


def _lengths(ev: EvalData) -> str:
    tok = (ev.metrics or {}).get("output_tokens") or {}
    if not ev.found or not tok:
        return MISSING
    return f"{fmt(tok.get('mean'), '.0f')} / {fmt(tok.get('p50'), '.0f')} / {fmt(tok.get('p90'), '.0f')}"


def phase_times(run: RunData) -> str:
    """Mean seconds per phase over the steady steps (the report's rule: no validation, no checkpoint,
    not a launch's first step)."""
    from gsm8k_rl.report.noise import PHASES, steady_steps

    steps = set(steady_steps(run))
    parts = []
    for phase in PHASES:
        vals = [v for s, v in run.series.get(f"timing_s/{phase}", []) if s in steps]
        if vals and phase != "adv":
            parts.append(f"{phase} {sum(vals) / len(vals):.2f}")
    return " / ".join(parts) if parts else MISSING


def cost_per_point(e: Entry) -> dict[str, float | None]:
    """What the training steps cost (tokens through the model, GPU-seconds) and per point of greedy
    accuracy gained over the run's own base eval (None where a figure is missing or nothing was gained)."""
    tokens = sum(v for _, v in e.run.series.get("perf/total_num_tokens", [])) or None
    gpus = _get(e.run.config, "trainer.n_gpus_per_node") or 1
    nodes = _get(e.run.config, "trainer.nnodes") or 1
    seconds = sum(v for _, v in e.run.series.get(STEP_TIME_KEY, [])) * gpus * nodes or None
    gain = None
    if e.base.found and e.trained.found:
        gain = 100 * (e.trained.metrics["accuracy"] - e.base.metrics["accuracy"])
    def per(x: float | None) -> float | None:
        return x / gain if x is not None and gain is not None and gain > 0 else None

    return {"training_tokens": tokens, "gpu_seconds": seconds, "points_gained": gain,
            "tokens_per_point": per(tokens), "gpu_seconds_per_point": per(seconds)}


def pass_at_k_evals(run: RunData) -> dict[str, EvalData]:
    """The run's sampled evals (eval/*/ with pass@k, from `gsm8k-rl eval --samples K`), by folder name."""
    folder = run.path / "eval" if run.path else None
    if folder is None or not folder.is_dir():
        return {}
    found = {}
    for sub in sorted(folder.iterdir()):
        if (sub / "metrics.json").is_file():
            ev = load_eval(sub.name, sub)
            if ev.found and "pass_at_k" in ev.metrics:
                found[sub.name] = ev
    return found


def sampled_evals(entries: list[Entry]) -> list[EvalData]:
    """Every sampled eval of the runs, named `run: folder`; one copied into several run folders (e.g. the
    base model's, shared by runs from one base) is kept once, under the first run that has it."""
    seen, found = set(), []
    for e in entries:
        for name, ev in e.sampled.items():
            key = (ev.metrics.get("settings_hash"), ev.metrics.get("correct"), ev.metrics.get("n_answers"))
            if key in seen:
                continue
            seen.add(key)
            found.append(EvalData(f"{e.name}: {name}", ev.path, ev.metrics, ev.samples, ev.settings))
    return found


def _pass_at_k_section(sampled: list[EvalData], solved: list, out: Path) -> list[str]:
    if not sampled:
        return []
    plot_pass_at_k(sampled, out / "pass_at_k.png")
    return ["## pass@k: what each model can solve at all", "", "![pass@k](pass_at_k.png)", "",
            "pass@k (unbiased, from K samples per problem) and maj@k of every sampled eval in the runs' `eval/` "
            "folders (`gsm8k-rl eval --samples K`); the table above gives their values at a few k.", "",
            *solved_by_any_section(solved)]


def _pass_at_k_cell(e: Entry) -> str:
    found = e.sampled
    if not found:
        return MISSING
    cells = []
    for name, ev in found.items():
        n = ev.metrics["samples_per_problem"]
        ks = sorted({1, 4, 16, n} & set(range(1, n + 1)))
        cells.append(f"{name}: " + ", ".join(f"pass@{k} {pct(ev.metrics['pass_at_k'][str(k)])}" for k in ks)
                     + f", maj@{n} {pct(ev.metrics['maj_at_k'][str(n)])}")
    return "; ".join(cells)


def _run_rows(entries: list[Entry], where: Any) -> list[tuple[str, ...]]:
    cols: list[list[str]] = []
    for e in entries:
        run, cfg = e.run, e.run.config
        b = budget(run)
        step_time, n_times = mean_step_time(run)
        planned = _first(run.info, "total_training_steps") or _get(cfg, "trainer.total_training_steps")
        total = (f"{b['sampled_answers']:,} ({b['steps']} x {b['prompts_per_step']} x {b['responses_per_prompt']})"
                 if b["sampled_answers"] is not None else MISSING)
        val = sorted(k for k in run.series if VAL_KEY.match(k))
        cols.append([
            where(run.path),
            fmt(_first(run.info, "model") or _get(cfg, "actor_rollout_ref.model.path")),
            fmt(_first(run.info, "config", "config_name", "recipe")),
            fmt(algorithm(cfg)),
            fmt(b["responses_per_prompt"]),
            fmt(b["prompts_per_step"]),
            f"{fmt(b['steps'])} of {fmt(planned)}",
            total,
            kl_setting(cfg),
            fmt(_get(cfg, "actor_rollout_ref.actor.optim.lr")),
            f"{fmt(step_time, '.1f')} s over {n_times} steps" if step_time is not None else MISSING,
            "; ".join(f"{pct(run.series[k][-1][1])} at step {run.series[k][-1][0]} (`{k}`)" for k in val) or MISSING,
            _accuracy(e.base),
            _accuracy(e.trained),
            _vs_base(e),
            _lengths(e.trained),
            pct((e.trained.metrics or {}).get("truncation_rate")),
            pct((e.trained.metrics or {}).get("no_answer_rate")),
            phase_times(run),
            *_cost_cells(cost_per_point(e)),
            _pass_at_k_cell(e),
        ])
    labels = [
        "run folder", "model", "config", "algorithm (adv. estimator)", "responses per prompt (rollout.n)",
        "prompts per step (data.train_batch_size)", "steps completed (of planned)",
        "answers sampled in training (steps x prompts x n)", "KL to reference", "actor lr",
        "mean step time (timing_s/step, steps without validation)", "last validation accuracy",
        "base greedy accuracy [95% Wilson]", "trained greedy accuracy [95% Wilson]",
        "trained vs own base (fixed / broken, exact McNemar p)", "trained output tokens mean / p50 / p90",
        "trained truncated (hit max new tokens)", "trained with no number (no answer)",
        "seconds per phase (steady steps)", "tokens through the model in training (perf/total_num_tokens)",
        "GPU-seconds of training steps", "points gained (trained - base)", "tokens per point gained",
        "GPU-seconds per point gained", "pass@k / maj@k (sampled evals in eval/)",
    ]
    return [(label, *(c[i] for c in cols)) for i, label in enumerate(labels)]


def _cost_cells(c: dict[str, float | None]) -> list[str]:
    gain = c["points_gained"]
    def per(key: str) -> str:
        return "no gain" if gain is not None and gain <= 0 else fmt(c[key], ",.0f")

    return [fmt(c["training_tokens"], ",.0f"), fmt(c["gpu_seconds"], ",.0f"),
            f"{gain:+.1f}" if gain is not None else MISSING, per("tokens_per_point"), per("gpu_seconds_per_point")]


def pair_trained(a: Entry, b: Entry) -> tuple[Paired | None, str | None]:
    """Trained vs trained on the same problems; (None, reason) when the two evals cannot be paired."""
    for e in (a, b):
        if not e.trained.found:
            return None, f"{e.name} has no trained eval ({e.trained.problem})"
    paired, reason = compare(a.trained, b.trained)  # a in the "base" slot: broken = only a right, fixed = only b right
    return paired, reason


def _pairs_section(entries: list[Entry], pairs: list[tuple[Entry, Entry, Paired | None, str | None]]) -> list[str]:
    lines = ["## Trained vs trained (paired, same problems)", ""]
    if len(entries) < 2:
        return lines + ["One run only: nothing to pair.", ""]
    rows, notes = [], []
    for a, b, p, reason in pairs:
        ba, bb = budget(a.run)["sampled_answers"], budget(b.run)["sampled_answers"]
        same = "same" if ba is not None and ba == bb else f"differ: {fmt(ba, ',')} vs {fmt(bb, ',')}"
        if p is None:
            notes.append(f"- **{a.name} vs {b.name}, not paired:** {reason}.")
            continue
        rows.append((a.name, b.name, p.n, pct(p.base_accuracy), pct(p.trained_accuracy),
                     f"{100 * (p.trained_accuracy - p.base_accuracy):+.1f} points", p.broken, p.fixed,
                     f"{p.p_value:.3g}", same))
        notes += [f"- {a.name} vs {b.name}, caveat: {c}." for c in p.caveats]
    if rows:
        lines += [_table(["A", "B", "problems", "A accuracy", "B accuracy", "B - A", "only A right", "only B right",
                          "exact McNemar p", "answers sampled in training"], rows), ""]
    lines += notes + ([""] if notes else [])
    return lines


def _colors(n: int) -> list[str]:
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(n)]


def _curve_panel(ax: Any, entries: list[Entry], colors: list[str], key: str, title: str, ylabel: str,
                 also: tuple[str, str] | None = None) -> None:
    """One metric of every run on shared axes; `also` = (metric, label) drawn dashed for the runs that log it."""
    def has_also(e: Entry) -> bool:
        return bool(also and e.run.series.get(also[0]))

    if not any(e.run.series.get(key) or has_also(e) for e in entries):
        _missing_panel(ax, f"{title} ({key})")
        return
    for e, c in zip(entries, colors, strict=True):
        if e.run.series.get(key):
            _plot_series(ax, e.run.series[key], e.name, c)
        elif not has_also(e):  # said in the legend, not dropped
            ax.plot([], [], color=c, label=f"{e.name}: {MISSING}")
        if has_also(e):
            _plot_series(ax, e.run.series[also[0]], f"{e.name}: {also[1]}", c, linestyle="--")
    dashed = any(has_also(e) for e in entries)
    ax.set_title(f"{title} ({key}" + (f"; dashed: {also[0]})" if dashed else ")"))
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def _validation_panel(ax: Any, entries: list[Entry], colors: list[str]) -> None:
    title = "Validation accuracy (greedy, during training)"
    if not any(VAL_KEY.match(k) for e in entries for k in e.run.series):
        _missing_panel(ax, title)
        return
    styles = ["-", "--", ":", "-."]
    for e, c in zip(entries, colors, strict=True):
        keys = sorted(k for k in e.run.series if VAL_KEY.match(k))
        if not keys:
            ax.plot([], [], color=c, label=f"{e.name}: {MISSING}")
        for j, k in enumerate(keys):
            pts = e.run.series[k]
            src = VAL_KEY.match(k).group("source")
            ax.plot([s for s, _ in pts], [100 * v for _, v in pts], color=c, marker="o", markersize=3,
                    linestyle=styles[j % len(styles)], label=e.name if len(keys) == 1 else f"{e.name} ({src})")
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def _length_panel(ax: Any, entries: list[Entry], colors: list[str]) -> None:
    title = "Trained eval: output length (CDF)"
    have = [(e, c) for e, c in zip(entries, colors, strict=True) if e.trained.samples]
    if not have:
        _missing_panel(ax, title)
        return
    for e, c in zip(entries, colors, strict=True):
        lengths = [s["n_output_tokens"] for s in e.trained.samples.values() if s.get("n_output_tokens") is not None]
        if not lengths:
            ax.plot([], [], color=c, label=f"{e.name}: {MISSING}")
            continue
        m = e.trained.metrics or {}
        ax.ecdf(lengths, color=c, label=f"{e.name}: n={len(lengths)}, accuracy {pct(m.get('accuracy'))}, "
                                         f"truncated {pct(m.get('truncation_rate'))}")
    ax.set_title(title)
    ax.set_xlabel("output tokens per answer")
    ax.set_ylabel("share of answers at most this long")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def plot_compare(entries: list[Entry], path: Path) -> None:
    """Six shared-axis panels: training score, response length, validation accuracy, trained output-length CDF,
    KL to the reference and policy entropy (how far each run moved the policy for what it gained)."""
    import matplotlib.pyplot as plt

    colors = _colors(len(entries))
    fig, axes = plt.subplots(3, 2, figsize=(13, 13), constrained_layout=True)
    _curve_panel(axes[0, 0], entries, colors, SCORE_KEY, "Training reward", "mean score per response",
                 also=(SA_CORRECT_KEY, "correctness only (without alpha x R_SA)"))
    _curve_panel(axes[0, 1], entries, colors, LENGTH_KEY, "Response length in training", "tokens")
    _validation_panel(axes[1, 0], entries, colors)
    _length_panel(axes[1, 1], entries, colors)
    _curve_panel(axes[2, 0], entries, colors, KL_REWARD_KEY, "KL to the reference", "nats per token",
                 also=(KL_LOSS_KEY, "KL loss"))
    _curve_panel(axes[2, 1], entries, colors, ENTROPY_KEY, "Policy entropy", "nats per token")
    fig.suptitle("Runs compared: " + ", ".join(e.name for e in entries))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_entry(name: str, run_dir: str | Path) -> Entry:
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"run folder {path} (run {name!r}) does not exist or is not a folder")
    run = load_run(path)
    base, trained = load_eval("base", path / "eval" / "base"), load_eval("trained", path / "eval" / "trained")
    vs_base, reason = compare(base, trained)
    if vs_base is None and not (base.found and trained.found):
        reason += "; " + "; ".join(f"{ev.name}: {ev.problem}" for ev in (base, trained) if not ev.found)
    return Entry(name, run, base, trained, vs_base, reason, pass_at_k_evals(run))


def run_names(run_dirs: list[str], names: list[str] | None) -> list[str]:
    """--name per run, else each folder's name; duplicates refused (the tables and legends key on them)."""
    if names:
        if len(names) != len(run_dirs):
            raise UserError(f"{len(names)} --name for {len(run_dirs)} run folders; give one --name per run folder, in "
                            "order")
        chosen = list(names)
    else:
        chosen = [Path(os.path.abspath(d)).name for d in run_dirs]
    seen: dict[str, str] = {}
    for name, d in zip(chosen, run_dirs, strict=True):
        if not name:
            raise UserError(f"run folder {d}: empty name; give --name")
        if name in seen:
            how = "--name" if names else "folder name"
            raise UserError(f"two runs are named {name!r} ({how}; folders {seen[name]} and {d}); "
                            "give each run a distinct --name")
        seen[name] = d
    return chosen


def write_compare(run_dirs: list[str], names: list[str] | None, out: str | Path) -> Path:
    """Write compare.md, compare.json and compare.png into `out`; returns the path of compare.md."""
    import matplotlib

    matplotlib.use("Agg")
    chosen = run_names(run_dirs, names)
    entries = [load_entry(n, d) for n, d in zip(chosen, run_dirs, strict=True)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = report_root(out)

    def where(path: Path | None) -> str:
        return display_path(path, root) if path else MISSING

    pairs = [(a, b, *pair_trained(a, b)) for i, a in enumerate(entries) for b in entries[i + 1:]]
    sampled = sampled_evals(entries)
    solved = solved_pairs(sampled)
    plot_compare(entries, out / "compare.png")

    lines = [
        "# Runs compared",
        "",
        (f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by gsm8k-rl {__version__}. "
         "Every number is read from the run folders (metrics.jsonl, resolved_config.yaml, run_info.json, "
         f"eval/base, eval/trained) or computed from them; \"{MISSING}\" marks what they do not contain. "
         "Accuracy is greedy, on each run's own evals; p-values are exact McNemar tests on the problems exactly one "
         "side solved. Paths under the folder holding this one are relative to it."),
        "",
        "## Runs",
        "",
        _table(["", *(e.name for e in entries)], _run_rows(entries, where)),
        "",
        *_pairs_section(entries, pairs),
        *_pass_at_k_section(sampled, solved, out),
        "## Curves and output lengths",
        "",
        "![runs compared](compare.png)",
        "",
        ("Training reward is `critic/score/mean`, the reward function's score before the KL penalty; a self-aligned "
         f"run's includes alpha x R_SA, so its correctness part (`{SA_CORRECT_KEY}`) is drawn dashed beside it. The "
         "fourth panel is the trained evals' output lengths, where a method that shortens answers shows its curve to "
         f"the left. KL is the mean per-token KL to the reference: `{KL_REWARD_KEY}` where it is paid in the reward "
         f"(PPO), `{KL_LOSS_KEY}` dashed where it is a loss (GRPO); with entropy it shows how far each run moved the "
         "policy for what it gained."),
        "",
    ]
    (out / "compare.md").write_text(relative_to_root("\n".join(lines), root), encoding="utf-8")

    summary = {
        "runs": [
            {
                "name": e.name,
                "folder": where(e.run.path),
                "config": _first(e.run.info, "config", "config_name", "recipe"),
                "algorithm": algorithm(e.run.config),
                "adv_estimator": _get(e.run.config, "algorithm.adv_estimator"),
                **budget(e.run),
                "kl": kl_setting(e.run.config),
                "actor_lr": _get(e.run.config, "actor_rollout_ref.actor.optim.lr"),
                "mean_step_time_s": mean_step_time(e.run)[0],
                "step_time_steps": mean_step_time(e.run)[1],
                "base": _eval_json(e.base),
                "base_missing": e.base.problem,
                "trained": _eval_json(e.trained),
                "trained_missing": e.trained.problem,
                "vs_base": _paired_json(e.vs_base),
                "vs_base_reason": e.vs_base_reason,
                "cost": cost_per_point(e),
                "pass_at_k": {name: {k: ev.metrics[k] for k in ("samples_per_problem", "pass_at_k", "maj_at_k")}
                              for name, ev in e.sampled.items()},
            }
            for e in entries
        ],
        "pairs": [{"a": a.name, "b": b.name, "paired": _pair_json(p), "reason": reason} for a, b, p, reason in pairs],
        # sampled evals paired on "any of the K answers right" (a_accuracy / b_accuracy: the share solved)
        "solved_by_any_pairs": [{"a": a.name, "b": b.name, "paired": _pair_json(p), "reason": reason}
                                for a, b, p, reason in solved],
    }
    (out / "compare.json").write_text(relative_to_root(json.dumps(summary, indent=2), root) + "\n", encoding="utf-8")
    log.info("wrote %s", out / "compare.md")
    return out / "compare.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by `gsm8k-rl run`")
    p.add_argument("--name", action="append", default=None, metavar="NAME",
                   help="name of each run, once per RUN_DIR in order (default: the folder names)")
    p.add_argument("--out", required=True, help="folder for compare.md, compare.json and compare.png")


def run(args: argparse.Namespace) -> int:
    print(write_compare(args.run_dirs, args.name, args.out))
    return 0
