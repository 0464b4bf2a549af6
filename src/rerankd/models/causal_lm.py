"""Decoder (LLM) rerankers scored from next-token logits at the end of a prompt template.

bge-reranker-v2-gemma (logit of "Yes"), Qwen3-Reranker (yes vs no) and mxbai-rerank-v2
("1" vs "0"): the prompt comes from `prompts.py`, token for token as each reference builds it.
`raw_scores` returns the reference's raw value (Gemma: the "Yes" logit; the others: the logit
margin); the default is its sigmoid, which for Qwen3 is exactly P(yes) over {yes, no}.

Batches are right-padded: each row's real tokens sit at positions 0..n-1 and its score is read
at its last real token, which is what the references' left padding computes (RoPE attention
only sees relative positions). Only the hidden state of that last token goes through the output
head, and only for the few vocabulary rows the score needs, instead of full-vocabulary logits
at every position.

Shared prefixes: every prompt of a request starts with the same tokens (chat prefix,
instruction, query). With `prefix_reuse` on (the catalog default), a request's units carry that
prefix as their `batch_key`, so a batch only holds rows that share it; the prefix then runs
once and its KV states serve every row (`prefix_cache.py`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from rerankd.core.types import ScoreOptions
from rerankd.models.base import Family, Prepared, max_over_units, right_pad, sigmoid
from rerankd.models.catalog import ModelSpec
from rerankd.models.chunking import plan_chunks
from rerankd.models.hf import load_network, module_bytes, read_config
from rerankd.models.limits import max_sequence_length, position_limit
from rerankd.models.prefix_cache import (
    PrefixCache,
    batch_cache,
    cache_argument,
    cache_states,
    common_prefix_of_rows,
)
from rerankd.models.prompts import (
    TEMPLATES,
    FlagLLMTemplate,
    PromptParts,
    PromptTemplate,
    Qwen3RerankerTemplate,
    common_prefix_length,
)
from rerankd.models.runtime import Placement
from rerankd.models.tokenization import LoadedTokenizer, load_tokenizer

# The references' own sequence limits when the catalog gives none.
_DEFAULT_MAX_LENGTH = {"bge-llm": 512, "qwen3-reranker": 8192, "mxbai-rerank-v2": 8192}


def build_template(spec: ModelSpec, loaded: LoadedTokenizer, config: dict) -> PromptTemplate:
    """The catalog's template for `spec`, with the limits its reference uses."""
    name = spec.settings.get("template")
    if name not in TEMPLATES:
        raise ValueError(
            f"model '{spec.name}' needs a prompt template (one of {sorted(TEMPLATES)}); "
            f"LLM rerankers are served under their catalog ids"
        )
    max_length = spec.max_length or _DEFAULT_MAX_LENGTH[name]
    if name == FlagLLMTemplate.name:
        return FlagLLMTemplate(loaded, max_length, spec.settings.get("query_max_length"))
    if name == Qwen3RerankerTemplate.name:
        # Never ask RoPE for positions it was not built for.
        max_length = max_sequence_length(max_length, position_limit(config))
        return Qwen3RerankerTemplate(loaded, max_length, spec.settings.get("default_instruction"))
    return TEMPLATES[name](loaded, max_length)


def _uses_sliding_window(config: dict) -> bool:
    layer_types = config.get("layer_types") or []
    return any(kind != "full_attention" for kind in layer_types) or bool(
        config.get("use_sliding_window") and config.get("sliding_window")
    )


class CausalLMFamily(Family):
    kind = "causal-lm"
    # The prefix KV cache is keyed by token ids only: a prefix computed under one adapter
    # would be served to another (or to the base). Until the key carries the active adapter,
    # LoRA adapters are refused for this family with that reason.
    supports_adapters = False

    def __init__(self, spec: ModelSpec, placement: Placement, model_dir: Path) -> None:
        super().__init__(spec, placement)
        config = read_config(model_dir)
        loaded = load_tokenizer(model_dir)
        self.tokenizer = loaded.tokenizer
        self.pad_id = loaded.pad_id
        self.template = build_template(spec, loaded, config)
        self.accepts_instruction = self.template.accepts_instruction
        self.network = load_network(AutoModelForCausalLM, model_dir, placement)
        self.decoder = self.network.base_model
        self._cache_argument = cache_argument(self.decoder)
        head = self.network.get_output_embeddings()
        token_ids = torch.tensor(self.template.score_token_ids, device=placement.device)
        # Only the vocabulary rows the score reads, in fp32 for the final projection.
        self._head_weight = head.weight.detach()[token_ids].float()
        bias = getattr(head, "bias", None)
        self._head_bias = bias.detach()[token_ids].float() if bias is not None else None
        self._softcap = config.get("final_logit_softcapping")
        self.prefix_reuse = bool(spec.settings.get("prefix_reuse", True)) and not _uses_sliding_window(config)
        self.prefixes = PrefixCache()
        self._lock = threading.Lock()

    @property
    def max_length(self) -> int:
        return self.template.max_sequence_length

    # ------------------------------------------------------------------ tokenizer thread pool
    def prepare(self, query: str, texts: list[str], instruction: str | None, options: ScoreOptions) -> Prepared:
        self.check_instruction(instruction)
        parts = self.template.parts(query, texts, instruction)
        if options.max_tokens_per_doc is not None or options.max_chunks_per_doc is not None:
            ids, unit_item, truncated, doc_tokens = self._windows(parts, options)
        else:
            kept = [document[: parts.budget] for document in parts.documents]
            ids = [[*parts.shared, *document, *parts.tail] for document in kept]
            unit_item = None
            lengths = np.fromiter(map(len, parts.documents), dtype=np.int64, count=len(parts.documents))
            truncated = (lengths > parts.budget) | parts.shared_cut
            doc_tokens = int(np.minimum(lengths, parts.budget).sum())
        self.check_truncation(options, truncated)
        shared_by_all = self.prefix_reuse and len(ids) >= 2
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return Prepared(
            ids=ids,
            token_tags=None,
            lengths=lengths,
            # With reuse a batch runs the shared prefix once (then from cache): budget the rest.
            cost_lengths=np.maximum(lengths - len(parts.shared), 1) if shared_by_all else None,
            n_items=len(texts),
            truncated=truncated,
            content_tokens=doc_tokens + parts.query_tokens * len(ids),
            unit_item=unit_item,
            # Rows of different prefixes never share a batch, so each batch has one prefix to reuse.
            batch_key=("prefix", tuple(parts.shared)) if shared_by_all else None,
        )

    def _windows(
        self, parts: PromptParts, options: ScoreOptions
    ) -> tuple[list[list[int]], np.ndarray, np.ndarray, int]:
        """Each document as overlapping windows of its text, each opened by the document label."""
        labels = [document[: common_prefix_length(document, parts.label)] for document in parts.documents]
        bodies = [document[len(label) :] for document, label in zip(parts.documents, labels, strict=True)]
        windows = [max(1, parts.budget - len(label)) for label in labels]
        if options.max_tokens_per_doc is not None:
            windows = [min(window, options.max_tokens_per_doc) for window in windows]
        plan = plan_chunks([len(body) for body in bodies], windows, options.max_chunks_per_doc)
        ids: list[list[int]] = []
        doc_tokens = 0
        for label, body, spans in zip(labels, bodies, plan.spans, strict=True):
            for start, end in spans:
                ids.append([*parts.shared, *label, *body[start:end], *parts.tail])
                doc_tokens += len(label) + end - start
        return ids, plan.unit_item, plan.truncated | parts.shared_cut, doc_tokens

    # -------------------------------------------------------------------------- compute thread
    def collate(self, ids: list[list[int]], token_tags: list[list[int]] | None) -> dict[str, torch.Tensor]:
        """Right-pad the batch; with prefix reuse, split off the leading tokens all rows share."""
        matrix, real = right_pad(ids, self.pad_id)
        lengths = real.sum(axis=1)
        prefix = 0
        if self.prefix_reuse and len(ids) >= 2:
            with self._lock:
                prefix = self.prefixes.plan(matrix[0], common_prefix_of_rows(matrix, lengths))
        body = matrix[:, prefix:]
        mask = np.arange(body.shape[1])[None, :] < (lengths - prefix)[:, None]
        device = self.placement.device
        batch = {
            "input_ids": torch.from_numpy(np.ascontiguousarray(body)).to(device),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)).to(device),
        }
        if prefix:
            batch["prefix_ids"] = torch.from_numpy(matrix[0, :prefix].copy())  # stays on CPU: it is the cache key
        return batch

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        input_ids = inputs["input_ids"]
        mask = inputs["attention_mask"]
        rows, width = input_ids.shape
        kwargs: dict = {}
        offset = 0
        prefix_ids = inputs.get("prefix_ids")
        if prefix_ids is not None:
            offset = int(prefix_ids.shape[0])
            kwargs[self._cache_argument] = batch_cache(self._prefix_states(prefix_ids), rows)
            kwargs["use_cache"] = True
            mask = torch.cat([torch.ones(rows, offset, dtype=mask.dtype, device=mask.device), mask], dim=1)
        else:
            kwargs["use_cache"] = False
        positions = torch.arange(offset, offset + width, device=input_ids.device).unsqueeze(0).expand(rows, -1)
        hidden = self.decoder(input_ids=input_ids, attention_mask=mask, position_ids=positions, **kwargs)
        last = inputs["attention_mask"].sum(dim=1) - 1
        states = hidden.last_hidden_state[torch.arange(rows, device=input_ids.device), last]
        logits = states.float() @ self._head_weight.T
        if self._head_bias is not None:
            logits = logits + self._head_bias
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits.cpu()

    def _prefix_states(self, prefix_ids: torch.Tensor):
        """KV states of a prefix: from the cache, or one forward pass of the prefix alone."""
        key = PrefixCache.key(prefix_ids.numpy())
        with self._lock:
            states = self.prefixes.get(key)
        if states is None:
            ids = prefix_ids.to(self.placement.device).unsqueeze(0)
            output = self.decoder(input_ids=ids, use_cache=True)
            states = cache_states(getattr(output, "cache", None) or output.past_key_values)
            with self._lock:
                self.prefixes.put(key, states)
        return states

    # ------------------------------------------------------------------------- postprocess
    def scores(self, prepared: Prepared, outputs: np.ndarray, raw: bool) -> np.ndarray:
        values = self.template.raw_scores(outputs)
        values = max_over_units(values, prepared.unit_item, prepared.n_items)
        return values if raw else sigmoid(values)

    def parameters_bytes(self) -> int:
        return module_bytes(self.network)

    def close(self) -> None:
        self.prefixes.clear()
        self.decoder = None
        super().close()
