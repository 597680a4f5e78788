"""The examples in the package's docstrings are run, so they stay true (pytest's --doctest-modules
only collects the tests/ folder)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import gsm8k_rl

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(gsm8k_rl.__path__, "gsm8k_rl."))


def _run(module) -> doctest.TestResults:
    return doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)


@pytest.mark.parametrize("name", MODULES)
def test_package_docstring_examples(name):
    result = _run(importlib.import_module(name))
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


@pytest.mark.parametrize("script", ["scripts/build_wheelhouse.py", "benchmarks/eval_throughput.py"])
def test_script_docstring_examples(script):
    import importlib.util

    name = Path(script).stem
    spec = importlib.util.spec_from_file_location(name, ROOT / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[name])
    result = _run(sys.modules[name])
    assert result.attempted > 0 and result.failed == 0
