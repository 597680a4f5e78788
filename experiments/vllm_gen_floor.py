"""How long vLLM alone takes for one PPO step's generation, outside VERL: the floor of the `gen` phase.

Why: VERL's `timing_s/gen` covers its whole rollout (agent-loop workers, the vLLM HTTP server,
sleep/wake of the engine, post-processing). Running the same model, prompts, length and memory
share through vLLM's offline `LLM.generate` separates vLLM's own decode time from VERL's overhead.

    python experiments/vllm_gen_floor.py --model RANDOM_MODEL_DIR --gsm8k ASSETS_DIR/gsm8k_test.jsonl \
        [--prompts 128] [--max-tokens 300] [--gpu-memory-utilization 0.3] [--enforce-eager] [--reps 3]

Responses are forced to --max-tokens (ignore_eos), as in experiments/ppo_gpu.sh; temperature 1.0 as in
the rollout. Prints one line per repetition: seconds and generated tokens.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--gsm8k", required=True, help="GSM8K jsonl with a 'question' field per line")
    p.add_argument("--prompts", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=300)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)

    from vllm import LLM, SamplingParams

    with open(args.gsm8k) as f:
        questions = [json.loads(line)["question"] for line in f][: args.prompts]
    llm = LLM(args.model, gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
              seed=0, enforce_eager=args.enforce_eager)
    tok = llm.get_tokenizer()
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in questions]
    params = SamplingParams(temperature=1.0, max_tokens=args.max_tokens, ignore_eos=True)
    times = []
    for i in range(args.reps):
        t = time.time()
        out = llm.generate(prompts, params, use_tqdm=False)
        times.append(time.time() - t)
        print("gen", i, round(times[-1], 2), sum(len(o.outputs[0].token_ids) for o in out), flush=True)
    return times


if __name__ == "__main__":
    main()
