"""Greedy-generation throughput of the transformers eval backend at true Qwen3-1.7B scale.

Why: `gsm8k-rl eval` can decode with plain `transformers.generate` when vLLM is absent; this
measures what that costs on a GPU for the real architecture and the real prompts, so the wall
time of a full GSM8K test pass (1319 prompts) can be projected before anyone waits for it.

The model is built with `AutoModelForCausalLM.from_config` (random weights, bf16, sdpa): speed
and memory are those of the real model, the text is noise. Random weights never emit EOS on
purpose, so every sequence is forced to exactly N new tokens (min_new_tokens = max_new_tokens).
Prompts are the GSM8K test questions rendered by `gsm8k_rl.task.prompt` with the model's own chat
template (thinking off), left-padded, sorted by length as a batched evaluator would do.

Run (GPU; MODEL_DIR holds config.json + tokenizer files, no weights needed):
    PYTHONPATH=src python experiments/eval_throughput.py --model-dir MODEL_DIR \
        --data ../shared/data/gsm8k/test.jsonl --points 64:300 128:300 256:300 256:1000:1
Each point is BATCH:NEW_TOKENS[:BATCHES] (BATCHES full batches are timed, spread over the
length-sorted prompt list). It prints a markdown table and, with --out, writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("eval_throughput")


@dataclass(frozen=True)
class Point:
    """One measured configuration: batch size, forced output length, number of timed batches."""

    batch_size: int
    new_tokens: int
    batches: int


def parse_point(text: str, default_batches: int = 2) -> Point:
    """Parse BATCH:NEW_TOKENS[:BATCHES].

    >>> parse_point("64:300")
    Point(batch_size=64, new_tokens=300, batches=2)
    >>> parse_point("256:1000:1")
    Point(batch_size=256, new_tokens=1000, batches=1)
    """
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"point {text!r} must be BATCH:NEW_TOKENS[:BATCHES], positive integers")
    nums = [int(p) for p in parts]
    return Point(nums[0], nums[1], nums[2] if len(nums) == 3 else default_batches)


def pick_batches(n_prompts: int, batch_size: int, count: int) -> list[int]:
    """Indices of `count` full batches spread evenly over the length-sorted prompts (longest first).

    >>> pick_batches(1319, 256, 2)
    [0, 4]
    >>> pick_batches(1319, 64, 3)
    [0, 10, 19]
    >>> pick_batches(100, 64, 5)
    [0]
    """
    full = n_prompts // batch_size
    if full == 0:
        return []
    count = min(count, full)
    if count == 1:
        return [0]
    return sorted({round(k * (full - 1) / (count - 1)) for k in range(count)})


def load_questions(path: Path) -> list[str]:
    """GSM8K rows ({"question", "answer"}) from a .jsonl file; a bad row names its line."""
    from gsm8k_rl import UserError

    questions = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(json.loads(line)["question"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path}:{lineno}: expected a JSON object with a 'question' key ({exc})") from exc
    if not questions:
        raise UserError(f"{path}: no rows")
    return questions


def tokenize_prompts(tokenizer, questions: list[str], thinking: bool) -> list[list[int]]:
    """Token ids of each rendered prompt, exactly as the eval renders them."""
    from gsm8k_rl.task.prompt import build_messages, render

    texts = [render(tokenizer, build_messages(q), thinking=thinking) for q in questions]
    # The chat template already holds every special token; adding more would change the prompt.
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def left_pad(batch: list[list[int]], pad_id: int):
    """(input_ids, attention_mask) tensors, left-padded as decoder-only generation needs."""
    import torch

    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return ids, mask


def build_model(model_dir: Path, device: str, dtype: str, attn: str, seed: int):
    """The true architecture from config.json with random weights, built directly on the device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation=attn)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built %s: %.3fB parameters, %s, %s, on %s", type(model).__name__, n_params / 1e9, dtype, attn, device)
    return model, n_params


def generate_batch(model, ids, mask, new_tokens: int, pad_id: int) -> tuple[float, int]:
    """Seconds for one greedy generate() call and the number of new tokens it produced."""
    import torch

    device = model.device
    ids, mask = ids.to(device), mask.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=pad_id,
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    produced = (out.shape[1] - ids.shape[1]) * out.shape[0]
    return seconds, produced


def measure(model, prompts: list[list[int]], point: Point, pad_id: int, total_prompts: int) -> dict:
    """Time `point.batches` full batches and project a full pass over all prompts."""
    import torch

    chosen = pick_batches(len(prompts), point.batch_size, point.batches)
    if not chosen:
        raise SystemExit(f"batch size {point.batch_size} exceeds the {len(prompts)} prompts")
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # Per-point warm-up on the first timed batch: new shapes pick new kernels (and allocator pools).
    warm_ids, warm_mask = left_pad(prompts[chosen[0] * point.batch_size : (chosen[0] + 1) * point.batch_size], pad_id)
    generate_batch(model, warm_ids, warm_mask, 4, pad_id)
    times, tokens, widths = [], 0, []
    for b in chosen:
        batch = prompts[b * point.batch_size : (b + 1) * point.batch_size]
        ids, mask = left_pad(batch, pad_id)
        seconds, produced = generate_batch(model, ids, mask, point.new_tokens, pad_id)
        if produced != point.batch_size * point.new_tokens:
            raise RuntimeError(f"expected {point.batch_size * point.new_tokens} new tokens, got {produced}")
        log.info("bs=%d new=%d batch#%d (prompt width %d): %.2f s, %.0f tok/s",
                 point.batch_size, point.new_tokens, b, ids.shape[1], seconds, produced / seconds)
        times.append(seconds)
        tokens += produced
        widths.append(ids.shape[1])
    mean_batch = sum(times) / len(times)
    n_batches = math.ceil(total_prompts / point.batch_size)
    peak = torch.cuda.max_memory_allocated() / 2**30 if model.device.type == "cuda" else float("nan")
    return {
        **asdict(point),
        "timed_batch_indices": chosen,
        "prompt_widths": widths,
        "batch_seconds": times,
        "tokens_per_s": tokens / sum(times),
        "ms_per_step": 1000 * mean_batch / point.new_tokens,
        # The last, partial batch is counted as a full one: an upper bound, off by < 1 batch.
        "projected_full_set_s": mean_batch * n_batches,
        "n_batches_full_set": n_batches,
        "peak_mem_gib": peak,
    }


def profile_generate(model, prompts: list[list[int]], point: Point, pad_id: int) -> dict:
    """Profile one generate() call: how busy the GPU is, and which host-side ops take the time.

    A step far slower than its GPU kernels means the loop is bound by Python and launch overhead,
    which bigger batches amortise and CUDA graphs (static cache + compile) remove.
    """
    from torch.profiler import ProfilerActivity, profile

    ids, mask = left_pad(prompts[: point.batch_size], pad_id)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if model.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        seconds, _ = generate_batch(model, ids, mask, point.new_tokens, pad_id)
    events = prof.key_averages()
    gpu_s = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e6
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    summary = {
        **asdict(point),
        "wall_s_profiled": seconds,
        "gpu_kernel_s": gpu_s,
        "gpu_busy_fraction": gpu_s / seconds,
        "kernel_launches_per_step": launches / point.new_tokens,
    }
    print(f"\nprofile {summary}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=45))
    return summary


def markdown_table(rows: list[dict], n_prompts: int) -> str:
    """Results as a markdown table (one line per point)."""
    lines = [
        f"| batch | new tokens | timed batches | tok/s | ms/step | projected {n_prompts} prompts | peak GPU mem |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['new_tokens']} | {len(r['batch_seconds'])} | {r['tokens_per_s']:,.0f} | "
            f"{r['ms_per_step']:.1f} | {r['projected_full_set_s']:.0f} s ({r['n_batches_full_set']} batches) | "
            + (f"{r['peak_mem_gib']:.1f} GiB |" if r["peak_mem_gib"] == r["peak_mem_gib"] else "- |")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="folder with config.json and tokenizer files")
    parser.add_argument("--data", type=Path, required=True, help="GSM8K test .jsonl ({question, answer} rows)")
    parser.add_argument("--points", nargs="+", default=["64:300", "128:300", "256:300"],
                        help="BATCH:NEW_TOKENS[:BATCHES] configurations to time (default %(default)s)")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per point when a point names none")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N prompts (smoke runs)")
    parser.add_argument("--thinking", action="store_true", help="render with Qwen3 thinking on (default off)")
    parser.add_argument("--no-sort", action="store_true", help="keep file order instead of sorting by length")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--attn", default="sdpa", help="attn_implementation (default sdpa)")
    parser.add_argument("--no-cudnn-sdpa", action="store_true",
                        help="disable PyTorch's cuDNN SDPA backend (flash / memory-efficient kernels instead)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=None, metavar="BATCH:NEW_TOKENS",
                        help="also profile one generate() call (torch.profiler) and print where the time goes")
    parser.add_argument("--out", type=Path, default=None, help="write raw results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import torch
    import transformers
    from transformers import AutoTokenizer

    points = [parse_point(p, args.batches) for p in args.points]
    if args.no_cudnn_sdpa:
        # cuDNN attention builds an execution plan per new shape; in decoding the KV length grows
        # every step, so the plan is rebuilt on the host every step (~1.9 ms per layer call, seen
        # on an H100 with torch 2.11).
        torch.backends.cuda.enable_cudnn_sdp(False)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    questions = load_questions(args.data)[: args.limit]
    prompts = tokenize_prompts(tokenizer, questions, args.thinking)
    lengths = sorted(len(p) for p in prompts)
    log.info("%d prompts, prompt tokens min/median/max = %d/%d/%d", len(prompts), lengths[0],
             lengths[len(lengths) // 2], lengths[-1])
    if not args.no_sort:
        prompts = sorted(prompts, key=len, reverse=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    model, n_params = build_model(args.model_dir, device, args.dtype, args.attn, args.seed)
    # Warm-up: CUDA context, cuBLAS handles and kernel selection stay out of the timed batches.
    warm_ids, warm_mask = left_pad(prompts[: min(8, len(prompts))], pad_id)
    generate_batch(model, warm_ids, warm_mask, 8, pad_id)

    rows = []
    for point in points:
        rows.append(measure(model, prompts, point, pad_id, len(prompts)))
        if device == "cuda":
            torch.cuda.empty_cache()
    profile = profile_generate(model, prompts, parse_point(args.profile, 1), pad_id) if args.profile else None
    env = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "params": n_params,
        "dtype": args.dtype,
        "attn": args.attn,
        "cudnn_sdpa": not args.no_cudnn_sdpa,
        "thinking": args.thinking,
        "sorted_by_length": not args.no_sort,
        "n_prompts": len(prompts),
        "prompt_tokens_min_median_max": [lengths[0], lengths[len(lengths) // 2], lengths[-1]],
    }
    table = markdown_table(rows, len(prompts))
    print(f"\n{env}\n\n{table}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"env": env, "points": rows, "profile": profile}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
