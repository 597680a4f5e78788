"""Kill `gsm8k-rl run --smoke` at random moments, restart it each time, and check that nothing was lost.

Why: the project promises that a job killed anywhere (OOM killer, preemption, Ctrl-C twice) and
restarted with the same command loses nothing it had finished and never mistakes a half-written
output for a finished one. This drives the real CPU chain (tiny random Qwen3, local backend):

1. one uninterrupted run (the reference: wall time, stage timeline, metric keys per step);
2. the fault run: the same command in its own process group, SIGKILLed as a group (os.killpg) at
   `--kills` moments, restarted after each, until it exits 0. Each kill time is a random delay
   after a randomly chosen marker of the reference timeline (stage banners such as `=== train`,
   VERL's console lines such as `step:1`, the checkpoint save), so that every stage gets hit;
   the stage each kill landed in is recorded. After a kill, the processes that outlive the group
   (Ray starts its daemons in sessions of their own) are found by a token in their environment
   and SIGKILLed by pid; `--ray-stop` also runs `ray stop --force` (kills every Ray of this user);
3. the checks: total steps reached; metrics.jsonl holds steps 1..N once each with the reference
   run's keys; the final checkpoint exports again (weights + config); both evals hold each problem
   once; the report exists; the export and eval folders the pipeline skipped are complete.

    .venv/bin/python experiments/fault_injection.py --kills 6 --seed 0 \
        --work /tmp/fault --out experiments/results/fault_injection_cpu_seed0.json

Figures printed (and written to --out): kills survived, stage hit per kill, PPO steps re-run,
seconds lost per kill ((fault-run wall - reference wall) / kills, restarts included).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TOKEN_ENV = "GSM8K_RL_FAULT_TOKEN"

# (regex on a console line, stage it starts); order = the order in a full run
MARKERS = [
    (r"^=== plan: gsm8k-rl", "plan (smoke model + data, config)"),
    (r"^=== eval base: gsm8k-rl", "eval base (batch generation)"),
    (r"^=== train: gsm8k-rl", "train: Ray + workers start, initial validation"),
    (r"step:0 - ", "train: step 1 (generation, update)"),
    (r"step:1 - ", "train: step 2 (generation, update)"),
    (r"Saved model to .*global_step_\d+/actor", "train: checkpoint save, final validation"),
    (r"step:2 - ", "train: shutdown after the last step"),
    (r"^=== export: gsm8k-rl", "export (merge, verify)"),
    (r"^=== eval trained: gsm8k-rl", "eval trained (batch generation)"),
    (r"^=== report: gsm8k-rl", "report"),
]
COMPILED = [(re.compile(rx), name) for rx, name in MARKERS]


def marker_of(line: str) -> int | None:
    for i, (rx, _) in enumerate(COMPILED):
        if rx.search(line):
            return i
    return None


class Attempt:
    """One launch of the command: its console (with times), the markers seen, and how it ended."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str]):
        self.t0 = time.monotonic()
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, text=True, errors="replace")
        self.seen: list[tuple[int, float]] = []  # (marker index, seconds since start)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = time.monotonic() - self.t0
            self.log.write(line)
            self.log.flush()
            m = marker_of(line)
            with self.cond:
                self.lines.append(line)
                if m is not None:
                    self.seen.append((m, t))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def stage_now(self) -> str:
        with self.cond:
            return MARKERS[self.seen[-1][0]][1] if self.seen else "start-up (before the first banner)"

    def wait_marker(self, at_least: int) -> tuple[int, float] | None:
        """Block until a marker with index >= at_least is seen (-> it) or the job exits (-> None)."""
        with self.cond:
            while True:
                hit = next(((m, t) for m, t in self.seen if m >= at_least), None)
                if hit is not None:
                    return hit
                if self.proc.poll() is not None and not self.reader.is_alive():
                    return None
                self.cond.wait(timeout=0.5)

    def kill_at(self, when: float) -> bool:
        """SIGKILL the whole process group at `when` (seconds since start); False if it exited first."""
        while time.monotonic() - self.t0 < when:
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        if self.proc.poll() is not None:
            return False
        os.killpg(self.proc.pid, signal.SIGKILL)
        return True

    def finish(self) -> tuple[int, float]:
        rc = self.proc.wait()
        self.reader.join(timeout=30)
        self.log.close()
        return rc, time.monotonic() - self.t0


def survivors(token: str) -> list[int]:
    """Pids of processes started by this harness's job (their environment carries the token)."""
    found = []
    needle = f"{TOKEN_ENV}={token}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0"):
                found.append(int(d.name))
        except OSError:
            continue
    return found


def clean_up(token: str, ray_stop: bool) -> int:
    if ray_stop:
        subprocess.run([str(VENV_BIN / "ray"), "stop", "--force"], capture_output=True)
    killed = 0
    for _ in range(20):
        pids = survivors(token)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    return killed


def command(run_dir: Path) -> list[str]:
    return [str(VENV_BIN / "gsm8k-rl"), "run", "--smoke", "--run-dir", str(run_dir)]


def reference_run(work: Path, env: dict[str, str], token: str) -> dict:
    run_dir = work / "reference"
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"reference run (uninterrupted): {' '.join(command(run_dir))}", flush=True)
    a = Attempt(command(run_dir), work / "reference.log", env)
    rc, wall = a.finish()
    clean_up(token, False)
    if rc != 0:
        raise SystemExit(f"the uninterrupted run failed (exit {rc}); see {work / 'reference.log'}")
    times = {}
    for m, t in a.seen:
        times.setdefault(m, t)
    return {"run_dir": str(run_dir), "wall_s": wall, "marker_times_s": {MARKERS[m][1]: t for m, t in times.items()},
            "_times": times, "metrics": read_metrics(run_dir / "metrics.jsonl")}


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plan_kills(rng: random.Random, n: int, times: dict[int, float], wall: float) -> list[tuple[int, float]]:
    """n (marker, delay) pairs in timeline order: markers drawn at random (each stage before any
    repeats), delay uniform within that marker's stretch of the reference run."""
    order = sorted(times)
    picks: list[int] = []
    while len(picks) < n:
        pool = [m for m in order if m not in picks] or order
        picks.append(rng.choice(pool))
    picks.sort()
    plan = []
    for m in picks:
        later = [times[k] for k in order if k > m]
        stretch = (min(later) if later else wall) - times[m]
        plan.append((m, rng.uniform(0.0, max(stretch, 0.5))))
    return plan


def check(run_dir: Path, reference: dict, work: Path, env: dict[str, str]) -> dict:
    """The end state of the fault run, checked; returns {check: ok or a message}."""
    sys.path.insert(0, str(ROOT / "src"))
    from gsm8k_rl.launch.run_dir import STEP_KEY, RunDir, latest_checkpoint

    import yaml

    run = RunDir(run_dir)
    out: dict[str, str] = {}
    total = int(yaml.safe_load(run.resolved_config.read_text())["trainer"]["total_training_steps"])
    ckpt = latest_checkpoint(run)
    out["total steps reached"] = "ok" if ckpt is not None and ckpt.name == f"global_step_{total}" else f"latest {ckpt}"

    recs = read_metrics(run.metrics)
    steps = [r["step"] for r in recs]
    ref = {r["step"]: set(r["data"]) for r in reference["metrics"]}
    problems = []
    for s in range(1, total + 1):
        if steps.count(s) != 1:
            problems.append(f"step {s} appears {steps.count(s)} times")
    for r in recs:
        if r["step"] >= 1 and STEP_KEY not in r["data"]:
            problems.append(f"step {r['step']} has no {STEP_KEY}")
        if r["step"] in ref and set(r["data"]) != ref[r["step"]]:
            diff = set(r["data"]) ^ ref[r["step"]]
            problems.append(f"step {r['step']} keys differ from the reference run: {sorted(diff)[:5]}")
    out["metrics.jsonl: steps 1..N once, complete"] = "ok" if not problems else "; ".join(problems)

    exported = run.export / f"global_step_{total}"
    has = lambda d: (d / "config.json").is_file() and any(d.glob("*.safetensors")) and (d / "export_info.json").is_file()
    out["pipeline's export folder complete"] = "ok" if has(exported) else f"{exported} lacks config/weights/export_info"
    again = work / "re_export"
    shutil.rmtree(again, ignore_errors=True)
    p = subprocess.run([str(VENV_BIN / "gsm8k-rl"), "export", "--run-dir", str(run_dir), "--out", str(again)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    out["latest checkpoint loads and exports"] = "ok" if p.returncode == 0 and has(again) else p.stderr[-500:]

    for name in ("base", "trained"):
        d = run.root / "eval" / name
        idx = [json.loads(line)["index"] for line in (d / "samples.jsonl").read_text().splitlines() if line.strip()]
        m = json.loads((d / "metrics.json").read_text())
        n_ref = json.loads((Path(reference["run_dir"]) / "eval" / name / "metrics.json").read_text())["n"]
        ok = sorted(idx) == list(range(n_ref)) and m.get("n") == n_ref
        out[f"eval {name}: each problem once"] = "ok" if ok else f"indices {sorted(idx)}, metrics n={m.get('n')}"
    out["report built"] = "ok" if (run.root / "report" / "report.md").is_file() else "no report.md"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/gsm8k_rl_fault", help="scratch folder (run folders, console logs)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--ray-stop", action="store_true", help="also `ray stop --force` after each kill (every Ray of this user)")
    ap.add_argument("--max-attempts", type=int, default=30)
    args = ap.parse_args()

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    env = {**os.environ, TOKEN_ENV: token}
    rng = random.Random(args.seed)

    reference = reference_run(work, env, token)
    print(f"reference wall {reference['wall_s']:.1f} s; timeline: "
          + ", ".join(f"{k} @{v:.0f}s" for k, v in reference["marker_times_s"].items()), flush=True)
    plan = plan_kills(rng, args.kills, reference["_times"], reference["wall_s"])

    run_dir = work / "faulted"
    shutil.rmtree(run_dir, ignore_errors=True)
    kills: list[dict] = []
    attempts: list[dict] = []
    t_start = time.monotonic()
    rc = None
    while len(attempts) < args.max_attempts:
        i = len(attempts)
        a = Attempt(command(run_dir), work / f"attempt_{i}.log", env)
        target = plan[len(kills)] if len(kills) < len(plan) else None
        killed = False
        if target is not None:
            hit = a.wait_marker(target[0])
            if hit is not None:
                killed = a.kill_at(hit[1] + target[1])
                if killed:
                    stage = a.stage_now()
                    kill_t = time.monotonic() - a.t0
        rc, wall = a.finish()
        skipped = [ln.strip() for ln in a.lines if "already done" in ln]
        steps_run = sorted(int(m.group(1)) for ln in a.lines if (m := re.search(r"step:(\d+) - ", ln)) and m.group(1) != "0")
        cleaned = clean_up(token, args.ray_stop)
        rec = {"attempt": i, "wall_s": round(wall, 1), "exit": rc, "killed": killed, "steps_logged": steps_run,
               "skipped": skipped, "survivors_killed": cleaned}
        if killed:
            rec.update(stage=stage, kill_at_s=round(kill_t, 1),
                       planned=f"{target[1]:.1f} s after '{MARKERS[target[0]][1]}'")
            kills.append(rec)
            print(f"kill {len(kills)}: attempt {i} at {kill_t:.1f} s, in {stage} "
                  f"(stragglers killed: {cleaned})", flush=True)
        else:
            print(f"attempt {i}: exit {rc} after {wall:.1f} s", flush=True)
        attempts.append(rec)
        if not killed:
            if rc == 0:
                break
            if target is None or len(kills) >= len(plan):
                break
            # it failed on its own: that is a finding; the restart shows whether it recovers
            print(f"attempt {i} FAILED by itself (exit {rc}); see {work / f'attempt_{i}.log'}", flush=True)
    fault_wall = time.monotonic() - t_start

    checks = check(run_dir, reference, work, env) if rc == 0 else {"finished": f"last exit {rc}"}
    total_steps = len([r for r in reference["metrics"] if r["step"] >= 1])
    steps_run = sum(len(a["steps_logged"]) for a in attempts)
    figures = {
        "command": " ".join(command(Path("DIR"))),
        "seed": args.seed, "kills_planned": args.kills, "kills_survived": len(kills) if rc == 0 else 0,
        "attempts": len(attempts), "finished": rc == 0,
        "reference_wall_s": round(reference["wall_s"], 1), "fault_run_wall_s": round(fault_wall, 1),
        "seconds_lost_per_kill": round((fault_wall - reference["wall_s"]) / max(len(kills), 1), 1),
        "ppo_steps_logged_in_all_attempts": steps_run, "ppo_steps_total": total_steps,
        "ppo_steps_rerun": steps_run - total_steps,
        "kills": [{k: v for k, v in r.items() if k in ("attempt", "stage", "kill_at_s", "planned", "survivors_killed")}
                  for r in kills],
        "attempts_detail": attempts,
        "reference_timeline_s": {k: round(v, 1) for k, v in reference["marker_times_s"].items()},
        "checks": checks,
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "attempts_detail"}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    bad = {k: v for k, v in checks.items() if v != "ok"}
    if bad:
        print(f"FAILED checks: {bad}", flush=True)
        return 1
    print(f"all checks passed: {len(kills)} kills survived", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
