"""The Serve application: one gateway (HTTP) in front of the engine replicas.

`build(config, options)` is what `rerankd serve --ray` runs; `app` is the application builder
for `serve run rerankd.ray:app` and Serve config files, taking `rerankd serve`'s own flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ray import serve
from ray.serve import Application

from rerankd.api.app import ServerConfig
from rerankd.ray.gateway import Gateway
from rerankd.ray.options import RayOptions
from rerankd.ray.replica import replica_class

REPLICA_DEPLOYMENT = "EngineReplica"
GATEWAY_DEPLOYMENT = "Gateway"


def build(config: ServerConfig, options: RayOptions) -> Application:
    """The deployments with their defaults (a Serve config file may override any of them)."""
    slots = options.slots(len(config.models), config.registry.max_loaded_models)
    if config.registry.max_loaded_models is None or config.registry.max_loaded_models > slots:
        # The replica's own LRU evicts at the multiplexing slot count, so both agree on what is resident.
        config = dataclasses.replace(config, registry=dataclasses.replace(config.registry, max_loaded_models=slots))
    scaling: dict[str, Any] = {"num_replicas": options.replicas}
    if options.max_replicas is not None:
        scaling = {
            "autoscaling_config": {
                "min_replicas": options.replicas,
                "max_replicas": options.max_replicas,
                "target_ongoing_requests": options.target_ongoing_requests,
            }
        }
    resources: dict[str, Any] = {"num_cpus": options.replica_cpus}
    if options.replica_gpus:
        resources["num_gpus"] = options.replica_gpus
    replicas = serve.deployment(
        replica_class(slots),
        name=REPLICA_DEPLOYMENT,
        ray_actor_options=resources,
        max_ongoing_requests=options.max_ongoing_requests,
        # Serve's own drain: a replica stopped (scale-down, redeploy) finishes its requests first.
        graceful_shutdown_timeout_s=config.drain_timeout,
        **scaling,
    ).bind(config, options)
    gateway = serve.deployment(
        Gateway,
        name=GATEWAY_DEPLOYMENT,
        num_replicas=1,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=1024,
        graceful_shutdown_timeout_s=config.drain_timeout,
    )
    return gateway.bind(replicas, config, options)


def app(args: dict[str, Any]) -> Application:
    """`serve run rerankd.ray:app` / a Serve config's `args`: {"flags": [rerankd serve's flags]}.

    e.g. `args: {flags: ["--model", "reranker=BAAI/bge-reranker-v2-m3", "--replicas", "2"]}`; the
    flags are parsed by `rerankd serve`'s own parser (the HTTP host and port are Serve's, though:
    `http_options` in the config file).
    """
    from rerankd.cli import ray_serve_settings

    flags = args.get("flags", [])
    if isinstance(flags, str):
        import shlex

        flags = shlex.split(flags)
    config, options, _, _ = ray_serve_settings([str(flag) for flag in flags])
    return build(config, options)
