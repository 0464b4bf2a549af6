"""Shared-prefix KV reuse for decoder rerankers: run the prompt prefix once, then only the documents.

In a causal decoder the keys and values at positions < P depend only on the tokens < P. When
every row of a batch starts with the same P tokens (the chat prefix, instruction and query of one
request), those P positions are computed once for one row, their KV states are expanded to the
batch, and each row runs only its own tokens at positions P, P+1, ... with the prefix as its past.
The result is the same network function as running every full row, so the scores are the same
(up to float rounding); a test checks |Δ| ≤ 1e-4 in fp32.

States of recent prefixes stay cached (a few entries, on the device), so a request whose
documents span several batches computes its prefix once. The cache is only touched from the
device's single compute thread.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict

import numpy as np
import torch
from transformers import DynamicCache

KV = list[tuple[torch.Tensor, torch.Tensor]]

# Shorter shared prefixes are not worth a separate forward pass.
MIN_PREFIX_TOKENS = 8


def common_prefix_of_rows(ids: np.ndarray, lengths: np.ndarray) -> int:
    """Leading tokens shared by every row, leaving each row at least its last token to run."""
    limit = int(lengths.min()) - 1
    if limit <= 0:
        return 0
    same = (ids[:, :limit] == ids[:1, :limit]).all(axis=0)
    return limit if same.all() else int(np.argmin(same))


def states_bytes(states: KV) -> int:
    return sum(keys.numel() * keys.element_size() + values.numel() * values.element_size() for keys, values in states)


class PrefixCache:
    """KV states of recently used prompt prefixes, keyed by their token ids (LRU, bounded)."""

    def __init__(self, max_entries: int = 8, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, KV] = OrderedDict()
        self._bytes: dict[bytes, int] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(tokens: np.ndarray) -> bytes:
        return np.ascontiguousarray(tokens, dtype=np.int64).tobytes()

    def plan(self, row: np.ndarray, shared: int) -> int:
        """How many leading tokens of a batch (rows sharing `shared` tokens, `row` one of them) to reuse.

        A cached prefix covering most of the shared part is reused as is (rows then run a few more
        tokens each) rather than computing a slightly longer prefix again; otherwise the whole
        shared part becomes the prefix.
        """
        best = 0
        for key in self._entries:
            length = len(key) // 8
            if best < length <= shared and self.key(row[:length]) == key:
                best = length
        if best and 4 * best >= 3 * shared:
            return best
        return shared if shared >= MIN_PREFIX_TOKENS else 0

    def get(self, key: bytes) -> KV | None:
        states = self._entries.get(key)
        if states is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return states

    def put(self, key: bytes, states: KV) -> None:
        """Keep `states` unless they alone exceed the byte budget; evict least recently used."""
        self.misses += 1
        size = states_bytes(states)
        if size > self.max_bytes:
            return
        self._entries[key] = states
        self._bytes[key] = size
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries or sum(self._bytes.values()) > self.max_bytes:
            old, _ = self._entries.popitem(last=False)
            del self._bytes[old]

    def clear(self) -> None:
        self._entries.clear()
        self._bytes.clear()


def cache_argument(decoder: torch.nn.Module) -> str:
    """The decoder's keyword for past states: `cache` in recent transformers, `past_key_values` before."""
    parameters = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_states(cache: object) -> KV:
    """(keys, values) per layer of a transformers `DynamicCache`, across its API versions."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))  # type: ignore[attr-defined]


def batch_cache(states: KV, batch: int) -> DynamicCache:
    """A fresh cache holding the prefix states for each of `batch` rows (expanded, not copied)."""
    cache = DynamicCache()
    for index, (keys, values) in enumerate(states):
        cache.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1), index)
    return cache
