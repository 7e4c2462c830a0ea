"""Triton backward kernels of maskc's block-sparse flash attention: dQ and dK/dV, no atomics.

Both recompute ``P = exp2(S - lse * log2 e)`` from the forward's saved lse (rows without
keys read lse = +inf, so P = 0) and use ``delta = rowsum(dO * O) - dlse`` from
:func:`maskc.backends.triton_kernels._delta_kernel`, so a gradient on lse flows too.

* dQ — one program per (query sub-tile, head, batch element) walks its BSR row (FULL
  blocks, then PARTIAL ones) in key sub-tiles: ``dP = dO V^T``, ``dS = P * (dP - delta)``,
  ``dQ += dS K``.
* dK/dV — one program per (key sub-tile, kv head, batch element) keeps its K and V tiles
  and both fp32 accumulators in place while it walks the CSC column of every query head
  of its GQA group, in the transposed domain (``S^T = K Q^T``, ``dV += P^T dO``,
  ``dK += dS^T Q``), so nothing is re-loaded per head and nothing is summed afterwards.

Both check their result once and recompute in EXACT mode when it holds a non-finite
value (see :mod:`maskc.backends.triton_kernels`).
"""

from __future__ import annotations

import triton
import triton.language as tl

from maskc.backends.triton_kernels import (
    INF, LOG2E_K, NO_SPEC, _acc_dot, _allowed, _flagged, _key_scores, _row_walk, _load, _load_t, _mm, _nonfinite_rows,
    _query_tile,
)


@triton.jit
def _dq_tiles(dq, q, do, lse2, delta, Kp, Vp, col_idx, part_id, masks, t0, t1, KS, qk_scale,
              skn, svn, Lk, D, BQ, BK, mask_w, r_local, offs_d,
              PARTIAL: tl.constexpr, EXACT: tl.constexpr, BLOCK_N: tl.constexpr,
              EVEN_D: tl.constexpr, INTERPRET: tl.constexpr):
    for t in range(t0, t1):
        k, v, s, ok = _key_scores(q, Kp, Vp, col_idx, part_id, masks, t, KS, qk_scale, skn, svn, Lk, D, BQ, BK,
                                  mask_w, r_local, offs_d, PARTIAL, BLOCK_N, EVEN_D, INTERPRET)
        p = tl.math.exp2(s - lse2[:, None])
        dp = _mm(do, tl.trans(v), None, INTERPRET)
        ds = p * (dp - delta[:, None])
        if EXACT and PARTIAL:
            ds = tl.where(ok, ds, 0.0)
        dq = _acc_dot(ds.to(k.dtype), k, dq, EXACT, True, INTERPRET)
    return dq


@triton.jit
def _dq_program(Q, K, V, DO, LSE, DELTA, DQ, FLAGS, row_ptr, row_mid, col_idx, part_id, masks, qk_scale, scale,
                sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdb, sdh, sdm, sgb, sgh, sgm,
                Hq, G, slice_b, slice_h, n_qb, Lq, Lk, D, BQ, BK, mask_w, b, h, qb, r0, store_ok,
                EXACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                EVEN_D: tl.constexpr, INTERPRET: tl.constexpr):
    m0 = qb * BQ + r0
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < Lq - m0
    q = _load(Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh + m0.to(tl.int64) * sqm,
              offs_m, Lq - m0, sqm, offs_d, D, True, EVEN_D)
    do = _load(DO + b.to(tl.int64) * sdb + h.to(tl.int64) * sdh + m0.to(tl.int64) * sdm,
               offs_m, Lq - m0, sdm, offs_d, D, True, EVEN_D)
    stats = (b * Hq + h).to(tl.int64) * Lq + m0 + offs_m
    lse = tl.load(LSE + stats, mask=row_ok, other=INF)
    lse2 = tl.where(lse == -INF, INF, lse * LOG2E_K)
    delta = tl.load(DELTA + stats, mask=row_ok, other=0.0)
    Kp, Vp, t0, t1, t2, KS = _row_walk(K, V, row_ptr, row_mid, skb, skh, svb, svh, G, slice_b, slice_h, n_qb,
                                       b, h, qb, BK, BLOCK_N)
    r_local = r0 + offs_m

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    dq = _dq_tiles(dq, q, do, lse2, delta, Kp, Vp, col_idx, part_id, masks, t0, t1, KS, qk_scale,
                   skn, svn, Lk, D, BQ, BK, mask_w, r_local, offs_d, False, EXACT, BLOCK_N, EVEN_D, INTERPRET)
    dq = _dq_tiles(dq, q, do, lse2, delta, Kp, Vp, col_idx, part_id, masks, t1, t2, KS, qk_scale,
                   skn, svn, Lk, D, BQ, BK, mask_w, r_local, offs_d, True, EXACT, BLOCK_N, EVEN_D, INTERPRET)
    o_mask = store_ok[:, None]
    if not EVEN_D:
        o_mask = o_mask & (offs_d < D)[None, :]
    g_ptr = DQ + b.to(tl.int64) * sgb + h.to(tl.int64) * sgh + m0.to(tl.int64) * sgm
    tl.store(g_ptr + offs_m[:, None] * sgm + offs_d[None, :], (dq * scale).to(DQ.dtype.element_ty), mask=o_mask)
    if not EXACT:
        tl.store(FLAGS + stats, _nonfinite_rows(dq).to(tl.int8), mask=store_ok)


@triton.jit(do_not_specialize=NO_SPEC)
def _dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, FLAGS,
    row_ptr, row_mid, col_idx, part_id, masks,
    qk_scale, scale,
    sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdb, sdh, sdm, sgb, sgh, sgm,
    Hq, G, slice_b, slice_h, n_qb, Lq, Lk, D, BQ, BK, mask_w,
    EXACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    EVEN_D: tl.constexpr, INTERPRET: tl.constexpr,
):
    """Grid (query sub-tiles, Hq, B). EXACT: redo only the sub-tiles whose rows were flagged."""
    h = tl.program_id(1)
    b = tl.program_id(2)
    qb, r0 = _query_tile(BQ, BLOCK_M)
    rows = qb * BQ + r0 + tl.arange(0, BLOCK_M)
    store_ok = rows < Lq
    go = True
    if EXACT:
        store_ok, go = _flagged(FLAGS + (b * Hq + h).to(tl.int64) * Lq + rows, store_ok)
    if go:
        _dq_program(Q, K, V, DO, LSE, DELTA, DQ, FLAGS, row_ptr, row_mid, col_idx, part_id, masks, qk_scale,
                    scale, sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdb, sdh, sdm, sgb, sgh, sgm,
                    Hq, G, slice_b, slice_h, n_qb, Lq, Lk, D, BQ, BK, mask_w, b, h, qb, r0, store_ok,
                    EXACT, BLOCK_M, BLOCK_N, BLOCK_D, EVEN_D, INTERPRET)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, Qp, DOp, LSEp, DELTAp, row_idx, part_id, masks, t0, t1, QS, qk_scale,
                sqm, sdm, Lq, D, BQ, mask_w, c0, offs_d,
                PARTIAL: tl.constexpr, EXACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                EVEN_D: tl.constexpr, INTERPRET: tl.constexpr):
    offs_m = tl.arange(0, BLOCK_M)
    for t in range(t0, t1):
        idx = t // QS
        r0 = (t - idx * QS) * BLOCK_M
        m0 = tl.load(row_idx + idx) * BQ + r0
        qT = _load_t(Qp + m0.to(tl.int64) * sqm, offs_m, Lq - m0, sqm, offs_d, D, EVEN_D)
        do = _load(DOp + m0.to(tl.int64) * sdm, offs_m, Lq - m0, sdm, offs_d, D, True, EVEN_D)
        row_ok = offs_m < Lq - m0
        lse = tl.load(LSEp + m0 + offs_m, mask=row_ok, other=INF)
        lse2 = tl.where(lse == -INF, INF, lse * LOG2E_K)
        delta = tl.load(DELTAp + m0 + offs_m, mask=row_ok, other=0.0)
        sT = _mm(k, qT, None, INTERPRET) * qk_scale
        if PARTIAL:
            okT = _allowed(masks, tl.load(part_id + idx), BQ, mask_w, r0 + offs_m, c0, BLOCK_N, True)
            sT = tl.where(okT, sT, -INF)
        pT = tl.math.exp2(sT - lse2[None, :])
        dv = _acc_dot(pT.to(do.dtype), do, dv, EXACT, False, INTERPRET)
        dpT = _mm(v, tl.trans(do), None, INTERPRET)
        dsT = pT * (dpT - delta[None, :])
        if EXACT and PARTIAL:
            dsT = tl.where(okT, dsT, 0.0)
        dk = _acc_dot(dsT.to(qT.dtype), tl.trans(qT), dk, EXACT, True, INTERPRET)
    return dk, dv


@triton.jit
def _dkdv_heads(dk, dv, k, v, Q, DO, LSE, DELTA, col_ptr, col_mid, row_idx, part_id, masks, qk_scale,
                sqb, sqh, sqm, sdb, sdh, sdm, b, kvh, kb, c0, offs_d,
                Hq, G, slice_b, slice_h, n_kb, Lq, D, BQ, mask_w,
                EXACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                EVEN_D: tl.constexpr, INTERPRET: tl.constexpr):
    """Accumulate over the G query heads of kv head ``kvh`` (GQA) and their CSC columns."""
    QS = BQ // BLOCK_M
    for g in range(0, G):
        h = kvh * G + g
        sl = b * slice_b + h * slice_h
        Qp = Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh
        DOp = DO + b.to(tl.int64) * sdb + h.to(tl.int64) * sdh
        stats = (b * Hq + h).to(tl.int64) * Lq
        start = tl.load(col_ptr + sl * (n_kb + 1) + kb)
        end = tl.load(col_ptr + sl * (n_kb + 1) + kb + 1)
        mid = tl.load(col_mid + sl * n_kb + kb)
        dk, dv = _dkdv_tiles(dk, dv, k, v, Qp, DOp, LSE + stats, DELTA + stats, row_idx, part_id, masks,
                             start * QS, mid * QS, QS, qk_scale, sqm, sdm, Lq, D, BQ, mask_w, c0, offs_d,
                             False, EXACT, BLOCK_M, BLOCK_N, EVEN_D, INTERPRET)
        dk, dv = _dkdv_tiles(dk, dv, k, v, Qp, DOp, LSE + stats, DELTA + stats, row_idx, part_id, masks,
                             mid * QS, end * QS, QS, qk_scale, sqm, sdm, Lq, D, BQ, mask_w, c0, offs_d,
                             True, EXACT, BLOCK_M, BLOCK_N, EVEN_D, INTERPRET)
    return dk, dv


@triton.jit(do_not_specialize=NO_SPEC)
def _dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, FLAGS,
    col_ptr, col_mid, row_idx, part_id, masks,
    qk_scale, scale,
    sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdb, sdh, sdm,
    skgb, skgh, skgn, svgb, svgh, svgn,
    Hq, G, slice_b, slice_h, n_kb, Lq, Lk, D, BQ, BK, mask_w,
    EXACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    EVEN_D: tl.constexpr, INTERPRET: tl.constexpr,
):
    """Grid (key sub-tiles, Hkv, B); FLAGS per key row. EXACT: redo only flagged sub-tiles."""
    tile = tl.program_id(0)
    kvh = tl.program_id(1)
    b = tl.program_id(2)
    KS = BK // BLOCK_N
    kb = tile // KS
    c0 = (tile - kb * KS) * BLOCK_N
    n0 = kb * BK + c0
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    store_ok = offs_n < Lk - n0
    flags = FLAGS + (b * (Hq // G) + kvh).to(tl.int64) * Lk + n0 + offs_n
    go = True
    if EXACT:
        store_ok, go = _flagged(flags, store_ok)
    if go:
        k_off = b.to(tl.int64) * skb + kvh.to(tl.int64) * skh + n0.to(tl.int64) * skn
        v_off = b.to(tl.int64) * svb + kvh.to(tl.int64) * svh + n0.to(tl.int64) * svn
        k = _load(K + k_off, offs_n, Lk - n0, skn, offs_d, D, True, EVEN_D)
        v = _load(V + v_off, offs_n, Lk - n0, svn, offs_d, D, True, EVEN_D)
        dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dk, dv = _dkdv_heads(dk, dv, k, v, Q, DO, LSE, DELTA, col_ptr, col_mid, row_idx, part_id, masks,
                             qk_scale, sqb, sqh, sqm, sdb, sdh, sdm, b, kvh, kb, c0, offs_d,
                             Hq, G, slice_b, slice_h, n_kb, Lq, D, BQ, mask_w,
                             EXACT, BLOCK_M, BLOCK_N, EVEN_D, INTERPRET)
        o_mask = store_ok[:, None]
        if not EVEN_D:
            o_mask = o_mask & (offs_d < D)[None, :]
        dk_ptr = DK + b.to(tl.int64) * skgb + kvh.to(tl.int64) * skgh + n0.to(tl.int64) * skgn
        dv_ptr = DV + b.to(tl.int64) * svgb + kvh.to(tl.int64) * svgh + n0.to(tl.int64) * svgn
        tl.store(dk_ptr + offs_n[:, None] * skgn + offs_d[None, :], (dk * scale).to(DK.dtype.element_ty),
                 mask=o_mask)
        tl.store(dv_ptr + offs_n[:, None] * svgn + offs_d[None, :], dv.to(DV.dtype.element_ty), mask=o_mask)
        if not EXACT:
            tl.store(flags, (_nonfinite_rows(dk) | _nonfinite_rows(dv)).to(tl.int8), mask=store_ok)
