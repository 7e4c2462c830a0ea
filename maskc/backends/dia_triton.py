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
    >>> from maskc.backends.dia_triton import dia_attention_triton
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

    _NO_SPEC = ["n_off", "N", "M", "group", "H", "HKV"]

    @triton.jit
    def _program(H, group):
        """(tile index, batch, q head, kv head) of this program: grid (tiles, batch * H), GQA ``group``."""
        bh = tl.program_id(1)
        h = bh % H
        return tl.program_id(0), bh // H, h, h // group

    @triton.jit
    def _base(P, b, h, H, rows, D: tl.constexpr):
        """``P`` advanced to the [rows, D] matrix of (batch b, head h) among H heads (int64 offset)."""
        return P + (b * H + h).to(tl.int64) * rows * D

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

    @triton.jit(do_not_specialize=_NO_SPEC)
    def _dia_fwd(Q, K, V, O, L, OFF, n_off, N, M, group, scale, H, HKV,
                 D: tl.constexpr, BLOCK_M: tl.constexpr):
        pid, b, h, hk = _program(H, group)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        dc = tl.arange(0, D)
        rmask = rows < N
        kbase = _base(K, b, hk, HKV, M, D)
        vbase = _base(V, b, hk, HKV, M, D)
        q = _tile(_base(Q, b, h, H, N, D), rows, rmask, dc, D)
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
        tl.store(_base(O, b, h, H, N, D) + rows[:, None] * D + dc[None, :], out.to(O.dtype.element_ty),
                 mask=rmask[:, None])
        tl.store(_base(L, b, h, H, N, 1) + rows, lse, mask=rmask)

    @triton.jit(do_not_specialize=_NO_SPEC)
    def _dia_bwd_dq(Q, K, V, DO, L, DEL, DQ, OFF, n_off, N, M, group, scale, H, HKV,
                    D: tl.constexpr, BLOCK_M: tl.constexpr):
        pid, b, h, hk = _program(H, group)
        rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        dc = tl.arange(0, D)
        rmask = rows < N
        q = _tile(_base(Q, b, h, H, N, D), rows, rmask, dc, D)
        do = _tile(_base(DO, b, h, H, N, D), rows, rmask, dc, D)
        lse = _saved_lse(_base(L, b, h, H, N, 1), rows, rmask)
        delta = tl.load(_base(DEL, b, h, H, N, 1) + rows, mask=rmask, other=0.0)
        kbase = _base(K, b, hk, HKV, M, D)
        vbase = _base(V, b, hk, HKV, M, D)
        dq = tl.zeros([BLOCK_M, D], tl.float32)
        for t in range(0, n_off):
            ok, kt, vt = _shifted_kv(kbase, vbase, OFF + t, rows, rmask, M, dc, D)
            p, ds = _probs_and_dscores(q, kt, vt, do, ok, lse, delta, scale)
            dq += ds[:, None] * kt
        tl.store(_base(DQ, b, h, H, N, D) + rows[:, None] * D + dc[None, :], (dq * scale).to(DQ.dtype.element_ty),
                 mask=rmask[:, None])

    @triton.jit(do_not_specialize=_NO_SPEC)
    def _dia_bwd_dkdv(Q, K, V, DO, L, DEL, DK, DV, OFF, n_off, N, M, group, scale, H, HKV,
                      D: tl.constexpr, BLOCK_M: tl.constexpr):
        pid, b, h, hk = _program(H, group)
        cols = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        dc = tl.arange(0, D)
        cmask = cols < M
        kt = _tile(_base(K, b, hk, HKV, M, D), cols, cmask, dc, D)
        vt = _tile(_base(V, b, hk, HKV, M, D), cols, cmask, dc, D)
        qbase = _base(Q, b, h, H, N, D)
        dobase = _base(DO, b, h, H, N, D)
        lbase = _base(L, b, h, H, N, 1)
        dbase = _base(DEL, b, h, H, N, 1)
        dk = tl.zeros([BLOCK_M, D], tl.float32)
        dv = tl.zeros([BLOCK_M, D], tl.float32)
        for t in range(0, n_off):
            d = tl.load(OFF + t)
            i = cols + d
            ok = cmask & (i >= 0) & (i < N)
            q = _tile(qbase, i, ok, dc, D)
            do = _tile(dobase, i, ok, dc, D)
            lse = _saved_lse(lbase, i, ok)
            delta = tl.load(dbase + i, mask=ok, other=0.0)
            p, ds = _probs_and_dscores(q, kt, vt, do, ok, lse, delta, scale)
            dv += p[:, None] * do
            dk += ds[:, None] * q
        # per q-head gradients [B, H, M, D]; the caller sums the GQA group
        tl.store(_base(DK, b, h, H, M, D) + cols[:, None] * D + dc[None, :], dk * scale, mask=cmask[:, None])
        tl.store(_base(DV, b, h, H, M, D) + cols[:, None] * D + dc[None, :], dv, mask=cmask[:, None])


def dia_config(n: int, head_dim: int) -> tuple[int, int]:
    """``(BLOCK_M, num_warps)`` of the DIA kernels for ``n`` rows (query or key) and ``head_dim``.

    Four fp32 ``[BLOCK_M, D]`` tiles are live in the loop (q, k, v rows, accumulator), so
    the tile shrinks and the warps grow with D to stay within 255 registers per thread.

    Example:
        >>> dia_config(4096, 64), dia_config(4096, 256), dia_config(20, 64)
        ((64, 4), (32, 8), (32, 4))
    """
    bm = 16 if n <= 16 else (32 if n <= 32 else 64)
    if head_dim >= 256:
        bm = min(bm, 32)
    warps = 4 if bm * head_dim <= 4096 else 8
    return bm, warps


def launch(kind: str, t: dict, offs: Tensor, scale: float):
    """``(kernel, grid, args, constexprs, num_warps)`` of one DIA launch (kind fwd / dq / dkdv).

    ``t`` holds q, k, v and o, lse (fwd) or do, lse, delta, dq, dk, dv (backward).
    """
    q, k = t["q"], t["k"]
    B, H, N, D = (int(s) for s in q.shape)
    HKV, M = int(k.shape[1]), int(k.shape[2])
    common = (offs, int(offs.numel()), N, M, H // HKV, scale, H, HKV)
    bm, warps = dia_config(M if kind == "dkdv" else N, D)
    if kind == "fwd":
        fn, args = _dia_fwd, (q, k, t["v"], t["o"], t["lse"], *common)
    elif kind == "dq":
        fn, args = _dia_bwd_dq, (q, k, t["v"], t["do"], t["lse"], t["delta"], t["dq"], *common)
    elif kind == "dkdv":
        fn, args = _dia_bwd_dkdv, (q, k, t["v"], t["do"], t["lse"], t["delta"], t["dk"], t["dv"], *common)
    else:
        raise ValueError(f"unknown DIA kernel {kind!r}")
    grid = (triton.cdiv(M if kind == "dkdv" else N, bm), B * H)
    return fn, grid, args, dict(D=D, BLOCK_M=bm), warps


def _launch(kind: str, t: dict, offs: Tensor, scale: float) -> None:
    fn, grid, args, consts, warps = launch(kind, t, offs, scale)
    fn[grid](*args, **consts, num_warps=warps)


class _DiaTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, offs, scale):
        B, H, N, D = q.shape
        o = torch.empty_like(q)
        lse = torch.empty(B, H, N, dtype=torch.float32, device=q.device)
        _launch("fwd", dict(q=q, k=k, v=v, o=o, lse=lse), offs, scale)
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
        t = dict(q=q, k=k, v=v, do=do, lse=lse, delta=delta.contiguous(), dq=torch.empty_like(q),
                 dk=torch.empty(B, H, M, D, dtype=torch.float32, device=q.device))
        t["dv"] = torch.empty_like(t["dk"])
        _launch("dq", t, offs, ctx.scale)
        _launch("dkdv", t, offs, ctx.scale)
        g = H // HKV
        dk = t["dk"].view(B, HKV, g, M, D).sum(2).to(k.dtype)
        dv = t["dv"].view(B, HKV, g, M, D).sum(2).to(v.dtype)
        return t["dq"], dk, dv, None, None


def dia_attention_triton(q: Tensor, k: Tensor, v: Tensor, offsets: Sequence[int] | np.ndarray, *,
                         scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Triton DIA attention: query i attends keys i - d, d in ``offsets`` (same contract as
    :func:`maskc.planner.dia.dia_attention`; lse float32). head_dim: a power of two in [16, 256]."""
    ok, why = is_available()
    if not ok:
        raise RuntimeError(f"Triton DIA kernel unavailable: {why}")
    D = q.shape[-1]
    if D < 16 or D > 256 or D & (D - 1):
        raise ValueError(f"Triton DIA kernel needs a power-of-two head_dim in [16, 256], got {D}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"q heads {q.shape[1]} must be a multiple of kv heads {k.shape[1]}")
    offs = torch.as_tensor(np.unique(np.asarray(offsets, dtype=np.int64)).astype(np.int32), device=q.device)
    if offs.numel() == 0:
        raise ValueError("dia_attention_triton needs at least one offset")
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    return _DiaTriton.apply(q.contiguous(), k.contiguous(), v.contiguous(), offs, scale)


def attention_dia_triton(q: Tensor, k: Tensor, v: Tensor, layout, *, scale: float) -> tuple[Tensor, Tensor]:
    """The registered ``"dia-triton"`` backend: :func:`dia_attention_triton` on a
    :class:`~maskc.backends.DiagonalLayout`'s offsets."""
    return dia_attention_triton(q, k, v, layout.local_offsets, scale=scale)


def supports(q, layout) -> tuple[bool, str]:
    """The head dims the Triton DIA kernels build for (a power of two >= 16)."""
    D = int(q.shape[-1])
    if D < 16 or D & (D - 1):
        return False, f"the Triton DIA kernel needs a power-of-two head_dim >= 16, got {D}"
    return True, ""
