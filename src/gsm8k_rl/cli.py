"""`gsm8k-rl` — one command, one subcommand per stage.

Each stage module exposes `add_arguments(parser)` and `run(args) -> int`. Stage modules keep
heavy imports (torch, verl, vllm) inside functions so `gsm8k-rl --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from gsm8k_rl import UserError, __version__

# subcommand -> (module, one-line help). Order = pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("gsm8k_rl.task.prepare", "GSM8K (hub or local jsonl) -> VERL RL parquet"),
    "reward": ("gsm8k_rl.task.reward_cli", "score one model output against a gold answer"),
    "doctor": ("gsm8k_rl.launch.doctor", "preflight: config, data, reward, GPUs, memory, disk"),
    "train": ("gsm8k_rl.launch.train", "PPO on VERL (verl.trainer.main_ppo) with the project recipe"),
    "export": ("gsm8k_rl.launch.export", "VERL checkpoint -> HuggingFace model folder"),
    "eval": ("gsm8k_rl.evaluation.run", "greedy GSM8K evaluation with the training prompt"),
    "report": ("gsm8k_rl.report", "accuracy report with plots from runs and evals"),
    "compare": ("gsm8k_rl.report.compare_runs", "finished runs side by side: budgets, accuracy, paired tests, curves"),
    "run": ("gsm8k_rl.pipeline", "the whole chain: prepare, eval, train, export, eval, report"),
}


INTERRUPTED = "interrupted; re-run the same command to continue"
_active = 0  # commands running in this process: `gsm8k-rl run` calls the stages through main()
_debug = False  # --debug of the outermost command, which its stages inherit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsm8k-rl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gsm8k-rl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="on an error or Ctrl-C, also print the Python stack (before or after COMMAND)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)
        # SUPPRESS: absent here, it keeps the value given before the command
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the Python stack on errors")
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user's mistake (UserError) ends in one message and exit code 2, Ctrl-C in one
    line and 130, both without a stack unless --debug; anything else is a bug and keeps its stack."""
    global _active, _debug
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Only `train`/`doctor`/`run` accept free key=value VERL overrides; anything else is a typo.
    if extra:
        if getattr(args._module, "ACCEPTS_OVERRIDES", False):
            bad = [e for e in extra if "=" not in e or e.startswith("-")]
            if bad:
                parser.error(f"unrecognized arguments: {' '.join(bad)}")
            args.overrides = list(getattr(args, "overrides", []) or []) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    debug, outer_debug = args.debug or _debug, _debug
    _active, _debug = _active + 1, debug
    try:
        return int(args._module.run(args) or 0)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print(f"gsm8k-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _active > 1:
            raise  # a stage of `gsm8k-rl run`: the command the user typed says it, once
        if debug:
            traceback.print_exc()
        print(f"gsm8k-rl {args.command}: {INTERRUPTED}", file=sys.stderr)
        return 130
    finally:
        _active, _debug = _active - 1, outer_debug


if __name__ == "__main__":
    sys.exit(main())
