"""Summarise a benchmark PPO run: per-step time breakdown and memory, as a markdown table.

    python experiments/ppo_gpu_summary.py RUN_DIR [NVIDIA_SMI_CSV]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

# VERL 0.9.1 logs memory per role (actor/perf/..., critic/perf/...), read from torch in the role's
# process after its update: process-wide peaks, so colocated roles report the same process.
KEYS = ["timing_s/gen", "timing_s/old_log_prob", "timing_s/ref", "timing_s/values", "timing_s/adv",
        "timing_s/update_critic", "timing_s/update_actor", "timing_s/update_weights", "timing_s/step",
        "critic/perf/max_memory_allocated_gb", "critic/perf/max_memory_reserved_gb",
        "actor/perf/max_memory_allocated_gb", "actor/perf/max_memory_reserved_gb", "actor/perf/cpu_memory_used_gb",
        "perf/throughput", "perf/mfu/actor", "perf/mfu/critic", "response_length/mean", "prompt_length/mean"]


def main(run_dir: str, smi_csv: str | None = None) -> None:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "timing_s/step" in r["data"]]
    present = [k for k in KEYS if any(k in r["data"] for r in steps)]
    print("| metric | " + " | ".join(f"step {r['step']}" for r in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for k in present:
        print(f"| {k} | " + " | ".join(f"{r['data'].get(k, float('nan')):.2f}" for r in steps) + " |")
    extra = sorted({k for r in steps for k in r["data"] if k.startswith(("timing_s/", "perf/"))} - set(present))
    for k in extra:
        print(f"| {k} | " + " | ".join(f"{r['data'].get(k, float('nan')):.2f}" for r in steps) + " |")
    if smi_csv and Path(smi_csv).exists():
        used = [float(r[2]) for r in csv.reader(open(smi_csv)) if len(r) >= 3 and r[2].strip().replace(".", "").isdigit()]
        if used:
            print(f"\nnvidia-smi peak memory.used: {max(used) / 1024:.1f} GiB over {len(used)} samples (0.5 s)")


if __name__ == "__main__":
    main(*sys.argv[1:])
