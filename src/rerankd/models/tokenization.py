"""Tokenizer loading and pair assembly that reproduce Hugging Face `tokenizer(q, d)` exactly.

The query is tokenized once per request and each document once, without special tokens;
pairs are then assembled from a template probed from the tokenizer's own post-processor.
That is what `tokenizer(query, doc, truncation="longest_first")` does internally, but it
encodes the query once instead of once per pair, and it tells us which documents were cut,
which is what long-document chunking and `truncated` flags need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# Tokenizer configs without a real limit carry this sentinel (transformers' VERY_LARGE_INTEGER).
_UNSET_MAX_LENGTH = 1_000_000


@dataclass(frozen=True)
class LoadedTokenizer:
    """A `tokenizers.Tokenizer` with truncation/padding off, plus the settings around it."""

    tokenizer: Tokenizer
    model_max_length: int | None
    pad_id: int
    config: dict


def load_tokenizer(model_dir: Path) -> LoadedTokenizer:
    """Load `tokenizer.json` as written (transformers 5 may rebuild it from the vocabulary)."""
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    tokenizer_file = model_dir / "tokenizer.json"
    if tokenizer_file.exists():
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    else:  # a slow-only checkpoint (e.g. vocab.txt): let transformers convert it once
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir)).backend_tokenizer
    tokenizer.no_truncation()
    tokenizer.no_padding()
    max_length = config.get("model_max_length")
    if not isinstance(max_length, int) or max_length >= _UNSET_MAX_LENGTH:
        max_length = None
    return LoadedTokenizer(tokenizer, max_length, _pad_id(tokenizer, config), config)


def _pad_id(tokenizer: Tokenizer, config: dict) -> int:
    pad = config.get("pad_token")
    if isinstance(pad, dict):
        pad = pad.get("content")
    for candidate in (pad, "[PAD]", "<pad>", "<|endoftext|>"):
        if isinstance(candidate, str):
            token_id = tokenizer.token_to_id(candidate)
            if token_id is not None:
                return token_id
    return 0


@dataclass(frozen=True)
class Segment:
    """Special tokens around the text segments, with their token-type ids."""

    ids: tuple[int, ...]
    type_ids: tuple[int, ...]


@dataclass(frozen=True)
class PairTemplate:
    """`prefix A middle B suffix`, probed from the tokenizer's post-processor."""

    prefix: Segment
    middle: Segment
    suffix: Segment
    first_type: int
    second_type: int

    @property
    def num_special(self) -> int:
        return len(self.prefix.ids) + len(self.middle.ids) + len(self.suffix.ids)

    def assemble(self, first: list[int], second: list[int]) -> tuple[list[int], list[int]]:
        """Ids and token-type ids of one pair (both parts already truncated)."""
        ids = [*self.prefix.ids, *first, *self.middle.ids, *second, *self.suffix.ids]
        types = [
            *self.prefix.type_ids,
            *([self.first_type] * len(first)),
            *self.middle.type_ids,
            *([self.second_type] * len(second)),
            *self.suffix.type_ids,
        ]
        return ids, types


@dataclass(frozen=True)
class SingleTemplate:
    """`prefix A suffix` for one text (bi-encoders, late interaction)."""

    prefix: Segment
    suffix: Segment
    type_id: int

    @property
    def num_special(self) -> int:
        return len(self.prefix.ids) + len(self.suffix.ids)

    def assemble(self, ids: list[int]) -> list[int]:
        return [*self.prefix.ids, *ids, *self.suffix.ids]


def _runs(encoding) -> list[tuple[bool, list[int], list[int]]]:
    """Consecutive runs of (is_special, ids, type ids) in a post-processed encoding."""
    runs: list[tuple[bool, list[int], list[int]]] = []
    for token_id, type_id, special in zip(encoding.ids, encoding.type_ids, encoding.special_tokens_mask, strict=True):
        if runs and runs[-1][0] == bool(special):
            runs[-1][1].append(token_id)
            runs[-1][2].append(type_id)
        else:
            runs.append((bool(special), [token_id], [type_id]))
    return runs


def _special(runs, start: int, stop: int) -> Segment:
    ids = [i for run in runs[start:stop] if run[0] for i in run[1]]
    types = [t for run in runs[start:stop] if run[0] for t in run[2]]
    return Segment(tuple(ids), tuple(types))


def probe_pair_template(tokenizer: Tokenizer) -> PairTemplate:
    """Ask the post-processor where it puts special tokens around a pair."""
    first = tokenizer.encode("query", add_special_tokens=False)
    second = tokenizer.encode("document", add_special_tokens=False)
    runs = _runs(tokenizer.post_process(first, second, add_special_tokens=True))
    texts = [index for index, run in enumerate(runs) if not run[0]]
    if len(texts) != 2:
        raise ValueError("tokenizer post-processor does not keep both sequences of a pair apart")
    a, b = texts
    return PairTemplate(
        prefix=_special(runs, 0, a),
        middle=_special(runs, a + 1, b),
        suffix=_special(runs, b + 1, len(runs)),
        first_type=runs[a][2][0],
        second_type=runs[b][2][0],
    )


def probe_single_template(tokenizer: Tokenizer) -> SingleTemplate:
    """Ask the post-processor where it puts special tokens around one text."""
    text = tokenizer.encode("document", add_special_tokens=False)
    runs = _runs(tokenizer.post_process(text, None, add_special_tokens=True))
    index = next(i for i, run in enumerate(runs) if not run[0])
    return SingleTemplate(
        prefix=_special(runs, 0, index),
        suffix=_special(runs, index + 1, len(runs)),
        type_id=runs[index][2][0],
    )


# Characters of a long text tried per token wanted before the prefix doubles (English averages
# 4-5 per token: most long texts need one round).
PREFIX_CHARS_PER_TOKEN = 6
# How far back from the cut a whitespace is looked for, so the cut falls between words.
_WHITESPACE_LOOKBACK = 256


def encode_texts(tokenizer: Tokenizer, texts: list[str], max_tokens: int | None = None) -> list[list[int]]:
    """Token ids of each text without special tokens (batched in Rust; releases the GIL).

    With `max_tokens`, a long text is tokenized only as far as needed: its ids are its first
    `max_tokens + 1` tokens, exactly those of the whole text, so a caller still sees that it is
    longer than `max_tokens`, and a 10 MB text costs what a page costs (`_prefix_ids`).
    """
    if max_tokens is None or tokenizer.pre_tokenizer is None:
        return [encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]
    chars = (max_tokens + 1) * PREFIX_CHARS_PER_TOKEN
    ids: list[list[int]] = [[] for _ in texts]
    pending = list(range(len(texts)))
    while pending:
        prefixes = [_prefix(texts[index], chars) for index in pending]
        encodings = tokenizer.encode_batch(prefixes, add_special_tokens=False)
        still: list[int] = []
        for index, prefix, encoding in zip(pending, prefixes, encodings, strict=True):
            if len(prefix) == len(texts[index]):
                ids[index] = encoding.ids
            elif _settled_tokens(encoding) > max_tokens:
                ids[index] = encoding.ids[: max_tokens + 1]
            else:  # few tokens for many characters (a long word, a whitespace run): a longer prefix
                still.append(index)
        pending = still
        chars *= 2
    return ids


def _settled_tokens(encoding) -> int:
    """Leading tokens of a prefix's encoding that the rest of the text cannot change.

    The pre-tokenizer splits text into words and the model tokenizes each word alone; only the
    prefix's last word can be cut short (or merged with what follows, or normalised with a
    combining mark after the cut), so every token before it is the whole text's token.
    """
    words = encoding.word_ids
    if not words:
        return 0
    last = words[-1]
    return next((i for i, word in enumerate(words) if word == last), len(words))


def _prefix(text: str, chars: int) -> str:
    """The first `chars` characters of `text` (all of it when shorter), cut after a word where one ends near."""
    if len(text) <= chars:
        return text
    lookback = max(0, chars - _WHITESPACE_LOOKBACK)
    space = max(text.rfind(sep, lookback, chars) for sep in (" ", "\n", "\t"))
    return text[:space] if space > 0 else text[:chars]


def longest_first_lengths(first_len: int, second_lens: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept lengths of (first, second) under Hugging Face's `longest_first` truncation.

    Mirrors `tokenizers`' rule: when the pair is too long, keep the shorter sequence whole if
    the longer one can absorb the cut; otherwise split the budget in halves (the second gets
    the odd token). Vectorised over all documents of a request.
    """
    second = second_lens.astype(np.int64)
    first = np.full_like(second, first_len)
    over = first + second > budget
    if not over.any():
        return first, second
    shorter = np.minimum(first, second)
    longer = np.maximum(first, second)
    swapped = first > second
    new_longer = np.where(shorter > budget, shorter, np.maximum(shorter, budget - shorter))
    new_shorter = shorter.copy()
    halve = new_shorter + new_longer > budget
    new_shorter = np.where(halve, budget // 2, new_shorter)
    new_longer = np.where(halve, budget // 2 + budget % 2, new_longer)
    new_longer = np.minimum(new_longer, longer)
    new_shorter = np.minimum(new_shorter, shorter)
    kept_first = np.where(swapped, new_longer, new_shorter)
    kept_second = np.where(swapped, new_shorter, new_longer)
    return np.where(over, kept_first, first), np.where(over, kept_second, second)


def query_capped_lengths(
    first_len: int, second_lens: np.ndarray, budget: int, first_cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kept lengths of (query, document) the way FlagEmbedding's `FlagReranker` truncates.

    The query is cut to `first_cap` tokens on its own; the document then takes what is left of
    the budget (`only_second`): a long query can never starve the document below
    `budget - first_cap` tokens, unlike `longest_first`, which halves the budget between them.
    """
    second = second_lens.astype(np.int64)
    kept_first = min(first_len, first_cap)
    room = max(budget - kept_first, 0)
    return np.full_like(second, kept_first), np.minimum(second, room)
