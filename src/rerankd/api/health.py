"""Liveness and readiness: what a load balancer or an orchestrator probes, never behind a key.

    GET /healthz    liveness: 200 while the process answers (draining included)
    GET /readyz     readiness: 200 only when the start-up models serve and the server is not draining
    GET /health     readiness under TEI's name

Readiness (`--ready-when`): `all` (default) waits for every `--model` not marked `--lazy` to be
loaded; `any` is satisfied by one of them. A model counts once it has loaded — an eviction
or a reload afterwards does not make the server unready (it loads again on demand) — and
never while its last load failed. Models deleted through the admin API no longer count.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rerankd.api.codec import render
from rerankd.api.common import ApiContext, context
from rerankd.api.openapi import JSON, Operation
from rerankd.api.schemas import admin as wire

READY_POLICIES = ("all", "any")


def _serves(info: dict) -> bool:
    """Whether a model can serve: loaded now, or loaded before and not failed since (evicted, reloading)."""
    return info["state"] == "loaded" or (info["loads"] > 0 and info["state"] != "failed")


def readiness(ctx: ApiContext) -> wire.Readiness:
    registry = ctx.registry
    infos = {name: registry.describe(name) for name in registry.names()}
    eager = [name for name in ctx.eager if name in infos]
    waiting = {name: infos[name]["state"] for name in eager if not _serves(infos[name])}
    if not eager:
        models_ready = True
    elif ctx.ready_when == "any":
        models_ready = len(waiting) < len(eager)
    else:
        models_ready = not waiting
    draining = ctx.drain.draining
    return wire.Readiness(
        ready=models_ready and not draining,
        models={name: info["state"] for name, info in infos.items()},
        not_ready=waiting,
        draining=draining,
    )


async def healthz(request: Request) -> Response:
    return render(wire.Health(status="ok"), msgpack_body=False)


async def readyz(request: Request) -> Response:
    body = readiness(context(request))
    return render(body, msgpack_body=False, status=200 if body.ready else 503)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/health", readyz, methods=["GET"]),  # TEI's name: 200 once the server can score
]

_NOT_READY = "Not ready: start-up models still loading or failed (`not_ready` names them), or draining."
operations = [
    Operation("GET", "/healthz", "Liveness", tag="Health", response=wire.Health, media=(JSON,), open=True),
    *(
        Operation(
            "GET",
            path,
            summary,
            tag="Health",
            response=wire.Readiness,
            media=(JSON,),
            open=True,
            also={503: (wire.Readiness, _NOT_READY)},
        )
        for path, summary in (
            ("/readyz", "Readiness: start-up models loaded (`--ready-when`), not draining"),
            ("/health", "Readiness, under TEI's name"),
        )
    ),
]
