#!/usr/bin/env bash
# Written by gsm8k-rl 0.1.0 (`gsm8k-rl train`); config 'ppo', backend vllm.
# Actor/critic kernels: attention sdpa, padded micro-batches, unfused log-probs (VERL's per-token loop without flash-attn) (--attn sdpa; --fast-path off: unfused log-probs).
# Runs VERL with the exact composed config saved beside this file.
# Overrides applied on top of the named config, in order:
#   trainer.n_gpus_per_node=1
#   trainer.nnodes=1
#   actor_rollout_ref.rollout.tensor_model_parallel_size=1
#   actor_rollout_ref.rollout.gpu_memory_utilization=0.3
#   actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=16
#   critic.ppo_micro_batch_size_per_gpu=16
#   actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16
#   actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16
#   actor_rollout_ref.ref.fsdp_config.param_offload=true
#   ++ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES='gsm8k_rl.local_backend.plugin'
#   ++actor_rollout_ref.model.override_config.attn_implementation=sdpa
#   ++critic.model.override_config.attn_implementation=sdpa
#   actor_rollout_ref.model.use_remove_padding=False
#   critic.model.use_remove_padding=False
#   ++ray_kwargs.ray_init.runtime_env.env_vars.GSM8K_RL_BATCH_ORDER_LOG='/tmp/out/speed/stock/run_300/logs/batch_order.jsonl'
#   data.train_files=/tmp/gsm8k_bench/train.parquet
#   data.val_files=/tmp/gsm8k_bench/test.parquet
#   reward.custom_reward_function.path=./src/gsm8k_rl/reward.py
#   trainer.default_local_dir=/tmp/out/speed/stock/run_300/checkpoints
#   trainer.validation_data_dir=/tmp/out/speed/stock/run_300/val_generations
#   actor_rollout_ref.model.path=/tmp/qwen3-1.7b-random
#   trainer.total_training_steps=3
#   trainer.val_before_train=false
#   trainer.test_freq=-1
#   trainer.save_freq=-1
#   trainer.logger=[console,file]
#   data.max_response_length=300
#   actor_rollout_ref.rollout.ignore_eos=true
cd .
metrics=/tmp/out/speed/stock/run_300/logs/metrics.$(date -u +%Y%m%dT%H%M%S).jsonl
env GSM8K_RL_BATCH_ORDER_LOG=/tmp/out/speed/stock/run_300/logs/batch_order.jsonl TENSORBOARD_DIR=/tmp/out/speed/stock/run_300/tensorboard TOKENIZERS_PARALLELISM=false VERL_USE_EXTERNAL_MODULES=gsm8k_rl.local_backend.plugin VERL_FILE_LOGGER_PATH="$metrics" \
  /opt/torch/.venv/bin/python3 -m verl.trainer.main_ppo --config-path /tmp/out/speed/stock/run_300 --config-name resolved_config hydra.run.dir=/tmp/out/speed/stock/run_300/hydra "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='$metrics'" "++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR='/tmp/out/speed/stock/run_300/tensorboard'" "$@"
