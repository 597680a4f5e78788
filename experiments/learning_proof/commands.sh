#!/usr/bin/env bash
# The commands that built this folder, in order (benchmarks/learning_proof/run.py).
# Run from the repository root with the project's environment active; OUT_DIR is --out.
set -euo pipefail
OUT_DIR=${OUT_DIR:-runs/learning_proof}
# data
python benchmarks/learning_proof/make_data.py --out $OUT_DIR/data --seed 0
# prepare
gsm8k-rl prepare --source $OUT_DIR/data --out $OUT_DIR/parquet
# warmup
python benchmarks/learning_proof/warmup.py --data $OUT_DIR/data --out $OUT_DIR/base --seed 0 --steps 1500 --lr 3e-3
# eval_base
gsm8k-rl eval --model $OUT_DIR/base --out $OUT_DIR/eval_base --source $OUT_DIR/data --backend transformers --max-new-tokens 32 --batch-size 100
# train
gsm8k-rl train --backend local --model $OUT_DIR/base --data $OUT_DIR/parquet --run-dir $OUT_DIR/run data.train_batch_size=64 data.max_prompt_length=128 data.max_response_length=32 data.val_max_samples=200 actor_rollout_ref.actor.ppo_mini_batch_size=32 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32 critic.ppo_micro_batch_size_per_gpu=32 actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=64 actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=64 actor_rollout_ref.model.enable_gradient_checkpointing=False critic.model.enable_gradient_checkpointing=False actor_rollout_ref.actor.optim.lr=5e-5 critic.optim.lr=1e-4 trainer.total_training_steps=60 trainer.test_freq=10 trainer.save_freq=60 trainer.experiment_name=learning-proof
# export
gsm8k-rl export --run-dir $OUT_DIR/run --out $OUT_DIR/trained
# eval_trained
gsm8k-rl eval --model $OUT_DIR/trained --out $OUT_DIR/eval_trained --source $OUT_DIR/data --backend transformers --max-new-tokens 32 --batch-size 100
# report
gsm8k-rl report --run $OUT_DIR/run --base-eval $OUT_DIR/eval_base --trained-eval $OUT_DIR/eval_trained --out $OUT_DIR/report
