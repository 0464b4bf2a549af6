"""Bi-encoders: score = cosine similarity of pooled query and document embeddings.

The query is one more unit of the request, so it is embedded once and batched with the
documents. Pooling and the sequence limit come from the sentence-transformers files
(`modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`) when present.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel

from rerankd.core.types import ScoreOptions
from rerankd.models.base import Family, Prepared
from rerankd.models.catalog import ModelSpec
from rerankd.models.graphs import PooledGraph, first_token_last_layer
from rerankd.models.hf import load_network, module_bytes, read_config, uses_token_types
from rerankd.models.limits import max_sequence_length, position_limit
from rerankd.models.runtime import Placement
from rerankd.models.tokenization import encode_texts, load_tokenizer, probe_single_template


def sentence_transformers_settings(model_dir: Path) -> tuple[str | None, int | None]:
    """(pooling mode, max_seq_length) from a sentence-transformers checkpoint, if it is one."""
    pooling: str | None = None
    max_seq_length: int | None = None
    modules_path = model_dir / "modules.json"
    if modules_path.exists():
        for module in json.loads(modules_path.read_text()):
            if module.get("type", "").endswith("Pooling"):
                config_path = model_dir / module.get("path", "") / "config.json"
                if config_path.exists():
                    config = json.loads(config_path.read_text())
                    if config.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif config.get("pooling_mode_mean_tokens"):
                        pooling = "mean"
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.exists():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            max_seq_length = value
    return pooling, max_seq_length


class BiEncoderFamily(Family):
    kind = "bi-encoder"

    def __init__(self, spec: ModelSpec, placement: Placement, model_dir: Path) -> None:
        super().__init__(spec, placement)
        config = read_config(model_dir)
        loaded = load_tokenizer(model_dir)
        self.tokenizer = loaded.tokenizer
        self.pad_id = loaded.pad_id
        self.template = probe_single_template(self.tokenizer)
        pooling, st_max = sentence_transformers_settings(model_dir)
        self.pooling = pooling or spec.pooling
        self._max_length = max_sequence_length(st_max, spec.max_length, loaded.model_max_length, position_limit(config))
        self.network = load_network(AutoModel, model_dir, placement)
        self._type_ids = uses_token_types(self.network, config)
        self.first_token_only = first_token_last_layer(self.network, reads_first_token_only=self.pooling == "cls")
        self.graph = PooledGraph(self.network, self.pooling)

    @property
    def max_length(self) -> int:
        return self._max_length

    def prepare(self, query: str, texts: list[str], instruction: str | None, options: ScoreOptions) -> Prepared:
        self.check_instruction(instruction)
        budget = self.max_length - self.template.num_special
        encoded = encode_texts(self.tokenizer, [query, *texts], budget)
        full = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        kept = np.minimum(full, budget)
        truncated = (kept < full)[1:]
        self.check_truncation(options, truncated)
        ids = [self.template.assemble(tokens[:budget]) for tokens in encoded]
        type_ids = [[self.template.type_id] * len(row) for row in ids] if self._type_ids else None
        return Prepared(
            ids=ids,
            token_tags=type_ids,
            lengths=kept + self.template.num_special,
            n_items=len(texts),
            truncated=truncated,
            content_tokens=int(kept.sum()),
            n_query_units=1,
            query_content_tokens=int(kept[0]),
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.run_graph(inputs).cpu()

    def scores(self, prepared: Prepared, outputs: np.ndarray, raw: bool) -> np.ndarray:
        vectors = outputs.astype(np.float64)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors[1:] @ vectors[0]

    def parameters_bytes(self) -> int:
        return module_bytes(self.network)
