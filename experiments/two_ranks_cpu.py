"""More than one training rank on CPU: the layouts a multi-GPU user runs, without a GPU.

    python experiments/two_ranks_cpu.py --out OUT [--layouts one_node two_nodes]

For each layout it runs VERL's real trainer through `gsm8k-rl train --backend local --smoke` with
two ranks (FSDP2 over gloo, one `hf` rollout replica per rank, the smoke batch split across them):

    one_node   one Ray node started by VERL, --gpus 2 (two logical GPUs, two worker processes)
    two_nodes  a Ray cluster of two nodes on this host (ray.cluster_utils.Cluster: a head and a
               second raylet, one logical GPU each), --nnodes 2, joined through RAY_ADDRESS, as
               `ray start --head` / `ray start --address=...` would set it up on two machines

then resumes the run for one more step from the step-2 checkpoint (both ranks' shards), exports the
checkpoint to a Hugging Face folder with VERL's model merger, and checks: every step logged exactly
once, the resume started from step 2, the checkpoint holds one shard per rank, the export loads.
Writes OUT/two_ranks_cpu.json and prints a table (docs/interruptions.md, "More than one rank").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _gsm8k_rl(args: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        rc = subprocess.run([sys.executable, "-m", "gsm8k_rl.cli", *args], env=env, stdout=f,
                            stderr=subprocess.STDOUT, cwd=ROOT).returncode
    return rc, time.perf_counter() - t0


def _steps(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["step"] for r in rows if "timing_s/step" in r["data"]]


def run_layout(name: str, out: Path) -> dict:
    run = out / name
    log = out / f"{name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cluster = None
    if name == "one_node":
        flags = ["--gpus", "2"]
    else:
        from ray.cluster_utils import Cluster

        # two raylets on this host, each with one logical GPU (a CPU worker) and its own CPUs
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 8, "num_gpus": 1})
        cluster.add_node(num_cpus=8, num_gpus=1)
        cluster.wait_for_nodes()
        env["RAY_ADDRESS"] = cluster.address
        flags = ["--gpus", "1", "--nnodes", "2"]
    result: dict = {"layout": name, "flags": flags}
    try:
        base = ["train", "--backend", "local", "--smoke", "--run-dir", str(run), *flags]
        rc, secs = _gsm8k_rl(base, env, log)
        result.update(train_rc=rc, train_s=round(secs, 1))
        if rc != 0:
            return result
        result["steps_first_launch"] = _steps(run)
        # one more step from the step-2 checkpoint: same run folder, the step count raised
        rc, secs = _gsm8k_rl(base + ["--allow-config-change", "trainer.total_training_steps=3"], env, log)
        info = json.loads((run / "run_info.json").read_text())
        result.update(resume_rc=rc, resume_s=round(secs, 1), resumed_from=info.get("resumed_from"),
                      steps_after_resume=_steps(run) if rc == 0 else None)
        ckpt = run / "checkpoints" / "global_step_3"
        result["checkpoint_files"] = sorted(p.name for p in (ckpt / "actor").glob("model_world_size_*"))
        rc, secs = _gsm8k_rl(["export", "--run-dir", str(run)], env, log)
        result.update(export_rc=rc, export_s=round(secs, 1))
        if rc == 0:
            from transformers import AutoModelForCausalLM

            exported = sorted((run / "export").glob("global_step_*"))[-1]
            model = AutoModelForCausalLM.from_pretrained(exported)
            result["export_params"] = sum(p.numel() for p in model.parameters())
    finally:
        if cluster is not None:
            cluster.shutdown()
    return result


def check(result: dict) -> list[str]:
    """What must hold after a layout's runs (empty: all held)."""
    problems = []
    if result.get("train_rc") != 0:
        return [f"training failed (exit {result.get('train_rc')}); see the log"]
    if result.get("steps_first_launch") != [1, 2]:
        problems.append(f"first launch logged steps {result.get('steps_first_launch')}, not [1, 2]")
    if result.get("resume_rc") != 0:
        problems.append(f"the resume failed (exit {result.get('resume_rc')})")
    else:
        if not str(result.get("resumed_from", "")).endswith("global_step_2"):
            problems.append(f"resumed from {result.get('resumed_from')}, not global_step_2")
        if result.get("steps_after_resume") != [1, 2, 3]:
            problems.append(f"after the resume the steps are {result.get('steps_after_resume')}, not [1, 2, 3]")
        if len(result.get("checkpoint_files", [])) != 2:
            problems.append(f"the step-3 actor checkpoint holds {result.get('checkpoint_files')}, not one shard per rank")
    if result.get("export_rc") not in (0, None) or (result.get("resume_rc") == 0 and not result.get("export_params")):
        problems.append("the merged export did not load")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--layouts", nargs="+", default=["one_node", "two_nodes"], choices=["one_node", "two_nodes"])
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.layouts:
        print(f"=== {name}", flush=True)
        r = run_layout(name, out)
        r["problems"] = check(r)
        results.append(r)
        print(json.dumps(r, indent=1), flush=True)
    (out / "two_ranks_cpu.json").write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1) + "\n")
    print("| layout | first launch | resume | export | problems |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['layout']} | {r.get('train_s')} s, steps {r.get('steps_first_launch')} | "
              f"{r.get('resume_s')} s from {Path(str(r.get('resumed_from'))).name}, steps {r.get('steps_after_resume')} | "
              f"{r.get('export_s')} s, {r.get('export_params')} params | {'; '.join(r['problems']) or 'none'} |")
    return 0 if all(not r["problems"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
