"""Bounded compile: sizes are estimated before allocating and refused with a TooLargeError
that names the limit and the fix; huge blocks, many heads and hostile parameters neither
crash nor allocate first."""

import time
import tracemalloc

import numpy as np
import pytest

import maskc as mc
from maskc.compiler import last_stats


def test_causal_at_the_largest_length_is_refused_before_allocating():
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(mc.TooLargeError, match="max_bytes") as err:
        mc.compile(mc.causal(), q_len=2**31 - 1, block=4096, cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 64 << 20
    assert "shorter lengths" in str(err.value)


def test_max_bytes_is_honoured_by_every_stage():
    p = mc.causal() & mc.window(512)
    lay = mc.compile(p, 1 << 16, block=64, cache=False)
    for limit in (1 << 10, 1 << 14, 1 << 17):
        with pytest.raises(mc.TooLargeError, match="above the limit"):
            mc.compile(p, 1 << 16, block=64, cache=False, max_bytes=limit)
    assert mc.compile(p, 1 << 16, block=64, cache=False, max_bytes=64 << 20) == lay


def test_a_huge_output_is_refused_after_counting_not_after_writing():
    limit = 2 << 30
    tracemalloc.start()
    with pytest.raises(mc.TooLargeError, match="non-empty blocks"):  # 2**40 blocks: 9 TiB
        mc.compile(mc.full(), q_len=1 << 24, block=16, cache=False, max_bytes=limit)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < limit


def test_many_heads_with_blocks_larger_than_the_sequence():
    lay = mc.compile(mc.primeformer_heads(4096), q_len=64, block=4096, cache=False)
    lay.validate()
    assert lay.heads == 4096 and lay.n_qb == lay.n_kb == 1
    assert last_stats().slices <= 16  # the heads repeat 9 rules: equal slices are compiled once
    want = mc.primeformer_heads(9).dense(64)
    for h in (0, 4, 8, 9, 13, 4095):
        assert np.array_equal(lay.to_scipy("csr", head=h).toarray().astype(bool), want[h % 9]), h


def test_offsets_with_a_huge_range_do_not_allocate_terabytes():
    p = mc.parse("offsets(range(-1099511627776, 1))")
    try:
        lay = mc.compile(p, 100, cache=False)
    except mc.TooLargeError as e:  # refused by the pattern or the compiler, with a message
        assert "offsets" in str(e)
    else:
        assert np.array_equal(lay.to_dense()[0], np.triu(np.ones((100, 100), bool)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="q_offset must be >= 0"):
        mc.compile(mc.causal(), 10, q_offset=-1)
    with pytest.raises(ValueError, match="q_offset must be at most"):
        mc.compile(mc.causal(), 10, q_offset=2**31 - 5)
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        mc.compile(mc.causal(), 10, max_bytes=0)
    with pytest.raises(TypeError, match="q_len must be an integer"):
        mc.compile(mc.causal(), 10.0)
