"""DIA lowering, CPU path (torch): attention over a small set of offsets d = i - j.

For every offset d in the set, query i scores only key ``i - d``: one contiguous shifted
slice of K (and V) per offset, never a block or a matrix. Work is O(N * |D| * head_dim)
instead of O(N^2 * head_dim): the right lowering for squares (sqrt N offsets),
Mian-Chowla (~N^(1/3)), Mersenne / powers of two (log N) and small explicit sets.

The forward keeps only ``(out, lse)``; the backward recomputes each offset's scores
(custom autograd, memory O(N * |D|) for the [N, |D|] probability table, never N x N),
and honours the gradient of lse.

Example:
    >>> import torch
    >>> from maskc.planner.dia import dia_attention
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

from maskc.planner.merge import safe_lse

Tensor = torch.Tensor


def _ranges(d: int, N: int, M: int) -> tuple[int, int]:
    """Query rows i with 0 <= i - d < M: [lo, hi)."""
    lo, hi = max(0, d), min(N, M + d)
    return lo, max(lo, hi)


def _scores(q: Tensor, k: Tensor, offs: Sequence[int], scale: float) -> Tensor:
    B, H, N, D = q.shape
    M = k.shape[2]
    s = torch.full((B, H, N, len(offs)), float("-inf"), dtype=q.dtype, device=q.device)
    for t, d in enumerate(offs):
        lo, hi = _ranges(d, N, M)
        if hi > lo:
            s[:, :, lo:hi, t] = (q[:, :, lo:hi] * k[:, :, lo - d: hi - d]).sum(-1) * scale
    return s


class _DiaAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, offs, scale):
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        qa, ka, va = q.to(acc), k.to(acc), v.to(acc)
        N, M = q.shape[2], k.shape[2]
        s = _scores(qa, ka, offs, scale)
        mx = s.amax(-1)
        mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        p = torch.exp(s - mx.unsqueeze(-1))
        z = p.sum(-1)
        p = p / torch.where(z > 0, z, torch.ones_like(z)).unsqueeze(-1)
        out = torch.zeros_like(qa)
        for t, d in enumerate(offs):
            lo, hi = _ranges(d, N, M)
            if hi > lo:
                out[:, :, lo:hi] += p[:, :, lo:hi, t: t + 1] * va[:, :, lo - d: hi - d]
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
        N, M = q.shape[2], k.shape[2]
        do = torch.zeros_like(qa) if dout is None else dout.to(acc)
        dl = torch.zeros(p.shape[:3], dtype=acc, device=p.device) if dlse is None else dlse.to(acc)
        dp = torch.zeros_like(p)
        dv = torch.zeros_like(va)
        for t, d in enumerate(offs):
            lo, hi = _ranges(d, N, M)
            if hi > lo:
                dp[:, :, lo:hi, t] = (do[:, :, lo:hi] * va[:, :, lo - d: hi - d]).sum(-1)
                dv[:, :, lo - d: hi - d] += p[:, :, lo:hi, t: t + 1] * do[:, :, lo:hi]
        dl = torch.where(torch.isfinite(dl), dl, torch.zeros_like(dl))
        ds = p * (dp - (p * dp).sum(-1, keepdim=True) + dl.unsqueeze(-1)) * scale
        dq = torch.zeros_like(qa)
        dk = torch.zeros_like(ka)
        for t, d in enumerate(offs):
            lo, hi = _ranges(d, N, M)
            if hi > lo:
                w = ds[:, :, lo:hi, t: t + 1]
                dq[:, :, lo:hi] += w * ka[:, :, lo - d: hi - d]
                dk[:, :, lo - d: hi - d] += w * qa[:, :, lo:hi]
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None


def dia_attention(q: Tensor, k: Tensor, v: Tensor, offsets: Sequence[int] | np.ndarray, *,
                  scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Attention where query i attends keys ``i - d`` for d in ``offsets`` (CPU / any device).

    q ``[B, Hq, N, D]``, k / v ``[B, Hkv, M, D]`` (GQA). Offsets may be negative
    (non-causal); out-of-range keys are skipped; a row with no key gives 0 and -inf.
    Returns ``(out like q, lse)`` (lse float32, float64 for float64 inputs).

    Example:
        >>> import torch
        >>> from maskc.planner.dia import dia_attention
        >>> q = torch.randn(1, 1, 4, 2)
        >>> out, lse = dia_attention(q, q, q, [0])   # only the diagonal: out == v
        >>> torch.allclose(out, q)
        True
    """
    offs = tuple(int(d) for d in np.unique(np.asarray(offsets, dtype=np.int64)))
    if not offs:
        raise ValueError("dia_attention needs at least one offset")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    Hq, Hkv = q.shape[1], k.shape[1]
    if Hq % Hkv:
        raise ValueError(f"q heads {Hq} must be a multiple of kv heads {Hkv}")
    if Hq != Hkv:
        k = k.repeat_interleave(Hq // Hkv, dim=1)
        v = v.repeat_interleave(Hq // Hkv, dim=1)
    out, lse = _DiaAttention.apply(q, k, v, offs, scale)
    return out, lse if q.dtype == torch.float64 else lse.to(torch.float32)
