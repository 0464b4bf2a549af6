"""One compute thread per device, shared by every model placed on it.

A single thread per device keeps models from fighting over the same cores (CPU) or stream
(GPU); each model's scheduler keeps at most a couple of batches queued there, so models take
turns batch by batch.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch


class ComputeThreads:
    """Lazily created single-thread executors keyed by device."""

    def __init__(self) -> None:
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def executor(self, device: torch.device) -> ThreadPoolExecutor:
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
