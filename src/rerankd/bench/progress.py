"""Progress lines on stderr: a bench runs for minutes, and a user should see which stage it is in."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """One line when a stage starts and one when it ends, stamped with seconds since the bench began."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.began = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def note(self, text: str) -> None:
        if self.enabled:
            stream = self.stream or sys.stderr
            print(f"[bench {self.elapsed():7.1f}s] {text}", file=stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """`name ...` now, `name done in Xs` (or `failed`) when the block ends."""
        self.note(f"{name} ...")
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self.note(f"{name} failed after {time.monotonic() - began:.1f}s")
            raise
        self.note(f"{name} done in {time.monotonic() - began:.1f}s")


QUIET = Progress(enabled=False)
