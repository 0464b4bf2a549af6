"""States a model or adapter goes through, and the count of requests holding a loaded version."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum


class ModelState(str, Enum):
    """What `GET /v1/models` reports for a model or an adapter."""

    AVAILABLE = "available"  # registered, not in memory (never loaded, lazy, or evicted)
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"  # deleted: finishing in-flight work, then freed
    FAILED = "failed"  # the last load failed; requests answer 502 with the reason


class Holds:
    """How many requests hold one loaded version; a version is freed only once none does.

    A request acquires before its first await on the version and releases after its last
    batch, so "idle" means no queued or running work can touch the weights: safe to evict,
    swap out or unload.
    """

    def __init__(self, on_idle: Callable[[], None] | None = None) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_idle = on_idle

    @property
    def busy(self) -> bool:
        return self.count > 0

    def acquire(self) -> None:
        self.count += 1
        self._idle.clear()

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()
            if self._on_idle is not None:
                self._on_idle()

    async def drain(self) -> None:
        """Wait until no request holds this version."""
        await self._idle.wait()
