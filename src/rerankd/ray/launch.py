"""`rerankd serve --ray`: start (or join) a Ray cluster, run the application, serve until stopped."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal

from rerankd.api.app import ServerConfig
from rerankd.ray.options import RayOptions

log = logging.getLogger(__name__)

# Ray's usage statistics are never sent (set before `ray` is imported; a user's own setting wins).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def serve_on_ray(config: ServerConfig, options: RayOptions, host: str, port: int) -> int:
    import ray
    from ray import serve

    from rerankd.ray.application import build

    started_here = options.address is None
    init: dict = {"include_dashboard": False, "namespace": "rerankd"}
    if started_here and _is_loopback(host):
        init["_node_ip_address"] = host  # a local server stays on the loopback (Ray's own ports too, where it can)
    ray.init(address=options.address, **init)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build(config, options), name="rerankd", route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        log.info("stopping: replicas finish their requests (up to %.0f s)", config.drain_timeout)
    finally:
        if started_here:
            serve.shutdown()
        else:
            serve.delete("rerankd")
        ray.shutdown()
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
