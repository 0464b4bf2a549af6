"""Run README snippets with a client library, in its own venv, and report what they printed.

`tests/test_client_libraries.py` starts this with `.venv-clients/bin/python` (not rerankd's venv:
the libraries pull langchain-core, pydantic, numpy, openai, posthog...), with modules to import
ahead as arguments (while the server starts). It reads one JSON object on stdin:
`{"url", "preamble", "snippets": {name: code}}`; every snippet runs after the preamble, in a module
of its own, with `http://localhost:8080` replaced by the live server's URL. It writes
`{"printed": {name: stdout}, "failed": {name: traceback}, "connections": [...], "blocked": [...]}`.

Before any library is imported, every outbound connection and name lookup of this process (all
threads) goes through `NetworkGuard`: loopback is allowed and recorded, anything else (a telemetry
endpoint, a model hub, the real Cohere API) is refused before a packet leaves and recorded in
`blocked`, so the test can assert that the server's URL is the only one any library used.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.metadata
import io
import ipaddress
import json
import socket
import sys
import traceback
import types
from typing import Any

README_URL = "http://localhost:8080"


def is_loopback(host: object) -> bool:
    if host in ("localhost", "localhost.", b"localhost"):
        return True
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host)).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Loopback only: other name lookups and connections raise `OSError` and are remembered."""

    def __init__(self) -> None:
        self.connections: list[str] = []
        self.blocked: list[str] = []
        self._getaddrinfo = socket.getaddrinfo
        self._connect = socket.socket.connect
        self._connect_ex = socket.socket.connect_ex

    def install(self) -> None:
        guard = self

        def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
            if host is not None and not is_loopback(host):
                guard.blocked.append(f"lookup {host}:{port}")
                raise socket.gaierror(socket.EAI_NONAME, f"blocked by the test: {host} is not loopback")
            return guard._getaddrinfo(host, port, *args, **kwargs)

        def check(sock: socket.socket, address: Any) -> None:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return
            host, port = address[0], address[1]
            if not is_loopback(host):
                guard.blocked.append(f"connect {host}:{port}")
                raise ConnectionRefusedError(f"blocked by the test: {host} is not loopback")
            guard.connections.append(f"{host}:{port}")

        def connect(self: socket.socket, address: Any) -> None:
            check(self, address)
            return guard._connect(self, address)

        def connect_ex(self: socket.socket, address: Any) -> int:
            check(self, address)
            return guard._connect_ex(self, address)

        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


def run(request: dict[str, Any], guard: NetworkGuard) -> dict[str, Any]:
    printed: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, code in request["snippets"].items():
        source = (request.get("preamble", "") + "\n" + code).replace(README_URL, request["url"])
        # A module of its own, registered, so that pydantic models the snippet defines resolve their annotations.
        module = types.ModuleType(f"readme_snippet_{name}")
        sys.modules[module.__name__] = module
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(source, f"<README snippet {name}>", "exec"), module.__dict__)
        except BaseException:
            failed[name] = traceback.format_exc()
        printed[name] = out.getvalue()
    return {"printed": printed, "failed": failed}


def versions(distributions: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in distributions:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main() -> None:
    guard = NetworkGuard()
    guard.install()
    result: dict[str, Any] = {}

    def report() -> None:
        # Registered before any library is imported, so it runs after their own exit handlers
        # (atexit is last in, first out): a telemetry client flushing at exit is still seen.
        result.update(connections=sorted(set(guard.connections)), blocked=guard.blocked)
        json.dump(result, sys.__stdout__)
        sys.__stdout__.flush()

    atexit.register(report)
    # Modules named on the command line are imported while the test still waits for its server
    # (never one whose import reads a setting a snippet makes first, such as Haystack's telemetry).
    for name in sys.argv[1:]:
        importlib.import_module(name)
    request = json.load(sys.stdin)
    result.update(run(request, guard), versions=versions(request.get("versions", [])))


if __name__ == "__main__":
    main()
