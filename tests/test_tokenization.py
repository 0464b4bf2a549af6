"""Pairs assembled from a probed template equal `tokenizer(q, d, truncation="longest_first")`."""

from __future__ import annotations

import random

import numpy as np
import pytest
from support.data import XLMR_TOKENIZER
from tokenizers import Tokenizer

from rerankd.models.base import right_pad
from rerankd.models.tokenization import (
    encode_texts,
    load_tokenizer,
    longest_first_lengths,
    probe_pair_template,
    probe_single_template,
)

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "antidisestablishmentarianism",
    "néo",
    "東京",
    "tower\nline",
]


def tokenizer_dirs(minilm_bi_encoder_dir):
    dirs = [("bert", minilm_bi_encoder_dir)]
    if XLMR_TOKENIZER.exists():
        dirs.append(("xlm-roberta", XLMR_TOKENIZER.parent))
    return dirs


@pytest.mark.parametrize("which", ["bert", "xlm-roberta"])
def test_pairs_match_hugging_face_longest_first(minilm_bi_encoder_dir, which):
    dirs = dict(tokenizer_dirs(minilm_bi_encoder_dir))
    if which not in dirs:
        pytest.skip("XLM-R tokenizer not available")
    loaded = load_tokenizer(dirs[which])
    template = probe_pair_template(loaded.tokenizer)
    reference = Tokenizer.from_file(str(dirs[which] / "tokenizer.json"))
    reference.no_padding()
    rng = random.Random(7)
    checked = 0
    for _ in range(1500):
        max_length = rng.randint(template.num_special + 1, 48)
        query = " ".join(rng.choices(WORDS, k=rng.randint(0, 30)))
        document = " ".join(rng.choices(WORDS, k=rng.randint(0, 40)))
        reference.enable_truncation(max_length, strategy="longest_first")
        expected = reference.encode(query, document)
        query_ids, doc_ids = encode_texts(loaded.tokenizer, [query, document])
        kept_q, kept_d = longest_first_lengths(
            len(query_ids), np.array([len(doc_ids)]), max_length - template.num_special
        )
        ids, types = template.assemble(query_ids[: kept_q[0]], doc_ids[: kept_d[0]])
        assert ids == expected.ids, (max_length, query, document)
        assert types == expected.type_ids
        checked += 1
    assert checked == 1500


def test_templates_of_bert_and_xlmr(minilm_bi_encoder_dir):
    bert = load_tokenizer(minilm_bi_encoder_dir).tokenizer
    pair = probe_pair_template(bert)
    assert (pair.prefix.ids, pair.middle.ids, pair.suffix.ids) == ((101,), (102,), (102,))
    assert (pair.first_type, pair.second_type) == (0, 1)
    single = probe_single_template(bert)
    assert (single.prefix.ids, single.suffix.ids) == ((101,), (102,))
    if XLMR_TOKENIZER.exists():
        xlmr = probe_pair_template(load_tokenizer(XLMR_TOKENIZER.parent).tokenizer)
        assert (xlmr.prefix.ids, xlmr.middle.ids, xlmr.suffix.ids) == ((0,), (2, 2), (2,))


def test_padding_and_truncation_in_tokenizer_json_are_ignored(minilm_bi_encoder_dir):
    """all-MiniLM-L6-v2's tokenizer.json pads to 128 and truncates; pairs must not inherit that."""
    loaded = load_tokenizer(minilm_bi_encoder_dir)
    assert encode_texts(loaded.tokenizer, ["hello"]) == [[7592]]
    assert len(encode_texts(loaded.tokenizer, ["word " * 300])[0]) == 300


def test_right_pad_keeps_every_row_and_pads_after_it():
    rows = [[5, 6, 7], [8], [9, 10, 11, 12], [13, 14]]
    matrix, mask = right_pad(rows, fill=-1)
    assert matrix.tolist() == [[5, 6, 7, -1], [8, -1, -1, -1], [9, 10, 11, 12], [13, 14, -1, -1]]
    assert mask.sum(axis=1).tolist() == [3, 1, 4, 2]
    assert matrix.dtype == np.int64


# Texts where a prefix could tokenize differently from the whole: long words ([UNK] past 100
# characters in WordPiece, Viterbi over one run in Unigram), whitespace runs, combining marks.
AWKWARD_TEXTS = [
    "a" * 50_000,
    "x" * 3_000 + " word" * 1_000,
    " " * 100_000 + "hello world " * 500,
    "東京タワー" * 5_000,
    "e\u0301" * 20_000,
    "ab\ncd " * 9_000,
    "été " * 5_000 + "z" * 5_000,
    ("word" * 30 + " ") * 500,
    "1234567890" * 3_000,
    "🙂" * 10_000,
    "\t\n " * 3_000 + "tail",
]


@pytest.mark.parametrize("which", ["bert", "xlm-roberta"])
def test_long_texts_tokenize_from_a_prefix_exactly(minilm_bi_encoder_dir, trec, which):
    """`encode_texts(..., max_tokens)` gives the whole text's first `max_tokens + 1` tokens (or all of them)."""
    if which == "xlm-roberta" and not XLMR_TOKENIZER.exists():
        pytest.skip("no XLM-R tokenizer in ../shared/data")
    directory = dict(tokenizer_dirs(minilm_bi_encoder_dir))[which]
    tokenizer = load_tokenizer(directory).tokenizer
    passages = [d for q in trec for d in q.documents]
    rng = random.Random(7)
    texts = [" ".join(rng.sample(passages, rng.randint(1, 40))) for _ in range(60)] + AWKWARD_TEXTS
    whole = encode_texts(tokenizer, texts)
    cut_any = 0
    for limit in (1, 7, 64, 509, 1000):
        for text, full, got in zip(texts, whole, encode_texts(tokenizer, texts, limit), strict=True):
            if got != full:
                assert len(full) > limit + 1 and got == full[: limit + 1], (limit, text[:40])
                cut_any += 1
    assert cut_any > 100  # the prefix path was taken, not just whole texts


def test_ten_megabyte_text_costs_a_prefix(minilm_bi_encoder_dir, trec):
    tokenizer = load_tokenizer(minilm_bi_encoder_dir).tokenizer
    text = " ".join(d for q in trec for d in q.documents)
    text = (text * (10_000_000 // len(text) + 1))[:10_000_000]
    ids = encode_texts(tokenizer, [text], 509)[0]
    assert ids == encode_texts(tokenizer, [text[:20_000]])[0][:510]
