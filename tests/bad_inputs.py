"""The bad inputs of docs/bad_input.md, tried as a new user would: each case sets up its inputs, runs
`gsm8k-rl` (CLI calls and dry runs: no training), and the table is rebuilt from what the command
printed and its exit code. tests/test_bad_inputs.py runs every case and compares its row with the doc.

    PYTHONPATH=src python tests/bad_inputs.py      # rewrite the table in docs/bad_input.md

Needs the real GSM8K files (../shared/data/gsm8k, as the tests) and builds the tiny random model.
The "VERL alone" column is what VERL 0.9.1 does with the same input: text checked against VERL's code
(file and function named) or, for the reward rows, VERL's own GSM8K scorer called on the same text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad_input.md"
BEGIN = "<!-- begin table: written by tests/bad_inputs.py, checked by tests/test_bad_inputs.py -->"
END = "<!-- end table -->"
MODEL = "MODEL"  # how the tiny model's folder is shown


@dataclasses.dataclass
class Assets:
    gsm8k: Path  # the real GSM8K release (train.jsonl, test.jsonl)
    model: Path  # a model folder that loads offline (the tiny random Qwen3)


@dataclasses.dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    warnings: list[str]


@dataclasses.dataclass
class Case:
    id: str
    stage: str
    what: str  # the mistake, in the user's words
    argv: list[str]  # after `gsm8k-rl`; paths relative to the case's folder, MODEL for the model
    verl: str | Callable[[], str]  # what VERL alone does with the same input
    setup: Callable[[Path, Assets], None] = lambda folder, assets: None
    check: Callable[[Path, Result, Assets], None] = lambda folder, result, assets: None  # what the run left
    interrupt_after: str | None = None  # run in a subprocess and send SIGINT after this stderr text


# ------------------------------------------------------------------------------------------- setups


def _source(folder: Path, assets: Assets, splits=("train", "test"), rows: int = 200) -> Path:
    """src/{split}.jsonl: the first `rows` lines of the real GSM8K files."""
    src = folder / "src"
    src.mkdir(exist_ok=True)
    for split in splits:
        lines = (assets.gsm8k / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (src / f"{split}.jsonl").write_text("".join(lines[:rows]), encoding="utf-8")
    return src


def _prepared(folder: Path, assets: Assets, out: str = "data", rows: int = 128, **kw) -> None:
    from gsm8k_rl.task.prepare import prepare

    prepare(folder / out, source=assets.gsm8k, limit=rows, **kw)


def _non_utf8(folder: Path, assets: Assets) -> None:
    src = _source(folder, assets)
    lines = (src / "test.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"question": "', b'"question": "Caf\xe9: ', 1)  # Latin-1, not UTF-8
    (src / "test.jsonl").write_bytes(b"".join(lines))


def _mixed_templates(folder: Path, assets: Assets) -> None:
    _prepared(folder, assets, splits=("train",))
    _prepared(folder, assets, splits=("test",), template="hash")
    (folder / "data" / "prepare_info.json").unlink()  # the rows alone say which prompt they carry


BASE = Path("run") / "eval" / "base"


def _digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / BASE).iterdir())}


def _base_eval_other_cap(folder: Path, assets: Assets) -> None:
    """A finished base eval of the smoke run's 8 problems, as `gsm8k-rl run --smoke` makes it but with
    16 new tokens instead of its 32, where the run looks for its base eval (as BASE_EVAL=DIR copies it)."""
    from gsm8k_rl.launch.smoke import SMOKE_DATA

    made = run_in_process(folder, ["eval", "--model", MODEL, "--out", str(BASE), "--source", str(SMOKE_DATA),
                                   "--no-thinking", "--template", "plain", "--backend", "transformers",
                                   "--limit", "8", "--max-new-tokens", "16"], assets.model)
    assert made.rc == 0, made.stderr
    (folder / "base_eval_before.json").write_text(json.dumps(_digests(folder)))


def _base_eval_untouched(folder: Path, result: Result, assets: Assets) -> None:
    assert _digests(folder) == json.loads((folder / "base_eval_before.json").read_text()), "the base eval was changed"
    assert not (folder / "run" / "resolved_config.yaml").exists(), "the run went on to its plan"


def _report_run_only_config(folder: Path, assets: Assets) -> None:
    (folder / "runs" / "ppo").mkdir(parents=True)


# ------------------------------------------------------------------------------------------- checks


def _nothing_written(path: str) -> Callable[[Path, Result, Assets], None]:
    def check(folder: Path, result: Result, assets: Assets) -> None:
        assert not (folder / path).exists() or not any((folder / path).iterdir()), f"{path} was written"
    return check


def _then(argv: list[str], rc: int = 0) -> Callable[[Path, Result, Assets], None]:
    """The fix (or the same command again) passes afterwards, in the same folders."""
    def check(folder: Path, result: Result, assets: Assets) -> None:
        again = run_in_process(folder, argv, assets.model)
        assert again.rc == rc, again.stderr
    return check


def _all(*checks: Callable[[Path, Result, Assets], None]) -> Callable[[Path, Result, Assets], None]:
    def check(folder: Path, result: Result, assets: Assets) -> None:
        for c in checks:
            c(folder, result, assets)
    return check


def _interrupted(folder: Path, result: Result, assets: Assets) -> None:
    info = json.loads((folder / "run" / "run_info.json").read_text())
    assert info["status"] == "interrupted", info
    assert "Traceback" not in result.stderr, result.stderr


def _verl_gsm8k(text: str, gold: str) -> Callable[[], str]:
    def run() -> str:
        from verl.utils.reward_score import gsm8k

        return (f"its GSM8K scorer (verl/utils/reward_score/gsm8k.py, strict `#### N`): "
                f"{float(gsm8k.compute_score(text, gold))}")
    return run


# -------------------------------------------------------------------------------------------- cases

NO_PREPARE = ("— (VERL's wheel has no data preparation; its repository's examples/data_preprocess/gsm8k.py reads the "
              "hub dataset)")
DRY = ["train", "--dry-run", "--run-dir", "run", "--data", "data", "--model", MODEL]

CASES = [
    Case("prepare-missing-split", "prepare", "`test.jsonl` missing from --source",
         ["prepare", "--source", "src", "--out", "data"], NO_PREPARE,
         setup=lambda f, a: _source(f, a, splits=("train",)), check=_nothing_written("data")),
    Case("prepare-non-utf8", "prepare", "a byte that is not UTF-8 (Latin-1 é) on line 3 of test.jsonl",
         ["prepare", "--source", "src", "--out", "data"], NO_PREPARE, setup=_non_utf8, check=_nothing_written("data")),
    Case("prepare-non-utf8-skip", "prepare", "the same with --skip-invalid",
         ["prepare", "--source", "src", "--out", "data", "--skip-invalid"], NO_PREPARE, setup=_non_utf8),
    Case("prepare-rerun", "prepare", "the same command again (after it finished, or after Ctrl-C)",
         ["prepare", "--source", "src", "--out", "data"], NO_PREPARE,
         setup=lambda f, a: (_source(f, a), run_in_process(f, ["prepare", "--source", "src", "--out", "data"], None))),
    Case("prepare-other-template", "prepare", "another --template into a folder already prepared",
         ["prepare", "--source", "src", "--out", "data", "--template", "hash"], NO_PREPARE,
         setup=lambda f, a: (_source(f, a), run_in_process(f, ["prepare", "--source", "src", "--out", "data"], None))),
    Case("prepare-limit-zero", "prepare", "`--limit 0`",
         ["prepare", "--source", "src", "--out", "data", "--limit", "0"],
         NO_PREPARE, setup=_source, check=_nothing_written("data")),
    Case("train-other-prompt", "train", "data prepared with `--template hash` for the default config (prompt `plain`)",
         DRY, "trains on the rows' `prompt` column as it is: VERL has no notion of the prompt the evals use "
              "(verl/utils/dataset/rl_dataset.py)",
         setup=lambda f, a: _prepared(f, a, template="hash"),
         check=_all(_nothing_written("run"), _then(DRY + ["prepare.template=hash"]))),
    Case("train-mixed-prompts", "train", "train.parquet prepared plain, test.parquet with `hash`, no prepare_info.json",
         DRY, "the same: each file's rows as they are", setup=_mixed_templates),
    Case("train-too-few-rows", "train", "10 training rows, data.train_batch_size=128", DRY,
         "validate_config passes; after Ray, the workers and the first validation, the v1 trainer divides by "
         "its steps per epoch, 10 // 128 = 0: ZeroDivisionError (verl/trainer/ppo/v1/trainer_base.py, fit)",
         setup=lambda f, a: _prepared(f, a, rows=10)),
    Case("doctor-too-few-rows", "doctor", "the same, checked by `doctor`",
         ["doctor", "--run-dir", "run", "--data", "data", "--model", MODEL], "—",
         setup=lambda f, a: _prepared(f, a, rows=10)),
    Case("train-bad-type", "train", "`data.train_batch_size=abc`", DRY + ["data.train_batch_size=abc"],
         "validate_config (verl/utils/config.py, in main before Ray): `TypeError: not all arguments converted "
         "during string formatting` and a stack (run on CPU)",
         setup=_prepared, check=_nothing_written("run")),
    Case("train-typo-added-key", "train", "`++trainer.total_epochz=3` (typo of total_epochs)",
         DRY + ["++trainer.total_epochz=3"],
         "Hydra adds the key and no VERL code reads it: the run trains with trainer.total_epochs unchanged",
         setup=_prepared, check=_nothing_written("run")),
    Case("train-typo-key", "train", "`trainer.totl_training_steps=3` (no `+`)", DRY + ["trainer.totl_training_steps=3"],
         "Hydra refuses it before anything starts: `Could not override 'trainer.totl_training_steps'. Key "
         "'totl_training_steps' is not in struct` (exit 1, run on CPU)", setup=_prepared),
    Case("train-mini-batch", "train", "`data.train_batch_size=100` with mini-batches of 64",
         DRY + ["data.train_batch_size=100"],
         "validate_config passes (it checks mini <= batch only) and Ray starts; the first actor update asserts "
         "`100 % 64 != 0` (verl/utils/tensordict_utils.py, make_iterator), after the first rollout",
         setup=_prepared),
    Case("train-no-gpus", "train", "`--gpus 0`", DRY + ["--gpus", "0"],
         "— (a launcher option); its VERL key, trainer.n_gpus_per_node=0: validate_config raises `ZeroDivisionError: "
         "integer modulo by zero` with fixed micro-batches (verl/utils/config.py) and passes with token budgets "
         "(run on CPU)", setup=_prepared, check=_nothing_written("run")),
    Case("train-no-files", "train", "`data.train_files=[]`", DRY + ["data.train_files=[]"],
         "validate_config passes; in the Ray task runner its dataset raises `ValueError: Unable to concatenate an "
         "empty list of datasets` (verl/utils/dataset/rl_dataset.py, RLHFDataset._read_files_and_tokenize; run on CPU)",
         setup=_prepared, check=_nothing_written("run")),
    Case("train-ctrl-c", "train", "Ctrl-C (SIGINT) while the launch starts VERL",
         ["train", "--backend", "local", "--run-dir", "run", "--data", "data", "--model", MODEL],
         "main_ppo has no handler for it (verl/trainer/main_ppo.py): Python's KeyboardInterrupt stack",
         setup=_prepared, check=_interrupted,
         interrupt_after="launching VERL"),
    Case("run-base-eval-other-cap", "run",
         "a finished base eval in the run folder (e.g. copied in by BASE_EVAL=DIR) made with another token cap",
         ["run", "--smoke", "--run-dir", "run", "--model", MODEL, "--response-length", "auto"],
         "— (VERL has no base eval: its validation generates again in every run)",
         setup=_base_eval_other_cap, check=_base_eval_untouched),
    Case("report-typo", "report", "a mistyped --run", ["report", "--run", "runs/pp", "--out", "report"], "—",
         setup=_report_run_only_config, check=_nothing_written("report")),
    Case("report-nothing", "report", "an empty run folder and no eval",
         ["report", "--run", "runs/ppo", "--out", "report"],
         "—", setup=_report_run_only_config, check=_nothing_written("report")),
    Case("reward-division-by-zero", "reward", "model output \"The answer is 3/0\", gold 0",
         ["reward", "The answer is 3/0", "--gt", "0"], _verl_gsm8k("The answer is 3/0", "0")),
    Case("reward-scientific", "reward", "model output \"#### 1e3\", gold 1",
         ["reward", "#### 1e3", "--gt", "1"], _verl_gsm8k("#### 1e3", "1")),
]


# ------------------------------------------------------------------------------------------ running


def _argv(argv: list[str], model: Path | None) -> list[str]:
    return [str(model) if a == MODEL and model is not None else a for a in argv]


def run_in_process(folder: Path, argv: list[str], model: Path | None) -> Result:
    """`gsm8k-rl ARGV` in this process, from `folder`: exit code, stdout, stderr and warnings logged."""
    from gsm8k_rl.cli import main

    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(folder)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(_argv(argv, model))
    finally:
        os.chdir(cwd)
        logging.getLogger().removeHandler(handler)
    return Result(rc, out.getvalue(), err.getvalue(), records)


def _restore_sigint() -> None:
    """A shell starts a command with SIGINT unblocked and at its default; a test runner may not."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_interrupted(folder: Path, argv: list[str], model: Path, after: str, timeout: float = 120) -> Result:
    """`gsm8k-rl ARGV` in its own interpreter, sent SIGINT (Ctrl-C) once its stderr shows `after`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    with open(folder / "stdout.txt", "w") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "gsm8k_rl.cli", *_argv(argv, model)], cwd=folder, env=env,
                                stdout=stdout, stderr=subprocess.PIPE, text=True, preexec_fn=_restore_sigint)
        seen = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                seen.append(line)
                if after in line:
                    proc.send_signal(signal.SIGINT)
                    break
            _, rest = proc.communicate(timeout=timeout)
            seen.append(rest)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Result(proc.returncode, (folder / "stdout.txt").read_text(), "".join(seen), [])


def shown(result: Result) -> str:
    """What the user reads: the command's error (or interruption) line, else its warnings and output."""
    if result.rc != 0:
        lines = result.stderr.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("gsm8k-rl ")), None)
        if start is not None:
            return "\n".join(lines[start:]).strip()
        # doctor prints its checks: the failed config check (the others depend on the machine)
        out = result.stdout.splitlines()
        start = next(i for i, line in enumerate(out) if line.startswith("[FAIL] config"))
        end = next((i for i in range(start + 1, len(out)) if out[i].startswith("[") or not out[i].strip()), len(out))
        return "\n".join(" ".join(line.split()) for line in out[start:end])
    skipped = [w for w in result.warnings if w.startswith("skipped ")]
    return "\n".join(skipped + result.stdout.strip().splitlines())


def run_case(case: Case, root: Path, assets: Assets) -> tuple[Result, str]:
    """Set the case up in root/<id>, run it, check what it left; returns the result and its message,
    with the case folder and the model folder written as in the doc."""
    folder = (root / case.id).resolve()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    case.setup(folder, assets)
    if case.interrupt_after:
        result = run_interrupted(folder, case.argv, assets.model, case.interrupt_after)
    else:
        result = run_in_process(folder, case.argv, assets.model)
    case.check(folder, result, assets)
    text = shown(result).replace(str(folder) + os.sep, "").replace(str(folder), ".")
    return result, text.replace(str(assets.model.resolve()), MODEL).replace(str(assets.model), MODEL)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def row(case: Case, result: Result, message: str) -> str:
    verl = case.verl() if callable(case.verl) else case.verl
    command = "gsm8k-rl " + " ".join(a if a and " " not in a else json.dumps(a) for a in case.argv)
    return (f"| {case.stage} | {_cell(case.what)}<br>`{_cell(command)}` | {_cell(message)} | {result.rc} | "
            f"{_cell(verl)} |")


HEADER = ("| stage | bad input | what gsm8k-rl says | exit | VERL alone |\n"
          "|---|---|---|---|---|")


def table(rows: list[str]) -> str:
    return "\n".join([BEGIN, "", HEADER, *rows, "", END])


def doc_rows(text: str) -> list[str]:
    """The table rows as docs/bad_input.md holds them."""
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| stage |")]


def main() -> None:
    import tempfile

    from gsm8k_rl.launch.smoke import build_tiny_model

    shared = Path(os.environ.get("GSM8K_RL_SHARED", REPO.parent / "shared"))
    with tempfile.TemporaryDirectory() as tmp:
        assets = Assets(shared / "data" / "gsm8k", build_tiny_model(Path(tmp) / "model"))
        rows = [row(case, *run_case(case, Path(tmp) / "cases", assets)) for case in CASES]
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + table(rows) + rest.split(END, 1)[1])
    print(f"wrote {len(rows)} rows into {DOC}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
