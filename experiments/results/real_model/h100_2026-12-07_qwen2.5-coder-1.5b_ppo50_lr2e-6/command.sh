#!/usr/bin/env bash
# Written by gsm8k-rl 0.1.0 (`gsm8k-rl train`); config 'ppo', backend vllm.
# Actor/critic kernels: attention torch_varlen, packed micro-batches, fused log-probs (triton), liger-kernel RMSNorm/SwiGLU/RoPE (--attn auto: flash-attn is not importable on vm, the machine that planned the run; PyTorch's varlen kernels are; fused log-probs: VERL's Triton kernel; liger-kernel RMSNorm/SwiGLU/RoPE).
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
#   actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8192
#   actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=16384
#   actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384
#   critic.use_dynamic_bsz=true
#   critic.ppo_max_token_len_per_gpu=8192
#   critic.forward_max_token_len_per_gpu=16384
#   actor_rollout_ref.ref.fsdp_config.param_offload=true
#   actor_rollout_ref.actor.fsdp_config.optimizer_offload=true
#   critic.fsdp.optimizer_offload=true
#   ++ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES='gsm8k_rl.verl_ext.plugin'
#   ++actor_rollout_ref.model.override_config.attn_implementation=torch_varlen
#   ++critic.model.override_config.attn_implementation=torch_varlen
#   actor_rollout_ref.model.use_remove_padding=True
#   critic.model.use_remove_padding=True
#   actor_rollout_ref.model.use_fused_kernels=True
#   actor_rollout_ref.model.fused_kernel_options.impl_backend=triton
#   actor_rollout_ref.model.use_liger=True
#   critic.model.use_liger=True
#   trainer.v1.sampler.custom_sampler.path=pkg://gsm8k_rl.verl_ext.replay_buffer
#   trainer.v1.sampler.custom_sampler.name=QuickPollReplayBuffer
#   ++trainer.v1.sampler.sampler_kwargs.poll_interval=0.1
#   ++ray_kwargs.ray_init.runtime_env.env_vars.GSM8K_RL_BATCH_ORDER_LOG='/tmp/w/out/real/run/logs/batch_order.jsonl'
#   data.train_files=/tmp/w/out/real/data/train.parquet
#   data.val_files=/tmp/w/out/real/data/test.parquet
#   reward.custom_reward_function.path=/tmp/w/repo/src/gsm8k_rl/task/reward.py
#   trainer.default_local_dir=/tmp/w/out/real/run/checkpoints
#   trainer.validation_data_dir=/tmp/w/out/real/run/val_generations
#   actor_rollout_ref.model.path=/tmp/w/out/real/model
#   data.max_response_length=1024
#   actor_rollout_ref.actor.optim.lr=2e-6
#   critic.optim.lr=1e-5
#   actor_rollout_ref.actor.checkpoint.save_contents=[model,extra]
#   critic.checkpoint.save_contents=[model,extra]
#   trainer.total_training_steps=50
#   trainer.save_freq=50
#   trainer.test_freq=25
#   trainer.val_before_train=true
#   trainer.experiment_name=qwen2.5-coder-1.5b-ppo
#   trainer.critic_warmup=3
#   data.max_response_length=640
cd /tmp/w/repo
metrics=/tmp/w/out/real/run/logs/metrics.$(date -u +%Y%m%dT%H%M%S).jsonl
env GSM8K_RL_BATCH_ORDER_LOG=/tmp/w/out/real/run/logs/batch_order.jsonl TENSORBOARD_DIR=/tmp/w/out/real/run/tensorboard TOKENIZERS_PARALLELISM=false VERL_USE_EXTERNAL_MODULES=gsm8k_rl.verl_ext.plugin VERL_FILE_LOGGER_PATH="$metrics" \
  /opt/torch/.venv/bin/python3 -m verl.trainer.main_ppo --config-path /tmp/w/out/real/run --config-name resolved_config hydra.run.dir=/tmp/w/out/real/run/hydra "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='$metrics'" "++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR='/tmp/w/out/real/run/tensorboard'" "$@"
