"""The axis leaves' window tables: shortcuts give the same values as the general kernels."""

import numpy as np
import pytest

import maskc as mc
from maskc.compiler import axis, interp


@pytest.mark.parametrize("seed", range(12))
def test_direct_hashes_equal_rolling_hashes(seed):
    rng = np.random.default_rng(seed)
    memb = (rng.random(int(rng.integers(1, 400))) < 0.3).astype(np.uint8)
    step, width = int(rng.integers(1, 9)), int(rng.integers(1, 40))
    lo0 = int(rng.integers(-50, 20))
    n = int(rng.integers(1, 60))
    which = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)).astype(np.int64)
    rolling = axis.window_hashes(memb, lo0, step, width, n)[which]
    assert np.array_equal(axis.hashes_of(memb, lo0, step, width, which), rolling)


@pytest.mark.parametrize("q", [1024, 1000])  # without and with a ragged last block row
@pytest.mark.parametrize("leaf", [mc.window(100), mc.sums(range(0, 4096, 96)), mc.offsets("primes") | mc.rows([3])])
@pytest.mark.parametrize("jit", [True, False])
def test_axis_leaves_compile_to_their_definition(q, leaf, jit, monkeypatch):
    monkeypatch.setattr(interp, "_state", {"jit": jit, "spent": 0.0})  # the jitted or the interpreted kernels
    p = mc.causal() & leaf
    lay = mc.compile(p, q, block=64, cache=False)
    assert lay == mc.Layout.from_dense(p.dense(q)[0], block=64)


@pytest.mark.parametrize("seed", range(30))
def test_step_membership_equals_its_definition(seed):
    from maskc.patterns.indexset import IndexSet
    rng = np.random.default_rng(seed)
    first, step = int(rng.integers(-40, 40)), int(rng.integers(2, 12))
    last = first + step * int(rng.integers(16, 40)) if seed % 2 else 1 << 40
    s = IndexSet(range(first, last, step), "values", allow_negative=True)
    assert s.kind == "step"
    n, shift = int(rng.integers(0, 300)), int(rng.integers(-60, 60))
    assert np.array_equal(s.membership(n, shift), s.contains(np.arange(n) + shift, limit=max(n - 1 + shift, 0)))


@pytest.mark.parametrize("seed", range(30))
def test_runs_membership_equals_its_definition(seed):
    from maskc.patterns.indexset import IndexSet
    rng = np.random.default_rng(seed)
    values = rng.integers(-80, 400, int(rng.integers(0, 60))).tolist() + ([range(500, 1 << 40)] if seed % 3 else [])
    s = IndexSet(values, "values", allow_negative=True)
    n, shift = int(rng.integers(0, 600)), int(rng.integers(-100, 100))
    assert np.array_equal(s.membership(n, shift), s.contains(np.arange(n) + shift, limit=max(n - 1 + shift, 0)))
