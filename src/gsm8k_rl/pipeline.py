"""`gsm8k-rl run`: the whole job, each stage skipped when its output already exists.

    gsm8k-rl run --run-dir runs/ppo                       # GPU: hub model and data
    gsm8k-rl run --run-dir runs/ppo --source /data/gsm8k --model /models/Qwen3-1.7B
    gsm8k-rl run --smoke --run-dir runs/smoke             # CPU: tiny random model, minutes

prepare -> eval base -> train (PPO on VERL) -> export -> eval trained -> report.
`--response-length auto` sizes training's `data.max_response_length` from the base eval (the
smallest multiple of 128 tokens that covers 99% of the base model's greedy answers, generated up to
the config's length); both evals keep that cap, so base and trained are decoded alike.
A crashed run restarted with the same command continues: data and finished evals are kept,
training resumes from its last checkpoint, an interrupted eval resumes from its samples.
A finished eval folder (one made by an earlier attempt, or copied in to reuse a base eval) is kept
only when it was made with the settings this run's eval would use (model, data, prompt, decoding) and
holds every problem; one made with other settings is refused, naming each key that differs.
With no CUDA GPU (and no --smoke) it stops before spending anything and says what is needed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError, model_ref
from gsm8k_rl.cli import main as cli
from gsm8k_rl.common.files import write_atomic
from gsm8k_rl.launch.compose import DEFAULT_CONFIG, compose_config, config_names
from gsm8k_rl.launch.export import EXPORT_INFO
from gsm8k_rl.launch.layout import detect_hardware
from gsm8k_rl.launch.plan import model_path, no_gpu_message, smoke_assets
from gsm8k_rl.launch.run_dir import RunDir, default_run_dir, file_logged, latest_checkpoint, training_complete
from gsm8k_rl.task.datasets import DATASETS
from gsm8k_rl.task.prompt import DEFAULT_TEMPLATE

log = logging.getLogger(__name__)
ACCEPTS_OVERRIDES = True

SMOKE_EVAL_TOKENS = 32
SMOKE_EVAL = ["--backend", "transformers", "--limit", "8", "--max-new-tokens", str(SMOKE_EVAL_TOKENS)]
RESPONSE_LENGTH_FILE = "response_length.json"
RESPONSE_LENGTH_MULTIPLE = 128


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default=None, help="experiment folder (default: runs/<experiment_name>)")
    p.add_argument("--model", default=None, type=model_ref, help="hub id or local folder (default: the config's, "
                                                                 "Qwen/Qwen3-1.7B)")
    p.add_argument("--source", default=None, help="local GSM8K folder with train.jsonl/test.jsonl (default: the hub)")
    p.add_argument("--data", default=None,
                   help="where prepared parquet files go / are read (default: data/<prepare.dataset>, "
                        "plus _<prepare.template> for a prompt other than plain)")
    p.add_argument("--config", default=DEFAULT_CONFIG, choices=config_names())
    p.add_argument("--smoke", action="store_true", help="tiny random model on CPU: the same chain end to end")
    p.add_argument("--eval-backend", default="auto", choices=["auto", "vllm", "transformers"])
    p.add_argument("--eval-gpu-memory-utilization", type=float, default=0.9,
                   help="vLLM's share of the GPU in the eval stages (lower it when the GPU is shared, "
                        "e.g. with another run's training)")
    p.add_argument("--fast-path", choices=["auto", "on", "off"], default="auto",
                   help="passed to `gsm8k-rl train` (fused log-probs, packed micro-batches; see `gsm8k-rl train "
                        "--help`)")
    p.add_argument("--fused", choices=["auto", "liger", "triton", "torch"], default="auto",
                   help="passed to `gsm8k-rl train`")
    p.add_argument("--liger", choices=["auto", "on", "off"], default="auto", help="passed to `gsm8k-rl train`")
    p.add_argument("--attn", choices=["auto", "sdpa", "torch_varlen", "flash_attention_2"], default="auto",
                   help="passed to `gsm8k-rl train`")
    p.add_argument("--optimizer", choices=["adamw", "adamw8bit"], default=None,
                   help="passed to `gsm8k-rl train` (Adam state precision; see `gsm8k-rl train --help`)")
    p.add_argument("--platinum-source", default=None,
                   help="also evaluate on GSM8K-Platinum (a local folder, or 'hub' for madrylab/gsm8k-platinum)")
    p.add_argument("--response-length", choices=["config", "auto"], default="config",
                   help="training's data.max_response_length: 'config' keeps the config's (with the overrides); "
                        "'auto' sizes it from the base eval: the smallest multiple of 128 covering "
                        "--response-coverage of the base model's greedy answers, generated up to the config's "
                        "length, which both evals keep (written to RUN/response_length.json and the report)")
    p.add_argument("--response-coverage", type=float, default=0.99,
                   help="with --response-length auto: the share of the base eval's answers the length must cover")
    p.add_argument("overrides", nargs="*", default=[], help="VERL overrides for training, key=value")


def data_choice(cfg: Any) -> tuple[str, str]:
    """(dataset, prompt template) of the config's `prepare` block (the recipe's: gsm8k, plain)."""
    from omegaconf import OmegaConf

    return (OmegaConf.select(cfg, "prepare.dataset", default="gsm8k"),
            OmegaConf.select(cfg, "prepare.template", default=DEFAULT_TEMPLATE))


def default_data_dir(dataset: str, template: str) -> str:
    """data/gsm8k for the spec's data and prompt; another prompt gets its own folder.

    >>> default_data_dir("gsm8k", "plain"), default_data_dir("paper_mix", "paper")
    ('data/gsm8k', 'data/paper_mix_paper')
    """
    return f"data/{dataset}" + ("" if template == DEFAULT_TEMPLATE else f"_{template}")


def eval_source(dataset: str, source: str | None) -> list[str]:
    """`gsm8k-rl eval --source` for the GSM8K test split of a run whose training data is `dataset`
    (task/datasets.py says where that split lies under the training data's --source).

    The paper's mix is read from one folder holding gsm8k/, math/ and openr1/ (`prepare --dataset
    paper_mix --source`); its test split is GSM8K's, which eval reads from gsm8k/. A MATH-only run
    is still evaluated on GSM8K, from the hub.
    """
    if source is None:
        return []
    where = DATASETS[dataset].gsm8k_test_in if dataset in DATASETS else ""
    if where is None:
        log.warning("--source %s holds %s, not GSM8K; the GSM8K evals read GSM8K from the hub", source, dataset)
        return []
    return ["--source", str(Path(source) / where) if where else source]


def eval_options(args: argparse.Namespace, cfg: Any, dataset: str, template: str) -> tuple[list[str], list[str]]:
    """`gsm8k-rl eval` options for both models: the prompt, thinking flag and token budget of training
    (with --response-length auto: the config's length, the cap the training length was sized under)."""
    thinking = bool(cfg["data"]["apply_chat_template_kwargs"].get("enable_thinking", True))
    opts = ["--thinking" if thinking else "--no-thinking", "--template", template]
    if args.smoke:
        from gsm8k_rl.launch.smoke import SMOKE_DATA

        return opts + SMOKE_EVAL, ["--source", str(SMOKE_DATA)]
    opts += ["--backend", args.eval_backend, "--max-new-tokens", str(cfg["data"]["max_response_length"]),
             "--gpu-memory-utilization", str(args.eval_gpu_memory_utilization)]
    return opts, eval_source(dataset, args.source)


def size_response_length(samples: list[dict], cap: int, coverage: float = 0.99,
                         multiple: int = RESPONSE_LENGTH_MULTIPLE) -> dict[str, Any]:
    """Training's response length from the base model's greedy answers: the smallest multiple of
    `multiple` at or above their `coverage` quantile (an observed length), at most `cap`.

    Why: the recipe's 4096 tokens are the spec's ceiling, but each PPO step waits for its longest
    answer and pays for its padding; a model that answers in ~300 tokens trains as well and far
    faster at a length that still lets 99% of its answers finish.

    >>> r = size_response_length([{"n_output_tokens": n, "finish_reason": "stop"} for n in range(1, 1001)], cap=1024)
    >>> r["quantile_tokens"], r["chosen"], r["covered"]
    (991, 1024, 1.0)
    >>> size_response_length([{"n_output_tokens": n, "finish_reason": "stop"} for n in (200, 300, 574)], 1024)["chosen"]
    640
    """
    if not 0 < coverage <= 1:
        raise UserError(f"--response-coverage must be in (0, 1], got {coverage}")
    if not samples:
        raise UserError("the base eval holds no samples: cannot size the response length from it")
    import numpy as np

    lengths = np.array([int(s["n_output_tokens"]) for s in samples])
    quantile = int(np.quantile(lengths, coverage, method="higher"))
    chosen = min(cap, math.ceil(quantile / multiple) * multiple)
    at_cap = sum(s["finish_reason"] == "length" for s in samples) / len(samples)
    return {
        "rule": f"smallest multiple of {multiple} >= the {coverage:g} quantile of the base eval's answer lengths, "
                f"at most the eval cap",
        "cap": cap, "coverage": coverage, "multiple": multiple, "n": int(len(lengths)),
        "quantile_tokens": quantile, "chosen": int(chosen),
        "covered": float((lengths <= chosen).mean()),
        "base_truncated_at_cap": at_cap,
        "length_tokens": {"mean": float(lengths.mean()), "p50": float(np.percentile(lengths, 50)),
                          "p90": float(np.percentile(lengths, 90)), "p99": float(np.percentile(lengths, 99)),
                          "max": int(lengths.max())},
    }


def sized_response_length(run: RunDir, base_eval: Path, cap: int, coverage: float) -> int:
    """Size from the finished base eval, record it in RUN/response_length.json, return the length."""
    from gsm8k_rl.evaluation.run import SAMPLES, read_samples

    record = size_response_length(list(read_samples(base_eval / SAMPLES).values()), cap, coverage)
    record["base_eval"] = str(base_eval)
    if record["base_truncated_at_cap"] > 1 - coverage:
        log.warning("%.1f%% of the base model's answers reached the cap of %d tokens: the response length cannot "
                    "be sized below it; raise data.max_response_length to measure their real length",
                    100 * record["base_truncated_at_cap"], cap)
    run.root.mkdir(parents=True, exist_ok=True)
    write_atomic(run.root / RESPONSE_LENGTH_FILE, json.dumps(record, indent=2) + "\n")
    print(f"\n=== response length: {record['chosen']} tokens for training ({record['covered']:.1%} of the "
          f"{record['n']} base answers fit; their {coverage:g} quantile is {record['quantile_tokens']}; "
          f"eval cap {cap}) -> {run.root / RESPONSE_LENGTH_FILE}", flush=True)
    return int(record["chosen"])


def _stage(name: str, argv: list[str]) -> None:
    print(f"\n=== {name}: gsm8k-rl {' '.join(argv)}", flush=True)
    rc = cli(argv)
    if rc != 0:
        raise UserError(f"stage '{name}' failed (exit {rc}); fix it and re-run the same command to continue")


REUSE_FIX = "delete that folder to evaluate again with this run's settings, or use a new --run-dir"


def _eval_stage(name: str, argv: list[str]) -> None:
    """Run `gsm8k-rl eval` (argv), unless its --out is a finished eval made with the settings this
    command would use (then it is kept as it is: no model loaded, nothing rewritten). A finished folder
    made with other settings (e.g. a base eval copied in from a run with another model or token cap)
    is refused, naming each key that differs; an unfinished one is resumed by the stage."""
    from gsm8k_rl.evaluation import run as ev

    parser = argparse.ArgumentParser(prog="gsm8k-rl eval")
    ev.add_arguments(parser)
    args = parser.parse_args(argv[1:])  # the stage's own options, as the stage parses them
    out = Path(args.out)
    if (out / ev.METRICS).exists():
        try:
            why = ev.unfinished(args.model, out, fix=REUSE_FIX, **ev.settings_options(args))
        except UserError as exc:
            raise UserError(f"{name}: {exc}") from exc
        if why is None:
            print(f"\n=== {name}: already done, settings match ({out}), reused", flush=True)
            return
        print(f"\n=== {name}: resuming {out}: {why}", flush=True)
    _stage(name, argv)


def _done(path: Path, what: str) -> bool:
    if path.exists():
        print(f"\n=== {what}: already done ({path}), skipped", flush=True)
        return True
    return False


def run(args: argparse.Namespace) -> int:
    if not args.smoke and detect_hardware() is None:
        raise UserError(no_gpu_message().replace("gsm8k-rl train --backend local --smoke --run-dir runs/smoke",
                                                 "gsm8k-rl run --smoke --run-dir runs/smoke"))
    overrides = list(args.overrides)
    # the config's `prepare` block: what data and prompt it trains on, hence what eval must use
    composed = compose_config(args.config, overrides)
    dataset, template = data_choice(composed)
    data = args.data or default_data_dir(dataset, template)
    train_args = ["train", "--config", args.config, "--data", data,
                  "--fast-path", args.fast_path, "--fused", args.fused, "--liger", args.liger, "--attn", args.attn]
    if args.model:
        train_args += ["--model", args.model]
    if args.optimizer:
        train_args += ["--optimizer", args.optimizer]
    if args.smoke:
        train_args += ["--smoke", "--backend", "local"]

    # 1. data (smoke: `train --smoke` prepares the shipped slice inside the run folder)
    # test.parquet is written after train.parquet, each renamed into place whole
    # (data prepared with another prompt is refused by the plan below: prepare_info.json)
    if not args.smoke and not _done(Path(data) / "test.parquet", "prepare"):
        _stage("prepare", ["prepare", "--out", data, "--dataset", dataset, "--template", template]
               + (["--source", args.source] if args.source else []))

    # The training plan decides the model, the run folder and the chat-template flag; eval reuses them.
    run = RunDir(Path(args.run_dir) if args.run_dir else default_run_dir(composed))
    evals = run.root / "eval"
    if args.response_length == "auto":
        # the base eval comes first: its answers size training's length, which the plan then fixes.
        # Its model, prompt and cap are the composed config's (what the plan would give it).
        from omegaconf import OmegaConf

        eval_cfg = OmegaConf.to_container(composed, resolve=True)
        if args.smoke:
            model = smoke_assets(run, None, args.model, template)[1]
        else:
            model = model_path(args.model) if args.model else eval_cfg["actor_rollout_ref"]["model"]["path"]
        eval_opts, eval_src = eval_options(args, eval_cfg, dataset, template)
        cap = SMOKE_EVAL_TOKENS if args.smoke else int(eval_cfg["data"]["max_response_length"])
        _eval_stage("eval base", ["eval", "--model", model, "--out", str(evals / "base")] + eval_opts + eval_src)
        length = sized_response_length(run, evals / "base", cap, args.response_coverage)
        # last: it wins over the config and the user's own data.max_response_length (the cap)
        overrides = overrides + [f"data.max_response_length={length}"]
    _stage("plan", train_args + ["--run-dir", str(run.root), "--dry-run"] + overrides)
    cfg = run.config()
    if args.response_length == "auto":
        if cfg["actor_rollout_ref"]["model"]["path"] != model:
            raise UserError(f"the plan trains {cfg['actor_rollout_ref']['model']['path']}, the base eval "
                            f"evaluated {model}: pass --model")
    else:
        model = cfg["actor_rollout_ref"]["model"]["path"]
        eval_opts, eval_src = eval_options(args, cfg, dataset, template)
    eval_common = eval_opts + eval_src

    # 2. base model (with --response-length auto: done above, with these options)
    if args.response_length != "auto":
        _eval_stage("eval base", ["eval", "--model", model, "--out", str(evals / "base")] + eval_common)

    # 3. PPO (resumes from the last checkpoint when interrupted)
    total = int(cfg["trainer"]["total_training_steps"])
    ckpt = latest_checkpoint(run)
    # done = the final checkpoint AND its step logged (a kill between VERL's save and its log line
    # leaves the checkpoint alone; `train` then re-runs that step)
    if training_complete(run, total, logged=file_logged(cfg["trainer"].get("logger"))):
        print(f"\n=== train: already done ({ckpt}), skipped", flush=True)
    else:
        _stage("train", train_args + ["--run-dir", str(run.root)] + overrides)

    # 4. export the final checkpoint
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise UserError(f"training wrote no checkpoint in {run.checkpoints}; check trainer.save_freq")
    exported = run.export / ckpt.name
    # export_info.json is written last; a folder without it (an older, in-place export that was
    # interrupted) is replaced
    if not _done(exported / EXPORT_INFO, "export"):
        _stage("export", ["export", "--run-dir", str(run.root), "--out", str(exported)]
               + (["--overwrite"] if exported.exists() else []))

    # 5. trained model, same prompt and decoding
    _eval_stage("eval trained", ["eval", "--model", str(exported), "--out", str(evals / "trained")] + eval_common)
    extra = []
    if args.platinum_source:
        src = [] if args.platinum_source == "hub" else ["--source", args.platinum_source]
        for name, m in (("base", model), ("trained", str(exported))):
            out = evals / f"platinum_{name}"
            _eval_stage(f"eval platinum {name}", ["eval", "--model", m, "--out", str(out), "--dataset", "platinum"]
                        + eval_opts + src)
            extra += ["--eval", f"platinum_{name}={out}"]

    # 6. report (always rebuilt: cheap, and reflects every stage above)
    _stage("report", ["report", "--run", str(run.root), "--base-eval", str(evals / "base"),
                      "--trained-eval", str(evals / "trained"), "--out", str(run.root / "report")] + extra)
    summary = {k: json.loads((evals / k / "metrics.json").read_text()).get("accuracy") for k in ("base", "trained")}
    print(f"\ndone: {run.root / 'report' / 'report.md'}  accuracy {summary}")
    return 0
