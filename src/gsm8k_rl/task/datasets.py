"""The one list of datasets: what `gsm8k-rl prepare --dataset` writes and `gsm8k-rl eval --dataset` reads.

Adding a dataset in GSM8K's format ({question, answer "... #### N"}, a hub copy or a folder of
`{split}.jsonl`) is one entry of DATASETS; prepare, eval, the config check and `gsm8k-rl run` read
it from here. A dataset in another format also needs a builder (task/paper_data.py is the example)
named by its `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPLITS = ("train", "test")

# The Self-Aligned Reward paper's sources, read by task/paper_data.py: (hub id, hub config, data_source)
# (MATH: no config, as the paper loads it; OpenR1: "default", its 94k problems, as the paper)
MATH_HUB = ("DigitalLearningGmbH/MATH-lighteval", None, "DigitalLearningGmbH/MATH-lighteval")
OPENR1_HUB = ("open-r1/OpenR1-Math-220k", "default", "open-r1/OpenR1-Math-220k")


@dataclass(frozen=True)
class Dataset:
    """One dataset and where it comes from."""

    name: str
    hub: str  # hub id (for the paper's mix: its parts), named as the source in prepare_info.json
    config: str | None = None  # hub config
    data_source: str = ""  # written into each row: VERL's metric prefix (paper kinds: each row's own source)
    splits: tuple[str, ...] = SPLITS  # an eval set publishes a test split only
    official_rows: dict[str, int] = field(default_factory=dict)  # a different count is logged as a warning
    kind: str = "gsm8k"  # "gsm8k": read by task/gsm8k.py; "paper": built by task/paper_data.py
    # where the GSM8K test split of a run trained on this data lies under `--source`: "" the folder
    # itself, "gsm8k" a subfolder, None nowhere (the evals then read GSM8K from the hub)
    gsm8k_test_in: str | None = ""


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("gsm8k", "openai/gsm8k", "main", "openai/gsm8k", official_rows={"train": 7473, "test": 1319}),
    Dataset("platinum", "madrylab/gsm8k-platinum", "main", "madrylab/gsm8k-platinum", ("test",),
            official_rows={"test": 1209}),
    Dataset("gsm_symbolic_p1", "apple/GSM-Symbolic", "p1", "apple/GSM-Symbolic/p1", ("test",)),
    Dataset("gsm_symbolic_p2", "apple/GSM-Symbolic", "p2", "apple/GSM-Symbolic/p2", ("test",)),
    Dataset("math", MATH_HUB[0], data_source=MATH_HUB[2], kind="paper", gsm8k_test_in=None),
    Dataset("paper_mix", f"{MATH_HUB[0]} + {OPENR1_HUB[0]} + openai/gsm8k", kind="paper", gsm8k_test_in="gsm8k"),
)}


def gsm8k_format() -> tuple[str, ...]:
    """The datasets in GSM8K's format, in registry order: what `gsm8k-rl eval --dataset` takes.

    >>> gsm8k_format()
    ('gsm8k', 'platinum', 'gsm_symbolic_p1', 'gsm_symbolic_p2')
    """
    return tuple(name for name, d in DATASETS.items() if d.kind == "gsm8k")


def preparable() -> list[str]:
    """Every dataset `gsm8k-rl prepare --dataset` takes: GSM8K's format (sorted), then the built ones.

    >>> preparable()
    ['gsm8k', 'gsm_symbolic_p1', 'gsm_symbolic_p2', 'platinum', 'math', 'paper_mix']
    """
    return sorted(gsm8k_format()) + [name for name, d in DATASETS.items() if d.kind != "gsm8k"]
