"""docs/bad_input.md is current: every bad input it lists gets the message and exit code shown there
(each case also checks what it left behind: nothing half-done, the fix accepted where it should be)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load():
    """tests/bad_inputs.py, imported by path (the tests folder is not a package)."""
    if "bad_inputs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).with_name("bad_inputs.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["bad_inputs"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["bad_inputs"]


bad_inputs = _load()


@pytest.fixture(scope="module")
def assets(gsm8k_dir, tiny_model_dir):
    return bad_inputs.Assets(gsm8k_dir, tiny_model_dir)


def test_the_doc_lists_every_case_once():
    rows = bad_inputs.doc_rows(bad_inputs.DOC.read_text())
    assert len(rows) == len(bad_inputs.CASES), "rewrite the table: PYTHONPATH=src python tests/bad_inputs.py"


@pytest.mark.parametrize("index", range(len(bad_inputs.CASES)), ids=[c.id for c in bad_inputs.CASES])
def test_case_matches_the_doc(index, assets, tmp_path):
    case = bad_inputs.CASES[index]
    result, message = bad_inputs.run_case(case, tmp_path, assets)
    assert "Traceback" not in message
    if case.stage != "doctor" and result.rc not in (0, 130):
        assert result.rc == 2 and message.startswith(f"gsm8k-rl {case.stage}: error: "), message
    documented = bad_inputs.doc_rows(bad_inputs.DOC.read_text())
    assert bad_inputs.row(case, result, message) == documented[index], (
        "docs/bad_input.md is out of date: PYTHONPATH=src python tests/bad_inputs.py")
