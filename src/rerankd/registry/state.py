"""States a model or adapter goes through."""

from __future__ import annotations

from enum import Enum


class ModelState(str, Enum):
    """What `GET /v1/models` reports for a model or an adapter."""

    AVAILABLE = "available"  # registered, not in memory (never loaded, lazy, or evicted)
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"  # deleted: finishing in-flight work, then freed
    FAILED = "failed"  # the last load failed; requests answer 502 with the reason
