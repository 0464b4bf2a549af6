"""`GET /metrics`: Prometheus metrics from prometheus-client, on a registry of the app's own.

Three sources:

* the HTTP layer (`api/requests.py`) counts requests by route, method, model and status,
  times them end to end, and counts rejections by error code;
* the engine and the registry report through `core.observer.Observer` hooks, implemented
  here (`PrometheusObserver`): tokenization, queue wait, batches, model loads and evictions;
* state read at scrape time (`ServiceCollector`): queue depth, loaded models and their memory.

Each app has its own `CollectorRegistry` (not prometheus-client's global one), so several
apps in one process (tests) never collide. Metrics are updated and scraped on the event
loop only. Models are labelled by registered name (`name:adapter` for an adapter's work);
requests for names not served here are labelled `model=""` so clients cannot grow the label set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.openapi import Operation
from rerankd.core.observer import ModelEvent, Observer

PREFIX = "rerankd"

# Seconds: a 1-item request on a GPU (1 ms) to a 10,000-item request on a CPU (minutes).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PADDED_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class PrometheusObserver(Observer):
    """The engine's and the registry's reports, as prometheus-client metrics on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        model = ["model"]
        self.tokenize = Histogram(
            f"{PREFIX}_tokenize_seconds",
            "Time to tokenize one request (in the tokenizer pool, not waiting for it)",
            model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.waited = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a request waited in its model's queue until its first batch was dispatched",
            model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference = Histogram(
            f"{PREFIX}_inference_seconds",
            "Time one batch took on the compute thread (collate and forward)",
            model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size", "Sequences per batch", model, buckets=BATCH_SIZE_BUCKETS, registry=registry
        )
        self.padded_tokens = Histogram(
            f"{PREFIX}_batch_padded_tokens",
            "Padded tokens per batch (sequences x longest sequence)",
            model,
            buckets=PADDED_TOKEN_BUCKETS,
            registry=registry,
        )
        self.real_tokens = Counter(
            f"{PREFIX}_batch_real_tokens", "Tokens computed that were not padding", model, registry=registry
        )
        self.events = {
            event: Counter(f"{PREFIX}_model_{name}", help_text, ["model", "kind"], registry=registry)
            for event, name, help_text in (
                (ModelEvent.LOADED, "loads", "Loads of a model or adapter (a hot-swap's new version included)"),
                (ModelEvent.SWAPPED, "swaps", "Hot-swaps: a new version replaced a serving one"),
                (ModelEvent.EVICTED, "evictions", "Models or adapters evicted to make room (LRU)"),
                (ModelEvent.FAILED, "load_failures", "Loads or swaps that failed"),
                (ModelEvent.UNLOADED, "unloads", "Models or adapters deleted through the admin API"),
            )
        }
        # Running sums for the padding-waste gauge (the counters above are not readable cheaply).
        self.token_sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def tokenized(self, model: str, seconds: float, items: int, units: int) -> None:
        self.tokenize.labels(model).observe(seconds)

    def queue_wait(self, model: str, seconds: float) -> None:
        self.waited.labels(model).observe(seconds)

    def batch(self, model: str, size: int, real_tokens: int, padded_tokens: int, seconds: float) -> None:
        self.inference.labels(model).observe(seconds)
        self.batch_size.labels(model).observe(size)
        self.padded_tokens.labels(model).observe(padded_tokens)
        self.real_tokens.labels(model).inc(real_tokens)
        sums = self.token_sums[model]
        sums[0] += real_tokens
        sums[1] += padded_tokens

    def model_event(self, model: str, event: ModelEvent, kind: str = "model") -> None:
        self.events[event].labels(model, kind).inc()


class HttpMetrics:
    """What the request middleware records: one call per finished request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route template, method, model and status",
            ["route", "method", "model", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "End-to-end request latency, from the first byte read to the last byte written",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            f"{PREFIX}_http_requests_rejected",
            "Requests answered with an error, by its code (QUEUE_FULL, INVALID_REQUEST, ...)",
            ["code"],
            registry=registry,
        )

    def record(self, route: str, method: str, model: str, status: int, seconds: float, code: str | None) -> None:
        self.requests.labels(route, method, model, str(status)).inc()
        self.duration.labels(route, method).observe(seconds)
        if code is not None:
            self.rejected.labels(code).inc()


# Per-model queue gauges read from each `Scheduler` at scrape time: (metric suffix, help, attribute).
QUEUE_GAUGES = (
    ("queue_units", "Units (sequences) waiting for a batch", "queued_units"),
    ("queue_tokens", "Tokens waiting for a batch (what --max-queued-tokens bounds)", "queued_tokens"),
    ("queue_reserved_tokens", "Estimated tokens of admitted requests still being tokenized", "reserved_tokens"),
    ("queue_active_requests", "Requests in a model's queue (waiting or running)", "active_requests"),
    ("queue_inflight_batches", "Batches dispatched to the compute thread", "inflight_batches"),
)


class ServiceCollector(Collector):
    """Gauges read at scrape time: queues, loaded models and their memory.

    `service` returns the running `Service` (None before start-up finished). Per-model queue
    figures sum every scheduler of that label (a hot-swap briefly has two).
    """

    def __init__(self, service: Callable[[], object | None], observer: PrometheusObserver) -> None:
        self._service = service
        self._observer = observer

    def collect(self) -> Iterator[Metric]:
        service = self._service()
        queues = [GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["model"]) for name, text, _ in QUEUE_GAUGES]
        waste = GaugeMetricFamily(
            f"{PREFIX}_padding_waste_ratio",
            "Share of computed positions that were padding, since start",
            labels=["model"],
        )
        memory = GaugeMetricFamily(
            f"{PREFIX}_model_memory_bytes", "Memory of a loaded model's weights (with its adapters)", labels=["model"]
        )
        loaded = GaugeMetricFamily(f"{PREFIX}_models_loaded", "Models loaded now")
        used = GaugeMetricFamily(f"{PREFIX}_models_memory_bytes", "Memory of all loaded and draining weights")
        if service is not None:
            sums: dict[str, list[int]] = defaultdict(lambda: [0] * len(QUEUE_GAUGES))
            for scheduler in service.engine.queues():
                figures = sums[scheduler.label]
                for index, (_, _, attribute) in enumerate(QUEUE_GAUGES):
                    figures[index] += getattr(scheduler, attribute)
            for label, figures in sorted(sums.items()):
                for gauge, figure in zip(queues, figures, strict=True):
                    gauge.add_metric([label], figure)
            count = 0
            for name in service.registry.names():
                version = service.registry.current(name)
                if version is not None:
                    count += 1
                    memory.add_metric([name], version.total_bytes)
            loaded.add_metric([], count)
            used.add_metric([], service.registry.memory()["used_bytes"])
        for label, (real, padded) in sorted(self._observer.token_sums.items()):
            waste.add_metric([label], 1.0 - real / padded if padded else 0.0)
        yield from (*queues, waste, memory, loaded, used)


class Metrics:
    """Everything `/metrics` shows, for one app."""

    def __init__(self, service: Callable[[], object | None]) -> None:
        self.registry = CollectorRegistry()
        self.observer = PrometheusObserver(self.registry)
        self.http = HttpMetrics(self.registry)
        self.registry.register(ServiceCollector(service, self.observer))
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu, open fds (Linux)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def metrics(request: Request) -> Response:
    """`GET /metrics`: the Prometheus text format (open like the health routes: scrapers send no key)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
operations = [
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics",
        tag="Health",
        response={"type": "string", "description": "the Prometheus text exposition format"},
        media=("text/plain",),
        open=True,
        description="Requests, latencies, batches, queues and loaded models; open like the health routes.",
    )
]
