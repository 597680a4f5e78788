"""`gsm8k-rl prepare` on the real GSM8K files, read back by VERL's own RLHFDataset."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from gsm8k_rl import UserError
from gsm8k_rl.cli import main
from gsm8k_rl.task.gsm8k import gold_number, load_gsm8k_split
from gsm8k_rl.task.prepare import make_row, prepare, prompt_lengths
from gsm8k_rl.task.prompt import SYSTEM_PROMPT, TEMPLATES

MAX_PROMPT_LENGTH = 512  # the recipe's data.max_prompt_length


@pytest.fixture(scope="module")
def prepared(gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gsm8k")
    assert main(["prepare", "--source", str(gsm8k_dir), "--out", str(out)]) == 0
    return out


def test_real_counts_and_schema(prepared, gsm8k_dir):
    train = pq.read_table(prepared / "train.parquet").to_pylist()
    test = pq.read_table(prepared / "test.parquet").to_pylist()
    assert (len(train), len(test)) == (7473, 1319)
    row = train[0]
    assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert row["data_source"] == "openai/gsm8k"
    assert row["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    first = json.loads((gsm8k_dir / "train.jsonl").read_text().splitlines()[0])
    assert row["prompt"][1] == {"role": "user", "content": first["question"].strip()}
    assert row["reward_model"] == {"style": "rule", "ground_truth": "72"}  # Natalia's clips
    assert row["extra_info"]["split"] == "train" and row["extra_info"]["index"] == 0
    assert row["extra_info"]["answer"] == first["answer"]
    assert [r["extra_info"]["index"] for r in test] == list(range(1319))
    info = json.loads((prepared / "prepare_info.json").read_text())
    assert info["rows"] == {"train": 7473, "test": 1319}


def test_ground_truth_has_no_commas(prepared):
    gts = [r["ground_truth"] for r in pq.read_table(prepared / "train.parquet").column("reward_model").to_pylist()]
    assert all("," not in g and g.lstrip("-").replace(".", "").isdigit() for g in gts)
    assert "1000" in gts or any(len(g) >= 4 for g in gts)


def test_deterministic_rerun_and_no_silent_overwrite(prepared, gsm8k_dir, tmp_path):
    prepare(tmp_path, source=gsm8k_dir, splits=("test",))
    assert (tmp_path / "test.parquet").read_bytes() == (prepared / "test.parquet").read_bytes()
    # the same command again is the job already done (README: "re-run the same command"), not refused
    prepare(tmp_path, source=gsm8k_dir, splits=("test",))
    with pytest.raises(UserError, match=r"test\.parquet already exists with other rows \(prepared with prompt_template "
                                        r"'plain' -> 'hash'\): pass --overwrite"):
        prepare(tmp_path, source=gsm8k_dir, splits=("test",), template="hash")
    prepare(tmp_path, source=gsm8k_dir, splits=("test",), template="hash", overwrite=True)
    assert json.loads((tmp_path / "prepare_info.json").read_text())["prompt_template"] == "hash"


def test_prepare_is_all_or_nothing_and_a_rerun_finishes_it(gsm8k_dir, tmp_path):
    """Issue 29: a missing test.jsonl was found after train.parquet was written, and re-running the
    command was then refused ("already exist"). Every input is read first; the splits are written
    beside their targets and renamed into place together; the same command finishes the job."""
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    (source / "train.jsonl").write_bytes((gsm8k_dir / "train.jsonl").read_bytes())
    with pytest.raises(UserError, match=r"src/test\.jsonl not found"):
        prepare(out, source=source)
    assert not out.exists()
    lines = (gsm8k_dir / "test.jsonl").read_text().splitlines(keepends=True)
    (source / "test.jsonl").write_text(lines[0] + '{"question": "Q?", "answer": "no marker"}\n' + "".join(lines[1:]))
    with pytest.raises(UserError, match=r"test\.jsonl:2: 'answer' does not end"):
        prepare(out, source=source)
    assert not out.exists()
    # a split that would replace other rows stops the whole job after both were written beside: none is
    # renamed into place, and nothing half-done is left
    (source / "test.jsonl").write_text("".join(lines))
    out.mkdir()
    (out / "test.parquet").write_bytes((gsm8k_dir / "test.jsonl").read_bytes())  # not these rows (not even a parquet)
    with pytest.raises(UserError,
                       match=r"test\.parquet already exists with other rows \(not described by prepare_info"):
        prepare(out, source=source)
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet"]
    (out / "test.parquet").unlink()
    assert main(["prepare", "--source", str(source), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["prepare_info.json", "test.parquet", "train.parquet"]
    assert main(["prepare", "--source", str(source), "--out", str(out)]) == 0  # once more: nothing to do


def test_prepare_info_keeps_every_split(gsm8k_dir, tmp_path):
    """Issue 29: `--splits train` then `--splits test` into one --out left only the last split's count and
    sha256 in prepare_info.json; each split keeps its record, with its own settings."""
    prepare(tmp_path, source=gsm8k_dir, splits=("train",), limit=5)
    prepare(tmp_path, source=gsm8k_dir, splits=("test",), limit=3, template="hash")
    info = json.loads((tmp_path / "prepare_info.json").read_text())
    assert info["rows"] == {"train": 5, "test": 3}
    assert set(info["sha256"]) == {"train", "test"}
    assert info["prompt_template"] == {"train": "plain", "test": "hash"} and info["dataset"] == "gsm8k"
    assert info["splits"]["train"]["limit"] == 5 and info["splits"]["test"]["prompt_template"] == "hash"
    for split in ("train", "test"):
        digest = hashlib.sha256((tmp_path / f"{split}.parquet").read_bytes()).hexdigest()
        assert info["sha256"][split] == info["splits"][split]["sha256"] == digest


@pytest.mark.parametrize("thinking", [False, True])
def test_verl_rlhf_dataset_loads_with_real_tokenizer(prepared, qwen3_tokenizer, thinking):
    """VERL's own loader + the real Qwen3 chat template; nothing is filtered out as overlong."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = OmegaConf.create({
        "max_prompt_length": MAX_PROMPT_LENGTH,
        "filter_overlong_prompts": True,
        "filter_overlong_prompts_workers": 1,
        "apply_chat_template_kwargs": {"enable_thinking": thinking},
        "cache_dir": str(prepared / "cache"),
    })
    ds = RLHFDataset(str(prepared / "test.parquet"), qwen3_tokenizer, cfg)
    assert len(ds) == 1319  # no prompt was dropped by VERL's length filter
    item = ds[5]
    assert item["raw_prompt"][1]["role"] == "user"
    assert item["reward_model"]["ground_truth"] == gold_number(item["extra_info"]["answer"])
    rendered = qwen3_tokenizer.apply_chat_template(item["raw_prompt"], tokenize=False,
                                                   add_generation_prompt=True, enable_thinking=thinking)
    assert rendered.endswith("<|im_start|>assistant\n" + ("" if thinking else "<think>\n\n</think>\n\n"))


def test_no_prompt_exceeds_max_prompt_length(prepared, qwen3_tokenizer):
    for split in ("train", "test"):
        for thinking in (False, True):
            lengths = prompt_lengths(prepared / f"{split}.parquet", qwen3_tokenizer, thinking)
            assert max(lengths) <= MAX_PROMPT_LENGTH, (split, thinking, max(lengths))
            assert min(lengths) > 20


def test_bad_row_names_file_and_line(tmp_path):
    good = {"question": "Q?", "answer": "so 3\n#### 3"}
    (tmp_path / "test.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps({"question": "Q2?", "answer": "no marker"}) + "\n"
        + json.dumps({"question": "", "answer": "#### 4"}) + "\n" + "{not json\n"
    )
    with pytest.raises(UserError, match=r"test\.jsonl:2: 'answer' does not end with '#### <number>'"):
        load_gsm8k_split(tmp_path, "test")
    rows = load_gsm8k_split(tmp_path, "test", skip_invalid=True)
    assert rows == [good]
    assert main(["prepare", "--source", str(tmp_path), "--out", str(tmp_path / "o"), "--splits", "test"]) == 2


def test_non_utf8_byte_names_file_and_line(tmp_path, capsys):
    """Issue 29: a byte that is not UTF-8 was a UnicodeDecodeError traceback, also with --skip-invalid."""
    good = json.dumps({"question": "Q?", "answer": "so 3\n#### 3"}).encode()
    latin1 = b'{"question": "Caf\xe9?", "answer": "#### 4"}\n'
    (tmp_path / "test.jsonl").write_bytes(good + b"\n" + latin1 + good + b"\n")
    out = ["--source", str(tmp_path), "--out", str(tmp_path / "o"), "--splits", "test"]
    assert main(["prepare", *out]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"gsm8k-rl prepare: error: bad GSM8K row at {tmp_path / 'test.jsonl'}:2: not "
                                        "UTF-8 text (byte 0xe9 at column 18) (use --skip-invalid to skip such rows)"]
    assert main(["prepare", *out, "--skip-invalid"]) == 0
    assert pq.read_table(tmp_path / "o" / "test.parquet").num_rows == 2


def test_missing_source_file(tmp_path):
    with pytest.raises(UserError, match="train.jsonl not found"):
        load_gsm8k_split(tmp_path, "train")


def test_alternative_template_is_named(gsm8k_dir):
    row = make_row("How many?", "#### 1,234", "test", 0, template="hash")
    assert row["prompt"][1]["content"] == TEMPLATES["hash"].format(question="How many?")
    assert row["reward_model"]["ground_truth"] == "1234"
    assert row["extra_info"]["prompt_template"] == "hash"


def test_platinum_local(platinum_dir, tmp_path):
    counts = prepare(tmp_path, source=platinum_dir, dataset="platinum", splits=("test",))
    assert counts == {"test": 1209}
    assert pq.read_table(tmp_path / "test.parquet").column("data_source")[0].as_py() == "madrylab/gsm8k-platinum"
