"""Small random-weight LLM reranker checkpoints of the real architectures, built offline.

* Gemma (bge-reranker-v2-gemma): `GemmaForCausalLM` with the real Gemma tokenizer from
  ../shared/data/tokenizers/gemma.
* Qwen3 (Qwen3-Reranker) and Qwen2 (mxbai-rerank-v2): `Qwen3ForCausalLM` / `Qwen2ForCausalLM`
  with a byte-level BPE tokenizer trained here on TREC passages, using Qwen's pre-tokenizer
  pattern and the chat tokens the templates need (`<|im_start|>`, `<|im_end|>`, `<think>`...).

Weights are seeded; `initializer_range` is larger than a trained model's so that random
networks still spread their scores (ranking checks need distinct scores).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer

from rerankd.bench.checkpoints import save_checkpoint

QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_ADDED = ["<think>", "</think>"]

# Texts of the templates, so that their words (and "yes", "no", "1", "0") are single tokens.
TEMPLATE_TEXTS = [
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".',
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: ",
    "<Document>: ",
    "system\nuser\nassistant\n",
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:",
    "instruction: query: document: yes no yes no 1 0",
]


def build_qwen_tokenizer(target: Path, corpus: list[str], *, vocab_size: int = 3000) -> Path:
    """A Qwen-style byte-level BPE tokenizer (`tokenizer.json` + `tokenizer_config.json`) in `target`."""
    from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([*corpus, *(TEMPLATE_TEXTS * 50)], trainer)
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in QWEN_ADDED])
    for token in ("yes", "no", "1", "0"):
        if tokenizer.token_to_id(token) is None:
            raise RuntimeError(f"trained tokenizer lacks the token {token!r}")
    target.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(target / "tokenizer.json"))
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "model_max_length": 131072,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "split_special_tokens": False,
    }
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return target


def _copy_tokenizer(source: Path, target: Path, **config_overrides) -> Tokenizer:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "tokenizer.json", target / "tokenizer.json")
    config = {**json.loads((source / "tokenizer_config.json").read_text()), **config_overrides}
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return Tokenizer.from_file(str(target / "tokenizer.json"))


def _qwen_reranker(
    classes: tuple[type, type],
    target: Path,
    tokenizer_dir: Path,
    *,
    seed: int,
    max_positions: int,
    tokenizer_config: dict | None = None,
    **config,
) -> Path:
    """A Qwen causal LM, 2 layers of hidden 64, of the (config, model) `classes`, with `tokenizer_dir`'s tokenizer."""
    config_class, model_class = classes
    tokenizer = _copy_tokenizer(tokenizer_dir, target, **(tokenizer_config or {}))
    torch.manual_seed(seed)
    settings = config_class(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.token_to_id("<|endoftext|>"),
        eos_token_id=tokenizer.token_to_id("<|im_end|>"),
        bos_token_id=None,
        **config,
    )
    return save_checkpoint(model_class(settings).eval(), target)


def build_qwen3_reranker(target: Path, tokenizer_dir: Path, *, seed: int = 0, max_positions: int = 512) -> Path:
    """`Qwen3ForCausalLM` (2 layers, hidden 64) with the Qwen-style tokenizer from `tokenizer_dir`.

    512 positions cap the card's 8,192-token `max_length`, so truncation is cheap to test.
    """
    from transformers import Qwen3Config, Qwen3ForCausalLM

    classes = (Qwen3Config, Qwen3ForCausalLM)
    return _qwen_reranker(
        classes, target, tokenizer_dir, seed=seed, max_positions=max_positions, head_dim=16, initializer_range=0.2
    )


def build_mxbai_v2_reranker(target: Path, tokenizer_dir: Path, *, seed: int = 1, max_positions: int = 1024) -> Path:
    """`Qwen2ForCausalLM` (mxbai-rerank-v2's architecture) with a local Qwen-style tokenizer.

    The tokenizer's `model_max_length` is the model's 1,024 positions, so the reference's own
    clamp (max_length + template <= model_max_length) is exercised.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _qwen_reranker(
        (Qwen2Config, Qwen2ForCausalLM),
        target,
        tokenizer_dir,
        seed=seed,
        max_positions=max_positions,
        tokenizer_config={"model_max_length": max_positions},
        initializer_range=0.1,
        use_sliding_window=False,
    )


def build_gemma_reranker(target: Path, tokenizer_dir: Path, *, seed: int = 2) -> Path:
    """`GemmaForCausalLM` (2 layers, hidden 32, the full 256k vocabulary) with the real Gemma tokenizer."""
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(seed)
    config = GemmaConfig(
        vocab_size=256000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=2048,
        initializer_range=0.2,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=1,
    )
    return save_checkpoint(
        GemmaForCausalLM(config).eval(), target, tokenizer_dir, ("tokenizer.json", "tokenizer_config.json")
    )
