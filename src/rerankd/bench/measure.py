"""What one benchmark mode measured, and the statistics derived from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class ModeResult:
    """One mode (engine / http / baseline) at one concurrency."""

    mode: str
    concurrency: int
    requests: int
    pairs: int
    tokens: int
    wall_s: float
    latencies_s: list[float] = field(repr=False)
    padding_waste: float | None = None
    peak_memory_bytes: int | None = None
    peak_device_memory_bytes: int | None = None
    flops: float = 0.0

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.wall_s if self.wall_s else 0.0

    def latency(self, percentile: float) -> float:
        return float(np.percentile(self.latencies_s, percentile)) if self.latencies_s else 0.0

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("latencies_s")
        data.update(
            pairs_per_s=round(self.pairs_per_s, 2),
            tokens_per_s=round(self.tokens_per_s, 1),
            flops_per_s=self.flops_per_s,
            p50_s=round(self.latency(50), 4),
            p95_s=round(self.latency(95), 4),
            p99_s=round(self.latency(99), 4),
        )
        return data


@dataclass
class Target:
    """One goal from the throughput issue: measured value against its bound."""

    name: str
    value: float
    bound: float
    higher_is_better: bool

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.higher_is_better else self.value <= self.bound

    def summary(self) -> dict:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "bound": self.bound,
            "higher_is_better": self.higher_is_better,
            "met": self.met,
        }
