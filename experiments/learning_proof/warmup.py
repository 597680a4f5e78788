"""Build the learning proof's starting model: a tiny Qwen3 with its own tokenizer, warmed up by SFT.

    python experiments/learning_proof/warmup.py --data runs/learning_proof/data --out runs/learning_proof/base

The warm-up is not the product; it only makes a starting point that PPO can improve: a model
that knows the answer format and some arithmetic but is often wrong. It is a plain PyTorch loop
over `sft.jsonl` (see make_data.py), with the prompt rendered exactly as training and eval render
it (gsm8k_rl.task.prompt: same messages, Qwen3 chat template, thinking off) and the loss on the
response tokens only. The tokenizer is a byte-level BPE trained on the synthetic text, with every
digit its own token (arithmetic is easier to learn digit by digit) and Qwen3's special tokens and
chat template. Everything is seeded; on 2 CPU cores it takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

log = logging.getLogger(__name__)

# A Qwen3 at toy size (Qwen3-1.7B: hidden 2048, 28 layers, 16/8 heads, head_dim 128).
MODEL_CONFIG = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=512,
    tie_word_embeddings=True,
    rope_theta=10_000.0,
    rms_norm_eps=1e-6,
)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_tokenizer(texts: list[str], out: Path, vocab_size: int = 512):
    """Byte-level BPE with single-digit tokens, Qwen3's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from gsm8k_rl.launch.smoke import QWEN3_CHAT_TEMPLATE, SPECIAL_TOKENS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL_TOKENS[1:])
    fast.chat_template = QWEN3_CHAT_TEMPLATE.read_text()
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def encode(tokenizer, question: str, answer: str | None = None) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids + <|im_end|>) as VERL builds them: the prompt rendered with the chat template."""
    from gsm8k_rl.task.prompt import build_messages, render

    prompt = tokenizer.encode(render(tokenizer, build_messages(question)), add_special_tokens=False)
    if answer is None:
        return prompt, []
    return prompt, tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]


def left_padded_prompts(tokenizer, rows: list[dict]):
    """Rendered prompts of `rows`, left-padded into one batch: (input_ids, attention_mask)."""
    import torch

    prompts = [encode(tokenizer, r["question"])[0] for r in rows]
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    return ids, mask


def style_check(model, tokenizer, rows: list[dict], sample: bool, max_new_tokens: int = 40,
                batch_size: int = 100, seed: int = 0) -> dict:
    """Accuracy (the project's reward) on `rows`, overall and per answer style (direct "#### N" or worked).

    Greedy (sample=False) is what eval measures; one sample at temperature 1 (sample=True) is what
    PPO sees, and its per-style accuracies tell whether showing the work pays off for this model.
    """
    import torch

    from gsm8k_rl.task.reward import compute_score

    model.eval()
    gen = torch.Generator().manual_seed(seed)
    counts = {"direct": [0, 0], "worked": [0, 0]}
    for i in range(0, len(rows), batch_size):
        batch = rows[i:i + batch_size]
        ids, mask = left_padded_prompts(tokenizer, batch)
        width = ids.shape[1]
        with torch.no_grad():
            if sample:
                torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=sample, temperature=1.0 if sample else None, top_k=0 if sample else None,
                                 top_p=1.0 if sample else None,
                                 eos_token_id=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id)
        for r, seq in zip(batch, out[:, width:]):
            text = tokenizer.decode(seq, skip_special_tokens=True)
            style = "direct" if text.lstrip().startswith("####") else "worked"
            counts[style][0] += compute_score("synthetic", text, r["answer"].split("####")[-1].strip()) == 1.0
            counts[style][1] += 1
    model.train()
    n = len(rows)
    return {
        "accuracy": round(sum(c for c, _ in counts.values()) / n, 3),
        "direct_share": round(counts["direct"][1] / n, 3),
        **{f"{s}_accuracy": round(c / m, 3) if m else None for s, (c, m) in counts.items()},
    }


def show_work_accuracy(model_dir: str | Path, rows: list[dict], max_new_tokens: int = 32, batch_size: int = 100) -> dict:
    """Greedy accuracy when the model may not answer directly (its first token cannot be "####").

    A probe outside the pipeline: it tells how much of a model's greedy accuracy is lost to the
    direct style, i.e. how much PPO could gain by only learning to show the work.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

    from gsm8k_rl.task.reward import compute_score

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    marker = tokenizer.convert_tokens_to_ids("####")

    class NoDirectAnswer(LogitsProcessor):
        def __init__(self, prompt_width: int):
            self.prompt_width = prompt_width

        def __call__(self, input_ids, scores):
            if input_ids.shape[1] == self.prompt_width:
                scores[:, marker] = -float("inf")
            return scores

    by_steps: dict[str, list[int]] = {}
    for i in range(0, len(rows), batch_size):
        batch = rows[i:i + batch_size]
        ids, mask = left_padded_prompts(tokenizer, batch)
        width = ids.shape[1]
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 logits_processor=LogitsProcessorList([NoDirectAnswer(width)]),
                                 eos_token_id=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id)
        for r, seq in zip(batch, out[:, width:]):
            text = tokenizer.decode(seq, skip_special_tokens=True)
            gold = r["answer"].split("####")[-1].strip()
            c = by_steps.setdefault(str(len(r["answer"].splitlines()) - 1), [0, 0])
            c[0] += compute_score("synthetic", text, gold) == 1.0
            c[1] += 1
    k, n = sum(c for c, _ in by_steps.values()), sum(m for _, m in by_steps.values())
    return {"correct": k, "n": n, "accuracy": round(k / n, 4),
            "by_steps": {s: {"correct": c, "n": m, "accuracy": round(c / m, 4)} for s, (c, m) in sorted(by_steps.items())}}


def warmup(data: Path, out: Path, steps: int = 1500, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
           monitor_every: int = 250, monitor_rows: int = 200, threads: int = 1) -> dict:
    """Train the tokenizer and the tiny Qwen3 on data/sft.jsonl; save a HF model folder in `out`.

    Progress is monitored greedily on the first `monitor_rows` rows of train.jsonl (PPO prompts,
    never the held-out test set). Returns the final monitor numbers and timings.
    """
    import torch
    from tqdm import tqdm
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    sft = read_jsonl(data / "sft.jsonl")
    monitor = read_jsonl(data / "train.jsonl")[:monitor_rows]
    started = time.time()

    from gsm8k_rl.task.prompt import SYSTEM_PROMPT
    texts = [r["question"] for r in sft] + [r["answer"] for r in sft] + [SYSTEM_PROMPT + " system user assistant"]
    tokenizer = build_tokenizer(texts, out)
    pairs = [encode(tokenizer, r["question"], r["answer"]) for r in sft]
    log.info("tokenizer: %d tokens; sft rows %d, longest prompt %d, longest response %d tokens",
             len(tokenizer), len(pairs), max(len(p) for p, _ in pairs), max(len(a) for _, a in pairs))

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    cfg = Qwen3Config(**MODEL_CONFIG, vocab_size=len(tokenizer), bos_token_id=pad, eos_token_id=eos,
                      pad_token_id=pad)
    cfg.dtype = "float32"
    model = Qwen3ForCausalLM(cfg)
    model.generation_config.eos_token_id = [eos, pad]
    model.generation_config.pad_token_id = pad
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny Qwen3: %.2fM parameters", n_params / 1e6)

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order: list[int] = []
    history = []
    model.train()
    for step in tqdm(range(1, steps + 1), desc="warm-up", mininterval=30):
        if len(order) < batch_size:
            order += rng.sample(range(len(pairs)), len(pairs))
        batch = [pairs[order.pop()] for _ in range(batch_size)]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((batch_size, width), pad)
        labels = torch.full((batch_size, width), -100)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, (p, a) in enumerate(batch):
            seq = p + a
            ids[i, :len(seq)] = torch.tensor(seq)
            labels[i, len(p):len(seq)] = torch.tensor(a)
            mask[i, :len(seq)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % monitor_every == 0 or step == steps:
            history.append({"step": step, "loss": round(loss.item(), 4),
                            "greedy": style_check(model, tokenizer, monitor, sample=False),
                            "sampled": style_check(model, tokenizer, monitor, sample=True, seed=seed),
                            "elapsed_s": round(time.time() - started, 1)})
            log.info("step %d: %s", step, history[-1])
    model.save_pretrained(out)
    summary = {"params": n_params, "vocab": len(tokenizer), "steps": steps, "batch_size": batch_size, "lr": lr,
               "seed": seed, "model_config": MODEL_CONFIG, "history": history,
               "wall_time_s": round(time.time() - started, 1)}
    (out / "warmup.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="folder from make_data.py (sft.jsonl, train.jsonl)")
    p.add_argument("--out", required=True, type=Path, help="HF model folder to write")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW lr (linear warm-up, cosine decay)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--monitor-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warmup(args.data, args.out, args.steps, args.batch_size, args.lr, args.seed, args.monitor_every, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
