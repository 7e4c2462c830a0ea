"""Toeplitz parts become exact block layouts without the compiler (what the planner hands the registry)."""

from __future__ import annotations

import numpy as np
import pytest

import maskc as mc
from maskc.planner.toeplitz import toeplitz_block_any, toeplitz_layout


@pytest.mark.parametrize("seed", range(40))
def test_toeplitz_layout_equals_the_dense_construction(seed):
    rng = np.random.default_rng(seed)
    N, M = (int(x) for x in rng.integers(1, 70, 2))
    block = (int(rng.integers(1, 20)), int(rng.integers(1, 20))) if seed % 2 else int(rng.integers(1, 20))
    member = rng.random(N + M - 1) < [0.05, 0.5, 0.97][seed % 3]
    if seed % 5 == 0:
        member[:] = True  # every tile FULL except the ragged ones
    lay = toeplitz_layout(member, N, M, block).validate()
    want = member[np.arange(N)[:, None] - np.arange(M)[None, :] + M - 1]
    assert lay == mc.Layout.from_dense(want, block)  # same tiles, same FULL / PARTIAL kinds, same bits
    bq, bk = (block, block) if isinstance(block, int) else block
    assert (toeplitz_block_any(member, N, M, bq, bk).sum()) == lay.nnz_blocks


def test_toeplitz_layout_refuses_a_wrong_membership_length():
    with pytest.raises(ValueError, match="q_len \\+ kv_len - 1"):
        toeplitz_layout(np.ones(5, bool), 4, 4, 2)
