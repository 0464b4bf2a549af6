"""Independent implementations of the LLM rerankers' reference scoring, for fidelity tests.

Written from the authors' code (FlagEmbedding `BaseLLMReranker` for bge-reranker-v2-gemma,
the Qwen3-Reranker model card, mixedbread's `MxbaiRerankV2`) with Hugging Face `transformers`
APIs the way those references use them: left padding, full-vocabulary logits at the last
position, eager attention. FlagEmbedding and mxbai-rerank themselves do not import with the
transformers 5 installed here (`prepare_for_model` and an attention-mask module are gone), so
`prepare_for_model(..., truncation="only_second")` is spelled out: it cuts the second
sequence's end until the pair fits.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import torch

GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query "
    "by providing a prediction of either 'Yes' or 'No'."
)
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_TASK = "Given a web search query, retrieve relevant passages that answer the query"
MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"


@cache
def hf_tokenizer(model_dir: Path):
    """`tokenizer.json` as written, with the special tokens of `tokenizer_config.json`, left padding."""
    from transformers import PreTrainedTokenizerFast

    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    limit = config.get("model_max_length")
    return PreTrainedTokenizerFast(
        tokenizer_file=str(model_dir / "tokenizer.json"),
        bos_token=config.get("bos_token"),
        eos_token=config.get("eos_token"),
        pad_token=config.get("pad_token"),
        padding_side="left",
        model_max_length=limit if isinstance(limit, int) and limit < 10**9 else None,
    )


@cache
def hf_model(model_dir: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def last_logits(model_dir: Path, sequences: list[list[int]], batch_size: int = 16) -> torch.Tensor:
    """Logits at the last position of left-padded batches, as the references read them."""
    tokenizer, model = hf_tokenizer(model_dir), hf_model(model_dir)
    rows = []
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            batch = tokenizer.pad(
                {"input_ids": sequences[start : start + batch_size]}, padding=True, return_tensors="pt"
            )
            # Left padding puts every row's last token at -1; `logits_to_keep=1` computes only there.
            rows.append(model(**batch, logits_to_keep=1).logits[:, -1, :].float())
    return torch.cat(rows)


def only_second(first: list[int], second: list[int], max_length: int) -> list[int]:
    """`prepare_for_model(first, second, truncation="only_second", max_length=...)` ids."""
    overflow = len(first) + len(second) - max_length
    if overflow > 0:
        second = second[:-overflow]
    return [*first, *second]


def bge_gemma_inputs(model_dir: Path, query: str, passages: list[str], prompt: str | None = None, max_length=512):
    tokenizer = hf_tokenizer(model_dir)
    prompt_ids = ids(tokenizer, GEMMA_PROMPT if prompt is None else prompt)
    sep = ids(tokenizer, "\n")
    query_ids = tokenizer(f"A: {query}", add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True)[
        "input_ids"
    ]
    passage_ids = tokenizer(
        [f"B: {p}" for p in passages], add_special_tokens=False, max_length=max_length, truncation=True
    )["input_ids"]
    pair_max = max_length + len(sep) + len(prompt_ids)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id != tokenizer.pad_token_id else []
    return [[*only_second([*bos, *query_ids], [*sep, *p], pair_max), *sep, *prompt_ids] for p in passage_ids]


def bge_gemma_scores(model_dir: Path, query: str, passages: list[str], prompt: str | None = None) -> np.ndarray:
    """FlagLLMReranker.compute_score(normalize=False): the "Yes" logit at the last position."""
    sequences = bge_gemma_inputs(model_dir, query, passages, prompt)
    yes = ids(hf_tokenizer(model_dir), "Yes")[0]
    return last_logits(model_dir, sequences)[:, yes].double().numpy()


def qwen3_inputs(model_dir: Path, query: str, documents: list[str], instruction: str | None, max_length: int):
    tokenizer = hf_tokenizer(model_dir)
    instruction = QWEN3_TASK if instruction is None else instruction
    prefix, suffix = ids(tokenizer, QWEN3_PREFIX), ids(tokenizer, QWEN3_SUFFIX)
    pairs = [f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}" for doc in documents]
    encoded = tokenizer(
        pairs,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix) - len(suffix),
    )["input_ids"]
    return [[*prefix, *row, *suffix] for row in encoded]


def qwen3_scores(
    model_dir: Path, query: str, documents: list[str], instruction: str | None = None, *, max_length: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """(logit(yes) - logit(no), P(yes) over {yes, no} as the card computes it)."""
    tokenizer = hf_tokenizer(model_dir)
    logits = last_logits(model_dir, qwen3_inputs(model_dir, query, documents, instruction, max_length))
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    pair = torch.stack([logits[:, no], logits[:, yes]], dim=1)
    probability = torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp()
    return (logits[:, yes] - logits[:, no]).double().numpy(), probability.double().numpy()


def mxbai_v2_inputs(model_dir: Path, query: str, documents: list[str], instruction: str | None, max_length=8192):
    tokenizer = hf_tokenizer(model_dir)
    sep, task = ids(tokenizer, "\n"), ids(tokenizer, MXBAI_TASK)
    prefix, suffix = ids(tokenizer, MXBAI_PREFIX), ids(tokenizer, MXBAI_SUFFIX)
    predefined = len(prefix) + len(task) + len(suffix) + len(sep)
    model_max = tokenizer.model_max_length
    if max_length + predefined > model_max:
        max_length = model_max - predefined
    query_text = f"query: {query}"
    if instruction:
        query_text = f"instruction: {instruction}\n{query_text}"
    query_ids = tokenizer(query_text, add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True)[
        "input_ids"
    ]
    doc_max = min(model_max - len(query_ids) - predefined, max_length)
    doc_ids = tokenizer(
        [f"document: {doc}" for doc in documents], add_special_tokens=False, max_length=doc_max, truncation=True
    )["input_ids"]
    return [[*prefix, *only_second(query_ids, [*sep, *d], max_length), *sep, *task, *suffix] for d in doc_ids]


def mxbai_v2_scores(model_dir: Path, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
    """MxbaiRerankV2.predict: logit("1") - logit("0") at the last position."""
    tokenizer = hf_tokenizer(model_dir)
    logits = last_logits(model_dir, mxbai_v2_inputs(model_dir, query, documents, instruction))
    one, zero = ids(tokenizer, "1")[0], ids(tokenizer, "0")[0]
    return (logits[:, one] - logits[:, zero]).double().numpy()
