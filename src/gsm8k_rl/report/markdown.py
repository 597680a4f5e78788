"""report.md and report.json: the sections, paths relative to the report, and `write_report`."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gsm8k_rl import __version__
from gsm8k_rl.report.format import MISSING, _fence, _table, duration, fmt, pct
from gsm8k_rl.report.load import (
    VAL_KEY,
    VAL_TRUNCATED_KEY,
    EvalData,
    Paired,
    RunData,
    _first,
    _get,
    compare,
    data_label,
    load_eval,
    load_run,
    method_label,
    run_wall_time,
    solved_pairs,
)
from gsm8k_rl.report.noise import noise_section, timing_section
from gsm8k_rl.report.plots import TRAINING_PANELS, plot_accuracy, plot_pass_at_k, plot_training, plot_validation

log = logging.getLogger(__name__)

# gsm8k_rl.verl_ext.reward_manager.CLASS_NAME, not imported: that module imports VERL
TRUNCATION_MANAGER = "TruncationRewardManager"
N_EXAMPLES = 3
EXAMPLE_TAIL_CHARS = 700


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
    return (f"its score, like any other: correctness only (reward manager {manager.get('source')}:"
            f"{manager.get('name')}; the spec)")


def partial_credit_setting(cfg: dict[str, Any]) -> str:
    """The reward of a wrong final number the response marked as its answer (gsm8k_rl/task/reward.py).

    >>> partial_credit_setting({"reward": {"custom_reward_function": {"reward_kwargs": {"partial_credit": 0.0}}}})
    '0 (off: correct -> 1.0, else 0.0; the spec)'
    >>> partial_credit_setting({"reward": {"custom_reward_function": {"reward_kwargs": {"partial_credit": 0.1}}}})[:58]
    '0.1 for a wrong final number marked as the answer; the tra'
    """
    value = _get(cfg, "reward.custom_reward_function.reward_kwargs.partial_credit")
    if not value:
        return "0 (off: correct -> 1.0, else 0.0; the spec)" + (
            "" if value is not None else "; not in this run's config")
    return (f"{value} for a wrong final number marked as the answer; the training score (critic/score/mean) includes "
            "it, validation accuracy (`acc`) and the evals count correct answers only")


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


def response_length_setting(run: RunData) -> str:
    """data.max_response_length, and how it was sized when `gsm8k-rl run --response-length auto` chose it."""
    value = fmt(_get(run.config, "data.max_response_length"))
    path = run.path / "response_length.json" if run.path else None
    if path is None or not path.is_file():
        return value
    r = json.loads(path.read_text())
    return (f"{value} (sized from the base eval by `--response-length auto`: its {r['coverage']:g} quantile of "
            f"{r['n']} greedy answers is {r['quantile_tokens']} tokens, rounded up to a multiple of {r['multiple']}; "
            f"{pct(r['covered'])} of them fit; eval cap {r['cap']})")


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
        ("actor lr / critic lr", f"{fmt(_get(cfg, 'actor_rollout_ref.actor.optim.lr'))} / "
                                 f"{fmt(_get(cfg, 'critic.optim.lr'))}"),
        ("KL in reward (coef)", f"{fmt(_get(cfg, 'algorithm.use_kl_in_reward'))} "
                                f"({fmt(_get(cfg, 'algorithm.kl_ctrl.kl_coef'))})"),
        ("max response length", response_length_setting(run)),
        ("reward of a truncated response (reward.reward_kwargs.truncated_reward)", truncation_setting(cfg)),
        ("partial credit (reward.custom_reward_function.reward_kwargs.partial_credit)", partial_credit_setting(cfg)),
        ("truncated in training (response_length/clip_ratio)", training_truncation(run.series)),
        *((f"truncated in validation (`{k}`), last", f"{pct(run.series[k][-1][1])} at step {run.series[k][-1][0]}")
          for k in sorted(run.series) if VAL_TRUNCATED_KEY.match(k)),
        ("chat-template kwargs", fmt(_get(cfg, "data.apply_chat_template_kwargs"))),
        ("GPUs", fmt(_first(info, "n_gpus", "gpus"))),
        ("hardware", fmt(json.dumps(hw) if isinstance(hw, (dict, list)) else hw)),
        ("start / end", f"{fmt(_first(info, 'start_time', 'started_at', 'start'))} / "
                        f"{fmt(_first(info, 'end_time', 'finished_at', 'ended_at', 'end'))}"),
        ("wall time (run_info)", duration(run_wall_time(info))),
        ("sum of logged step times (timing_s/step)",
         duration(sum(v for _, v in step_times)) if step_times else MISSING),
        ("validation points", fmt(len(next(iter(val.values()))) if val else None)),
    ]
    lines += [_table(["", "value"], rows), ""]
    other = {k: v for k, v in info.items() if not isinstance(v, (dict, list))}
    if other:
        lines += ["<details><summary>run_info.json</summary>", "", _table(["key", "value"], sorted(other.items())), "",
                  "</details>", ""]
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
    header = ["eval", "model", "data", "backend", "decoding", "prompt", "hardware", "wall time (last invocation)",
              "folder"]
    lines += [_table(header, rows), ""]
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
            f"{fmt(m['output_tokens']['mean'], '.0f')} / {fmt(m['output_tokens']['p90'], '.0f')} / "
            f"{fmt(m['output_tokens']['max'])}",
            fmt(m.get("tokens_per_s"), ".0f"),
        ))
    interval = next((ev.metrics.get("interval") for ev in evals if ev.found), None)
    lines += [
        _table(["eval", "accuracy", "95% interval", "no answer", "truncated", "output tokens mean / p90 / max",
                "tokens/s"], rows),
        "",
        f"Interval: {fmt(interval)}. No answer: no number could be extracted. "
        "Truncated: generation hit max new tokens.",
        "",
    ]
    found = [ev for ev in evals if ev.found]
    names = sorted({n for ev in found for n in ev.metrics.get("extractors", {})}, key=lambda n: (n != "ours", n))
    if names:
        lines += ["Accuracy of the same outputs under other answer extractors (headline = `ours`, the training "
                  "reward):", ""]
        rows = [
            (ev.name, *(pct(_get(ev.metrics, f"extractors.{n}.accuracy")) for n in names)) for ev in found
        ]
        lines += [_table(["eval", *names], rows), ""]
    return lines


def _pass_at_k_section(evals: list[EvalData], out: Path) -> list[str]:
    """pass@k / maj@k of the evals that sampled several answers per problem (`gsm8k-rl eval --samples K`)."""
    sampled = [ev for ev in evals if ev.found and "pass_at_k" in ev.metrics]
    if not sampled:
        return []
    plot_pass_at_k(sampled, out / "pass_at_k.png")
    n = min(ev.metrics["samples_per_problem"] for ev in sampled)
    ks = sorted({1, 2, 4, 8, 16, 32, 64, 128, n} & set(range(1, n + 1)))
    rows = []
    for ev in sampled:
        d = ev.metrics.get("decoding", {})
        rows.append((f"{ev.name} (T={fmt(d.get('temperature'))}, top-p {fmt(d.get('top_p'))}, seed "
                     f"{fmt(d.get('seed'))})",
                     *(f"{pct(ev.metrics['pass_at_k'][str(k)])} / {pct(ev.metrics['maj_at_k'][str(k)])}" for k in ks)))
    return [
        "## pass@k and majority vote", "", "![pass@k](pass_at_k.png)", "",
        _table(["eval", *(f"k={k}: pass@k / maj@k" for k in ks)], rows), "",
        f"From {n} sampled answers per problem: pass@k is the unbiased estimate of the chance that k answers "
        "hold at least one right one (Chen et al. 2021); maj@k scores the most frequent extracted answer of the "
        "first k with the same checker. The accuracy of a sampled eval above is its pass@1.", "",
        *solved_by_any_section(solved_pairs(sampled)),
    ]


def solved_by_any_section(pairs: list[tuple[EvalData, EvalData, Paired | None, str | None]]) -> list[str]:
    """The sampled evals paired per problem on "at least one of the K answers is right" (load.solved_pairs):
    pass@K as per-problem verdicts, so an exact McNemar test says whether one model solves problems the
    other never does (with the base first, `only A` is what training lost: narrowing)."""
    rows, notes = [], []
    for a, b, p, reason in pairs:
        if p is None:
            notes.append(f"- **{a.name} vs {b.name}, not paired:** {reason}.")
            continue
        k = a.metrics["samples_per_problem"]
        rows.append((a.name, b.name, k, p.n, f"{p.both_right + p.broken} ({pct(p.base_accuracy)})",
                     f"{p.both_right + p.fixed} ({pct(p.trained_accuracy)})", p.broken, p.fixed, p.both_wrong,
                     f"{p.p_value:.3g}"))
        notes += [f"- {a.name} vs {b.name}, caveat: {c}." for c in p.caveats]
    if not rows and not notes:
        return []
    lines = ["### Solved by at least one of K answers, paired per problem", ""]
    if rows:
        lines += [_table(["A", "B", "K", "problems", "A solves", "B solves", "only A solves", "only B solves",
                          "neither", "exact McNemar p"], rows), "",
                  "A problem counts as solved when any of its K sampled answers is right. With the base model as A, "
                  "`only A solves` are problems training made the model stop solving at all (narrowing), `only B "
                  "solves` problems it can now reach (widening).", ""]
    return lines + notes + ([""] if notes else [])


def _paired_section(base: EvalData, trained: EvalData, paired: Paired | None, reason: str | None,
                    label: str = "PPO") -> list[str]:
    lines = [f"## Base vs {label} (paired, same problems)", ""]
    if paired is None:
        if base.found and trained.found:  # both evals are there, but they cannot be paired
            return lines + [f"**Paired comparison not made:** {reason}.", ""]
        return lines + [f"Paired comparison: {MISSING} ({reason}).", ""]
    diff = paired.trained_accuracy - paired.base_accuracy
    rows = [
        ("problems paired", paired.n),
        ("base accuracy", pct(paired.base_accuracy)),
        (f"{label} accuracy", pct(paired.trained_accuracy)),
        (f"difference ({label} - base)", f"{100 * diff:+.1f} points"),
        (f"fixed (base wrong, {label} right)", paired.fixed),
        (f"broken (base right, {label} wrong)", paired.broken),
        ("both right / both wrong", f"{paired.both_right} / {paired.both_wrong}"),
        ("exact McNemar p (two-sided, on fixed vs broken)", f"{paired.p_value:.3g}"),
    ]
    lines += [_table(["", "value"], rows), ""]
    lines += [f"Caveat: {c}." for c in paired.caveats]
    if paired.caveats:
        lines.append("")
    for title, ids in ((f"fixed by {label}", paired.fixed_examples), (f"broken by {label}", paired.broken_examples)):
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
                f"- base: extracted `{b.get('extracted')}`, {b.get('n_output_tokens')} tokens, finish "
                f"{b.get('finish_reason')}",
                f"- {label}: extracted `{t.get('extracted')}`, {t.get('n_output_tokens')} tokens, finish "
                f"{t.get('finish_reason')}",
                "",
                f"Base output (last {EXAMPLE_TAIL_CHARS} characters):",
                "",
                _fence(b["output"][-EXAMPLE_TAIL_CHARS:]),
                "",
                f"{label} output (last {EXAMPLE_TAIL_CHARS} characters):",
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


def plot_title(shown: str, path: Path) -> str:
    """The run as a plot names it: as the report does when that is a relative path, else by the
    folder's own name (a PNG travels without the report, and no machine's absolute path belongs in it).

    >>> (plot_title("run", Path("/r/lp/run")), plot_title(".", Path("/r/lp")),
    ...  plot_title("/r/x/run_7", Path("/r/x/run_7")))
    ('run', 'lp', 'run_7')
    """
    return Path(os.path.abspath(path)).name if shown == "." or os.path.isabs(shown) else shown


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

    label = method_label(run.config)
    plot_accuracy(loaded, out / "accuracy.png", paired, reason if base.found and trained.found else None, label=label)
    plot_validation(run, out / "validation.png", [ev for ev in loaded if ev.name in ("base", "trained")])
    root = report_root(out)  # paths under the folder holding the report are written relative to it

    def where(path: Path) -> str:
        return display_path(path, root)

    plot_training(run, out / "training.png", title=plot_title(where(run.path), run.path) if run.found else None,
                  label=label)

    lines = [
        f"# GSM8K {label} report",
        "",
        f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by gsm8k-rl {__version__}. "
        f"Every number below is read from the run and eval folders named here; \"{MISSING}\" marks what they do "
        "not contain. "
        "Paths that lie under the folder holding this report's folder (`..` from here) are written relative to it; "
        "others are absolute.",
        "",
    ]
    if base.found and trained.found and paired is not None:
        lines += [
            f"**Headline:** base {pct(paired.base_accuracy)} -> {label} {pct(paired.trained_accuracy)} greedy accuracy "
            f"on {data_label(base.metrics)} (n={paired.n}); {paired.fixed} problems fixed, {paired.broken} broken, "
            f"exact McNemar p = {paired.p_value:.3g}.",
            "",
        ]
    elif base.found and trained.found:  # said before any number, not only in the paired section
        lines += [f"**No headline: the base and trained evals are not paired.** {reason}.", ""]
    lines += _run_section(run, where) + _evals_section(loaded, where) + _accuracy_section(loaded)
    lines += _pass_at_k_section(loaded, out) + _paired_section(base, trained, paired, reason, label)
    lines += noise_section(run, base, trained, _get(run.config, "data.max_response_length"))
    lines += _training_section(run) + timing_section(run)
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
            k: getattr(paired, k) for k in ("n", "both_right", "fixed", "broken", "both_wrong", "p_value",
                                            "base_accuracy", "trained_accuracy")
        },
        "paired_missing_reason": reason,
    }
    (out / "report.json").write_text(relative_to_root(json.dumps(summary, indent=2), root) + "\n")
    log.info("wrote %s", out / "report.md")
    return out / "report.md"
