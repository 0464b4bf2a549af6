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

    def ticker(self, name: str, total: int, every: float = 10.0) -> Ticker:
        """Call the result once per finished request: `name: done/total requests` at most every `every` seconds."""
        return Ticker(self, name, total, every)


class Ticker:
    """Progress inside one long stage (a mode runs its requests for minutes without another line)."""

    def __init__(self, progress: Progress, name: str, total: int, every: float) -> None:
        self.progress, self.name, self.total, self.every = progress, name, total, every
        self.done = 0
        self.began = self.last = time.monotonic()

    def __call__(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            rate = self.done / (now - self.began)
            left = (self.total - self.done) / rate
            self.progress.note(f"  {self.name}: {self.done}/{self.total} requests, about {left:.0f}s left")


QUIET = Progress(enabled=False)
