"""What the engine and the registry report as they work, for metrics: a framework-free observer.

The engine and the registry call these hooks; the API layer (`api/metrics.py`) implements them
with prometheus-client. Nothing below the API imports a metrics library, and by default every
hook does nothing. Hooks are called on the event loop, never from worker threads, and must be
cheap: they sit on the hot path (one call per request stage and per batch).

A model is named by its registered name; an adapter's work is reported under `name:adapter`.
"""

from __future__ import annotations

from enum import Enum


class ModelEvent(str, Enum):
    """Something that happened to a model's (or adapter's) weights."""

    LOADED = "load"  # a load finished (on demand, at start-up, or a PUT of an unloaded name)
    SWAPPED = "swap"  # a hot-swap put a new version in place
    EVICTED = "eviction"  # freed to make room (LRU)
    FAILED = "failure"  # a load or swap failed (not "no room yet", which is transient)
    UNLOADED = "unload"  # deleted by the admin API


class Observer:
    """No-op hooks; subclass and override what you record."""

    def tokenized(self, model: str, seconds: float, items: int, units: int) -> None:
        """One request's texts became `units` token sequences in `seconds` (in the tokenizer pool)."""

    def queue_wait(self, model: str, seconds: float) -> None:
        """A request waited `seconds` from joining the queue until its first batch was dispatched."""

    def batch(self, model: str, size: int, real_tokens: int, padded_tokens: int, seconds: float) -> None:
        """A batch of `size` sequences ran (collate and forward) in `seconds` on the compute thread."""

    def model_event(self, model: str, event: ModelEvent, kind: str = "model") -> None:
        """`event` happened to `model` (`kind`: "model" or "adapter")."""


NO_OBSERVER = Observer()
