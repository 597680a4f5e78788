#!/usr/bin/env python3
"""Build an offline wheelhouse for another machine: the dependency closure of some requirements,
for that machine's Python and platform, minus what its image already has.

Why: GPU nodes are often air-gapped, and their image already holds the multi-GB part of the stack
(torch, CUDA libraries, numpy, ...). `pip download` alone can't be told "these are installed
there", so it either fetches everything (GBs) or nothing (--no-deps). This script resolves the
closure itself from each wheel's METADATA (Requires-Dist, markers evaluated for the target),
skips what the target's `pip freeze` (--have) already satisfies, downloads a replacement where
the target's version violates a pin (e.g. VERL wants transformers<5.11, the image has 5.17),
and writes a manifest that tools/install_wheelhouse.sh checks on the other side.

Run on a machine WITH a package index (stdlib only; pip must be importable):
    python3 tools/build_wheelhouse.py -o .whl --have tools/device/cuda_image_pip_freeze.txt \
        --split-mb 40 --batch-mb 56 "verl[verl-core]==0.9.1"
Then copy the folder (or its batch-NN/ subfolders, one transfer each) to the target and run
    tools/install_wheelhouse.sh .whl /tmp/site      # or --venv /opt/verl
See docs/gpu_stack.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

try:  # a stand-alone `packaging` if present, else the copy pip vendors
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pragma: no cover - depends on the build machine
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import Version

log = logging.getLogger("build_wheelhouse")

# glibc 2.39 (Ubuntu 24.04) accepts every manylinux tag up to 2_39; pip matches tags exactly.
DEFAULT_PLATFORMS = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"] + [
    f"manylinux_2_{n}_x86_64" for n in range(5, 40)
]
MANIFEST = "MANIFEST.json"
PART_SUFFIX = ".part-"


def marker_env(python_full: str) -> dict[str, str]:
    """PEP 508 marker variables of a CPython on Linux x86_64.

    >>> marker_env("3.12.3")["python_version"]
    '3.12'
    """
    major_minor = ".".join(python_full.split(".")[:2])
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_full,
        "python_version": major_minor,
        "sys_platform": "linux",
    }


def applies(req: Requirement, extras: set[str], env: dict[str, str]) -> bool:
    """Whether a Requires-Dist line applies on the target, given the extras asked of its package.

    >>> env = marker_env("3.12.3")
    >>> applies(Requirement('a; extra == "x"'), {"x"}, env), applies(Requirement('a; extra == "x"'), set(), env)
    (True, False)
    >>> applies(Requirement('b; python_version < "3.11"'), set(), env)
    False
    """
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for e in ({""} | extras))


def read_have(paths: list[Path]) -> dict[str, Version | None]:
    """Packages the target already has, from its `pip list --format=freeze` (a bare name = any version).

    Several files stack in order, a later one winning: the image's freeze, then the
    `requirements.txt` of a wheelhouse that will be installed on top of it.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "freeze.txt"
    >>> _ = f.write_text("# comment\\nNumPy==2.5.2\\ntorch\\n")
    >>> read_have([f])
    {'numpy': <Version('2.5.2')>, 'torch': None}
    """
    have: dict[str, Version | None] = {}
    for path in paths:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+)|@\s*\S+)?", line)
            if not m:
                raise SystemExit(f"{path}:{lineno}: expected NAME==VERSION or NAME, got {line!r}")
            have[canonicalize_name(m.group(1))] = Version(m.group(2)) if m.group(2) else None
    return have


def fake_install(site: Path, have: dict[str, Version | None]) -> None:
    """Register the target's packages in an empty environment as installed, with no files and no
    dependencies: pip then keeps them wherever they satisfy the closure (its default preference for
    installed versions), replaces only those a pin rules out, and never walks into their own
    dependencies (CUDA libraries, ...), which the target already has."""
    for name, version in have.items():
        if version is None:
            raise SystemExit(f"--have lists {name} without a version; use `pip list --format=freeze` output")
        dist = site / f"{re.sub(r'[^A-Za-z0-9.]+', '_', name)}-{version}.dist-info"
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist / "INSTALLER").write_text("build_wheelhouse\n")
        (dist / "RECORD").write_text("")


class Pip:
    """Two pips: the target-like environment's, which resolves, and one that downloads for the
    target's interpreter and platform tags (binary wheels only)."""

    def __init__(self, env_python: Path, python_version: str, platforms: list[str]):
        self.env = [str(env_python), "-m", "pip", "--disable-pip-version-check"]
        self.base = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        self.target = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
        for plat in platforms:
            self.target += ["--platform", plat]

    @staticmethod
    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        log.debug("%s", " ".join(cmd))
        return subprocess.run(cmd, capture_output=True, text=True)

    def build_pure(self, req: str, dest: Path) -> Path:
        """No wheel exists for `req`: build one here from its sdist; accept it only if pure Python."""
        with tempfile.TemporaryDirectory() as tmp:
            proc = self.run(self.env + ["wheel", "--no-deps", "-w", tmp, req])
            built = sorted(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not built:
                raise SystemExit(f"{req}: no wheel for the target and building one failed:\n{proc.stderr[-1500:]}")
            _, _, _, tags = parse_wheel_filename(built[0].name)
            if any(t.platform != "any" or t.abi != "none" for t in tags):
                raise SystemExit(f"{req}: only an sdist exists and it builds a platform wheel "
                                 f"({built[0].name}); build it on the target instead")
            return Path(shutil.move(str(built[0]), dest / built[0].name))


@dataclass
class Resolution:
    install: list[dict]  # pip report items to ship (requested_extras filled in)
    present: dict[str, str]  # name -> target version that satisfied the closure
    replaced: dict[str, str]  # name -> target version that a pin ruled out
    built: list[str]  # NAME==VERSION built here from pure-Python sdists
    required_by: dict[str, list[str]]
    excluded: dict[str, list[str]]  # name -> who asked for it


def make_env(python: str, work: Path, have: dict[str, Version | None]) -> Path:
    """A throw-away venv of the target's Python minor version, the target's packages fake-installed."""
    venv = work / "env"
    proc = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"could not make a venv with {python}: {proc.stderr[-500:]}")
    env_python = venv / "bin" / "python"
    site = Path(subprocess.check_output(
        [str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    fake_install(site, {n: v for n, v in have.items() if n not in ("pip", "setuptools", "wheel")})
    return env_python


def resolve(roots: list[str], have: dict[str, Version | None], excludes: set[str], pip: Pip,
            env: dict[str, str], work: Path) -> Resolution:
    """Let pip's own resolver choose the closure inside the target-like environment.

    Binary wheels are preferred, but sdists are allowed while resolving: with binaries only, pip
    silently backtracks around an sdist-only package (e.g. omegaconf 2.x needs the sdist-only
    antlr4-python3-runtime 4.9.*, and pip fell back to omegaconf 1.4). Chosen sdists are built
    here afterwards and accepted only if pure Python."""
    local = work / "built"
    local.mkdir(parents=True, exist_ok=True)
    report = work / "report.json"
    proc = pip.run(pip.env + ["install", "--dry-run", "--report", str(report), "--prefer-binary", *roots])
    if proc.returncode != 0:
        raise SystemExit(f"pip could not resolve {roots}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    items = {canonicalize_name(i["metadata"]["name"]): i for i in json.loads(report.read_text())["install"]}

    # Walk from the roots, tracking the extras each package is asked for (pip's report records
    # extras only for top-level requests), and stop at excluded packages and the target's own.
    extras_of: dict[str, set[str]] = {}
    required_by: dict[str, set[str]] = {}
    excluded: dict[str, set[str]] = {}
    present: dict[str, str] = {}
    todo = [(canonicalize_name(r.name), set(r.extras), "<requested>") for r in map(Requirement, roots)]
    while todo:
        name, extras, parent = todo.pop()
        required_by.setdefault(name, set()).add(parent)
        if name in excludes:
            excluded.setdefault(name, set()).add(parent)
            continue
        if name not in items:
            if name in have:
                present[name] = str(have[name])
            continue
        old = extras_of.get(name)
        if old is not None and extras <= old:
            continue
        extras_of[name] = (old or set()) | extras
        meta = items[name]["metadata"]
        for line in meta.get("requires_dist") or []:
            req = Requirement(line)
            if applies(req, extras_of[name], env):
                todo.append((canonicalize_name(req.name), set(req.extras), f"{meta['name']} {meta['version']}"))

    install = []
    built: list[str] = []
    for name in sorted(extras_of):
        item = dict(items[name], requested_extras=sorted(extras_of[name]))
        url = item["download_info"]["url"]
        if not url.endswith(".whl"):
            pinned = f"{item['metadata']['name']}=={item['metadata']['version']}"
            log.info("%s: only an sdist; building a pure-Python wheel", pinned)
            item["download_info"] = {"url": pip.build_pure(pinned, local).as_uri()}
            built.append(pinned)
        install.append(item)
    replaced = {n: str(have[n]) for n in extras_of if n in have}
    return Resolution(install, present, replaced, built,
                      {n: sorted(p) for n, p in required_by.items()}, {n: sorted(p) for n, p in excluded.items()})


def download(res: Resolution, pip: Pip, cache: Path, local: Path) -> dict[str, Path]:
    """The chosen wheels, fetched (no dependencies) into the cache; name -> file."""
    pinned = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in res.install]
    proc = pip.run(pip.base + ["download", "--no-deps", *pip.target, "--find-links", str(local), "-d", str(cache),
                               *pinned])
    if proc.returncode != 0:
        raise SystemExit(f"pip download failed:\n{proc.stderr[-3000:]}")
    wheels = {}
    for path in cache.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        wheels.setdefault((canonicalize_name(name), str(version)), []).append(path)
    out = {}
    for item in res.install:
        key = (canonicalize_name(item["metadata"]["name"]), item["metadata"]["version"])
        if key not in wheels:
            raise SystemExit(f"{key[0]} {key[1]}: pip reported it but no wheel landed in {cache}")
        # Several builds of one version may sit in the cache: take the one pip's report named.
        url_name = item["download_info"]["url"].rsplit("/", 1)[-1]
        out[key[0]] = next((p for p in wheels[key] if p.name == url_name), wheels[key][0])
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_file(path: Path, part_bytes: int) -> list[Path]:
    """Cut `path` into NAME.part-000, -001, ... of at most part_bytes each, and delete it.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.whl"
    >>> _ = p.write_bytes(b"abcdefg")
    >>> [(q.name, q.read_bytes()) for q in split_file(p, 3)]
    [('x.whl.part-000', b'abc'), ('x.whl.part-001', b'def'), ('x.whl.part-002', b'g')]
    """
    parts = []
    with path.open("rb") as f:
        for i, block in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = path.with_name(f"{path.name}{PART_SUFFIX}{i:03d}")
            part.write_bytes(block)
            parts.append(part)
    path.unlink()
    return parts


def pack_batches(sizes: dict[str, int], capacity: int) -> list[list[str]]:
    """First-fit decreasing: group files into as few batches of `capacity` bytes as it finds.

    >>> pack_batches({"a": 6, "b": 5, "c": 4, "d": 3}, 9)
    [['a', 'd'], ['b', 'c']]
    """
    batches: list[tuple[int, list[str]]] = []
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if size > capacity:
            raise SystemExit(f"{name} ({size / 2**20:.1f} MiB) exceeds a batch; use a smaller --split-mb")
        for i, (used, names) in enumerate(batches):
            if used + size <= capacity:
                batches[i] = (used + size, names + [name])
                break
        else:
            batches.append((size, [name]))
    return [names for _, names in batches]


def write_wheelhouse(res: Resolution, wheels: dict[str, Path], out: Path, args: argparse.Namespace) -> dict:
    """Copy the chosen wheels to `out`, split and batch them, and write MANIFEST.json + requirements.txt."""
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise SystemExit(f"{out} is not empty; pass --force to replace its contents")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for item in sorted(res.install, key=lambda i: canonicalize_name(i["metadata"]["name"])):
        name = canonicalize_name(item["metadata"]["name"])
        wheel = wheels[name]
        dest = out / wheel.name
        shutil.copy2(wheel, dest)
        entry = {
            "name": name,
            "version": item["metadata"]["version"],
            "file": wheel.name,
            "bytes": dest.stat().st_size,
            "sha256": sha256(dest),
            "extras": sorted(item.get("requested_extras") or []),
            "required_by": res.required_by.get(name, []),
            "parts": [],
        }
        if name in res.replaced:
            entry["replaces_target_version"] = res.replaced[name]
        if args.split_mb and entry["bytes"] > args.split_mb * 1_000_000:
            entry["parts"] = [p.name for p in split_file(dest, args.split_mb * 1_000_000)]
        entries.append(entry)
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    batches = pack_batches(files, int(args.batch_mb * 2**20)) if args.batch_mb else []
    manifest = {
        "requirements": args.requirements,
        "python_version": args.python_version,
        "platforms": args.platform,
        "have_files": [str(h) for h in args.have],
        "wheels": entries,
        "total_bytes": sum(e["bytes"] for e in entries),
        "satisfied_by_target": dict(sorted(res.present.items())),
        "excluded": dict(sorted(res.excluded.items())),
        "built_from_sdist": res.built,
        "batches": batches,
    }
    text = json.dumps(manifest, indent=1)
    (out / MANIFEST).write_text(text)
    (out / "requirements.txt").write_text("".join(f"{e['name']}=={e['version']}\n" for e in entries))
    for i, names in enumerate(batches, 1):
        bdir = out / f"batch-{i:02d}"
        bdir.mkdir()
        for n in names:
            (out / n).rename(bdir / n)
        (bdir / MANIFEST).write_text(text)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("requirements", nargs="+", help='PEP 508 requirements, e.g. "verl[verl-core]==0.9.1"')
    parser.add_argument("-o", "--out", type=Path, required=True, help="wheelhouse folder to write")
    parser.add_argument("--have", type=Path, action="append", default=[],
                        help="the target's `pip list --format=freeze`: what it satisfies is not shipped; "
                             "repeatable (e.g. then another wheelhouse's requirements.txt, to ship only the delta)")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="NAME",
                        help="never ship these nor their own dependencies (the target provides them, or the "
                             "code path that needs them is unused); listed in the manifest")
    parser.add_argument("--python-version", default="3.12.3", help="target CPython, full version (default %(default)s)")
    parser.add_argument("--python", help="an interpreter of the target's X.Y to resolve with (default: pythonX.Y on "
                                         "PATH)")
    parser.add_argument("--platform", nargs="*", default=DEFAULT_PLATFORMS,
                        help="wheel platform tags the target accepts (default: manylinux up to glibc 2.39, x86_64)")
    parser.add_argument("--split-mb", type=int, default=0, help="split wheels larger than this many MB (10^6 B) into "
                                                                "parts")
    parser.add_argument("--batch-mb", type=float, default=0,
                        help="group files into batch-NN/ folders of at most this many MiB (one transfer each)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "wheelhouse",
                        help="download cache (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing, non-empty --out")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

    have = read_have(args.have)
    for r in args.requirements:
        Requirement(r)  # a malformed requirement fails here, naming itself
    env = marker_env(args.python_version)
    args.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        python = args.python or shutil.which(f"python{'.'.join(args.python_version.split('.')[:2])}")
        if not python:
            raise SystemExit(f"no python{args.python_version} here to resolve with; pass --python PATH "
                             "(e.g. from pyenv or `uv python install`)")
        env_python = make_env(python, work, have)
        pip = Pip(env_python, ".".join(args.python_version.split(".")[:2]), args.platform)
        res = resolve(args.requirements, have, {canonicalize_name(e) for e in args.exclude}, pip, env, work)
        wheels = download(res, pip, args.cache, work / "built")
        manifest = write_wheelhouse(res, wheels, args.out, args)

    replaced = [f"{e['name']} {e['replaces_target_version']}->{e['version']}" for e in manifest["wheels"]
                if "replaces_target_version" in e]
    print(f"{len(manifest['wheels'])} wheels, {manifest['total_bytes'] / 2**20:.1f} MiB -> {args.out}")
    print(f"satisfied by the target: {len(manifest['satisfied_by_target'])}; "
          f"replacing the target's: {', '.join(replaced) or 'none'}")
    if manifest["excluded"]:
        print(f"excluded: {', '.join(manifest['excluded'])}")
    for i, names in enumerate(manifest["batches"], 1):
        size = sum((args.out / f"batch-{i:02d}" / n).stat().st_size for n in names)
        print(f"batch-{i:02d}: {len(names)} files, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
