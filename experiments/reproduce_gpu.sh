#!/usr/bin/env bash
# The GPU figures of experiments/real_model/ and experiments/notebook.md ("Step speed") in one sequence, on one GPU.
#
#   numerics  experiments/fast_path_numerics.py: the fast path's kernels against VERL's plain path on
#             one 8192-token micro-batch of the random true-architecture Qwen3-1.7B
#   real      SmolLM2-135M-Instruct through `gsm8k-rl run` (experiments/real_model/gpu_run.sh), stopped
#             with SIGINT once step STOP_AT_STEP is logged (a pre-emption) and resumed by the same
#             command; if the first launch dies before any PPO step, the job is redone with
#             --fast-path off (and says so)
#   real_grpo, real_sa_ppo
#             the same job with --config grpo / sa_ppo (same sample budget, same steps), in
#             OUT/real_grpo, OUT/real_sa_ppo; they reuse the converted model and the PPO job's base
#             eval, or BASE_EVAL (same model, prompt and decoding: `gsm8k-rl run` checks it and refuses
#             one made otherwise), so every run pairs against one base eval;
#             `gsm8k-rl compare OUT/real/run OUT/real_grpo/run OUT/real_sa_ppo/run` puts them side by side
#   pair      PPO and SA-PPO at once on the one GPU (experiments/real_model/gpu_run.sh with SHARED_GPU=1,
#             vLLM at 0.3 of the GPU in training and eval), same model, data, base eval and budget, in
#             OUT/pair/{ppo,sa_ppo}; the PPO job is pre-empted (SIGINT) once step PAIR_STOP_AT (default
#             7) is logged and resumed by the same command. STEPS (default 30), checkpoints every 5,
#             validation every 10, ACTOR_LR (3e-5), CRITIC_LR (1e-4). BASE_EVAL: a finished base eval
#             of the same model, prompt and decoding to reuse (default: OUT/real's)
#             `gsm8k-rl compare OUT/pair/ppo/run OUT/pair/sa_ppo/run` puts them side by side. If the
#             PPO resume fails (vLLM's start-up check trips when the other job releases memory), it is
#             run once more after the SA-PPO job has ended
#   speed     experiments/step_speed.sh in OUT/speed: VERL's stock settings against the launcher's
#             default (no flags) at 300 and 1000 response tokens, SPEED_STEPS steps a launch (default 6),
#             by the rules that script fixes (order, warm-up, one environment); OUT/speed/step_speed.md
#   speed300, speed1000
#             the same at one length, in OUT/speed300, OUT/speed1000
#             (step_speed.sh measures into a new folder only: to measure again, move the old one away)
#
# Usage (GPU machine, VERL + vLLM installed): experiments/reproduce_gpu.sh OUT GSM8K_DIR [PART...]
# Needs ASSETS (default /tmp/assets: Qwen3-1.7B config + tokenizer and gsm8k_test.jsonl, see
# experiments/ppo_gpu.sh). STEPS (default 50) and STOP_AT_STEP (default 13) shape the real-model job.
# Each part logs to OUT/<part>.log; a finished part is skipped when the script runs again.
# After `numerics`, the real-model jobs take the fused backend that was
# fastest there among those within tolerance of the stock log-probs (max |diff| < 0.25, |mean diff|
# < 0.01), and fall back to padded SDPA if PyTorch's varlen kernels failed, and turn liger-kernel's
# RMSNorm/SwiGLU/RoPE off (--liger off) unless that variant with them was within the same tolerance
# (FAST_FLAGS, printed). The speed parts measure the launcher's default as it is, without FAST_FLAGS.
set -uo pipefail
out=$1; gsm8k=$2; shift 2
parts=${*:-numerics real speed}
here=$(cd "$(dirname "$0")/.." && pwd)
assets=${ASSETS:-/tmp/assets}
mkdir -p "$out"
fast_flags() {  # gsm8k-rl train/run flags chosen from the numerics run
  python3 - "$out/fast_path_numerics_h200.json" <<'PY'
import json, sys
try:
    v = json.load(open(sys.argv[1]))["variants"]
except (OSError, ValueError, KeyError):
    print(""); sys.exit()
within = lambda r: "error" not in r and r["logprob_max_abs_diff"] < 0.25 and abs(r["logprob_mean_diff"]) < 0.01
ok = {k: r for k, r in v.items() if within(r) and r.get("fused") and not r.get("liger")}
packed = {k: r for k, r in ok.items() if r["remove_padding"]}
pool = packed or ok
if not pool:
    print("--fast-path off"); sys.exit()
name = min(pool, key=lambda k: pool[k].get("forward_backward_s", 0))
best, twin = pool[name], v.get(name + "+liger")  # the same variant with liger's kernels (--liger)
liger = twin is not None and within(twin)
print(f"--fused {best['fused']}" + ("" if packed else " --attn sdpa") + ("" if liger else " --liger off"))
PY
}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
cleanup_ray() { bash "$here/experiments/stop_ray.sh"; }

for part in $parts; do
  [ -f "$out/$part.done" ] && { stamp "$part: done before, skipped"; continue; }
  stamp "=== $part"
  FAST_FLAGS=$(fast_flags); stamp "flags from the numerics run: '${FAST_FLAGS}'"
  case $part in
    numerics)
      BUILD_ONLY=1 bash "$here/experiments/ppo_gpu.sh" "$out/prepare" 300 >/dev/null  # the random model + data
      python3 "$here/experiments/fast_path_numerics.py" --model /tmp/qwen3-1.7b-random --random \
        --gsm8k "$assets/gsm8k_test.jsonl" --tokens 8192 --liger --out "$out/fast_path_numerics_h200.json" \
        > "$out/numerics.log" 2>&1 ;;
    real)
      root=$out/real
      export RUN_FLAGS=$FAST_FLAGS
      STEPS=${STEPS:-50} STOP_AT_STEP=${STOP_AT_STEP:-13} bash "$here/experiments/real_model/gpu_run.sh" "$root" "$gsm8k" \
        > "$out/real_launch1.log" 2>&1
      if ! grep -qs '"timing_s/step"' "$root"/run/logs/metrics.*.jsonl; then
        stamp "real: no PPO step logged by the first launch: the job is redone with --fast-path off"
        cleanup_ray; mv "$root/run" "$root/run_failed_fast_path"
        # the base eval does not depend on the training kernels: keep it (the run reuses a finished
        # eval made with the settings it would use)
        [ -f "$root/run_failed_fast_path/eval/base/metrics.json" ] && mkdir -p "$root/run/eval" \
          && cp -r "$root/run_failed_fast_path/eval/base" "$root/run/eval/"
        STEPS=${STEPS:-50} STOP_AT_STEP=${STOP_AT_STEP:-13} RUN_FLAGS="--fast-path off" \
          bash "$here/experiments/real_model/gpu_run.sh" "$root" "$gsm8k" > "$out/real_launch1_plain.log" 2>&1
        export RUN_FLAGS="--fast-path off"
      fi
      cleanup_ray
      STEPS=${STEPS:-50} bash "$here/experiments/real_model/gpu_run.sh" "$root" "$gsm8k" > "$out/real_launch2.log" 2>&1 ;;
    real_grpo|real_sa_ppo)
      root=$out/$part
      mkdir -p "$root/run/eval"
      [ -d "$out/real/model" ] && [ ! -e "$root/model" ] && ln -s "$out/real/model" "$root/model"
      base_eval=${BASE_EVAL:-$out/real/run/eval/base}
      [ -f "$base_eval/metrics.json" ] && [ ! -e "$root/run/eval/base" ] && cp -r "$base_eval" "$root/run/eval/base"
      CONFIG=${part#real_} STEPS=${STEPS:-50} RUN_FLAGS=$FAST_FLAGS \
        bash "$here/experiments/real_model/gpu_run.sh" "$root" "$gsm8k" > "$out/${part}_launch1.log" 2>&1 ;;
    pair)
      base_eval=${BASE_EVAL:-$out/real/run/eval/base}
      for job in ppo sa_ppo; do
        mkdir -p "$out/pair/$job/run/eval"
        [ -e "$out/pair/$job/model" ] || ln -s "$out/real/model" "$out/pair/$job/model"
        [ -f "$base_eval/metrics.json" ] && [ ! -e "$out/pair/$job/run/eval/base" ] \
          && cp -r "$base_eval" "$out/pair/$job/run/eval/base"
      done
      export SHARED_GPU=1 STEPS=${STEPS:-30} SAVE_EVERY=5 TEST_EVERY=10 VAL_BEFORE_TRAIN=false \
        ACTOR_LR=${ACTOR_LR:-3e-5} CRITIC_LR=${CRITIC_LR:-1e-4} RUN_FLAGS="$FAST_FLAGS --eval-gpu-memory-utilization 0.3"
      rm -f "$out/pair/sa_ppo.ended"
      ( CONFIG=ppo STOP_AT_STEP=${PAIR_STOP_AT:-7} bash "$here/experiments/real_model/gpu_run.sh" "$out/pair/ppo" "$gsm8k" \
          > "$out/pair_ppo_launch1.log" 2>&1
        CONFIG=ppo bash "$here/experiments/real_model/gpu_run.sh" "$out/pair/ppo" "$gsm8k" > "$out/pair_ppo_launch2.log" 2>&1 \
          && exit 0
        # vLLM's start-up fails when the other job releases GPU memory while vLLM profiles it (seen
        # once): the same command again, once the other job has ended
        while [ ! -f "$out/pair/sa_ppo.ended" ]; do sleep 10; done
        stamp "pair: the PPO resume failed while SA-PPO ran; the same command again"
        CONFIG=ppo bash "$here/experiments/real_model/gpu_run.sh" "$out/pair/ppo" "$gsm8k" > "$out/pair_ppo_launch3.log" 2>&1 ) &
      ppo=$!
      sleep 20  # the two Ray clusters start one after the other
      CONFIG=sa_ppo bash "$here/experiments/real_model/gpu_run.sh" "$out/pair/sa_ppo" "$gsm8k" > "$out/pair_sa_ppo.log" 2>&1
      sa=$?
      touch "$out/pair/sa_ppo.ended"
      wait $ppo; rc=$?
      stamp "pair: PPO exit $rc, SA-PPO exit $sa"
      [ "$rc" = 0 ] && [ "$sa" = 0 ] && touch "$out/$part.done"
      continue ;;
    speed)
      bash "$here/experiments/step_speed.sh" "$out/speed" "${SPEED_STEPS:-6}" > "$out/speed.log" 2>&1 ;;
    speed300|speed1000)
      LENGTHS=${part#speed} bash "$here/experiments/step_speed.sh" "$out/$part" "${SPEED_STEPS:-6}" \
        > "$out/$part.log" 2>&1 ;;
    *) stamp "unknown part $part"; continue ;;
  esac
  rc=$?
  cleanup_ray
  stamp "$part: exit $rc"
  [ "$rc" = 0 ] && touch "$out/$part.done"
done
