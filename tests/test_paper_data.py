"""`gsm8k-rl prepare --dataset math / paper_mix / gsm_symbolic_p1 / gsm_symbolic_p2` (gsm8k_rl/task/paper_data.py)
on small fixtures in the hub's formats (tests/data/paper_sources/: MATH-lighteval's and OpenR1-Math's
columns, GSM-Symbolic's and GSM8K's jsonl), each holding rows the paper's filters keep and rows they
drop; the parquet is read back by VERL's own RLHFDataset with the real Qwen3 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gsm8k_rl import UserError
from gsm8k_rl.cli import build_parser, main
from gsm8k_rl.task.paper_data import build
from gsm8k_rl.task.reward import compute_score

SOURCES = Path(__file__).parent / "data" / "paper_sources"
PAPER_SYSTEM = ("You are a reasoning expert assistant. Given a question, you will use your reasoning skills to solve "
                "the problem.")


def _accounted(summary):
    for name, s in summary.items():
        assert s["read"] == s["kept"] + sum(s["dropped"].values()), name  # nothing leaves uncounted


def test_math_filter_keeps_numbers_and_fractions():
    problems, summary = build("math", SOURCES / "math", "train")
    # the last \boxed{} of each kept solution, as written: integers, decimals, fractions with their sign
    assert [p["ground_truth"] for p in problems] == ["5", "\\frac{3}{4}", "-\\frac{1}{2}", "0.25", "4"]
    assert summary == {"math/train": {"read": 12, "kept": 5, "dropped": {
        "answer longer than 20 characters": 1,             # 21 digits
        "answer not a number or a fraction": 3,            # \dfrac (the paper's pattern wants \frac), x^2+2x+1, 10\%
        "answer not one number the reward reads": 1,       # 2\frac{1}{2}: passes the paper's pattern, a mixed number
        "duplicate of an earlier question": 1,             # "What is  $2+3$?\n" again
        "no \\boxed{} answer in the solution": 1,
    }}}
    tests, summary = build("math", SOURCES / "math", "test")
    assert [p["ground_truth"] for p in tests] == ["12", "\\frac{2}{3}"] and summary["math/test"]["dropped"] == {
        "answer not a number or a fraction": 1}  # \sqrt{2}


def test_math_in_the_hubs_parquet_layout(tmp_path):
    """A local copy of the hub repository (data/train-00000-of-00001.parquet) reads as the jsonl does."""
    rows = [json.loads(line) for line in (SOURCES / "math" / "train.jsonl").read_text().splitlines()]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "train-00000-of-00001.parquet")
    from_parquet, summary = build("math", tmp_path, "train")
    from_jsonl, _ = build("math", SOURCES / "math", "train")
    strip = lambda ps: [{k: v for k, v in p.items() if k != "where"} for p in ps]  # noqa: E731
    assert strip(from_parquet) == strip(from_jsonl)
    assert from_parquet[0]["where"].endswith("train-00000-of-00001.parquet row 0")


def test_paper_mix_filters_splits_and_deduplicates():
    problems, summary = build("paper_mix", SOURCES, "train")
    _accounted(summary)
    by_source = {}
    for p in problems:
        by_source.setdefault(p["data_source"], []).append(p["ground_truth"])
    # the paper's order: MATH, OpenR1 (the train side of its 92/8 split, in that split's order), GSM8K
    assert list(by_source) == ["DigitalLearningGmbH/MATH-lighteval", "open-r1/OpenR1-Math-220k", "openai/gsm8k"]
    assert by_source["open-r1/OpenR1-Math-220k"] == ["-4", "\\frac{1}{3}", "9", "12"]
    assert by_source["openai/gsm8k"] == ["8", "48"]
    assert summary["openr1/train"] == {"read": 14, "kept": 4, "dropped": {
        "answer longer than 20 characters": 1,
        "answer not a number or a fraction": 1,                # x=3
        "answer not one number the reward reads": 1,           # (5)
        "duplicate of an earlier question": 1,                 # the MATH question asked again
        "in the paper's 8% OpenR1 test split": 1,              # ceil(0.08 * 7 filtered rows)
        "no generation verified correct (correctness_math_verify)": 1,
        "problem or solution holds a URL": 1,
        "question also in the test split (GSM8K test)": 1,     # never train on the eval questions
        "question_type 'MCQ', not a math word problem": 1,
        "question_type 'proof', not a math word problem": 1,
    }}
    # a later source loses a question an earlier one already has (GSM8K's sticker question is OpenR1's)
    assert summary["gsm8k/train"]["dropped"] == {"duplicate of an earlier question": 1}
    tests, summary = build("paper_mix", SOURCES, "test")
    assert [p["ground_truth"] for p in tests] == ["70", "4"] and summary["gsm8k/test"]["dropped"] == {}


def test_cap_per_source():
    problems, summary = build("paper_mix", SOURCES, "train", limit_per_source=2)
    _accounted(summary)
    counts = {}
    for p in problems:
        counts[p["data_source"]] = counts.get(p["data_source"], 0) + 1
    assert all(n <= 2 for n in counts.values())
    # the cap comes first (the paper's selection), deduplication after: 6 MATH rows pass the filter
    assert summary["math/train"]["dropped"]["over the 2-row cap"] == 4
    assert summary["openr1/train"]["dropped"]["over the 2-row cap"] == 4  # 6 after the split
    assert summary["gsm8k/train"]["dropped"]["over the 2-row cap"] == 1
    # pandas' sample(random_state=42), as the paper's merge: the same rows on every run
    assert problems == build("paper_mix", SOURCES, "train", limit_per_source=2)[0]


def test_prepared_mix_loads_in_verl_with_the_paper_prompt(tmp_path, qwen3_tokenizer):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = tmp_path / "mix"
    assert main(["prepare", "--dataset", "paper_mix", "--source", str(SOURCES), "--out", str(out), "--template",
                 "paper"]) == 0
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["rows"] == {"train": 11, "test": 2} and info["prompt_template"] == "paper"
    assert info["filter"]["train"]["openr1/train"]["kept"] == 4  # the counts, for the user to read
    cfg = OmegaConf.create({"max_prompt_length": 1024, "truncation": "left", "filter_overlong_prompts": False,
                            "apply_chat_template_kwargs": {"enable_thinking": True},
                            "cache_dir": str(tmp_path / "cache")})
    for split, n in info["rows"].items():
        rows = pq.read_table(out / f"{split}.parquet").to_pylist()
        ds = RLHFDataset(str(out / f"{split}.parquet"), qwen3_tokenizer, cfg)
        assert len(ds) == len(rows) == n
        for i, row in enumerate(rows):
            item = ds[i]
            assert item["raw_prompt"][0] == {"role": "system", "content": PAPER_SYSTEM}
            assert item["reward_model"]["ground_truth"] == row["reward_model"]["ground_truth"]
            assert item["extra_info"]["index"] == i and item["data_source"] == row["data_source"]
            # what `gsm8k-rl doctor` checks: the gold solution earns 1.0 from the training reward
            assert compute_score(row["data_source"], row["extra_info"]["answer"],
                                 row["reward_model"]["ground_truth"]) == 1.0


@pytest.mark.parametrize("name, golds", [("gsm_symbolic_p1", ["19", "90"]), ("gsm_symbolic_p2", ["90", "1050"])])
def test_gsm_symbolic_eval_sets(tmp_path, name, golds):
    assert main(["prepare", "--dataset", name, "--source", str(SOURCES / name), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["test.parquet"]  # an eval set: no train split
    rows = pq.read_table(tmp_path / "test.parquet").to_pylist()
    assert [r["reward_model"]["ground_truth"] for r in rows] == golds
    assert rows[0]["data_source"] == f"apple/GSM-Symbolic/{name[-2:]}"
    with pytest.raises(UserError, match=f"{name} has no train split"):
        from gsm8k_rl.task.prepare import prepare

        prepare(tmp_path / "x", SOURCES / name, name, ("train",))
    args = build_parser().parse_args(["eval", "--model", str(tmp_path), "--out", "o", "--dataset", name])
    assert args.dataset == name


def test_bad_rows_are_named_or_counted(tmp_path):
    folder = tmp_path / "math"
    folder.mkdir()
    good = {"problem": "What is 1+1?", "solution": "$\\boxed{2}$", "level": "Level 1", "type": "Algebra"}
    (folder / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"problem": "No solution?"}) + "\n{oops\n")
    with pytest.raises(UserError, match=r"bad math/train row at .*train\.jsonl:2: missing or empty 'solution'"):
        build("math", folder, "train")
    problems, summary = build("math", folder, "train", skip_invalid=True)
    assert len(problems) == 1 and summary["math/train"]["dropped"] == {
        "invalid row (missing or empty 'solution')": 1,
        "invalid row (not JSON (Expecting property name enclosed in double quotes))": 1}


def test_missing_local_copies_and_the_hub_say_what_to_pass(tmp_path):
    with pytest.raises(UserError, match=r"openr1 not found: --source for paper_mix must hold math/, openr1/, gsm8k/"):
        (tmp_path / "gsm8k").symlink_to(SOURCES / "gsm8k")
        (tmp_path / "math").symlink_to(SOURCES / "math")
        build("paper_mix", tmp_path, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty: no train\.jsonl, train\.parquet or data/train-\*\.parquet"):
        build("math", tmp_path / "empty", "train")
    with pytest.raises(UserError, match=r"nowhere not found"):
        build("math", tmp_path / "nowhere", "train")
    # tests never touch the network (conftest sets HF_DATASETS_OFFLINE): the hub path fails readably
    with pytest.raises(UserError, match=r"could not load hub:DigitalLearningGmbH/MATH-lighteval/train .* --source"):
        build("math", None, "train")
