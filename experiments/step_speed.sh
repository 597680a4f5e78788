#!/usr/bin/env bash
# PPO step speed: VERL's stock settings against the launcher's tuned layout, the same true-architecture
# Qwen3-1.7B step (random weights, 128 prompts, fixed response length) on the same GPU and data, one
# after the other, then the per-phase table and the ratio (experiments/step_speed_summary.py).
#
#   stock  what a user writes from VERL's GSM8K PPO example without flash-attn: SDPA on padded
#          micro-batches, unfused log-probs (VERL's per-token loop), fixed micro-batches of 16, the
#          reference offloaded to the host, gradient checkpointing, VERL's replay buffer (2 s poll)
#          (gsm8k-rl train --fast-path off --no-dynamic-bsz --attn sdpa)
#   tuned  what `gsm8k-rl train` does by itself on that GPU (--fast-path auto), plus TUNED_FLAGS if set
#          (e.g. "--fused triton")
#
# Usage (GPU machine, VERL + vLLM installed): experiments/step_speed.sh OUT RESPONSE_LEN [STEPS]
# VARIANTS="stock tuned" (default) picks what runs, in that order; a variant already measured in OUT
# is kept. WARMUP (default 1) leading steps are left out of the steady state: 2 on a machine whose
# Triton cache is cold, where liger-kernel's kernels compile during the first two steps.
set -uo pipefail
out=$1; len=$2; steps=${3:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
for v in ${VARIANTS:-stock tuned}; do
  case $v in
    stock) flags="--fast-path off --no-dynamic-bsz --attn sdpa" ;;
    tuned) flags="${TUNED_FLAGS:-}" ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  if [ -f "$out/$v/summary_$len.md" ]; then echo "$v: already measured in $out/$v"; continue; fi
  echo "=== $v: gsm8k-rl train $flags (response length $len, $steps steps)"
  BACKEND=vllm TRAIN_FLAGS="$flags" bash "$here/experiments/ppo_gpu.sh" "$out/$v" "$len" "$steps" \
    || echo "=== $v: FAILED (exit $?)"
  # an aborted run leaves Ray's daemons behind; the next variant needs the GPU to itself
  bash "$here/experiments/stop_ray.sh"
done
python3 "$here/experiments/step_speed_summary.py" --response-length "$len" --warmup "${WARMUP:-1}" \
  --run stock="$out/stock/run_$len" --run tuned="$out/tuned/run_$len" --out "$out/step_speed_$len.md" --png "$out/step_speed_$len.png"
