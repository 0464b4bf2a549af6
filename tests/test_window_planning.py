"""models/chunking.py: the exact windows both policies plan, independent of any model."""

from __future__ import annotations

import pytest

from rerankd.models.chunking import plan_chunks, window_spans


@pytest.mark.parametrize("align_end", [False, True])
def test_a_document_of_exactly_one_window_is_one_span(align_end):
    assert window_spans(8, 8, None, align_end=align_end) == ([(0, 8)], False)
    assert window_spans(8, 8, 1, align_end=align_end) == ([(0, 8)], False)
    assert window_spans(0, 8, None, align_end=align_end) == ([(0, 0)], False)


def test_consecutive_windows_end_with_a_short_one():
    # window 8: overlap min(64, 8 // 4) = 2, stride 6
    assert window_spans(20, 8, None) == ([(0, 8), (6, 14), (12, 20)], False)
    assert window_spans(21, 8, None) == ([(0, 8), (6, 14), (12, 20), (18, 21)], False)
    assert window_spans(1000, 400, None) == ([(0, 400), (336, 736), (672, 1000)], False)


def test_end_aligned_windows_end_with_a_full_one():
    assert window_spans(20, 8, None, align_end=True) == ([(0, 8), (6, 14), (12, 20)], False)
    assert window_spans(21, 8, None, align_end=True) == ([(0, 8), (6, 14), (12, 20), (13, 21)], False)
    # jina's default overlap (80) and a catalog's smaller one
    assert window_spans(1000, 400, None, max_overlap=80, align_end=True) == (
        [(0, 400), (320, 720), (600, 1000)],
        False,
    )
    assert window_spans(21, 8, None, max_overlap=1, align_end=True) == ([(0, 8), (7, 15), (13, 21)], False)


@pytest.mark.parametrize("align_end", [False, True])
def test_max_chunks_keeps_the_first_windows_and_flags_the_rest(align_end):
    assert window_spans(21, 8, 2, align_end=align_end) == ([(0, 8), (6, 14)], True)
    assert window_spans(21, 8, 1, align_end=align_end) == ([(0, 8)], True)
    # a cap that the windows just fit is no cut
    assert window_spans(20, 8, 3, align_end=align_end) == ([(0, 8), (6, 14), (12, 20)], False)
    last = (13, 21) if align_end else (18, 21)
    assert window_spans(21, 8, 4, align_end=align_end) == ([(0, 8), (6, 14), (12, 20), last], False)


def rerank_reference(length: int, window: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """jina-reranker-v2's `reranker_tokenize_preproc` windowing, as its modeling code writes it."""
    overlap = min(overlap_tokens, window // 4)
    if length <= window:
        return [(0, length)]
    spans, start = [], 0
    while start < length:
        end = start + window
        spans.append((length - window, length) if end >= length else (start, end))
        start = end - overlap if end < length else end
    return spans


@pytest.mark.parametrize("window", [1, 3, 8, 50])
@pytest.mark.parametrize("overlap_tokens", [0, 5, 80])
def test_end_aligned_windows_equal_jinas_rerank(window, overlap_tokens):
    for length in range(0, 4 * window + 3):
        expected = rerank_reference(length, window, overlap_tokens)
        assert window_spans(length, window, None, max_overlap=overlap_tokens, align_end=True) == (expected, False)
        for max_chunks in (1, 2, 3):
            spans, cut = window_spans(length, window, max_chunks, max_overlap=overlap_tokens, align_end=True)
            assert (spans, cut) == (expected[:max_chunks], len(expected) > max_chunks)


def test_plan_maps_units_to_documents_with_one_window_per_document():
    plan = plan_chunks([21, 4, 30], [8, 4, 8], 2)
    assert plan.spans == [[(0, 8), (6, 14)], [(0, 4)], [(0, 8), (6, 14)]]
    assert plan.truncated.tolist() == [True, False, True]
    assert plan.unit_item.tolist() == [0, 0, 1, 2, 2]
    assert plan_chunks([21, 4], 8, None, align_end=True).spans == [[(0, 8), (6, 14), (12, 20), (13, 21)], [(0, 4)]]
    with pytest.raises(ValueError):
        plan_chunks([21, 4], [8], None)
    with pytest.raises(ValueError):
        window_spans(10, 0, None)
