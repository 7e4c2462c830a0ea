"""FlexAttention backend and the Layout <-> BlockMask export, against a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.errors import MaskcError

fa = pytest.importorskip("torch.nn.attention.flex_attention", reason="torch FlexAttention not available")

from maskc.backends import flex as fb  # noqa: E402
from maskc.export.flex import from_flex_block_mask, to_flex_block_mask  # noqa: E402

CUDA = torch.cuda.is_available()
NO_CUDA = "FlexAttention has no backward on CPU; gradients are tested on CUDA only"


def _window(L: int, w: int) -> np.ndarray:
    i = np.arange(L)[:, None]
    j = np.arange(L)[None, :]
    return (i >= j) & (i - j < w)


def _inputs(B, Hq, Hkv, Lq, Lk, D, dtype, device="cpu", seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(B, h, n, D, generator=g).to(dtype).to(device) for h, n in ((Hq, Lq), (Hkv, Lk), (Hkv, Lk))]
    if grad:
        xs = [x.requires_grad_() for x in xs]
    return xs


def _valid_lists(num: torch.Tensor, idx: torch.Tensor) -> list:
    """Per-row block lists (valid prefix only), as sets, over every leading index."""
    num = num.cpu().reshape(-1, num.shape[-1])
    idx = idx.cpu().reshape(-1, idx.shape[-2], idx.shape[-1])
    return [[set(idx[b, r, : int(num[b, r])].tolist()) for r in range(num.shape[1])] for b in range(num.shape[0])]


# ---------------------------------------------------------------- forward vs reference
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_forward_eager_multihead_gqa_ragged(bk, dtype):
    rng = np.random.default_rng(11)
    lay = bk.random_layout(rng, heads=4, q_len=45, kv_len=70, block=(16, 32))
    assert (lay.row_counts() == 0).any() and lay.n_full > 0
    q, k, v = _inputs(2, 4, 2, 45, 70, 32, dtype, seed=1)
    out, lse = fb.attention_flex(q, k, v, lay, scale=32 ** -0.5)
    rout, rlse = bk.ref(q, k, v, lay, 32 ** -0.5)
    assert out.dtype == dtype and out.shape == q.shape
    assert lse.dtype == torch.float32 and lse.shape == (2, 4, 45)
    assert bk.rel_err(out, rout) <= bk.tol(dtype, "flex")
    assert bk.rel_err(lse, rlse) <= (1e-4 if dtype != torch.float32 else bk.tol(dtype, "flex"))
    empty = torch.isinf(rlse)
    assert empty.any() and torch.all(out[empty] == 0) and torch.all(lse[empty] == float("-inf"))


def test_forward_broadcast_layout(bk):
    rng = np.random.default_rng(12)
    lay = bk.random_layout(rng, heads=1, q_len=33, kv_len=50, block=16)
    q, k, v = _inputs(1, 2, 2, 33, 50, 16, torch.float32, seed=2)
    out, lse = fb.attention_flex(q, k, v, lay, scale=0.3)
    rout, rlse = bk.ref(q, k, v, lay, 0.3)
    tol = bk.tol(torch.float32, "flex")
    assert bk.rel_err(out, rout) <= tol and bk.rel_err(lse, rlse) <= tol


def test_forward_compiled_cpu(bk, compiled_flex):
    """One compiled check (the session fixture compiles flex_attention once for this shape)."""
    rng = np.random.default_rng(13)
    lay = bk.random_layout(rng, heads=2, q_len=40, kv_len=64, block=16)
    q, k, v = _inputs(1, 2, 1, 40, 64, 16, torch.float32, seed=3)
    out, lse = fb.attention_flex(q, k, v, lay, scale=0.25, compiled=True)
    assert fb.compiled_flex_attention() is compiled_flex
    rout, rlse = bk.ref(q, k, v, lay, 0.25)
    tol = bk.tol(torch.float32, "flex")
    assert bk.rel_err(out, rout) <= tol and bk.rel_err(lse, rlse) <= tol


def test_float64_keeps_float64_lse_and_precision(bk):
    rng = np.random.default_rng(16)
    lay = bk.random_layout(rng, heads=2, q_len=33, kv_len=40, block=16)
    q, k, v = _inputs(1, 2, 1, 33, 40, 16, torch.float64, seed=6)
    out, lse = fb.attention_flex(q, k, v, lay, scale=0.3)
    assert out.dtype == torch.float64 and lse.dtype == torch.float64
    rout, rlse = bk.ref(q, k, v, lay, 0.3)
    assert bk.rel_err(out, rout) <= bk.tol(torch.float64, "flex")
    assert bk.rel_err(lse, rlse) <= bk.tol(torch.float64, "flex")


def test_eager_size_cap_refuses_before_allocating_and_auto_falls_back(monkeypatch):
    import maskc.backends as mb
    from maskc.backends import attention, last_choice
    from maskc.errors import TooLargeError

    monkeypatch.setattr(fb, "MAX_EAGER_SCORE_ELEMENTS", 1000)
    monkeypatch.delenv("MASKC_FLEX_COMPILE", raising=False)
    lay = mc.Layout.from_dense(np.tril(np.ones((32, 32), bool)), 16)
    q = torch.randn(1, 2, 32, 16)
    with pytest.raises(TooLargeError, match="MAX_EAGER_SCORE_ELEMENTS"):
        fb.attention_flex(q, q, q, lay, scale=0.25)
    with pytest.raises(TooLargeError, match="MAX_EAGER_SCORE_ELEMENTS"):  # explicit: the documented error type
        attention(q, q, q, lay, backend="flex")
    attention(q, q, q, lay)
    assert last_choice().name == "torch"  # CPU torch tensors: the torch backend outranks eager flex
    monkeypatch.setattr(mb.get("torch"), "auto_devices", ())  # without it, auto skips flex for its size
    attention(q, q, q, lay)
    assert last_choice().name == "reference" and "MAX_EAGER_SCORE_ELEMENTS" in last_choice().reason


def test_compiled_cpu_refuses_grad():
    if CUDA:
        pytest.skip("CPU-only behaviour")
    lay = mc.Layout.from_dense(np.tril(np.ones((16, 16), bool)), 16)
    q = torch.randn(1, 1, 16, 16, requires_grad=True)
    with pytest.raises(MaskcError, match="no backward"):
        fb.attention_flex(q, q, q, lay, scale=0.25, compiled=True)


def test_layout_head_mismatch_error():
    lay = mc.Layout.from_dense(np.ones((3, 16, 16), bool), 16)
    q = torch.randn(1, 2, 16, 16)
    with pytest.raises(MaskcError, match="heads"):
        fb.attention_flex(q, q, q, lay, scale=0.25)


# ---------------------------------------------------------------- BlockMask export
def test_block_mask_matches_create_block_mask_causal_window():
    """Our block lists (kv and q side, full and partial) equal create_block_mask's."""
    for L, block in ((100, 16), (96, (16, 32)), (70, (32, 16))):
        lay = mc.Layout.from_dense(_window(L, 40), block)
        bm = to_flex_block_mask(lay)
        ref = fa.create_block_mask(lambda b, h, q, k: (q >= k) & (q - k < 40), 1, 1, L, L,
                                   device="cpu", BLOCK_SIZE=block)
        assert bm.BLOCK_SIZE == ref.BLOCK_SIZE and bm.seq_lengths == ref.seq_lengths
        for pre in ("", "full_"):
            for side in ("kv", "q"):
                num = getattr(bm, f"{pre}{side}_num_blocks")
                rnum = getattr(ref, f"{pre}{side}_num_blocks")
                assert torch.equal(num, rnum), (L, block, pre, side)
                assert getattr(bm, f"{pre}{side}_indices").shape == getattr(ref, f"{pre}{side}_indices").shape
                assert _valid_lists(num, getattr(bm, f"{pre}{side}_indices")) == _valid_lists(
                    rnum, getattr(ref, f"{pre}{side}_indices")), (L, block, pre, side)
        assert torch.equal(bm.to_dense(), ref.to_dense())


def test_mask_mod_reproduces_layout_dense():
    rng = np.random.default_rng(14)
    m = rng.random((2, 37, 52)) < 0.3
    lay = mc.Layout.from_dense(m, 16)
    bm = to_flex_block_mask(lay)
    dense = fa.create_mask(bm.mask_mod, 1, 2, 37, 52, device="cpu")[0].numpy()
    assert np.array_equal(dense, m)


def test_block_mask_cached_per_device():
    lay = mc.Layout.from_dense(_window(64, 20), 16)
    assert to_flex_block_mask(lay) is to_flex_block_mask(lay, "cpu")


@settings(max_examples=20, deadline=None)
@given(
    q_len=st.integers(1, 70),
    kv_len=st.integers(1, 70),
    heads=st.sampled_from([1, 3]),
    block=st.sampled_from([16, (16, 32), (32, 16), 8]),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_layout_block_mask(q_len, kv_len, heads, block, density, seed):
    rng = np.random.default_rng(seed)
    m = rng.random((heads, q_len, kv_len)) < density
    if heads > 1:
        m[1] = True  # one all-full head
    lay = mc.Layout.from_dense(m, block)
    back = from_flex_block_mask(to_flex_block_mask(lay), q_len, kv_len)
    assert back == lay
    assert np.array_equal(back.to_dense(), m)


def test_from_create_block_mask():
    """A BlockMask made by torch (dense evaluation) converts to the same Layout as the mask."""
    L = 90
    ref = fa.create_block_mask(lambda b, h, q, k: (q >= k) & ((q - k < 20) | (k < 4)), 1, 1, L, L,
                               device="cpu", BLOCK_SIZE=(16, 32))
    lay = from_flex_block_mask(ref)
    m = _window(L, 20) | (np.tril(np.ones((L, L), bool)) & (np.arange(L)[None, :] < 4))
    assert lay == mc.Layout.from_dense(m, (16, 32))


def test_from_block_mask_without_full_blocks():
    L = 64
    ref = fa.create_block_mask(lambda b, h, q, k: q >= k, 1, 1, L, L, device="cpu", BLOCK_SIZE=16,
                               separate_full_blocks=False)
    assert ref.full_kv_num_blocks is None
    lay = from_flex_block_mask(ref)
    assert lay == mc.Layout.from_dense(np.tril(np.ones((L, L), bool)), 16)
    assert (lay.n_full, lay.n_partial) == (6, 4)  # reclassified from the evaluated bits


def test_from_block_mask_too_short_error():
    bm = to_flex_block_mask(mc.Layout.from_dense(np.ones((32, 32), bool), 16))
    with pytest.raises(MaskcError, match="fewer"):
        from_flex_block_mask(bm, 64, 64)


# ---------------------------------------------------------------- CUDA only
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_forward_backward_cuda(bk, dtype):
    rng = np.random.default_rng(15)
    lay = bk.random_layout(rng, heads=2, q_len=200, kv_len=264, block=(64, 64))
    q, k, v = _inputs(1, 2, 1, 200, 264, 64, dtype, device="cuda", seed=4, grad=True)
    out, lse = fb.attention_flex(q, k, v, lay, scale=0.125)
    rq, rk, rv = (x.detach().cpu().double().requires_grad_() for x in (q, k, v))
    rout, rlse = bk.ref(rq, rk, rv, lay, 0.125)
    tol = bk.tol(dtype, "flex")
    assert bk.rel_err(out.cpu(), rout) <= tol and bk.rel_err(lse.cpu(), rlse) <= max(tol, 1e-4)
    dout = torch.randn(rout.shape, dtype=torch.float64)
    (out.double().cpu() * dout).sum().backward()
    (rout * dout).sum().backward()
    for a, b in ((q, rq), (k, rk), (v, rv)):
        assert bk.rel_err(a.grad.cpu(), b.grad, floor=float(rv.grad.norm())) <= tol

