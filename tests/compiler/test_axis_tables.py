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


@pytest.mark.parametrize("seed", range(20))
def test_runs_membership_by_running_sum_equals_its_definition(seed, monkeypatch):
    from maskc.patterns import indexset
    monkeypatch.setattr(indexset, "_SLICED_RUNS", 0)  # past the slice-per-run path
    rng = np.random.default_rng(seed)
    values = rng.integers(-80, 400, int(rng.integers(0, 120))).tolist()
    s = indexset.IndexSet(values, "values", allow_negative=True)
    n, shift = int(rng.integers(0, 600)), int(rng.integers(-100, 100))
    assert np.array_equal(s.membership(n, shift), s.contains(np.arange(n) + shift, limit=max(n - 1 + shift, 0)))


@pytest.mark.parametrize("name", ["primes", "squares", "mian_chowla", "twin_primes", "paley_residues"])
@pytest.mark.parametrize("n, shift", [(0, 0), (1, 0), (500, 0), (700, -300), (300, 250), (5, -10)])
def test_named_membership_equals_its_definition(name, n, shift):
    from maskc.patterns.indexset import IndexSet
    s = IndexSet(name)
    assert s.kind == "named"
    assert np.array_equal(s.membership(n, shift), s.contains(np.arange(n) + shift, limit=max(n - 1 + shift, 0)))


def test_named_membership_has_no_position_sized_int64_temporaries():
    import tracemalloc

    from maskc.patterns.indexset import IndexSet
    s = IndexSet("primes")
    s.membership(1 << 21, -(1 << 20))  # the sequence cached at this limit
    tracemalloc.start()
    m = s.membership(1 << 21, -(1 << 20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert m.sum() == np.count_nonzero(s.contains(np.arange(1 << 20), limit=1 << 20))
    assert peak < 4 * m.nbytes  # was an int64 per position (8x) and np.isin's sorts
