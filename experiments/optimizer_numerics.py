"""How far 8-bit (and 4-bit) Adam states move training from fp32 AdamW: the same model, data and steps.

Why: on 80 GB GPUs (and 2 x 40 GB) the launcher puts the fp32 Adam states of actor and critic in host
memory (`*.fsdp_config.optimizer_offload`), ~27 GB for Qwen3-1.7B, moved every update. torchao's
AdamW8bit keeps them on the GPU at 2 bytes per parameter instead of 8. VERL builds whichever optimizer
its config names (`optim.optimizer_impl=torchao.optim`, `optim.optimizer=AdamW8bit`); this script
builds them through VERL's own `build_optimizer` and trains each from the same weights on the same
batches, with VERL's defaults (betas 0.9/0.999, weight decay 0.01, grad-norm clip 1.0), fp32 weights
as VERL's FSDP keeps them.

    python experiments/optimizer_numerics.py --model MODEL_DIR --gsm8k GSM8K_DIR/train.jsonl \
        [--steps 30] [--batch 8] [--lr 1e-5] [--optimizers adamw adamw8bit adamw4bit] [--out OUT.json] [--png OUT.png]

The task is supervised: each batch is GSM8K training questions with their gold solutions through the
model's chat template, loss on every token. Reported per optimizer: the loss at each step, the largest
difference to fp32 AdamW's loss, the distance of the final weights from AdamW's relative to how far
AdamW moved them, and the bytes of optimizer state.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gsm8k_rl.launch.layout import ADAM_STATE_BYTES

# name -> VERL optim config keys, for every optimizer the launcher sizes (adamw, adamw8bit, adamw4bit)
OPTIMIZERS = {name.lower(): {"optimizer_impl": impl, "optimizer": name} for impl, name in ADAM_STATE_BYTES}


def state_bytes(optimizer) -> int:
    """Bytes held in the optimizer state, looking inside tensor subclasses (torchao's quantized states)."""
    import torch

    def nbytes(t) -> int:
        if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor:
            names, _ = t.__tensor_flatten__()
            return sum(nbytes(getattr(t, n)) for n in names)
        return t.numel() * t.element_size()

    return sum(nbytes(v) for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor))


def batches(tokenizer, path: Path, steps: int, batch: int, max_len: int):
    import torch

    rows = [json.loads(line) for line in path.read_text().splitlines()[: steps * batch]]
    if len(rows) < steps * batch:
        raise SystemExit(f"{path}: {len(rows)} rows, {steps * batch} needed for {steps} steps x {batch}")
    out = []
    for i in range(steps):
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": r["question"]},
                                                {"role": "assistant", "content": r["answer"]}], tokenize=False)
                 for r in rows[i * batch:(i + 1) * batch]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_len)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        out.append((enc["input_ids"], enc["attention_mask"], labels))
    torch.manual_seed(0)
    return out


def train(model_dir: str, name: str, data, lr: float) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    from verl.workers.config.optimizer import FSDPOptimizerConfig, build_optimizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    start = [p.detach().clone() for p in model.parameters()]
    cfg = FSDPOptimizerConfig(lr=lr, weight_decay=0.01, betas=(0.9, 0.999), clip_grad=1.0, **OPTIMIZERS[name])
    opt = build_optimizer(model.parameters(), cfg)
    losses, t0 = [], time.time()
    for input_ids, mask, labels in data:
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
        print(f"{name} step {len(losses)}: loss {losses[-1]:.4f}", flush=True)
    return {"optimizer": f"{cfg.optimizer_impl}.{cfg.optimizer}", "losses": losses, "seconds": time.time() - t0,
            "state_bytes": state_bytes(opt), "params": [p.detach().clone() for p in model.parameters()],
            "start": start}


def compare(runs: dict[str, dict], base: str = "adamw") -> dict[str, dict]:
    import torch

    ref = runs[base]
    moved = torch.sqrt(sum(((p - s) ** 2).sum() for p, s in zip(ref["params"], ref["start"])))
    out = {}
    for name, r in runs.items():
        dist = torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(r["params"], ref["params"])))
        out[name] = {
            "optimizer": r["optimizer"], "losses": r["losses"], "first_loss": r["losses"][0],
            "last_loss": r["losses"][-1],
            "max_abs_loss_diff_vs_adamw": max(abs(a - b) for a, b in zip(r["losses"], ref["losses"])),
            "weights_distance_vs_adamw_over_adamw_update": float(dist / moved),
            "state_bytes": r["state_bytes"], "state_bytes_per_param": r["state_bytes"] / sum(p.numel() for p in r["params"]),
            "seconds": round(r["seconds"], 1),
        }
    return out


def table(result: dict[str, dict]) -> str:
    lines = ["| optimizer | loss first -> last | max abs loss diff vs AdamW | final weights: distance to AdamW's / AdamW's update | state bytes per parameter |",
             "|---|---|---:|---:|---:|"]
    for r in result.values():
        lines.append(f"| `{r['optimizer']}` | {r['first_loss']:.4f} -> {r['last_loss']:.4f} | "
                     f"{r['max_abs_loss_diff_vs_adamw']:.1e} | {r['weights_distance_vs_adamw_over_adamw_update']:.3f} | "
                     f"{r['state_bytes_per_param']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in result.values():
        ax.plot(range(1, len(r["losses"]) + 1), r["losses"], label=r["optimizer"])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("Same model, data and steps: Adam state precision")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--gsm8k", required=True, type=Path, help="GSM8K train.jsonl (question, answer)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--optimizers", nargs="+", default=["adamw", "adamw8bit", "adamw4bit"], choices=list(OPTIMIZERS))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--png", type=Path, default=None)
    args = p.parse_args(argv)
    if args.optimizers[0] != "adamw":
        args.optimizers = ["adamw"] + [o for o in args.optimizers if o != "adamw"]

    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    data = batches(tok, args.gsm8k, args.steps, args.batch, args.max_len)
    runs = {name: train(args.model, name, data, args.lr) for name in args.optimizers}
    result = compare(runs)
    text = table(result)
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"model": Path(args.model).name, "steps": args.steps, "batch": args.batch,
                                        "max_len": args.max_len, "lr": args.lr, "torch": torch.__version__,
                                        "results": result}, indent=1) + "\n")
    if args.png:
        plot(result, args.png)
    return result


if __name__ == "__main__":
    main()
