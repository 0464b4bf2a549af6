"""The longest sequence a family feeds its network: the tightest limit its checkpoint states.

Every family takes the minimum of the limits its reference code honours (catalog, tokenizer,
sentence-transformers, position embeddings...); which of them count differs per family, so
each family passes its own and this module only decides what "stated" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What a checkpoint that states no limit at all is cut to (BERT's position embeddings).
DEFAULT_MAX_LENGTH = 512


def position_limit(config: Mapping[str, Any] | object, reserved: int = 0) -> int | None:
    """Tokens the position embeddings can place: `max_position_embeddings` minus `reserved`.

    `config` is config.json as a dict or a loaded `transformers` config. XLM-R style models
    reserve `pad_token_id + 1` positions (their position ids start after the padding index).
    """
    if isinstance(config, Mapping):
        positions = config.get("max_position_embeddings")
    else:
        positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        return positions - reserved
    return None


def max_sequence_length(*limits: int | None, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The smallest of the stated limits (None or 0: not stated); `default` if none is."""
    stated = [limit for limit in limits if limit]
    return min(stated) if stated else default
