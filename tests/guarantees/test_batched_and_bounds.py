"""Guarantees and pictures on batched / offset layouts, and their refusals of huge inputs."""

from __future__ import annotations

import time

import numpy as np
import pytest

import maskc as mc
from maskc.errors import TooLargeError
from maskc.guarantees import (
    GuaranteeError, causal_violations, check_causal, check_no_empty_rows, empty_rows, is_causal, offset_hops,
    pi_coverage, reachability, row_degree, verify_pi_claims,
)
from maskc.guarantees import reach_offsets
from maskc.viz import block_grid, terminal_picture, token_window


def batched_layout():
    i, j = np.arange(30)[:, None], np.arange(30)[None, :]
    causal = j <= i
    acausal = causal.copy()
    acausal[7, 20] = True  # one pair past the diagonal in batch element 1, head 0
    empty = causal.copy()
    empty[3] = False  # an empty row in batch element 1, head 1
    return mc.Layout.from_dense(np.stack([np.stack([causal, causal]), np.stack([acausal, empty])]), 8)


def test_batched_layouts_report_slice_batch_and_head():
    lay = batched_layout()
    v = causal_violations(lay)
    assert v.count == 1 and v.examples.tolist() == [[2, 7, 20]]  # slice 2 = batch 1, head 0
    with pytest.raises(GuaranteeError, match=r"slice 2 \(batch 1, head 0\), query 7 attends key 20") as e:
        check_causal(lay)
    assert e.value.counterexample == (2, 7, 20)
    assert empty_rows(lay).tolist() == [[3, 3]]
    with pytest.raises(GuaranteeError, match=r"batch 1, head 1"):
        check_no_empty_rows(lay)
    d = row_degree(lay)
    assert d.min == 0 and d.argmin == (3, 3) and d.per_head_mean.shape == (4,)
    rep = reachability(lay.for_batch(0))
    assert rep.diameter == 1 and len(rep.heads) == 2
    assert len(reachability(lay, causal=True).heads) == 4


def test_causality_uses_absolute_positions():
    full = mc.compile(mc.causal(), q_len=64, block=16)
    tail = full.rows(40, 64)  # q_offset 40: row r is position 40 + r
    assert tail.q_offset == 40 and is_causal(tail)
    shifted = mc.Layout.from_dense(full.to_dense()[:, 40:64], 16)  # the same rows taken as positions 0..23
    assert not is_causal(shifted)


def test_offset_engine_refuses_huge_lengths_up_front():
    t = time.perf_counter()
    with pytest.raises(TooLargeError, match="tokens"):
        offset_hops([0, 1], reach_offsets.MAX_OFFSET_TOKENS + 1)
    with pytest.raises(TooLargeError, match="tokens"):
        reachability(mc.causal() & mc.window(1), q_len=10**9)
    with pytest.raises(TooLargeError, match="tokens"):
        verify_pi_claims(10**9, 16, 4)
    with pytest.raises(TooLargeError, match="tokens"):
        pi_coverage(10**9, 16, 4)
    with pytest.raises((TypeError, ValueError)):
        offset_hops([0, 1], 2**70)
    assert time.perf_counter() - t < 2


def test_offset_engine_work_is_bounded(monkeypatch):
    monkeypatch.setattr(reach_offsets, "MAX_OFFSET_WORK", 10_000)
    with pytest.raises(TooLargeError, match="word operations"):
        reachability(mc.causal() & mc.window(1), q_len=4096)


def test_pictures_of_batched_layouts_and_bounded_windows():
    lay = batched_layout()
    pic = terminal_picture(lay, head=3, legend=False)
    assert "batch 1/2 head 1/2" in pic.splitlines()[0]
    g, f = block_grid(lay, 2)
    assert f == 1 and g.shape == (4, 4)
    assert np.array_equal(token_window(lay, 2, 0, 30, 0, 30), lay.to_dense()[1, 0])
    with pytest.raises(ValueError, match="stored slice"):
        terminal_picture(lay, head=4)
    big = mc.compile(mc.window(1), q_len=1 << 20, block=4096)
    with pytest.raises(TooLargeError, match="zoom window"):
        token_window(big, 0, 0, 1 << 13, 0, 1 << 13)


def test_sidon_test_is_bounded():
    from maskc.guarantees import is_sidon, sidon_violation

    t = time.perf_counter()
    with pytest.raises(TooLargeError, match="span"):
        is_sidon([0, 1, 2**40])
    with pytest.raises(TooLargeError, match="offsets"):
        is_sidon(range(10**12))  # never materialised
    with pytest.raises(TooLargeError, match="limit"):
        is_sidon("primes", limit=2**40)
    assert time.perf_counter() - t < 5
    assert sidon_violation([1, 2, 4, 8, 13]) is None and not is_sidon(range(10))
