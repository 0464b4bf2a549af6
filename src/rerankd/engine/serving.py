"""What the engine needs from whoever owns the weights (the registry), as protocols.

The engine never imports the registry: the API layer hands it something that satisfies
`ModelProvider`, and every loaded model version (or adapter on one) it gets back satisfies
`Servable`. That keeps the layers pointing one way (engine -> models, core).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from rerankd.core.holds import Holds
from rerankd.models.base import Family


class Servable(Protocol):
    """A loaded model version, or an adapter on one: its family, and what keeps its weights alive."""

    @property
    def family(self) -> Family: ...

    @property
    def pins(self) -> tuple[Holds, ...]:
        """Holds a batch takes while it runs: the version's (and the adapter's), so neither is freed under it."""
        ...


class ModelProvider(Protocol):
    """Resolves a request's model id (and adapter) to a held `Servable`, loading it first if needed."""

    def use(self, model_id: str, adapter: str | None = None) -> AbstractAsyncContextManager[Servable]: ...
