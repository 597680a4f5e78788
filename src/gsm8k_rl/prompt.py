"""The one prompt definition, imported by data preparation (training) and evaluation.

The parquet written by `gsm8k-rl prepare` stores the chat *messages* built here; VERL renders
them with the tokenizer's chat template and `data.apply_chat_template_kwargs`, and
`gsm8k-rl eval` renders the same messages with the same kwargs (`chat_template_kwargs`).
Change the prompt here and only here; bump PROMPT_VERSION when you do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

PROMPT_VERSION = "1"

SYSTEM_PROMPT = "You are a helpful assistant."

# The answer marker that the "hash" template asks for and that reward.py treats as explicit.
ANSWER_MARKER = "####"

# Named user-turn templates. "plain" is the spec's: the question, nothing else.
# "hash" is VERL's own GSM8K example instruction (examples/data_preprocess/gsm8k.py).
TEMPLATES: dict[str, str] = {
    "plain": "{question}",
    "hash": "{question} Let's think step by step and output the final answer after \"" + ANSWER_MARKER + "\".",
}
DEFAULT_TEMPLATE = "plain"

# Thinking off by default: the spec decodes greedily with 4096 new tokens; Qwen3's thinking
# mode is documented to degrade (repetition) under greedy decoding and its traces eat the budget.
DEFAULT_THINKING = False


def build_messages(question: str, template: str = DEFAULT_TEMPLATE) -> list[dict[str, str]]:
    """Chat messages for one GSM8K question.

    >>> build_messages("What is 2+2?")[1]
    {'role': 'user', 'content': 'What is 2+2?'}
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)}")
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": TEMPLATES[template].format(question=question.strip())},
    ]


def chat_template_kwargs(thinking: bool = DEFAULT_THINKING) -> dict[str, Any]:
    """Keyword arguments for `tokenizer.apply_chat_template` (= VERL's data.apply_chat_template_kwargs)."""
    return {"enable_thinking": bool(thinking)}


def render(tokenizer: Any, messages: list[dict[str, str]], thinking: bool = DEFAULT_THINKING) -> str:
    """The exact prompt string the model sees, as VERL's agent loop renders it."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **chat_template_kwargs(thinking)
    )


def prompt_fingerprint(template: str = DEFAULT_TEMPLATE, thinking: bool = DEFAULT_THINKING) -> str:
    """Short hash of everything that defines the prompt, recorded in eval metrics and the report."""
    spec = {
        "version": PROMPT_VERSION,
        "system": SYSTEM_PROMPT,
        "template": TEMPLATES[template],
        "chat_template_kwargs": chat_template_kwargs(thinking),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
