"""The DIA backend (torch, any device): attention over a small set of diagonals d = i - j.

Takes a :class:`~maskc.backends.formats.DiagonalLayout`. For every offset d, query i
scores only key ``i - d``: one contiguous shifted slice of K (and V) per offset, never a
block or a matrix. Work is O(N * |D| * head_dim) instead of O(N^2 * head_dim): the right
lowering for squares (sqrt N offsets), Mian-Chowla (~N^(1/3)), powers of two (log N)
and small explicit sets.

Only attended keys are ever read, so a row with no key gives exactly 0 (lse -inf) and
values at keys a row may not attend never reach it. Grouped-query attention broadcasts
each K/V head over its query heads (no repeated copies). The forward keeps only
``(out, lse)`` and the ``[N, |D|]`` probabilities; the backward recomputes per offset
(custom autograd, memory O(N * |D|), never N x N) and honours the gradient of lse.

Example:
    >>> import torch
    >>> from maskc.backends.dia_backend import dia_attention
    >>> q = torch.randn(1, 2, 10, 8)
    >>> out, lse = dia_attention(q, q, q, [0, 1, 4], scale=0.3)
    >>> out.shape, lse.shape
    (torch.Size([1, 2, 10, 8]), torch.Size([1, 2, 10]))
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from maskc.backends.formats import DiagonalLayout
from maskc.backends.softmax import accumulation_dtype, finite_or_zero, safe_lse

Tensor = torch.Tensor


def is_available() -> tuple[bool, str]:
    """torch is importable (this module imports it): always ``(True, 'ok')``."""
    return True, "ok"


def _ranges(d: int, N: int, M: int) -> tuple[int, int]:
    """Query rows i with 0 <= i - d < M: [lo, hi)."""
    lo, hi = max(0, d), min(N, M + d)
    return lo, max(lo, hi)


def _scores(q: Tensor, k: Tensor, offs: Sequence[int], scale: float) -> Tensor:
    """q ``[B, Hkv, g, N, D]``, k ``[B, Hkv, 1, M, D]`` -> scores ``[B, Hkv, g, N, |offs|]`` (-inf outside)."""
    N, M = q.shape[3], k.shape[3]
    s = torch.full(q.shape[:4] + (len(offs),), float("-inf"), dtype=q.dtype, device=q.device)
    for t, d in enumerate(offs):
        lo, hi = _ranges(d, N, M)
        if hi > lo:
            s[..., lo:hi, t] = (q[..., lo:hi, :] * k[..., lo - d: hi - d, :]).sum(-1) * scale
    return s


class _DiaAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, offs, scale):  # q [B, Hkv, g, N, D], k / v [B, Hkv, 1, M, D]
        acc = accumulation_dtype(q.dtype)
        qa, ka, va = q.to(acc), k.to(acc), v.to(acc)
        N, M = q.shape[3], k.shape[3]
        s = _scores(qa, ka, offs, scale)
        mx = finite_or_zero(s.amax(-1))
        p = torch.exp(s - mx.unsqueeze(-1))
        z = p.sum(-1)
        p = p / torch.where(z > 0, z, torch.ones_like(z)).unsqueeze(-1)
        out = torch.zeros(q.shape[:4] + (v.shape[-1],), dtype=acc, device=q.device)
        for t, d in enumerate(offs):
            lo, hi = _ranges(d, N, M)
            if hi > lo:
                out[..., lo:hi, :] += p[..., lo:hi, t: t + 1] * va[..., lo - d: hi - d, :]
        lse = safe_lse(mx, z)
        ctx.save_for_backward(q, k, v, p)
        ctx.offs, ctx.scale = offs, scale
        return out.to(q.dtype), lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, p = ctx.saved_tensors
        offs, scale = ctx.offs, ctx.scale
        acc = p.dtype
        qa, ka, va = q.to(acc), k.to(acc), v.to(acc)
        N, M = q.shape[3], k.shape[3]
        do = torch.zeros(q.shape[:4] + (v.shape[-1],), dtype=acc, device=q.device) if dout is None else dout.to(acc)
        dl = torch.zeros(p.shape[:4], dtype=acc, device=p.device) if dlse is None else finite_or_zero(dlse.to(acc))
        dp = torch.zeros_like(p)
        dv = torch.zeros_like(va)
        for t, d in enumerate(offs):
            lo, hi = _ranges(d, N, M)
            if hi > lo:
                dp[..., lo:hi, t] = (do[..., lo:hi, :] * va[..., lo - d: hi - d, :]).sum(-1)
                dv[..., lo - d: hi - d, :] += (p[..., lo:hi, t: t + 1] * do[..., lo:hi, :]).sum(2, keepdim=True)
        ds = p * (dp - (p * dp).sum(-1, keepdim=True) + dl.unsqueeze(-1)) * scale
        dq = torch.zeros_like(qa)
        dk = torch.zeros_like(ka)
        for t, d in enumerate(offs):
            lo, hi = _ranges(d, N, M)
            if hi > lo:
                w = ds[..., lo:hi, t: t + 1]
                dq[..., lo:hi, :] += w * ka[..., lo - d: hi - d, :]
                dk[..., lo - d: hi - d, :] += (w * qa[..., lo:hi, :]).sum(2, keepdim=True)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None


def dia_attention(q: Tensor, k: Tensor, v: Tensor, offsets: Sequence[int] | np.ndarray, *,
                  scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Attention where local query row i attends keys ``i - d`` for d in ``offsets``.

    q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]`` (GQA). Offsets may be negative
    (non-causal); out-of-range keys are skipped; a row with no key gives 0 and -inf.
    Returns ``(out like q, lse)`` (lse float32, float64 for float64 inputs).

    Example:
        >>> import torch
        >>> from maskc.backends.dia_backend import dia_attention
        >>> q = torch.randn(1, 1, 4, 2)
        >>> out, lse = dia_attention(q, q, q, [0])   # only the diagonal: out == v
        >>> torch.allclose(out, q)
        True
    """
    offs = tuple(int(d) for d in np.unique(np.asarray(offsets, dtype=np.int64)))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    B, Hq, N, D = q.shape
    Hkv = k.shape[1]
    if Hq % Hkv:
        raise ValueError(f"q heads {Hq} must be a multiple of kv heads {Hkv}")
    if not offs:
        lse = torch.full((B, Hq, N), float("-inf"), dtype=accumulation_dtype(q.dtype), device=q.device)
        return q.new_zeros(B, Hq, N, v.shape[-1]), lse
    q5 = q.reshape(B, Hkv, Hq // Hkv, N, D)
    out, lse = _DiaAttention.apply(q5, k.unsqueeze(2), v.unsqueeze(2), offs, scale)
    return out.reshape(B, Hq, N, v.shape[-1]), lse.reshape(B, Hq, N)


def attention_dia(q: Tensor, k: Tensor, v: Tensor, layout: DiagonalLayout, *, scale: float) -> tuple[Tensor, Tensor]:
    """The registered ``"dia"`` backend: :func:`dia_attention` over a DiagonalLayout's local offsets."""
    if not isinstance(layout, DiagonalLayout):
        raise TypeError(f"the dia backend takes a DiagonalLayout, got {type(layout).__name__}")
    return dia_attention(q, k, v, layout.local_offsets, scale=scale)
