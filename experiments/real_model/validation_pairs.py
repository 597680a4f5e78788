#!/usr/bin/env python3
"""Runs compared through VERL's own greedy validation, for a run whose trained eval is missing.

VERL's validation at a step (trainer.validation_data_dir/<step>.jsonl: input, output, gts, score)
decodes the whole test split greedily with the training prompt and scores it with the training
reward, i.e. what `gsm8k-rl eval` does to the exported checkpoint, through VERL's vLLM server. This
pairs those outputs with a base eval (samples.jsonl) by question and prints, per run: accuracy with
its Wilson interval, fixed/broken against the base with the exact McNemar p, and the output length
in tokens of the model's tokenizer (mean, p50, p90, share at the response limit); then every pair
of runs against each other. `--check-eval` (repeatable) takes a run that has a trained eval too and
counts the problems where the two disagree, which is how far the substitute can be trusted.

    python experiments/real_model/validation_pairs.py --base-eval RUN/eval/base --tokenizer MODEL_DIR \\
        --max-tokens 512 NAME=RUN_DIR:STEP ... [--check-eval NAME=RUN_DIR:STEP] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from gsm8k_rl.evaluation.run import SAMPLES, read_samples
from gsm8k_rl.evaluation.stats import mcnemar_exact, paired_counts, wilson_interval


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def question_of(prompt: str) -> str:
    """The user turn of a rendered chat prompt as VERL dumps it ("system\\n...\\nuser\\nQ\\nassistant\\n")."""
    if "\nuser\n" not in prompt:
        raise ValueError(f"no user turn in the dumped prompt {prompt[:80]!r}")
    return prompt.split("\nuser\n", 1)[1].rsplit("\nassistant\n", 1)[0].strip()


def load_validation(run: Path, step: int) -> dict[str, dict]:
    files = [run / "val_generations" / f"{step}.jsonl", run / "val_generations" / f"{step}.jsonl.gz"]
    path = next((f for f in files if f.is_file()), None)
    if path is None:
        raise SystemExit(f"{run}: no validation dump for step {step} ({files[0]}[.gz])")
    rows = {}
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            r = json.loads(line)
            q = question_of(r["input"])
            if q in rows:
                raise SystemExit(f"{path}:{lineno}: question repeated in the dump")
            rows[q] = {"output": r["output"], "score": float(r["score"])}
    return rows


def load_eval(folder: Path) -> dict[str, dict]:
    """An eval folder's samples, by question (the project's reader: a torn last line is cut off)."""
    return {r["question"].strip(): {"output": r["output"], "score": float(r["score"])}
            for r in read_samples(folder / SAMPLES).values()}


def lengths(rows: dict[str, dict], tokenizer, limit: int) -> dict[str, float]:
    n = np.array([len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in rows.values()])
    return {"mean": float(n.mean()), "p50": float(np.percentile(n, 50)), "p90": float(np.percentile(n, 90)),
            "at_limit": float((n >= limit).mean())}


def paired(a: dict[str, dict], b: dict[str, dict]) -> dict[str, float | int]:
    common = sorted(set(a) & set(b))
    t = paired_counts([a[q]["score"] for q in common], [b[q]["score"] for q in common])
    return {"n": t.n, "only_a": t.only_a, "only_b": t.only_b, "both": t.both_right, "p": mcnemar_exact(t.only_a, t.only_b)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR:STEP")
    p.add_argument("--base-eval", type=Path, required=True)
    p.add_argument("--tokenizer", required=True, help="the model's folder (output lengths in its tokens)")
    p.add_argument("--max-tokens", type=int, default=512, help="the response limit of training and eval")
    p.add_argument("--check-eval", metavar="NAME=RUN_DIR:STEP", action="append", default=[],
                   help="a run with both a validation dump and eval/trained (repeatable)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    base = load_eval(args.base_eval)
    result: dict = {"base_eval": str(args.base_eval), "runs": {}, "pairs": [], "checks": []}
    runs = {}
    for spec in args.runs:
        name, _, where = spec.partition("=")
        run, _, step = where.rpartition(":")
        runs[name] = rows = load_validation(Path(run), int(step))
        k, n = sum(r["score"] > 0 for r in rows.values()), len(rows)
        lo, hi = wilson_interval(k, n)
        vs = paired(base, rows)
        result["runs"][name] = {"run": run, "step": int(step), "correct": k, "n": n, "accuracy": k / n,
                                "wilson95": [lo, hi], "vs_base": vs, "tokens": lengths(rows, tok, args.max_tokens)}
    b = result["base"] = {"correct": sum(r["score"] > 0 for r in base.values()), "n": len(base),
                          "tokens": lengths(base, tok, args.max_tokens)}
    for (na, a), (nb, bb) in itertools.combinations(runs.items(), 2):
        result["pairs"].append({"a": na, "b": nb, **paired(a, bb)})
    for spec in args.check_eval:
        name, _, where = spec.partition("=")
        run, _, step = where.rpartition(":")
        val, ev = load_validation(Path(run), int(step)), load_eval(Path(run) / "eval" / "trained")
        common = set(val) & set(ev)
        result["checks"].append({"name": name, "n": len(common),
                           "same_output": sum(val[q]["output"].strip() == ev[q]["output"].strip() for q in common),
                           "same_score": sum((val[q]["score"] > 0) == (ev[q]["score"] > 0) for q in common),
                           "validation_correct": sum(val[q]["score"] > 0 for q in common),
                           "eval_correct": sum(ev[q]["score"] > 0 for q in common)})

    print(f"base eval: {b['correct']}/{b['n']}, output tokens mean {b['tokens']['mean']:.0f}, "
          f"at the {args.max_tokens}-token limit {100 * b['tokens']['at_limit']:.1f}%")
    print("| run | step | accuracy [95% Wilson] | fixed / broken vs base | McNemar p | tokens mean / p50 / p90 | at limit |")
    print("|---|---:|---|---|---:|---|---:|")
    for name, r in result["runs"].items():
        t, v = r["tokens"], r["vs_base"]
        print(f"| {name} | {r['step']} | {100 * r['accuracy']:.2f}% ({r['correct']}/{r['n']}) "
              f"[{100 * r['wilson95'][0]:.2f}, {100 * r['wilson95'][1]:.2f}] | {v['only_b']} / {v['only_a']} | {v['p']:.3g} "
              f"| {t['mean']:.0f} / {t['p50']:.0f} / {t['p90']:.0f} | {100 * t['at_limit']:.1f}% |")
    for pr in result["pairs"]:
        print(f"{pr['a']} vs {pr['b']}: only {pr['a']} right {pr['only_a']}, only {pr['b']} right {pr['only_b']}, "
              f"both {pr['both']}, McNemar p {pr['p']:.3g} (n={pr['n']})")
    for c in result["checks"]:
        print(f"check, {c['name']}: validation vs its own trained eval on {c['n']} problems: same output {c['same_output']}, "
              f"same verdict {c['same_score']}; correct {c['validation_correct']} vs {c['eval_correct']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
