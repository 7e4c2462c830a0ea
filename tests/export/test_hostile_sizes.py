"""Importers refuse sizes and indices sized to exhaust memory or overflow, with a clear ValueError."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import maskc as mc
from maskc.errors import TooLargeError
from maskc.ir.layout import Layout


def test_flashinfer_bsr_wide_key_axis_is_not_a_dense_grid():
    """Regression: without mask= the importer built an n_qb x n_kb grid, sized by N / C alone."""
    lay = mc.export.from_flashinfer_bsr([0, 1], [5], M=4, N=2**31 - 1, R=4, C=1)
    assert lay.n_full == 1 and lay.col_idx.tolist() == [5] and lay.row_ptr.tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="twice"):
        mc.export.from_flashinfer_bsr([0, 2, 3], [1, 1, 1], M=8, N=8, R=4, C=4)


def test_flashinfer_variable_retile_refuses_huge_masks():
    # one 16384 x 16384 variable block re-tiled: interior blocks are FULL at no element cost
    lay, = [mc.export.from_flashinfer_variable(np.ones((1, 1, 1), bool), [[16384]], [[16384]], block=(128, 128))]
    assert lay.n_full == 128 * 128 and lay.n_partial == 0
    odd = mc.export.from_flashinfer_variable(np.ones((1, 1, 1), bool), [[16383]], [[16385]], block=128)
    assert odd.nnz == 16383 * 16385 and odd.n_partial == 0  # the ragged tails are FULL blocks too
    with pytest.raises(TooLargeError, match="blocks"):
        mc.export.from_flashinfer_variable(np.ones((1, 1, 1), bool), [[2**20]], [[2**20]], block=16)


def test_coo_lengths_bounded_and_keys_do_not_overflow():
    with pytest.raises(ValueError, match="kv_len.*must be at most"):
        mc.export.from_scipy(sp.csr_matrix((1, 2**40)), block=16)
    # (h * q_len + i) * kv_len + j would overflow int64 here; the triples must stay distinct
    q = kv = 2**31 - 1
    h, i, j = [1, 1, 0, 1, 1], [q - 1, q - 1, 0, 0, q - 1], [kv - 1, 0, 0, kv - 1, kv - 1]
    lay = Layout.from_pairs(q, kv, 4096, h, i, j, n_slices=2)
    assert lay.nnz == 4 and lay.heads == 2 and lay.n_partial == 4  # 5 triples, one repeated
    assert lay.row_ptr[0, -1] == 1 and lay.row_ptr[1, -1] - lay.row_ptr[1, 0] == 3


def test_coo_duplicates_counted_once_and_full_blocks_detected():
    i, j = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    h = np.zeros(i.size, np.int64)
    lay = Layout.from_pairs(6, 5, 4, np.r_[h, h], np.r_[i.ravel(), i.ravel()], np.r_[j.ravel(), j.ravel()])
    assert lay.n_full == 4 and lay.n_partial == 0 and lay.nnz == 30
