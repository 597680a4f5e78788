#!/usr/bin/env bash
# PPO step speed: VERL's stock settings against the launcher's default, on this machine's one GPU, one
# launch after the other, by rules fixed here before any result is seen; then the summary
# (experiments/step_speed_summary.py: per-phase tables, the ratio with its spread, the FLOP floor).
# The step: the true-architecture Qwen3-1.7B (random weights), 128 prompts, every response exactly
# RESPONSE_LEN tokens (experiments/ppo_gpu.sh).
#
#   stock    what a user writes from VERL's GSM8K PPO example without flash-attn: SDPA on padded
#            micro-batches, unfused log-probs, fixed micro-batches of 16, the reference offloaded,
#            VERL's replay buffer (2 s poll): gsm8k-rl train --fast-path off --no-dynamic-bsz --attn sdpa
#   default  what `gsm8k-rl train` does by itself on that GPU: no flags
#
# Usage (GPU machine, VERL + vLLM installed, the project importable; ASSETS as for experiments/ppo_gpu.sh):
#   experiments/step_speed.sh OUT [STEPS]        # OUT: a new folder; STEPS per launch, default 6, at least 6
#   python experiments/step_speed_summary.py OUT # the summary again (the script ends with it)
# LENGTHS   response lengths, default "300 1000"; launches in the order stock_300, default_300,
#           stock_1000, default_1000 (per length: stock, then default)
# DRY_RUN=1 writes the plan and every launch's environment, prints the plan, launches nothing
# CUDA_VISIBLE_DEVICES  the one GPU (default 0)
#
# The rules (written to OUT/plan.json and OUT/plan.md before the first launch):
# - steps 1-2 of every launch are warm-up and left out (CUDA graphs, the allocator's growth, Triton
#   compiling liger-kernel's kernels); every later step is pooled; STEPS >= 6, so >= 4 pooled steps a
#   side. WARMUP is not a setting: a WARMUP in the environment is ignored and the plan says so.
# - every launch gets the same environment but TRAIN_FLAGS (the settings under test): the caller's
#   environment, captured once, plus the variables below, and nothing else (env -i); the caches vLLM,
#   Triton and Inductor compile into are emptied before each launch, so every launch starts cold;
#   the variables VERL's Ray workers need are also handed to them as runtime-env overrides, the same in
#   every launch. Each launch's environment is recorded (OUT/<launch>/launch_env.json, secret-looking
#   values as digests); the plan refuses to launch if they differ anywhere but in TRAIN_FLAGS.
# - Ray's leftovers are stopped before each launch (experiments/stop_ray.sh); a failed launch is not
#   retried: its side is refused by the summary (a new OUT for a new attempt).
# Writes OUT/plan.{json,md}, OUT/<launch>/ (launch_env.json, gpu.csv, launch.json, launch.log, gpu_mem_<len>.csv,
# run_<len>/: the run folder), OUT/step_speed.{md,json,png}.
set -uo pipefail
out=${1:?usage: experiments/step_speed.sh OUT [STEPS]}; steps=${2:-6}
here=$(cd "$(dirname "$0")/.." && pwd)
summary=$here/experiments/step_speed_summary.py
lengths=${LENGTHS:-300 1000}
dry=${DRY_RUN:-0}
case $steps in ''|*[!0-9]*) echo "STEPS=$steps: a whole number" >&2; exit 2 ;; esac
for len in $lengths; do
  case $len in ''|*[!0-9]*) echo "LENGTHS=$lengths: whole numbers" >&2; exit 2 ;; esac
done
gpu=${CUDA_VISIBLE_DEVICES:-0}
case $gpu in *,*|'') echo "CUDA_VISIBLE_DEVICES=$gpu: one GPU" >&2; exit 2 ;; esac

if [ -f "$out/plan.json" ] && ! grep -q '"dry_run": true' "$out/plan.json"; then
  echo "$out already holds a measurement (plan.json); a new measurement goes to a new folder" >&2; exit 2
fi
if compgen -G "$out/*/run_*" >/dev/null; then
  echo "$out already holds run folders; a new measurement goes to a new folder" >&2; exit 2
fi
mkdir -p "$out" && out=$(cd "$out" && pwd)
cache=$out/cache

# The environment of every launch: the caller's, captured once, without what this script sets, plus these.
pinned=(
  "CUDA_VISIBLE_DEVICES=$gpu"
  "CUDA_DEVICE_ORDER=PCI_BUS_ID"  # CUDA's GPU numbering = nvidia-smi's
  "BACKEND=vllm"
  "VLLM_USE_FLASHINFER_SAMPLER=${VLLM_USE_FLASHINFER_SAMPLER:-0}"
  "VLLM_DISABLE_COMPILE_CACHE=${VLLM_DISABLE_COMPILE_CACHE:-1}"  # VERL's own setting, stated
  "VLLM_CACHE_ROOT=$cache/vllm"
  "TRITON_CACHE_DIR=$cache/triton"
  "TORCHINDUCTOR_CACHE_DIR=$cache/inductor"
  "PYTHONHASHSEED=0"
)
# handed to VERL's Ray workers as well (gsm8k_rl/launch/ray_env.py: the driver's environment reaches them
# only when Ray starts inside the launch)
ray_vars=(VLLM_USE_FLASHINFER_SAMPLER VLLM_DISABLE_COMPILE_CACHE VLLM_CACHE_ROOT TRITON_CACHE_DIR TORCHINDUCTOR_CACHE_DIR)
# (PWD, OLDPWD, SHLVL, _: each shell sets its own)
own=" TRAIN_FLAGS BUILD_ONLY VARIANTS TUNED_FLAGS WARMUP LENGTHS DRY_RUN PWD OLDPWD SHLVL _ "
for p in "${pinned[@]}"; do own+="${p%%=*} "; done
base=()
while IFS= read -r -d '' item; do
  [[ $own == *" ${item%%=*} "* ]] || base+=("$item")
done < <(env -0)
overrides=()
for v in "${ray_vars[@]}"; do
  for p in "${pinned[@]}"; do
    [ "${p%%=*}" = "$v" ] && overrides+=("++ray_kwargs.ray_init.runtime_env.env_vars.$v='${p#*=}'")
  done
done

with_env() {  # with_env FLAGS CMD...: CMD in a launch's environment, the same for every launch but FLAGS
  local flags=$1; shift
  env -i "${base[@]}" "${pinned[@]}" "TRAIN_FLAGS=$flags" "$@"
}

stock_flags="--fast-path off --no-dynamic-bsz --attn sdpa"
launches=()
for len in $lengths; do launches+=("stock_$len" "default_$len"); done
flags_of() { case $1 in stock_*) echo "$stock_flags" ;; *) echo "" ;; esac; }

# The plan, before anything runs.
for l in "${launches[@]}"; do
  mkdir -p "$out/$l"
  with_env "$(flags_of "$l")" env -0 | python3 "$summary" --record-env "$out/$l/launch_env.json" || exit 1
done
gpu_line=$(nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv,noheader -i "$gpu" \
  2>/dev/null | head -1)
plan_args=(--write-plan "$out" --steps "$steps" --lengths "$lengths" --gpu "$gpu_line" --warmup-env "${WARMUP-}"
  --command "LENGTHS=\"$lengths\" experiments/step_speed.sh OUT $steps")
for o in "${overrides[@]}"; do plan_args+=(--override "$o"); done
[ "$dry" = 1 ] && plan_args+=(--dry-run)
python3 "$summary" "${plan_args[@]}" || exit 2
if [ "$dry" = 1 ]; then echo "DRY_RUN=1: plan written to $out/plan.json; nothing launched"; exit 0; fi

cd "$here" || exit 1
# the random model and the parquet, before the first launch (not inside any measured launch)
with_env "" env BUILD_ONLY=1 bash experiments/ppo_gpu.sh "$out/prepare" "${launches[0]#*_}" > "$out/prepare.log" 2>&1 \
  || { echo "building the model and data failed: $out/prepare.log" >&2; exit 1; }
n=${#launches[@]}; i=0
for l in "${launches[@]}"; do
  i=$((i + 1)); len=${l#*_}; flags=$(flags_of "$l")
  bash experiments/stop_ray.sh
  rm -rf "$cache" && mkdir -p "$cache"
  nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version --format=csv,noheader -i "$gpu" > "$out/$l/gpu.csv"
  echo "=== [$i/$n] $l: gsm8k-rl train $flags (response length $len, $steps steps; log: $out/$l/launch.log)"
  start=$(date -u +%FT%TZ)
  with_env "$flags" bash experiments/ppo_gpu.sh "$out/$l" "$len" "$steps" "${overrides[@]}" > "$out/$l/launch.log" 2>&1
  rc=$?
  printf '{"launch": "%s", "order": %d, "start": "%s", "end": "%s", "exit_code": %d}\n' \
    "$l" "$i" "$start" "$(date -u +%FT%TZ)" "$rc" > "$out/$l/launch.json"
  echo "=== [$i/$n] $l: exit $rc"
done
bash experiments/stop_ray.sh
python3 "$summary" "$out"
