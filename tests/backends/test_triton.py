"""maskc's Triton block-sparse attention vs a float64 dense reference (forward, lse, gradients).

On CPU the kernels run under TRITON_INTERPRET=1 (set by tests/conftest.py), so sizes stay
tiny. On a CUDA machine run with TRITON_INTERPRET=0 to test the compiled kernels.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maskc as mc
from maskc.errors import MaskcError

triton = pytest.importorskip("triton", reason="triton not installed: the triton backend cannot run")

from maskc.backends import triton_backend as tb  # noqa: E402

_ok, _why = tb.is_available()
pytestmark = pytest.mark.skipif(not _ok, reason=f"triton backend unavailable: {_why}")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    DEVICES = [d for d in DEVICES if d != "cpu"]
DEV = DEVICES[0] if DEVICES else "cpu"


def _inputs(B, Hq, Hkv, Lq, Lk, D, dtype, device, seed=0):
    """Random inputs in ``dtype`` (leaves with grads) and their float64 copies (leaves too)."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(B, h, n, D, generator=g) for h, n in ((Hq, Lq), (Hkv, Lk), (Hkv, Lk))]
    low = [x.to(dtype).to(device).requires_grad_() for x in xs]
    ref = [x.detach().cpu().double().requires_grad_() for x in low]  # same rounded values
    return low, ref


def _check(bk, layout, B, Hq, Hkv, D, dtype, device="cpu", seed=0, grads=True, lse_grad=True):
    """Run triton and the reference; assert forward, lse and gradients within tolerance."""
    (q, k, v), (rq, rk, rv) = _inputs(B, Hq, Hkv, layout.q_len, layout.kv_len, D, dtype, device, seed)
    scale = D ** -0.5
    out, lse = tb.attention_triton(q, k, v, layout, scale=scale)
    rout, rlse = bk.ref(rq, rk, rv, layout, scale)
    tol = bk.tol(dtype, "triton")
    assert out.dtype == dtype and out.shape == q.shape
    assert lse.dtype == torch.float32 and lse.shape == (B, Hq, layout.q_len)
    assert not torch.isnan(out).any() and not torch.isnan(lse).any()
    e_out = bk.rel_err(out.cpu(), rout)
    e_lse = bk.rel_err(lse.cpu(), rlse)
    assert e_out < tol, f"out rel err {e_out:.2e} >= {tol}"
    assert e_lse < 1e-4 if dtype == torch.float32 else e_lse < tol, f"lse rel err {e_lse:.2e}"
    empty = torch.isinf(rlse)
    if empty.any():  # rows without keys: exact zeros and -inf
        assert torch.all(out.cpu()[empty] == 0)
        assert torch.all(lse.cpu()[empty] == float("-inf"))
    if not grads:
        return
    g = torch.Generator().manual_seed(seed + 1)
    dout = torch.randn(rout.shape, generator=g, dtype=torch.float64)
    dlse = torch.randn(rlse.shape, generator=g, dtype=torch.float64) if lse_grad else None

    def loss(o, l):
        total = (o.double().cpu() * dout).sum()
        if dlse is not None:
            total = total + (torch.where(torch.isfinite(l), l, 0).double().cpu() * dlse).sum()
        return total

    loss(out, lse).backward()
    loss(rout, rlse).backward()
    for name, a, b in (("dq", q, rq), ("dk", k, rk), ("dv", v, rv)):
        assert a.grad is not None and a.grad.dtype == dtype, name
        e = bk.rel_err(a.grad.cpu(), b.grad)
        assert e < tol, f"{name} rel err {e:.2e} >= {tol} ({dtype})"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_forward_backward_multihead_gqa_ragged(bk, dtype, device):
    """Two heads with different patterns, GQA 4:2, ragged q_len != kv_len, empty rows."""
    rng = np.random.default_rng(3)
    lay = bk.random_layout(rng, heads=4, q_len=45, kv_len=70, block=(16, 16))
    assert lay.n_full > 0 and lay.n_partial > 0
    assert (lay.row_counts() == 0).any()
    _check(bk, lay, B=2 if dtype == torch.float32 else 1, Hq=4, Hkv=2, D=32, dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_layout_rect_blocks_padded_head_dim(bk, device):
    """One-head layout broadcast over 2 heads, block (32, 16), head_dim 24 padded to 32."""
    rng = np.random.default_rng(4)
    lay = bk.random_layout(rng, heads=1, q_len=50, kv_len=40, block=(32, 16))
    _check(bk, lay, B=1, Hq=2, Hkv=1, D=24, dtype=torch.float32, device=device, seed=5)


def test_block_16x32_causal_window(bk):
    lay = mc.Layout.from_dense(np.tril(np.ones((60, 60), bool)) & ~np.tril(np.ones((60, 60), bool), -20), (16, 32))
    _check(bk, lay, B=1, Hq=1, Hkv=1, D=16, dtype=torch.float32, seed=6)


@settings(max_examples=6, deadline=None)
@given(
    data=st.data(),
    q_len=st.integers(1, 48),
    kv_len=st.integers(1, 48),
    heads=st.sampled_from([1, 2]),
    gqa=st.booleans(),
    density=st.floats(0.0, 1.0),
)
def test_random_layouts_hypothesis(bk, data, q_len, kv_len, heads, gqa, density):
    """Random layouts (any density, incl. empty and full), forward + gradients in fp32."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    mask = rng.random((heads, q_len, kv_len)) < density
    lay = mc.Layout.from_dense(mask, 16)
    Hq = 2
    Hkv = 1 if gqa else 2
    _check(bk, lay, B=1, Hq=Hq, Hkv=Hkv, D=16, dtype=torch.float32, seed=seed % 1000)


def test_no_blocks_at_all(bk):
    """A layout with no stored block: zeros, -inf, zero gradients, no NaN."""
    lay = mc.Layout.from_dense(np.zeros((20, 30), bool), 16)
    assert lay.nnz_blocks == 0
    q = torch.randn(1, 1, 20, 16, device=DEV, requires_grad=True)
    k = torch.randn(1, 1, 30, 16, device=DEV, requires_grad=True)
    v = torch.randn(1, 1, 30, 16, device=DEV, requires_grad=True)
    out, lse = tb.attention_triton(q, k, v, lay, scale=0.25)
    assert torch.all(out == 0) and torch.all(lse == float("-inf"))
    out.sum().backward()
    for t in (q, k, v):
        assert torch.all(t.grad == 0)


def test_device_arrays_cached_on_layout():
    lay = mc.Layout.from_dense(np.tril(np.ones((32, 32), bool)), 16)
    q = torch.randn(1, 1, 32, 16, device=DEV)
    tb.attention_triton(q, q, q, lay, scale=0.25)
    cached = lay._cache[("triton", str(q.device))]
    tb.attention_triton(q, q, q, lay, scale=0.25)
    assert lay._cache[("triton", str(q.device))] is cached
    assert cached["col_idx"].dtype == torch.int32 and cached["masks"].dtype == torch.uint8


@pytest.mark.parametrize("block", [(24, 16), (16, 8), (16, 512)])
def test_unsupported_block_sizes_clear_error(block):
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), block)
    q = torch.randn(1, 1, 32, 16)
    with pytest.raises(MaskcError, match="power of two"):
        tb.attention_triton(q, q, q, lay, scale=0.25)


@pytest.mark.parametrize("d", [8, 160])
def test_unsupported_head_dim_clear_error(d):
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), 16)
    q = torch.randn(1, 1, 32, d)
    with pytest.raises(MaskcError, match="head_dim"):
        tb.attention_triton(q, q, q, lay, scale=0.25)


def test_unsupported_dtype_and_shape_errors():
    lay = mc.Layout.from_dense(np.ones((32, 32), bool), 16)
    q = torch.randn(1, 1, 32, 16, dtype=torch.float64)
    with pytest.raises(MaskcError, match="float64"):
        tb.attention_triton(q, q, q, lay, scale=0.25)
    q = torch.randn(1, 1, 31, 16)
    with pytest.raises(MaskcError, match="sequence lengths"):
        tb.attention_triton(q, q, q, lay, scale=0.25)
    q = torch.randn(1, 3, 32, 16)
    lay2 = mc.Layout.from_dense(np.ones((2, 32, 32), bool), 16)
    with pytest.raises(MaskcError, match="heads"):
        tb.attention_triton(q, q, q, lay2, scale=0.25)


def test_is_available_reports_reason(monkeypatch):
    ok, reason = tb.is_available()
    assert ok and reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ok, reason = tb.is_available()
    assert not ok and "TRITON_INTERPRET" in reason
