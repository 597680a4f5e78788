"""Seeded generator of short arithmetic word problems in GSM8K's jsonl format, for the learning proof.

    python experiments/learning_proof/make_data.py --out runs/learning_proof/data --seed 0

Writes `train.jsonl` (PPO prompts) and `test.jsonl` (held-out problems), which `gsm8k-rl prepare`
and `gsm8k-rl eval --source` read like the real GSM8K folder, plus `sft.jsonl` (the warm-up set,
which the pipeline never reads). Every row is {"question", "answer"} and every answer ends with
"#### N", N an integer, exactly as in GSM8K. Questions are unique across the three files.

Problems are one or two steps of +, - or x on small numbers ("Tom has 17 apples. He buys 25
more apples and then gives 9 to Mia. How many apples does he have now?"). A solution is written
in one of two styles:
- "worked": one line per step, then the answer: "17 + 25 = 42\\n42 - 9 = 33\\n#### 33";
- "direct": the answer alone: "#### 33".
train/test golds are always worked. The warm-up set mixes the styles (`direct_fraction` of its
solutions are direct), imitating a teacher that often skips the work: a tiny model cannot do
two-step arithmetic "in its head", so after the warm-up it answers greedily in the direct style
and is often wrong, while its sampled worked-style answers are mostly right. A reward that reaches
the policy with the right sign teaches it that showing the work pays; a broken pipeline (reward
always zero, answers not extracted, sign flipped, KL too strong) cannot.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NAMES = [("Tom", "he"), ("Mia", "she"), ("Sam", "he"), ("Ava", "she"), ("Ben", "he"), ("Lily", "she"),
         ("Jack", "he"), ("Emma", "she"), ("Leo", "he"), ("Zoe", "she"), ("Max", "he"), ("Ella", "she"),
         ("Noah", "he"), ("Ruby", "she"), ("Owen", "he"), ("Lucy", "she")]
OBJECTS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells",
           "stamps", "coins", "balloons", "candies", "flowers", "buttons", "rocks", "toys"]
CONTAINERS = ["boxes", "bags", "packs", "jars", "baskets", "crates"]
SPLIT_SIZES = {"sft": 20000, "train": 2000, "test": 1000}


@dataclass(frozen=True)
class Problem:
    question: str
    steps: tuple[tuple[int, str, int, int], ...]  # (left, op, right, result) per line of the solution

    @property
    def answer(self) -> int:
        return self.steps[-1][3]


def _apply(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def solution(problem: Problem, style: str) -> str:
    """The solution text in GSM8K's format (the last line is "#### N").

    >>> p = Problem("q", ((17, "+", 25, 42), (42, "-", 9, 33)))
    >>> solution(p, "worked")
    '17 + 25 = 42\\n42 - 9 = 33\\n#### 33'
    >>> solution(p, "direct")
    '#### 33'
    """
    if style == "direct":
        return f"#### {problem.answer}"
    if style != "worked":
        raise ValueError(f"unknown solution style {style!r}; use 'worked' or 'direct'")
    lines = [f"{a} {op} {b} = {r}" for a, op, b, r in problem.steps]
    return "\n".join(lines + [f"#### {problem.answer}"])


def _who(rng: random.Random) -> tuple[str, str, str]:
    (name, pron), (other, _) = rng.sample(NAMES, 2)
    return name, pron, other


def _add(rng: random.Random) -> Problem:
    name, pron, _ = _who(rng)
    obj = rng.choice(OBJECTS)
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    q = rng.choice([
        f"{name} has {a} {obj}. {pron.capitalize()} buys {b} more {obj}. How many {obj} does {pron} have now?",
        f"{name} found {a} {obj} on Monday and {b} {obj} on Tuesday. How many {obj} did {pron} find in total?",
    ])
    return Problem(q, ((a, "+", b, a + b),))


def _sub(rng: random.Random) -> Problem:
    name, pron, other = _who(rng)
    obj = rng.choice(OBJECTS)
    a = rng.randint(12, 99)
    b = rng.randint(2, a - 2)
    q = rng.choice([
        f"{name} has {a} {obj}. {pron.capitalize()} gives {b} {obj} to {other}. How many {obj} does {name} have left?",
        f"There are {a} {obj} in a basket. {name} takes {b} of them. How many {obj} are left in the basket?",
    ])
    return Problem(q, ((a, "-", b, a - b),))


def _mul(rng: random.Random) -> Problem:
    name, pron, _ = _who(rng)
    obj, box = rng.choice(OBJECTS), rng.choice(CONTAINERS)
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    q = rng.choice([
        f"{name} buys {a} {box} of {obj}. Each of the {box} has {b} {obj}. How many {obj} does {pron} have?",
        f"One of the {box} holds {b} {obj}. How many {obj} are in {a} {box}?",
    ])
    return Problem(q, ((a, "*", b, a * b),))


def _add_sub(rng: random.Random) -> Problem:
    name, pron, other = _who(rng)
    obj = rng.choice(OBJECTS)
    a, b = rng.randint(2, 50), rng.randint(2, 40)
    c = rng.randint(1, a + b - 1)
    q = (f"{name} has {a} {obj}. {pron.capitalize()} buys {b} more {obj} and then gives {c} to {other}. "
         f"How many {obj} does {pron} have now?")
    return Problem(q, ((a, "+", b, a + b), (a + b, "-", c, a + b - c)))


def _mul_add(rng: random.Random) -> Problem:
    name, pron, _ = _who(rng)
    obj, box = rng.choice(OBJECTS), rng.choice(CONTAINERS)
    a, b, c = rng.randint(2, 9), rng.randint(2, 12), rng.randint(2, 40)
    q = (f"{name} buys {a} {box} of {obj} with {b} {obj} in each. {pron.capitalize()} already had {c} {obj}. "
         f"How many {obj} does {pron} have now?")
    return Problem(q, ((a, "*", b, a * b), (a * b, "+", c, a * b + c)))


def _mul_sub(rng: random.Random) -> Problem:
    name, pron, other = _who(rng)
    obj, box = rng.choice(OBJECTS), rng.choice(CONTAINERS)
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    c = rng.randint(1, a * b - 1)
    q = (f"{name} has {a} {box} with {b} {obj} in each. {pron.capitalize()} gives {c} {obj} to {other}. "
         f"How many {obj} does {name} have left?")
    return Problem(q, ((a, "*", b, a * b), (a * b, "-", c, a * b - c)))


# kind -> (builder, weight): half one-step, half two-step problems
KINDS: dict[str, tuple[Callable[[random.Random], Problem], float]] = {
    "add": (_add, 1.0), "sub": (_sub, 1.0), "mul": (_mul, 1.0),
    "add_sub": (_add_sub, 1.0), "mul_add": (_mul_add, 1.0), "mul_sub": (_mul_sub, 1.0),
}


def make_problem(rng: random.Random) -> Problem:
    """One random problem; its steps are checked against the arithmetic they claim.

    >>> p = make_problem(random.Random(0))
    >>> p.answer == p.steps[-1][3] and all(_apply(a, op, b) == r for a, op, b, r in p.steps)
    True
    """
    builders, weights = zip(*KINDS.values())
    problem = rng.choices(builders, weights=weights)[0](rng)
    assert all(_apply(a, op, b) == r >= 0 for a, op, b, r in problem.steps), problem
    return problem


def generate(out: Path, seed: int = 0, sizes: dict[str, int] | None = None,
             direct_fraction: float = 0.6) -> dict[str, int]:
    """Write sft.jsonl, train.jsonl and test.jsonl under `out`; questions never repeat across them.

    Args:
        out: target folder (created).
        seed: the only source of randomness; the same seed writes the same bytes.
        sizes: rows per split (default SPLIT_SIZES).
        direct_fraction: share of warm-up (sft) solutions written in the direct style.
    Returns:
        rows written per split.
    """
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    if not 0.0 <= direct_fraction <= 1.0:
        raise ValueError(f"direct_fraction must be in [0, 1], got {direct_fraction}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out.mkdir(parents=True, exist_ok=True)
    # test first, so the held-out set does not depend on how many training rows are asked for
    for split in ("test", "train", "sft"):
        rows = []
        while len(rows) < sizes[split]:
            p = make_problem(rng)
            if p.question in seen:
                continue
            seen.add(p.question)
            style = "direct" if split == "sft" and rng.random() < direct_fraction else "worked"
            rows.append({"question": p.question, "answer": solution(p, style)})
        with (out / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    log.info("wrote %s to %s", sizes, out)
    return {k: sizes[k] for k in ("sft", "train", "test")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--direct-fraction", type=float, default=0.6)
    for split, n in SPLIT_SIZES.items():
        p.add_argument(f"--n-{split}", type=int, default=n, help=f"rows in {split}.jsonl")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generate(args.out, args.seed, {s: getattr(args, f"n_{s}") for s in SPLIT_SIZES}, args.direct_fraction)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
