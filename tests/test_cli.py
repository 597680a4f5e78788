"""Every subcommand answers --help; unknown flags are errors, not silently ignored."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gsm8k_rl.cli import COMMANDS, build_parser, main


def test_all_stages_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: gsm8k-rl " + command in capsys.readouterr().out


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--ot", "x"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --ot" in capsys.readouterr().err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "gsm8k_rl.cli", "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("gsm8k-rl ")


@pytest.mark.parametrize("argv", [
    ["eval", "--model", "/no/such/dir", "--out", "OUT"],
    ["eval", "--model", "Qwen/Qwen3-1.7B", "--tokenizer", "./no/such/tokenizer", "--out", "OUT"],
    ["train", "--model", "/no/such/dir", "--dry-run"],
    ["run", "--model", "../no/such/dir"],
    ["doctor", "--model", "/no/such/dir"],
])
def test_missing_model_folder_is_named_before_anything_loads(argv, capsys):
    """A mistyped path used to reach the hub client ("Repo id must use alphanumeric chars")."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Repo id" not in err


def test_a_mistake_is_one_line_and_debug_adds_the_stack(tmp_path, capsys):
    """Issue 29: every user mistake ends in one message and exit code 2, without a stack; --debug (before
    or after the command) prints the stack as well, the message still last."""
    argv = ["report", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "report")]
    message = f"gsm8k-rl report: error: no such folder: --run {tmp_path / 'nope'} (leave out what has not been run yet)"
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    for debug in (["--debug", *argv], [argv[0], "--debug", *argv[1:]]):
        assert main(debug) == 2
        err = capsys.readouterr().err.splitlines()
        assert err[0] == "Traceback (most recent call last):" and "gsm8k_rl.UserError" in err[-2] and err[-1] == message
