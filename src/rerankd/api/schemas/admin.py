"""Bodies of the model and adapter admin routes, and of health checks.

Model and adapter info (`ModelInfo`, `AdapterInfo`, `MemoryInfo`) are the registry's plain dicts,
passed through unchanged so a field the registry adds reaches clients without an API change;
their Structs here only document them (tests check real answers against the document).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

_NOT_BLANK = {"pattern": r"\S"}


class ModelSource(msgspec.Struct, forbid_unknown_fields=True):
    """Load `name` from `source`, or hot-swap it when it is serving."""

    source: Annotated[
        str,
        Meta(description="local directory, catalog id or Hugging Face id; not blank", extra_json_schema=_NOT_BLANK),
    ]
    revision: Annotated[str | None, Meta(description="Hugging Face revision (branch, tag or commit)")] = None


class AdapterSource(msgspec.Struct, forbid_unknown_fields=True):
    """Load (or replace) a PEFT LoRA adapter."""

    source: Annotated[
        str,
        Meta(
            description="directory with adapter_config.json and adapter_model.safetensors; not blank",
            extra_json_schema=_NOT_BLANK,
        ),
    ]


class LastError(msgspec.Struct):
    message: str | None
    error_class: str | None = None


class AdapterInfo(msgspec.Struct):
    """One adapter of a model (documentation of the registry's dict)."""

    id: Annotated[str, Meta(description="`model:adapter`, usable as a model id")]
    name: str
    model: str
    object: str
    source: str
    state: Annotated[str, Meta(description="available, loading, loaded, unloading or failed")]
    memory_bytes: int
    requests_served: int
    loads: int
    evictions: int
    last_error: LastError | None = None


class ModelInfo(msgspec.Struct):
    """A served model (documentation of the registry's dict; it may carry more fields)."""

    id: str
    name: str
    object: str
    source: str
    state: Annotated[str, Meta(description="available, loading, loaded, unloading or failed")]
    loaded: bool
    registered: Annotated[bool, Meta(description="served here (false: a catalog id that is not)")]
    revision: str | None = None
    lazy: bool | None = None
    family: str | None = None
    catalog_id: str | None = None
    device: str | None = None
    dtype: str | None = None
    memory_bytes: int | None = None
    adapters_memory_bytes: int | None = None
    requests_served: int | None = None
    loads: int | None = None
    evictions: int | None = None
    swaps: int | None = None
    idle_seconds: float | None = None
    adapters: list[AdapterInfo] | None = None
    loaded_at: float | None = None
    max_sequence_length: int | None = None
    accepts_instruction: bool | None = None
    queue: Annotated[dict[str, Any] | None, Meta(description="scheduler counters of the loaded version")] = None
    execution: Annotated[
        dict[str, Any] | None,
        Meta(
            description="how the loaded version runs: precision (exact/fast), backend (torch/openvino), numerics, "
            "whether the last layer is computed for the first token only, and the check or calibration behind it"
        ),
    ] = None
    swap: Annotated[dict[str, Any] | None, Meta(description="a hot-swap in progress")] = None
    last_error: LastError | None = None
    last_swap_error: str | None = None


class CatalogModel(msgspec.Struct):
    """A catalog id this server does not serve (yet): `PUT /v1/models/{name}` loads it."""

    id: str
    name: str
    object: str
    source: str
    state: str
    loaded: bool
    family: str
    catalog_id: str
    registered: bool
    architecture: str | None
    max_length: int | None
    license: str | None
    notes: str | None


class MemoryInfo(msgspec.Struct):
    """What is resident against `--memory-budget` and `--max-loaded-models`."""

    used_bytes: int
    budget_bytes: int | None
    loaded_models: int
    max_loaded_models: int | None


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# The registry's dicts, encoded as they are, documented by the Structs above.
_ModelOrCatalog = {"anyOf": [_ref("ModelInfo"), _ref("CatalogModel")]}
ModelEntries = Annotated[list[Any], Meta(extra_json_schema={"items": _ModelOrCatalog})]


class ModelList(msgspec.Struct):
    """Served models, then catalog ids not served."""

    object: str
    data: Annotated[ModelEntries, Meta(description="the OpenAI-style list")]
    models: Annotated[ModelEntries, Meta(description="the same list, where sie-sdk's list_models() reads it")]
    memory: Annotated[dict[str, Any], Meta(extra_json_schema=_ref("MemoryInfo"))]
    hardware: Annotated[
        dict[str, Any],
        Meta(
            description="the CPU (features after ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY caps, cores, caches, "
            "whether bf16 is native, the int8 instructions), PyTorch's kernel level and the CPU backends installed"
        ),
    ] = {}


# `GET /v1/models/{name}`: a served model, a catalog id, or `name:adapter` (a JSON Schema: msgspec
# has no untagged union of Structs, and this one is only ever encoded).
MODEL_OR_ADAPTER = {"anyOf": [_ref("ModelInfo"), _ref("CatalogModel"), _ref("AdapterInfo")]}
# Referenced above by name, so always in the document's components.
DOCUMENTED_ONLY = (ModelInfo, AdapterInfo, CatalogModel, MemoryInfo)


class Deleted(msgspec.Struct):
    id: str
    object: Annotated[str, Meta(description="model or adapter")]
    deleted: bool


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    """Ready when the start-up models (not `--lazy`) serve — all, or any with `--ready-when any` — and not draining."""

    ready: bool
    models: Annotated[dict[str, str], Meta(description="each served model's state")]
    not_ready: Annotated[
        dict[str, str],
        Meta(description="start-up models that cannot serve yet, with their state (available, loading, failed)"),
    ] = {}
    draining: Annotated[bool, Meta(description="the server is shutting down: it takes no new requests")] = False
