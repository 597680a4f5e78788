#!/usr/bin/env bash
# VERL PPO at the spec's settings (128 prompts, mini-batch 64, GAE critic, KL in reward) on the GPUs
# of this machine, with the TRUE Qwen3-1.7B architecture and RANDOM weights (no weights are
# obtainable here), through the project's own launcher: `gsm8k-rl train --backend local` (or vllm).
# Random weights never stop on their own, so every response has exactly RESPONSE_LEN tokens
# (actor_rollout_ref.rollout.ignore_eos=true -> min_new_tokens = max_new_tokens).
#
# Usage (on the GPU machine, VERL installed, e.g. by tools/install_wheelhouse.sh):
#   experiments/ppo_gpu.sh OUT RESPONSE_LEN [STEPS] [extra VERL overrides...]
# Needs the Qwen3-1.7B config + tokenizer (ASSETS, default /tmp/assets/qwen3-1.7b, made from
# .device_assets by tools/device/unpack_assets.sh) and GSM8K test.jsonl (ASSETS/gsm8k_test.jsonl).
# Writes OUT/run_<len>/ (the run folder: metrics.jsonl, logs) and OUT/gpu_mem_<len>.csv (nvidia-smi).
# BACKEND=local (default: the project's transformers rollout) or vllm (VERL's vLLM server).
# BUILD_ONLY=1 builds the random model and the parquet, then stops (e.g. while wheels are staged).
# TRAIN_FLAGS: extra `gsm8k-rl train` options, e.g. "--fast-path off --no-dynamic-bsz --attn sdpa"
# (VERL's stock settings; experiments/step_speed.sh).
set -euo pipefail
backend=${BACKEND:-local}
out=$1; len=$2; steps=${3:-3}; shift $(( $# < 3 ? $# : 3 ))
assets=${ASSETS:-/tmp/assets}
[ -f "$assets/qwen3-1.7b/tokenizer.json" ] || tools/device/unpack_assets.sh .device_assets "$assets" >/dev/null
model=/tmp/qwen3-1.7b-random
data=/tmp/gsm8k_bench
mkdir -p "$out"

if [ ! -f "$model/model.safetensors.index.json" ] && [ ! -f "$model/model.safetensors" ]; then
  python3 - "$assets/qwen3-1.7b" "$model" <<'PY'
import shutil, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
src, dst = sys.argv[1:]
torch.manual_seed(0)
cfg = AutoConfig.from_pretrained(src)
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
model.save_pretrained(dst)
AutoTokenizer.from_pretrained(src).save_pretrained(dst)
shutil.copy(f"{src}/generation_config.json", dst)
print("random Qwen3-1.7B:", sum(p.numel() for p in model.parameters()), "params ->", dst)
PY
fi
if [ ! -f "$data/train.parquet" ]; then
  mkdir -p /tmp/gsm8k_src
  cp "$assets/gsm8k_test.jsonl" /tmp/gsm8k_src/test.jsonl
  cp "$assets/gsm8k_test.jsonl" /tmp/gsm8k_src/train.jsonl  # 1319 prompts are plenty for a few steps
  python3 -m gsm8k_rl.cli prepare --source /tmp/gsm8k_src --out "$data"
fi

[ "${BUILD_ONLY:-0}" = 1 ] && { echo "built $model and $data"; exit 0; }

nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 500 \
  > "$out/gpu_mem_$len.csv" &
smi=$!
trap 'kill $smi 2>/dev/null || true' EXIT
start=$(date +%s)
# shellcheck disable=SC2086  # TRAIN_FLAGS is a list of options
python3 -m gsm8k_rl.cli train --backend "$backend" --model "$model" --data "$data" --run-dir "$out/run_$len" ${TRAIN_FLAGS:-} \
  trainer.total_training_steps="$steps" trainer.val_before_train=false trainer.test_freq=-1 \
  trainer.save_freq=-1 "trainer.logger=[console,file]" \
  data.max_response_length="$len" actor_rollout_ref.rollout.ignore_eos=true "$@"
echo "wall_s $(( $(date +%s) - start ))" > "$out/wall_$len.txt"
kill $smi 2>/dev/null || true
python3 experiments/ppo_gpu_summary.py "$out/run_$len" "$out/gpu_mem_$len.csv" | tee "$out/summary_$len.md"
