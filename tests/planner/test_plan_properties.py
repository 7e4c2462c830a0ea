"""Planner properties on random patterns: parts disjoint, union == the compiled pattern, run exact."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.planner import plan
from maskc.testing import patterns

from test_planner import check_lse, reference, rel

_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _check_parts(pl, N, M, block, p):
    want = mc.compile(p, N, M, block=block).to_dense()  # [H or 1, N, M]
    for h in range(len(pl.heads)):
        ms = pl.part_masks(h)
        assert len(ms) == len(pl.heads[h].parts)
        cnt = np.zeros((N, M), np.int32)
        for m, part in zip(ms, pl.heads[h].parts):
            assert m.shape == (N, M)
            assert int(m.sum()) == part.nnz, (p.text(), part.name, part.lowering)
            cnt += m
        assert cnt.max(initial=0) <= 1, f"parts overlap for {p.text()} at {N}x{M}"
        assert np.array_equal(cnt.astype(bool), want[h if want.shape[0] > 1 else 0]), \
            f"union of parts != pattern for {p.text()} at {N}x{M}"
    return want


@settings(max_examples=150, **_SETTINGS)
@given(p=patterns(max_depth=2), N=st.integers(1, 40), M=st.integers(1, 40), block=st.sampled_from([4, 8, 16]),
       whole=st.booleans())
def test_parts_disjoint_and_union_is_pattern(p, N, M, block, whole):
    _check_parts(plan(p, N, M, block=block, head_dim=16, allow_whole=whole), N, M, block, p)


@settings(max_examples=30, **_SETTINGS)
@given(p=st.one_of(patterns(max_depth=2, allow_predicates=True), patterns(max_depth=1, heads=2)),
       N=st.integers(1, 40), M=st.integers(1, 40), block=st.sampled_from([4, 8, 16]), whole=st.booleans(),
       seed=st.integers(0, 100))
def test_run_matches_dense_reference(p, N, M, block, whole, seed):
    pl = plan(p, N, M, block=block, head_dim=8, allow_whole=whole)
    want = _check_parts(pl, N, M, block, p)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 2, N, 8, generator=g)
    k, v = torch.randn(1, 1, M, 8, generator=g), torch.randn(1, 1, M, 8, generator=g)
    out, lse = pl.run(q, k, v, scale=0.5, return_lse=True)
    mask = np.ascontiguousarray(np.broadcast_to(want, (2, N, M)))
    rout, rlse = reference(q, k, v, mask, 0.5)
    assert rel(out, rout) < 1e-5, (p.text(), [x.lowering for x in pl.parts])
    check_lse(lse, rlse, 1e-5)


def test_empty_pattern_runs():
    """Regression: an empty pattern used to become a DIA part with no offsets, which raised at run."""
    pl = plan(~mc.full(), 5, 5, block=4)
    assert [p.lowering for p in pl.parts] == ["empty"]
    out, lse = pl.run(torch.ones(1, 1, 5, 4), torch.ones(1, 1, 5, 4), torch.ones(1, 1, 5, 4), return_lse=True)
    assert torch.equal(out, torch.zeros(1, 1, 5, 4)) and bool(torch.isneginf(lse).all())
    assert "empty" in pl.explain()


def test_generic_part_with_no_stored_block_runs():
    """Regression: a compiled layout with zero stored blocks made the CPU block path index an empty array."""
    p = mc.sums("primes")  # no pair at 1 x 1
    pl = plan(p, 1, 1, block=4, allow_whole=False)
    out, lse = pl.run(torch.ones(1, 1, 1, 4), torch.ones(1, 1, 1, 4), torch.ones(1, 1, 1, 4), return_lse=True)
    assert torch.equal(out, torch.zeros(1, 1, 1, 4)) and bool(torch.isneginf(lse).all())


@pytest.mark.parametrize("mod", ["maskc.planner.plan", "maskc.planner.decompose", "maskc.planner.merge",
                                 "maskc.planner.cost", "maskc.planner.decide", "maskc.planner.execute", "maskc.planner.explain", "maskc.planner.toeplitz",
                                 "maskc.planner.residue"])
def test_docstring_examples(mod):
    res = doctest.testmod(importlib.import_module(mod), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
