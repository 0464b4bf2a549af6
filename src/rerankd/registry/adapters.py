"""LoRA adapters of a served model: registered by name, loaded at run time, chosen per request.

An adapter is registered on a model (`PUT /v1/models/{name}/adapters/{adapter}`) and loaded
onto the model's current version, where the engine gives it its own scheduler: requests for
different adapters never share a batch, and every batch of an adapter's scheduler runs with
that adapter switched on around its forward pass. All schedulers of one model use the device's
single compute thread, so switching right before a forward can never leak into another
batch. The base weights are never modified, so base scores never change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from rerankd.core.errors import InvalidRequest
from rerankd.core.holds import Holds
from rerankd.models.base import Family
from rerankd.models.lora import LoraAdapter, LoraHost
from rerankd.registry.lifecycle import Lifecycle, State

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_adapter_name(name: str, param: str = "adapter") -> None:
    """Adapter names are path segments and the part after ':' in a model id: keep them plain."""
    if not ADAPTER_NAME.match(name):
        raise InvalidRequest(
            f"adapter name {name!r} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param=param,
        )


class AdapterFamily:
    """The base family seen through one adapter: the same tokenization and scores, its own forward.

    Anything not overridden (prepare, collate, scores, max_length...) is the base family's.
    """

    def __init__(self, base: Family, host: LoraHost, key: str) -> None:
        self._base = base
        self._host = host
        self._key = key

    def forward(self, inputs: dict[str, torch.Tensor]) -> Any:
        """Runs on the compute thread, which runs every forward of this network one at a time.

        Always on the torch network (`eager`): the adapter's hooks live on its modules, a
        compiled backend would not see them.
        """
        with self._host.activate(self._key), self._base.eager():
            return self._base.forward(inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


@dataclass(eq=False)
class AdapterEntry:
    """An adapter clients can ask for (`model:adapter`), whether or not it is loaded right now."""

    name: str
    source: str
    lifecycle: Lifecycle
    error: str | None = None
    requests_served: int = 0
    last_used: float = field(default_factory=time.monotonic)
    loads: int = 0
    evictions: int = 0
    waiters: int = 0  # requests waiting for its load: it must not be evicted under them

    @property
    def state(self) -> State:
        return self.lifecycle.state


@dataclass(eq=False)  # identity: the engine keys schedulers by it
class LoadedAdapter:
    """One adapter attached to one loaded version of its model.

    A batch for it pins both its own `holds` (its tensors stay attached) and the base
    version's (the weights it runs on stay loaded).
    """

    name: str
    key: str  # unique on the network: a reloaded or swapped adapter never reuses a key
    source: str
    weights: LoraAdapter  # kept so a hot-swap of the base re-applies it without rereading files
    family: AdapterFamily
    base_holds: Holds
    memory_bytes: int
    loaded_at: float
    holds: Holds
    lifecycle: Lifecycle

    @property
    def pins(self) -> tuple[Holds, ...]:
        return (self.base_holds, self.holds)
