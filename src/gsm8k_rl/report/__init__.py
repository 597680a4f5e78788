"""`gsm8k-rl report`: report.md + PNG plots from a training run and eval result folders.

Run: `gsm8k-rl report --run runs/ppo --base-eval evals/base --trained-eval evals/ppo --out report/`
(`--eval NAME=DIR` adds more eval folders, e.g. GSM8K-Platinum results).

Inputs: a run folder written by `gsm8k-rl train` (metrics.jsonl from VERL's file logger,
run_info.json, resolved_config.yaml) and eval folders written by `gsm8k-rl eval` (metrics.json,
samples.jsonl, eval_settings.json). Every number in the report is read from these files or
computed from them; anything absent from them is printed as "missing / not yet run", never guessed.
A folder given that does not exist, or inputs that hold nothing to report, is an error (exit 2).
The base-vs-trained comparison is paired (same problems): exact McNemar test on the problems
exactly one of the two models solves, with the fixed/broken counts and examples of each.
Folders are named relative to the folder that holds --out when they lie under it (a report written
beside its run, as in `--out runs/ppo/report`, reads the same on every machine), absolute otherwise.

Modules: `format` (numbers, tables), `load` (run and eval folders, pairing), `plots` (the PNGs),
`markdown` (report.md, report.json, `write_report`); this one is the command line.
"""

from __future__ import annotations

import argparse

from gsm8k_rl import UserError
from gsm8k_rl.report.format import MISSING
from gsm8k_rl.report.load import EvalData, RunData, compare, load_eval, load_run
from gsm8k_rl.report.markdown import TRUNCATION_MANAGER, display_path, relative_to_root, report_root, write_report
from gsm8k_rl.report.plots import TRAINING_PANELS

__all__ = ["MISSING", "TRAINING_PANELS", "TRUNCATION_MANAGER", "EvalData", "RunData", "add_arguments", "compare",
           "display_path", "load_eval", "load_run", "relative_to_root", "report_root", "run", "write_report"]


def _name_dir(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name, path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", default=None, help="training run folder (metrics.jsonl, run_info.json, "
                                               "resolved_config.yaml)")
    p.add_argument("--base-eval", default=None, help="eval folder of the base model")
    p.add_argument("--trained-eval", default=None, help="eval folder of the PPO model")
    p.add_argument("--eval", action="append", default=[], type=_name_dir, metavar="NAME=DIR",
                   help="more eval folders (repeatable)")
    p.add_argument("--out", required=True, help="folder for report.md and the PNG plots")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    evals: dict[str, str | None] = {"base": args.base_eval, "trained": args.trained_eval}
    for name, path in args.eval:
        if name in evals:
            raise UserError(f"--eval {name}={path}: the name {name!r} is already used; pick another")
        evals[name] = path
    # a folder given must exist (a typo must not read as "not yet run"); what a folder lacks is reported
    flags = {"--run": args.run, "--base-eval": args.base_eval, "--trained-eval": args.trained_eval,
             **{f"--eval {name}=": path for name, path in args.eval}}
    absent = [f"{flag}{'' if flag.endswith('=') else ' '}{path}" for flag, path in flags.items()
              if path is not None and not Path(path).is_dir()]
    if absent:
        raise UserError(f"no such folder: {', '.join(absent)} (leave out what has not been run yet)")
    if not load_run(args.run).found and not any(load_eval(n, p).found for n, p in evals.items() if p is not None):
        given = [f"{flag}{'' if flag.endswith('=') else ' '}{path}" for flag, path in flags.items() if path is not None]
        raise UserError("nothing to report: " + (
            f"no training metrics, run_info.json or resolved_config.yaml and no finished eval (metrics.json) in "
            f"{', '.join(given)}" if given else "give --run and/or --base-eval / --trained-eval / --eval NAME=DIR"))
    report = write_report(args.run, evals, args.out)
    print(report)
    return 0
