"""The HTTP ingress: `rerankd serve`'s own app (`create_app`) over the cluster's registry and engine."""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp

from rerankd.api.app import ServerConfig, create_app
from rerankd.core.observer import Observer
from rerankd.ray.cluster import ClusterService
from rerankd.ray.options import RayOptions


@serve.ingress()
class Gateway:
    """Parses every dialect, splits and routes requests, answers with one process's API.

    Light (no model, no torch threads): it holds the model table admin writes change, so a
    deployment runs one of it (Serve restarts it if it dies; the replicas keep their models).
    """

    def __init__(self, replicas: DeploymentHandle, config: ServerConfig, options: RayOptions) -> None:
        self.replicas = replicas
        self.config = config
        self.options = options

    def __serve_build_asgi_app__(self) -> ASGIApp:
        def service(config: ServerConfig, observer: Observer) -> ClusterService:
            return ClusterService.connect(config, self.options, self.replicas)

        return create_app(self.config, service)
