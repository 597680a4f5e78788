#!/usr/bin/env bash
# Run ON the GPU machine: record what it has (GPU, driver, CUDA, Python, every installed package)
# into DIR (default $OUT), so wheelhouses are built against the real image (build_wheelhouse.py --have).
# Usage: tools/device/env_report.sh [DIR]
set -uo pipefail
out=${1:-${OUT:-.}}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import sys, torch, transformers; print("python", sys.version.split()[0], sys.executable, "| torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__)' | tee -a "$out/gpu.txt"
python3 -m pip list --format=freeze 2>/dev/null > "$out/pip_freeze.txt"
echo "pip_freeze.txt: $(wc -l < "$out/pip_freeze.txt") packages"
df -h /root /tmp | tail -n +2
