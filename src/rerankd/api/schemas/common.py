"""Types and rules shared by the dialects' wire schemas."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from rerankd.core.errors import EmptyItems, InvalidRequest, RequestTooLarge
from rerankd.core.types import Item

# msgspec is strict by default: a bool is not an int (`true` is refused where 1 is expected) and
# an int is not a bool, which is what the hand-written checks did before.
# Counts (`top_k`, `top_n`, tokens and windows per document) are bounded so that 10**30 is a 400
# naming the field, not a number carried into the engine; the bound is documented in the schema.
MAX_COUNT = 1_000_000
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
# Unbounded above: give a new field a bound of its own (a deadline in ms is no count).
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


def non_empty(description: str) -> msgspec.Meta:
    """Documents `minItems: 1` without having msgspec enforce it.

    An empty list must answer EMPTY_ITEMS, not the generic INVALID_REQUEST a failed msgspec
    constraint gives, so `check_count` enforces it in code.
    """
    return msgspec.Meta(description=description, extra_json_schema={"minItems": 1})


class Document(msgspec.Struct):
    """A document given as an object: only `text` is read.

    Other keys are ignored, not refused, as clients of Cohere and TEI send their own.
    """

    text: str


# A Cohere/Jina/TEI document: a plain string or an object with `text`.
DocumentLike = str | Document


def document_item(value: DocumentLike) -> Item:
    return Item(text=value if isinstance(value, str) else value.text)


def check_count(values: list, field: str, max_items: int) -> None:
    """EMPTY_ITEMS for an empty list, REQUEST_TOO_LARGE past the server's `--max-items`."""
    if not values:
        raise EmptyItems(f"'{field}' must contain at least one entry", param=field)
    if len(values) > max_items:
        raise RequestTooLarge(
            f"'{field}' has {len(values)} entries; this server accepts at most {max_items} per request",
            param=field,
        )


def model_or_default(model: str | None, default: str | None) -> str:
    """The body's `model`, else the server's first `--model` (Cohere and TEI bodies may omit it)."""
    if model is not None:
        return model
    if default is None:
        raise InvalidRequest("'model' is required", param="model")
    return default


# Metadata and similar free-form objects: any keys, echoed or ignored, never interpreted.
FreeObject = dict[Any, Any]
