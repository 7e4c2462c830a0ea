"""The torch backend: exact against float64 on every layout shape (batch and head slices, GQA, ragged
tails, empty rows), across chunk boundaries, in every dtype, with dropout and through lse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import maskc as mc
import maskc.backends as mb
from maskc.backends import torch_backend, torch_blocks
from maskc.backends.torch_backend import attention_torch
from maskc.backends.torch_blocks import chunk_plan

SCALE = 0.37


def _inputs(B, Hq, Hkv, N, M, D=16, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, N, D, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
    k = torch.randn(B, Hkv, M, D, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
    v = torch.randn(B, Hkv, M, D, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True)
    return q, k, v


def _check(lay, B, Hq, Hkv, bk, dtype=torch.float64, tol=1e-12, grads=True, seed=0):
    q, k, v = _inputs(B, Hq, Hkv, lay.q_len, lay.kv_len, dtype=dtype, seed=seed)
    out, lse = mc.attention(q, k, v, lay, backend="torch", scale=SCALE, return_lse=True)
    assert out.dtype == dtype and lse.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    rout, rlse = bk.ref(q, k, v, lay, SCALE)
    assert bk.rel_err(out, rout) <= tol
    assert bk.rel_err(lse, rlse) <= tol
    if not grads:
        return
    w, wl = torch.randn_like(rout), torch.randn_like(rlse)
    fin = torch.isfinite(rlse)
    g1 = torch.autograd.grad((out.double() * w).sum() + (torch.where(fin, lse.double(), 0) * wl).sum(), (q, k, v))
    g2 = torch.autograd.grad((rout * w).sum() + (torch.where(fin, rlse, 0) * wl).sum(), (q, k, v))
    floor = float(g2[2].norm())
    for a, b in zip(g1, g2):
        assert torch.isfinite(a).all()
        assert bk.rel_err(a, b, floor=floor) <= (tol if dtype == torch.float64 else 10 * tol)


# every way a layout's slices map onto (batch, head): broadcast, per head, per batch, both; GQA 1, 2, 4
SHAPES = {
    "broadcast_gqa2": ((37, 29), 2, 4, 2),
    "per_head_gqa2": ((4, 37, 29), 2, 4, 2),
    "per_batch": ((2, 1, 37, 29), 2, 4, 2),
    "per_batch_head_mqa": ((2, 4, 37, 29), 2, 4, 1),
    "per_batch_head": ((3, 2, 40, 40), 3, 2, 2),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("block", [8, (16, 8)], ids=["b8", "b16x8"])
def test_exact_on_every_slice_mapping(name, block, bk):
    shape, B, Hq, Hkv = SHAPES[name]
    rng = np.random.default_rng(len(name))
    m = rng.random(shape) < 0.3
    m[..., 3, :] = False  # an empty row
    if len(shape) >= 3:
        m[..., : shape[-2] // 2, : shape[-1] // 3] = True  # FULL tiles
    _check(mc.Layout.from_dense(m, block), B, Hq, Hkv, bk)


@pytest.mark.parametrize("paths", ["dense_masks+saved_probs", "gathered_masks+recompute"])
@pytest.mark.parametrize("chunk", [1, 2 * 4 * 8 * 8 * 4, 1 << 22], ids=["row_per_chunk", "small", "default"])
@pytest.mark.parametrize("pattern,N,M,B", [
    (mc.causal() & (mc.window(3) | mc.offsets("primes").at_block_level(8)), 45, 45, 8),  # FULL + PARTIAL
    ((mc.causal() & mc.offsets("primes")).at_block_level(8), 45, 45, 8),  # every tile FULL, ragged tail
    (mc.window(5) | mc.global_tokens(3), 37, 29, 8),  # non-causal, ragged q and kv
    (mc.offsets([17, 30]), 40, 40, 8),  # rows with no key
], ids=["mixed", "full_ragged", "noncausal", "empty_rows"])
def test_exact_across_chunk_boundaries(pattern, N, M, B, chunk, paths, monkeypatch, bk):
    monkeypatch.setattr(torch_blocks, "CHUNK_ELEMENTS", chunk)
    if paths.startswith("gathered"):  # the paths large layouts take: slot-wise masks, backward from the lse
        monkeypatch.setattr(torch_backend, "DENSE_MASK_BYTES", 0)
        monkeypatch.setattr(torch_backend, "SAVED_PROBS_BYTES", 0)
    _check(mc.compile(pattern, N, M, block=B), 2, 4, 2, bk)


def test_chunks_cover_every_nonempty_row_once_and_mask_only_what_needs_it(monkeypatch):
    monkeypatch.setattr(torch_blocks, "CHUNK_ELEMENTS", 8 * 8 * 5)
    m = np.random.default_rng(0).random((2, 45, 37)) < 0.2
    m[:, :16, :16] = True
    lay = mc.Layout.from_dense(m, 8)
    counts = np.diff(lay.row_ptr, axis=1).reshape(-1)
    seen = []
    for c in chunk_plan(lay, unit=8):
        assert c.K == counts[c.rows].max() and (counts[c.rows] > 0).all()
        assert len(c.rows) == 1 or len(c.rows) * c.K * 8 <= torch_blocks.CHUNK_ELEMENTS
        seen.extend(c.rows.tolist())
        masked = np.zeros(c.kb.shape, bool)
        masked[c.mask_rows, c.mask_slots] = True
        assert masked[c.kb < 0].all()  # padding slots are always masked
        full_inside = (c.kb >= 0) & (c.kb < lay.n_kb - 1)
        pos = lay.row_ptr[:, :-1].reshape(-1)[c.rows][:, None] + np.arange(c.K)
        kind = np.where(c.kb >= 0, lay.kind[np.minimum(pos, lay.nnz_blocks - 1)], 0)
        assert not masked[full_inside & (kind == mc.FULL)].any()  # FULL tiles inside kv_len are never masked
    assert sorted(seen) == np.nonzero(counts)[0].tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtypes_within_tolerance(dtype, bk):
    lay = mc.compile(mc.causal() & (mc.window(9) | mc.global_tokens(2)), 70, block=16)
    _check(lay, 2, 4, 2, bk, dtype=dtype, tol=bk.tol(dtype, "torch"), seed=3)


def test_rows_with_no_key_are_exact_zero_with_zero_gradients():
    lay = mc.compile(mc.offsets([20]), 32, block=8)  # rows 0..19 read nothing
    q, k, v = _inputs(1, 2, 1, 32, 32, dtype=torch.float32)
    out, lse = attention_torch(q, k, v, lay, scale=SCALE)
    assert (out[:, :, :20] == 0).all() and torch.isneginf(lse[:, :, :20]).all()
    g = torch.autograd.grad(out.sum() + torch.where(torch.isfinite(lse), lse, 0).sum(), (q, k, v))
    assert all(torch.isfinite(x).all() for x in g) and (g[0][:, :, :20] == 0).all()


def test_gqa_does_not_repeat_kv_and_grads_sum_over_the_group(bk):
    lay = mc.compile(mc.causal() & mc.window(6), 40, block=8)
    _check(lay, 2, 8, 2, bk)  # one-head layout: the group of 4 query heads folds into the tile rows
    _check(mc.Layout.from_dense(np.repeat(lay.to_dense(), 8, 0), 8), 2, 8, 2, bk)  # per-head: gather index


def _probabilities_seen(lay, p, seed):
    """With v = identity, out[i, j] = (dropped) probability of key j for row i."""
    N = lay.q_len
    q = torch.randn(1, 1, N, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = torch.randn(1, 1, N, N, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    v = torch.eye(N, dtype=torch.float64)[None, None]
    return attention_torch(q, k, v, lay, scale=0.1, dropout_p=p, dropout_seed=seed)[0][0, 0], (q, k, v)


def test_dropout_drops_probabilities_like_multihead_attention():
    lay = mc.compile(mc.causal(), 64, block=16)
    full, (q, k, v) = _probabilities_seen(lay, 0.0, 0)
    dropped, _ = _probabilities_seen(lay, 0.25, 123)
    allowed = full > 0
    kept = dropped > 0
    assert torch.allclose(dropped[kept], full[kept] / 0.75)  # survivors scaled by 1 / (1 - p)
    assert not (kept & ~allowed).any()
    rate = 1 - kept.sum().item() / allowed.sum().item()
    assert 0.18 < rate < 0.32, rate
    again, _ = _probabilities_seen(lay, 0.25, 123)
    other, _ = _probabilities_seen(lay, 0.25, 124)
    assert torch.equal(again, dropped) and not torch.equal(other, dropped)


def test_dropout_backward_regenerates_the_forward_mask():
    """The backward's gradient matches a central difference of the (seeded) forward along a random
    direction: a backward that drew another mask would be off by O(1)."""
    lay = mc.compile(mc.causal() & mc.window(5), 24, block=8)
    q, k, v = _inputs(1, 2, 1, 24, 24, D=4)
    w = torch.randn(1, 2, 24, 4, dtype=torch.float64)

    def f(q, k, v):
        out, lse = attention_torch(q, k, v, lay, scale=SCALE, dropout_p=0.3, dropout_seed=7)
        return (out * w).sum() + torch.where(torch.isfinite(lse), lse, 0).sum()

    grads = torch.autograd.grad(f(q, k, v), (q, k, v))
    dirs = [torch.randn_like(x) for x in (q, k, v)]
    eps = 1e-6
    with torch.no_grad():
        plus = f(*(x + eps * d for x, d in zip((q, k, v), dirs)))
        minus = f(*(x - eps * d for x, d in zip((q, k, v), dirs)))
    numeric = float((plus - minus) / (2 * eps))
    analytic = float(sum((g * d).sum() for g, d in zip(grads, dirs)))
    assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(analytic))


def test_only_the_torch_backend_takes_dropout():
    lay = mc.compile(mc.causal(), 16, block=8)
    q = torch.randn(1, 2, 16, 8)
    out = mc.attention(q, q, q, lay, dropout_p=0.5, dropout_seed=0)
    assert mb.last_choice().name == "torch" and out.shape == q.shape
    for name in ("reference", "flex"):
        with pytest.raises(ValueError, match="does not implement dropout"):
            mc.attention(q, q, q, lay, backend=name, dropout_p=0.1)
    with pytest.raises(ValueError, match="dropout_p must be in"):
        mc.attention(q, q, q, lay, dropout_p=1.0)
    with pytest.raises(ValueError, match="needs torch tensors"):
        mc.attention(q.numpy(), q.numpy(), q.numpy(), lay, dropout_p=0.1)
