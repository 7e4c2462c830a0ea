"""The row walk's kept runs: two-byte bounds while rows have fewer than 32,768 key blocks,
four-byte ones beyond, and arrays that grow when the first estimate was short."""

import dataclasses

import numpy as np
import pytest

import maskc as mc
from maskc.compiler import build
from maskc.compiler.rowwalk import kept_dtype
from maskc.errors import TooLargeError


def test_bounds_dtype_follows_the_row_width():
    assert kept_dtype(32767) == (np.uint16, 1 << 15)
    assert kept_dtype(32768) == (np.int32, 1 << 30)
    with pytest.raises(TooLargeError, match="larger block"):
        kept_dtype(1 << 30)


@pytest.mark.parametrize("pattern", [mc.window(100) | mc.stride(7), mc.sums(range(0, 80000, 5)) | mc.cols([3])])
@pytest.mark.parametrize("block", [1, (1, 2)])
def test_rows_wider_than_two_byte_bounds(pattern, block):
    q, k = 6, 40_000  # 40,000 (or 20,000) key blocks: four- (two-) byte bounds
    lay = mc.compile(pattern, q, k, block=block, cache=False)
    lay.validate()
    assert np.array_equal(lay.to_dense(), pattern.dense(q, k))
    assert lay.nnz_blocks > 5000


@pytest.mark.parametrize("pattern, n", [(mc.stride(3) | mc.window(2), 600),
                                        (mc.document_mask([500, 1001, 499]) & (mc.offsets([0, 5, 9]) | mc.sums([400])), 2000)])
def test_kept_runs_grow_when_the_estimate_is_short(monkeypatch, pattern, n):
    want = mc.compile(pattern, n, block=4, cache=False)
    estimates = build.leaf_estimates
    monkeypatch.setattr(build, "leaf_estimates", lambda lv, grid: [dataclasses.replace(e, runs=0.0)
                                                                    for e in estimates(lv, grid)])
    got = mc.compile(pattern, n, block=4, cache=False)  # first capacity 1,024 runs: both tables grow
    for f in ("row_ptr", "col_idx", "kind", "partial_id", "masks"):
        assert np.array_equal(getattr(got, f), getattr(want, f)), f
    assert np.array_equal(got.to_dense(), pattern.dense(n))
    assert got.nnz_blocks > 1024 and got.n_partial > 1024
