"""Short input, unbounded cost: the constructor and compile examples of the hostile-input
issue, each bounded by a memory counter (tracemalloc) rather than a clock."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import maskc as mc
from maskc.patterns.cells import _draw


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("text", ["offsets(range(-1099511627776, 1))", "rows(1099511627776, shift=1099511627776)",
                                  "cols(range(0, 1099511627776, 7), period=1099511627776)",
                                  "segments(range(1, 1099511627776))", "document_mask(range(1, 1073741824))",
                                  "longformer(1, range(0, 1073741824))",
                                  "sparse_transformer_fixed(block=1048576, c=1048575)"])
def test_huge_ranges_compile_in_memory_proportional_to_the_layout(text):
    p = mc.parse(text)
    lay, peak = _peak(lambda: mc.compile(p, 100, block=16, cache=False))
    assert peak < 32 << 20, f"{text}: {peak:,} bytes"  # was 8 TiB asked of numpy for the first two
    np.testing.assert_array_equal(lay.to_dense(), p.dense(100))


def test_wide_index_sets_evaluate_arithmetically():
    p = mc.rows(range(0, 1 << 40), shift=(1 << 40) - 3)
    assert p.dense(5, 2)[0].all(axis=1).tolist() == [True, True, True, False, False]
    q = mc.offsets(range(-(1 << 40), 1 << 39, 1 << 20), symmetric=True)
    assert q.membership(3, 3).tolist() == [False, False, True, False, False]


def test_sparse_transformer_fixed_costs_the_same_for_every_c():
    for c in (1, 7, 1023):
        body = mc.sparse_transformer_fixed(1024, c).lowered()
        assert len(body.text()) < 120  # one periodic column leaf, not c leaves


def test_a_new_bigbird_seed_compiles_nothing():
    """Each seed once JIT-compiled its own predicate (2.9 s, 7-9 MB never freed)."""
    for seed in range(3):
        p = mc.bigbird(window=3, global_tokens=4, random_blocks=2, block=4, seed=seed)
        p.dense(64)
    assert len(_draw.overloads) == 1


def test_random_keys_refuse_too_many_pairs():
    with pytest.raises(mc.TooLargeError, match="random_keys' pairs"):
        mc.random_keys(1024, symmetric=True).cells(1 << 20, 1 << 20)


def test_explicit_lists_are_bounded_before_work():
    with pytest.raises(ValueError, match="at most 1,048,576 explicit values"):
        mc.offsets(np.arange(2_000_000) * 3 % 1_999_993)
    with pytest.raises(ValueError, match="at most 1,048,576"):
        mc.cols(k for k in itertools.count())  # an endless generator is cut off, not materialised
    with pytest.raises(ValueError, match="separate ranges would not fit"):
        mc.cols(range(3 * k, 3 * k + 2) for k in itertools.count())
    with pytest.raises(ValueError, match="above the limit of 100,000"):
        mc.heads([mc.offsets([k, 3 * k + 1]) for k in range(10000)])
