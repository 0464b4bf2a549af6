"""How `rerankd` runs on Ray Serve: replicas, their resources, autoscaling, multiplexing and sharding."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayOptions:
    """What `rerankd serve --ray` adds to `rerankd serve`'s flags (a Serve config file can override
    the deployments' `num_replicas`, `autoscaling_config` and `ray_actor_options` too)."""

    # Replicas of the engine (each a process with its own registry, schedulers and LRU).
    replicas: int = 1
    # With a maximum, Serve autoscales between `replicas` and it on ongoing requests per replica.
    max_replicas: int | None = None
    target_ongoing_requests: float = 2.0
    # Requests one replica takes at once (they batch together in its engine).
    max_ongoing_requests: int = 64
    # Ray resources of one replica; `threads` (torch, OpenVINO) follow `replica_cpus` unless set.
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    threads: int | None = None
    # Models one replica keeps loaded (Serve's multiplexing LRU and the replica's registry agree on it);
    # None: every `--model`, or `--max-loaded-models` when that is set.
    model_slots: int | None = None
    # A request with more items than this is split into one shard per replica (at most), scored
    # concurrently and merged; 0 never splits.
    shard_items: int = 1000
    # A shard whose replica died (or was unreachable) is sent again this many times, then 503.
    retries: int = 3
    # An existing cluster to join ("auto", "ray://host:10001", "127.0.0.1:6379"); None starts one here.
    address: str | None = None
    # How often the gateway collects every replica's model report (GET /v1/models, /readyz).
    report_seconds: float = 1.0

    def slots(self, models: int, max_loaded_models: int | None) -> int:
        """Models per replica for `serve.multiplexed` (at least one)."""
        if self.model_slots is not None:
            return max(1, self.model_slots)
        if max_loaded_models is not None:
            return max(1, max_loaded_models)
        return max(1, models)

    def replica_threads(self) -> int:
        """Compute threads of one replica: its CPUs (Ray does not pin, so more would oversubscribe)."""
        if self.threads is not None:
            return self.threads
        return max(1, int(self.replica_cpus))
