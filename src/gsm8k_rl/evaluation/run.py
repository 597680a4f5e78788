"""`gsm8k-rl eval`: greedy GSM8K (or GSM8K-Platinum) evaluation with the training prompt.

Run: `gsm8k-rl eval --model Qwen/Qwen3-1.7B --source ../shared/data/gsm8k --out evals/base`
(`--dataset platinum --source ../shared/data/gsm8k_platinum` for GSM8K-Platinum,
`--dataset gsm_symbolic_p1` / `gsm_symbolic_p2` for GSM-Symbolic; no --source downloads the hub copy).

The prompt is rendered exactly as VERL renders it in training (gsm8k_rl.task.prompt: same messages,
same chat-template kwargs, thinking flag included) and every output is scored by the training
reward (gsm8k_rl.task.reward), so eval accuracy and training reward mean the same thing.
Also scored, side by side, under every extractor in gsm8k_rl.task.extractors (headline = "ours").

`--samples K --temperature T --seed S` samples K answers per problem instead (one line per problem
holding all K) and reports pass@k for k = 1..K (the unbiased estimator from K samples) and maj@k
(majority vote of the extracted answers, scored by the same checker): does training raise pass@1 by
widening what the model can solve, or by narrowing it (pass@k at large k falls)?

Writes to --out: `samples.jsonl` (one line per problem, appended and flushed per batch),
`batches.jsonl` (timing of each generated batch), `eval_settings.json` (what defines the outputs,
with its hash) and `metrics.json`. An interrupted eval resumes: problems already in samples.jsonl
are skipped; a folder made with different settings is refused. `unfinished()` is the same check
without writing anything: `gsm8k-rl run` reuses a finished eval folder only when it passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError, model_ref
from gsm8k_rl.common.environment import hardware, package_versions
from gsm8k_rl.common.files import read_jsonl, write_atomic
from gsm8k_rl.common.generation import stop_token_ids
from gsm8k_rl.evaluation.backends import (
    BACKENDS,
    DEFAULT_HF_BATCH_SIZE,
    DTYPES,
    Sampling,
    TransformersBackend,
    VLLMBackend,
    resolve_backend,
    sampling_of,
)
from gsm8k_rl.evaluation.metrics import sample_summary, score_output, scoring_fingerprint, summarize
from gsm8k_rl.task.datasets import gsm8k_format
from gsm8k_rl.task.prompt import (
    DEFAULT_TEMPLATE,
    DEFAULT_THINKING,
    PROMPT_VERSION,
    TEMPLATES,
    build_messages,
    chat_template_kwargs,
    prompt_fingerprint,
    render,
)

log = logging.getLogger(__name__)

# the sets in GSM8K's format (task/datasets.py): GSM8K, GSM8K-Platinum, GSM-Symbolic P1 / P2
DATASETS = gsm8k_format()
DEFAULT_MAX_NEW_TOKENS = 4096

SAMPLES = "samples.jsonl"
BATCHES = "batches.jsonl"
SETTINGS = "eval_settings.json"
METRICS = "metrics.json"



def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def model_fingerprint(model: str) -> str:
    """Content identity of a model: a local folder by config + weight file names/sizes, a hub id by name."""
    path = Path(model)
    if not path.is_dir():
        return f"hub:{model}"
    config = path / "config.json"
    if not config.is_file():
        raise UserError(f"{path} has no config.json: --model must be a HuggingFace model folder or a hub id")
    weights = sorted((f.name, f.stat().st_size) for f in path.iterdir() if f.suffix in {".safetensors", ".bin", ".pt"})
    if not weights:
        raise UserError(f"{path} has no weight files (*.safetensors / *.bin): export the checkpoint first")
    return _sha({"config": config.read_text(), "weights": weights})


def read_samples(path: Path, cut_torn: bool = True) -> dict[int, dict]:
    """Samples already written, by index. A half-written last line (a killed run) is dropped with a
    warning, and cut off the file unless `cut_torn` is False (a check that writes nothing)."""
    if not path.exists():
        return {}
    samples: dict[int, dict] = {}
    for lineno, row in read_jsonl(path, cut_torn=cut_torn, hint="remove the line or use a new --out"):
        try:
            index = int(row["index"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}:{lineno}: not a sample line ({exc}); remove the line or use a new --out") from exc
        if index in samples:
            raise UserError(f"{path}:{lineno}: index {index} appears twice; remove one of the lines or use a new --out")
        samples[index] = row
    return samples


def settings_match(out: Path, settings: dict[str, Any], fix: str | None = None) -> bool:
    """Check the folder's settings header against `settings`, reading only: True when it matches,
    False when the folder has neither a header nor samples (nothing made yet). A header that differs
    is refused with a UserError naming each differing key (`key: old -> new`), as are an unreadable
    header and samples without one; `fix` replaces the message's advice (default: `gsm8k-rl eval`'s)."""
    header = out / SETTINGS
    digest = _sha(settings)
    if header.exists():
        try:
            old = json.loads(header.read_text())
            old_settings, old_hash = old["settings"], old["settings_hash"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise UserError(f"{header} is unreadable ({exc}); {fix or 'use a new --out'}") from exc
        if old_hash != digest:
            diff = [
                f"{k}: {old_settings.get(k)!r} -> {settings.get(k)!r}"
                for k in sorted(set(old_settings) | set(settings))
                if old_settings.get(k) != settings.get(k)
            ]
            raise UserError(
                f"{out} holds samples made with different settings ({'; '.join(diff) or 'hash differs'}); "
                f"{fix or 'use a new --out, or delete the folder to start over'}"
            )
        return True
    if (out / SAMPLES).exists():
        raise UserError(f"{out / SAMPLES} exists but {header} does not, so its settings are unknown; "
                        f"{fix or 'use a new --out'}")
    return False


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write the settings header, or check an existing one matches (the resume guard)."""
    if settings_match(out, settings):
        return
    out.mkdir(parents=True, exist_ok=True)
    # whole or absent: a torn header would make every restart refuse the folder as "unreadable"
    write_atomic(out / SETTINGS, json.dumps({"settings": settings, "settings_hash": _sha(settings)}, indent=2) + "\n")


# ---------------------------------------------------------------- what an eval is made from


@dataclasses.dataclass
class EvalSettings:
    """What an eval's outputs are made from, worked out without loading the model."""

    settings: dict[str, Any]  # eval_settings.json: a folder made with other settings is refused
    rows: list[dict]  # the whole split
    selected: range  # the problems evaluated (--limit)
    tokenizer: Any
    tokenizer_path: str
    prompts: list[list[int]]  # token ids of every row's prompt
    backend: str  # "auto" resolved
    sampling: Sampling | None  # None: greedy


def _check_options(dataset: str, template: str, max_new_tokens: int, limit: int | None,
                   batch_size: int | None = None) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown --dataset {dataset!r}; choose one of {DATASETS}")
    if template not in TEMPLATES:
        raise UserError(f"unknown --template {template!r}; choose one of {sorted(TEMPLATES)}")
    if max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")


def eval_settings(
    model: str,
    *,
    dataset: str = "gsm8k",
    source: str | Path | None = None,
    split: str = "test",
    limit: int | None = None,
    backend: str = "auto",
    template: str = DEFAULT_TEMPLATE,
    thinking: bool = DEFAULT_THINKING,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    dtype: str = "auto",
    tokenizer: str | None = None,
    samples: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    seed: int = 0,
) -> EvalSettings:
    """The settings an eval of `model` with these options is made with (what eval_settings.json holds),
    with the split, tokenizer and prompts they were computed from. Loads the tokenizer, not the model."""
    from transformers import AutoTokenizer

    from gsm8k_rl.task.gsm8k import load_gsm8k_split

    _check_options(dataset, template, max_new_tokens, limit)
    sampling = sampling_of(samples, temperature, top_p, seed)
    rows = load_gsm8k_split(None if source is None else str(source), split, dataset)
    tokenizer_path = tokenizer or model
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {tokenizer_path!r} ({exc}); pass --tokenizer DIR") from exc
    # Prompts of the whole split (not just --limit), so the settings hash does not depend on --limit.
    prompts = [
        tok(render(tok, build_messages(r["question"], template), thinking), add_special_tokens=False)["input_ids"]
        for r in rows
    ]
    backend = resolve_backend(backend)
    settings = {
        "model_fingerprint": model_fingerprint(model),
        "dataset": dataset,
        "split": split,
        "data_fingerprint": _sha(rows),
        "prompts_fingerprint": _sha(prompts),  # covers template, thinking and the tokenizer's chat template
        "prompt_fingerprint": prompt_fingerprint(template, thinking),
        "prompt_version": PROMPT_VERSION,
        "template": template,
        "thinking": thinking,
        "backend": backend,
        "dtype": dtype,
        "max_new_tokens": max_new_tokens,
        "temperature": 0.0,
    }
    if sampling is not None:  # greedy folders keep the settings (and hash) they always had
        settings.update(temperature=sampling.temperature, samples=sampling.n, top_p=sampling.top_p, seed=sampling.seed)
    selected = range(len(rows) if limit is None else min(limit, len(rows)))
    return EvalSettings(settings, rows, selected, tok, tokenizer_path, prompts, backend, sampling)


def _check_rows(out: Path, done: dict[int, dict], rows: list[dict], dataset: str, split: str) -> None:
    for i, s in done.items():
        if not 0 <= i < len(rows) or s.get("question") != rows[i]["question"]:
            raise UserError(f"{out / SAMPLES}: sample {i} does not match row {i} of the {dataset} {split} split")


def unfinished(model: str, out: str | Path, *, fix: str | None = None, **options: Any) -> str | None:
    """Why `out` is not a finished eval that `evaluate(model, out, **options)` would leave as it is, or
    None when it is one (reuse it as it stands). Finished: metrics.json, the settings these options give
    (a folder made with others is refused: settings_match's UserError, naming each differing key, with
    `fix` as its advice), a sample for every selected problem, every sample scored by today's scoring
    code, metrics over the selected problems. Anything else is resumed by evaluate(). Writes nothing
    and loads no model (the tokenizer, to render the prompts the settings cover)."""
    out = Path(out)
    if not (out / METRICS).is_file():
        return f"no {METRICS}"
    s = eval_settings(model, **options)
    if not settings_match(out, s.settings, fix):
        return f"no {SETTINGS}"
    done = read_samples(out / SAMPLES, cut_torn=False)
    _check_rows(out, done, s.rows, options.get("dataset", "gsm8k"), options.get("split", "test"))
    missing = [i for i in s.selected if i not in done]
    if missing:
        return f"no sample for {len(missing)} of its {len(s.selected)} problems"
    stale = _stale(done)
    if stale:
        return f"{len(stale)} sample(s) scored by other scoring code, to rescore (nothing to generate)"
    try:
        n = json.loads((out / METRICS).read_text()).get("n")
    except json.JSONDecodeError:
        return f"{METRICS} is unreadable"
    if n != len(s.selected):
        return f"its {METRICS} covers {n} problems, not the {len(s.selected)} selected"
    return None


# ---------------------------------------------------------------- the evaluation


def evaluate(
    model: str,
    out: str | Path,
    *,
    dataset: str = "gsm8k",
    source: str | Path | None = None,
    split: str = "test",
    limit: int | None = None,
    backend: str = "auto",
    template: str = DEFAULT_TEMPLATE,
    thinking: bool = DEFAULT_THINKING,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int | None = None,
    dtype: str = "auto",
    tokenizer: str | None = None,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    samples: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate `model` on a GSM8K split, greedily (the default) or with `samples` sampled answers per
    problem; write samples/metrics to `out`; return the metrics."""
    from tqdm import tqdm

    from gsm8k_rl.task.extractors import check_installed

    started = time.time()
    out = Path(out)
    _check_options(dataset, template, max_new_tokens, limit, batch_size)
    sampling_of(samples, temperature, top_p, seed)  # refused now, before the scorer check
    missing = check_installed()
    if missing:  # found now, not after the whole split is generated and the first answer is scored
        raise UserError(
            f"scoring needs {', '.join(missing)}, not installed here: pip install {' '.join(missing)} "
            "(dependencies of gsm8k-rl; an offline wheelhouse must include them)"
        )
    made = eval_settings(
        model, dataset=dataset, source=source, split=split, limit=limit, backend=backend, template=template,
        thinking=thinking, max_new_tokens=max_new_tokens, dtype=dtype, tokenizer=tokenizer, samples=samples,
        temperature=temperature, top_p=top_p, seed=seed,
    )
    settings, rows, selected, prompts = made.settings, made.rows, made.selected, made.prompts
    tok, tokenizer_path, backend, sampling = made.tokenizer, made.tokenizer_path, made.backend, made.sampling
    check_settings(out, settings)
    done = read_samples(out / SAMPLES)
    read_batches(out / BATCHES)  # cuts a torn last line now, before new batches are appended to it
    _check_rows(out, done, rows, dataset, split)
    todo = [i for i in selected if i not in done]
    log.info("%s: %d of %d problems already done, %d to generate", out, len(selected) - len(todo), len(selected),
             len(todo))

    stops = stop_token_ids(model, tok)
    if todo:
        if backend == "vllm":
            engine: TransformersBackend | VLLMBackend = VLLMBackend(
                model, tokenizer_path, dtype, max_new_tokens, stops, tensor_parallel_size, gpu_memory_utilization,
                max_model_len, sampling,
            )
            size = batch_size or len(todo)
        else:
            engine = TransformersBackend(model, tok, dtype, max_new_tokens, stops, sampling)
            size = batch_size or DEFAULT_HF_BATCH_SIZE[engine.device]
            todo.sort(key=lambda i: len(prompts[i]))  # less left padding per batch
        batches = [todo[k : k + size] for k in range(0, len(todo), size)]
        try:
            for batch in tqdm(batches, desc=f"eval {dataset}/{split}", unit="batch", disable=len(batches) < 2):
                done.update(_generate_batch(engine, batch, prompts, rows, out))
        finally:
            engine.close()

    _rescore_stale(out, done)
    chosen = [done[i] for i in selected]
    batch_log = read_batches(out / BATCHES)
    # the dtype "auto" resolved to, as recorded by the last batch generated into this folder
    resolved_dtype = next((b["dtype"] for b in reversed(batch_log) if b.get("dtype")), dtype)
    metrics = {
        **summarize(chosen, batch_log),
        "model": model,
        "tokenizer": tokenizer_path,
        "dataset": dataset,
        "split": split,
        "source": str(source) if source is not None else "hub",
        "n_in_split": len(rows),
        "limit": limit,
        "backend": backend,
        "decoding": {
            "temperature": 0.0 if sampling is None else sampling.temperature,
            "greedy": sampling is None,
            **({} if sampling is None else {"samples": sampling.n, "top_p": sampling.top_p, "seed": sampling.seed}),
            "max_new_tokens": max_new_tokens,
            "stop_token_ids": stops,
            "dtype": resolved_dtype,
            "batch_size": batch_size,
            "tensor_parallel_size": tensor_parallel_size if backend == "vllm" else None,
            "gpu_memory_utilization": gpu_memory_utilization if backend == "vllm" else None,
        },
        "prompt": {
            "template": template,
            "template_text": TEMPLATES[template],
            "thinking": thinking,
            "chat_template_kwargs": chat_template_kwargs(thinking),
            "fingerprint": prompt_fingerprint(template, thinking),
            "version": PROMPT_VERSION,
        },
        "scoring_fingerprint": scoring_fingerprint(),
        "settings_hash": _sha(settings),
        "resumed_samples": len(selected) - len(todo),
        "generated_samples": len(todo),
        "wall_time_s": time.time() - started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "versions": package_versions(),
    }
    # metrics.json marks the folder finished (`gsm8k-rl run` reuses it when unfinished() finds nothing amiss):
    # renamed into place whole
    write_atomic(out / METRICS, json.dumps(metrics, indent=2) + "\n")
    return metrics


def read_batches(path: Path) -> list[dict]:
    """The batch timing log; a half-written last line (a killed run) is cut off, as in read_samples."""
    if not path.exists():
        return []
    return [record for _, record in read_jsonl(path, cut_torn=True, hint="remove the line or use a new --out")]


def _generate_batch(
    engine: TransformersBackend | VLLMBackend, batch: list[int], prompts: list[list[int]], rows: list[dict], out: Path
) -> dict[int, dict]:
    """Generate and score one batch; append its samples and timing to the folder, flushed (the resume point)."""
    from gsm8k_rl.task.gsm8k import gold_number

    t0 = time.time()
    answers = engine.generate([prompts[i] for i in batch], first_index=batch[0])
    gen_time = time.time() - t0
    new: dict[int, dict] = {}
    for i, gens in zip(batch, answers, strict=True):
        gold = gold_number(rows[i]["answer"])
        head = {"index": i, "question": rows[i]["question"], "gold": gold}
        if getattr(engine, "sampling", None) is None and len(gens) == 1:  # greedy: the answer's fields in the row
            g = gens[0]
            new[i] = {**head, "output": g.text, **score_output(g.text, gold), "n_prompt_tokens": len(prompts[i]),
                      "n_output_tokens": g.n_tokens, "finish_reason": g.finish_reason,
                      "scored_with": scoring_fingerprint()}
        else:  # sampled: all answers of the problem in one row, and what they add up to
            drawn = [{"output": g.text, **score_output(g.text, gold), "n_output_tokens": g.n_tokens,
                      "finish_reason": g.finish_reason} for g in gens]
            new[i] = {**head, "n_prompt_tokens": len(prompts[i]), "samples": drawn, **sample_summary(drawn),
                      "scored_with": scoring_fingerprint()}
    # one write per batch: a kill leaves whole batches plus at most one half line (cut on resume)
    with (out / SAMPLES).open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in new.values()))
    record = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": engine.name,
        "dtype": engine.dtype,
        "size": len(batch),
        "gen_time_s": gen_time,
        "output_tokens": sum(g.n_tokens for gens in answers for g in gens),
    }
    with (out / BATCHES).open("a") as f:
        f.write(json.dumps(record) + "\n")
    return new


def _stale(samples: dict[int, dict]) -> list[int]:
    """Indices of the samples scored by other scoring code than today's."""
    current = scoring_fingerprint()
    return [i for i, s in samples.items() if s.get("scored_with") != current]


def _rescore_stale(out: Path, samples: dict[int, dict]) -> None:
    """Rescore samples written by older scoring code; rewrite samples.jsonl (atomically) if any changed."""
    current = scoring_fingerprint()
    stale = _stale(samples)
    if not stale:
        return
    changed = 0
    for i in stale:
        s = samples[i]
        if "samples" in s:  # a sampled row: every answer, then what they add up to
            before = [x["score"] for x in s["samples"]]
            for x in s["samples"]:
                x.update(score_output(x["output"], s["gold"]))
            s.update(sample_summary(s["samples"]), scored_with=current)
            changed += before != [x["score"] for x in s["samples"]]
            continue
        new = score_output(s["output"], s["gold"])
        changed += any(s.get(k) != v for k, v in new.items())
        s.update(new, scored_with=current)
    log.warning(
        "%s: %d samples were scored by other scoring code; rescored them (%d changed) and rewrote %s",
        out, len(stale), changed, SAMPLES,
    )
    write_atomic(out / SAMPLES, "".join(json.dumps(samples[i], ensure_ascii=False) + "\n" for i in sorted(samples)))


# ---------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=model_ref, help="hub id or local HF model folder (base model or "
                                                                  "exported PPO checkpoint)")
    p.add_argument("--out", required=True, help="output folder (samples.jsonl, metrics.json); an existing one is "
                                                "resumed")
    p.add_argument("--dataset", choices=DATASETS, default="gsm8k",
                   help="gsm8k (1319 test), platinum (GSM8K-Platinum, 1209), gsm_symbolic_p1 / gsm_symbolic_p2 "
                        "(GSM-Symbolic)")
    p.add_argument("--source", default=None, help="local folder with {split}.jsonl (default: the hub copy of "
                                                  "--dataset)")
    p.add_argument("--split", default="test", help="split file to read (default: test)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N problems")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: vllm when CUDA and vLLM are present, "
                                                                       "else transformers")
    p.add_argument("--template", choices=sorted(TEMPLATES), default=DEFAULT_TEMPLATE,
                   help="prompt template, system and user turn (as in training)")
    p.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=DEFAULT_THINKING,
                   help="Qwen3 thinking mode (enable_thinking chat-template kwarg; as in training)")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                   help="generation budget per problem; hitting it counts as truncated (default: "
                        f"{DEFAULT_MAX_NEW_TOKENS})")
    p.add_argument("--batch-size", type=int, default=None,
                   help="problems per generate call and per resume checkpoint (default: all for vllm; "
                        f"transformers: {DEFAULT_HF_BATCH_SIZE['cuda']} on GPU, {DEFAULT_HF_BATCH_SIZE['cpu']} on CPU)")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: the checkpoint's (vllm); bfloat16 on GPU / "
                                                                   "float32 on CPU (transformers)")
    p.add_argument("--tokenizer", default=None, type=model_ref, help="tokenizer folder/id if not the model's")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm only")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm only")
    p.add_argument("--max-model-len", type=int, default=None, help="vllm only (default: the model's)")
    p.add_argument("--samples", type=int, default=1,
                   help="answers per problem: 1 (default) is the greedy eval; K > 1 samples K answers and reports "
                        "pass@k and maj@k for k = 1..K")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: 0 = greedy with --samples 1, 1.0 with --samples > 1)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (with a temperature > 0)")
    p.add_argument("--seed", type=int, default=0,
                   help="sampling seed (vllm: per request, so the samples do not depend on the batch; "
                        "transformers: per batch)")


# the options of `gsm8k-rl eval` that eval_settings() takes: what the outputs are made from
SETTINGS_OPTIONS = ("dataset", "source", "split", "limit", "backend", "template", "thinking", "max_new_tokens", "dtype",
                    "tokenizer", "samples", "temperature", "top_p", "seed")


def settings_options(args: argparse.Namespace) -> dict[str, Any]:
    """eval_settings()'s (and unfinished()'s) keyword arguments from parsed `gsm8k-rl eval` options."""
    return {k: getattr(args, k) for k in SETTINGS_OPTIONS}


def run(args: argparse.Namespace) -> int:
    m = evaluate(
        args.model,
        args.out,
        **settings_options(args),
        batch_size=args.batch_size,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
    )
    lo, hi = m["accuracy_ci95"]
    print(f"{m['model']} on {m['dataset']}/{m['split']} (n={m['n']}, {m['backend']}): "
          f"accuracy {m['accuracy']:.4f} [{lo:.4f}, {hi:.4f}] ({m['interval']})")
    for name, e in m["extractors"].items():
        print(f"  {name:<18} {e['accuracy']:.4f}")
    if "pass_at_k" in m:
        shown = sorted({1, 2, 4, 8, 16, 32, 64, m["samples_per_problem"]} & set(range(1, m["samples_per_problem"] + 1)))
        print("  k        " + " ".join(f"{k:>6}" for k in shown))
        print("  pass@k   " + " ".join(f"{m['pass_at_k'][str(k)]:6.4f}" for k in shown))
        print("  maj@k    " + " ".join(f"{m['maj_at_k'][str(k)]:6.4f}" for k in shown))
    print(f"  no answer {m['no_answer_rate']:.4f}  truncated {m['truncation_rate']:.4f}  "
          f"mean output {m['output_tokens']['mean']:.0f} tokens  -> {Path(args.out) / METRICS}")
    return 0
