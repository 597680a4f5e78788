"""Self-aligned reward (SA-PPO, SA-GRPO): the Self-Aligned Reward paper's method on VERL 0.9.1.

Why: the paper the spec's numbers most likely come from (arXiv 2509.05489; its code calls it
`ppl_qa`) adds to the correctness reward a term that rewards answers the question makes more
likely, which it reports to shorten answers at equal or better accuracy:

    ppl(a|q) = exp(-mean_j log pi(a_j | q, a_<j))     the current actor, i.e. VERL's old_log_probs
    ppl(a)   = the same with the prompt replaced by the chat template holding only the system
               prompt and an empty user turn (one more actor forward pass per step)
    R_SA     = clip((ppl(a) - ppl(a|q)) / ppl(a), -1, 1)
    R        = R_correct + alpha * R_SA, added on each response's last token (alpha = 0.2)

Validation scores correctness only (it never reaches this code). How it plugs into VERL: a trainer
registered in VERL 0.9.1's own trainer registry (`verl.trainer.ppo.v1.register_trainer`), chosen
with `trainer.v1.trainer_mode=self_aligned_sync` (`--config sa_ppo`, `sa_grpo`); it is VERL's
synchronous PPO trainer with one step added after the old-log-prob pass. The answer-only
sequences go through VERL's TransferQueue to the actor's own `compute_log_prob`, under keys of their
own partition, and are cleared after. Options (`self_aligned` in the config): `alpha`, `clip`.
Metrics: `self_aligned/r_correct/mean`, `self_aligned/r_sa/mean`, `self_aligned/reward/mean`,
`self_aligned/ppl_qa/mean`, `self_aligned/ppl_a/mean`, `timing_s/self_aligned_pass`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)
log.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))  # as VERL's modules: shown in the Ray actor's log

TRAINER_MODE = "self_aligned_sync"
SELF_ALIGNED_ENV = "GSM8K_RL_SELF_ALIGNED"  # set by the launcher: the VERL plugin then registers the trainer
PARTITION = "self_aligned_answer_only"


def perplexity(log_probs: Any, mask: Any) -> Any:
    """Per-sequence exp(-mean log-prob) over the masked tokens of a (batch, tokens) tensor.

    >>> import torch
    >>> perplexity(torch.log(torch.tensor([[0.5, 0.5, 0.9]])), torch.tensor([[1, 1, 0]])).tolist()
    [2.0]
    """
    import torch

    mask = mask.to(log_probs.dtype)
    mean = (log_probs * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return torch.exp(-mean)


def self_aligned_reward(ppl_qa: Any, ppl_a: Any, clip: float = 1.0) -> Any:
    """R_SA = clip((ppl(a) - ppl(a|q)) / ppl(a), -clip, clip): positive when the question makes the
    answer more likely than the answer alone.

    >>> import torch
    >>> self_aligned_reward(torch.tensor([2.0, 8.0, 50.0]), torch.tensor([4.0, 4.0, 4.0])).tolist()
    [0.5, -1.0, -1.0]
    """
    return ((ppl_a - ppl_qa) / ppl_a).clamp(-clip, clip)


def answer_only_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The prompt without the question: system turns kept, every user turn emptied.

    >>> answer_only_messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}])
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': ''}]
    """
    return [dict(m, content="") if m.get("role") == "user" else dict(m) for m in messages]


def fallback_messages(extra_info: Any = None) -> list[dict[str, str]]:
    """The answer-only prompt of a sample that carries no raw_prompt: the system turn of the template
    it was prepared with (`extra_info["prompt_template"]`, written by `gsm8k-rl prepare`), else the
    default template's, and an empty user turn.

    >>> fallback_messages({"prompt_template": "paper"})[0]["content"][:36]
    'You are a reasoning expert assistant'
    >>> fallback_messages(None)[1]
    {'role': 'user', 'content': ''}
    """
    from gsm8k_rl.task.prompt import DEFAULT_TEMPLATE, build_messages

    name = extra_info.get("prompt_template") if isinstance(extra_info, dict) else None
    return answer_only_messages(build_messages("", name or DEFAULT_TEMPLATE))


def _raw_messages(value: Any) -> list[dict[str, str]] | None:
    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [dict(m) for m in value]
    return None


def register() -> None:
    """Register the trainer in VERL's trainer registry (idempotent; needs VERL's v1 trainer)."""
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    if TRAINER_MODE in TRAINER_REGISTRY:
        return

    @register_trainer(TRAINER_MODE)
    class SelfAlignedTrainer(PPOTrainerSync):
        """VERL's synchronous PPO trainer plus the self-aligned reward after the old-log-prob pass."""

        def _compute_old_log_prob(self, batch, metrics):
            batch = super()._compute_old_log_prob(batch, metrics)
            start = time.perf_counter()
            add_self_aligned_reward(self, batch, metrics)
            metrics["timing_s/self_aligned_pass"] = time.perf_counter() - start
            return batch


def _options(config: Any) -> tuple[float, float]:
    sa = config.get("self_aligned") or {}
    return float(sa.get("alpha", 0.2)), float(sa.get("clip", 1.0))


def add_self_aligned_reward(trainer: Any, batch: Any, metrics: dict) -> None:
    """The answer-only forward pass, R_SA, and alpha * R_SA added to each response's last-token score."""
    import numpy as np
    import torch
    import transfer_queue as tq
    from tensordict import TensorDict
    from transfer_queue import KVBatchMeta
    from verl.workers.utils.padding import response_from_nested

    from gsm8k_rl.task.prompt import chat_template_kwargs

    alpha, clip = _options(trainer.config)
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id)
    responses = list(data["responses"].unbind())
    raw = data.get("raw_prompt", None)
    extra_info = data.get("extra_info", None) if raw is None else None
    template_kwargs = dict(trainer.config.data.get("apply_chat_template_kwargs") or chat_template_kwargs())
    cache: dict[str, list[int]] = {}
    prompt_ids = []
    for i in range(len(responses)):
        messages = _raw_messages(raw[i]) if raw is not None else None
        if messages:
            messages = answer_only_messages(messages)
        else:
            messages = fallback_messages(extra_info[i] if extra_info is not None else None)
        key = repr(messages)
        if key not in cache:
            cache[key] = trainer.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                               **template_kwargs)
            if not isinstance(cache[key], list):  # transformers returning a BatchEncoding
                cache[key] = list(cache[key]["input_ids"])
        prompt_ids.append(torch.tensor(cache[key], dtype=torch.int64))
    if not getattr(trainer, "_self_aligned_logged", False):
        trainer._self_aligned_logged = True
        log.info("self-aligned reward: answer-only prompt from %s, %d tokens: %r",
                    "each sample's raw_prompt" if raw is not None else "its prompt template (no raw_prompt in the "
                                                                       "batch)",
                    len(prompt_ids[0]), trainer.tokenizer.decode(prompt_ids[0]))
    input_ids = [torch.cat([p, r.to(torch.int64)]) for p, r in zip(prompt_ids, responses, strict=True)]
    nested = lambda ts: torch.nested.as_nested_tensor(ts, layout=torch.jagged)  # noqa: E731
    answer_only = TensorDict({
        "prompts": nested(prompt_ids),
        "responses": data["responses"],
        "response_mask": data["response_mask"],
        "loss_mask": data["response_mask"],
        "input_ids": nested(input_ids),
        "attention_mask": nested([torch.ones_like(t) for t in input_ids]),
        "position_ids": nested([torch.arange(len(t)) for t in input_ids]),
    }, batch_size=len(input_ids))
    keys = [f"{k}::answer_only" for k in batch.keys]
    tags = [dict(t or {}, prompt_len=len(p), seq_len=len(s))
            for t, p, s in zip(batch.tags or [{}] * len(input_ids), prompt_ids, input_ids, strict=True)]
    tq.kv_batch_put(keys=keys, partition_id=PARTITION, fields=answer_only, tags=tags)
    try:
        # what VERL's own old-log-prob pass asks of the actor (the batch returned by it carries no extra_info)
        extra = {"calculate_entropy": False, "compute_loss": False,
                 "temperature": trainer.config.actor_rollout_ref.rollout.temperature}
        meta = KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags, extra_info=extra)
        trainer.actor_rollout_wg.compute_log_prob(meta)
        out = tq.kv_batch_get(keys=keys, partition_id=PARTITION, select_fields=["log_probs", "response_mask"])
        logp_a = response_from_nested(out["log_probs"], out["response_mask"]).to_padded_tensor(0.0)
    finally:
        tq.kv_clear(keys=keys, partition_id=PARTITION)

    scores = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                             select_fields=["old_log_probs", "response_mask", "rm_scores"])
    mask = scores["response_mask"].to_padded_tensor(0).float()
    logp_qa = scores["old_log_probs"].to_padded_tensor(0.0).float()
    ppl_qa, ppl_a = perplexity(logp_qa, mask), perplexity(logp_a.float(), mask)
    r_sa = self_aligned_reward(ppl_qa, ppl_a, clip)
    rm = [t.clone().float() for t in scores["rm_scores"].unbind()]
    r_correct = torch.stack([t.sum() for t in rm])
    for t, r in zip(rm, r_sa, strict=True):
        t[-1] += alpha * r  # the last response token carries the sequence reward, as VERL's manager puts it
    tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id,
                    fields=TensorDict({"rm_scores": nested(rm)}, batch_size=len(rm)))
    for name, values in (("r_correct", r_correct), ("r_sa", r_sa), ("reward", r_correct + alpha * r_sa),
                         ("ppl_qa", ppl_qa), ("ppl_a", ppl_a)):
        v = values.detach().cpu().numpy()
        metrics[f"self_aligned/{name}/mean"] = float(np.mean(v))
        metrics[f"self_aligned/{name}/min"] = float(np.min(v))
        metrics[f"self_aligned/{name}/max"] = float(np.max(v))


__all__ = ["PARTITION", "TRAINER_MODE", "add_self_aligned_reward", "answer_only_messages", "fallback_messages",
           "perplexity", "register", "self_aligned_reward"]
