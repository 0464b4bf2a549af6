"""The one place a load's exception becomes what a client sees: `ModelLoadFailed` or `NoCapacity`.

Loads happen in four places (a model on demand, a hot-swap, an adapter on demand, an adapter
put by the admin API); each passes its own bookkeeping as callbacks and gets the same
translation: no room yet is transient (`NoCapacity` passes through, nothing is marked failed),
a model or adapter deleted while it loaded is just gone (`ModelNotFound`/`AdapterNotFound`
pass through), anything else is remembered with its reason and answered as `ModelLoadFailed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rerankd.core.errors import AdapterNotFound, ModelLoadFailed, ModelNotFound, NoCapacity, RerankdError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadFailure:
    """Why a load failed, as `GET /v1/models` reports it."""

    message: str
    error_class: str

    @classmethod
    def of(cls, error: BaseException) -> LoadFailure:
        if isinstance(error, RerankdError):
            return cls(error.message, type(error).__name__)
        return cls(f"{type(error).__name__}: {error}", type(error).__name__)


def load_failed(
    subject: str, failure: LoadFailure, *, param: str, error_class: str | None = None, consequence: str = ""
) -> ModelLoadFailed:
    """`subject failed to load: reason[; consequence]`, naming the field that chose what to load."""
    message = f"{subject} failed to load: {failure.message}" + (f"; {consequence}" if consequence else "")
    extra: dict = {"error_class": error_class or failure.error_class}
    if not consequence:
        extra["permanent"] = True  # answered until a new load is asked for
    return ModelLoadFailed(message, param=param, extra=extra)


@contextmanager
def translated_load_errors(
    subject: str,
    *,
    param: str,
    on_failure: Callable[[LoadFailure], None],
    on_no_room: Callable[[], None] | None = None,
    error_class: str | None = None,
    consequence: str = "",
) -> Iterator[None]:
    """Run a load; `NoCapacity` passes through (after `on_no_room`), any other error becomes `ModelLoadFailed`."""
    try:
        yield
    except NoCapacity:
        if on_no_room is not None:
            on_no_room()
        raise
    except (ModelNotFound, AdapterNotFound):
        raise
    except Exception as error:
        failure = LoadFailure.of(error)
        on_failure(failure)
        log.error("%s failed to load: %s", subject, failure.message)
        raise load_failed(subject, failure, param=param, error_class=error_class, consequence=consequence) from error
