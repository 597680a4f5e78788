"""VERL's 2-second replay-buffer poll against the launcher's 0.1 s one (gsm8k_rl.verl_ext.replay_buffer), on CPU.

Two `gsm8k-rl train --smoke` runs (VERL's real trainer, the local rollout, the tiny random Qwen3), the
same in everything but the replay buffer: `--fast-path off` keeps VERL's own buffer; on a machine without
a GPU it changes nothing else (no fused kernels or packing on CPU either way; the script checks that the
two resolved configs differ only in the sampler keys and the run folders). Prints the per-step `gen`,
validation (`testing`) and step times, and writes them to OUT/rollout_wait_cpu.{md,json}.

    python experiments/rollout_wait_cpu.py OUT [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {"verl_poll_2s": ["--fast-path", "off"], "quick_poll_0.1s": []}


def run(out: Path, name: str, flags: list[str], steps: int) -> dict:
    run_dir = out / name
    cmd = [sys.executable, "-m", "gsm8k_rl.cli", "train", "--smoke", "--run-dir", str(run_dir), *flags,
           f"trainer.total_training_steps={steps}"]
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    with open(out / f"{name}.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"{name}: exit {rc}; see {out / f'{name}.log'}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps_ = [{"step": r["step"], **{k.split("/")[-1] + "_s": v for k, v in r["data"].items()
                                     if k in ("timing_s/gen", "timing_s/step", "timing_s/testing")}}
              for r in rows if "timing_s/step" in r["data"]]
    return {"command": " ".join(cmd[2:]), "wall_s": round(time.time() - t0, 1), "steps": steps_}


def config_diff(out: Path) -> list[str]:
    """Keys whose values differ between the two resolved configs, with the run folder's name masked and
    the sampler's own keys (trainer.v1.sampler.custom_sampler / sampler_kwargs) left out."""
    import yaml

    def flat(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from flat(v, f"{prefix}{k}.")
        else:
            yield prefix[:-1], node

    cfgs = []
    for name in VARIANTS:
        text = (out / name / "resolved_config.yaml").read_text().replace(name, "RUN")
        cfgs.append({k: v for k, v in flat(yaml.safe_load(text))
                     if not k.startswith(("trainer.v1.sampler.custom_sampler", "trainer.v1.sampler.sampler_kwargs"))})
    return sorted(k for k in cfgs[0].keys() | cfgs[1].keys() if cfgs[0].get(k) != cfgs[1].get(k))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    res = {name: run(args.out, name, flags, args.steps) for name, flags in VARIANTS.items()}
    extra = config_diff(args.out)
    if extra:
        raise SystemExit(f"the two runs differ beyond the replay buffer: {extra}")

    def mean(name: str, key: str) -> float:
        vals = [s[key] for s in res[name]["steps"] if key in s and s["step"] >= 2]
        return statistics.mean(vals) if vals else float("nan")

    lines = ["| | " + " | ".join(VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for key, label in (("gen", "gen (s)"), ("testing", "validation (s)"), ("step", "step (s)")):
        lines.append(f"| {label}, mean of steps >= 2 | " + " | ".join(f"{mean(n, key + '_s'):.2f}" for n in VARIANTS) + " |")
    lines.append("| whole command, wall (s) | " + " | ".join(f"{res[n]['wall_s']:.0f}" for n in VARIANTS) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "rollout_wait_cpu.md").write_text(text)
    (args.out / "rollout_wait_cpu.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
