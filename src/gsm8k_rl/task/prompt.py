"""The one prompt definition, imported by data preparation (training) and evaluation.

The parquet written by `gsm8k-rl prepare` stores the chat *messages* built here; VERL renders
them with the tokenizer's chat template and `data.apply_chat_template_kwargs`, and
`gsm8k-rl eval` renders the same messages with the same kwargs (`chat_template_kwargs`).
Change the prompt here and only here; bump PROMPT_VERSION when you do. A named template is a
system turn plus a user turn (`--template` of prepare and eval); adding one changes no other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

PROMPT_VERSION = "1"

SYSTEM_PROMPT = "You are a helpful assistant."

# The answer marker that the "hash" template asks for and that reward.py treats as explicit.
ANSWER_MARKER = "####"


@dataclass(frozen=True)
class Template:
    """A named prompt: the user turn's template (with "{question}") and the system turn it comes with."""

    user: str
    system: str = SYSTEM_PROMPT


# Named prompts. "plain" is the spec's: the question, nothing else.
# "hash" is VERL's own GSM8K example instruction (examples/data_preprocess/gsm8k.py).
# "paper" is the Self-Aligned Reward paper's (arXiv 2509.05489; its code's verl/utils/global_tools.py:
# SYS_PROMPT, and math_instruction_noformat, which preconfig.sh selects with --noformat for every dataset).
PROMPTS: dict[str, Template] = {
    "plain": Template("{question}"),
    "hash": Template("{question} Let's think step by step and output the final answer after "
                     "\"" + ANSWER_MARKER + "\"."),
    "paper": Template(
        "{question} Please explain your reasoning process before providing an answer.",
        system="You are a reasoning expert assistant. Given a question, you will use your reasoning skills to solve "
               "the problem.",
    ),
}
# name -> user-turn template, as eval records it ("template_text")
TEMPLATES: dict[str, str] = {name: t.user for name, t in PROMPTS.items()}
DEFAULT_TEMPLATE = "plain"

# Thinking off by default: the spec decodes greedily with 4096 new tokens; Qwen3's thinking
# mode is documented to degrade (repetition) under greedy decoding and its traces eat the budget.
DEFAULT_THINKING = False


def build_messages(question: str, template: str = DEFAULT_TEMPLATE) -> list[dict[str, str]]:
    """Chat messages for one question: the template's system turn, then its user turn.

    >>> build_messages("What is 2+2?")[1]
    {'role': 'user', 'content': 'What is 2+2?'}
    >>> build_messages("What is 2+2?", "paper")[0]["content"][:36]
    'You are a reasoning expert assistant'
    """
    t = template_of(template)
    return [
        {"role": "system", "content": t.system},
        {"role": "user", "content": t.user.format(question=question.strip())},
    ]


def template_of(name: str) -> Template:
    """The named prompt; a ValueError naming the known ones otherwise."""
    if name not in PROMPTS:
        raise ValueError(f"unknown prompt template {name!r}; choose one of {sorted(PROMPTS)}")
    return PROMPTS[name]


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
    t = template_of(template)
    spec = {
        "version": PROMPT_VERSION,
        "system": t.system,
        "template": t.user,
        "chat_template_kwargs": chat_template_kwargs(thinking),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
