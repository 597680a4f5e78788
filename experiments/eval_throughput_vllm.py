"""Greedy-generation throughput of vLLM over the whole GSM8K test set at true Qwen3-1.7B scale.

Why: `gsm8k-rl eval` uses vLLM on a GPU; this measures what a full 1319-prompt greedy pass costs
with it, beside the transformers numbers of experiments/eval_throughput.py (same prompts, same
forced lengths), and shows whether the vLLM build runs at all on a given machine.

The model folder must hold weights (random ones are fine: speed and memory are those of the real
architecture). Random weights never emit EOS on purpose, so every sequence is forced to exactly N
new tokens (`SamplingParams(ignore_eos=True, max_tokens=N)`). Prompts are the GSM8K test
questions rendered by `gsm8k_rl.task.prompt` with the model's chat template (thinking off), passed as
token ids in one `LLM.generate` call per length: vLLM schedules the batch itself.

Run (GPU, vLLM installed):
    PYTHONPATH=src python experiments/eval_throughput_vllm.py --model-dir MODEL_DIR \
        --data ../shared/data/gsm8k/test.jsonl --tokens 300 1000 --out vllm_throughput.json
It prints a markdown table and, with --out, writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_throughput import load_questions, tokenize_prompts  # noqa: E402  (the same prompts as the HF benchmark)

log = logging.getLogger("eval_throughput_vllm")


def device_memory_used_gib() -> float:
    """Memory in use on GPU 0 by every process (vLLM's engine core runs in its own process)."""
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return (total - free) / 2**30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="HF model folder with weights and tokenizer")
    parser.add_argument("--data", type=Path, required=True, help="GSM8K test .jsonl ({question, answer} rows)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[300, 1000], help="forced new tokens per prompt")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N prompts (smoke runs)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs / torch.compile")
    parser.add_argument("--out", type=Path, default=None, help="write raw results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    t0 = time.perf_counter()
    import vllm
    from vllm import LLM, SamplingParams

    import_s = time.perf_counter() - t0
    log.info("import vllm %s: %.1f s", vllm.__version__, import_s)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    prompts = tokenize_prompts(tokenizer, load_questions(args.data)[: args.limit], thinking=False)
    lengths = sorted(len(p) for p in prompts)

    t0 = time.perf_counter()
    llm = LLM(model=str(args.model_dir), dtype="bfloat16", gpu_memory_utilization=args.gpu_memory_utilization,
              enforce_eager=args.enforce_eager, seed=0)
    init_s = time.perf_counter() - t0
    log.info("LLM(...) ready in %.1f s (weights, profiling, KV cache%s)", init_s,
             "" if args.enforce_eager else ", torch.compile, CUDA graph capture")

    inputs = [{"prompt_token_ids": p} for p in prompts]
    llm.generate(inputs[:8], SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True), use_tqdm=False)
    rows = []
    for n in args.tokens:
        params = SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
        start = time.perf_counter()
        outs = llm.generate(inputs, params, use_tqdm=True)
        seconds = time.perf_counter() - start
        produced = [len(o.outputs[0].token_ids) for o in outs]
        if set(produced) != {n}:
            raise RuntimeError(f"expected {n} new tokens per prompt, got lengths {sorted(set(produced))}")
        rows.append({"new_tokens": n, "prompts": len(prompts), "seconds": seconds,
                     "tokens_per_s": sum(produced) / seconds, "gpu_mem_used_gib": device_memory_used_gib()})
        log.info("%d prompts x %d tokens: %.1f s, %.0f tok/s", len(prompts), n, seconds, rows[-1]["tokens_per_s"])

    import torch

    env = {
        "device": torch.cuda.get_device_name(0),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "enforce_eager": args.enforce_eager,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "import_s": import_s,
        "init_s": init_s,
        "attention_backend_env": os.environ.get("VLLM_ATTENTION_BACKEND"),
        "n_prompts": len(prompts),
        "prompt_tokens_min_median_max": [lengths[0], lengths[len(lengths) // 2], lengths[-1]],
    }
    table = ["| prompts | new tokens | wall s | tok/s | GPU memory in use |", "|---:|---:|---:|---:|---:|"]
    table += [f"| {r['prompts']} | {r['new_tokens']} | {r['seconds']:.1f} | {r['tokens_per_s']:,.0f} | "
              f"{r['gpu_mem_used_gib']:.1f} GiB |" for r in rows]
    print(f"\n{env}\n\n" + "\n".join(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
