"""The local backend: launch spec against VERL's real config schema, the hf rollout's generation
against transformers itself, the CPU platform, and (slow) a real `verl.trainer.main_ppo` run on
CPU: validation, 2 PPO steps with critic + KL-in-reward, checkpoint, resume, VERL's model merger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gsm8k_rl import UserError
from gsm8k_rl.launch.local_backend import launch_spec
from gsm8k_rl.verl_ext import VERL_VERSION, check_verl_version


def _verl_config_dir() -> str:
    import verl

    return str(Path(verl.__file__).parent / "trainer" / "config")


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=_verl_config_dir(), version_base=None):
        return compose("ppo_trainer", overrides=overrides)


# -- launch spec --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_launch_spec_composes_with_verl_config(device, tiny_model_dir):
    """Every override names a real key of VERL 0.9.1's ppo_trainer (struct mode rejects typos)."""
    spec = launch_spec(2, device)
    assert spec["python_module"] == "verl.trainer.main_ppo"
    assert spec["env"]["VERL_USE_EXTERNAL_MODULES"] == "gsm8k_rl.verl_ext.plugin"
    cfg = _compose(spec["overrides"] + [f"actor_rollout_ref.model.path={tiny_model_dir}"])
    rollout = cfg.actor_rollout_ref.rollout
    assert (rollout.name, rollout.tensor_model_parallel_size, rollout.mode) == ("hf", 1, "async")
    assert cfg.trainer.n_gpus_per_node == 2 and cfg.trainer.device == device
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert cfg.critic.model.override_config.attn_implementation == "sdpa"
    env_vars = dict(cfg.ray_kwargs.ray_init.runtime_env.env_vars)
    # Ray only accepts string env values; Hydra would have parsed an unquoted "false" as a bool
    assert all(isinstance(v, str) for v in env_vars.values())
    assert {k: env_vars[k] for k in spec["env"]} == spec["env"]
    if device == "cpu":
        assert spec["env"]["VERL_PLATFORM"] == "cpu"
        assert cfg.ray_kwargs.ray_init.num_gpus == 2
        assert {cfg.actor_rollout_ref.actor.strategy, cfg.actor_rollout_ref.ref.strategy, cfg.critic.strategy} == {
            "fsdp2"
        }
        assert cfg.transfer_queue.backend.SimpleStorage.num_data_storage_units == 1
    else:
        assert "VERL_PLATFORM" not in spec["env"]
        assert "num_gpus" not in cfg.ray_kwargs.ray_init


def test_launch_spec_overrides_survive_a_recipe_that_sets_the_same_keys(tiny_model_dir):
    """`++` adds or replaces: a recipe that already sets attn_implementation or num_gpus composes."""
    recipe = ["+actor_rollout_ref.model.override_config.attn_implementation=eager", "+ray_kwargs.ray_init.num_gpus=8"]
    cfg = _compose(recipe + launch_spec(1, "cpu")["overrides"] + [f"critic.model.path={tiny_model_dir}"])
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert cfg.ray_kwargs.ray_init.num_gpus == 1


def test_launch_spec_joining_a_ray_cluster_declares_no_resources(tiny_model_dir):
    """Issue 16: on a cluster started with `ray start` (RAY_ADDRESS), Ray refuses num_cpus/num_gpus from
    a joining driver; the nodes' own logical GPUs are the ranks. nnodes reaches VERL's trainer config."""
    cfg = _compose(launch_spec(1, "cpu", nnodes=2, join_cluster=True)["overrides"]
                   + [f"actor_rollout_ref.model.path={tiny_model_dir}"])
    assert (cfg.trainer.n_gpus_per_node, cfg.trainer.nnodes) == (1, 2)
    assert "num_gpus" not in cfg.ray_kwargs.ray_init and cfg.ray_kwargs.ray_init.num_cpus is None
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM == "cpu"  # reaches the other node's workers


@pytest.mark.parametrize("args", [(1, "tpu"), (0, "cpu")])
def test_launch_spec_rejects_bad_arguments(args):
    with pytest.raises(UserError):
        launch_spec(*args)


ENGINES = ("actor_rollout_ref.actor.fsdp_config", "actor_rollout_ref.ref.fsdp_config", "critic.fsdp")  # VERL 0.9.1


def _compute_dtypes(cfg) -> dict[str, str]:
    """The dtype VERL's FSDP engine computes in, per model, read as `_build_fsdp_module` reads it:
    `mixed_precision.param_dtype` of the engine config (bf16 when absent), through VERL's own parser.
    Autocast runs in that dtype, and is skipped for fp32."""
    from omegaconf import OmegaConf
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.torch_dtypes import PrecisionType

    out = {}
    for key in ENGINES:
        engine = omega_conf_to_dataclass(OmegaConf.select(cfg, key))
        mp = engine.mixed_precision or {}
        out[key] = str(PrecisionType.to_dtype(mp.get("param_dtype", "bf16"))).removeprefix("torch.")
    return out


def test_cpu_runs_compute_in_fp32_and_gpu_runs_keep_bf16(tmp_path, tiny_model_dir, caplog):
    """A CPU without native bf16 emulates bf16 matmuls (several times slower than fp32), so the local
    backend on CPU makes actor, reference and critic compute in fp32 and says so in the launcher's
    log; GPU runs keep VERL's bf16; the user's own overrides still win. Through `gsm8k-rl train
    --dry-run` (this machine has no GPU: the local backend plans a CPU run, vLLM a GPU one)."""
    import logging

    from omegaconf import OmegaConf

    from gsm8k_rl.cli import main

    fp32 = dict.fromkeys(ENGINES, "float32")
    bf16 = dict.fromkeys(fp32, "bfloat16")
    cpu = tmp_path / "cpu"
    with caplog.at_level(logging.INFO):
        assert main(["train", "--dry-run", "--backend", "local", "--smoke", "--run-dir", str(cpu)]) == 0
    cfg = OmegaConf.load(cpu / "resolved_config.yaml")
    assert cfg.trainer.device == "cpu"
    assert _compute_dtypes(cfg) == fp32
    for key in fp32:
        engine = OmegaConf.select(cfg, key)
        assert dict(engine.mixed_precision) == {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}
        assert (engine.model_dtype, engine.dtype) == ("fp32", "float32")
    assert cfg.actor_rollout_ref.rollout.dtype == "float32"
    assert any("compute in fp32" in r.getMessage() for r in caplog.records)

    # GPU: a vLLM run planned for GPUs, and the local backend's CUDA spec, keep VERL's bf16
    data = cpu / "smoke" / "data"
    gpu = tmp_path / "gpu"
    # (the smoke slice holds 64 training rows: batches of 64, the recipe's 128 would be refused)
    assert main(["train", "--dry-run", "--run-dir", str(gpu), "--data", str(data), "--model", str(tiny_model_dir),
                 "data.train_batch_size=64"]) == 0
    cfg = OmegaConf.load(gpu / "resolved_config.yaml")
    assert cfg.trainer.device == "cuda" and _compute_dtypes(cfg) == bf16
    assert _compute_dtypes(_compose(launch_spec(1, "cuda")["overrides"]
                                    + [f"actor_rollout_ref.model.path={tiny_model_dir}"])) == bf16

    # the user's overrides come last and win
    mine = tmp_path / "mine"
    assert main(["train", "--dry-run", "--backend", "local", "--smoke", "--run-dir", str(mine),
                 "++actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=bf16"]) == 0
    assert _compute_dtypes(OmegaConf.load(mine / "resolved_config.yaml")) == {
        **fp32, "actor_rollout_ref.actor.fsdp_config": "bfloat16"}


def test_installed_verl_is_the_pinned_one():
    assert check_verl_version() == VERL_VERSION == "0.9.1"


def test_plugin_registers_everything_in_a_fresh_verl_process():
    """What every VERL process gets from VERL_USE_EXTERNAL_MODULES (run in a clean interpreter)."""
    code = (
        "import verl\n"
        "from verl.workers.rollout.base import get_rollout_class\n"
        "from verl.workers.rollout.replica import get_rollout_replica_class\n"
        "from verl.utils.device import get_device_name, get_nccl_backend\n"
        "from verl.utils.flops_counter import get_device_flops\n"
        "from verl.workers.engine import EngineRegistry\n"
        "print(get_rollout_class('hf').__name__, get_rollout_replica_class('hf').__name__,"
        " get_device_name(), get_nccl_backend(), get_device_flops(unit='G'),"
        " EngineRegistry.get_engine_cls('language_model', 'fsdp2').__name__,"
        " EngineRegistry.get_engine_cls('value_model', 'fsdp2').__name__)\n"
    )
    env = {**os.environ, **launch_spec(1, "cpu")["env"]}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [
        "HFServerAdapter",
        "HFReplica",
        "cpu",
        "gloo",
        "448.0",  # VERL's FLOPs table entry for "CPU"
        "CPULanguageEngine",
        "CPUValueEngine",
    ]


# -- CPU platform -------------------------------------------------------------------------------


def test_cpu_platform_device_module_answers_what_verl_asks():
    import torch

    from gsm8k_rl.verl_ext.cpu_platform import PlatformCPU

    platform = PlatformCPU()
    mod = platform.device_module
    free, total = mod.mem_get_info()
    assert 0 < free <= total
    assert mod.max_memory_allocated() > 0 and mod.get_device_name() == "CPU"
    state = mod.get_rng_state()
    a = torch.rand(3)
    mod.set_rng_state(state)
    assert torch.equal(a, torch.rand(3))
    # current_device is a string: VERL passes it to tensor.to(), where an int would mean cuda:N
    assert torch.zeros(1).to(platform.current_device()).device.type == "cpu"
    assert (platform.device_name, platform.communication_backend_name(), platform.ray_resource_name()) == (
        "cpu",
        "gloo",
        "GPU",
    )
    assert not platform.is_platform_available(use_smi_check=True)  # never auto-detected


# -- hf rollout generation ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [
        tok("Natalia sold clips to 48 of her friends in April")["input_ids"],
        tok("Weng earns $12")["input_ids"],
        tok("Betty is saving money for a new wallet which costs $100. Betty has only half")["input_ids"],
    ]
    return model.eval(), tok, prompts


def _stop_ids(tok) -> set[int]:
    return {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}


def _recomputed_logprobs(model, prompt, response, temperature=1.0):
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(response)[:, None]).squeeze(1)


def test_greedy_batch_matches_transformers_one_by_one(tiny_lm):
    """Temperature 0 (VERL's val_kwargs) is greedy; left-padded batching changes nothing."""
    import torch

    from gsm8k_rl.common.generation import generate_batch

    model, tok, prompts = tiny_lm
    outs = generate_batch(model, prompts, {"temperature": 0, "logprobs": True}, 16, _stop_ids(tok), tok.pad_token_id)
    for prompt, out in zip(prompts, outs, strict=True):
        ref = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=sorted(_stop_ids(tok)),
            pad_token_id=tok.pad_token_id,
        )[0, len(prompt) :].tolist()
        assert out.token_ids == ref[: len(out.token_ids)]
        assert len(out.token_ids) == 16 or out.stopped
        # log-probs: those of a fresh forward pass over prompt + response
        lp = _recomputed_logprobs(model, prompt, out.token_ids)
        assert torch.allclose(torch.tensor(out.log_probs), lp, atol=1e-4)


def test_sampling_is_seeded_and_logprobs_follow_temperature(tiny_lm):
    import torch

    from gsm8k_rl.common.generation import generate_batch

    model, tok, prompts = tiny_lm
    params = {"temperature": 0.7, "top_p": 1.0, "top_k": -1, "logprobs": True}
    torch.manual_seed(1)
    a = generate_batch(model, prompts, params, 12, _stop_ids(tok), tok.pad_token_id)
    torch.manual_seed(1)
    b = generate_batch(model, prompts, params, 12, _stop_ids(tok), tok.pad_token_id)
    torch.manual_seed(2)
    c = generate_batch(model, prompts, params, 12, _stop_ids(tok), tok.pad_token_id)
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert [o.token_ids for o in a] != [o.token_ids for o in c]  # a random 1k-vocab model: never equal
    for prompt, out in zip(prompts, a, strict=True):
        lp = _recomputed_logprobs(model, prompt, out.token_ids, temperature=0.7)
        assert torch.allclose(torch.tensor(out.log_probs), lp, atol=1e-4)


def test_top_k_one_sampling_is_greedy_and_top_p_masks(tiny_lm):
    from gsm8k_rl.common.generation import generate_batch

    model, tok, prompts = tiny_lm
    stop = _stop_ids(tok)
    greedy = generate_batch(model, prompts, {"temperature": 0}, 10, stop, tok.pad_token_id)
    top1 = generate_batch(model, prompts, {"temperature": 1.3, "top_k": 1}, 10, stop, tok.pad_token_id)
    assert [o.token_ids for o in top1] == [o.token_ids for o in greedy]
    # top_p -> 0 keeps only the most likely token: also greedy, whatever the temperature
    nucleus = generate_batch(model, prompts, {"temperature": 1.0, "top_p": 1e-6}, 10, stop, tok.pad_token_id)
    assert [o.token_ids for o in nucleus] == [o.token_ids for o in greedy]


def test_stop_token_ends_the_response_and_is_kept(tiny_lm):
    """A stop id the model is sure to emit (its own greedy 3rd token) cuts the response there."""
    from gsm8k_rl.common.generation import generate_batch

    model, tok, prompts = tiny_lm
    free = generate_batch(model, prompts[:1], {"temperature": 0}, 10, _stop_ids(tok), tok.pad_token_id)[0]
    third = free.token_ids[2]
    cut = generate_batch(
        model, prompts[:1], {"temperature": 0, "stop_token_ids": [third]}, 10, _stop_ids(tok), tok.pad_token_id
    )[0]
    first_hit = free.token_ids.index(third)
    assert cut.token_ids == free.token_ids[: first_hit + 1] and cut.stopped
    forced = generate_batch(
        model, prompts[:1], {"temperature": 0, "stop_token_ids": [third], "ignore_eos": True}, 10, set(), 0
    )[0]
    assert len(forced.token_ids) == 10 and not forced.stopped


# -- the real thing -----------------------------------------------------------------------------

REWARD_WRAPPER = '''
"""Test reward: the project's compute_score, recording every call it gets (VERL passes reward_kwargs)."""
import json

from gsm8k_rl.task.reward import compute_score as _project_score


def compute_score(data_source, solution_str, ground_truth, extra_info=None, calls_file=None, **kwargs):
    score = _project_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
    with open(calls_file, "a") as f:
        f.write(json.dumps({"split": extra_info["split"], "index": extra_info["index"], "score": score}) + "\\n")
    return score
'''


def _write_gsm8k_parquet(out: Path, n_train: int, n_test: int) -> None:
    """VERL RL parquet rows in the schema `gsm8k-rl prepare` writes, from the shipped slice."""
    import pandas as pd

    from gsm8k_rl.launch.smoke import SMOKE_DATA

    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rows = []
        for i, line in enumerate((SMOKE_DATA / f"{split}.jsonl").read_text().splitlines()[:n]):
            r = json.loads(line)
            rows.append(
                {
                    "data_source": "openai/gsm8k",
                    "prompt": [
                        {"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": r["question"]},
                    ],
                    "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": r["answer"].split("####")[-1].strip()},
                    "extra_info": {"split": split, "index": i, "question": r["question"], "answer": r["answer"]},
                }
            )
        pd.DataFrame(rows).to_parquet(out / f"{split}.parquet")


class _PeakRSS:
    """Peak summed RSS of a process and all its descendants (Ray's raylet, GCS and workers)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            time.sleep(0.5)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


N_TRAIN, N_TEST, BATCH = 8, 4, 4


def _run_main_ppo(workdir: Path, model: Path, data: Path, reward_file: Path, calls: Path, steps: int) -> dict:
    spec = launch_spec(n_gpus=1, device="cpu")
    overrides = spec["overrides"] + [
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'test.parquet'}",
        f"data.train_batch_size={BATCH}",
        "data.max_prompt_length=256",
        "data.max_response_length=24",
        "+data.apply_chat_template_kwargs.enable_thinking=False",
        f"actor_rollout_ref.model.path={model}",
        f"critic.model.path={model}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
        "critic.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.n=1",
        "algorithm.adv_estimator=gae",
        "algorithm.use_kl_in_reward=True",
        "algorithm.kl_ctrl.type=fixed",
        "algorithm.kl_ctrl.kl_coef=0.001",
        f"reward.custom_reward_function.path={reward_file}",
        "reward.custom_reward_function.name=compute_score",
        f"+reward.custom_reward_function.reward_kwargs.calls_file={calls}",
        "trainer.logger=[console,file]",
        f"trainer.total_training_steps={steps}",
        "trainer.save_freq=2",
        "trainer.test_freq=-1",
        "trainer.val_before_train=True",
        "trainer.resume_mode=auto",
        f"trainer.default_local_dir={workdir / 'ckpt'}",
        "trainer.project_name=gsm8k_rl_test",
        "trainer.experiment_name=local_backend",
    ]
    metrics = workdir / f"metrics_{steps}.jsonl"
    env = {**os.environ, **spec["env"], "VERL_FILE_LOGGER_PATH": str(metrics), "HF_HUB_OFFLINE": "1"}
    log_path = workdir / f"main_ppo_{steps}.log"
    start = time.time()
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", spec["python_module"], *overrides],
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        peak = _PeakRSS(proc.pid)
        try:
            rc = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
            peak_rss = peak.stop()
    wall = time.time() - start
    print(f"main_ppo {steps} steps: {wall:.0f} s wall, peak RSS {peak_rss / 2**30:.2f} GiB")
    assert rc == 0, log_path.read_text()[-6000:]
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    return {"steps": {r["step"]: r["data"] for r in lines}, "order": [r["step"] for r in lines], "log": log_path}


@pytest.mark.slow
def test_main_ppo_trains_checkpoints_resumes_and_exports(tmp_path, tiny_model_dir):
    """A real `python -m verl.trainer.main_ppo` on CPU with this backend, then VERL's model merger."""
    data = tmp_path / "data"
    _write_gsm8k_parquet(data, N_TRAIN, N_TEST)
    reward_file = tmp_path / "reward_with_calls.py"
    reward_file.write_text(REWARD_WRAPPER)
    calls = tmp_path / "reward_calls.jsonl"
    workdir = tmp_path / "run"
    workdir.mkdir()

    # 1. validation before training, then 2 PPO steps (GAE + critic, KL penalty in the reward)
    run = _run_main_ppo(workdir, tiny_model_dir, data, reward_file, calls, steps=2)
    assert run["order"] == [0, 1, 2]
    val = run["steps"][0]
    # VERL 0.9.1 names the core validation metric "acc" when compute_score returns a float
    # (the reward manager copies the score into reward_extra_info["acc"]); "reward" is kept as aux.
    assert "val-core/openai/gsm8k/acc/mean@1" in val and "val-aux/openai/gsm8k/reward/mean@1" in val
    for step in (1, 2):
        m = run["steps"][step]
        for key in ("timing_s/step", "timing_s/gen", "timing_s/ref", "critic/vf_loss", "actor/reward_kl_penalty",
                    "actor/pg_loss", "critic/score/mean"):
            assert key in m, f"{key} missing at step {step}"
        assert m["actor/reward_kl_penalty_coeff"] == pytest.approx(0.001)
        assert m["training/global_step"] == step
        assert 0 < m["response_length/mean"] <= 24

    # the reward function really ran: 4 validation rows, then 4 rollouts per step
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert sorted(r["index"] for r in recorded if r["split"] == "test") == list(range(N_TEST))
    assert len([r for r in recorded if r["split"] == "train"]) == 2 * BATCH
    val_scores = [r["score"] for r in recorded if r["split"] == "test"]
    assert val["val-core/openai/gsm8k/acc/mean@1"] == pytest.approx(sum(val_scores) / len(val_scores))

    # 2. checkpoint of step 2
    ckpt = workdir / "ckpt"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    for role in ("actor", "critic"):
        assert (ckpt / "global_step_2" / role / "model_world_size_1_rank_0.pt").stat().st_size > 0
        assert (ckpt / "global_step_2" / role / "optim_world_size_1_rank_0.pt").exists()

    # 3. resume: total steps raised to 3 continues from step 2 and trains step 3 only
    n_calls = len(recorded)
    resumed = _run_main_ppo(workdir, tiny_model_dir, data, reward_file, calls, steps=3)
    assert "Resuming from" in resumed["log"].read_text() and "global_step_2" in resumed["log"].read_text()
    trained = [s for s, m in resumed["steps"].items() if "timing_s/step" in m]
    assert trained == [3]
    assert resumed["steps"][3]["training/global_step"] == 3
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
    new_calls = [json.loads(line) for line in calls.read_text().splitlines()][n_calls:]
    assert len([r for r in new_calls if r["split"] == "train"]) == BATCH

    # 4. VERL's model merger exports the actor to a HF folder that transformers loads and runs
    hf_dir = tmp_path / "hf"
    merge = subprocess.run(
        [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
         "--local_dir", str(ckpt / "global_step_3" / "actor"), "--target_dir", str(hf_dir)],
        capture_output=True, text=True, timeout=600,
    )
    assert merge.returncode == 0, merge.stderr[-3000:]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(hf_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    ids = tok("Natalia sold clips", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]
    # three PPO updates moved the weights
    moved = max((a.float() - b.float()).abs().max().item()
                for a, b in zip(model.parameters(), base.parameters(), strict=True))
    assert moved > 0
    assert torch.isfinite(torch.stack([p.float().abs().max() for p in model.parameters()])).all()
