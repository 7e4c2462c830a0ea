"""k-hop reachability: hand-known answers, counterexamples, brute force agreement."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.errors import TooLargeError
from maskc.guarantees import (
    GuaranteeError, check_reachable, hop_diameter, layout_offsets, min_hops, offset_hops, reachability,
    reachable_within, unreachable_pairs,
)
from maskc.testing import patterns


def brute_hops(mask: np.ndarray) -> np.ndarray:
    """All-pairs minimal hop counts by dense boolean matrix powers (-1 = never)."""
    n = mask.shape[0]
    A = mask.astype(np.int64)
    R = np.eye(n, dtype=bool)
    hops = np.where(R, 0, -1)
    for k in range(1, n + 1):
        Rn = R | ((R.astype(np.int64) @ A) > 0)
        hops[(Rn & ~R)] = k
        if np.array_equal(Rn, R):
            break
        R = Rn
    return hops


def brute_diameter(mask: np.ndarray, causal: bool):
    h = brute_hops(mask)
    tgt = np.tril(np.ones_like(mask, dtype=bool)) if causal else np.ones_like(mask, dtype=bool)
    if np.any(h[tgt] < 0):
        return None, h
    return int(h[tgt].max()), h


@pytest.mark.parametrize("w", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("n", [1, 2, 50, 129, 1000])
def test_causal_window_diameter(n, w):
    assert hop_diameter(mc.causal() & mc.window(w), q_len=n) == math.ceil((n - 1) / w)


def test_causal_window_64k_fast():
    import time

    t = time.perf_counter()
    assert hop_diameter(mc.causal() & mc.window(3), q_len=65536) == math.ceil(65535 / 3)
    assert hop_diameter(mc.causal() & (mc.window(1) | mc.offsets("primes")), q_len=65536) == 3
    assert time.perf_counter() - t < 20


@pytest.mark.parametrize("n,s", [(64, 4), (100, 7), (1000, 16), (65536, 16)])
def test_stride_never_crosses_residue_classes(n, s):
    rep = reachability(mc.stride(s), q_len=n)
    assert rep.diameter is None
    prof = rep.heads[0].profile
    d = np.arange(-(n - 1), n)
    reach = prof.at(d) >= 0
    assert np.array_equal(reach, d % s == 0)
    assert rep.first_unreachable(10**6) == (0, 0, 1)


def test_check_reachable_counterexample():
    with pytest.raises(GuaranteeError) as e:
        check_reachable(mc.causal() & mc.window(2), 1, q_len=5)
    assert e.value.counterexample == (0, 3, 0)
    assert e.value.details["needs"] == 2
    assert e.value.details["count"] == 3
    check_reachable(mc.causal() & mc.window(2), 2, q_len=5)
    with pytest.raises(GuaranteeError) as e:
        check_reachable(mc.stride(3), 5, q_len=10)
    assert e.value.counterexample == (0, 0, 1) and e.value.details["needs"] is None


def test_unreachable_pairs_and_counts():
    p = mc.causal() & mc.window(2)
    assert unreachable_pairs(p, 1, q_len=5).tolist() == [[0, 3, 0], [0, 4, 0], [0, 4, 1]]
    rep = reachability(p, q_len=5)
    assert [rep.unreachable_count(k) for k in range(4)] == [10, 3, 0, 0]
    assert reachable_within(p, 2, q_len=5) and not reachable_within(p, 1, q_len=5)
    with pytest.raises(ValueError):
        reachable_within(p, -1, q_len=5)


def test_graph_engine_on_global_tokens():
    # a non-causal global token routes everything in 2 hops; not Toeplitz -> graph engine
    p = mc.window(1, 1) | mc.global_tokens(1)
    rep = reachability(p, q_len=200, block=32)
    assert rep.methods == ["graph"] and not rep.causal
    assert rep.diameter == 2
    assert min_hops(p, 150, 3, q_len=200, block=32) == 2
    assert min_hops(p, 150, 149, q_len=200, block=32) == 1
    assert brute_diameter(mc.compile(p, q_len=200, block=32).to_dense()[0], False)[0] == 2
    # causally, key 0 is a sink: only the window routes upwards, diameter N - 2
    c = mc.causal() & (mc.window(1) | mc.global_tokens(1))
    assert hop_diameter(c, q_len=200, block=32) == 198


def test_graph_engine_refuses_large():
    p = mc.causal() & (mc.window(1) | mc.global_tokens(1))
    lay = mc.compile(p, q_len=300, block=64)
    with pytest.raises(TooLargeError, match="limited to 100 tokens"):
        reachability(lay, max_graph_tokens=100)


def test_layout_toeplitz_detection():
    p = mc.causal() & (mc.window(2) | mc.offsets("squares"))
    lay = mc.compile(p, q_len=300, block=32)
    m = layout_offsets(lay)
    assert m is not None and np.array_equal(m, p.membership(300, 300))
    assert reachability(lay).methods == ["offsets/one-sided"]
    assert reachability(lay).diameter == reachability(p, q_len=300).diameter
    g = mc.compile(p | mc.global_tokens(1), q_len=300, block=32)
    assert layout_offsets(g) is None


def test_two_sided_and_circulant():
    # symmetric window: exact two-sided answer
    assert hop_diameter(mc.window(3, 3), q_len=100) == 33
    # ring + stride with s | N is circulant
    rep = reachability(mc.ring_local(2) | mc.stride(8), q_len=64)
    assert rep.methods == ["offsets/circulant"]
    lay = mc.compile(mc.ring_local(2) | mc.stride(8), q_len=64, block=16)
    assert rep.diameter == brute_diameter(lay.to_dense()[0], False)[0]


def test_offset_hops_examples():
    prof = offset_hops([0, 1, 2, 3], 20)
    assert prof.at([3, 4, 19]).tolist() == [1, 2, 7]
    assert prof.at([-1]).tolist() == [-1]
    with pytest.raises(ValueError):
        prof.at([20])


@settings(max_examples=60, deadline=None)
@given(patterns(max_depth=2, leaves=["causal", "window", "ring_local", "stride", "offsets", "full"]),
       st.integers(1, 48), st.sampled_from([8, 16]))
def test_offset_engine_matches_brute_force(p, n, block):
    mask = p.dense(n)[0]
    rep = reachability(p, q_len=n, block=block)
    causal = not np.triu(mask, 1).any()
    assert rep.causal == causal
    d, h = brute_diameter(mask, causal)
    assert rep.diameter == d
    # per-pair hops (offset profile or graph) agree with brute force
    i, j = np.nonzero(np.ones_like(mask))
    hr = rep.heads[0]
    if hr.profile is not None:
        got = hr.profile.at(i - j)
        assert np.array_equal(got.reshape(n, n), h)
    for k in (0, 1, 2, 5):
        tgt = np.tril(np.ones_like(mask)) if causal else np.ones_like(mask)
        bad = tgt & ((h < 0) | (h > k))
        assert rep.unreachable_count(k) == int(bad.sum())
        f = rep.first_unreachable(k)
        if bad.any():
            bi, bj = np.argwhere(bad)[0]
            assert f == (0, int(bi), int(bj))
        else:
            assert f is None


@settings(max_examples=40, deadline=None)
@given(patterns(max_depth=2), st.integers(1, 40), st.sampled_from([16, 32]))
def test_any_pattern_matches_brute_force(p, n, block):
    mask = p.dense(n)[0]
    rep = reachability(p, q_len=n, block=block)
    d, h = brute_diameter(mask, rep.causal)
    assert rep.diameter == d
    pairs = unreachable_pairs(p, 1, q_len=n, block=block, limit=5)
    tgt = np.tril(np.ones_like(mask)) if rep.causal else np.ones_like(mask)
    bad = np.argwhere(tgt & ((h < 0) | (h > 1)))[:5]
    assert pairs[:, 1:].tolist() == bad.tolist()


def test_multihead_pattern():
    p = mc.heads([mc.causal() & mc.window(4), mc.causal() & mc.window(2)])
    rep = reachability(p, q_len=21)
    assert rep.head_diameters == [5, 10] and rep.diameter == 10
    with pytest.raises(GuaranteeError) as e:
        check_reachable(p, 5, q_len=21)
    assert e.value.head == 1


def test_requires_square():
    with pytest.raises(ValueError, match="q_len == kv_len"):
        reachability(mc.causal(), q_len=8, kv_len=9)
    with pytest.raises(ValueError, match="q_len"):
        reachability(mc.causal())


@settings(max_examples=30, deadline=None)
@given(patterns(max_depth=3), st.integers(1, 48), st.sampled_from([8, 16]), st.booleans(), st.integers(0, 2**16))
def test_compiled_layouts_match_brute_force(p, n, block, via_layout, seed):
    """Against dense boolean matrix powers of mc.compile(p).to_dense(): diameter, unreachable counts at
    several k, and min_hops of random pairs, for a pattern or its compiled layout as input."""
    lay = mc.compile(p, n, block=block)
    mask = lay.to_dense()[0]
    x, kw = (lay, {}) if via_layout else (p, dict(q_len=n, block=block))
    rep = reachability(x, **kw)
    d, h = brute_diameter(mask, rep.causal)
    assert rep.diameter == d
    tgt = np.tril(np.ones_like(mask)) if rep.causal else np.ones_like(mask)
    for k in (0, 1, 2, 3, 7):
        assert rep.unreachable_count(k) == int((tgt & ((h < 0) | (h > k))).sum())
    rng = np.random.default_rng(seed)
    for i, j in rng.integers(0, n, (3, 2)):
        assert min_hops(x, int(i), int(j), **kw) == (None if h[i, j] < 0 else int(h[i, j]))
