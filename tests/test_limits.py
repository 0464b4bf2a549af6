"""The sequence limit each family derives from its checkpoint (models/limits.py)."""

from __future__ import annotations

from transformers import BertConfig

from rerankd.models.limits import DEFAULT_MAX_LENGTH, max_sequence_length, position_limit


def test_smallest_stated_limit_wins_and_unstated_ones_are_ignored():
    assert max_sequence_length(512, None, 0, 128, 1024) == 128
    assert max_sequence_length(None, None) == DEFAULT_MAX_LENGTH
    assert max_sequence_length(None, default=8192) == 8192


def test_position_limit_reads_dicts_and_loaded_configs():
    assert position_limit({"max_position_embeddings": 512}) == 512
    assert position_limit(BertConfig(max_position_embeddings=256)) == 256
    # XLM-R: positions start after the padding index (pad_token_id 1), so 514 hold 512 tokens.
    assert position_limit({"max_position_embeddings": 514}, reserved=2) == 512
    for unstated in ({}, {"max_position_embeddings": None}, {"max_position_embeddings": 0}, None):
        assert position_limit(unstated) is None
