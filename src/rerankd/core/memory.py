"""Giving memory back to the OS: glibc's malloc keeps freed heap pages unless told otherwise.

After a flood, Python objects, tokenizer buffers and CPU tensors (torch allocates them with
plain malloc) are freed, but glibc keeps the pages in its arenas (one per thread that ever
contended, up to 8 x cores) so the process's RSS stays near its peak. Two remedies, both
no-ops where glibc is absent (musl, macOS):

* `limit_arenas(n)` at start-up, before threads exist: fewer arenas, less memory stranded in them;
* `IdleTrim`: `malloc_trim(0)` once the engine has had no request for a moment, which hands the
  free pages of every arena back to the OS.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _libc()


def limit_arenas(count: int) -> bool:
    """At most `count` malloc arenas (glibc); True if set. Call before worker threads start."""
    return _LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, int(count)) == 1


def malloc_trim() -> bool:
    """Return every arena's free pages to the OS (glibc); True if some memory was released."""
    return _LIBC is not None and _LIBC.malloc_trim(0) == 1


class IdleTrim:
    """`malloc_trim` once no request has been running for `delay` seconds (None: never).

    The engine calls `enter`/`leave` around every request on the event loop; the trim itself
    runs in a worker thread (it walks every arena and can take tens of milliseconds after a
    flood) and at most once per idle period.
    """

    def __init__(self, delay: float | None) -> None:
        self.delay = delay if _LIBC is not None else None
        self.trims = 0
        self._active = 0
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> None:
        self._active += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def leave(self) -> None:
        self._active -= 1
        if self._active == 0 and self.delay is not None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._active == 0:
            task = asyncio.get_running_loop().run_in_executor(None, malloc_trim)
            task.add_done_callback(self._done)

    def _done(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self.trims += 1
            log.debug("idle: malloc_trim gave memory back: %s", future.result())
