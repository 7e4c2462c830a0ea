"""The CPU block-sparse path: rows bucketed by key-block count, chunk boundaries, full / partial blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc
from maskc.planner import bsr
from maskc.planner.bsr import BlockSource, LayoutBlocks, ToeplitzBlocks, ell_attention

from test_planner import check_lse, reference, rel


def _toeplitz(pattern, N, M, block):
    dense = pattern.dense(N, M).reshape(N, M)
    member = np.zeros(N + M - 1, bool)
    i, j = np.nonzero(dense)
    member[i - j + M - 1] = True
    assert (dense == member[(np.arange(N)[:, None] - np.arange(M)[None, :]) + M - 1]).all()
    return ToeplitzBlocks(member, N, M, block), dense


CASES = {
    # block-level rule (every block FULL) mixed with a token-level band (PARTIAL blocks), ragged lengths
    "layout_mixed": lambda: (lambda p, N, M, B: (LayoutBlocks(mc.compile(p, N, M, block=B)), p.dense(N, M).reshape(N, M)))(
        mc.causal() & (mc.window(3) | mc.offsets("primes").at_block_level(8)), 45, 45, 8),
    # every block FULL: per-key bias only (ragged kv tail + padding slots), and no bias at all
    "layout_full_ragged": lambda: (lambda p, N, M, B: (LayoutBlocks(mc.compile(p, N, M, block=B)), p.dense(N, M).reshape(N, M)))(
        (mc.causal() & mc.offsets("primes")).at_block_level(8), 45, 45, 8),
    "layout_full_even": lambda: (lambda p, N, M, B: (LayoutBlocks(mc.compile(p, N, M, block=B)), p.dense(N, M).reshape(N, M)))(
        mc.causal().at_block_level(8), 48, 48, 8),
    "layout_noncausal_ragged": lambda: (lambda p, N, M, B: (LayoutBlocks(mc.compile(p, N, M, block=B)), p.dense(N, M).reshape(N, M)))(
        mc.window(5) | mc.global_tokens(3), 37, 29, 8),
    "toeplitz_band_ragged": lambda: _toeplitz(mc.causal() & mc.window(20), 50, 43, 8),
    "toeplitz_empty_rows": lambda: _toeplitz(mc.offsets([17, 30]), 40, 40, 8),
}


@pytest.mark.parametrize("chunk", [1, 2 * 4 * 8 * 8 * 4, 1 << 22], ids=["row_per_chunk", "small", "default"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_ell_attention_exact_across_chunk_boundaries(case, chunk, monkeypatch):
    monkeypatch.setattr(bsr, "CHUNK_ELEMENTS", chunk)
    src, mask = CASES[case]()
    torch.manual_seed(1)
    N, M = src.q_len, src.kv_len
    q = torch.randn(2, 4, N, 16, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 2, M, 16, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 2, M, 16, dtype=torch.float64, requires_grad=True)
    out, lse = ell_attention(q, k, v, src, scale=0.37)
    rout, rlse = reference(q, k, v, mask[None], 0.37)
    assert rel(out, rout) < 1e-12
    check_lse(lse, rlse, 1e-12)
    w, wl = torch.randn_like(rout), torch.randn_like(rlse)
    fin = torch.isfinite(rlse)
    g1 = torch.autograd.grad((out * w).sum() + (torch.where(fin, lse, 0) * wl).sum(), (q, k, v))
    g2 = torch.autograd.grad((rout * w).sum() + (torch.where(fin, rlse, 0) * wl).sum(), (q, k, v))
    for a, b in zip(g1, g2):
        assert torch.isfinite(a).all()
        assert rel(a, b) < 1e-10
    # float32 forward agrees too (float32 accumulation path)
    o32, l32 = ell_attention(q.float(), k.float(), v.float(), src, scale=0.37)
    assert o32.dtype == torch.float32 and rel(o32, rout) < 1e-5
    check_lse(l32, rlse, 1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunks_cover_nonempty_rows_once_and_full_blocks_match_masks(case, monkeypatch):
    monkeypatch.setattr(bsr, "CHUNK_ELEMENTS", 8 * 8 * 5)
    src, _ = CASES[case]()
    counts = np.count_nonzero(src.kb >= 0, axis=1)
    seen = []
    for qbs, K in bsr._chunks(src, 8):
        assert K == counts[qbs].max() and (counts[qbs] > 0).all()
        assert len(qbs) == 1 or len(qbs) * K * 8 * 8 <= bsr.CHUNK_ELEMENTS
        seen.extend(qbs.tolist())
    assert sorted(seen) == np.nonzero(counts)[0].tolist()
    qbs = np.arange(src.n_qb)
    generic = BlockSource.full_blocks(src, qbs)
    fast = src.full_blocks(qbs)
    assert not (fast & ~generic).any()  # never claims a partial block is full


def test_rows_with_no_key_give_zero_lse_minus_inf_and_zero_grads():
    member = np.zeros(2 * 32 - 1, bool)
    member[31 + 20] = True  # only d = 20: query blocks 0, 1 read nothing
    src = ToeplitzBlocks(member, 32, 32, 8)
    q = torch.randn(1, 1, 32, 8, requires_grad=True)
    out, lse = ell_attention(q, q, q, src)
    assert (out[0, 0, :20] == 0).all() and torch.isneginf(lse[0, 0, :20]).all()
    (g,) = torch.autograd.grad(out.sum() + torch.where(torch.isfinite(lse), lse, 0).sum(), q)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_slot_masks_match_masks(case):
    src, _ = CASES[case]()
    qbs = np.arange(src.n_qb)
    m = src.masks(qbs)
    r, sl = np.nonzero(np.ones(src.kb.shape, bool))
    assert (src.slot_masks(qbs[r], sl) == m[r, sl]).all()
    assert (BlockSource.slot_masks(src, qbs[r], sl) == m[r, sl]).all()
