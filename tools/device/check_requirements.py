#!/usr/bin/env python3
"""Check, on the target, that a wheelhouse's packages are the ones Python sees and that every
requirement they declare is met by what is importable there (the image plus the wheelhouse).

Why: installing with --no-deps (the only way offline onto an image that already has torch) means
pip checks nothing; a missing or shadowed dependency would otherwise surface mid-training.
Run it with the same PYTHONPATH the workload will use:
    PYTHONPATH=/tmp/site python3 tools/device/check_requirements.py /tmp/site/MANIFEST.json
Exit status 1 lists every unmet requirement; packages the manifest marks as excluded are reported
but not counted as failures.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def installed_version(name: str) -> Version | None:
    try:
        return Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None


def check(manifest: dict) -> tuple[list[str], list[str]]:
    """(problems, notes) for every wheel in the manifest and each of its applicable requirements."""
    problems, notes = [], []
    excluded = set(manifest.get("excluded", {}))
    for wheel in manifest["wheels"]:
        seen = installed_version(wheel["name"])
        if seen != Version(wheel["version"]):
            problems.append(f"{wheel['name']}: wheelhouse has {wheel['version']}, Python sees {seen}")
            continue
        extras = set(wheel.get("extras", []))
        for line in metadata.requires(wheel["name"]) or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {""} | extras):
                continue
            have = installed_version(req.name)
            where = f"{wheel['name']} {wheel['version']} needs {req}"
            if canonicalize_name(req.name) in excluded:
                notes.append(f"{where}: excluded on purpose ({'present' if have else 'absent'})")
            elif have is None:
                problems.append(f"{where}: not installed")
            elif not req.specifier.contains(have, prereleases=True):
                problems.append(f"{where}: found {have}")
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="MANIFEST.json written by tools/build_wheelhouse.py")
    args = parser.parse_args(argv)
    manifest = json.loads(args.manifest.read_text())
    problems, notes = check(manifest)
    for n in notes:
        print(f"note: {n}")
    for p in problems:
        print(f"UNMET: {p}")
    print(f"{len(manifest['wheels'])} wheels checked: {len(problems)} unmet requirement(s), "
          f"{len(notes)} on excluded packages")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
