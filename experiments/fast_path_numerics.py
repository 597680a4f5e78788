"""The fast path's kernels against VERL's plain path, on the same batch: numerics and time.

Runs VERL 0.9.1's own actor code for one micro-batch (`FSDPEngineWithLMHead.prepare_model_inputs`,
the model with VERL's monkey patch for fused kernels, `prepare_model_outputs`; VERL's PPO policy
loss `compute_policy_loss_vanilla`) with the model unsharded on one device, for each variant:

    stock          padded micro-batch, SDPA, unfused log-probs (VERL's per-token loop without flash-attn)
    fused-<b>      padded, SDPA, fused log-probs with VERL's impl_backend <b> (torch, triton, liger)
    packed         packed micro-batch (use_remove_padding), torch_varlen attention, unfused
    packed+fused-<b>  both: the launcher's fast path
    <variant>+liger   with --liger: the variant again after liger-kernel's RMSNorm, SwiGLU and RoPE
                      kernels were put into the model the way VERL's `model.use_liger=True` does
                      (`_apply_liger_kernel_to_instance(fused_linear_cross_entropy=False, swiglu=True)`)

and reports, against the first variant that runs (`stock` unless --variants says otherwise) on the
same tokens: per-token log-prob max |diff| and mean diff, entropy max |diff|, the PPO loss (advantages +-1, old log-probs = stock's) and the gradient norm
after its backward pass; and per variant the time of a forward pass (no grad), of forward +
backward, and the peak memory. The batch: real GSM8K test prompts through the model's chat
template, each followed by random response tokens of random length, packed to --tokens tokens.

    python experiments/fast_path_numerics.py --model DIR --gsm8k test.jsonl [--device cuda] [--tokens 8192] --out OUT.json
    # liger's kernels on the launcher's fast path, at its 32K-token training budget, checkpointing on as in VERL:
    python experiments/fast_path_numerics.py --model DIR --random --gsm8k test.jsonl --tokens 32768 \
        --gradient-checkpointing --variants packed+fused-triton --liger --out OUT.json

On CPU (tests) use a tiny model, --device cpu and the torch backend only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def build_batch(tokenizer: Any, questions: list[str], tokens: int, max_response: int, vocab: int, seed: int = 0):
    """Sequences (prompt + random response) until `tokens` are used: list of (ids, prompt_len)."""
    from gsm8k_rl.task.prompt import build_messages, render

    rng = random.Random(seed)
    seqs, used = [], 0
    for q in questions:
        prompt = tokenizer(render(tokenizer, build_messages(q)), add_special_tokens=False)["input_ids"]
        resp = [rng.randrange(vocab) for _ in range(rng.randint(max(8, max_response // 8), max_response))]
        if used + len(prompt) + len(resp) > tokens:
            break
        seqs.append((prompt + resp, len(prompt)))
        used += len(prompt) + len(resp)
    return seqs


def micro_batch(seqs, device: str, remove_padding: bool, fused: bool, pad_token_id: int):
    """The TensorDict VERL's engine receives: nested (jagged) input_ids/position_ids + its switches."""
    import torch
    from tensordict import TensorDict

    from verl.utils import tensordict_utils as tu

    ids = torch.nested.as_nested_tensor([torch.tensor(s) for s, _ in seqs], layout=torch.jagged)
    pos = torch.nested.as_nested_tensor([torch.arange(len(s)) for s, _ in seqs], layout=torch.jagged)
    td = TensorDict({"input_ids": ids, "position_ids": pos}, batch_size=[len(seqs)]).to(device)
    tu.assign_non_tensor(td, use_remove_padding=remove_padding, use_fused_kernels=fused, calculate_entropy=True,
                         temperature=1.0, pad_token_id=pad_token_id)
    return td


def make_engine(model: Any, dtype: Any) -> Any:
    """VERL's actor engine around an unsharded model: only the fields its micro-batch code reads."""
    from verl.utils import torch_functional as verl_F
    from verl.workers.config import FSDPEngineConfig
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    eng = object.__new__(FSDPEngineWithLMHead)
    eng.engine_config = FSDPEngineConfig()
    eng.module = model
    eng.pad_to_length = False
    eng.pad_to_length_bucket = 0
    eng.ulysses_sequence_parallel_size = 1
    eng.use_ulysses_sp = False
    eng.compute_entropy_from_logits = verl_F.entropy_from_logits
    eng._autocast_dtype = dtype
    return eng


def run_variant(model: Any, engine: Any, seqs, device: str, dtype: Any, attn: str, remove_padding: bool,
                fused: str | None, pad_token_id: int, old: Any = None, advantages: Any = None):
    """One forward (+ PPO loss backward when `old` is given) through VERL's micro-batch code."""
    import contextlib

    import torch
    from omegaconf import OmegaConf

    from verl.models.transformers.monkey_patch import patch_forward_with_backends
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla

    model.set_attn_implementation(attn)
    patch_forward_with_backends(model, use_fused_kernels=fused is not None, fused_kernels_backend=fused)
    mb = micro_batch(seqs, device, remove_padding, fused is not None, pad_token_id)
    autocast = (torch.autocast(device_type=device, dtype=dtype) if dtype != torch.float32
                else contextlib.nullcontext())
    with autocast:
        inputs, args = engine.prepare_model_inputs(mb)
        out = model(**inputs, use_cache=False)
        outputs = engine.prepare_model_outputs(out, args, mb, None)
    # position t predicts token t+1: keep every position but each sequence's last
    logp = torch.cat([t[:-1] for t in outputs["log_probs"].unbind()]).float()
    ent = torch.cat([t[:-1] for t in outputs["entropy"].unbind()]).float()
    result = {"log_probs": logp.detach(), "entropy": ent.detach()}
    if old is not None:
        cfg = OmegaConf.create({"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.2, "clip_ratio_c": 3.0,
                               "global_batch_info": {"dp_size": 1, "batch_num_tokens": int(logp.numel())}})
        mask = torch.ones_like(logp)
        loss, _ = compute_policy_loss_vanilla(old[None], logp[None], advantages[None], mask[None], "token-mean", cfg)
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad.float().norm() for p in model.parameters() if p.grad is not None]
        result["loss"] = float(loss.detach())
        result["grad_norm"] = float(torch.stack(grads).norm())
    return result


def timed(fn, device: str, reps: int) -> float:
    import torch

    times = []
    for _ in range(reps + 1):  # the first call warms up (Triton autotuning, allocator)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def variants(device: str, backends: list[str]) -> dict[str, tuple[str, bool, str | None]]:
    v: dict[str, tuple[str, bool, str | None]] = {"stock": ("sdpa", False, None)}
    for b in backends:
        v[f"fused-{b}"] = ("sdpa", False, b)
    v["packed"] = ("torch_varlen", True, None)
    for b in backends:
        v[f"packed+fused-{b}"] = ("torch_varlen", True, b)
    return v


def apply_liger(model: Any) -> None:
    """liger-kernel's RMSNorm, SwiGLU and RoPE in this model, exactly as VERL 0.9.1's FSDP engine
    puts them in for `model.use_liger=True` (verl/workers/engine/fsdp/transformer_impl.py)."""
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False, swiglu=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="HF folder (config + tokenizer; weights optional: --random)")
    p.add_argument("--random", action="store_true", help="random weights from config.json (true architecture)")
    p.add_argument("--gsm8k", required=True, help="GSM8K jsonl whose questions become the prompts")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tokens", type=int, default=8192, help="tokens in the micro-batch (the launcher's budget)")
    p.add_argument("--max-response", type=int, default=300)
    p.add_argument("--backends", nargs="+", default=None, help="fused backends (default: torch triton liger on CUDA, torch on CPU)")
    p.add_argument("--variants", nargs="+", default=None,
                   help="run only these variants (names as printed; the first is the reference for the diffs)")
    p.add_argument("--liger", action="store_true",
                   help="then run each variant again with liger-kernel's RMSNorm/SwiGLU/RoPE (as VERL's use_liger)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in backward, as VERL's enable_gradient_checkpointing (the default)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median); 0: numerics only")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                   help="compute dtype (auto: bf16 autocast on CUDA as VERL, fp32 on CPU)")
    p.add_argument("--fp32-reference", action="store_true",
                   help="also compare every variant with the stock path computed in fp32 (the rounding-free answer)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from gsm8k_rl.verl_ext import varlen_attention

    varlen_attention.register()
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}.get(
        args.dtype, torch.bfloat16 if args.device == "cuda" else torch.float32)
    backends = args.backends or (["torch", "triton", "liger"] if args.device == "cuda" else ["torch"])
    if "liger" in backends:
        try:
            import liger_kernel  # noqa: F401
        except ImportError:
            print("liger-kernel not installed: leaving out its variants")
            backends = [b for b in backends if b != "liger"]
    tok = AutoTokenizer.from_pretrained(args.model)
    torch.manual_seed(0)
    if args.random:
        with torch.device(args.device):  # initialised where it runs: seconds instead of a minute on CPU
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model), dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model.to(args.device).train()
    model.config.use_cache = False
    if args.gradient_checkpointing:  # VERL's call (FSDP engine, _build_module)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    questions = [json.loads(line)["question"] for line in Path(args.gsm8k).read_text().splitlines() if line.strip()]
    seqs = build_batch(tok, questions, args.tokens, args.max_response, model.config.vocab_size)
    n_tokens = sum(len(s) for s, _ in seqs)
    padded_tokens = len(seqs) * max(len(s) for s, _ in seqs)
    engine = make_engine(model, dtype)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    original_forward = type(model).forward
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__, "dtype": str(dtype), "model": Path(args.model).name,
        "params": sum(p.numel() for p in model.parameters()), "sequences": len(seqs), "tokens": n_tokens,
        "padded_tokens": padded_tokens, "padding_share": round(1 - n_tokens / padded_tokens, 4),
        "gradient_checkpointing": args.gradient_checkpointing, "variants": {},
    }
    print(f"{len(seqs)} sequences, {n_tokens} tokens ({padded_tokens} padded, "
          f"{report['padding_share']:.1%} padding), {report['params']:,} parameters, {dtype}")

    fp32 = None
    if args.fp32_reference:  # the same weights in fp32, no autocast: what bf16 rounding is measured against
        master = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.float()
        fp32 = run_variant(model, make_engine(model, torch.float32), seqs, args.device, torch.float32, "sdpa", False,
                           None, pad)["log_probs"]
        model.load_state_dict(master)
        model.to(dtype)
    ref = None
    todo = variants(args.device, backends)
    if args.variants:
        unknown = [v for v in args.variants if v not in todo]
        if unknown:
            raise SystemExit(f"--variants: unknown {unknown}; known: {list(todo)}")
        todo = {v: todo[v] for v in args.variants}
    plan = [(name, spec, False) for name, spec in todo.items()]
    if args.liger:  # last: liger's patch replaces module classes and forwards for good
        plan += [(f"{name}+liger", spec, True) for name, spec in todo.items()]
    liger_error = None  # None: liger not tried yet; "": its kernels are in the model; else why they are not
    for name, (attn, rmpad, fused), liger in plan:
        type(model).forward = original_forward  # VERL's patch replaces the class's forward
        if liger and liger_error is None:
            try:
                apply_liger(model)
                liger_error = ""
            except Exception as exc:  # not installed, or no kernel for this GPU: a result too
                liger_error = f"{type(exc).__name__}: {exc}"[:400]
        if liger and liger_error:
            report["variants"][name] = {"error": liger_error}
            print(f"{name:22s} FAILED {liger_error}"[:300])
            continue
        try:
            fwd = run_variant(model, engine, seqs, args.device, dtype, attn, rmpad, fused, pad)
            if ref is None:
                g = torch.Generator().manual_seed(1)
                adv = (torch.randint(0, 2, fwd["log_probs"].shape, generator=g).float() * 2 - 1).to(args.device)
                ref = {"name": name, "old": fwd["log_probs"], "adv": adv, "entropy": fwd["entropy"]}
            res = run_variant(model, engine, seqs, args.device, dtype, attn, rmpad, fused, pad, ref["old"], ref["adv"])
        except Exception as exc:  # a kernel that does not run here is a result too
            report["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            print(f"{name:22s} FAILED {type(exc).__name__}: {exc}"[:300])
            continue
        d = fwd["log_probs"] - ref["old"]
        row = {"attn": attn, "remove_padding": rmpad, "fused": fused, "liger": liger, "reference": ref["name"],
               "logprob_max_abs_diff": float(d.abs().max()), "logprob_mean_diff": float(d.mean()),
               "entropy_max_abs_diff": float((fwd["entropy"] - ref["entropy"]).abs().max()),
               "loss": res["loss"], "grad_norm": res["grad_norm"]}
        if fp32 is not None:
            d32 = fwd["log_probs"] - fp32
            row["vs_fp32_logprob_max_abs_diff"] = float(d32.abs().max())
            row["vs_fp32_logprob_mean_abs_diff"] = float(d32.abs().mean())
        if args.reps:
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()

            def forward_only():
                with torch.no_grad():
                    run_variant(model, engine, seqs, args.device, dtype, attn, rmpad, fused, pad)

            row["forward_s"] = timed(forward_only, args.device, args.reps)
            row["forward_backward_s"] = timed(
                lambda: run_variant(model, engine, seqs, args.device, dtype, attn, rmpad, fused, pad, ref["old"], ref["adv"]),
                args.device, args.reps)
            if args.device == "cuda":
                row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        report["variants"][name] = row
        print(f"{name:22s} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    type(model).forward = original_forward
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
