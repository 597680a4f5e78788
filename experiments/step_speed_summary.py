"""Per-phase PPO step time of several runs side by side, the ratio to the first, 500-step projections
and the distance to the FLOP floor (experiments/notebook.md, "Step speed").

    python experiments/step_speed_summary.py --response-length 300 \
        --run stock=OUT/stock/run_300 --run tuned=OUT/tuned/run_300 [--out table.md] [--json out.json] \
        [--png phases.png] [--warmup 1]

Steady state = the mean over the steps after the first --warmup ones (default 1: step 1 carries
CUDA graphs, the allocator's growth and torch.compile; on a machine whose Triton cache is cold,
liger-kernel's kernels compile during steps 1-2, so use --warmup 2 there). The table gives the
fastest and slowest steady step beside the mean.
The floor counts 2 x parameters FLOPs per token per forward pass: generation, old log-probs,
reference and values are one forward each; a training pass (actor, critic) is a forward and a
backward (3 forwards), one more with gradient checkpointing; at 798 TFLOP/s (a bf16 8192^3 matmul
on the H200, experiments/notebook.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

PHASES = ["gen", "old_log_prob", "ref", "values", "adv", "update_critic", "update_actor", "update_weights"]
PARAMS = 1.7206e9  # Qwen3-1.7B as built from its config (experiments/notebook.md)
MATMUL_FLOPS = 798e12


def load(run: Path, warmup: int = 1) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "timing_s/step" in r["data"]]
    if not steps:
        raise SystemExit(f"{run}: no finished PPO step in metrics.jsonl")
    steady = [r["data"] for r in steps if r["step"] > warmup]
    if not steady:
        print(f"{run}: no step after the {warmup} warm-up step(s); its last step ({steps[-1]['step']}) stands in")
        steady = [steps[-1]["data"]]
    mean = {k: statistics.mean(d[k] for d in steady if k in d) for k in steady[0]}
    ckpt = checkpointing(run)
    tokens = mean.get("perf/total_num_tokens", 0.0)
    passes = 4 + 2 * (3 + ckpt)
    return {"run": str(run), "steps": [r["step"] for r in steps], "steady_steps": len(steady), "mean": mean,
            "steady_step_range_s": [min(d["timing_s/step"] for d in steady), max(d["timing_s/step"] for d in steady)],
            "first_step_s": steps[0]["data"]["timing_s/step"], "tokens": tokens, "checkpointing": ckpt,
            "floor_s": passes * 2 * PARAMS * tokens / MATMUL_FLOPS,
            "peak_allocated_gib": max(d.get("actor/perf/max_memory_allocated_gb", 0.0) for d in steady),
            "peak_reserved_gib": max(d.get("actor/perf/max_memory_reserved_gb", 0.0) for d in steady)}


def checkpointing(run: Path) -> bool:
    """The actor's gradient checkpointing, from the run's resolved config, or from the overrides in
    its command.sh for runs saved before the launcher wrote the resolved config (on by default)."""
    import yaml

    resolved = run / "resolved_config.yaml"
    if resolved.exists():
        return bool(yaml.safe_load(resolved.read_text())["actor_rollout_ref"]["model"]["enable_gradient_checkpointing"])
    command = run / "command.sh"
    if not command.exists():
        raise SystemExit(f"{run}: neither resolved_config.yaml nor command.sh says how the run was configured")
    return "actor_rollout_ref.model.enable_gradient_checkpointing=false" not in command.read_text()


def table(runs: dict[str, dict], length: int) -> str:
    names = list(runs)
    base = runs[names[0]]["mean"]["timing_s/step"]
    lines = ["| phase (s, steady state) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for ph in PHASES:
        key = f"timing_s/{ph}"
        if any(key in r["mean"] for r in runs.values()):
            lines.append(f"| {ph} | " + " | ".join(f"{r['mean'].get(key, float('nan')):.2f}" for r in runs.values()) + " |")
    lines.append("| **step** | " + " | ".join(f"**{r['mean']['timing_s/step']:.2f}**" for r in runs.values()) + " |")
    lines.append("| fastest / slowest steady step | " + " | ".join(
        "{:.2f} / {:.2f}".format(*r["steady_step_range_s"]) for r in runs.values()) + " |")
    lines.append(f"| speed-up vs {names[0]} | " + " | ".join(f"{base / r['mean']['timing_s/step']:.2f}x" for r in runs.values()) + " |")
    lines.append("| tokens per step | " + " | ".join(f"{r['tokens'] / 1000:.1f} K" for r in runs.values()) + " |")
    lines.append("| FLOP floor (s) | " + " | ".join(f"{r['floor_s']:.1f}" for r in runs.values()) + " |")
    lines.append("| step / floor | " + " | ".join(f"{r['mean']['timing_s/step'] / r['floor_s']:.1f}x" for r in runs.values()) + " |")
    lines.append("| 500 steps (h, steady step x 500) | " + " | ".join(f"{r['mean']['timing_s/step'] * 500 / 3600:.2f}" for r in runs.values()) + " |")
    lines.append("| first step (s) | " + " | ".join(f"{r['first_step_s']:.1f}" for r in runs.values()) + " |")
    lines.append("| training process peak, allocated / reserved (GiB) | " + " | ".join(
        f"{r['peak_allocated_gib']:.1f} / {r['peak_reserved_gib']:.1f}" for r in runs.values()) + " |")
    lines.append("| steps averaged | " + " | ".join(f"{r['steady_steps']} (of {len(r['steps'])})" for r in runs.values()) + " |")
    return f"Response length {length} tokens.\n\n" + "\n".join(lines) + "\n"


def plot(runs: dict[str, dict], length: int, path: Path) -> None:
    """One stacked bar per run: where the steady-state step goes, phase by phase, with the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.8 * len(names)))
    left = [0.0] * len(names)
    colors = plt.get_cmap("tab10").colors
    for i, ph in enumerate(PHASES):
        widths = [runs[n]["mean"].get(f"timing_s/{ph}", 0.0) for n in names]
        ax.barh(names, widths, left=left, color=colors[i % len(colors)], label=ph)
        left = [a + b for a, b in zip(left, widths)]
    for y, n in enumerate(names):
        step = runs[n]["mean"]["timing_s/step"]
        ax.text(step, y, f"  {step:.1f} s", va="center")
        ax.plot([runs[n]["floor_s"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_xlabel("seconds per PPO step (steady state); black tick: FLOP floor")
    ax.set_title(f"PPO step by phase, {length}-token responses")
    ax.invert_yaxis()
    ax.set_xlim(0, max(runs[n]["mean"]["timing_s/step"] for n in names) * 1.15)
    ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.05 * len(names)))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (the first is the baseline)")
    p.add_argument("--response-length", type=int, required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--png", default=None, help="a stacked bar chart of the phases")
    p.add_argument("--warmup", type=int, default=1, help="leading steps left out of the steady state")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.run:
        name, path = spec.split("=", 1)
        if not (Path(path) / "metrics.jsonl").exists():
            print(f"{name}: {path} has no metrics.jsonl (the run failed or did not start); left out")
            continue
        runs[name] = load(Path(path), args.warmup)
    if not runs:
        raise SystemExit("no run to summarise")
    text = table(runs, args.response_length)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1) + "\n")
    if args.png:
        plot(runs, args.response_length, Path(args.png))
    return text


if __name__ == "__main__":
    main()
