"""The one failure `rerankd eval` and `rerankd finetune` report as a single line (exit code 2)."""

from __future__ import annotations


class BadInput(Exception):
    """Something the user gave cannot be used: a file, a folder, an id, a model, a URL.

    The message is the whole report: it names the file (and line) or option at fault and, where
    it helps, what was expected. Commands print it on one line and exit 2, never a traceback.
    """
