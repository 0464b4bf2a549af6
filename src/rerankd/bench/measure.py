"""What one benchmark mode measured, and the statistics derived from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rerankd.bench.agreement import Agreement


@dataclass
class ModeResult:
    """One row: rerankd's engine or server at one concurrency and precision, or one peer engine.

    `mode` is "engine", "http" or "peer"; `name` is what the row is called ("rerankd http",
    "st-onnx-int8"); `numerics` what the engine reports it computes in; `scores` each query's
    scores in request order (keyed by the query's position in the bench data), for `agreement`.
    """

    mode: str
    name: str
    precision: str | None
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
    numerics: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    scores: dict[int, list[float]] = field(default_factory=dict, repr=False)
    agreement: Agreement | None = None

    @property
    def label(self) -> str:
        """The row's name in tables: `rerankd http (fast)`, `st-onnx-int8`."""
        return f"{self.name} ({self.precision})" if self.precision else self.name

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
        for name in ("latencies_s", "scores", "agreement"):
            data.pop(name)
        data.update(
            agreement=self.agreement.summary() if self.agreement else None,
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
    """One goal from the throughput issues: measured value against its bound.

    `name` is stable across runs (what to look a target up by); `detail` says what was compared
    in this run (which peer, which rates).
    """

    name: str
    value: float
    bound: float
    higher_is_better: bool
    precision: str | None = None
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.higher_is_better else self.value <= self.bound

    def summary(self) -> dict:
        return {
            "name": self.name,
            "precision": self.precision,
            "detail": self.detail,
            "value": self.value if abs(self.value) < 1e-3 else round(self.value, 4),
            "bound": self.bound,
            "higher_is_better": self.higher_is_better,
            "met": self.met,
        }
