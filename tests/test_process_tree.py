"""experiments/process_tree.sh: after an interrupted job on a shared machine, only that job's
leftovers are stopped (`ray stop` would take every job's Ray down)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.recorded  # checks the lab: experiments/

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "process_tree.sh"


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_kills_the_jobs_orphans_and_nothing_else(tmp_path):
    tree = tmp_path / "tree.txt"
    pidfile = tmp_path / "orphan.pid"
    other = subprocess.Popen(["sleep", "60"])  # another job's process
    # a job that leaves a process of its own session behind, as Ray's daemons outlive their driver
    job = subprocess.Popen(["bash", "-c", f"setsid sleep 60 & echo $! > {pidfile}; sleep 3"])
    rec = subprocess.Popen(["bash", str(SCRIPT), "record", str(job.pid), str(tree)])
    job.wait()
    rec.wait(timeout=10)
    orphan = int(pidfile.read_text())
    try:
        assert _alive(orphan), "the job's leftover should still run before the kill"
        assert str(orphan) in tree.read_text().split()
        out = subprocess.run(["bash", str(SCRIPT), "kill", str(tree)], capture_output=True, text=True,
                             check=True).stdout
        assert "stopped 1 leftover processes" in out
        for _ in range(50):
            if not _alive(orphan):
                break
            time.sleep(0.1)
        assert not _alive(orphan)
        assert other.poll() is None, "another job's process was killed"
    finally:
        other.kill()
        subprocess.run(["kill", "-9", str(orphan)], capture_output=True)


def test_a_reused_pid_is_not_killed(tmp_path):
    """A pid recorded with another start time (the process died, the pid was reused) is left alone."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "tree.txt").write_text(f"{other.pid} 1\n")
        out = subprocess.run(["bash", str(SCRIPT), "kill", str(tmp_path / "tree.txt")],
                             capture_output=True, text=True, check=True).stdout
        assert "stopped 0 leftover processes" in out and other.poll() is None
    finally:
        other.kill()
