"""Scoring and metrics of an eval: every answer scored by the training reward and, side by side,
by every extractor of task/extractors.py; accuracy with its Wilson interval; for sampled evals
pass@k and maj@k."""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections import Counter
from collections.abc import Sequence
from typing import Any

HEADLINE_EXTRACTOR = "ours"
CONFIDENCE = 0.95
INTERVAL_METHOD = "Wilson score interval, 95%"




@functools.lru_cache(maxsize=1)
def scoring_fingerprint() -> str:
    """Hash of the scoring code (reward + extractors): samples scored by older code are rescored."""
    from gsm8k_rl.task import extractors, reward

    src = inspect.getsource(reward) + inspect.getsource(extractors)
    return hashlib.sha256(src.encode()).hexdigest()[:12]


def score_output(output: str, gold: str) -> dict[str, Any]:
    """Training-reward score of one output plus its score under every named extractor."""
    from gsm8k_rl.task.extractors import EXTRACTORS
    from gsm8k_rl.task.reward import score_details

    details = score_details(output, gold)
    return {
        "extracted": details["extracted"],
        "score": float(details["score"]),
        "rule": details["rule"],
        "extractor_scores": {name: float(fn(output, gold)) for name, fn in EXTRACTORS.items()},
    }


def majority_vote(answers: Sequence[dict]) -> dict[str, Any]:
    """The most frequent extracted answer among `answers` (ties: the one that came first) and its
    score under the same checker; answers with no number do not vote.

    >>> a = [{"extracted": "3", "score": 0.0}, {"extracted": "5", "score": 1.0}, {"extracted": "5", "score": 1.0},
    ...      {"extracted": None, "score": 0.0}]
    >>> majority_vote(a)
    {'answer': '5', 'votes': 2, 'score': 1.0}
    >>> majority_vote(a[:2])["answer"], majority_vote([{"extracted": None, "score": 0.0}])
    ('3', {'answer': None, 'votes': 0, 'score': 0.0})
    """
    counts = Counter(a["extracted"] for a in answers if a["extracted"] is not None)
    if not counts:
        return {"answer": None, "votes": 0, "score": 0.0}
    top = max(counts.values())
    answer = next(a["extracted"] for a in answers if counts.get(a["extracted"]) == top)
    score = next(a["score"] for a in answers if a["extracted"] == answer)
    return {"answer": answer, "votes": top, "score": float(score)}


def sample_summary(drawn: Sequence[dict]) -> dict[str, Any]:
    """What a problem's sampled answers add up to: correct count, the mean score (its pass@1) and the
    majority vote of all of them."""
    n_correct = sum(1 for a in drawn if a["score"] >= 0.5)
    return {"n_samples": len(drawn), "n_correct": n_correct, "score": n_correct / len(drawn),
            "majority": majority_vote(drawn)}


def pass_at_k_table(rows: Sequence[dict], ks: Sequence[int] | None = None) -> dict[str, Any]:
    """pass@k (unbiased, from each problem's n samples) and maj@k (majority vote of its first k
    samples) averaged over the problems, for k = 1..n.

    >>> rows = [{"samples": [{"extracted": "1", "score": 1.0}, {"extracted": "2", "score": 0.0}]},
    ...         {"samples": [{"extracted": "2", "score": 0.0}, {"extracted": "2", "score": 0.0}]}]
    >>> t = pass_at_k_table(rows)
    >>> t["pass_at_k"], t["maj_at_k"]
    ({'1': 0.25, '2': 0.5}, {'1': 0.5, '2': 0.5})
    """
    from gsm8k_rl.evaluation.stats import pass_at_k

    n = min(len(r["samples"]) for r in rows)
    ks = list(ks or range(1, n + 1))
    correct = [sum(1 for a in r["samples"][:n] if a["score"] >= 0.5) for r in rows]
    return {
        "samples_per_problem": n,
        "pass_at_k": {str(k): sum(pass_at_k(n, c, k) for c in correct) / len(rows) for k in ks},
        "maj_at_k": {str(k): sum(majority_vote(r["samples"][:k])["score"] for r in rows) / len(rows) for k in ks},
        "solved_by_any": sum(c > 0 for c in correct) / len(rows),
    }




def _quantile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def _accuracy(scores: Sequence[float]) -> dict[str, Any]:
    from gsm8k_rl.evaluation.stats import wilson_interval

    k = sum(1 for s in scores if s >= 0.5)
    lo, hi = wilson_interval(k, len(scores), CONFIDENCE)
    return {"correct": k, "n": len(scores), "accuracy": k / len(scores), "ci95": [lo, hi]}


def summarize(samples: Sequence[dict], batches: Sequence[dict] = ()) -> dict[str, Any]:
    """Accuracy and output statistics of scored samples (+ throughput from the batch log).

    >>> s = [{"score": 1.0, "extracted": "3", "finish_reason": "stop", "n_output_tokens": 10,
    ...       "extractor_scores": {"ours": 1.0}},
    ...      {"score": 0.0, "extracted": None, "finish_reason": "length", "n_output_tokens": 30,
    ...       "extractor_scores": {"ours": 0.0}}]
    >>> m = summarize(s)
    >>> m["accuracy"], m["no_answer_rate"], m["truncation_rate"], m["output_tokens"]["max"]
    (0.5, 0.5, 0.5, 30)
    """
    if not samples:
        raise ValueError("no samples to summarize")
    if "samples" in samples[0]:
        return _summarize_sampled(samples, batches)
    headline = _accuracy([s["score"] for s in samples])
    lengths = [s["n_output_tokens"] for s in samples]
    names = list(samples[0]["extractor_scores"])
    gen_time = sum(b["gen_time_s"] for b in batches)
    gen_tokens = sum(b["output_tokens"] for b in batches)
    return {
        "accuracy": headline["accuracy"],
        "accuracy_ci95": headline["ci95"],
        "interval": INTERVAL_METHOD,
        "correct": headline["correct"],
        "n": len(samples),
        "no_answer_rate": sum(s["extracted"] is None for s in samples) / len(samples),
        "truncation_rate": sum(s["finish_reason"] == "length" for s in samples) / len(samples),
        "output_tokens": {
            "mean": sum(lengths) / len(lengths),
            "p50": _quantile(lengths, 50),
            "p90": _quantile(lengths, 90),
            "max": max(lengths),
        },
        "rules": dict(Counter(str(s.get("rule")) for s in samples).most_common()),
        "headline_extractor": HEADLINE_EXTRACTOR,
        "extractors": {name: _accuracy([s["extractor_scores"][name] for s in samples]) for name in names},
        "generation_time_s": gen_time if batches else None,
        "generated_tokens": gen_tokens if batches else None,
        "tokens_per_s": gen_tokens / gen_time if gen_time > 0 else None,
    }


def _summarize_sampled(rows: Sequence[dict], batches: Sequence[dict] = ()) -> dict[str, Any]:
    """summarize() for sampled evals: the headline accuracy is pass@1 (each problem's share of correct
    samples, averaged), with a t-interval over problems; pass@k and maj@k for k = 1..n beside it;
    lengths, truncation and no-answer rates over every sample."""
    from gsm8k_rl.evaluation.stats import mean_interval

    drawn = [a for r in rows for a in r["samples"]]
    per_problem = [r["n_correct"] / r["n_samples"] for r in rows]
    lengths = [a["n_output_tokens"] for a in drawn]
    names = list(drawn[0]["extractor_scores"])
    gen_time = sum(b["gen_time_s"] for b in batches)
    gen_tokens = sum(b["output_tokens"] for b in batches)
    mean = sum(per_problem) / len(per_problem)
    return {
        "accuracy": mean,
        "accuracy_ci95": list(mean_interval(per_problem)) if len(rows) > 1 else [mean, mean],
        "interval": "t-interval of the mean over problems of each problem's share of correct samples, 95%",
        "correct": sum(r["n_correct"] for r in rows),
        "n": len(rows),
        "n_answers": len(drawn),
        **pass_at_k_table(rows),
        "no_answer_rate": sum(a["extracted"] is None for a in drawn) / len(drawn),
        "truncation_rate": sum(a["finish_reason"] == "length" for a in drawn) / len(drawn),
        "output_tokens": {"mean": sum(lengths) / len(lengths), "p50": _quantile(lengths, 50),
                          "p90": _quantile(lengths, 90), "max": max(lengths)},
        "rules": dict(Counter(str(a.get("rule")) for a in drawn).most_common()),
        "headline_extractor": HEADLINE_EXTRACTOR,
        "extractors": {name: {"accuracy": sum(a["extractor_scores"][name] for a in drawn) / len(drawn)}
                       for name in names},
        "generation_time_s": gen_time if batches else None,
        "generated_tokens": gen_tokens if batches else None,
        "tokens_per_s": gen_tokens / gen_time if gen_time > 0 else None,
    }
