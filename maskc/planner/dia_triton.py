"""DIA lowering, Triton kernels (forward and backward).

One program handles BLOCK_M consecutive query rows of one (batch, head) and loops over
the offsets: for offset d it loads the contiguous key / value rows ``i - d`` (one shifted
tile), computes the row-wise dot products on CUDA cores and keeps an online softmax
(running max, running sum). Consecutive offsets read overlapping tiles, so most reads
hit L2. The backward recomputes scores from the saved lse: one kernel for dQ (per query
tile) and one for dK / dV (per key tile, reading query rows ``j + d``), no atomics.
The gradient of lse is honoured (``delta = rowsum(dO * O) - dlse``).

Runs on CUDA, and on CPU under ``TRITON_INTERPRET=1`` (slow; tests use tiny sizes).

Example (needs Triton; under the interpreter on CPU)::

    >>> import torch
    >>> from maskc.planner.dia_triton import dia_attention_triton
    >>> q = torch.randn(1, 1, 16, 16)
    >>> out, lse = dia_attention_triton(q, q, q, [0, 1, 4])  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch

try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:  # pragma: no cover
    HAVE_TRITON = False

Tensor = torch.Tensor


def is_available() -> tuple[bool, str]:
    """(ok, reason): Triton importable and either CUDA or TRITON_INTERPRET=1."""
    if not HAVE_TRITON:
        return False, "triton is not installed"
    if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        return True, "ok"
    return False, "no CUDA device and TRITON_INTERPRET is not 1"


if HAVE_TRITON:

    @triton.jit
    def _program(H, group):
        """(tile index, batch, q head, kv head) of this program: grid (tiles, batch * H), GQA ``group``."""
        bh = tl.program_id(1)
        h = bh % H
        return tl.program_id(0), bh // H, h, h // group

    @triton.jit
    def _tile(base, idx, ok, dc, D: tl.constexpr):
        """Rows ``idx`` of a [*, D] matrix at ``base`` as float32 (zeros where not ``ok``)."""
        return tl.load(base + idx[:, None] * D + dc[None, :], mask=ok[:, None], other=0.0).to(tl.float32)

    @triton.jit
    def _shifted_kv(kbase, vbase, off_ptr, rows, rmask, M, dc, D: tl.constexpr):
        """For the offset d at ``off_ptr``: (valid, K rows i - d, V rows i - d) of query rows ``rows``."""
        j = rows - tl.load(off_ptr)
        ok = rmask & (j >= 0) & (j < M)
        return ok, _tile(kbase, j, ok, dc, D), _tile(vbase, j, ok, dc, D)

    @triton.jit
    def _saved_lse(ptr, idx, ok):
        """The forward's lse at rows ``idx``; empty rows (-inf) and masked slots read +inf so p = 0."""
        lse = tl.load(ptr + idx, mask=ok, other=float("inf"))
        return tl.where(lse == float("-inf"), float("inf"), lse)

    @triton.jit
    def _probs_and_dscores(q, kt, vt, do, ok, lse, delta, scale):
        """Backward of one offset, row-wise: p = exp(s - lse), ds = p * (dO.v - delta)."""
        s = tl.sum(q * kt, axis=1) * scale
        p = tl.where(ok, tl.exp(s - lse), 0.0)
        dp = tl.sum(do * vt, axis=1)
        return p, p * (dp - delta)

    @triton.jit
    def _dia_fwd(Q, K, V, O, L, OFF, n_off, N, M, group, scale,
                 H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr):
        pid, b, h, hk = _program(H, group)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        dc = tl.arange(0, D)
        rmask = rows < N
        kbase = K + (b * HKV + hk) * M * D
        vbase = V + (b * HKV + hk) * M * D
        q = _tile(Q + (b * H + h) * N * D, rows, rmask, dc, D)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, D], tl.float32)
        for t in range(0, n_off):
            ok, kt, vt = _shifted_kv(kbase, vbase, OFF + t, rows, rmask, M, dc, D)
            s = tl.sum(q * kt, axis=1) * scale
            s = tl.where(ok, s, float("-inf"))
            m_new = tl.maximum(m_i, s)
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp(m_i - m_safe)
            p = tl.exp(s - m_safe)
            l_i = l_i * alpha + p
            acc = acc * alpha[:, None] + p[:, None] * vt
            m_i = m_new
        nonempty = l_i > 0
        l_safe = tl.where(nonempty, l_i, 1.0)
        out = acc / l_safe[:, None]
        lse = tl.where(nonempty, m_i + tl.log(l_safe), float("-inf"))
        tl.store(O + (b * H + h) * N * D + rows[:, None] * D + dc[None, :], out.to(O.dtype.element_ty), mask=rmask[:, None])
        tl.store(L + (b * H + h) * N + rows, lse, mask=rmask)

    @triton.jit
    def _dia_bwd_dq(Q, K, V, DO, L, DEL, DQ, OFF, n_off, N, M, group, scale,
                    H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr):
        pid, b, h, hk = _program(H, group)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        dc = tl.arange(0, D)
        rmask = rows < N
        qo = (b * H + h) * N * D
        q = _tile(Q + qo, rows, rmask, dc, D)
        do = _tile(DO + qo, rows, rmask, dc, D)
        lse = _saved_lse(L + (b * H + h) * N, rows, rmask)
        delta = tl.load(DEL + (b * H + h) * N + rows, mask=rmask, other=0.0)
        kbase = K + (b * HKV + hk) * M * D
        vbase = V + (b * HKV + hk) * M * D
        dq = tl.zeros([BLOCK_M, D], tl.float32)
        for t in range(0, n_off):
            ok, kt, vt = _shifted_kv(kbase, vbase, OFF + t, rows, rmask, M, dc, D)
            p, ds = _probs_and_dscores(q, kt, vt, do, ok, lse, delta, scale)
            dq += ds[:, None] * kt
        tl.store(DQ + qo + rows[:, None] * D + dc[None, :], (dq * scale).to(DQ.dtype.element_ty), mask=rmask[:, None])

    @triton.jit
    def _dia_bwd_dkdv(Q, K, V, DO, L, DEL, DK, DV, OFF, n_off, N, M, group, scale,
                      H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr):
        pid, b, h, hk = _program(H, group)
        cols = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        dc = tl.arange(0, D)
        cmask = cols < M
        ko = (b * HKV + hk) * M * D
        kt = _tile(K + ko, cols, cmask, dc, D)
        vt = _tile(V + ko, cols, cmask, dc, D)
        qo = (b * H + h) * N * D
        dk = tl.zeros([BLOCK_N, D], tl.float32)
        dv = tl.zeros([BLOCK_N, D], tl.float32)
        for t in range(0, n_off):
            d = tl.load(OFF + t)
            i = cols + d
            ok = cmask & (i >= 0) & (i < N)
            q = _tile(Q + qo, i, ok, dc, D)
            do = _tile(DO + qo, i, ok, dc, D)
            lse = _saved_lse(L + (b * H + h) * N, i, ok)
            delta = tl.load(DEL + (b * H + h) * N + i, mask=ok, other=0.0)
            p, ds = _probs_and_dscores(q, kt, vt, do, ok, lse, delta, scale)
            dv += p[:, None] * do
            dk += ds[:, None] * q
        # per q-head gradients [B, H, M, D]; the caller sums the GQA group
        go = (b * H + h) * M * D
        tl.store(DK + go + cols[:, None] * D + dc[None, :], dk * scale, mask=cmask[:, None])
        tl.store(DV + go + cols[:, None] * D + dc[None, :], dv, mask=cmask[:, None])


def _block(n: int) -> int:
    return 16 if n <= 16 else (32 if n <= 32 else 64)


class _DiaTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, offs, scale):
        B, H, N, D = q.shape
        HKV, M = k.shape[1], k.shape[2]
        o = torch.empty_like(q)
        lse = torch.empty(B, H, N, dtype=torch.float32, device=q.device)
        BM = _block(N)
        _dia_fwd[(triton.cdiv(N, BM), B * H)](q, k, v, o, lse, offs, offs.numel(), N, M, H // HKV, scale,
                                              H=H, HKV=HKV, D=D, BLOCK_M=BM)
        ctx.save_for_backward(q, k, v, o, lse, offs)
        ctx.scale = scale
        return o, lse

    @staticmethod
    def backward(ctx, do, dlse):
        q, k, v, o, lse, offs = ctx.saved_tensors
        B, H, N, D = q.shape
        HKV, M = k.shape[1], k.shape[2]
        do = torch.zeros_like(o) if do is None else do.contiguous()
        delta = (do.float() * o.float()).sum(-1)
        if dlse is not None:
            delta = delta - torch.where(torch.isfinite(dlse), dlse, torch.zeros_like(dlse)).float()
        delta = delta.contiguous()
        dq = torch.empty_like(q)
        dk = torch.empty(B, H, M, D, dtype=torch.float32, device=q.device)
        dv = torch.empty_like(dk)
        BM, BN = _block(N), _block(M)
        _dia_bwd_dq[(triton.cdiv(N, BM), B * H)](q, k, v, do, lse, delta, dq, offs, offs.numel(), N, M, H // HKV,
                                                 ctx.scale, H=H, HKV=HKV, D=D, BLOCK_M=BM)
        _dia_bwd_dkdv[(triton.cdiv(M, BN), B * H)](q, k, v, do, lse, delta, dk, dv, offs, offs.numel(), N, M,
                                                   H // HKV, ctx.scale, H=H, HKV=HKV, D=D, BLOCK_N=BN)
        g = H // HKV
        dk = dk.view(B, HKV, g, M, D).sum(2).to(k.dtype)
        dv = dv.view(B, HKV, g, M, D).sum(2).to(v.dtype)
        return dq, dk, dv, None, None


def dia_attention_triton(q: Tensor, k: Tensor, v: Tensor, offsets: Sequence[int] | np.ndarray, *,
                         scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Triton DIA attention: query i attends keys i - d, d in ``offsets`` (same contract as
    :func:`maskc.planner.dia.dia_attention`; lse float32). head_dim must be a power of two >= 16."""
    ok, why = is_available()
    if not ok:
        raise RuntimeError(f"Triton DIA kernel unavailable: {why}")
    D = q.shape[-1]
    if D < 16 or D & (D - 1):
        raise ValueError(f"Triton DIA kernel needs a power-of-two head_dim >= 16, got {D}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"q heads {q.shape[1]} must be a multiple of kv heads {k.shape[1]}")
    offs = torch.as_tensor(np.unique(np.asarray(offsets, dtype=np.int64)).astype(np.int32), device=q.device)
    if offs.numel() == 0:
        raise ValueError("dia_attention_triton needs at least one offset")
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    return _DiaTriton.apply(q.contiguous(), k.contiguous(), v.contiguous(), offs, scale)
