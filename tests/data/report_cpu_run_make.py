"""Records a REAL (tiny) VERL PPO run on CPU into tests/data/report_cpu_run/, for the report test.

What runs: `python -m verl.trainer.main_ppo` (VERL 0.9.1) with the project's CPU backend
(gsm8k_rl.local_backend), GAE + critic, KL penalty in the reward, the project reward file, on the
shipped GSM8K slice prepared by `gsm8k_rl.task.prepare.prepare`, with a random toy Qwen3
(gsm8k_rl.launch.smoke.build_tiny_model, 0.1M parameters, its own small tokenizer). The metrics are real
VERL file-logger output; the numbers mean nothing about GSM8K (a random toy model scores 0).
Kept: metrics.jsonl (VERL's own lines), run_info.json (written here, from what was run),
resolved_config.yaml (the composed config, resolved). Takes a few minutes and ~4 GB on 2 cores.

    .venv/bin/python tests/data/report_cpu_run_make.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent / "report_cpu_run"
STEPS, TEST_FREQ, BATCH = 6, 2, 4


def main() -> None:
    import verl
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gsm8k_rl.launch.compose import REWARD_FILE
    from gsm8k_rl.launch.local_backend import launch_spec
    from gsm8k_rl.launch.smoke import SMOKE_DATA, build_tiny_model
    from gsm8k_rl.task.prepare import prepare

    work = Path(tempfile.mkdtemp(prefix="report_cpu_run_"))
    data = work / "data"
    prepare(data, source=str(SMOKE_DATA))
    model = build_tiny_model(work / "model")
    spec = launch_spec(n_gpus=1, device="cpu")
    overrides = spec["overrides"] + [
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'test.parquet'}",
        f"data.train_batch_size={BATCH}",
        "data.max_prompt_length=256",
        "data.max_response_length=32",
        "data.val_max_samples=8",
        "+data.apply_chat_template_kwargs.enable_thinking=False",
        f"actor_rollout_ref.model.path={model}",
        f"critic.model.path={model}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH // 2}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
        "critic.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.n=1",
        "actor_rollout_ref.actor.optim.lr=1e-6",
        "critic.optim.lr=2e-6",
        "algorithm.adv_estimator=gae",
        "algorithm.use_kl_in_reward=True",
        "algorithm.kl_ctrl.type=fixed",
        "algorithm.kl_ctrl.kl_coef=0.001",
        f"reward.custom_reward_function.path={REWARD_FILE}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        f"trainer.total_training_steps={STEPS}",
        f"trainer.test_freq={TEST_FREQ}",
        "trainer.save_freq=-1",
        "trainer.val_before_train=True",
        f"trainer.default_local_dir={work / 'ckpt'}",
        "trainer.project_name=gsm8k_rl_report_fixture",
        "trainer.experiment_name=cpu_tiny_ppo",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    metrics = OUT / "metrics.jsonl"
    env = {**os.environ, **spec["env"], "VERL_FILE_LOGGER_PATH": str(metrics), "HF_HUB_OFFLINE": "1"}
    start = datetime.now(timezone.utc)
    t0 = time.time()
    log_path = work / "main_ppo.log"
    with log_path.open("w") as log:
        rc = subprocess.run([sys.executable, "-m", spec["python_module"], *overrides], env=env, cwd=work,
                            stdout=log, stderr=subprocess.STDOUT, timeout=1800).returncode
    if rc != 0:
        sys.exit(f"main_ppo failed (rc {rc}); log: {log_path}")
    wall = time.time() - t0

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose("ppo_trainer", overrides=overrides)
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # an interpolation that only resolves inside VERL's workers
        text = OmegaConf.to_yaml(cfg)
    # the checkout's own path would differ on every machine: written relative to the repository root
    text = text.replace(str(Path(__file__).resolve().parents[2]) + "/", "./")
    (OUT / "resolved_config.yaml").write_text(
        "# Composed from VERL 0.9.1's ppo_trainer.yaml with the overrides report_cpu_run_make.py passed to "
        "main_ppo.\n" + text)
    (OUT / "run_info.json").write_text(json.dumps({
        "what": "real VERL main_ppo run on CPU, random toy Qwen3 (report fixture; accuracy meaningless)",
        "model": "toy Qwen3 (gsm8k_rl.launch.smoke.build_tiny_model, random weights)",
        "config": "VERL ppo_trainer + tests/data/report_cpu_run_make.py overrides",
        "n_gpus": 0,
        "hardware": f"CPU only: {os.cpu_count()} cores, {platform.machine()} ({platform.platform()})",
        "verl": verl.__version__,
        "start_time": start.isoformat(timespec="seconds"),
        "end_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 1),
    }, indent=2) + "\n")
    print(f"wrote {OUT} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
