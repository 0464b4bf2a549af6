"""A count of who still needs a model version, and a way to wait until nobody does.

Requests hold the version they resolved until their result exists, and the engine holds it
for every batch it dispatches until that batch has finished on the compute thread. Weights
are freed only once the count is back to zero, so no batch ever runs on freed weights,
whether its request finished, failed or was cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Holds:
    """Reference count with an awaitable "idle" state; used on the event loop thread only."""

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
        if self.count <= 0:
            raise RuntimeError("released a hold that was never acquired")
        self.count -= 1
        if self.count == 0:
            self._idle.set()
            if self._on_idle is not None:
                self._on_idle()

    async def drain(self) -> None:
        """Wait until nothing holds this any more."""
        await self._idle.wait()
