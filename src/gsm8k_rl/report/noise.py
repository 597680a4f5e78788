"""Two report sections that read more than the metrics: the eval's run-to-run noise, and where a
step's time and memory go.

Noise: VERL's greedy validation decodes the same test problems with the same prompt and scores them
with the same reward as `gsm8k-rl eval`, through another engine (VERL's vLLM server, batched as it
batches, at training's response length). At step 0 it decodes the base weights, at the last step the
weights that were exported: two decodings of the same weights, paired problem by problem. How many
verdicts they disagree on is the noise a gain must stand clear of (bf16 greedy decoding is not
batch-invariant; long answers part ways on the smallest numeric difference).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsm8k_rl.report.format import MISSING, _table, fmt, pct
from gsm8k_rl.report.load import EvalData, RunData

# VERL's timing_s/* keys in the order a PPO step runs them
PHASES = ("gen", "old_log_prob", "ref", "values", "adv", "update_critic", "update_actor", "update_weights", "step")
MEMORY_KEYS = ("actor/perf/max_memory_allocated_gb", "actor/perf/max_memory_reserved_gb",
               "critic/perf/max_memory_allocated_gb", "critic/perf/max_memory_reserved_gb")
# steps whose time includes a validation pass or a checkpoint save
EXTRA_WORK = ("timing_s/testing", "timing_s/save_checkpoint")
EXPORT_STEP = re.compile(r"global_step_(\d+)")


def question_of(prompt: str) -> str:
    """The user turn of a chat prompt as VERL dumps it, special tokens skipped
    ("system\\n...\\nuser\\nQ\\nassistant\\n").

    >>> question_of("system\\nYou are a helpful assistant.\\nuser\\nWhat is 2+2?\\nassistant\\n")
    'What is 2+2?'
    """
    if "\nuser\n" not in prompt:
        raise ValueError(f"no user turn in the dumped prompt {prompt[:80]!r}")
    return prompt.split("\nuser\n", 1)[1].rsplit("\nassistant\n", 1)[0].strip()


def validation_dump(run: Path, step: int) -> dict[str, dict] | None:
    """trainer.validation_data_dir/<step>.jsonl[.gz] by question: output and score; None if absent."""
    for path in (run / "val_generations" / f"{step}.jsonl", run / "val_generations" / f"{step}.jsonl.gz"):
        if path.is_file():
            break
    else:
        return None
    rows: dict[str, dict] = {}
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows[question_of(r["input"])] = {"output": r["output"], "score": float(r["score"])}
    return rows


def dump_steps(run: Path) -> list[int]:
    folder = run / "val_generations"
    if not folder.is_dir():
        return []
    return sorted({int(p.name.split(".")[0]) for p in folder.iterdir() if p.name.split(".")[0].isdigit()})


@dataclass
class Agreement:
    """Two greedy decodings of the same weights, paired by question."""

    what: str
    n: int
    right_a: int
    right_b: int
    only_a: int
    only_b: int
    same_text: int

    @property
    def disagree(self) -> int:
        return self.only_a + self.only_b


def agreement(what: str, ev: EvalData, dump: dict[str, dict]) -> Agreement | None:
    if (ev.settings.get("samples") or 1) > 1:  # VERL validates greedily: only a greedy eval decodes the same way
        return None
    by_q = {s["question"].strip(): s for s in ev.samples.values()}
    common = [q for q in by_q if q in dump]
    if not common:
        return None
    a = [by_q[q]["score"] >= 0.5 for q in common]
    b = [dump[q]["score"] >= 0.5 for q in common]
    return Agreement(what, len(common), sum(a), sum(b), sum(x and not y for x, y in zip(a, b, strict=True)),
                     sum(y and not x for x, y in zip(a, b, strict=True)),
                     sum(by_q[q]["output"].strip() == dump[q]["output"].strip() for q in common))


def agreements(run: RunData, base: EvalData, trained: EvalData) -> list[Agreement]:
    """Base eval vs VERL's validation at step 0; trained eval vs the validation at the exported step."""
    if not run.found or run.path is None:
        return []
    out = []
    steps = dump_steps(run.path)
    if base.found and 0 in steps:
        pair = agreement("base weights: `gsm8k-rl eval` vs VERL's validation at step 0", base,
                         validation_dump(run.path, 0))
        out += [pair] if pair else []
    model = str((trained.metrics or {}).get("model") or "")
    m = EXPORT_STEP.search(model)
    if trained.found and m and int(m.group(1)) in steps:
        step = int(m.group(1))
        pair = agreement(f"trained weights (step {step}): `gsm8k-rl eval` of the export vs VERL's validation "
                         f"at step {step}", trained, validation_dump(run.path, step))
        out += [pair] if pair else []
    return out


def noise_section(run: RunData, base: EvalData, trained: EvalData, max_len: Any = None) -> list[str]:
    lines = ["## Noise floor: the same weights decoded twice", ""]
    pairs = agreements(run, base, trained)
    if not pairs:
        return lines + [f"{MISSING}: needs VERL's validation dumps (trainer.validation_data_dir) at step 0 or at the "
                        "exported step beside the evals.", ""]
    rows = [(p.what, p.n, f"{p.right_a} / {p.right_b}", f"{p.only_a} / {p.only_b}",
             f"**{p.disagree}** ({pct(p.disagree / p.n)})", f"{p.right_a - p.right_b:+d}",
             f"{p.same_text} ({pct(p.same_text / p.n)})")
            for p in pairs]
    lines += [
        _table(["weights", "problems", "right: eval / validation", "right only in eval / only in validation",
                "verdicts that differ", "difference in correct", "identical outputs"], rows),
        "",
        "Both decode greedily with the training prompt and score with the training reward; they differ in the engine "
        "(`gsm8k-rl eval`: vLLM's offline engine, one batch, the eval's token cap; VERL's validation: its vLLM server, "
        f"its own batching, training's response length {fmt(max_len)}). bf16 greedy decoding is not batch-invariant, "
        "so the same weights get different verdicts on some problems: a gain between two models no larger than the "
        "'verdicts that differ' and 'difference in correct' columns is within this noise.",
        "",
    ]
    return lines


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def steady_steps(run: RunData) -> list[int]:
    """Logged steps without a validation pass or a checkpoint save in their time, and without the
    launch's first step (kernels compile and caches fill then), a rule fixed before any result is seen;
    the first step stays when fewer than three would be left."""
    logged = sorted({s for s, _ in run.series.get("timing_s/step", [])})
    steps = set(logged)
    for key in EXTRA_WORK:
        steps -= {s for s, _ in run.series.get(key, [])}
    if logged and len(steps - {logged[0]}) >= 3:
        steps.discard(logged[0])
    return sorted(steps)


def timing_section(run: RunData) -> list[str]:
    lines = ["## Step time by phase, and memory", ""]
    steps = steady_steps(run)
    if not run.found or not steps:
        return lines + [f"{MISSING}: no `timing_s/*` in metrics.jsonl.", ""]
    rows = []
    for phase in PHASES:
        pts = {s: v for s, v in run.series.get(f"timing_s/{phase}", []) if s in steps}
        if not pts:
            continue
        vals = sorted(pts.values())
        rows.append((f"`{phase}`" if phase != "step" else "**step**", fmt(_mean(vals), ".2f"),
                     fmt(vals[len(vals) // 2], ".2f"), f"{vals[0]:.2f} / {vals[-1]:.2f}"))
    first, first_s = min(run.series["timing_s/step"])
    if first not in steps:
        left_out = (f"the first step, {first} ({first_s:.1f} s), left out: a launch's first step compiles kernels "
                    "and fills caches")
    else:
        left_out = f"the first step, {first}, included: too few steps without it"
    lines += [
        f"VERL's `timing_s/*`, over the {len(steps)} logged steps without a validation pass or a checkpoint save "
        f"(steps {steps[0]}-{steps[-1]}; {left_out}).",
        "",
        _table(["phase", "mean s", "median s", "min / max s"], rows),
        "",
    ]
    for key in EXTRA_WORK:
        pts = run.series.get(key, [])
        if pts:
            lines.append(f"- `{key}`: {len(pts)} times, {_mean([v for _, v in pts]):.1f} s on average.")
    mem = [(k, max(v for _, v in run.series[k])) for k in MEMORY_KEYS if run.series.get(k)]
    if mem:
        lines.append("- Peak device memory over the run (VERL's `*/perf/max_memory_*_gb`, per GPU): "
                     + ", ".join(f"{k.split('/perf/')[0]} {k.rsplit('_', 2)[-2]} {v:.1f} GiB" for k, v in mem) + ".")
    lines.append("")
    return lines
