"""Shared cross-check of maskc's Triton kernels against the float64 reference (forward, lse, gradients).

On CPU the kernels run under TRITON_INTERPRET=1 (set by tests/conftest.py), so sizes stay
tiny. On a CUDA machine run with TRITON_INTERPRET=0 to test the compiled kernels.
"""

from __future__ import annotations

import os

import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    DEVICES = [d for d in DEVICES if d != "cpu"]
DEV = DEVICES[0] if DEVICES else "cpu"


def inputs(B, Hq, Hkv, Lq, Lk, D, dtype, device, seed=0, split_heads=False):
    """Random inputs in ``dtype`` (leaves with grads) and their float64 copies (leaves too).

    ``split_heads``: q, k, v are ``[B, L, H, D]`` tensors viewed as ``[B, H, L, D]`` (strided).
    """
    g = torch.Generator().manual_seed(seed)
    shapes = ((Hq, Lq), (Hkv, Lk), (Hkv, Lk))
    if split_heads:
        xs = [torch.randn(B, n, h, D, generator=g) for h, n in shapes]
        low = [x.to(dtype).to(device).requires_grad_() for x in xs]
        views = [x.transpose(1, 2) for x in low]
        ref = [x.detach().cpu().double().transpose(1, 2).contiguous().requires_grad_() for x in low]
        return low, views, ref
    xs = [torch.randn(B, h, n, D, generator=g) for h, n in shapes]
    low = [x.to(dtype).to(device).requires_grad_() for x in xs]
    ref = [x.detach().cpu().double().requires_grad_() for x in low]  # same rounded values
    return low, low, ref


def check(bk, layout, B, Hq, Hkv, D, dtype, device=None, seed=0, grads=True, lse_grad=True, tiles=None,
          split_heads=False):
    """Run triton (on ``device``, default DEV) and the reference; assert forward, lse and gradients."""
    from maskc.backends import triton_backend as tb

    device = DEV if device is None else device
    leaves, (q, k, v), (rq, rk, rv) = inputs(B, Hq, Hkv, layout.q_len, layout.kv_len, D, dtype, device, seed,
                                              split_heads)
    scale = D ** -0.5
    out, lse = tb.attention_triton(q, k, v, layout, scale=scale, tiles=tiles)
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
    for name, a, b in zip(("dq", "dk", "dv"), leaves, (rq, rk, rv)):
        assert a.grad is not None and a.grad.dtype == dtype, name
        grad = a.grad.transpose(1, 2) if split_heads else a.grad
        e = bk.rel_err(grad.cpu(), b.grad)
        assert e < tol, f"{name} rel err {e:.2e} >= {tol} ({dtype})"
