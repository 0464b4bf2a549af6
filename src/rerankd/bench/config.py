"""What one `rerankd bench` run measures: the model, the requests, the precisions and the peers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rerankd.bench.data import BenchQuery
from rerankd.engine.scheduler import SchedulerConfig

PRECISIONS = ("exact", "fast")


@dataclass(frozen=True)
class RunSize:
    """How much work a run does: requests per concurrency-1 mode, concurrencies, the scale check, warm-up."""

    requests: int
    concurrencies: list[int]
    engine_concurrencies: list[int] | None = None  # None: 1 and the highest HTTP concurrency
    scale_items: tuple[int, int] = (100, 1000)
    scale_repeats: int = 2
    warmup: int = 2
    warmup_documents: int | None = None

    def engine_levels(self) -> list[int]:
        return self.engine_concurrencies or sorted({1, max(self.concurrencies)})


# --quick, sized by work for 2 AVX2 cores (15-30 pairs/s) in under 2 minutes, about 1,500 pairs:
# HTTP with 2 requests at concurrency 1 and 4 at 4, the engine at 4 only (what the server is held
# to), one 100-item request against ten 10-item ones, and 20-document warm-ups.
QUICK = RunSize(2, [1, 4], [4], (10, 100), scale_repeats=1, warmup=1, warmup_documents=20)


@dataclass(frozen=True)
class Job:
    """One request: `query` is the bench data's query number `index` (agreement is per query)."""

    index: int
    query: BenchQuery


@dataclass
class BenchConfig:
    """What to run. `requests` is per concurrency-1 mode; a mode at concurrency c sends max(requests, c)."""

    model_name: str
    model_source: str
    queries: list[BenchQuery]
    requests: int
    concurrencies: list[int]
    engine_concurrencies: list[int]
    scale_items: tuple[int, int] = (100, 1000)
    scale_repeats: int = 2  # the scale check keeps the best of this many runs of each size
    device: str = "auto"
    dtype: str = "auto"
    precisions: list[str] = field(default_factory=lambda: ["exact"])
    backend: str = "auto"
    cache_dir: Path | None = None
    calibration_data: Path | None = None
    threads: int | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    peers: list[str] = field(default_factory=lambda: ["st-torch-fp32"])
    peers_python: Path | None = None
    http: bool = True
    warmup: int = 2
    warmup_documents: int | None = None  # None: warm-up requests are full size
    server_ready_timeout: float = 900.0  # a --precision fast server calibrates while it loads

    def jobs(self, concurrency: int = 1) -> list[Job]:
        """The requests of a mode at `concurrency`: the bench queries in order, cycled if need be."""
        count = max(self.requests, concurrency)
        return [Job(i % len(self.queries), self.queries[i % len(self.queries)]) for i in range(count)]

    def warmup_queries(self) -> list[BenchQuery]:
        cut = self.warmup_documents
        return [BenchQuery(q.query, q.documents[:cut] if cut else q.documents) for q in self.queries[: self.warmup]]

    def engine_options(self, precision: str) -> list[str]:
        """The engine options for `rerankd serve` that match `RegistrySettings` in engine mode."""
        args = ["--device", self.device, "--dtype", self.dtype, "--precision", precision, "--backend", self.backend]
        if self.cache_dir is not None:
            args += ["--cache-dir", str(self.cache_dir)]
        if self.calibration_data is not None:
            args += ["--calibration-data", str(self.calibration_data)]
        return args
