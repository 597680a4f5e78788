"""The examples in the package's docstrings are run, so they stay true (pytest's --doctest-modules
only collects the tests/ folder)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gsm8k_rl

MODULES = sorted(m.name for m in pkgutil.walk_packages(gsm8k_rl.__path__, "gsm8k_rl."))


def _run(module) -> doctest.TestResults:
    return doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)


@pytest.mark.parametrize("name", MODULES)
def test_package_docstring_examples(name):
    result = _run(importlib.import_module(name))
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


@pytest.mark.parametrize("script", ["tools/build_wheelhouse.py",
                                    pytest.param("experiments/eval_throughput.py", marks=pytest.mark.recorded),
                                    pytest.param("experiments/step_speed_summary.py", marks=pytest.mark.recorded)])
def test_script_docstring_examples(script, load_script):
    result = _run(load_script(script))
    assert result.attempted > 0 and result.failed == 0
