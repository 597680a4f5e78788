#!/usr/bin/env python3
"""Plot a run's batch-order record (gsm8k_rl.verl_ext.batch_order): is the trainer's batch sorted by
response length, and what would unshuffled mini-batches have held?

    python experiments/real_model/plot_batch_order.py RUN/logs/batch_order.jsonl OUT.png [MINI_BATCHES]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gsm8k_rl.verl_ext.batch_order import read, summarise  # noqa: E402


def main(path: str, out: str, mini_batches: int = 2) -> None:
    values = [r for r in read(Path(path)) if r["role"] == "values" and r["rank"] == 0]
    steps = summarise(Path(path))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, rec in enumerate(values):
        lengths = rec["response_lengths"]
        ax1.plot(range(len(lengths)), lengths, ".", alpha=0.35, color=f"C{i % 10}",
                 label=f"step {i + 1}: rho {steps[i]['rho_position_length']:.2f}" if i < 4 else None)
    ax1.set(xlabel="position in the trainer's batch", ylabel="response tokens",
            title="Batch order as VERL's trainer holds it")
    ax1.legend(fontsize=8)
    x = np.arange(1, len(values) + 1)
    width = 0.2
    for m in range(mini_batches):
        unshuffled = [np.mean(np.array_split(r["response_lengths"], mini_batches)[m]) for r in values]
        shuffled = [s["mini_batch_mean_lengths"][m] if len(s["mini_batch_mean_lengths"]) > m else np.nan
                    for s in steps]
        ax2.bar(x + (m - mini_batches) * width, unshuffled, width, color=f"C{m}", alpha=0.45,
                label=f"mini-batch {m + 1}, unshuffled (consecutive slice)")
        ax2.bar(x + m * width, shuffled, width, color=f"C{m}", label=f"mini-batch {m + 1}, shuffled (recipe)")
    ax2.set(xlabel="PPO step", ylabel="mean response tokens", title="What each PPO mini-batch holds")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
