"""Room for one more load under `--max-loaded-models` and `--memory-budget`: who to evict, when to wait.

What is resident is a list of `Resident`s the registry describes on demand (loaded models,
their adapters, versions being retired after a swap). A load first reserves its estimated
size: least recently used idle residents are evicted until it fits; residents with work in
flight are never evicted, so when only busy ones stand in the way the load waits for one of
them to go idle (up to a timeout). Reservations of loads in progress count as used, so two
concurrent loads cannot both squeeze into the same room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from rerankd.core.errors import ModelLoadFailed, NoCapacity
from rerankd.registry.budget import format_size

log = logging.getLogger(__name__)


@dataclass
class Resident:
    """Something holding memory: a loaded model, an adapter, or a version being retired."""

    label: str
    nbytes: int
    slot: bool  # counts toward --max-loaded-models (models, not adapters or retiring versions)
    last_used: float
    busy: bool  # requests hold it (or wait for it): never evicted
    evict: Callable[[], None] | None  # None: cannot be evicted (retiring, protected)
    retiring: bool = False  # an old version draining after a swap or unload: freed soon

    @property
    def evictable(self) -> bool:
        return self.evict is not None and not self.busy


@dataclass(frozen=True)
class Reservation:
    label: str
    nbytes: int
    slot: bool


class Capacity:
    """Limits on what may be resident at once, and the reservations of loads in progress."""

    def __init__(
        self,
        max_models: int | None,
        max_bytes: int | None,
        residents: Callable[[frozenset[str]], list[Resident]],
    ) -> None:
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._residents = residents
        self._reserved: list[Reservation] = []
        self._changed = asyncio.Event()

    @property
    def limited(self) -> bool:
        return self.max_models is not None or self.max_bytes is not None

    def notify(self) -> None:
        """Something went idle or was freed: loads waiting for room look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def usage(self) -> tuple[int, int]:
        """(bytes, model slots) resident or reserved."""
        residents = self._residents(frozenset())
        nbytes = sum(r.nbytes for r in residents) + sum(r.nbytes for r in self._reserved)
        slots = sum(r.slot for r in residents) + sum(r.slot for r in self._reserved)
        return nbytes, slots

    def _fits(self, nbytes: int, slot: bool) -> tuple[bool, bool]:
        """(bytes fit, slot fits) with what is resident and reserved now."""
        used_bytes, used_slots = self.usage()
        bytes_ok = self.max_bytes is None or used_bytes + nbytes <= self.max_bytes
        slot_ok = not slot or self.max_models is None or used_slots + 1 <= self.max_models
        return bytes_ok, slot_ok

    def _make_room(self, label: str, nbytes: int, slot: bool, protect: frozenset[str]) -> bool:
        """Evict least recently used idle residents until `nbytes` (and a slot) fit; False if they cannot now."""
        while True:
            bytes_ok, slot_ok = self._fits(nbytes, slot)
            if bytes_ok and slot_ok:
                return True
            candidates = [r for r in self._residents(protect) if r.evictable and (bytes_ok or r.nbytes > 0)]
            if not slot_ok:
                candidates = [r for r in candidates if r.slot]
            if not candidates:
                return False
            victim = min(candidates, key=lambda r: r.last_used)
            log.info("evicting %s (least recently used, %s) for %s", victim.label, format_size(victim.nbytes), label)
            assert victim.evict is not None
            victim.evict()

    def _hopeless(self, protect: frozenset[str]) -> bool:
        """Nothing in flight could ever free room: waiting would be forever."""
        residents = self._residents(protect)
        return not self._reserved and not any((r.busy and r.evict is not None) or r.retiring for r in residents)

    async def reserve(
        self, label: str, nbytes: int, *, slot: bool, protect: frozenset[str], timeout: float
    ) -> Reservation | None:
        """Room for a load of `nbytes` (and one model slot if `slot`), evicting and waiting as needed.

        Returns None when nothing is limited. Raises `ModelLoadFailed` when the load can never
        fit, `NoCapacity` when busy residents still hold the room after `timeout` seconds.
        """
        if not self.limited:
            return None
        if self.max_bytes is not None and nbytes > self.max_bytes:
            raise ModelLoadFailed(
                f"{label} needs {format_size(nbytes)}, more than the whole --memory-budget of "
                f"{format_size(self.max_bytes)}",
                param="model",
                extra={"permanent": True},
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            if self._make_room(label, nbytes, slot, protect):
                reservation = Reservation(label, nbytes, slot)
                self._reserved.append(reservation)
                return reservation
            if self._hopeless(protect):
                used, slots = self.usage()
                raise ModelLoadFailed(
                    f"{label} ({format_size(nbytes)}) does not fit beside what must stay loaded "
                    f"({format_size(used)}, {slots} models; budget {self._limits()})",
                    param="model",
                    extra={"permanent": True},
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                busy = [r.label for r in self._residents(protect) if r.busy]
                raise NoCapacity(
                    f"no room to load {label} ({self._limits()}): "
                    f"{', '.join(busy) or 'other loads'} still serving requests; retry shortly",
                    param="model",
                    retry_after=max(1.0, min(timeout, 5.0)),
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def release(self, reservation: Reservation | None) -> None:
        """The load finished (its real size now counts as resident) or failed."""
        if reservation is not None:
            self._reserved.remove(reservation)
            self.notify()

    def trim(self, protect: frozenset[str]) -> None:
        """After a load that came out bigger than estimated: evict idle residents until within budget."""
        if self.max_bytes is None:
            return
        self._make_room("the model just loaded", 0, False, protect)

    def _limits(self) -> str:
        parts = []
        if self.max_models is not None:
            parts.append(f"--max-loaded-models {self.max_models}")
        if self.max_bytes is not None:
            parts.append(f"--memory-budget {format_size(self.max_bytes)}")
        return ", ".join(parts)
