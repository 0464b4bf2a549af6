"""One compute thread per device, shared by every model placed on it.

A single thread per device keeps models from fighting over the same cores (CPU) or stream
(GPU); each model's scheduler keeps at most a couple of batches queued there, so models take
turns batch by batch. The registry uses the same thread to change a network's adapter hooks,
so such a change can never interleave with a forward pass.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


class ComputeThreads:
    """Lazily created single-thread executors keyed by device name (`cpu`, `cuda:0`...)."""

    def __init__(self) -> None:
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def executor(self, device: object) -> ThreadPoolExecutor:
        key = str(device)
        with self._lock:
            if key not in self._executors:
                self._executors[key] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"rerankd-compute-{key}")
            return self._executors[key]

    def shutdown(self) -> None:
        with self._lock:
            for executor in self._executors.values():
                executor.shutdown(wait=False, cancel_futures=True)
            self._executors.clear()
