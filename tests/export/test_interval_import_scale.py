"""Interval importers (from_magi, from_flashmask) and Layout.from_runs build blocks from runs,
never a dense mask: exact on random runs, and usable at lengths whose dense mask is terabytes."""

from __future__ import annotations

import numpy as np
import pytest

import maskc as mc
import maskc.export as ex
from maskc.ir.runs import RunOverlapError


def _random_runs(rng, n_lines, n_other, max_runs=3):
    lines, starts, ends = [], [], []
    for ln in range(n_lines):
        cuts = np.sort(rng.choice(n_other + 1, size=2 * int(rng.integers(0, min(max_runs, (n_other + 1) // 2) + 1)), replace=False))
        for a, b in cuts.reshape(-1, 2):
            lines.append(ln), starts.append(a), ends.append(b)
    return np.array(lines, np.int64), np.array(starts, np.int64), np.array(ends, np.int64)


@pytest.mark.parametrize("by", ["rows", "cols"])
@pytest.mark.parametrize("seed", range(4))
def test_from_runs_equals_from_dense(by, seed):
    rng = np.random.default_rng(seed)
    q_len, kv_len = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    n_lines, n_other = (q_len, kv_len) if by == "rows" else (kv_len, q_len)
    lines, starts, ends = _random_runs(rng, n_lines, n_other)
    dense = np.zeros((n_lines, n_other), bool)
    for ln, a, b in zip(lines, starts, ends):
        dense[ln, a:b] = True
    if by == "cols":
        dense = dense.T
    block = (int(rng.integers(1, 9)), int(rng.integers(1, 9)))
    got = mc.Layout.from_runs(q_len, kv_len, block, lines, starts, ends, by=by)
    assert got == mc.Layout.from_dense(dense, block)


def test_from_runs_refuses_overlaps_and_bad_runs():
    with pytest.raises(RunOverlapError, match="line 1 overlap at position 2"):
        mc.Layout.from_runs(4, 4, 2, lines=[1, 1], starts=[0, 2], ends=[3, 4])
    with pytest.raises(ValueError, match="0 <= start <= end <= 4"):
        mc.Layout.from_runs(4, 4, 2, lines=[0], starts=[1], ends=[5])
    with pytest.raises(ValueError, match="by must be"):
        mc.Layout.from_runs(4, 4, 2, lines=[0], starts=[0], ends=[1], by="diagonals")


def test_interval_imports_at_half_a_million_tokens():
    """32 causal documents over 2^19 tokens: the dense mask would be 256 GiB; the old importers
    refused it (max_elements). Both importers now rebuild exactly the compiled layout."""
    n = 1 << 19
    lengths = [n // 32] * 32
    lay = mc.compile(mc.document_mask(lengths), q_len=n, block=128)
    magi = ex.to_magi(lay)
    assert len(magi["attn_type_map"]) == 32
    assert ex.from_magi(**magi, block=128) == lay
    fm = ex.to_flashmask(lay)
    assert ex.from_flashmask(fm["startend_row_indices"], fm["causal"], block=128) == lay
