"""Step speed: VERL's stock settings against the launcher's default, side by side, from one
experiments/step_speed.sh folder (experiments/notebook.md, "Step speed").

    experiments/step_speed.sh OUT_DIR                    # the measurement; it ends with:
    python experiments/step_speed_summary.py OUT_DIR     # OUT_DIR/step_speed.md, .json, .png

The rules come from OUT_DIR/plan.json, which step_speed.sh writes before its first launch:
- the first WARMUP (2) steps of every launch are warm-up and left out; every later step is pooled
  (no fastest launch, no step dropped after the fact);
- a side with fewer than MIN_STEADY (4) pooled steps is refused, naming its run folder;
- no ratio between launches whose GPUs differ (the name each run recorded; the UUID where
  step_speed.sh recorded it), or whose recorded environments differ anywhere but in the settings under
  test: the launch environment (launch_env.json: only TRAIN_FLAGS may differ, and it must hold the
  plan's flags for each side), the variables VERL hands its Ray workers (resolved_config.yaml), the
  software versions (environment.txt) and the workload (the config's data and algorithm sections).

Reported per side and phase: n, mean, median, standard deviation (n - 1), min and max of the pooled
steps; the ratio stock / default of the means with a 95% bootstrap interval (scipy.stats.bootstrap,
percentile method, 10,000 resamples of each side's pooled steps, seed 0) and the delta method's
standard error; peak memory per side (VERL's actor/critic perf/max_memory_allocated_gb and _reserved_gb,
nvidia-smi's memory.used for the whole GPU); each phase against its FLOP floor.

FLOP floor: 2 x parameters FLOPs per token per forward pass (Qwen3-1.7B, PARAMS; attention's own FLOPs
left out), over the tokens of a step (perf/total_num_tokens): generation, old log-probs, reference and
values one forward each; each update a forward and a backward (3 forwards), one more with gradient
checkpointing, times its PPO epochs (from the run's resolved config). The GPU's rate comes from GPU_BF16,
looked up by the GPU name the run recorded (run_info.json, else environment.txt). The floor uses the
datasheet's dense bf16 rate; where GPU_BF16 also holds a measured matmul rate for that GPU, the step over
the floor at that rate is given beside it.

Two run folders not made by step_speed.sh (e.g. those recorded in experiments/results/step_speed/) go
through the same rules, without a plan:

    python experiments/step_speed_summary.py --pair STOCK_RUN DEFAULT_RUN --out-dir DIR

step_speed.sh also calls this file to write the plan (--write-plan) and each launch's environment
(--record-env); those two modes need the standard library only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

WARMUP = 2  # leading steps of every launch left out: CUDA graphs, allocator growth, Triton compiling liger's kernels
MIN_STEADY = 4  # pooled steps a side needs
SIDES = {"stock": "--fast-path off --no-dynamic-bsz --attn sdpa", "default": ""}
ALLOWED_ENV_DIFF = {"TRAIN_FLAGS"}  # the settings under test, as step_speed.sh hands them to experiments/ppo_gpu.sh
PHASES = ["gen", "old_log_prob", "ref", "values", "adv", "update_critic", "update_actor", "update_weights"]
# and "other": the step's time outside those phases (timing_s/step minus their sum)
PARAMS = 1.7206e9  # Qwen3-1.7B as built from its config (experiments/notebook.md)
# Dense bf16 tensor-core rates, TFLOP/s, by the GPU name torch and nvidia-smi report (first match wins):
# (pattern, card, datasheet rate (half the datasheet's "with sparsity" figure), measured rate or None, where).
GPU_BF16 = [
    (r"\bH200\b(?!\s*NVL)", "H200 SXM", 989.5, 798.0,
     "a bf16 8192^3 torch.matmul, mean of ten after three warm-ups, 1 x H200 (experiments/notebook.md, "
     "'PPO at true scale on one GPU')"),
    (r"\bH100\b.*(HBM3|SXM)", "H100 SXM", 989.5, None, None),
    (r"\bH100\b.*PCIe", "H100 PCIe", 756.5, None, None),
    (r"\bA100\b", "A100", 312.0, None, None),
]
# variable names whose values are not written out (HF_TOKEN, WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, ...)
SECRET = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|KEY|APIKEY|AUTH|PRIVATE)(_|$)", re.IGNORECASE)


class Refused(Exception):
    """A side or a pair the rules do not let into a ratio; the message names the run folder."""


@dataclass
class Launch:
    name: str  # e.g. stock_300
    side: str  # stock | default
    length: int | None  # response tokens (None: read from the run's config)
    run: Path  # the VERL run folder: metrics.jsonl, resolved_config.yaml, run_info.json, environment.txt
    folder: Path  # what step_speed.sh made for the launch (launch_env.json, gpu.csv, launch.log); else the run
    flags: str | None  # the `gsm8k-rl train` flags the plan gave it (None: no plan)
    order: int | None = None


# ---------------------------------------------------------------------------------------------- the plan


def redact(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment with values of secret-looking names replaced by a digest (a diff still shows).

    >>> redact({"HF_TOKEN": "abc", "TOKENIZERS_PARALLELISM": "false"})
    ({'HF_TOKEN': 'redacted, sha256 ba7816bf8f01', 'TOKENIZERS_PARALLELISM': 'false'}, ['HF_TOKEN'])
    """
    names = sorted(k for k in env if SECRET.search(k))
    out = {k: (f"redacted, sha256 {hashlib.sha256(v.encode()).hexdigest()[:12]}" if k in names else v)
           for k, v in sorted(env.items())}
    return out, names


def record_env(raw: bytes, path: Path) -> dict:
    """launch_env.json from `env -0`'s output: the exact environment a launch gets."""
    env = dict(item.split("=", 1) for item in raw.decode("utf-8", "surrogateescape").split("\0") if "=" in item)
    env, names = redact(env)
    record = {"env": env, "redacted": names}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def dict_diff(a: dict, b: dict) -> dict[str, list]:
    """{key: [a's value, b's value]} where they differ (None where one lacks the key)."""
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def plan_launches(lengths: list[int]) -> list[dict]:
    """The launch order: per length, stock then default."""
    launches = []
    for length in lengths:
        for side in ("stock", "default"):
            name = f"{side}_{length}"
            launches.append({"order": len(launches) + 1, "name": name, "side": side, "response_length": length,
                             "flags": SIDES[side], "folder": name, "run": f"{name}/run_{length}"})
    return launches


def write_plan(out: Path, *, steps: int, lengths: list[int], gpu: str = "", warmup_env: str = "",
               dry_run: bool = False, overrides: list[str] | None = None, command: str = "") -> dict:
    """OUT/plan.json and plan.md, before the first launch: order, warm-up, steps, flags, environments.

    Refuses (SystemExit) fewer than WARMUP + MIN_STEADY steps, and launch environments (each launch's
    launch_env.json, written by --record-env) that differ anywhere but in ALLOWED_ENV_DIFF."""
    if steps < WARMUP + MIN_STEADY:
        raise SystemExit(f"STEPS={steps}: each launch needs {WARMUP} warm-up steps and at least {MIN_STEADY} "
                         f"steady ones, so at least {WARMUP + MIN_STEADY} steps")
    if not lengths or len(set(lengths)) != len(lengths):
        raise SystemExit(f"LENGTHS={lengths}: one or more distinct response lengths")
    launches = plan_launches(lengths)
    envs = {}
    for launch in launches:
        path = out / launch["folder"] / "launch_env.json"
        if not path.exists():
            raise SystemExit(f"{path}: missing (step_speed.sh records every launch's environment before the plan)")
        envs[launch["name"]] = json.loads(path.read_text())["env"]
        if envs[launch["name"]].get("TRAIN_FLAGS", "") != launch["flags"]:
            raise SystemExit(f"{path}: TRAIN_FLAGS={envs[launch['name']].get('TRAIN_FLAGS')!r}, the plan gives "
                             f"{launch['name']} {launch['flags']!r}")
    first = launches[0]["name"]
    env_diff = {f"{first} vs {n}": dict_diff(envs[first], envs[n]) for n in envs if n != first}
    outside = {pair: {k: v for k, v in diff.items() if k not in ALLOWED_ENV_DIFF} for pair, diff in env_diff.items()}
    outside = {pair: diff for pair, diff in outside.items() if diff}
    common = {k: v for k, v in envs[first].items() if k not in ALLOWED_ENV_DIFF}
    warmup_note = None
    if warmup_env not in ("", str(WARMUP)):
        warmup_note = (f"WARMUP={warmup_env} was set in the environment and ignored: the warm-up is fixed at {WARMUP} "
                       "steps in experiments/step_speed_summary.py (WARMUP)")
    plan = {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "dry_run": dry_run,
        "gpu": parse_gpu(gpu),
        "steps_per_launch": steps,
        "warmup_steps": WARMUP,
        "warmup_env": warmup_note,
        "pooled_steps_per_launch": steps - WARMUP,
        "min_pooled_steps": MIN_STEADY,
        "order": [launch["name"] for launch in launches],
        "sides": {side: SIDES[side] for side in ("stock", "default")},
        "launches": launches,
        "verl_overrides_every_launch": overrides or [],
        "launch_env_common": common,
        "launch_env_diff": env_diff,
        "launch_env_allowed_to_differ": sorted(ALLOWED_ENV_DIFF),
        "launch_env_diff_outside_flags": outside,
        "summary": "python experiments/step_speed_summary.py OUT_DIR",
    }
    out.mkdir(parents=True, exist_ok=True)
    if outside:  # kept for the record, under a name that does not mark the folder as measured
        (out / "plan_refused.json").write_text(json.dumps(plan, indent=1) + "\n")
        raise SystemExit(f"{out / 'plan_refused.json'}: the launch environments differ outside "
                         f"{sorted(ALLOWED_ENV_DIFF)}: {json.dumps(outside)}; nothing launched")
    (out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    (out / "plan.md").write_text(plan_markdown(plan))
    return plan


def parse_gpu(line: str) -> dict | None:
    """nvidia-smi's `index, name, uuid, memory.total [MiB], driver_version` line for the GPU, or None."""
    fields = [f.strip() for f in line.strip().split(",")]
    if len(fields) < 3:
        return None
    keys = ["index", "name", "uuid", "memory_total", "driver_version"]
    return dict(zip(keys, fields[: len(keys)], strict=False))


def plan_markdown(plan: dict) -> str:
    gpu = plan["gpu"]
    lines = [
        "# Step-speed plan",
        "",
        f"Written {plan['written']}, before the first launch"
        + (" (dry run: nothing launched)." if plan["dry_run"] else "."),
        f"Command: `{plan['command']}`" if plan["command"] else "",
        f"GPU: {gpu['name']} (index {gpu['index']}, {gpu['uuid']})" if gpu else "GPU: not queried (no nvidia-smi)",
        "",
        "| order | launch | `gsm8k-rl train` flags | response tokens | steps | warm-up (left out) | pooled |",
        "|---:|---|---|---:|---:|---|---:|",
    ]
    for launch in plan["launches"]:
        lines.append(f"| {launch['order']} | {launch['name']} | `{launch['flags'] or '(none)'}` | "
                     f"{launch['response_length']} | {plan['steps_per_launch']} | steps 1-{plan['warmup_steps']} | "
                     f"{plan['pooled_steps_per_launch']} |")
    lines += ["", f"A side with fewer than {plan['min_pooled_steps']} pooled steps is refused."]
    if plan["warmup_env"]:
        lines.append(plan["warmup_env"] + ".")
    diff = plan["launch_env_diff"]
    keys = sorted({k for d in diff.values() for k in d})
    lines += ["", f"Launch environments: {len(plan['launch_env_common'])} variables the same in every launch; "
              f"differing: {', '.join(keys) or 'none'} (allowed: {', '.join(plan['launch_env_allowed_to_differ'])})."]
    if plan["launch_env_diff_outside_flags"]:
        lines.append(f"**Differing outside the flags under test: {json.dumps(plan['launch_env_diff_outside_flags'])}**")
    pinned = ["CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "BACKEND", "VLLM_USE_FLASHINFER_SAMPLER",
              "VLLM_DISABLE_COMPILE_CACHE", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR",
              "PYTHONHASHSEED"]
    lines += ["", "Set by step_speed.sh for every launch:", ""]
    lines += [f"- `{k}={plan['launch_env_common'][k]}`" for k in pinned if k in plan["launch_env_common"]]
    if plan["verl_overrides_every_launch"]:
        lines += ["", "VERL overrides added to every launch:", ""]
        lines += [f"- `{o}`" for o in plan["verl_overrides_every_launch"]]
    return "\n".join(line for line in lines if line is not None) + "\n"


# ------------------------------------------------------------------------------------------- one launch


def logged_steps(run: Path) -> list[tuple[int, dict]]:
    """(step, metrics) of every finished PPO step in RUN/metrics.jsonl, in order."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [(r["step"], r["data"]) for r in rows if "timing_s/step" in r["data"]]
    numbers = [s for s, _ in steps]
    if len(set(numbers)) != len(numbers):
        raise Refused(f"{run}: step numbers repeat in metrics.jsonl ({numbers}): more than one launch in one run "
                      "folder")
    return sorted(steps, key=lambda s: s[0])


def describe(values) -> dict:
    """n, mean, median, standard deviation (n - 1; 0 for one value), min, max."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)),
            "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "min": float(v.min()), "max": float(v.max())}


def resolved_config(run: Path) -> dict:
    import yaml

    path = run / "resolved_config.yaml"
    if not path.exists():
        raise Refused(f"{run}: no resolved_config.yaml (not a run folder of `gsm8k-rl train`)")
    return yaml.safe_load(path.read_text())


def forward_passes(cfg: dict) -> dict[str, int]:
    """Forward-pass equivalents per phase: one for each pure forward, 3 (+1 with gradient checkpointing)
    per PPO epoch for each update."""
    actor, critic = cfg["actor_rollout_ref"], cfg["critic"]
    actor_passes = 3 + bool(actor["model"].get("enable_gradient_checkpointing", False))
    critic_passes = 3 + bool(critic.get("model", {}).get("enable_gradient_checkpointing", False))
    return {"gen": 1, "old_log_prob": 1, "ref": 1, "values": 1,
            "update_critic": int(critic.get("ppo_epochs", 1)) * critic_passes,
            "update_actor": int(actor["actor"].get("ppo_epochs", 1)) * actor_passes}


def gpu_name(run: Path) -> str | None:
    info = run / "run_info.json"
    if info.exists():
        name = json.loads(info.read_text()).get("hardware", {}).get("gpu_name")
        if name:
            return name
    env = run / "environment.txt"
    if env.exists():
        match = re.search(r"'gpu_name': '([^']+)'", env.read_text())
        if match:
            return match.group(1)
    return None


def bf16_rate(name: str | None) -> dict | None:
    """GPU_BF16's row for a GPU name: the card, its datasheet and measured dense bf16 rates (TFLOP/s).

    >>> bf16_rate("NVIDIA H100 80GB HBM3")["card"], bf16_rate("NVIDIA H200")["measured_tflops"]
    ('H100 SXM', 798.0)
    >>> bf16_rate("NVIDIA H100 NVL") is None
    True
    """
    for pattern, card, spec, measured, source in GPU_BF16:
        if name and re.search(pattern, name, re.IGNORECASE):
            return {"gpu_name": name, "card": card, "spec_tflops": spec, "measured_tflops": measured,
                    "measured_source": source}
    return None


def smi_peak_gib(launch: Launch, gpu_index: str | None) -> float | None:
    """Peak memory.used (GiB) of nvidia-smi's 0.5 s trace of the launch (experiments/ppo_gpu.sh), whole GPU."""
    paths = sorted(launch.folder.glob("gpu_mem_*.csv")) or sorted(launch.run.glob("gpu_mem_*.csv"))
    used = []
    for path in paths:
        for row in csv.reader(path.read_text().splitlines()):
            if len(row) >= 3 and (gpu_index is None or row[1].strip() == gpu_index):
                try:
                    used.append(float(row[2]))
                except ValueError:
                    continue
    return max(used) / 1024 if used else None


def side(launch: Launch, gpu_index: str | None = None, params: float = PARAMS, training_only: bool = False) -> dict:
    """A launch's pooled steady state, per phase, with its floor and peak memory; Refused below MIN_STEADY.
    `params`: the model's parameter count (the floor); `training_only`: leave out the steps that also ran a
    validation pass or saved a checkpoint (a training run's; step_speed.sh's launches run neither)."""
    run = launch.run
    if not (run / "metrics.jsonl").exists():
        log = launch.folder / "launch.log"
        raise Refused(f"{run}: no metrics.jsonl: the launch failed or did not start"
                      + (f" (see {log})" if log.exists() else ""))
    steps = logged_steps(run)

    def extra_work(d: dict) -> bool:
        return training_only and ("timing_s/testing" in d or "timing_s/save_checkpoint" in d)

    pooled = [(s, d) for s, d in steps if s > WARMUP and not extra_work(d)]
    if len(pooled) < MIN_STEADY:
        raise Refused(f"{run}: {len(pooled)} steady step(s) after the {WARMUP} warm-up steps (logged: "
                      f"{[s for s, _ in steps]}); a side needs at least {MIN_STEADY}")
    cfg = resolved_config(run)
    length = int(cfg["data"]["max_response_length"])
    if launch.length is not None and length != launch.length:
        raise Refused(f"{run}: data.max_response_length={length}, the plan gives {launch.name} {launch.length}")
    phases = {}
    for ph in [*PHASES, "step"]:
        values = [d[f"timing_s/{ph}"] for _, d in pooled if f"timing_s/{ph}" in d]
        if values:
            phases[ph] = {**describe(values), "values": values}
    # what the step spends outside the timed phases (the rollout's scheduling, metrics, host work)
    other = [d["timing_s/step"] - sum(d.get(f"timing_s/{ph}", 0.0) for ph in PHASES) for _, d in pooled]
    phases = {**{k: v for k, v in phases.items() if k != "step"}, "other": {**describe(other), "values": other},
              "step": phases["step"]}
    counted = [d["perf/total_num_tokens"] for _, d in pooled if "perf/total_num_tokens" in d]
    if len(counted) != len(pooled):
        raise Refused(f"{run}: perf/total_num_tokens missing from some pooled steps; the floor needs the tokens")
    tokens = describe(counted)["mean"]
    rate = bf16_rate(gpu_name(run))
    passes = forward_passes(cfg)
    floors = {}
    for ph, n in passes.items():
        flops = n * 2 * params * tokens
        floors[ph] = {"forward_passes": n, "flops": flops,
                      "floor_s": flops / (rate["spec_tflops"] * 1e12) if rate else None,
                      "floor_measured_s": flops / (rate["measured_tflops"] * 1e12)
                      if rate and rate["measured_tflops"] else None}
    floor_step = sum(f["floor_s"] for f in floors.values()) if rate else None
    floor_step_measured = sum(f["floor_measured_s"] for f in floors.values()) if rate and rate["measured_tflops"] \
        else None

    def peak(key):
        values = [d[key] for _, d in steps if key in d]
        return max(values) if values else None

    return {
        "launch": launch.name, "side": launch.side, "order": launch.order, "flags": launch.flags,
        "run": str(run), "response_length": length, "gpu_name": gpu_name(run),
        "logged_steps": [s for s, _ in steps], "pooled_steps": [s for s, _ in pooled], "warmup_steps": WARMUP,
        "left_out_steps": [s for s, d in steps if s > WARMUP and extra_work(d)], "params": params,
        "first_step_s": steps[0][1]["timing_s/step"],
        "phases": phases, "tokens_per_step": tokens, "forward_passes": passes, "floors": floors,
        "floor_step_s": floor_step, "floor_step_measured_s": floor_step_measured, "rate": rate,
        "peak_memory_gib": {
            "actor_allocated": peak("actor/perf/max_memory_allocated_gb"),
            "actor_reserved": peak("actor/perf/max_memory_reserved_gb"),
            "critic_allocated": peak("critic/perf/max_memory_allocated_gb"),
            "critic_reserved": peak("critic/perf/max_memory_reserved_gb"),
            "nvidia_smi_used": smi_peak_gib(launch, gpu_index),
        },
    }


# ------------------------------------------------------------------------------------------- a pair


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def environment(launch: Launch) -> dict[str, dict]:
    """What a launch recorded of its environment, its own run folder's path written as <run>."""
    cfg = resolved_config(launch.run)
    own = str(Path(cfg["trainer"]["default_local_dir"]).parent)  # the run folder's path on the machine that ran it

    def norm(v):
        return v.replace(own, "<run>") if isinstance(v, str) else v

    ray = cfg.get("ray_kwargs", {}).get("ray_init", {}).get("runtime_env", {}).get("env_vars") or {}
    env = {
        "launch environment (launch_env.json)": {},
        "Ray workers' variables (resolved_config.yaml)": {k: norm(v) for k, v in ray.items()},
        "software (environment.txt)": {},
        "workload (resolved_config.yaml: data, algorithm)": {
            k: norm(v) for section in ("data", "algorithm") for k, v in _flat(cfg.get(section, {}), f"{section}.")},
    }
    launch_env = launch.folder / "launch_env.json"
    if launch_env.exists():
        env["launch environment (launch_env.json)"] = json.loads(launch_env.read_text())["env"]
    software = launch.run / "environment.txt"
    if software.exists():
        for line in software.read_text().splitlines():
            if line.strip():
                key, _, value = line.partition(" ")
                env["software (environment.txt)"][key] = value
    return env


def launch_gpu_uuid(launch: Launch) -> str | None:
    """The GPU UUID step_speed.sh recorded just before the launch (LAUNCH/gpu.csv), if any."""
    path = launch.folder / "gpu.csv"
    gpu = parse_gpu(path.read_text()) if path.exists() else None
    return gpu["uuid"] if gpu else None


def pair_problems(stock: Launch, default: Launch) -> tuple[list[str], dict]:
    """Why a ratio between the two launches would not be a like-for-like one (empty: none), and the full
    environment diff."""
    problems = []
    names = {launch.run: gpu_name(launch.run) for launch in (stock, default)}
    if None in names.values():
        problems += [f"{run}: no GPU name recorded (run_info.json, environment.txt)" for run, n in names.items()
                     if n is None]
    elif len(set(names.values())) > 1:
        problems.append(f"different GPUs: {stock.run} ran on {names[stock.run]}, {default.run} on "
                        f"{names[default.run]}; no ratio across machines")
    uuids = {launch.folder: launch_gpu_uuid(launch) for launch in (stock, default)}
    if None not in uuids.values() and len(set(uuids.values())) > 1:
        problems.append(f"different GPUs: {stock.folder} ran on {uuids[stock.folder]}, {default.folder} on "
                        f"{uuids[default.folder]}")
    env = {launch.name: environment(launch) for launch in (stock, default)}
    a, b = env[stock.name], env[default.name]
    diff = {section: dict_diff(a[section], b[section]) for section in a}
    launch_section = "launch environment (launch_env.json)"
    one_sided = bool(a[launch_section]) != bool(b[launch_section])
    if one_sided:
        problems.append(f"only one of {stock.folder} and {default.folder} recorded its launch environment "
                        "(launch_env.json)")
    for section, d in diff.items():
        if section == launch_section:
            if one_sided:
                continue  # reported above; its diff would be every variable
            d = {k: v for k, v in d.items() if k not in ALLOWED_ENV_DIFF}
        if d:
            problems.append(f"{stock.run} and {default.run}: {section} differs outside the settings under test: "
                            + "; ".join(f"{k}: {v[0]!r} vs {v[1]!r}" for k, v in d.items()))
    for launch in (stock, default):
        recorded = env[launch.name][launch_section]
        if launch.flags is not None and recorded and recorded.get("TRAIN_FLAGS", "") != launch.flags:
            problems.append(f"{launch.folder}: launched with TRAIN_FLAGS={recorded.get('TRAIN_FLAGS')!r}, the plan "
                            f"gives {launch.side} {launch.flags!r}")
    return problems, diff


def ratio(a, b) -> dict:
    """mean(a) / mean(b) with a 95% bootstrap interval (percentile, 10,000 resamples of each sample, seed 0)
    and the delta method's standard error."""
    import inspect

    import numpy as np
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    r = a.mean() / b.mean()

    def statistic(x, y, axis=-1):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis)

    seed = {"rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state":
            np.random.default_rng(0)}
    res = stats.bootstrap((a, b), statistic, n_resamples=10_000, method="percentile", vectorized=True,
                          paired=False, confidence_level=0.95, **seed)
    va = a.var(ddof=1) if a.size > 1 else 0.0
    vb = b.var(ddof=1) if b.size > 1 else 0.0
    se = r * np.sqrt(va / (a.size * a.mean() ** 2) + vb / (b.size * b.mean() ** 2))
    return {"ratio": float(r), "ci95_bootstrap": [float(res.confidence_interval.low),
                                                  float(res.confidence_interval.high)],
            "se_delta": float(se)}


def compare(stock: Launch, default: Launch, gpu_index: str | None = None) -> dict:
    """The pair's summary: both sides and the ratios; Refused with every reason at once."""
    problems, diff = pair_problems(stock, default)
    sides = {}
    for launch in (stock, default):
        try:
            sides[launch.side] = side(launch, gpu_index)
        except Refused as e:
            problems.append(str(e))
    if problems:
        raise Refused("\n".join(problems))
    s, d = sides["stock"], sides["default"]
    if s["response_length"] != d["response_length"]:
        raise Refused(f"{stock.run} ({s['response_length']} tokens) and {default.run} ({d['response_length']}): "
                      "different response lengths")
    ratios = {ph: ratio(s["phases"][ph]["values"], d["phases"][ph]["values"])
              for ph in s["phases"] if ph in d["phases"] and d["phases"][ph]["mean"] > 0}
    return {"response_length": s["response_length"], "stock": s, "default": d, "ratio_stock_over_default": ratios,
            "environment_diff": diff}


# ----------------------------------------------------------------------------------------------- output


def _num(x, fmt="{:.2f}"):
    return "—" if x is None else fmt.format(x)


def pair_markdown(pair: dict) -> str:
    s, d = pair["stock"], pair["default"]
    length = pair["response_length"]
    rate = s["rate"]
    lines = [f"## {length} response tokens", ""]
    for x in (s, d):
        command = "`" + f"gsm8k-rl train {x['flags']}".strip() + "`" if x["flags"] is not None else "flags not recorded"
        order = f"launch {x['order']}, " if x["order"] else ""
        lines.append(f"- {x['side']}: {command} ({order}"
                     f"run folder `{x['run']}`): steps {x['pooled_steps'][0]}-{x['pooled_steps'][-1]} of "
                     f"{x['logged_steps'][-1]} pooled (n = {len(x['pooled_steps'])}; steps 1-{x['warmup_steps']} "
                     f"warm-up; first step {x['first_step_s']:.1f} s)")
    lines += ["", "| phase | side | n | mean (s) | median | sd | min | max | floor (s) | mean / floor |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ph in [*PHASES, "other", "step"]:
        for x in (s, d):
            st = x["phases"].get(ph)
            if st is None:
                continue
            floor = x["floor_step_s"] if ph == "step" else x["floors"].get(ph, {}).get("floor_s")
            label = f"**{ph}**" if ph == "step" else ph
            lines.append(f"| {label} | {x['side']} | {st['n']} | {st['mean']:.2f} | {st['median']:.2f} | "
                         f"{st['sd']:.2f} | {st['min']:.2f} | {st['max']:.2f} | {_num(floor)} | "
                         f"{_num(st['mean'] / floor if floor else None, '{:.1f}x')} |")
    lines += ["", "| phase | stock mean (s) | default mean (s) | stock / default | 95% interval (bootstrap) | "
              "± (delta method) |", "|---|---:|---:|---:|---|---:|"]
    for ph, r in pair["ratio_stock_over_default"].items():
        label = f"**{ph}**" if ph == "step" else ph
        lines.append(f"| {label} | {s['phases'][ph]['mean']:.2f} | {d['phases'][ph]['mean']:.2f} | "
                     f"{r['ratio']:.2f}x | {r['ci95_bootstrap'][0]:.2f}-{r['ci95_bootstrap'][1]:.2f} | "
                     f"{r['se_delta']:.2f} |")
    mem = [("training process peak allocated, actor / critic (GiB)", "actor_allocated", "critic_allocated"),
           ("training process peak reserved, actor / critic (GiB)", "actor_reserved", "critic_reserved")]
    lines += ["", "| | stock | default |", "|---|---:|---:|"]
    for label, a, c in mem:
        lines.append(f"| {label} | " + " | ".join(
            f"{_num(x['peak_memory_gib'][a], '{:.1f}')} / {_num(x['peak_memory_gib'][c], '{:.1f}')}" for x in (s, d))
            + " |")
    lines.append("| nvidia-smi peak memory.used, whole GPU (GiB) | " + " | ".join(
        _num(x["peak_memory_gib"]["nvidia_smi_used"], "{:.1f}") for x in (s, d)) + " |")
    lines.append("| tokens per step | " + " | ".join(f"{x['tokens_per_step'] / 1000:.1f} K" for x in (s, d)) + " |")
    lines.append("| 500 steps at the mean step (h) | " + " | ".join(
        f"{x['phases']['step']['mean'] * 500 / 3600:.2f}" for x in (s, d)) + " |")
    if rate and rate["measured_tflops"]:
        lines.append(f"| step / floor at the measured {rate['measured_tflops']:.0f} TFLOP/s | " + " | ".join(
            f"{x['phases']['step']['mean'] / x['floor_step_measured_s']:.1f}x" for x in (s, d)) + " |")
    env_keys = {section: sorted(diff) for section, diff in pair["environment_diff"].items()}
    lines += ["", "Environment diff between the sides: " + "; ".join(
        f"{section}: {', '.join(keys) or 'none'}" for section, keys in env_keys.items()) + "."]
    return "\n".join(lines) + "\n"


def phases_markdown(x: dict) -> str:
    """Where one run's step goes: each phase's pooled time against its FLOP floor (no ratio: one side)."""
    rate = x["rate"]
    step = x["phases"]["step"]["mean"]
    lines = [f"# Where the step goes: `{x['run']}`", "",
             f"GPU: {x['gpu_name'] or 'not recorded'}"
             + (f"; floor at the {rate['card']}'s datasheet dense bf16 rate, {rate['spec_tflops']:.1f} TFLOP/s"
                if rate else "; not in GPU_BF16, so no floor") + ". "
             f"Model: {x['params'] / 1e9:.3f} B parameters; {x['tokens_per_step'] / 1000:.1f} K tokens per step "
             f"(perf/total_num_tokens, mean); response length {x['response_length']}.",
             f"Pooled: steps {x['pooled_steps'][0]}-{x['pooled_steps'][-1]} (n = {len(x['pooled_steps'])}; steps "
             f"1-{x['warmup_steps']} warm-up" + (f"; left out, a validation pass or a checkpoint in the step: "
                                                  f"{x['left_out_steps']}" if x["left_out_steps"] else "") + ").",
             "FLOP floor per phase: " + FLOOR_RULE.replace(" (1.7206e9 parameters)", ""), "",
             "| phase | n | mean (s) | median | sd | min / max | share of the step | forward passes | floor (s) | "
             "mean / floor |", "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for ph in [*PHASES, "other", "step"]:
        st = x["phases"].get(ph)
        if st is None:
            continue
        floor = x["floor_step_s"] if ph == "step" else x["floors"].get(ph, {}).get("floor_s")
        passes = sum(x["forward_passes"].values()) if ph == "step" else x["forward_passes"].get(ph)
        label = f"**{ph}**" if ph == "step" else ph
        lines.append(f"| {label} | {st['n']} | {st['mean']:.2f} | {st['median']:.2f} | {st['sd']:.2f} | "
                     f"{st['min']:.2f} / {st['max']:.2f} | {100 * st['mean'] / step:.0f}% | {_num(passes, '{}')} | "
                     f"{_num(floor)} | {_num(st['mean'] / floor if floor else None, '{:.1f}x')} |")
    mem = x["peak_memory_gib"]
    lines += ["", f"Peak memory of the training process (VERL's perf/max_memory_*): actor "
              f"{_num(mem['actor_allocated'], '{:.1f}')} GiB allocated / {_num(mem['actor_reserved'], '{:.1f}')} "
              f"GiB reserved; critic {_num(mem['critic_allocated'], '{:.1f}')} / "
              f"{_num(mem['critic_reserved'], '{:.1f}')} GiB."]
    return "\n".join(lines) + "\n"


def _label(length) -> str:
    return f"{length} response tokens" if isinstance(length, int) else str(length)


def markdown(summary: dict) -> str:
    lines = ["# Step speed: VERL's stock settings against the launcher's default", ""]
    rate = summary["rate"]
    if rate:
        measured = (f"; measured: {rate['measured_tflops']:.0f} TFLOP/s ({rate['measured_source']})"
                    if rate["measured_tflops"] else "; no measured rate recorded for it")
        lines.append(f"GPU: {rate['gpu_name']}. The floor uses the datasheet's dense bf16 rate of the "
                     f"{rate['card']}, {rate['spec_tflops']:.1f} TFLOP/s{measured}.")
    elif summary["pairs"]:
        lines.append(f"GPU: {summary['gpu_names']}: not in GPU_BF16 (experiments/step_speed_summary.py), so no "
                     "floor; add its dense bf16 rate there.")
    lines.append(f"FLOP floor per phase: {summary['floor_rule']}")
    if summary["plan"]:
        plan = summary["plan"]
        lines.append(f"Plan (written before the first launch{', a dry run' if plan['dry_run'] else ''}): "
                     f"order {', '.join(plan['order'])}; {plan['steps_per_launch']} steps per launch, steps "
                     f"1-{plan['warmup_steps']} warm-up, every later step pooled.")
        if plan.get("warmup_env"):
            lines.append(plan["warmup_env"] + ".")
    lines.append("")
    for pair in summary["pairs"]:
        lines.append(pair_markdown(pair))
    for length, reason in summary["refused"].items():
        lines += [f"## {_label(length)}: refused", "", *[f"- {r}" for r in reason.splitlines()], ""]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """Per length, a stacked bar per side (mean of each phase), each segment's sd as an error bar, the
    step's sd on the total, the FLOP floor as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = summary["pairs"]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(9, 1.8 + 1.6 * len(pairs)), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, pair in zip(axes[:, 0], pairs, strict=True):
        sides = [pair["stock"], pair["default"]]
        names = [x["side"] for x in sides]
        left = [0.0, 0.0]
        for i, ph in enumerate([*PHASES, "other"]):
            widths = [x["phases"].get(ph, {}).get("mean", 0.0) for x in sides]
            sds = [x["phases"].get(ph, {}).get("sd", 0.0) for x in sides]
            ax.barh(names, widths, left=left, color="0.8" if ph == "other" else colors[i % len(colors)], label=ph)
            ends = [a + w for a, w in zip(left, widths, strict=True)]
            ax.errorbar(ends, range(2), xerr=sds, fmt="none", ecolor="0.25", elinewidth=0.8, capsize=2)
            left = ends
        for y, x in enumerate(sides):
            st = x["phases"]["step"]
            ax.errorbar([st["mean"]], [y], xerr=[st["sd"]], fmt="none", ecolor="black", elinewidth=1.6, capsize=4)
            ax.text(st["mean"] + st["sd"], y, f"  {st['mean']:.2f} ± {st['sd']:.2f} s (n {st['n']})", va="center")
            if x["floor_step_s"]:
                ax.plot([x["floor_step_s"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
        r = pair["ratio_stock_over_default"]["step"]
        ax.set_title(f"{pair['response_length']}-token responses: stock / default = {r['ratio']:.2f}x "
                     f"(95% {r['ci95_bootstrap'][0]:.2f}-{r['ci95_bootstrap'][1]:.2f})", fontsize=10)
        ax.invert_yaxis()
        ax.set_xlim(0, max(x["phases"]["step"]["mean"] + x["phases"]["step"]["sd"] for x in sides) * 1.35)
    axes[-1, 0].set_xlabel("seconds per PPO step, pooled steady steps (mean, error bars: sd); black tick: FLOP floor")
    axes[-1, 0].legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


FLOOR_RULE = ("2 x parameters FLOPs per token per forward pass (1.7206e9 parameters) x tokens per step; generation, "
              "old log-probs, reference and values one forward each; each update 3 forwards, +1 with gradient "
              "checkpointing, per PPO epoch; attention's own FLOPs left out.")


def summarise(pairs: dict[int | str, tuple[Launch, Launch]], out_dir: Path, plan: dict | None = None) -> dict:
    """Every length's pair, written to OUT_DIR/step_speed.{md,json,png}; SystemExit naming every refusal
    (after writing what passed)."""
    gpu_index = plan["gpu"]["index"] if plan and plan.get("gpu") else None
    done, refused = [], {}
    for length, (stock, default) in pairs.items():
        try:
            done.append(compare(stock, default, gpu_index))
        except Refused as e:
            refused[length] = str(e)
    for x in done:  # run folders inside OUT_DIR as paths relative to it: the output can move with the folder
        for k in ("stock", "default"):
            run = Path(x[k]["run"]).resolve()
            if run.is_relative_to(out_dir.resolve()):
                x[k]["run"] = str(run.relative_to(out_dir.resolve()))
    names = sorted({x[k]["gpu_name"] for x in done for k in ("stock", "default") if x[k]["gpu_name"]})
    if len(names) > 1:  # the pairs of one plan ran on one machine
        for x in done:
            refused[x["response_length"]] = f"the launches of {out_dir} ran on different GPUs: {names}"
        done = []
    summary = {"plan": plan, "gpu_names": names, "rate": done[0]["stock"]["rate"] if done else None,
               "floor_rule": FLOOR_RULE, "pairs": done, "refused": refused}
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(summary).replace(f"{out_dir.resolve()}/", "")
    (out_dir / "step_speed.md").write_text(text)
    (out_dir / "step_speed.json").write_text(json.dumps(summary, indent=1) + "\n")
    if done:
        plot(summary, out_dir / "step_speed.png")
    print(text)
    if refused:
        raise SystemExit("refused:\n" + "\n".join(f"{_label(length)}: {r}" for length, r in refused.items()))
    return summary


def from_plan(out: Path) -> tuple[dict, dict[int, tuple[Launch, Launch]]]:
    plan_path = out / "plan.json"
    if not plan_path.exists():
        raise SystemExit(f"{out}: no plan.json (a folder of experiments/step_speed.sh; for two run folders "
                         "use --pair)")
    plan = json.loads(plan_path.read_text())
    if plan["warmup_steps"] != WARMUP:
        raise SystemExit(f"{plan_path}: warm-up {plan['warmup_steps']} steps, this summary's rule is {WARMUP}")
    launches = {}
    for entry in plan["launches"]:
        launches.setdefault(entry["response_length"], {})[entry["side"]] = Launch(
            entry["name"], entry["side"], entry["response_length"], out / entry["run"], out / entry["folder"],
            entry["flags"], entry["order"])
    return plan, {length: (p["stock"], p["default"]) for length, p in launches.items()}


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", help="the folder experiments/step_speed.sh wrote (plan.json, a folder a launch)")
    p.add_argument("--pair", nargs=2, metavar=("STOCK_RUN", "DEFAULT_RUN"), help="two run folders, without a plan")
    p.add_argument("--phases", metavar="RUN", help="one run folder: where its step goes, phase by phase, against "
                   "each phase's floor (phases.{md,json} in --out-dir; steps with a validation or a checkpoint "
                   "left out)")
    p.add_argument("--params", type=float, default=PARAMS, help="the model's parameter count, for the floor "
                   "(default: Qwen3-1.7B's)")
    p.add_argument("--out-dir", help="where step_speed.{md,json,png} go (default: OUT)")
    p.add_argument("--record-env", metavar="FILE", help="(step_speed.sh) write `env -0` from stdin to FILE, redacted")
    p.add_argument("--write-plan", action="store_true", help="(step_speed.sh) write OUT/plan.json and plan.md")
    p.add_argument("--steps", type=int)
    p.add_argument("--lengths", default="300 1000")
    p.add_argument("--gpu", default="", help="nvidia-smi's index, name, uuid, memory.total, driver_version line")
    p.add_argument("--warmup-env", default="", help="WARMUP as the caller's environment set it")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--override", action="append", default=[], help="a VERL override every launch gets")
    p.add_argument("--command", default="")
    args = p.parse_args(argv)
    if args.record_env:
        record_env(sys.stdin.buffer.read(), Path(args.record_env))
        return None
    if args.write_plan:
        if not args.out or args.steps is None:
            p.error("--write-plan needs OUT and --steps")
        lengths = [int(x) for x in args.lengths.replace(",", " ").split()]
        plan = write_plan(Path(args.out), steps=args.steps, lengths=lengths, gpu=args.gpu,
                          warmup_env=args.warmup_env, dry_run=args.dry_run, overrides=args.override,
                          command=args.command)
        print((Path(args.out) / "plan.md").read_text())
        return plan
    if args.phases:
        if not args.out_dir:
            p.error("--phases needs --out-dir")
        run = Path(args.phases)
        try:
            x = side(Launch("run", "run", None, run, run, None), params=args.params, training_only=True)
        except Refused as exc:
            raise SystemExit(str(exc)) from exc
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        text = phases_markdown(x)
        (out_dir / "phases.md").write_text(text)
        slim = {**x, "phases": {k: {m: v for m, v in st.items() if m != "values"} for k, st in x["phases"].items()}}
        (out_dir / "phases.json").write_text(json.dumps(slim, indent=1) + "\n")
        print(text)
        return x
    if args.pair:
        if not args.out_dir:
            p.error("--pair needs --out-dir")
        stock, default = (Path(x) for x in args.pair)
        pairs = {"the pair": (Launch("stock", "stock", None, stock, stock, None),
                              Launch("default", "default", None, default, default, None))}
        return summarise(pairs, Path(args.out_dir))
    if not args.out:
        p.error("OUT or --pair")
    plan, pairs = from_plan(Path(args.out))
    return summarise(pairs, Path(args.out_dir or args.out), plan)


if __name__ == "__main__":
    main()
