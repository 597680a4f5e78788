"""Generation with transformers, shared by `gsm8k-rl eval`'s transformers backend and by the "hf"
rollout VERL trains with (verl_ext/hf_rollout.py): the ids a model stops on, and one batched,
left-padded `generate()` that keeps each answer's stop token, as vLLM does.

torch and transformers are imported inside the functions: the command line imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsm8k_rl import UserError


def stop_token_ids(model: str | None, tokenizer: Any, configs: tuple[Any, ...] | None = None) -> list[int]:
    """The ids generation stops on: the EOS of the model's generation_config.json and config.json and
    the tokenizer's (Qwen3: <|im_end|>, <|endoftext|>), as VERL's vLLM rollout takes them. Eval, the
    hf rollout and the truncation check of the reward manager all stop on these.

    `configs`: the generation and model configs when already loaded (VERL's model config holds
    both); by default they are read from the `model` folder or hub id.
    """
    if configs is None:
        from transformers import AutoConfig, GenerationConfig

        loaded = []
        for load in (GenerationConfig.from_pretrained, AutoConfig.from_pretrained):
            try:
                loaded.append(load(model))
            except (OSError, ValueError):  # no generation_config.json, or a folder transformers cannot read
                pass
        configs = tuple(loaded)
    ids: set[int] = set()
    for config in configs:
        eos = getattr(config, "eos_token_id", None) if config is not None else None
        ids.update([eos] if isinstance(eos, int) else (eos or []))
    if tokenizer is not None and getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise UserError(f"{model}: no EOS token id in generation_config.json, config.json or the tokenizer; "
                        "cannot tell when generation stops")
    return sorted(int(i) for i in ids)


def sampling_to_generate_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """Translate VERL/vLLM sampling params to `generate()` settings.

    temperature 0 means greedy (VERL's val_kwargs); top_k -1 or 0 and top_p 1 mean "off".
    Temperature, top-k and top-p are returned as separate warper settings because the rollout
    applies them itself (before recording log-probs), not through GenerationConfig.

    >>> sampling_to_generate_kwargs({"temperature": 0, "top_p": 0.9, "top_k": 5})
    {'do_sample': False, 'temperature': 1.0, 'top_k': 0, 'top_p': 1.0}
    >>> sampling_to_generate_kwargs({"temperature": 0.7, "top_p": 0.9, "top_k": -1})
    {'do_sample': True, 'temperature': 0.7, 'top_k': 0, 'top_p': 0.9}
    """
    temperature = float(params.get("temperature", 1.0) or 0.0)
    if temperature <= 0.0:
        return {"do_sample": False, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    top_k = int(params.get("top_k", -1) or 0)
    top_p = float(params.get("top_p", 1.0) if params.get("top_p") is not None else 1.0)
    return {"do_sample": True, "temperature": temperature, "top_k": max(top_k, 0), "top_p": top_p}


def cut_at_stop(tokens: list[int], stop_ids: set[int]) -> tuple[list[int], bool]:
    """Keep tokens up to and including the first stop token (vLLM keeps the EOS it stopped on).

    >>> cut_at_stop([5, 6, 2, 0, 0], {2, 0})
    ([5, 6, 2], True)
    >>> cut_at_stop([5, 6], {2})
    ([5, 6], False)
    """
    for i, tok in enumerate(tokens):
        if tok in stop_ids:
            return tokens[: i + 1], True
    return tokens, False


class _LogProbRecorder:
    """Logits processor placed last: records log p(token) of each sampled token.

    `generate()` calls processors before it samples, so the token chosen at step t is only
    known at step t+1 (last column of input_ids); the final step is read from the output.
    Memory: one (batch, vocab) tensor, not the whole (steps, batch, vocab) score history.
    """

    def __init__(self) -> None:
        self.prev: Any = None  # (batch, vocab) log-probs of the last step
        self.steps: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.prev is not None:
            self.steps.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, last_tokens: Any) -> Any:
        """(batch, steps) log-probs, given the tokens sampled at the final step."""
        import torch

        if self.prev is not None:
            self.steps.append(self.prev.gather(1, last_tokens[:, None]).squeeze(1))
            self.prev = None
        return torch.stack(self.steps, dim=1) if self.steps else torch.empty(0)


@dataclass
class Completion:
    token_ids: list[int]
    log_probs: list[float] | None
    stopped: bool  # ended on a stop token (else it hit max_tokens)


def disable_cudnn_sdpa() -> None:
    """Keep PyTorch's cuDNN attention out of decoding: it rebuilds an execution plan every time the
    context grows by one token, and turning it off made generate() 1.8-2.2x faster on an H100
    (torch 2.11; experiments/notebook.md, "Greedy-eval throughput")."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


def generate_batch(
    model: Any,
    prompts: list[list[int]],
    params: dict[str, Any],
    max_tokens: int,
    stop_ids: set[int],
    pad_id: int,
) -> list[Completion]:
    """Generate one response per prompt with shared sampling params (VERL/vLLM names).

    Prompts are left-padded into one batch; each response keeps its stop token (as vLLM does)
    and nothing after it. `params["logprobs"]` asks for log p(token) under the distribution
    the token was drawn from (after temperature/top-k/top-p: vLLM's "processed_logprobs").
    """
    import torch
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    settings = sampling_to_generate_kwargs(params)
    stop_ids = set(stop_ids) | {int(t) for t in params.get("stop_token_ids") or []}
    ignore_eos = bool(params.get("ignore_eos", False))
    device = next(model.parameters()).device

    # Left-pad: generate() continues every row from the same last position.
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        input_ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[i, width - len(prompt) :] = 1

    # Warpers are ours, not GenerationConfig's, so the recorder placed after them sees the
    # distribution that is sampled from (generate() runs custom processors before its own warpers).
    processors = LogitsProcessorList()
    if settings["do_sample"]:
        if settings["temperature"] != 1.0:
            processors.append(TemperatureLogitsWarper(settings["temperature"]))
        if settings["top_k"] > 0:
            processors.append(TopKLogitsWarper(top_k=settings["top_k"]))
        if settings["top_p"] < 1.0:
            processors.append(TopPLogitsWarper(top_p=settings["top_p"]))
    recorder = _LogProbRecorder() if params.get("logprobs") else None
    if recorder is not None:
        processors.append(recorder)
    sampling = dict(temperature=1.0, top_k=0, top_p=1.0) if settings["do_sample"] else {}
    gen_config = GenerationConfig(
        do_sample=settings["do_sample"],
        **sampling,
        max_new_tokens=max_tokens,
        min_new_tokens=max_tokens if ignore_eos else None,
        repetition_penalty=float(params.get("repetition_penalty") or 1.0),
        eos_token_id=None if ignore_eos else sorted(stop_ids),
        pad_token_id=pad_id,
        return_dict_in_generate=True,
    )
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        generation_config=gen_config,
        logits_processor=processors,
    )
    new_tokens = out.sequences[:, width:].cpu()
    logprobs = recorder.finish(out.sequences[:, -1]).cpu() if recorder is not None else None

    results = []
    for i in range(len(prompts)):
        tokens, stopped = cut_at_stop(new_tokens[i].tolist(), set() if ignore_eos else stop_ids)
        lp = logprobs[i, : len(tokens)].tolist() if logprobs is not None else None
        results.append(Completion(tokens, lp, stopped))
    return results
