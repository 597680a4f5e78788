#!/usr/bin/env bash
# The real-model job on an offline GPU node whose files arrive in pieces (tools/device/split_payload.sh):
# as soon as the payload "wheels" is complete it installs the three wheelhouses (VERL, vLLM, extra:
# math-verify, liger-kernel, gguf; docs/gpu_stack.md), then waits for the payload "gguf", checks it
# and runs experiments/real_model/gpu_run.sh on it, which converts the model (tools/pypi_model.py) and
# runs `gsm8k-rl run`. Started once in the background (setsid) while the pieces are still arriving,
# it overlaps the install with the transfers and the conversion starts as the last piece lands.
#
# Usage (on the node): experiments/real_model/offline_job.sh STAGE WORK
#   STAGE: the folder the pieces are copied into; WORK: where everything goes (WORK/out/real = RUN_ROOT).
#   The environment shapes the job as for gpu_run.sh (MODEL, STEPS, ACTOR_LR, ...).
#   JOB=step_speed runs experiments/step_speed.sh WORK/out/step_speed STEPS (default 8; LENGTHS as
#   there) instead: it waits for the wheels only (no GGUF) and needs .device_assets in the checkout.
# The payload "wheels" holds wh/{verl,vllm,extra}/ (tools/build_wheelhouse.py) and gsm8k/{train,test}.jsonl;
# the payload "gguf" holds one *.gguf. Everything this script starts runs from a copy of the repository
# in WORK/repo, so the checkout may change under it.
set -uo pipefail
stage=$1; work=$2
here=$(cd "$(dirname "$0")/../.." && pwd)
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
mkdir -p "$work/repo" "$work/out"
case ${JOB:-real_model} in
  real_model) ;;
  step_speed)  # checked before anything is installed: without its assets the job cannot run
    [ -d "$here/.device_assets" ] || { stamp "JOB=step_speed needs .device_assets in the checkout (tools/device/pack_assets.sh)"; echo 2 > "$work/out/job.exit"; exit 2; } ;;
  *) stamp "unknown JOB=$JOB (real_model, step_speed)"; echo 2 > "$work/out/job.exit"; exit 2 ;;
esac
cp -r "$here/src" "$here/tools" "$here/experiments" "$work/repo/" 2>/dev/null
cd "$work/repo"
join() {  # wait for a payload's pieces, then join and unpack it
  while true; do
    bash tools/device/join_payload.sh "$stage" "$1" "$work/payload"; rc=$?
    [ $rc -eq 0 ] && return 0
    [ $rc -ne 3 ] && { stamp "payload $1 failed (exit $rc)"; exit 1; }
    sleep 2
  done
}
join wheels
stamp "installing the wheelhouses"
site=$work/site
bash tools/install_wheelhouse.sh "$work/payload/wh/verl" "$site/verl" > "$work/out/job_install_verl.log" 2>&1 || { stamp "VERL install failed"; exit 1; }
PYTHONPATH=$site/verl bash tools/install_wheelhouse.sh "$work/payload/wh/vllm" "$site/vllm" > "$work/out/job_install_vllm.log" 2>&1 || { stamp "vLLM install failed"; exit 1; }
PYTHONPATH=$site/vllm:$site/verl bash tools/install_wheelhouse.sh "$work/payload/wh/extra" "$site/extra" > "$work/out/job_install_extra.log" 2>&1 || { stamp "extra install failed"; exit 1; }
rm -rf "$work/payload/wh"
export PYTHONPATH=$site/vllm:$site/verl:$site/extra:$work/repo/src VLLM_USE_FLASHINFER_SAMPLER=0
stamp "installed; $(python3 -c 'import verl, vllm, transformers, torch; print("verl", verl.__version__, "vllm", vllm.__version__, "transformers", transformers.__version__, "torch", torch.__version__)' 2>&1 | tail -1)"
case ${JOB:-real_model} in
  step_speed)
    # experiments/step_speed.sh needs no model payload: the true Qwen3-1.7B architecture with random
    # weights, built from the config + tokenizer of .device_assets (tools/device/pack_assets.sh)
    cp -r "$here/.device_assets" "$work/repo/"
    stamp "step speed: LENGTHS=${LENGTHS:-300 1000}, ${STEPS:-8} steps a launch"
    bash experiments/step_speed.sh "$work/out/step_speed" "${STEPS:-8}" > "$work/out/job_run.log" 2>&1
    rc=$?
    stamp "step_speed.sh exit $rc" ;;
  real_model)
    join gguf
    gguf=$(ls "$work"/payload/*.gguf | head -1)
    stamp "gguf: $gguf"
    GGUF=$gguf bash experiments/real_model/gpu_run.sh "$work/out/real" "$work/payload/gsm8k" > "$work/out/job_run.log" 2>&1
    rc=$?
    stamp "gpu_run.sh exit $rc" ;;
esac
echo "$rc" > "$work/out/job.exit"
