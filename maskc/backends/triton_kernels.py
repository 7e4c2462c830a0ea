"""Triton kernels of maskc's block-sparse flash attention (forward and backward).

The kernel tile equals the layout block ``(BLOCK_Q, BLOCK_K)``. Layout arrays arrive
flattened and int32 (see :mod:`maskc.backends.triton_backend`):

* ``row_ptr [HL * (n_qb + 1)]``, ``col_idx``, ``kind``, ``pid`` (partial id) — the BSR
  rows, walked by the forward and the dQ kernel;
* ``col_ptr [HL * (n_kb + 1)]``, ``row_idx``, ``perm`` — the CSC columns, walked by the
  dK/dV kernel (``perm`` maps a CSC position to the BSR position holding kind/pid);
* ``masks uint8 [U, BLOCK_Q, W]`` — the dictionary of packed partial bitmasks,
  ``allowed = (masks[pid, r, c >> 3] >> (c & 7)) & 1``.

Scores are kept in the log2 domain (``qk * scale * log2(e)``); the stored lse is the
natural log. A layout with one stored head broadcasts (``LAYOUT_HEAD_MULT = 0``).
"""

from __future__ import annotations

import triton
import triton.language as tl

PARTIAL_KIND: int = 1
LOG2E: float = 1.4426950408889634
LN2: float = 0.6931471805599453


@triton.jit
def _dot(a, b, UPCAST: tl.constexpr):
    """tl.dot, with operands upcast to fp32 when UPCAST (the CPU interpreter's bf16 dot is wrong)."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    else:
        return tl.dot(a, b)


@triton.jit
def _scores(
    q, k, qk_scale, kind, pid, kb, offs_r, offs_c, offs_n, masks_ptr, Lk,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, MASK_W: tl.constexpr, UPCAST: tl.constexpr,
):
    """Masked log2-domain scores of one (BLOCK_Q x BLOCK_K) tile."""
    s = _dot(q, tl.trans(k), UPCAST) * qk_scale
    if kind == 1:  # PARTIAL: bitmask from the dictionary (bits past the tails are 0)
        mptr = masks_ptr + pid.to(tl.int64) * (BLOCK_Q * MASK_W) + offs_r[:, None] * MASK_W + (offs_c[None, :] >> 3)
        byte = tl.load(mptr).to(tl.int32)
        bit = (byte >> (offs_c[None, :] & 7)) & 1
        s = tl.where(bit != 0, s, float("-inf"))
    else:  # FULL: only the ragged key tail needs masking
        if kb * BLOCK_K + BLOCK_K > Lk:
            s = tl.where(offs_n[None, :] < Lk, s, float("-inf"))
    return s


@triton.jit
def _tile(P, base, offs, offs_d, n, D):
    """Rows ``offs`` of a row-major [n, D] matrix at ``P + base`` (zeros past n and D)."""
    mask = (offs < n)[:, None] & (offs_d < D)[None, :]
    return tl.load(P + base + offs[:, None] * D + offs_d[None, :], mask=mask, other=0.0)


@triton.jit
def _bh_coords(bh, Hq, G, LAYOUT_HEAD_MULT, Lq, Lk, D):
    """(layout head, q/o base offset, k/v base offset) of batch-head program ``bh``."""
    b = bh // Hq
    h = bh % Hq
    kv_bh = b * (Hq // G) + h // G
    return h * LAYOUT_HEAD_MULT, bh.to(tl.int64) * Lq * D, kv_bh.to(tl.int64) * Lk * D


@triton.jit
def _row_stats(LSE, DELTA, bh, Lq, offs_m):
    """Saved log2-domain lse (+inf on rows without keys, so p = 0) and delta of query rows."""
    m_ok = offs_m < Lq
    lse = tl.load(LSE + bh.to(tl.int64) * Lq + offs_m, mask=m_ok, other=float("inf"))
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
    delta = tl.load(DELTA + bh.to(tl.int64) * Lq + offs_m, mask=m_ok, other=0.0)
    return lse2, delta


@triton.jit
def _fwd_kernel(
    Q, K, V, O, LSE,
    row_ptr, col_idx, kind_ptr, pid_ptr, masks_ptr,
    qk_scale,
    Hq, G, LAYOUT_HEAD_MULT, n_qb, Lq, Lk, D,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, MASK_W: tl.constexpr,
    UPCAST: tl.constexpr,
):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    lh, q_base, kv_base = _bh_coords(bh, Hq, G, LAYOUT_HEAD_MULT, Lq, Lk, D)

    offs_r = tl.arange(0, BLOCK_Q)
    offs_c = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, BLOCK_D)
    offs_m = qb * BLOCK_Q + offs_r
    m_ok = offs_m < Lq
    d_ok = offs_d < D
    q = _tile(Q, q_base, offs_m, offs_d, Lq, D)

    m_i = tl.full([BLOCK_Q], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_Q], tl.float32)
    acc = tl.zeros([BLOCK_Q, BLOCK_D], tl.float32)

    start = tl.load(row_ptr + lh * (n_qb + 1) + qb)
    end = tl.load(row_ptr + lh * (n_qb + 1) + qb + 1)
    for idx in range(start, end):
        kb = tl.load(col_idx + idx)
        kind = tl.load(kind_ptr + idx)
        pid = tl.load(pid_ptr + idx)
        offs_n = kb * BLOCK_K + offs_c
        k = _tile(K, kv_base, offs_n, offs_d, Lk, D)
        v = _tile(V, kv_base, offs_n, offs_d, Lk, D)
        s = _scores(q, k, qk_scale, kind, pid, kb, offs_r, offs_c, offs_n, masks_ptr, Lk,
                    BLOCK_Q, BLOCK_K, MASK_W, UPCAST)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, UPCAST)
        m_i = m_new

    has = l_i > 0.0
    l_safe = tl.where(has, l_i, 1.0)
    out = acc / l_safe[:, None]
    out = tl.where(has[:, None], out, 0.0)
    lse = tl.where(has, (m_i + tl.math.log2(l_safe)) * 0.6931471805599453, float("-inf"))
    tl.store(O + q_base + offs_m[:, None] * D + offs_d[None, :], out.to(O.dtype.element_ty),
             mask=m_ok[:, None] & d_ok[None, :])
    tl.store(LSE + bh.to(tl.int64) * Lq + offs_m, lse, mask=m_ok)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    row_ptr, col_idx, kind_ptr, pid_ptr, masks_ptr,
    qk_scale, scale,
    Hq, G, LAYOUT_HEAD_MULT, n_qb, Lq, Lk, D,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, MASK_W: tl.constexpr,
    UPCAST: tl.constexpr,
):
    qb = tl.program_id(0)
    bh = tl.program_id(1)
    lh, q_base, kv_base = _bh_coords(bh, Hq, G, LAYOUT_HEAD_MULT, Lq, Lk, D)

    offs_r = tl.arange(0, BLOCK_Q)
    offs_c = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, BLOCK_D)
    offs_m = qb * BLOCK_Q + offs_r
    qd_mask = (offs_m < Lq)[:, None] & (offs_d < D)[None, :]
    q = _tile(Q, q_base, offs_m, offs_d, Lq, D)
    do = _tile(DO, q_base, offs_m, offs_d, Lq, D)
    lse2, delta = _row_stats(LSE, DELTA, bh, Lq, offs_m)
    dq = tl.zeros([BLOCK_Q, BLOCK_D], tl.float32)

    start = tl.load(row_ptr + lh * (n_qb + 1) + qb)
    end = tl.load(row_ptr + lh * (n_qb + 1) + qb + 1)
    for idx in range(start, end):
        kb = tl.load(col_idx + idx)
        kind = tl.load(kind_ptr + idx)
        pid = tl.load(pid_ptr + idx)
        offs_n = kb * BLOCK_K + offs_c
        k = _tile(K, kv_base, offs_n, offs_d, Lk, D)
        v = _tile(V, kv_base, offs_n, offs_d, Lk, D)
        s = _scores(q, k, qk_scale, kind, pid, kb, offs_r, offs_c, offs_n, masks_ptr, Lk,
                    BLOCK_Q, BLOCK_K, MASK_W, UPCAST)
        p = tl.math.exp2(s - lse2[:, None])
        dp = _dot(do, tl.trans(v), UPCAST)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, UPCAST)

    dq = dq * scale
    tl.store(DQ + q_base + offs_m[:, None] * D + offs_d[None, :], dq.to(DQ.dtype.element_ty), mask=qd_mask)


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    col_ptr, row_idx, perm_ptr, kind_ptr, pid_ptr, masks_ptr,
    qk_scale, scale,
    Hq, G, LAYOUT_HEAD_MULT, n_kb, Lq, Lk, D,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, MASK_W: tl.constexpr,
    UPCAST: tl.constexpr,
):
    kb = tl.program_id(0)
    bkvh = tl.program_id(1)
    Hkv = Hq // G
    b = bkvh // Hkv
    kvh = bkvh % Hkv
    kv_base = bkvh.to(tl.int64) * Lk * D

    offs_r = tl.arange(0, BLOCK_Q)
    offs_c = tl.arange(0, BLOCK_K)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n = kb * BLOCK_K + offs_c
    kv_mask = (offs_n < Lk)[:, None] & (offs_d < D)[None, :]
    k = _tile(K, kv_base, offs_n, offs_d, Lk, D)
    v = _tile(V, kv_base, offs_n, offs_d, Lk, D)
    dk = tl.zeros([BLOCK_K, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_K, BLOCK_D], tl.float32)

    for g in range(0, G):  # GQA: sum over the query heads sharing this kv head
        h = kvh * G + g
        lh = h * LAYOUT_HEAD_MULT
        bh = b * Hq + h
        q_base = bh.to(tl.int64) * Lq * D
        start = tl.load(col_ptr + lh * (n_kb + 1) + kb)
        end = tl.load(col_ptr + lh * (n_kb + 1) + kb + 1)
        for idx in range(start, end):
            qb = tl.load(row_idx + idx)
            bsr = tl.load(perm_ptr + idx)
            kind = tl.load(kind_ptr + bsr)
            pid = tl.load(pid_ptr + bsr)
            offs_m = qb * BLOCK_Q + offs_r
            q = _tile(Q, q_base, offs_m, offs_d, Lq, D)
            do = _tile(DO, q_base, offs_m, offs_d, Lq, D)
            lse2, delta = _row_stats(LSE, DELTA, bh, Lq, offs_m)
            s = _scores(q, k, qk_scale, kind, pid, kb, offs_r, offs_c, offs_n, masks_ptr, Lk,
                        BLOCK_Q, BLOCK_K, MASK_W, UPCAST)
            p = tl.math.exp2(s - lse2[:, None])
            dv += _dot(tl.trans(p.to(do.dtype)), do, UPCAST)
            dp = _dot(do, tl.trans(v), UPCAST)
            ds = p * (dp - delta[:, None])
            dk += _dot(tl.trans(ds.to(q.dtype)), q, UPCAST)

    dk = dk * scale
    tl.store(DK + kv_base + offs_n[:, None] * D + offs_d[None, :], dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + kv_base + offs_n[:, None] * D + offs_d[None, :], dv.to(DV.dtype.element_ty), mask=kv_mask)
