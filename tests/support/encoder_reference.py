"""Reference scores for cross-encoders, computed without rerankd.

* `cross_encoder_reference`: sentence-transformers' own `CrossEncoder.predict`.
* `flag_reranker_reference`: FlagEmbedding's `FlagReranker.compute_score` formula, written out
  here because FlagEmbedding 1.4 does not import under transformers 5 (its package imports a
  removed `transformers.modeling_attn_mask_utils`): query cut alone to `query_max_length`
  tokens, passage to `max_length`, then the pair `<s> q </s></s> d </s>` with only the passage
  cut to fit (`truncation='only_second'`), logits, sigmoid when `normalize=True`.
* `window_scores`: one pair per token window, for chunked long documents.

Both tokenize with the checkpoint's `tokenizer.json` exactly as written. transformers 5's
`AutoTokenizer` rebuilds some tokenizers from their vocabulary instead (see
`../shared/data/README.md`); for XLM-R the rebuilt one drops the final "▁" of a text that ends
in whitespace or a newline, which the published tokenizer.json (and every model trained with
it) keeps. The references therefore swap that file-backed tokenizer into the library.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import torch

_SPECIAL_KEYS = ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token")


def file_tokenizer(model_dir: Path, *, model_max_length: int, model_input_names: tuple[str, ...] | None = None):
    """A transformers fast tokenizer backed by `tokenizer.json` as written (no padding/truncation baked in)."""
    return _file_tokenizer(str(model_dir), model_max_length, model_input_names)


@cache
def _file_tokenizer(model_dir: str, model_max_length: int, model_input_names: tuple[str, ...] | None):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    backend.no_truncation()
    backend.no_padding()
    config = json.loads((Path(model_dir) / "tokenizer_config.json").read_text())
    specials = {key: config[key] for key in _SPECIAL_KEYS if isinstance(config.get(key), str)}
    kwargs = {"model_input_names": list(model_input_names)} if model_input_names else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=model_max_length, **specials, **kwargs)


@cache
def _cross_encoder(model_dir: str, max_length: int | None):
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, device="cpu", max_length=max_length)
    auto = model.tokenizer
    model[0].processor = file_tokenizer(
        Path(model_dir), model_max_length=auto.model_max_length, model_input_names=tuple(auto.model_input_names)
    )
    return model


def cross_encoder_reference(
    model_dir: Path, pairs: list[tuple[str, str]], *, max_length: int | None = None, raw: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, token count of each pair) from sentence-transformers' `CrossEncoder.predict`."""
    model = _cross_encoder(str(model_dir), max_length)
    activation = torch.nn.Identity() if raw else None
    scores = model.predict(pairs, batch_size=16, activation_fn=activation, show_progress_bar=False)
    tokenizer = model.tokenizer
    encoded = tokenizer(
        [q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=tokenizer.model_max_length
    )
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    return np.asarray(scores, dtype=np.float64), lengths


@cache
def _sequence_classifier(model_dir: str):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()


def logits_of(model_dir: Path, sequences: list[list[int]], pad_id: int, batch_size: int = 16) -> np.ndarray:
    """Logit of each token sequence (right-padded batches, attention mask), straight from transformers."""
    model = _sequence_classifier(str(model_dir))
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            out.extend(model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist())
    return np.array(out, dtype=np.float64)


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float64)))


def flag_reranker_inputs(
    model_dir: Path, pairs: list[tuple[str, str]], *, max_length: int = 512, query_max_length: int | None = None
) -> list[list[int]]:
    """Token ids FlagReranker feeds an XLM-R reranker (transformers 4 `prepare_for_model` semantics)."""
    if query_max_length is None:
        query_max_length = max_length * 3 // 4  # FlagReranker's default
    tokenizer = file_tokenizer(model_dir, model_max_length=max_length)
    queries = tokenizer([q for q, _ in pairs], add_special_tokens=False, truncation=True, max_length=query_max_length)[
        "input_ids"
    ]
    passages = tokenizer([d for _, d in pairs], add_special_tokens=False, truncation=True, max_length=max_length)[
        "input_ids"
    ]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    sequences = []
    for query, passage in zip(queries, passages, strict=True):
        room = max_length - len(query) - 4  # <s> q </s></s> d </s>
        sequences.append([cls, *query, sep, sep, *passage[:room], sep])
    return sequences


def flag_reranker_reference(
    model_dir: Path,
    pairs: list[tuple[str, str]],
    *,
    max_length: int = 512,
    query_max_length: int | None = None,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, token count of each pair) of `FlagReranker(...).compute_score(pairs, normalize=...)`."""
    sequences = flag_reranker_inputs(model_dir, pairs, max_length=max_length, query_max_length=query_max_length)
    pad_id = file_tokenizer(model_dir, model_max_length=max_length).pad_token_id
    logits = logits_of(model_dir, sequences, pad_id)
    return (sigmoid(logits) if normalize else logits), np.array([len(s) for s in sequences])


def readme_windows(length: int, window: int, max_chunks: int | None) -> list[tuple[int, int]]:
    """Token windows as the README specifies: `window` tokens, overlap min(64, window // 4)."""
    if length <= window:
        return [(0, length)]
    overlap = min(64, window // 4)
    spans: list[tuple[int, int]] = []
    start = 0
    while not spans or spans[-1][1] < length:
        spans.append((start, min(start + window, length)))
        start += window - overlap
    return spans[:max_chunks] if max_chunks else spans
