"""Reading run and eval folders, and pairing two evals problem by problem."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.common.files import read_jsonl
from gsm8k_rl.launch.run_dir import RunDir
from gsm8k_rl.report.format import fmt

log = logging.getLogger(__name__)

# Greedy validation accuracy as VERL 0.9.1 logs it: val-core/<data_source>/<var>/mean@<n>, where var
# is "acc" when compute_score returns a float (the reward manager copies the score into "acc";
# "reward" then goes to val-aux/), and "reward" in older VERL versions.
VAL_KEY = re.compile(r"^val-core/(?P<source>.+)/(?P<var>[^/]+)/mean@\d+$")
# Counted by the truncation reward manager in validation (docs/config.md, "Truncated responses").
VAL_TRUNCATED_KEY = re.compile(r"^val-aux/(?P<source>.+)/truncated/mean@\d+$")


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


def self_aligned(cfg: dict[str, Any]) -> bool:
    """Whether the run's trainer added the self-aligned reward (gsm8k_rl/verl_ext/self_aligned.py)."""
    from gsm8k_rl.verl_ext.self_aligned import TRAINER_MODE

    return _get(cfg, "trainer.v1.trainer_mode") == TRAINER_MODE


def method_label(cfg: dict[str, Any]) -> str:
    """What the report calls the trained model: its advantage estimator (GAE -> PPO), SA- for the
    self-aligned reward.

    >>> method_label({}), method_label({"algorithm": {"adv_estimator": "grpo"}})
    ('PPO', 'GRPO')
    >>> method_label({"algorithm": {"adv_estimator": "gae"}, "trainer": {"v1": {"trainer_mode": "self_aligned_sync"}}})
    'SA-PPO'
    """
    est = _get(cfg, "algorithm.adv_estimator")
    name = "PPO" if est in (None, "gae") else str(est).upper()
    return f"SA-{name}" if self_aligned(cfg) else name


def read_metrics_jsonl(path: Path) -> dict[str, list[tuple[int, float]]]:
    """VERL file-logger lines `{"step": N, "data": {metric: value}}` -> metric -> [(step, value)] by step.

    A step logged twice (a restarted run) keeps its last value. Non-numeric values are skipped.
    """
    by_metric: dict[str, dict[int, float]] = {}
    expected = 'expected {"step": N, "data": {...}}'
    for lineno, row in read_jsonl(path, hint=expected):
        try:
            step, data = int(row["step"]), row["data"]
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}:{lineno}: not a VERL file-logger line ({exc}); {expected}") from exc
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
    run, files = RunData(path), RunDir(path)
    if files.metrics.is_file():
        run.series = read_metrics_jsonl(files.metrics)
    if files.run_info.is_file():
        try:
            run.info = json.loads(files.run_info.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path / files.run_info.name} is not valid JSON ({exc})") from exc
    run.config = files.config()
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
    from gsm8k_rl.evaluation.run import METRICS, SAMPLES, SETTINGS, read_samples

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

    The rendered prompts' hash covers the chat template and the tokenizer (evaluation/run.py hashes the
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
        "temperature": _first({"a": _get(m, "decoding.temperature"), "b": s.get("temperature")}, "a", "b"),
    }


def compare(base: EvalData, trained: EvalData) -> tuple[Paired | None, str | None]:
    """Paired comparison on the problems both evals scored; (None, reason) when not comparable."""
    if not (base.found and trained.found):
        return None, "needs both the base and the trained eval"
    sampled = [ev.name for ev in (base, trained) if (ev.settings.get("samples") or 1) > 1]
    if sampled:
        return None, (f"{' and '.join(sampled)} sampled several answers per problem: such evals are compared by "
                      "their pass@k and maj@k (below), not by paired verdicts")
    return _pair(base, trained, lambda s: s["score"])


def compare_solved(a: EvalData, b: EvalData) -> tuple[Paired | None, str | None]:
    """Two sampled evals with the same K answers per problem, paired on whether ANY of a problem's K answers
    is right (the per-problem form of pass@K). Whether RL narrows what a model can solve is argued from
    pass@k at large k; this says which problems moved and whether the difference is more than chance:
    `broken` counts problems only `a`'s samples solve (narrowing, when `a` is the base), `fixed` only `b`'s."""
    if not (a.found and b.found):
        return None, "needs both sampled evals"
    ks = [ev.metrics.get("samples_per_problem") or 1 for ev in (a, b)]
    if min(ks) < 2:
        return None, "both evals must sample several answers per problem (`gsm8k-rl eval --samples K`)"
    if ks[0] != ks[1]:
        return None, f"the two evals sampled different numbers of answers per problem ({ks[0]} vs {ks[1]})"
    return _pair(a, b, lambda s: 1.0 if s["n_correct"] > 0 else 0.0)


def solved_pairs(sampled: list[EvalData]) -> list[tuple[EvalData, EvalData, Paired | None, str | None]]:
    """compare_solved on every two of the sampled evals, in their order: (a, b, paired or None, reason)."""
    return [(a, b, *compare_solved(a, b)) for i, a in enumerate(sampled) for b in sampled[i + 1:]]


def _pair(base: EvalData, trained: EvalData, score: Any) -> tuple[Paired | None, str | None]:
    """The checks a paired test needs (same problems, same generation conditions), then the counts;
    `score` reads one problem's record of samples.jsonl as 0/1."""
    from gsm8k_rl.evaluation.stats import mcnemar_exact, paired_counts

    caveats = []
    for key, label in (("dataset", "dataset"), ("split", "split"), ("data_fingerprint", "data")):
        a, b = base.settings.get(key), trained.settings.get(key)
        if a is not None and b is not None and a != b:
            return None, f"the two evals used different {label} ({a} vs {b}); a paired test needs the same problems"
    a_cond, b_cond = generation_conditions(base), generation_conditions(trained)
    na, nb = (base.name, trained.name) if base.name != trained.name else ("A", "B")
    differ = [f"{label}: {na} {a_cond[label]}, {nb} {b_cond[label]}" for label in a_cond
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
        caveats.append(f"paired on the {len(idx)} problems both evals scored ({na} n={base.metrics['n']}, "
                       f"{nb} n={trained.metrics['n']})")
    for i in idx:
        if base.samples[i]["question"] != trained.samples[i]["question"]:
            return None, f"problem {i} differs between the two evals; they were not run on the same data"
    a = [score(base.samples[i]) for i in idx]
    b = [score(trained.samples[i]) for i in idx]
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
        fixed_examples=[i for i, x, y in zip(idx, a, b, strict=True) if x < 0.5 <= y],
        broken_examples=[i for i, x, y in zip(idx, a, b, strict=True) if x >= 0.5 > y],
        caveats=caveats,
    ), None
