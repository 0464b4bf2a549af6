"""What holds memory right now, described for the capacity planner (capacity.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rerankd.registry.adapters import LoadedAdapter
from rerankd.registry.capacity import Resident
from rerankd.registry.entries import LoadedModel, ModelEntry


def _draining(label: str, nbytes: int) -> Resident:
    """An old version or adapter finishing its work: counts as used, freed soon, never evicted."""
    return Resident(label, nbytes, slot=False, last_used=0.0, busy=True, evict=None, retiring=True)


def describe_residents(
    entries: Iterable[ModelEntry],
    retiring: Iterable[LoadedModel],
    protect: frozenset[str],
    evict_model: Callable[[ModelEntry], None],
    evict_adapter: Callable[[ModelEntry, LoadedModel, LoadedAdapter], None],
) -> list[Resident]:
    """Loaded versions and their adapters (evictable when idle and not protected), and what is draining.

    A model is protected while a swap is loading its successor, while it is being deleted, or
    when `protect` names it (the load asking for room is its own).
    """
    residents: list[Resident] = []
    for entry in entries:
        version = entry.current
        if version is None:
            continue
        protected = entry.name in protect or entry.swap_source is not None or entry.lifecycle.gone
        residents.append(
            Resident(
                label=f"model '{entry.name}'",
                nbytes=version.memory_bytes,
                slot=True,
                last_used=entry.last_used,
                busy=version.holds.busy or entry.waiters > 0,
                evict=None if protected else (lambda e=entry: evict_model(e)),
            )
        )
        for name, loaded in version.adapters.items():
            adapter_entry = entry.adapters.get(name)
            residents.append(
                Resident(
                    label=f"adapter '{entry.name}:{name}'",
                    nbytes=loaded.memory_bytes,
                    slot=False,
                    last_used=adapter_entry.last_used if adapter_entry else 0.0,
                    busy=loaded.holds.busy or bool(adapter_entry and adapter_entry.waiters),
                    evict=lambda e=entry, v=version, a=loaded: evict_adapter(e, v, a),
                )
            )
        for loaded in version.retiring_adapters:
            residents.append(_draining(f"old adapter '{entry.name}:{loaded.name}'", loaded.memory_bytes))
    for version in retiring:
        residents.append(_draining(f"old version of '{version.name}'", version.total_bytes))
    return residents
