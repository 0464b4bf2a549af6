"""The wiring of one serving process: a registry that owns weights, an engine that batches on them.

The engine and the registry never import each other; this is where they meet, for the HTTP
app and for the in-process users (`rerankd score`, `rerankd bench`, tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rerankd.core.compute import ComputeThreads
from rerankd.core.cpu import detect
from rerankd.core.memory import IdleTrim
from rerankd.core.observer import NO_OBSERVER, Observer
from rerankd.engine.engine import Engine
from rerankd.engine.scheduler import SchedulerConfig
from rerankd.registry.registry import ModelRegistry, RegistrySettings

log = logging.getLogger(__name__)


@dataclass
class Service:
    """A registry and an engine sharing one compute thread per device."""

    registry: ModelRegistry
    engine: Engine
    compute: ComputeThreads

    @classmethod
    def create(
        cls,
        settings: RegistrySettings | None = None,
        scheduler: SchedulerConfig | None = None,
        tokenizer_threads: int | None = None,
        *,
        observer: Observer = NO_OBSERVER,
        idle_trim_seconds: float | None = None,
    ) -> Service:
        """`observer` is told what the engine and the registry do (metrics); `idle_trim_seconds`:
        give freed heap back to the OS once no request has run for that long (None: never)."""
        compute = ComputeThreads()
        log.info("CPU: %s", detect().describe())
        registry = ModelRegistry(settings, compute, observer)
        engine = Engine(registry, compute, scheduler, tokenizer_threads, observer, IdleTrim(idle_trim_seconds))
        return cls(registry, engine, compute)

    def describe(self, name: str) -> dict:
        """`GET /v1/models/{name}`: the registry's record plus the engine's queue for the current version."""
        info = self.registry.describe(name)
        version = self.registry.current(name)
        scheduler = self.engine.queue(version) if version is not None else None
        if scheduler is not None:
            stats = scheduler.stats
            info["queue"] |= {
                "active_requests": scheduler.active_requests,
                "inflight_batches": scheduler.inflight_batches,
                "batches": stats.batches,
                "padding_waste": round(stats.padding_waste, 4),
                "real_tokens": stats.real_tokens,
                "padded_tokens": stats.padded_tokens,
                "queued_units": scheduler.queued_units,
                "queued_tokens": scheduler.queued_tokens,
                "reserved_tokens": scheduler.reserved_tokens,
                "max_queued_tokens": scheduler.bound.limit,
                "drain_tokens_per_second": round(scheduler.bound.rate.tokens_per_second or 0.0, 1),
            }
        return info

    async def close(self) -> None:
        """Unload every model (in-flight work finishes first), then stop the threads."""
        await self.registry.close()
        self.engine.close()
        self.compute.shutdown()
