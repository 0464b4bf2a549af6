"""Admission control for one model's queue: a bound in tokens, and when to come back.

A queue bounded in requests or units would let a thousand 1,000-document requests in as
easily as a thousand 1-document ones; what a client waits for is the tokens ahead of it, so
the bound is in tokens (the scheduler's unit costs). Past it a request is refused at once
(`QueueFull`, with `retry_after`) instead of waiting without bound.

The default bound follows the model's measured speed: `target_wait` seconds of work at the
rate the queue has been draining (`DrainRate`), never less than a floor of
`FLOOR_BATCHES` full batches (the only guide before a batch has finished). A request larger
than the whole bound is admitted only onto an empty queue, so it is slow but never refused
forever (`--max-tokens-per-request` is what refuses it outright).
"""

from __future__ import annotations

import math
import time
from collections import deque

from rerankd.core.errors import QueueFull

# Seconds of queued work the default bound allows: past that, a client is better told to retry
# (or to go to another replica) than left waiting. 30 s keeps `rerankd bench`'s 8 concurrent
# 100-document requests (~15 s of queue on 2 CPU cores) admitted, and the 91 s p99 out.
TARGET_QUEUE_SECONDS = 30.0
# The bound is never below this many full batches (CPU: 128 x 1,024 tokens; GPU: 128 x 32,768),
# which is also the whole bound until the first batch has measured a rate.
FLOOR_BATCHES = 128
# Retry-After is clamped to this range (seconds): at least 1 (HTTP's unit), at most a minute.
MIN_RETRY_AFTER = 1
MAX_RETRY_AFTER = 60


class DrainRate:
    """Tokens per second the queue drains at while it has work: a window of recent batches.

    Each finished batch adds its tokens and the busy time since the later of its dispatch and
    the previous completion, so overlapping in-flight batches never count the same second
    twice and idle gaps between requests are not counted at all.
    """

    def __init__(self, window: int = 64) -> None:
        self._batches: deque[tuple[int, float]] = deque(maxlen=window)
        self._last_done = 0.0

    def finished(self, tokens: int, dispatched_at: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        busy = now - max(dispatched_at, self._last_done)
        self._last_done = now
        if busy > 0:
            self._batches.append((tokens, busy))

    @property
    def tokens_per_second(self) -> float | None:
        seconds = sum(busy for _, busy in self._batches)
        if not self._batches or seconds <= 0:
            return None
        return sum(tokens for tokens, _ in self._batches) / seconds


class QueueBound:
    """The token bound of one queue: fixed (`--max-queued-tokens`) or from the drain rate."""

    def __init__(self, fixed: int | None, floor: int, target_wait: float = TARGET_QUEUE_SECONDS) -> None:
        self.fixed = fixed
        self.floor = floor
        self.target_wait = target_wait
        self.rate = DrainRate()

    @property
    def limit(self) -> int:
        if self.fixed is not None:
            return self.fixed
        rate = self.rate.tokens_per_second
        return max(self.floor, int(rate * self.target_wait)) if rate else self.floor

    def check(self, ahead: int, tokens: int) -> None:
        """Refuse `tokens` more when `ahead` tokens already wait and both would not fit the bound."""
        limit = self.limit
        if ahead > 0 and ahead + tokens > limit:
            raise QueueFull(
                f"{ahead} tokens already queued or being tokenized for this model (bound {limit}); retry later",
                retry_after=self.retry_after(ahead, tokens, limit),
                extra={"queued_tokens": ahead, "max_queued_tokens": limit},
            )

    def retry_after(self, ahead: int, tokens: int, limit: int) -> int:
        """Seconds until the queue has drained enough for `tokens` (all of it, if they exceed the bound)."""
        rate = self.rate.tokens_per_second
        if not rate:
            return MIN_RETRY_AFTER
        to_drain = ahead - max(0, limit - tokens)
        return min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, math.ceil(to_drain / rate)))
