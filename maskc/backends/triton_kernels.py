"""Triton kernels of maskc's block-sparse flash attention (forward, dQ, dK/dV, delta).

The kernel tile ``(BLOCK_M, BLOCK_N)`` is decoupled from the layout block ``(BQ, BK)``:
a layout block is processed as ``BQ // BLOCK_M`` query sub-tiles (one program each) and
``BK // BLOCK_N`` key sub-tiles (iterations of one flat loop). The layout arrives
re-ordered by :mod:`maskc.backends.triton_backend` so that every BSR row (CSC column)
lists its FULL blocks first and its PARTIAL blocks after ``mid``:

* ``row_ptr [S * (n_qb + 1)]``, ``row_mid [S * n_qb]``, ``col_idx``, ``part_id`` — the
  rows walked by the forward and the dQ kernel (S stored slices);
* ``col_ptr``, ``col_mid``, ``row_idx``, ``part_id`` (CSC order) — walked by dK/dV;
* ``masks int32 [U, BQ, mask_w]`` — packed partial bitmasks, bit ``c & 31`` of word
  ``c >> 5`` of row r says whether local key c is allowed. FULL blocks in a ragged key
  tail are listed as PARTIAL with a mask of their valid columns.

FULL blocks run without any mask work (no bounds checks either: they lie inside the
sequences). Scores are kept in the log2 domain (``qk * scale * log2(e)``); the stored
lse is the natural log.

Exact non-finite semantics: masked entries have p = 0 exactly, but ``0 * inf`` is NaN,
so a non-finite value at a key a row may not attend would leak into that row through
the tile's matmul. Each program of the plain pass flags (int8, one per output row) the
rows whose result holds a NaN or an infinity; a second launch of the same kernel with
``EXACT`` (a smaller tile: its matmuls carry extra accumulators) recomputes only
programs with a flagged row, splitting non-finite operands out of the matmuls
(:func:`_exact_dot`), and stores only the flagged rows. With finite inputs nothing is
flagged, and the second launch's programs load their flags and exit.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E: float = 1.4426950408889634
LN2: float = 0.6931471805599453
# the same as kernel constants
INF = tl.constexpr(float("inf"))
LOG2E_K = tl.constexpr(LOG2E)
LN2_K = tl.constexpr(LN2)

#: runtime integers never specialised (one compiled variant per tile config).
NO_SPEC = ["Hq", "G", "slice_b", "slice_h", "n_qb", "n_kb", "Lq", "Lk", "D", "BQ", "BK", "mask_w"]


@triton.jit
def _mm(a, b, acc, INTERPRET: tl.constexpr):
    """``acc + a @ b`` in fp32 (operands upcast under the interpreter: its bf16 dot is wrong)."""
    if INTERPRET:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    else:
        return tl.dot(a, b, acc)


@triton.jit
def _exact_dot(a, b, acc, SIGNED: tl.constexpr, INTERPRET: tl.constexpr):
    """``acc + a @ b`` where entries of ``a`` equal to 0 never meet non-finite ``b`` (IEEE otherwise).

    The finite part goes through one matmul; +inf / -inf / NaN entries of b are counted by
    a second matmul of 0/1 indicators against codes 1 / 256 / 65536 (exact in bf16 and
    fp32 accumulation: a tile reduction dimension is at most 128 < 256), per sign of a.
    """
    bf = b.to(tl.float32)  # classify in fp32 (the interpreter keeps 16-bit floats as raw bits)
    af = a.to(tl.float32)
    fin = (bf == bf) & (tl.abs(bf) != INF)
    acc = _mm(a, tl.where(fin, bf, 0.0).to(b.dtype), acc, INTERPRET)
    code = tl.where(bf == INF, 1.0, tl.where(bf == -INF, 256.0, tl.where(bf != bf, 65536.0, 0.0))).to(tl.bfloat16)
    c = _mm(tl.where(af > 0, 1.0, 0.0).to(tl.bfloat16), code, None, INTERPRET).to(tl.int32)
    pos = (c & 255) > 0
    neg = ((c >> 8) & 255) > 0
    nan = (c >> 16) > 0
    if SIGNED:
        cn = _mm(tl.where(af < 0, 1.0, 0.0).to(tl.bfloat16), code, None, INTERPRET).to(tl.int32)
        pos = pos | (((cn >> 8) & 255) > 0)
        neg = neg | ((cn & 255) > 0)
        nan = nan | ((cn >> 16) > 0)
    return acc + tl.where(pos, INF, 0.0) + tl.where(neg, -INF, 0.0) + tl.where(nan, float("nan"), 0.0)


@triton.jit
def _acc_dot(a, b, acc, EXACT: tl.constexpr, SIGNED: tl.constexpr, INTERPRET: tl.constexpr):
    if EXACT:
        return _exact_dot(a, b, acc, SIGNED, INTERPRET)
    else:
        return _mm(a, b, acc, INTERPRET)


@triton.jit
def _nonfinite_rows(x):
    """Per row of ``x [R, C]``: whether it holds a NaN or an infinity."""
    return tl.max(((x != x) | (tl.abs(x) == INF)).to(tl.int32), 1) > 0


@triton.jit
def _load(ptr, offs_r, n_valid, stride, offs_d, D, ROW_MASK: tl.constexpr, EVEN_D: tl.constexpr):
    """Rows ``offs_r`` (``[R, BLOCK_D]``) of a matrix with row stride ``stride``; zeros past n_valid / D."""
    p = ptr + offs_r[:, None] * stride + offs_d[None, :]
    if ROW_MASK:
        m = (offs_r < n_valid)[:, None]
        if not EVEN_D:
            m = m & (offs_d < D)[None, :]
        x = tl.load(p, mask=m, other=0.0)
    else:
        if EVEN_D:
            x = tl.load(p)
        else:
            x = tl.load(p, mask=(offs_d < D)[None, :], other=0.0)
    return x


@triton.jit
def _load_t(ptr, offs_r, n_valid, stride, offs_d, D, EVEN_D: tl.constexpr):
    """The transposed tile ``[BLOCK_D, R]`` of rows ``offs_r`` (zeros past n_valid / D)."""
    p = ptr + offs_r[None, :] * stride + offs_d[:, None]
    m = (offs_r < n_valid)[None, :]
    if not EVEN_D:
        m = m & (offs_d < D)[:, None]
    return tl.load(p, mask=m, other=0.0)


@triton.jit
def _allowed(masks, pid, BQ, mask_w, r_local, c0, BLOCK_N: tl.constexpr, TRANS: tl.constexpr):
    """Allowed bits of local rows ``r_local`` x local keys ``c0 + arange(BLOCK_N)`` of mask ``pid``.

    Loads one int32 word per row and 32 keys (a ``[R]`` vector, nothing tile-sized) and
    expands the bits where they are used. ``[R, BLOCK_N]``, or ``[BLOCK_N, R]`` if TRANS.
    """
    NW: tl.constexpr = (BLOCK_N + 31) // 32
    rows = masks + pid.to(tl.int64) * BQ * mask_w + r_local * mask_w + (c0 >> 5)
    cols = tl.arange(0, BLOCK_N)
    shift = (c0 + cols) & 31
    w = tl.load(rows)
    if TRANS:
        sel = w[None, :]
        for j in tl.static_range(1, NW):
            sel = tl.where(((cols >> 5) == j)[:, None], tl.load(rows + j)[None, :], sel)
        ok = ((sel >> shift[:, None]) & 1) != 0
    else:
        sel = w[:, None]
        for j in tl.static_range(1, NW):
            sel = tl.where(((cols >> 5) == j)[None, :], tl.load(rows + j)[:, None], sel)
        ok = ((sel >> shift[None, :]) & 1) != 0
    return ok


@triton.jit
def _key_scores(q, Kp, Vp, col_idx, part_id, masks, t, KS, qk_scale, skn, svn, Lk, D, BQ, BK, mask_w, r_local,
                offs_d, PARTIAL: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_D: tl.constexpr,
                INTERPRET: tl.constexpr):
    """Key sub-tile ``t`` of a BSR row walk (entry ``t // KS``, sub-tile ``t % KS``) against query rows q.

    Returns its K and V tiles, the log2-domain scores (-inf where not allowed) and the
    allowed bits (PARTIAL; else a placeholder the callers never read).
    """
    idx = t // KS
    c0 = (t - idx * KS) * BLOCK_N
    n0 = tl.load(col_idx + idx) * BK + c0
    offs_n = tl.arange(0, BLOCK_N)
    k = _load(Kp + n0.to(tl.int64) * skn, offs_n, Lk - n0, skn, offs_d, D, PARTIAL, EVEN_D)
    v = _load(Vp + n0.to(tl.int64) * svn, offs_n, Lk - n0, svn, offs_d, D, PARTIAL, EVEN_D)
    s = _mm(q, tl.trans(k), None, INTERPRET) * qk_scale
    ok = s == s
    if PARTIAL:
        ok = _allowed(masks, tl.load(part_id + idx), BQ, mask_w, r_local, c0, BLOCK_N, False)
        s = tl.where(ok, s, -INF)
    return k, v, s, ok


@triton.jit
def _query_tile(BQ, BLOCK_M: tl.constexpr):
    """(query block, first local row) of this program's query sub-tile (grid axis 0)."""
    tile = tl.program_id(0)
    QS = BQ // BLOCK_M
    qb = tile // QS
    return qb, (tile - qb * QS) * BLOCK_M


@triton.jit
def _row_walk(K, V, row_ptr, row_mid, skb, skh, svb, svh, G, slice_b, slice_h, n_qb, b, h, qb, BK,
              BLOCK_N: tl.constexpr):
    """K / V bases of query head h's kv head, and the BSR row's walk: (Kp, Vp, first, mid, end, KS) in sub-tiles."""
    kvh = h // G
    Kp = K + b.to(tl.int64) * skb + kvh.to(tl.int64) * skh
    Vp = V + b.to(tl.int64) * svb + kvh.to(tl.int64) * svh
    sl = b * slice_b + h * slice_h
    KS = BK // BLOCK_N
    start = tl.load(row_ptr + sl * (n_qb + 1) + qb)
    end = tl.load(row_ptr + sl * (n_qb + 1) + qb + 1)
    mid = tl.load(row_mid + sl * n_qb + qb)
    return Kp, Vp, start * KS, mid * KS, end * KS, KS


@triton.jit
def _flagged(flags, rows_ok):
    """EXACT launches: (rows to store: the flagged ones, whether this program has any)."""
    flag = tl.load(flags, mask=rows_ok, other=0) != 0
    return rows_ok & flag, tl.max(flag.to(tl.int32), 0) > 0


# --------------------------------------------------------------------------- forward
@triton.jit
def _fwd_tiles(acc, m_i, l_i, q, Kp, Vp, col_idx, part_id, masks, t0, t1, KS, qk_scale,
               skn, svn, Lk, D, BQ, BK, mask_w, r_local, offs_d,
               PARTIAL: tl.constexpr, EXACT: tl.constexpr, BLOCK_N: tl.constexpr,
               EVEN_D: tl.constexpr, INTERPRET: tl.constexpr):
    """Online softmax over key sub-tiles ``t0 .. t1``."""
    for t in range(t0, t1):
        k, v, s, ok = _key_scores(q, Kp, Vp, col_idx, part_id, masks, t, KS, qk_scale, skn, svn, Lk, D, BQ, BK,
                                  mask_w, r_local, offs_d, PARTIAL, BLOCK_N, EVEN_D, INTERPRET)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == -INF, 0.0, m_new)
        p = tl.math.exp2(s - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = _acc_dot(p.to(v.dtype), v, acc * alpha[:, None], EXACT, False, INTERPRET)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _fwd_program(Q, K, V, O, LSE, FLAGS, row_ptr, row_mid, col_idx, part_id, masks, qk_scale,
                 sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sob, soh, som,
                 Hq, G, slice_b, slice_h, n_qb, Lq, Lk, D, BQ, BK, mask_w, b, h, qb, r0, store_ok,
                 EXACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                 EVEN_D: tl.constexpr, INTERPRET: tl.constexpr):
    """One query sub-tile: both walks, then out, lse (rows where ``store_ok``) and, unless EXACT, the flags."""
    m0 = qb * BQ + r0
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load(Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh + m0.to(tl.int64) * sqm,
              offs_m, Lq - m0, sqm, offs_d, D, True, EVEN_D)
    Kp, Vp, t0, t1, t2, KS = _row_walk(K, V, row_ptr, row_mid, skb, skh, svb, svh, G, slice_b, slice_h, n_qb,
                                       b, h, qb, BK, BLOCK_N)
    r_local = r0 + offs_m

    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    m_i = tl.full([BLOCK_M], -INF, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc, m_i, l_i = _fwd_tiles(acc, m_i, l_i, q, Kp, Vp, col_idx, part_id, masks, t0, t1, KS,
                               qk_scale, skn, svn, Lk, D, BQ, BK, mask_w, r_local, offs_d,
                               False, EXACT, BLOCK_N, EVEN_D, INTERPRET)
    acc, m_i, l_i = _fwd_tiles(acc, m_i, l_i, q, Kp, Vp, col_idx, part_id, masks, t1, t2, KS,
                               qk_scale, skn, svn, Lk, D, BQ, BK, mask_w, r_local, offs_d,
                               True, EXACT, BLOCK_N, EVEN_D, INTERPRET)
    empty = l_i == 0.0  # no allowed key (a NaN row is not empty: NaN stays NaN)
    l_safe = tl.where(empty, 1.0, l_i)
    out = tl.where(empty[:, None], 0.0, acc / l_safe[:, None])
    lse = tl.where(empty, -INF, (m_i + tl.math.log2(l_safe)) * LN2_K)
    o_ptr = O + b.to(tl.int64) * sob + h.to(tl.int64) * soh + m0.to(tl.int64) * som
    o_mask = store_ok[:, None]
    if not EVEN_D:
        o_mask = o_mask & (offs_d < D)[None, :]
    tl.store(o_ptr + offs_m[:, None] * som + offs_d[None, :], out.to(O.dtype.element_ty), mask=o_mask)
    stats = (b * Hq + h).to(tl.int64) * Lq + m0 + offs_m
    tl.store(LSE + stats, lse, mask=store_ok)
    if not EXACT:
        tl.store(FLAGS + stats, _nonfinite_rows(acc).to(tl.int8), mask=store_ok)


@triton.jit(do_not_specialize=NO_SPEC)
def _fwd_kernel(
    Q, K, V, O, LSE, FLAGS,
    row_ptr, row_mid, col_idx, part_id, masks,
    qk_scale,
    sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sob, soh, som,
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
        _fwd_program(Q, K, V, O, LSE, FLAGS, row_ptr, row_mid, col_idx, part_id, masks, qk_scale,
                     sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sob, soh, som,
                     Hq, G, slice_b, slice_h, n_qb, Lq, Lk, D, BQ, BK, mask_w, b, h, qb, r0, store_ok,
                     EXACT, BLOCK_M, BLOCK_N, BLOCK_D, EVEN_D, INTERPRET)


@triton.jit(do_not_specialize=["Hq", "Lq", "D"])
def _delta_kernel(O, DO, LSE, DLSE, DELTA, sob, soh, som, sdb, sdh, sdm, Hq, Lq, D,
                  HAS_DLSE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, EVEN_D: tl.constexpr):
    """``delta = rowsum(dO * O) - dlse`` in fp32 (dlse ignored on rows whose lse is not finite)."""
    m0 = tl.program_id(0) * BLOCK_M
    h = tl.program_id(1)
    b = tl.program_id(2)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load(O + b.to(tl.int64) * sob + h.to(tl.int64) * soh + m0.to(tl.int64) * som,
              offs_m, Lq - m0, som, offs_d, D, True, EVEN_D).to(tl.float32)
    do = _load(DO + b.to(tl.int64) * sdb + h.to(tl.int64) * sdh + m0.to(tl.int64) * sdm,
               offs_m, Lq - m0, sdm, offs_d, D, True, EVEN_D).to(tl.float32)
    delta = tl.sum(o * do, 1)
    row = (b * Hq + h).to(tl.int64) * Lq + m0 + offs_m
    ok = offs_m < Lq - m0
    if HAS_DLSE:
        lse = tl.load(LSE + row, mask=ok, other=0.0)
        dl = tl.load(DLSE + row, mask=ok, other=0.0)
        delta = delta - tl.where((lse == lse) & (tl.abs(lse) != INF), dl, 0.0)
    tl.store(DELTA + row, delta, mask=ok)
