"""Writes the SYNTHETIC report fixtures in tests/data/report_synthetic_*/ (committed; rerun to regenerate).

Nothing here was measured: the training curves are smooth functions plus seeded noise, and the
"model outputs" are template sentences that give the gold answer or a wrong one with chosen
probabilities. They exist so `gsm8k-rl report` can be tested on a run with every metric, on a
base/trained pair with known fixed/broken problems, and on partial inputs. The outputs are
scored by the real scorer (gsm8k_rl.evaluation.metrics.score_output = gsm8k_rl.task.reward + extractors) and
summarised by the real gsm8k_rl.evaluation.metrics.summarize, so the fixture has the shape a real eval writes.

    .venv/bin/python tests/data/report_synthetic_make.py
"""

from __future__ import annotations

import json
import math
import random
import shutil
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = HERE / "report_synthetic_run"
BASE = HERE / "report_synthetic_eval_base"
TRAINED = HERE / "report_synthetic_eval_trained"
STEPS = 60
VAL_EVERY = 10


def _curve(step: int, start: float, end: float, rate: float = 0.08) -> float:
    return end + (start - end) * math.exp(-rate * step)


def make_run(rng: random.Random) -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(0, STEPS + 1):
        data: dict[str, float] = {}
        if step % VAL_EVERY == 0:  # val_before_train at step 0, then every VAL_EVERY steps
            # VERL 0.9.1's names for a float compute_score: the core metric is "acc", "reward" is aux
            acc = round(_curve(step, 0.62, 0.78) + rng.gauss(0, 0.005), 4)
            data["val-core/openai/gsm8k/acc/mean@1"] = acc
            data["val-aux/openai/gsm8k/reward/mean@1"] = acc
        if step >= 1:
            score = min(1.0, max(0.0, _curve(step, 0.55, 0.8) + rng.gauss(0, 0.03)))
            kl = 0.002 * (1 - math.exp(-0.05 * step)) + abs(rng.gauss(0, 0.0003))
            data.update({
                "critic/score/mean": score,
                "critic/rewards/mean": score - 0.001 * kl,
                "actor/reward_kl_penalty": kl,
                "actor/pg_loss": rng.gauss(0, 0.02),
                "actor/pg_clipfrac": abs(rng.gauss(0.002, 0.001)),
                "actor/entropy": _curve(step, 0.45, 0.3, 0.03) + rng.gauss(0, 0.01),
                "critic/vf_loss": _curve(step, 0.4, 0.05, 0.1) + abs(rng.gauss(0, 0.01)),
                # no rng draw: every other value stays as it was before this metric was added
                "critic/vf_explained_var": _curve(step, -0.8, 0.6, 0.06),
                "response_length/mean": _curve(step, 310, 240, 0.05) + rng.gauss(0, 8),
                "response_length/clip_ratio": max(0.0, _curve(step, 0.02, 0.002, 0.1) + rng.gauss(0, 0.002)),
                "timing_s/step": 95 + rng.gauss(0, 4),
                "timing_s/gen": 40 + rng.gauss(0, 2),
                "perf/throughput": 2100 + rng.gauss(0, 60),
                "actor/reward_kl_penalty_coeff": 0.001,
                "training/global_step": step,
            })
        lines.append(json.dumps({"step": step, "data": data}))
    (RUN / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (RUN / "run_info.json").write_text(json.dumps({
        "synthetic": True,
        "model": "synthetic/Qwen3-1.7B-stand-in",
        "config": "ppo",
        "n_gpus": 8,
        "hardware": "SYNTHETIC: 8x H200 (not a real run)",
        "start_time": "2025-01-01T00:00:00+00:00",
        "end_time": "2025-01-01T01:40:00+00:00",
    }, indent=2) + "\n")
    (RUN / "resolved_config.yaml").write_text(
        "# SYNTHETIC: a subset of a resolved VERL config, for the report test\n"
        "data: {train_batch_size: 128, max_response_length: 4096, "
        "apply_chat_template_kwargs: {enable_thinking: false}}\n"
        "actor_rollout_ref:\n  model: {path: synthetic/Qwen3-1.7B-stand-in}\n  actor: {optim: {lr: 1.0e-6}}\n"
        "  rollout: {n: 1}\n"
        "critic: {optim: {lr: 2.0e-6}}\n"
        "algorithm: {adv_estimator: gae, use_kl_in_reward: true, kl_ctrl: {kl_coef: 0.001}}\n"
        "reward: {reward_manager: {source: register, name: naive}}\n"
        f"trainer: {{total_training_steps: {STEPS}}}\n"
    )


def _output(rng: random.Random, gold: str, correct: bool) -> tuple[str, str]:
    """A synthetic model output and its finish reason."""
    if correct:
        return f"Step by step, the total comes to {gold}.\n#### {gold}", "stop"
    kind = rng.random()
    if kind < 0.6:
        return (f"Adding everything up gives {int(gold) + rng.randint(1, 9)}.\n"
                f"#### {int(gold) + rng.randint(1, 9)}"), "stop"
    if kind < 0.8:
        return "Let me think about this carefully. " * 3 + "First we need", "length"  # cut off, no number
    return f"The answer is {int(gold) * 2}.", "stop"


def make_evals(rng: random.Random) -> None:
    from gsm8k_rl.evaluation.metrics import INTERVAL_METHOD, score_output, summarize
    from gsm8k_rl.task.gsm8k import gold_number
    from gsm8k_rl.task.prompt import DEFAULT_TEMPLATE, DEFAULT_THINKING, PROMPT_VERSION, prompt_fingerprint

    smoke = resources.files("gsm8k_rl") / "assets" / "gsm8k_smoke" / "test.jsonl"
    rows = [json.loads(x) for x in smoke.read_text().splitlines()]
    # Outcome per problem (base right?, trained right?): 14 both right, 7 fixed, 2 broken, 9 both wrong.
    plan = [(True, True)] * 14 + [(False, True)] * 7 + [(True, False)] * 2 + [(False, False)] * 9
    rng.shuffle(plan)
    assert len(plan) == len(rows)
    for folder, which, name in ((BASE, 0, "base"), (TRAINED, 1, "trained")):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        samples = []
        for i, (row, outcome) in enumerate(zip(rows, plan, strict=True)):
            gold = gold_number(row["answer"])
            text, finish = _output(rng, gold, outcome[which])
            n_tokens = 4096 if finish == "length" else rng.randint(120, 400)
            samples.append({"index": i, "question": row["question"], "gold": gold, "output": text,
                            **score_output(text, gold), "n_prompt_tokens": 80, "n_output_tokens": n_tokens,
                            "finish_reason": finish, "scored_with": "synthetic"})
        (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
        settings = {"synthetic": True, "dataset": "gsm8k", "split": "test", "data_fingerprint": "synthetic-smoke-slice",
                    "prompt_fingerprint": prompt_fingerprint(DEFAULT_TEMPLATE, DEFAULT_THINKING),
                    "prompts_fingerprint": "synthetic-rendered-prompts", "backend": "synthetic", "dtype": "auto",
                    "thinking": DEFAULT_THINKING, "max_new_tokens": 4096}
        (folder / "eval_settings.json").write_text(json.dumps({"settings": settings, "settings_hash": "synthetic"},
                                                              indent=2) + "\n")
        metrics = {
            **summarize(samples, [{"gen_time_s": 12.5, "output_tokens": sum(s["n_output_tokens"] for s in samples)}]),
            "synthetic": True,
            "interval": INTERVAL_METHOD,
            "model": f"synthetic/{name}",
            "dataset": "gsm8k",
            "split": "test",
            "n_in_split": len(rows),
            "backend": "synthetic",
            "decoding": {"temperature": 0.0, "greedy": True, "max_new_tokens": 4096, "dtype": "bfloat16"},
            "prompt": {"template": DEFAULT_TEMPLATE, "thinking": DEFAULT_THINKING,
                       "fingerprint": prompt_fingerprint(DEFAULT_TEMPLATE, DEFAULT_THINKING),
                       "version": PROMPT_VERSION},
            "hardware": {"gpus": ["SYNTHETIC (no hardware)"]},
            "wall_time_s": 20.0,
        }
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    rng = random.Random(1234)
    make_run(rng)
    make_evals(rng)
    print(f"wrote {RUN}, {BASE}, {TRAINED}")
