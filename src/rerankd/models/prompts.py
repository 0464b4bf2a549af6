"""Prompt templates of the decoder (LLM) rerankers, token for token as their authors' code builds them.

Every sequence of a request is `shared + document + tail`: the query (and instruction) come
before the document in all three templates, so `shared` is the same for every document of a
request and its KV cache can be computed once (see `causal_lm.py`). Each template also
reproduces its reference's truncation, which always cuts the document (or, past its own cap,
the query), never the prompt that follows the document.

* `bge-llm` — FlagEmbedding `FlagLLMReranker` (bge-reranker-v2-gemma):
  `<bos> "A: {query}" \\n "B: {passage}" \\n {prompt}`; the query is capped at 3/4 of
  `max_length`, the passage at `max_length`, and `[bos]+query` + `\\n+passage` at
  `max_length + len(\\n) + len(prompt)` (cutting the passage); score = logit("Yes").
* `qwen3-reranker` — the Qwen3-Reranker model card: chat prefix with the system prompt,
  `<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}` tokenized as one text and
  cut from its end to `max_length - len(prefix) - len(suffix)`, then the assistant turn with an
  empty think block; score = logit("yes") - logit("no").
* `mxbai-rerank-v2` — mixedbread's `MxbaiRerankV2`: chat prefix,
  `[instruction: {instruction}\\n]query: {query}` (capped at 3/4 of `max_length`), `\\n`,
  `document: {doc}`, `\\n`, its task prompt and the assistant turn; score = logit("1") - logit("0").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from tokenizers import Tokenizer

from rerankd.models.tokenization import LoadedTokenizer


def common_prefix_length(first: list[int], second: list[int]) -> int:
    """How many leading tokens two sequences share."""
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


def special_token_id(loaded: LoadedTokenizer, key: str) -> int | None:
    """Id of a special token named in `tokenizer_config.json` (e.g. `bos_token`), if any."""
    token = loaded.config.get(key)
    if isinstance(token, dict):
        token = token.get("content")
    return loaded.tokenizer.token_to_id(token) if isinstance(token, str) else None


@dataclass(frozen=True)
class PromptParts:
    """A request's prompts before truncation: sequence i = `shared + documents[i][:budget] + tail`."""

    shared: list[int]
    documents: list[list[int]]
    tail: list[int]
    # Most document tokens that fit (the reference's own rule, the same for every document).
    budget: int
    # The query (or instruction) itself was cut to fit: every item is then truncated.
    shared_cut: bool
    # Tokens of the caller's query text inside `shared` (for usage accounting).
    query_tokens: int
    # Tokens that open every document stream ("B:"), repeated at the start of each window
    # when a long document is scored in windows.
    label: list[int]


class PromptTemplate(ABC):
    """How one reranker family's reference code turns (instruction, query, document) into tokens."""

    name: ClassVar[str]
    accepts_instruction: ClassVar[bool] = True

    def __init__(self, loaded: LoadedTokenizer, max_length: int) -> None:
        self.tokenizer: Tokenizer = loaded.tokenizer
        self.loaded = loaded
        self.max_length = max_length

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def token_id(self, token: str) -> int:
        """The id of a vocabulary entry, as `convert_tokens_to_ids` gives it."""
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"the tokenizer has no token {token!r}, which the {self.name} template scores")
        return token_id

    def first_token(self, text: str) -> int:
        """`tokenizer(text, add_special_tokens=False)['input_ids'][0]`, as the references read it."""
        ids = self.encode(text)
        if not ids:
            raise ValueError(f"the tokenizer encodes {text!r} to nothing; the {self.name} template scores it")
        return ids[0]

    @property
    @abstractmethod
    def max_sequence_length(self) -> int:
        """Longest sequence the template can produce with its default prompt."""

    @property
    @abstractmethod
    def score_token_ids(self) -> list[int]:
        """Vocabulary ids whose next-token logits at the last position make the score."""

    @abstractmethod
    def parts(self, query: str, documents: list[str], instruction: str | None) -> PromptParts:
        """Token pieces of every prompt of a request (tokenizer thread pool)."""

    def raw_scores(self, logits: np.ndarray) -> np.ndarray:
        """The reference's raw score from the logits of `score_token_ids`: a margin by default."""
        logits = np.asarray(logits, dtype=np.float64)
        return logits[:, 0] - logits[:, 1]


class FlagLLMTemplate(PromptTemplate):
    """FlagEmbedding `FlagLLMReranker` (BaseLLMReranker) for bge-reranker-v2-gemma."""

    name = "bge-llm"
    DEFAULT_PROMPT = (
        "Given a query A and a passage B, determine whether the passage contains an answer to the query "
        "by providing a prediction of either 'Yes' or 'No'."
    )

    def __init__(self, loaded: LoadedTokenizer, max_length: int, query_max_length: int | None = None) -> None:
        super().__init__(loaded, max_length)
        self.query_max_length = query_max_length or max_length * 3 // 4
        self.sep = self.encode("\n")
        self.default_prompt = self.encode(self.DEFAULT_PROMPT)
        bos = special_token_id(loaded, "bos_token")
        # FlagEmbedding prepends <bos> by hand unless the tokenizer has none or pads with it.
        self.bos = [bos] if bos is not None and bos != loaded.pad_id else []
        self.yes = self.first_token("Yes")

    @property
    def max_sequence_length(self) -> int:
        fixed = len(self.sep) + len(self.default_prompt)
        return self.max_length + 2 * fixed

    @property
    def score_token_ids(self) -> list[int]:
        return [self.yes]

    def raw_scores(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits, dtype=np.float64)[:, 0]

    def parts(self, query: str, documents: list[str], instruction: str | None) -> PromptParts:
        # The instruction is FlagEmbedding's `prompt` argument: it replaces the Yes/No prompt.
        prompt = self.default_prompt if instruction is None else self.encode(instruction)
        query_ids = self.encode(f"A: {query}")
        kept_query = query_ids[: self.query_max_length]
        first = [*self.bos, *kept_query]
        pair_max = self.max_length + len(self.sep) + len(prompt)
        budget = max(0, min(self.max_length, pair_max - len(first) - len(self.sep)))
        return PromptParts(
            shared=[*first, *self.sep],
            documents=self.encode_batch([f"B: {document}" for document in documents]),
            tail=[*self.sep, *prompt],
            budget=budget,
            shared_cut=len(kept_query) < len(query_ids),
            query_tokens=len(kept_query),
            label=self.encode("B:"),
        )


class Qwen3RerankerTemplate(PromptTemplate):
    """The Qwen3-Reranker model card's `format_instruction` + `process_inputs`."""

    name = "qwen3-reranker"
    PREFIX = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

    def __init__(self, loaded: LoadedTokenizer, max_length: int, default_instruction: str | None = None) -> None:
        super().__init__(loaded, max_length)
        self.default_instruction = default_instruction or self.DEFAULT_INSTRUCTION
        self.prefix = self.encode(self.PREFIX)
        self.suffix = self.encode(self.SUFFIX)
        self.yes = self.token_id("yes")
        self.no = self.token_id("no")

    @property
    def max_sequence_length(self) -> int:
        return self.max_length

    @property
    def score_token_ids(self) -> list[int]:
        return [self.yes, self.no]

    def parts(self, query: str, documents: list[str], instruction: str | None) -> PromptParts:
        instruction = self.default_instruction if instruction is None else instruction
        head_text = f"<Instruct>: {instruction}\n<Query>: {query}\n"
        # The card tokenizes each whole pair text; so do we, then split off what all share.
        full = self.encode_batch([f"{head_text}<Document>: {document}" for document in documents])
        head = self.encode(head_text)
        shared_len = min((common_prefix_length(ids, head) for ids in full), default=len(head))
        content_budget = max(0, self.max_length - len(self.prefix) - len(self.suffix))
        kept_head = min(shared_len, content_budget)
        query_only = len(self.encode(f"<Instruct>: {instruction}\n<Query>: "))
        return PromptParts(
            shared=[*self.prefix, *head[:kept_head]],
            documents=[ids[kept_head:] for ids in full],
            tail=list(self.suffix),
            budget=content_budget - kept_head,
            shared_cut=kept_head < shared_len,
            query_tokens=max(0, kept_head - query_only),
            label=self.encode("<Document>:"),
        )


class MxbaiRerankV2Template(PromptTemplate):
    """mixedbread's `MxbaiRerankV2.prepare_inputs` (mxbai-rerank package)."""

    name = "mxbai-rerank-v2"
    TASK = (
        "You are a search relevance expert who evaluates how well documents match search queries. For each "
        "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
        "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
    )
    CHAT_PREFIX = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n"
    )
    CHAT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"

    def __init__(self, loaded: LoadedTokenizer, max_length: int) -> None:
        super().__init__(loaded, max_length)
        self.sep = self.encode("\n")
        self.task = self.encode(self.TASK)
        self.chat_prefix = self.encode(self.CHAT_PREFIX)
        self.chat_suffix = self.encode(self.CHAT_SUFFIX)
        self.predefined = len(self.chat_prefix) + len(self.task) + len(self.chat_suffix) + len(self.sep)
        # The reference clamps its max_length so that the template fits the tokenizer's limit.
        self.model_max_length = loaded.model_max_length
        if self.model_max_length is not None and self.max_length + self.predefined > self.model_max_length:
            self.max_length = self.model_max_length - self.predefined
        self.one = self.first_token("1")
        self.zero = self.first_token("0")

    @property
    def max_sequence_length(self) -> int:
        return self.max_length + self.predefined

    @property
    def score_token_ids(self) -> list[int]:
        return [self.one, self.zero]

    def parts(self, query: str, documents: list[str], instruction: str | None) -> PromptParts:
        query_text = f"query: {query}"
        if instruction:  # the reference treats an empty instruction as none
            query_text = f"instruction: {instruction}\n{query_text}"
        query_ids = self.encode(query_text)
        kept_query = query_ids[: self.max_length * 3 // 4]
        budget = self.max_length - len(kept_query) - len(self.sep)
        if self.model_max_length is not None:  # `doc_maxlen` of the reference
            budget = min(budget, self.model_max_length - len(kept_query) - self.predefined, self.max_length)
        return PromptParts(
            shared=[*self.chat_prefix, *kept_query, *self.sep],
            documents=self.encode_batch([f"document: {document}" for document in documents]),
            tail=[*self.sep, *self.task, *self.chat_suffix],
            budget=max(0, budget),
            shared_cut=len(kept_query) < len(query_ids),
            query_tokens=len(kept_query),
            label=self.encode("document:"),
        )


TEMPLATES: dict[str, type[PromptTemplate]] = {
    template.name: template for template in (FlagLLMTemplate, Qwen3RerankerTemplate, MxbaiRerankV2Template)
}
