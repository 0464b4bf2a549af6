"""How `rerankd ... --help` reads: every default shown, the environment variables each command reads listed.

The command line itself is `cli.py`; this is only its help's form, so that a command added there
(built with `Parser`, which `add_subparsers(parser_class=Parser)` gives every subcommand) gets it too.
"""

from __future__ import annotations

import argparse

# Options whose default comes from the environment and is a secret: --help names the variable, never the value.
SECRET_OPTIONS = {"api_key", "admin_api_key"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`--help` gives each option's default, unless its text already does or it has none; epilogs stay as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default == []
        if no_default or action.dest in SECRET_OPTIONS or "(default" in text.lower():
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every parser and subcommand parser formats its help with `HelpFormatter`."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def environment_epilog(*rows: tuple[str, str]) -> str:
    """An epilog listing the environment variables a command reads."""
    width = max(len(name) for name, _ in rows)
    return "environment variables:\n" + "\n".join(f"  {name:<{width}}  {what}" for name, what in rows)


HF_ENVIRONMENT = (
    ("HF_HOME", "the Hugging Face cache hub ids are read from (and downloaded to: --allow-download)"),
    ("HF_HUB_OFFLINE", "1: never contact the hub"),
    ("XDG_CACHE_HOME", "--cache-dir defaults to $XDG_CACHE_HOME/rerankd (~/.cache/rerankd)"),
)
