"""The states a model name, an adapter name or a loaded version goes through, and the only legal moves.

    registered ──load──▶ loading ──▶ loaded ──delete/retire──▶ draining ──▶ unloaded
        ▲                 │  │         │                          ▲
        └──no room now────┘  └─▶ failed ─────delete───────────────┘
        └──────────────evicted─────────┘

A name (`ModelEntry`, `AdapterEntry`) starts `registered`; a loaded version (`LoadedModel`,
`LoadedAdapter`) starts `loaded` and ends `unloaded` once every request and batch that held
it is done and its weights are freed. Every change goes through `Lifecycle.move`, which
refuses a move the table does not allow, so a double free or a load finishing onto a deleted
name fails loudly instead of corrupting state.
"""

from __future__ import annotations

import logging
from enum import Enum

from rerankd.core.errors import InternalError

log = logging.getLogger(__name__)


class State(str, Enum):
    """The value is what `GET /v1/models` reports."""

    REGISTERED = "available"  # known, not in memory (never loaded, lazy, or evicted)
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"  # the last load failed; requests answer with the reason until a new load
    DRAINING = "unloading"  # takes no new requests; freed once in-flight requests and batches end
    UNLOADED = "unloaded"  # gone: a name is forgotten, a version's weights are freed


TRANSITIONS: dict[State, frozenset[State]] = {
    State.REGISTERED: frozenset({State.LOADING, State.DRAINING}),
    # back to REGISTERED: the load gave up for lack of room (NoCapacity), nothing is wrong with it
    State.LOADING: frozenset({State.LOADED, State.FAILED, State.REGISTERED, State.DRAINING}),
    # back to REGISTERED: evicted; a later request loads it again
    State.LOADED: frozenset({State.REGISTERED, State.DRAINING}),
    State.FAILED: frozenset({State.LOADING, State.DRAINING}),
    State.DRAINING: frozenset({State.UNLOADED}),
    State.UNLOADED: frozenset(),
}


class IllegalTransition(InternalError):
    """A lifecycle move the table forbids: a bug in the registry, never a client's doing."""


class Lifecycle:
    """The state of one name or version; changed only through `move`."""

    __slots__ = ("_state", "what")

    def __init__(self, what: str, state: State = State.REGISTERED) -> None:
        self.what = what
        self._state = state

    @property
    def state(self) -> State:
        return self._state

    def move(self, to: State) -> None:
        if to not in TRANSITIONS[self._state]:
            raise IllegalTransition(f"{self.what}: {self._state.name} -> {to.name} is not a legal transition")
        log.debug("%s: %s -> %s", self.what, self._state.name, to.name)
        self._state = to

    def is_(self, *states: State) -> bool:
        return self._state in states

    @property
    def gone(self) -> bool:
        """Deleted (draining or unloaded): takes no new requests."""
        return self._state in (State.DRAINING, State.UNLOADED)

    def __repr__(self) -> str:
        return f"Lifecycle({self.what!r}, {self._state.name})"
