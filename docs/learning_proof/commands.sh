#!/usr/bin/env bash
# The commands that built this folder, in order (benchmarks/learning_proof/run.py).
set -euo pipefail
# data
/work/main/.venv/bin/python /work/main/benchmarks/learning_proof/make_data.py --out /work/main/runs/learning_proof/data --seed 0
# prepare
/work/main/.venv/bin/gsm8k-rl prepare --source /work/main/runs/learning_proof/data --out /work/main/runs/learning_proof/parquet
# warmup
/work/main/.venv/bin/python /work/main/benchmarks/learning_proof/warmup.py --data /work/main/runs/learning_proof/data --out /work/main/runs/learning_proof/base --seed 0 --steps 1500 --lr 3e-3
# eval_base
/work/main/.venv/bin/gsm8k-rl eval --model /work/main/runs/learning_proof/base --out /work/main/runs/learning_proof/eval_base --source /work/main/runs/learning_proof/data --backend transformers --max-new-tokens 32 --batch-size 100
# train
/work/main/.venv/bin/gsm8k-rl train --backend local --model /work/main/runs/learning_proof/base --data /work/main/runs/learning_proof/parquet --run-dir /work/main/runs/learning_proof/run data.train_batch_size=64 data.max_prompt_length=128 data.max_response_length=32 data.val_max_samples=200 actor_rollout_ref.actor.ppo_mini_batch_size=32 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32 critic.ppo_micro_batch_size_per_gpu=32 actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=64 actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=64 actor_rollout_ref.model.enable_gradient_checkpointing=False critic.model.enable_gradient_checkpointing=False actor_rollout_ref.actor.optim.lr=5e-5 critic.optim.lr=1e-4 trainer.total_training_steps=60 trainer.test_freq=10 trainer.save_freq=60 trainer.experiment_name=learning-proof
# export
/work/main/.venv/bin/gsm8k-rl export --run-dir /work/main/runs/learning_proof/run --out /work/main/runs/learning_proof/trained
# eval_trained
/work/main/.venv/bin/gsm8k-rl eval --model /work/main/runs/learning_proof/trained --out /work/main/runs/learning_proof/eval_trained --source /work/main/runs/learning_proof/data --backend transformers --max-new-tokens 32 --batch-size 100
# report
/work/main/.venv/bin/gsm8k-rl report --run /work/main/runs/learning_proof/run --base-eval /work/main/runs/learning_proof/eval_base --trained-eval /work/main/runs/learning_proof/eval_trained --out /work/main/runs/learning_proof/report
