"""The offline wheelhouse scripts (docs/gpu_stack.md), offline: two small wheels written here, one
of them split into parts across two batch folders as build_wheelhouse.py does, installed by the
real tools/install_wheelhouse.sh with pip --no-index, then checked by check_requirements.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "tools" / "install_wheelhouse.sh"


@pytest.fixture
def builder(load_script):
    return load_script("tools/build_wheelhouse.py")


def _wheel(folder: Path, name: str, version: str, requires: list[str], payload: bytes = b"") -> Path:
    """A minimal valid pure-Python wheel providing module `name` (VALUE = version)."""
    files = {
        f"{name}/__init__.py": f"VALUE = {version!r}\nPAYLOAD = {payload!r}\n".encode(),
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode(),
        f"{name}-{version}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    digest = {path: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
              for path, data in files.items()}
    record = [f"{path},sha256={digest[path]},{len(data)}" for path, data in files.items()]
    lines = record + [f"{name}-{version}.dist-info/RECORD,,"]
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(lines) + "\n").encode()
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for arc, data in files.items():
            z.writestr(arc, data)
    return path


@pytest.fixture
def wheelhouse(tmp_path, builder):
    """Two batches: batch-01 holds alpha (whole) and part 0 of beta; batch-02 the rest of beta."""
    src = tmp_path / "src"
    src.mkdir()
    alpha = _wheel(src, "gsmtest_alpha", "1.0", ["gsmtest_beta>=2"])
    beta = _wheel(src, "gsmtest_beta", "2.1", [], payload=os.urandom(3000))
    entries = []
    for w, name, version in ((alpha, "gsmtest_alpha", "1.0"), (beta, "gsmtest_beta", "2.1")):
        entries.append({"name": name, "version": version, "file": w.name, "bytes": w.stat().st_size,
                        "sha256": builder.sha256(w), "extras": [], "parts": []})
    entries[1]["parts"] = [p.name for p in builder.split_file(beta, 1500)]
    assert len(entries[1]["parts"]) >= 3
    batches = [[alpha.name, entries[1]["parts"][0]], entries[1]["parts"][1:]]
    manifest = {"requirements": ["gsmtest_alpha"], "wheels": entries, "excluded": {},
                "total_bytes": sum(e["bytes"] for e in entries), "batches": batches}
    for i, names in enumerate(batches, 1):
        b = tmp_path / f"batch-{i:02d}"
        b.mkdir()
        for n in names:
            (src / n).rename(b / n)
        (b / "MANIFEST.json").write_text(json.dumps(manifest))
    return tmp_path


def _install(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(INSTALL), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_parts_are_joined_installed_and_requirements_checked(wheelhouse, tmp_path):
    target = tmp_path / "site"
    r = _install(wheelhouse / "batch-01", wheelhouse / "batch-02", target)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "wheelhouse complete: 2 wheels" in r.stderr
    assert "2 wheels checked: 0 unmet requirement(s)" in r.stdout
    out = subprocess.run([sys.executable, "-c", "import gsmtest_alpha, gsmtest_beta; print(gsmtest_alpha.VALUE, "
                                                "gsmtest_beta.VALUE)"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(target)}, check=True)
    assert out.stdout.split() == ["1.0", "2.1"]


def test_missing_batch_is_named(wheelhouse, tmp_path):
    r = _install(wheelhouse / "batch-01", tmp_path / "site")  # batch-02 never copied
    assert r.returncode != 0
    assert ("missing gsmtest_beta-2.1-py3-none-any.whl.part-001 (part of gsmtest_beta-2.1-py3-none-any.whl; batch [2])"
            in r.stderr)
    assert "sha256" not in r.stderr
    assert not (tmp_path / "site").exists()  # nothing installed from an incomplete set


def test_corrupt_part_is_refused(wheelhouse, tmp_path):
    part = sorted((wheelhouse / "batch-02").glob("*.part-*"))[-1]
    part.write_bytes(part.read_bytes()[:-1] + b"?")
    r = _install(wheelhouse / "batch-01", wheelhouse / "batch-02", tmp_path / "site")
    assert r.returncode != 0 and "sha256 mismatch for gsmtest_beta-2.1-py3-none-any.whl" in r.stderr


def test_unmet_requirement_fails_the_check(tmp_path, builder):
    # alpha needs beta>=2; shipping alpha alone must fail check_requirements.py, naming both
    house = tmp_path / "house"
    house.mkdir()
    alpha = _wheel(house, "gsmtest_alpha", "1.0", ["gsmtest_beta>=2"])
    manifest = {"wheels": [{"name": "gsmtest_alpha", "version": "1.0", "file": alpha.name,
                            "bytes": alpha.stat().st_size,
                            "sha256": builder.sha256(alpha), "extras": [], "parts": []}],
                "excluded": {}, "total_bytes": alpha.stat().st_size, "batches": []}
    (house / "MANIFEST.json").write_text(json.dumps(manifest))
    r = _install(house, tmp_path / "site")
    assert r.returncode == 1
    assert "UNMET: gsmtest_alpha 1.0 needs gsmtest_beta>=2: not installed" in r.stdout


def test_have_files_stack_later_wins(tmp_path, builder):
    # the vLLM delta is resolved against the image's freeze plus the VERL wheelhouse installed on top
    image, verl = tmp_path / "image.txt", tmp_path / "verl.txt"
    image.write_text("transformers==5.17.0\nnumpy==2.5.2\n")
    verl.write_text("transformers==5.10.4\nray==2.60.0\n")
    have = builder.read_have([image, verl])
    assert {k: str(v) for k, v in have.items()} == {"transformers": "5.10.4", "numpy": "2.5.2", "ray": "2.60.0"}
    bad = tmp_path / "bad.txt"
    bad.write_text("numpy==2.5.2\nnot a requirement line\n")
    with pytest.raises(SystemExit, match=r"bad.txt:2: expected NAME==VERSION"):
        builder.read_have([image, bad])


def _one_wheel_house(folder: Path, name: str, builder) -> None:
    folder.mkdir(parents=True)
    w = _wheel(folder, name, "1.0", [])
    entry = {"name": name, "version": "1.0", "file": w.name, "bytes": w.stat().st_size, "sha256": builder.sha256(w),
             "extras": [], "parts": []}
    (folder / "MANIFEST.json").write_text(json.dumps({"requirements": [name], "wheels": [entry], "excluded": {},
                                                      "total_bytes": entry["bytes"], "batches": [[w.name]]}))


def test_offline_job_step_speed_waits_for_the_wheels_installs_them_and_plans_the_measurement(tmp_path, builder):
    """experiments/real_model/offline_job.sh JOB=step_speed as a GPU stay runs it, up to the launches: the
    wheels payload split by tools/device/split_payload.sh and copied piece by piece into STAGE (no GGUF),
    joined, its three wheelhouses installed by the real install script, the Qwen3-1.7B assets packed
    from ../shared by tools/device/pack_assets.sh, and experiments/step_speed.sh's plan written
    (DRY_RUN=1: nothing launched). Without .device_assets in the checkout the job stops at once, naming it."""
    import shutil

    shared = ROOT.parent / "shared"
    if not (shared / "models" / "qwen3-1.7b" / "tokenizer.json").is_file():
        pytest.skip("../shared (the Qwen3-1.7B tokenizer and GSM8K) is not next to the checkout")
    checkout = tmp_path / "checkout"
    for d in ("src", "tools", "experiments"):
        shutil.copytree(ROOT / d, checkout / d, ignore=shutil.ignore_patterns("results", "__pycache__"))

    src = tmp_path / "payload"
    for part, name in (("verl", "gsmtest_verl"), ("vllm", "gsmtest_vllm"), ("extra", "gsmtest_extra")):
        _one_wheel_house(src / "wh" / part, name, builder)
    (src / "gsm8k").mkdir()
    for split in ("train", "test"):
        shutil.copy(shared / "data" / "gsm8k" / f"{split}.jsonl", src / "gsm8k")
    pieces = tmp_path / "pieces"
    subprocess.run(["bash", str(ROOT / "tools" / "device" / "split_payload.sh"), "wheels", "1", str(pieces), "wh",
                    "gsm8k"], cwd=src, check=True, capture_output=True)

    def job(work: Path) -> tuple[str, Path]:
        stage = work / "stage"
        stage.mkdir(parents=True)
        for piece in sorted(pieces.iterdir()):  # one transfer each, as a stay copies them
            for f in piece.iterdir():
                shutil.copy(f, stage / f.name)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "PYTHON": sys.executable, "JOB": "step_speed", "DRY_RUN": "1", "LENGTHS": "300", "STEPS": "8"}
        env.pop("PYTHONPATH", None)
        r = subprocess.run(["bash", str(checkout / "experiments" / "real_model" / "offline_job.sh"), str(stage),
                            str(work / "w")], capture_output=True, text=True, env=env, timeout=600)
        return r.stdout + r.stderr, work / "w" / "out"

    log, out = job(tmp_path / "no_assets")
    assert (out / "job.exit").read_text().strip() == "2" and "JOB=step_speed needs .device_assets" in log
    assert "installing" not in log  # refused before it spends the stay's minutes on installing

    subprocess.run(["bash", str(ROOT / "tools" / "device" / "pack_assets.sh"), str(shared),
                    str(checkout / ".device_assets")], check=True, capture_output=True)
    log, out = job(tmp_path / "with_assets")
    assert (out / "job.exit").read_text().strip() == "0", log + (out / "job_run.log").read_text()
    assert "wheels: " in log and "pieces joined, sha256 ok" in log and "installed;" in log
    assert "step speed: LENGTHS=300, 8 steps" in log
    for part, name in (("verl", "gsmtest_verl"), ("vllm", "gsmtest_vllm"), ("extra", "gsmtest_extra")):
        assert (out.parent / "site" / part / name / "__init__.py").is_file()
    plan = json.loads((out / "step_speed" / "plan.json").read_text())
    assert plan["dry_run"] is True and plan["steps_per_launch"] == 8
    assert [launch["name"] for launch in plan["launches"]] == ["stock_300", "default_300"]
    assert (out.parent / "repo" / ".device_assets" / "qwen3-1.7b" / "config.json").is_file()
