"""`gsm8k-rl prepare`: GSM8K (hub or a local folder of jsonl) -> VERL RL parquet.

Run: `gsm8k-rl prepare --source ../shared/data/gsm8k --out data/gsm8k`
(no --source: downloads `openai/gsm8k`, config `main`, with `datasets`).
Also: `--dataset platinum`, the GSM-Symbolic eval sets `gsm_symbolic_p1` / `gsm_symbolic_p2`
(`apple/GSM-Symbolic`, test only, GSM8K's format), and the Self-Aligned Reward paper's
training data `math` and `paper_mix` (gsm8k_rl/task/paper_data.py: filters, caps, deduplication;
every dropped row counted in prepare_info.json's "filter").

Rows follow VERL's RL schema (verl/utils/dataset/rl_dataset.py, examples/data_preprocess/gsm8k.py):
`data_source`, `prompt` (chat messages, not yet templated: VERL applies the tokenizer's chat
template with `data.apply_chat_template_kwargs`), `ability`, `reward_model {style, ground_truth}`,
`extra_info {split, index, question, answer, prompt_template, prompt_version}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from gsm8k_rl import UserError
from gsm8k_rl.common.files import write_atomic
from gsm8k_rl.task import paper_data
from gsm8k_rl.task.datasets import DATASETS, SPLITS, preparable
from gsm8k_rl.task.gsm8k import gold_number, load_gsm8k_split
from gsm8k_rl.task.prompt import DEFAULT_TEMPLATE, PROMPT_VERSION, TEMPLATES, build_messages

log = logging.getLogger(__name__)


def make_row(question: str, answer: str, split: str, index: int, dataset: str = "gsm8k",
             template: str = DEFAULT_TEMPLATE, *, ground_truth: str | None = None,
             data_source: str | None = None, source_index: int | None = None) -> dict:
    """One VERL RL row; the prompt comes from gsm8k_rl.task.prompt, the only place it is defined.

    `answer` is the gold solution; the ground truth is the number after its "####" unless given
    (MATH, OpenR1: the source's answer). `source_index`: the row's position in its source split.
    """
    extra = {
        "split": split,
        "index": index,
        "question": question,
        "answer": answer,
        "prompt_template": template,
        "prompt_version": PROMPT_VERSION,
    }
    if source_index is not None:
        extra["source_index"] = source_index
    return {
        "data_source": data_source or DATASETS[dataset].data_source,
        "prompt": build_messages(question, template),
        "ability": "math",
        "reward_model": {"style": "rule",
                         "ground_truth": gold_number(answer) if ground_truth is None else ground_truth},
        "extra_info": extra,
    }


INFO = "prepare_info.json"
# what a split was prepared from and how: a re-run with the same settings and inputs finds the same file
SETTINGS = ("source", "dataset", "prompt_template", "prompt_version", "limit")


def _same_table(a: Path, b: Path) -> bool:
    """Whether two parquet files hold the same table (byte-identical, or equal once read)."""
    import pyarrow.parquet as pq

    if a.read_bytes() == b.read_bytes():
        return True
    try:
        return pq.read_table(a).equals(pq.read_table(b))
    except Exception:  # an unreadable old file is not the same table
        return False


def read_info(out: Path) -> dict[str, dict]:
    """The per-split records of OUT/prepare_info.json ({} when there is none); a file written before
    records were kept per split describes each of its splits with its one set of settings."""
    path = out / INFO
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); delete it and re-run the same command") from exc
    if "splits" in info:
        return dict(info["splits"])
    return {split: {**{k: info.get(k) for k in (*SETTINGS, "data_source")}, "rows": n,
                    "sha256": info.get("sha256", {}).get(split),
                    **({"filter": info["filter"][split]} if split in info.get("filter", {}) else {})}
            for split, n in info.get("rows", {}).items()}


def info_summary(records: dict[str, dict]) -> dict[str, Any]:
    """prepare_info.json: every split's record ("splits"), and at the top each setting (the value all
    splits share, else {split: value}), "rows", "sha256" and "filter" by split."""
    order = sorted(records, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
    info: dict[str, Any] = {}
    for key in (*SETTINGS, "data_source"):
        values = {s: records[s].get(key) for s in order}
        shared = list(values.values())
        info[key] = shared[0] if all(v == shared[0] for v in shared) else values
    info["rows"] = {s: records[s]["rows"] for s in order}
    info["sha256"] = {s: records[s]["sha256"] for s in order}
    filters = {s: records[s]["filter"] for s in order if "filter" in records[s]}
    if filters:  # per split and source: rows read, kept, and dropped by reason (nothing leaves uncounted)
        info["filter"] = filters
    info["splits"] = {s: records[s] for s in order}
    return info


def _differences(old: dict | None, new: dict) -> str:
    if not old:
        return f"not described by {INFO}"
    diff = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in SETTINGS if old.get(k) != new.get(k)]
    return "prepared with " + (", ".join(diff) if diff else "the same settings from different input rows")


def prepare(
    out: str | Path,
    source: str | Path | None = None,
    dataset: str = "gsm8k",
    splits: tuple[str, ...] | None = None,
    template: str = DEFAULT_TEMPLATE,
    skip_invalid: bool = False,
    limit: int | None = None,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write `{split}.parquet` for each split into `out`, plus `prepare_info.json`; returns row counts.

    `splits`: None = every split the dataset has (train and test; test only for eval sets).
    All or nothing: every split is read and checked, then written beside its target, and only when all
    are complete are they renamed into place; an error or Ctrl-C before that leaves `out` as it was.
    A file already there with the same rows is the job already done (a re-run after an interruption
    finishes it); one with other rows is replaced only with `overwrite`. prepare_info.json keeps a
    record per split, also of splits prepared by earlier calls.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {preparable()}")
    if template not in TEMPLATES:
        raise UserError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)}")
    if limit is not None and limit < 1:  # 0 would write empty files; a negative one would drop the last rows
        raise UserError(f"--limit must be >= 1, got {limit}")
    available = DATASETS[dataset].splits
    splits = tuple(splits) if splits else available
    missing = [s for s in splits if s not in available]
    if missing:
        raise UserError(f"{dataset} has no {', '.join(missing)} split (it has {', '.join(available)})")
    out = Path(out)
    records = read_info(out)  # read (and checked) before anything is written
    built_from_parts = DATASETS[dataset].kind == "paper"
    hub = DATASETS[dataset].hub
    settings = {"source": str(source) if source else f"hub:{hub}", "dataset": dataset, "prompt_template": template,
                "prompt_version": PROMPT_VERSION, "limit": limit}

    # 1. every split's input, read and checked before anything is written
    built: dict[str, tuple[list[dict], dict | None]] = {}
    for split in splits:
        filters = None
        if built_from_parts:
            problems, filters = paper_data.build(dataset, source, split, skip_invalid)
        else:
            problems = load_gsm8k_split(source, split, dataset, skip_invalid)
        if limit is not None:
            problems = problems[:limit]
        rows = [make_row(r["question"], r["answer"], split, i, dataset, template,
                         ground_truth=r.get("ground_truth"), data_source=r.get("data_source"),
                         source_index=r.get("source_index"))
                for i, r in enumerate(tqdm(problems, desc=f"prepare {split}", unit="row", leave=False))]
        built[split] = rows, filters

    # 2. written beside the targets; 3. compared with what is there; 4. renamed into place together
    out.mkdir(parents=True, exist_ok=True)
    tmps: dict[str, Path] = {}
    try:
        for split, (rows, _) in built.items():
            tmps[split] = out / f"{split}.parquet.tmp"
            pq.write_table(pa.Table.from_pylist(rows), tmps[split])
        differ = [s for s, tmp in tmps.items()
                  if (out / f"{s}.parquet").exists() and not _same_table(out / f"{s}.parquet", tmp)]
        if differ and not overwrite:
            raise UserError(
                "; ".join(f"{out / f'{s}.parquet'} already exists with other rows "
                          f"({_differences(records.get(s), settings)})" for s in differ)
                + ": pass --overwrite to replace, or choose another --out")
        for split, (rows, filters) in built.items():
            target = out / f"{split}.parquet"
            done = target.exists() and split not in differ
            record = {**settings, "data_source": sorted({r["data_source"] for r in rows}) if built_from_parts
                      else DATASETS[dataset].data_source, "rows": len(rows),
                      "sha256": hashlib.sha256((target if done else tmps[split]).read_bytes()).hexdigest()}
            if filters is not None:
                record["filter"] = filters
            records[split] = record
        for split, tmp in tmps.items():
            target = out / f"{split}.parquet"
            if target.exists() and split not in differ:
                log.info("%s: already prepared with these rows, kept", target)
            else:
                tmp.replace(target)
                log.info("wrote %s (%d rows)", target, len(built[split][0]))
        records = {s: r for s, r in records.items() if (out / f"{s}.parquet").exists()}
        write_atomic(out / INFO, json.dumps(info_summary(records), indent=2) + "\n")
    finally:  # an error or Ctrl-C leaves no half-done file behind
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return {split: len(rows) for split, (rows, _) in built.items()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default=None,
                   help="local folder with train.jsonl/test.jsonl (default: download from the hub); "
                        "math: the hub's files; paper_mix: a folder holding gsm8k/, math/ and openr1/")
    p.add_argument("--out", default="data/gsm8k", help="output folder for train.parquet/test.parquet")
    p.add_argument("--dataset", choices=preparable(), default="gsm8k",
                   help="gsm8k, platinum, gsm_symbolic_p1/p2 (eval sets), or the SAR paper's math / paper_mix")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=None, help="default: every split the dataset has")
    p.add_argument("--template", choices=sorted(TEMPLATES), default=DEFAULT_TEMPLATE,
                   help="prompt template: system and user turn (gsm8k_rl/task/prompt.py)")
    p.add_argument("--limit", type=int, default=None, help="keep only the first N rows of each split")
    p.add_argument("--skip-invalid", action="store_true", help="skip bad rows (reported) instead of failing")
    p.add_argument("--overwrite", action="store_true",
                   help="replace parquet files that hold other rows (the same rows are kept: re-running the same "
                        "command is fine)")


def run(args: argparse.Namespace) -> int:
    counts = prepare(args.out, args.source, args.dataset, tuple(args.splits or ()), args.template,
                     args.skip_invalid, args.limit, args.overwrite)
    for split, n in counts.items():
        print(f"{split}: {n} rows -> {Path(args.out) / (split + '.parquet')}")
    return 0


def prompt_lengths(parquet: str | Path, tokenizer: Any, thinking: bool) -> list[int]:
    """Token count of every rendered prompt in a prepared parquet, as VERL's agent loop renders it."""
    import pyarrow.parquet as pq

    from gsm8k_rl.task.prompt import chat_template_kwargs

    prompts = pq.read_table(parquet, columns=["prompt"]).column("prompt").to_pylist()
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True,
                                           **chat_template_kwargs(thinking)) for m in prompts]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
