"""What `GET /v1/models` says about a model and its adapters (plain dicts; no HTTP here)."""

from __future__ import annotations

import time

from rerankd.models.catalog import ModelSpec
from rerankd.registry.adapters import AdapterEntry
from rerankd.registry.entries import ModelEntry
from rerankd.registry.lifecycle import State


def describe_model(entry: ModelEntry) -> dict:
    """What `GET /v1/models/{name}` reports: state, weights, memory, adapters, use."""
    version = entry.current
    spec = version.spec if version else entry.spec
    info: dict = {
        "id": entry.name,
        "name": entry.name,
        "object": "model",
        "source": entry.source,
        "revision": entry.revision,
        "state": entry.state.value,
        "loaded": version is not None,
        "lazy": entry.lazy,
        "family": spec.family if spec else None,
        "catalog_id": spec.catalog_id if spec else None,
        "device": str(version.placement.device) if version else None,
        "dtype": version.placement.dtype_name if version else None,
        "memory_bytes": version.memory_bytes if version else 0,
        "adapters_memory_bytes": version.adapter_bytes if version else 0,
        "requests_served": entry.requests_served,
        "loads": entry.loads,
        "evictions": entry.evictions,
        "swaps": entry.swaps,
        "idle_seconds": round(time.monotonic() - entry.last_used, 3),
        "adapters": [describe_adapter(entry, adapter) for adapter in entry.adapters.values()],
    }
    if version is not None:
        family = version.family
        info.update(
            loaded_at=version.loaded_at,
            max_sequence_length=family.max_length,
            accepts_instruction=family.accepts_instruction,
            queue={"in_flight_requests": version.requests, "holds": version.holds.count},
            execution=family.execution,
        )
    if entry.swap_source is not None:
        info["swap"] = {"state": State.LOADING.value, "source": entry.swap_source}
    if entry.state is State.FAILED and entry.failure is not None:
        info["last_error"] = {"message": entry.failure.message, "error_class": entry.failure.error_class}
    if entry.last_swap_error is not None:
        info["last_swap_error"] = entry.last_swap_error
    return info


def describe_adapter(entry: ModelEntry, adapter: AdapterEntry) -> dict:
    """One adapter of `entry`: its state on the current version, memory and use."""
    loaded = entry.current.adapters.get(adapter.name) if entry.current is not None else None
    state = adapter.state
    if loaded is not None:
        state = State.LOADED
    elif state is State.LOADED:  # attached to a version that is no longer current
        state = State.REGISTERED
    info: dict = {
        "id": f"{entry.name}:{adapter.name}",
        "name": adapter.name,
        "model": entry.name,
        "object": "adapter",
        "source": adapter.source,
        "state": state.value,
        "memory_bytes": loaded.memory_bytes if loaded else 0,
        "requests_served": adapter.requests_served,
        "loads": adapter.loads,
        "evictions": adapter.evictions,
    }
    if state is State.FAILED:
        info["last_error"] = {"message": adapter.error}
    return info


def describe_catalog_model(spec: ModelSpec) -> dict:
    """A catalog id nobody registered: what it is, and that it can be loaded by that name."""
    return {
        "id": spec.name,
        "name": spec.name,
        "object": "model",
        "source": spec.name,
        "state": State.REGISTERED.value,
        "loaded": False,
        "family": spec.family,
        "catalog_id": spec.name,
        "registered": False,
        "architecture": spec.architecture,
        "max_length": spec.max_length,
        "license": spec.license,
        "notes": spec.notes,
    }
