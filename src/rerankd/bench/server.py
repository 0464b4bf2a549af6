"""Start a real `rerankd serve` process, for the benchmark's HTTP modes and end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies (no orphans)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """A `rerankd serve` subprocess; `url` is its base URL, `log` its combined output."""

    def __init__(self, args: list[str], *, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "rerankd.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=environment, preexec_fn=die_with_parent
        )

    def wait_ready(
        self, timeout: float = 180.0, *, heartbeat: Callable[[float], None] | None = None, every: float = 30.0
    ) -> RunningServer:
        """Poll `/readyz` until 200; `heartbeat(seconds waited)` every `every` seconds meanwhile."""
        began = time.monotonic()
        deadline = began + timeout
        beat = began + every
        while time.monotonic() < deadline:
            if heartbeat is not None and time.monotonic() >= beat:
                heartbeat(time.monotonic() - began)
                beat += every
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return self
                waiting = response.json().get("not_ready") or {}
                if waiting and set(waiting.values()) == {"failed"}:  # never ready without an admin PUT
                    self.stop()
                    raise RuntimeError(f"start-up models failed to load: {sorted(waiting)}:\n{self.log}")
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log}")

    def peak_rss_bytes(self) -> int | None:
        """The server process's peak resident memory (Linux), or None where unknown."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
