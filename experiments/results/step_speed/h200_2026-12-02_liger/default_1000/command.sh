#!/usr/bin/env bash
# Written by gsm8k-rl 0.1.0 (`gsm8k-rl train`); config 'ppo', backend vllm.
# Actor/critic kernels: attention torch_varlen, packed micro-batches, fused log-probs (triton) (--attn auto: flash-attn is not importable on vm, the machine that planned the run; PyTorch's varlen kernels are; fused log-probs: VERL's Triton kernel).
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
#   actor_rollout_ref.actor.use_dynamic_bsz=true
#   actor_rollout_ref.actor.ppo_max_token_len_per_gpu=32768
#   actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=65536
#   actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=65536
#   critic.use_dynamic_bsz=true
#   critic.ppo_max_token_len_per_gpu=32768
#   critic.forward_max_token_len_per_gpu=65536
#   actor_rollout_ref.ref.fsdp_config.param_offload=false
#   ++ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES='gsm8k_rl.local_backend.plugin'
#   ++actor_rollout_ref.model.override_config.attn_implementation=torch_varlen
#   ++critic.model.override_config.attn_implementation=torch_varlen
#   actor_rollout_ref.model.use_remove_padding=True
#   critic.model.use_remove_padding=True
#   actor_rollout_ref.model.use_fused_kernels=True
#   actor_rollout_ref.model.fused_kernel_options.impl_backend=triton
#   trainer.v1.sampler.custom_sampler.path=pkg://gsm8k_rl.replay_buffer
#   trainer.v1.sampler.custom_sampler.name=QuickPollReplayBuffer
#   ++trainer.v1.sampler.sampler_kwargs.poll_interval=0.1
#   ++ray_kwargs.ray_init.runtime_env.env_vars.GSM8K_RL_BATCH_ORDER_LOG='/tmp/out/C1000/run_1000/logs/batch_order.jsonl'
#   data.train_files=/tmp/gsm8k_bench/train.parquet
#   data.val_files=/tmp/gsm8k_bench/test.parquet
#   reward.custom_reward_function.path=./src/gsm8k_rl/reward.py
#   trainer.default_local_dir=/tmp/out/C1000/run_1000/checkpoints
#   trainer.validation_data_dir=/tmp/out/C1000/run_1000/val_generations
#   actor_rollout_ref.model.path=/tmp/qwen3-1.7b-random
#   trainer.total_training_steps=3
#   trainer.val_before_train=false
#   trainer.test_freq=-1
#   trainer.save_freq=-1
#   trainer.logger=[console,file]
#   data.max_response_length=1000
#   actor_rollout_ref.rollout.ignore_eos=true
#   ++ray_kwargs.ray_init.runtime_env.env_vars.VLLM_DISABLE_COMPILE_CACHE='0'
cd .
metrics=/tmp/out/C1000/run_1000/logs/metrics.$(date -u +%Y%m%dT%H%M%S).jsonl
env GSM8K_RL_BATCH_ORDER_LOG=/tmp/out/C1000/run_1000/logs/batch_order.jsonl TENSORBOARD_DIR=/tmp/out/C1000/run_1000/tensorboard TOKENIZERS_PARALLELISM=false VERL_USE_EXTERNAL_MODULES=gsm8k_rl.local_backend.plugin VERL_FILE_LOGGER_PATH="$metrics" \
  /opt/torch/.venv/bin/python3 -m verl.trainer.main_ppo --config-path /tmp/out/C1000/run_1000 --config-name resolved_config hydra.run.dir=/tmp/out/C1000/run_1000/hydra "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='$metrics'" "++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR='/tmp/out/C1000/run_1000/tensorboard'" "$@"
