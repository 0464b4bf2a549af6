"""`rerankd ... --help` gives every default and the environment variables each command reads."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from rerankd.cli import build_parser

SRC = Path(__file__).resolve().parents[1] / "src" / "rerankd"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in build_parser()._actions if a.dest == "command").choices


COMMANDS = sorted(subcommands())  # every command, those added later too


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_with_a_default_shows_it(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    sub = subcommands()[command]
    text = help_text(capsys, command)
    blocks = re.split(r"\n(?=  -)", text)  # one block per option: its names, then its help
    for action in sub._actions:
        default = action.default
        if not action.option_strings or default is None or default is False or default == [] or action.dest == "help":
            continue
        if action.dest in ("api_key", "admin_api_key"):
            continue  # a secret read from the environment: the variable is named, its value never shown
        (block,) = [b for b in blocks if b.lstrip().startswith(action.option_strings[0])]
        assert "(default" in " ".join(block.split()), f"rerankd {command} {action.option_strings[0]}: {block}"


def test_serve_help_names_the_key_variables_but_never_their_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RERANKD_API_KEY", "sekret-api-key")
    monkeypatch.setenv("RERANKD_ADMIN_API_KEY", "sekret-admin-key")
    text = help_text(capsys, "serve")
    assert "sekret" not in text
    words = " ".join(text.split())
    assert "--port PORT port to listen on (default: 8080)" in words and "(default: 127.0.0.1)" in words
    environment = text.split("environment variables:")[1]
    for variable in ("RERANKD_API_KEY", "RERANKD_ADMIN_API_KEY", "MALLOC_ARENA_MAX", "HF_HOME", "XDG_CACHE_HOME"):
        assert variable in environment


def test_every_rerankd_variable_the_code_reads_is_in_some_help(capsys: pytest.CaptureFixture[str]) -> None:
    """A new `os.environ["RERANKD_X"]` without a word in `--help` fails here."""
    read = set()
    for path in SRC.rglob("*.py"):
        read |= set(re.findall(r"""os\.environ(?:\.get\(|\[)["'](RERANKD_\w+)["']""", path.read_text()))
    assert {"RERANKD_API_KEY", "RERANKD_ADMIN_API_KEY"} <= read
    documented = "".join(help_text(capsys, command) for command in COMMANDS)
    assert sorted(variable for variable in read if variable not in documented) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--max-items", "0"], "argument --max-items: must be at least 1, got 0"),
        (["serve", "--max-items", "1.5"], "argument --max-items: expected a whole number, got '1.5'"),
        (["serve", "--drain-timeout", "-1"], "argument --drain-timeout: must not be negative, got -1.0"),
        (["finetune", "--lr", "0"], "argument --lr: must be above 0, got 0.0"),
        (["finetune", "--eval-fraction", "1"], "argument --eval-fraction: must be in [0, 1), got 1.0"),
        (["eval", "--threads", "two"], "argument --threads: expected a whole number, got 'two'"),
    ],
)
def test_a_bad_number_is_one_usage_line_naming_the_option(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(expected)
