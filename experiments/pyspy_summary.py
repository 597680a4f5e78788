"""Where a VERL worker's time goes, from py-spy's raw (folded) stacks: samples per frame among the
stacks that pass through FUNCTION (e.g. `update_actor`, `compute_log_prob`), inclusive and at the leaf.

    py-spy record --pid PID --duration 25 --rate 200 --nonblocking --idle --threads --format raw -o spy.txt
    python experiments/pyspy_summary.py spy.txt update_actor [--top 40] [--out summary.txt]

PID: the training worker (`pgrep -f '^ray::WorkerDict'`) or the driver (`pgrep -f '^ray::TaskRunner'`).
Non-blocking sampling does not pause the process, so the step timings of the sampled steps stand.
A frame in the backward or forward of the model means the Python thread waits for the GPU (or
launches its kernels); frames outside it are host work the GPU waits for.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path


def summarise(path: Path, function: str, top: int = 40) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            raise SystemExit(f"{path}:{lineno}: not a py-spy raw line (stack;frames COUNT): {line[:80]!r}")
        if function and function not in stack:
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        leaf[frames[-1]] += n
        for frame in dict.fromkeys(frames):
            inclusive[frame] += n
    if not total:
        raise SystemExit(f"{path}: no sampled stack passes through {function!r}")
    out = [f"{path.name}: {total} samples through {function!r}", "-- inclusive (share of those samples)"]
    out += [f"{n:7d} {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top) if n < total]
    out += ["-- leaf (where the thread was)"]
    out += [f"{n:7d} {100 * n / total:5.1f}%  {f}" for f, n in leaf.most_common(top // 2)]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("raw", type=Path, help="py-spy record --format raw output")
    p.add_argument("function", help="keep the stacks that contain this text (a function name)")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--out", type=Path, help="also write the summary here")
    a = p.parse_args()
    text = summarise(a.raw, a.function, a.top)
    print(text, end="")
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
