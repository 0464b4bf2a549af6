"""Late interaction (ColBERT): score = sum over query tokens of the max cosine over document tokens.

Reproduces the Stanford `colbert-ai` reference (`QueryTokenizer`, `DocTokenizer`,
`ColBERT.query/doc`, `colbert_score`), which PyLate mirrors:

* query: `[CLS] [Q] query [SEP]`, at most `query_maxlen` tokens, then padded to exactly
  `query_maxlen` with `[MASK]` (query augmentation); the `[MASK]` positions are not attended
  to (`attend_to_mask_tokens: false`) but their embeddings all take part in the score;
* document: `[CLS] [D] document [SEP]`, at most `doc_maxlen` tokens; punctuation tokens
  (`string.punctuation`, the skiplist) are encoded but left out of the score;
* each token: encoder state -> linear projection (no bias) -> L2 normalisation;
* score = sum over query embeddings of the max dot product over the document's embeddings.

The marker tokens are `[unused0]` / `[unused1]` unless the checkpoint names others. colbert-ai
writes them by tokenizing `". " + text` and overwriting the "." (position 1); we do the same.

Two published layouts load: Stanford (`HF_ColBERT`: encoder tensors under `bert.` and the
projection as `linear.weight` in the same safetensors, settings in `artifact.metadata`) and
PyLate / sentence-transformers (`modules.json` -> Transformer + `Dense` folder, settings in
`config_sentence_transformers.json`). Settings come from those files, else the catalog, else
the reference library's defaults.

The query is unit 0 of a request and each document (or document window, when chunking is
asked for) one more unit; units return ragged per-token embeddings and the MaxSim is done
once all of a request's units are back.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel

from rerankd.core.types import ScoreOptions
from rerankd.models.base import Family, Prepared, max_over_units, right_pad
from rerankd.models.catalog import ModelSpec
from rerankd.models.chunking import plan_chunks
from rerankd.models.hf import IncompatibleCheckpoint, load_network, module_bytes, read_config
from rerankd.models.limits import max_sequence_length, position_limit
from rerankd.models.runtime import Placement
from rerankd.models.safetensors_files import load_tensors, tensor_names
from rerankd.models.tokenization import encode_texts, load_tokenizer, probe_single_template

# Per-token flags carried to `collate` in `Prepared.token_tags`: ATTEND = other tokens attend to it (attention mask),
# KEEP = its embedding takes part in the MaxSim. Padding added by `collate` has neither.
ATTEND = 1
KEEP = 2

PROJECTION = "linear.weight"


@dataclass(frozen=True)
class ColbertSettings:
    """How a ColBERT checkpoint turns text into token embeddings."""

    query_length: int
    document_length: int
    query_marker: str
    document_marker: str
    skiplist: tuple[str, ...]
    attend_to_expansion: bool = False
    query_expansion: bool = True
    # colbert-ai tokenizes ". " + text and overwrites the "." with the marker; PyLate inserts it.
    placeholder: bool = True


def _pick(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def stanford_settings(model_dir: Path, catalog: dict) -> ColbertSettings:
    """colbert-ai's `ColBERTConfig`: `artifact.metadata`, else catalog, else its defaults."""
    path = model_dir / "artifact.metadata"
    meta = json.loads(path.read_text()) if path.exists() else {}
    if meta.get("similarity", "cosine") != "cosine":
        raise IncompatibleCheckpoint(f"similarity {meta['similarity']!r} is not supported (only cosine MaxSim)")
    if meta.get("interaction", "colbert") != "colbert":
        raise IncompatibleCheckpoint(f"interaction {meta['interaction']!r} is not supported (only colbert)")
    mask_punctuation = _pick(meta.get("mask_punctuation"), True)
    return ColbertSettings(
        query_length=int(_pick(meta.get("query_maxlen"), catalog.get("query_length"), 32)),
        document_length=int(_pick(meta.get("doc_maxlen"), catalog.get("document_length"), 220)),
        query_marker=_pick(meta.get("query_token_id"), "[unused0]"),
        document_marker=_pick(meta.get("doc_token_id"), "[unused1]"),
        skiplist=tuple(string.punctuation) if mask_punctuation else (),
        attend_to_expansion=bool(_pick(meta.get("attend_to_mask_tokens"), False)),
        placeholder=True,
    )


def pylate_settings(model_dir: Path, catalog: dict) -> ColbertSettings:
    """PyLate's ColBERT: `config_sentence_transformers.json`, else catalog, else its defaults."""
    path = model_dir / "config_sentence_transformers.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    expansion = bool(_pick(config.get("do_query_expansion"), True))
    return ColbertSettings(
        query_length=int(_pick(config.get("query_length"), catalog.get("query_length"), 32)),
        document_length=int(_pick(config.get("document_length"), catalog.get("document_length"), 180)),
        query_marker=_pick(config.get("query_prefix"), "[Q] "),
        document_marker=_pick(config.get("document_prefix"), "[D] "),
        skiplist=tuple(_pick(config.get("skiplist_words"), list(string.punctuation))),
        attend_to_expansion=expansion and bool(_pick(config.get("attend_to_expansion_tokens"), False)),
        query_expansion=expansion,
        placeholder=False,
    )


def _modules(model_dir: Path) -> tuple[Path, Path] | None:
    """(Transformer folder, Dense folder) of a sentence-transformers layout, if it is one."""
    path = model_dir / "modules.json"
    if not path.exists():
        return None
    transformer = dense = None
    for module in json.loads(path.read_text()):
        kind = module.get("type", "")
        if kind.endswith("Transformer") and transformer is None:
            transformer = model_dir / module.get("path", "")
        elif kind.endswith("Dense"):
            if dense is not None:
                raise IncompatibleCheckpoint("more than one Dense projection is not supported")
            dense = model_dir / module.get("path", "")
    if transformer is None or dense is None:
        return None
    return transformer, dense


def load_encoder(encoder_dir: Path, placement: Placement) -> torch.nn.Module:
    """The `transformers` encoder, refusing to run with any of its weights left uninitialised.

    The pooler is the one exception: ColBERT reads per-token states and never calls it.
    """
    return load_network(AutoModel, encoder_dir, placement, optional_weights=("pooler.",))


def load_projection(weights_dir: Path, placement: Placement, dense_config: dict | None = None) -> torch.nn.Linear:
    """ColBERT's linear projection to its embedding size (`linear.weight`, optional bias)."""
    if dense_config is not None:
        activation = dense_config.get("activation_function", "torch.nn.modules.linear.Identity")
        if not str(activation).endswith("Identity"):
            raise IncompatibleCheckpoint(f"Dense activation {activation!r} is not supported (only Identity)")
    tensors = load_tensors(weights_dir, {PROJECTION, "linear.bias"})
    if PROJECTION not in tensors:
        raise IncompatibleCheckpoint(f"{weights_dir} has no {PROJECTION} (the ColBERT projection)")
    weight = tensors[PROJECTION]
    projection = torch.nn.Linear(weight.shape[1], weight.shape[0], bias="linear.bias" in tensors)
    with torch.no_grad():
        projection.weight.copy_(weight)
        if projection.bias is not None:
            projection.bias.copy_(tensors["linear.bias"])
    projection.requires_grad_(False)
    return projection.to(device=placement.device, dtype=placement.dtype)


class ColbertNetwork(torch.nn.Module):
    """Encoder + projection -> L2-normalised per-token embeddings (float32)."""

    def __init__(self, encoder: torch.nn.Module, projection: torch.nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = projection

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(**inputs).last_hidden_state
        return torch.nn.functional.normalize(self.projection(hidden).float(), p=2, dim=-1)


def load_colbert(model_dir: Path, placement: Placement, catalog: dict) -> tuple[ColbertNetwork, ColbertSettings, Path]:
    """(network, settings, tokenizer folder): Stanford layout when the root weights hold the
    projection, else the PyLate layout."""
    root_weights = (model_dir / "model.safetensors").exists() or (model_dir / "model.safetensors.index.json").exists()
    if root_weights and PROJECTION in tensor_names(model_dir):
        network = ColbertNetwork(load_encoder(model_dir, placement), load_projection(model_dir, placement))
        return network, stanford_settings(model_dir, catalog), model_dir
    modules = _modules(model_dir)
    if modules is None:
        raise IncompatibleCheckpoint(
            f"{model_dir} is neither a Stanford ColBERT checkpoint ({PROJECTION} next to the encoder) "
            f"nor a PyLate one (modules.json with a Transformer and a Dense module)"
        )
    transformer_dir, dense_dir = modules
    projection = load_projection(dense_dir, placement, read_config(dense_dir))
    network = ColbertNetwork(load_encoder(transformer_dir, placement), projection)
    tokenizer_dir = transformer_dir if (transformer_dir / "tokenizer.json").exists() else model_dir
    return network, pylate_settings(model_dir, catalog), tokenizer_dir


class LateInteractionFamily(Family):
    kind = "late-interaction"

    def __init__(self, spec: ModelSpec, placement: Placement, model_dir: Path) -> None:
        super().__init__(spec, placement)
        self.network, self.settings, tokenizer_dir = load_colbert(model_dir, placement, spec.settings)
        loaded = load_tokenizer(tokenizer_dir)
        self.tokenizer = loaded.tokenizer
        self.pad_id = loaded.pad_id
        self.template = probe_single_template(self.tokenizer)
        self.query_marker = self._token_id(self.settings.query_marker.strip())
        self.document_marker = self._token_id(self.settings.document_marker.strip())
        mask = loaded.config.get("mask_token")
        mask = mask.get("content") if isinstance(mask, dict) else mask
        self.mask_id = self._token_id(*[t for t in (mask, "[MASK]", "<mask>") if isinstance(t, str)])
        self.skip_ids = self._skiplist()
        # colbert-ai cuts documents at doc_maxlen; the tokenizer's own limit plays no part.
        positions = position_limit(getattr(self.network.encoder, "config", None))
        self._max_length = max_sequence_length(self.settings.document_length, spec.max_length, positions)
        # Content tokens around the special tokens and the marker.
        reserved = self.template.num_special + 1
        self.query_budget = self.settings.query_length - reserved
        self.document_budget = self._max_length - reserved
        if self.query_budget < 1 or self.document_budget < 1:
            raise IncompatibleCheckpoint("query or document length leaves no room for text")

    def _token_id(self, *tokens: str) -> int:
        for token in tokens:
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        raise IncompatibleCheckpoint(f"the tokenizer has none of the tokens {tokens}")

    def _skiplist(self) -> np.ndarray:
        """Token ids left out of document scoring (colbert-ai: each symbol's first token)."""
        ids: set[int] = set()
        for word in self.settings.skiplist:
            if self.settings.placeholder:  # colbert-ai: raw_tokenizer.encode(symbol)[0]
                encoded = self.tokenizer.encode(word, add_special_tokens=False).ids
                if encoded:
                    ids.add(encoded[0])
            else:  # PyLate: convert_tokens_to_ids(word)
                token_id = self.tokenizer.token_to_id(word)
                ids.add(token_id if token_id is not None else self._token_id("[UNK]", "<unk>"))
        return np.array(sorted(ids), dtype=np.int64)

    @property
    def max_length(self) -> int:
        return self._max_length

    def _content(self, texts: list[str]) -> list[list[int]]:
        if self.settings.placeholder:
            return [ids[1:] for ids in encode_texts(self.tokenizer, [". " + text for text in texts])]
        return encode_texts(self.tokenizer, texts)

    def _wrap(self, marker: int, tokens: list[int]) -> list[int]:
        prefix, suffix = self.template.prefix.ids, self.template.suffix.ids
        return [*prefix, marker, *tokens, *suffix]

    def _document_flags(self, ids: list[int]) -> list[int]:
        skipped = np.isin(np.asarray(ids, dtype=np.int64), self.skip_ids)
        return np.where(skipped, ATTEND, ATTEND | KEEP).tolist()

    def prepare(self, query: str, texts: list[str], instruction: str | None, options: ScoreOptions) -> Prepared:
        self.check_instruction(instruction)
        content = self._content([query, *texts])
        query_tokens = content[0][: self.query_budget]
        query_ids = self._wrap(self.query_marker, query_tokens)
        query_flags = [ATTEND | KEEP] * len(query_ids)
        if self.settings.query_expansion:
            expansion = self.settings.query_length - len(query_ids)
            query_ids += [self.mask_id] * expansion
            query_flags += [KEEP | (ATTEND if self.settings.attend_to_expansion else 0)] * expansion
        documents = content[1:]
        chunked = options.max_tokens_per_doc is not None or options.max_chunks_per_doc is not None
        window = self.document_budget
        if options.max_tokens_per_doc is not None:
            window = min(window, options.max_tokens_per_doc)
        # Unchunked, a document is its first window alone: cut at doc_maxlen, as colbert-ai cuts it.
        plan = plan_chunks([len(d) for d in documents], window, options.max_chunks_per_doc if chunked else 1)
        self.check_truncation(options, plan.truncated)
        ids = [query_ids]
        flags = [query_flags]
        for document, doc_spans in zip(documents, plan.spans, strict=True):
            for start, end in doc_spans:
                unit = self._wrap(self.document_marker, document[start:end])
                ids.append(unit)
                flags.append(self._document_flags(unit))
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        document_tokens = sum(end - start for doc_spans in plan.spans for start, end in doc_spans)
        return Prepared(
            ids=ids,
            token_tags=flags,
            lengths=lengths,
            n_items=len(texts),
            truncated=plan.truncated,
            content_tokens=len(query_tokens) + document_tokens,
            unit_item=plan.unit_item if chunked else None,
            n_query_units=1,
            query_content_tokens=len(query_tokens),
        )

    def collate(self, ids: list[list[int]], token_tags: list[list[int]] | None) -> dict[str, torch.Tensor]:
        """Right-pad; the attention mask and the kept positions come from the per-token flags."""
        assert token_tags is not None
        input_ids, _ = right_pad(ids, self.pad_id)
        flags, _ = right_pad(token_tags, 0)
        device = self.placement.device
        batch = {
            "input_ids": torch.from_numpy(input_ids).to(device),
            "attention_mask": torch.from_numpy(flags & ATTEND).to(device),
            "keep": torch.from_numpy((flags & KEEP) > 0),
        }
        return batch  # no token_type_ids: colbert-ai calls the encoder without them (all zeros)

    def forward(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        keep = inputs["keep"]
        embeddings = self.network(**{key: value for key, value in inputs.items() if key != "keep"}).cpu()
        return [embeddings[row][keep[row]] for row in range(embeddings.shape[0])]

    def scores(self, prepared: Prepared, outputs: list[np.ndarray], raw: bool) -> np.ndarray:
        """MaxSim of the query (unit 0) against every document unit, max over a document's windows."""
        query = np.asarray(outputs[0], dtype=np.float32)
        documents = outputs[1:]
        counts = np.fromiter((len(d) for d in documents), dtype=np.int64, count=len(documents))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        # float32 dot products of unit vectors (error ~1e-7 each; float64 would be ~7x slower
        # here, and this runs after the forward passes), max and sum in float64.
        similarities = np.concatenate(documents).astype(np.float32, copy=False) @ query.T  # (doc tokens, query)
        per_unit = np.maximum.reduceat(similarities, starts, axis=0).sum(axis=1, dtype=np.float64)
        return max_over_units(per_unit, prepared.unit_item, prepared.n_items)

    def parameters_bytes(self) -> int:
        return module_bytes(self.network)
