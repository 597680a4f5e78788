"""Tiny, randomly initialised Qwen3 models for smoke runs and CPU tests.

A smoke run exercises every stage (data, VERL PPO, export, eval, report) on a laptop or CI
machine with no GPU and no download: the model has the Qwen3 architecture at toy size, the
tokenizer is either a real one the user passes (e.g. Qwen3's) or a small byte-level BPE trained
here on the shipped GSM8K slice, carrying Qwen3's special tokens and chat template.
Accuracy of such a model is meaningless; only the plumbing is being tested.
"""

from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

SMOKE_DATA = resources.files("gsm8k_rl") / "assets" / "gsm8k_smoke"
QWEN3_CHAT_TEMPLATE = resources.files("gsm8k_rl") / "assets" / "qwen3_chat_template.jinja"
# Qwen3's special tokens, in Qwen3's order, so the chat template renders identically.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Added but NOT special, as in Qwen3's tokenizer: VERL decodes responses with special tokens
# skipped, and the reward must still see the think tags.
THINK_TOKENS = ["<think>", "</think>"]

# Toy Qwen3: 2 layers, hidden 64. Same architecture class as Qwen3-1.7B (GQA, q/k norm, tied embeddings).
TINY_QWEN3 = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
)


def build_tiny_tokenizer(out_dir: str | Path, vocab_size: int = 1024) -> Path:
    """Train a byte-level BPE on the shipped GSM8K slice and save it as a HF tokenizer folder."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    texts: list[str] = []
    for name in ("train.jsonl", "test.jsonl"):
        for line in (SMOKE_DATA / name).read_text().splitlines():
            row = json.loads(line)
            texts += [row["question"], row["answer"]]
    texts.append("You are a helpful assistant. system user assistant")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = QWEN3_CHAT_TEMPLATE.read_text()
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


def build_tiny_model(
    out_dir: str | Path, tokenizer_dir: str | Path | None = None, seed: int = 0, **config_overrides
) -> Path:
    """Save a random toy Qwen3 (+ tokenizer) as a HF model folder that VERL, transformers and vLLM load.

    Args:
        out_dir: target folder (created; an existing model there is reused, never overwritten).
        tokenizer_dir: a HF tokenizer folder (e.g. ../shared/models/qwen3-1.7b); None trains a small one.
        seed: torch seed for the random weights.
        config_overrides: changes to TINY_QWEN3 (e.g. hidden_size=128).
    Returns:
        out_dir as a Path.
    """
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    final = Path(out_dir)
    if (final / "config.json").exists() and (final / "model.safetensors").exists():
        log.info("reusing tiny model at %s", final)
        return final
    # built beside the target and renamed into place: a kill never leaves a folder that looks reusable
    out = final.with_name(f".{final.name}.partial")
    if out.exists():
        shutil.rmtree(out)
    if tokenizer_dir is None:
        build_tiny_tokenizer(out)
        tokenizer = AutoTokenizer.from_pretrained(out)
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        tokenizer.save_pretrained(out)
    cfg = Qwen3Config(
        **{**TINY_QWEN3, **config_overrides},
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    cfg.dtype = "float32"
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg)
    model.generation_config.eos_token_id = [cfg.eos_token_id, cfg.bos_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    if final.exists():  # an older, in-place build that was interrupted
        shutil.rmtree(final)
    out.rename(final)
    log.info("built tiny Qwen3 (%.2fM params) at %s", sum(p.numel() for p in model.parameters()) / 1e6, final)
    return final
