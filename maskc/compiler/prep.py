"""numba helpers of :mod:`maskc.compiler.tables`: per-row run lists of segment and
block-level leaves.

A *run list* of a block row is a CSR ``(ptr, lo, hi, cls)``: the row's runs are
``lo[ptr[qb]:ptr[qb + 1]]`` .. ``hi[..]``, sorted, disjoint, each a stretch of key blocks
``[lo, hi)`` of class ``cls`` (PARTIAL or FULL); the gaps are EMPTY.
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.compiler.codes import FULL, PARTIAL, T_D, T_R, T_S


@njit(cache=True, inline="always")
def _append(lo, hi, cls, start, n, a, b, c):
    """Append run [a, b) of class c at n, merged into the previous run (from ``start`` on)
    when they touch."""
    if n > start and hi[n - 1] == a and cls[n - 1] == c:
        hi[n - 1] = b
        return n
    lo[n] = a
    hi[n] = b
    cls[n] = c
    return n + 1


@njit(cache=True)
def segment_row_runs(q_pure, q_ptr, q_lab, lab_ptr, lab_lo, lab_hi, lab_cls):
    """Run list of a segment leaf per block row.

    A query block with one label u gets u's runs (FULL on key blocks holding u only);
    one with several labels gets the union of their runs, all PARTIAL.
    """
    n_qb = q_ptr.shape[0] - 1
    bound = 0
    widest = 0
    for qb in range(n_qb):
        m = 0
        for e in range(q_ptr[qb], q_ptr[qb + 1]):
            u = q_lab[e]
            m += lab_ptr[u + 1] - lab_ptr[u]
        bound += m
        widest = max(widest, m)
    ptr = np.zeros(n_qb + 1, dtype=np.int64)
    lo = np.empty(bound, dtype=np.int64)
    hi = np.empty(bound, dtype=np.int64)
    cls = np.empty(bound, dtype=np.int8)
    s_lo = np.empty(widest, dtype=np.int64)
    s_hi = np.empty(widest, dtype=np.int64)
    n = 0
    for qb in range(n_qb):
        start = n
        u = q_pure[qb]
        if u >= 0:
            for e in range(lab_ptr[u], lab_ptr[u + 1]):
                lo[n] = lab_lo[e]
                hi[n] = lab_hi[e]
                cls[n] = lab_cls[e]
                n += 1
        else:
            m = 0
            for e in range(q_ptr[qb], q_ptr[qb + 1]):
                v = q_lab[e]
                for r in range(lab_ptr[v], lab_ptr[v + 1]):
                    s_lo[m] = lab_lo[r]
                    s_hi[m] = lab_hi[r]
                    m += 1
            order = np.argsort(s_lo[:m])
            for t in range(m):
                a = s_lo[order[t]]
                b = s_hi[order[t]]
                if n > start and a <= hi[n - 1]:
                    hi[n - 1] = max(hi[n - 1], b)
                else:
                    lo[n] = a
                    hi[n] = b
                    cls[n] = PARTIAL
                    n += 1
        ptr[qb + 1] = n
    return ptr, lo[:n], hi[:n], cls[:n]  # views: the unused tail was never touched


@njit(cache=True, _nrt=False)
def _coarse_row(r, row_ptr, col_idx, kind, partial_id, masks, biq, bik, ck, lo, hi, n, write):
    """Runs of allowed columns of coarse row r of a one-slice layout, written at n (when
    ``write``) or only counted; returns the new n. Zero mask bytes are skipped whole."""
    ib = r // biq
    a = r % biq
    end = -1  # one past the last allowed column seen
    for e in range(row_ptr[ib], row_ptr[ib + 1]):
        base = np.int64(col_idx[e]) * bik
        w = min(bik, ck - base)
        if kind[e] == FULL:
            if end == base:
                if write:
                    hi[n - 1] = base + w
            else:
                if write:
                    lo[n] = base
                    hi[n] = base + w
                n += 1
            end = base + w
            continue
        bits = masks[partial_id[e], a]
        for byte in range((w + 7) >> 3):
            v = bits[byte]
            if v == 0:
                continue
            for c in range(byte << 3, min((byte + 1) << 3, w)):
                if (v >> (c & 7)) & 1:
                    col = base + c
                    if end == col:
                        if write:
                            hi[n - 1] = col + 1
                    else:
                        if write:
                            lo[n] = col
                            hi[n] = col + 1
                        n += 1
                    end = col + 1
    return n


@njit(cache=True)
def coarse_run_counts(row_ptr, col_idx, kind, partial_id, masks, biq, bik, cq, ck):
    """Pointers of the runs of allowed coarse columns of every coarse row of a one-slice
    layout (fill them with :func:`coarse_run_fill`)."""
    ptr = np.zeros(cq + 1, dtype=np.int64)
    n = 0
    for r in range(cq):
        n = _coarse_row(r, row_ptr, col_idx, kind, partial_id, masks, biq, bik, ck, ptr, ptr, n, False)
        ptr[r + 1] = n
    return ptr


@njit(cache=True)
def coarse_run_fill(ptr, row_ptr, col_idx, kind, partial_id, masks, biq, bik, ck):
    """Runs ``[lo, hi)`` of allowed coarse columns of every coarse row (see :func:`coarse_run_counts`)."""
    n = ptr[ptr.shape[0] - 1]
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    for r in range(ptr.shape[0] - 1):
        _coarse_row(r, row_ptr, col_idx, kind, partial_id, masks, biq, bik, ck, lo, hi, ptr[r], True)
    return lo, hi


@njit(cache=True)
def _intersect(a_lo, a_hi, na, b_lo, b_hi, nb, o_lo, o_hi):
    """Intersection of two sorted lists of disjoint intervals; returns its length."""
    i = 0
    j = 0
    n = 0
    while i < na and j < nb:
        lo = max(a_lo[i], b_lo[j])
        hi = min(a_hi[i], b_hi[j])
        if lo < hi:
            o_lo[n] = lo
            o_hi[n] = hi
            n += 1
        if a_hi[i] < b_hi[j]:
            i += 1
        else:
            j += 1
    return n


@njit(cache=True)
def _lifted_row(qb, c_ptr, c_lo, c_hi, b, row0, grid, u_lo, u_hi, i_lo, i_hi, t_lo, t_hi, lo, hi, cls, n):
    """Runs of block row qb of a block-level leaf (coarse runs in columns) appended at n."""
    i0 = grid.q_offset + qb * grid.bq
    i1 = min(i0 + grid.bq, grid.q_total)
    r0 = i0 // b - row0
    r1 = (i1 - 1) // b - row0
    bk = grid.bk
    kv = grid.kv_len
    if r0 == r1:  # one coarse row: its intervals are the union and the intersection
        nu = 0
        for e in range(c_ptr[r0], c_ptr[r0 + 1]):
            u_lo[nu] = c_lo[e] * b
            u_hi[nu] = min(c_hi[e] * b, kv)
            i_lo[nu] = u_lo[nu]
            i_hi[nu] = u_hi[nu]
            nu += 1
        return _emit_lifted(u_lo, u_hi, nu, i_lo, i_hi, nu, bk, kv, grid.n_kb, lo, hi, cls, n)
    # union of the rows' token intervals, and their intersection
    m = 0
    for r in range(r0, r1 + 1):
        for e in range(c_ptr[r], c_ptr[r + 1]):
            t_lo[m] = c_lo[e] * b
            t_hi[m] = min(c_hi[e] * b, kv)
            m += 1
    order = np.argsort(t_lo[:m])
    nu = 0
    for t in range(m):
        a = t_lo[order[t]]
        z = t_hi[order[t]]
        if nu > 0 and a <= u_hi[nu - 1]:
            u_hi[nu - 1] = max(u_hi[nu - 1], z)
        else:
            u_lo[nu] = a
            u_hi[nu] = z
            nu += 1
    ni = 0
    for e in range(c_ptr[r0], c_ptr[r0 + 1]):
        i_lo[ni] = c_lo[e] * b
        i_hi[ni] = min(c_hi[e] * b, kv)
        ni += 1
    for r in range(r0 + 1, r1 + 1):
        k = 0
        for e in range(c_ptr[r], c_ptr[r + 1]):
            t_lo[k] = c_lo[e] * b
            t_hi[k] = min(c_hi[e] * b, kv)
            k += 1
        ni = _intersect(i_lo, i_hi, ni, t_lo, t_hi, k, u_lo[nu:], u_hi[nu:])
        i_lo[:ni] = u_lo[nu:nu + ni]
        i_hi[:ni] = u_hi[nu:nu + ni]
    return _emit_lifted(u_lo, u_hi, nu, i_lo, i_hi, ni, bk, kv, grid.n_kb, lo, hi, cls, n)


@njit(cache=True, inline="always")
def _emit_lifted(u_lo, u_hi, nu, i_lo, i_hi, ni, bk, kv, n_kb, lo, hi, cls, n):
    """Key blocks touching the union intervals are PARTIAL, those inside an intersection
    interval FULL; runs appended at n."""
    start = n
    last = 0
    f = 0
    for t in range(nu):
        blo = max(u_lo[t] // bk, last)
        bhi = (u_hi[t] - 1) // bk + 1
        if blo >= bhi:
            continue
        pos = blo
        while f < ni and i_lo[f] < u_hi[t]:
            flo = max(-(-i_lo[f] // bk), pos)
            fhi = n_kb if i_hi[f] >= kv else i_hi[f] // bk
            if flo < fhi:
                if pos < flo:
                    n = _append(lo, hi, cls, start, n, pos, flo, PARTIAL)
                n = _append(lo, hi, cls, start, n, flo, fhi, FULL)
                pos = fhi
            f += 1
        if pos < bhi:
            n = _append(lo, hi, cls, start, n, pos, bhi, PARTIAL)
        last = bhi
    return n


@njit(cache=True)
def block_row_runs(c_ptr, c_lo, c_hi, b, row0, grid):
    """Run list per block row of ``block_level(inner, b)`` from the inner's coarse runs."""
    widest = 1
    bound = 0
    for qb in range(grid.n_qb):
        i0 = grid.q_offset + qb * grid.bq
        i1 = min(i0 + grid.bq, grid.q_total)
        r0 = i0 // b - row0
        r1 = (i1 - 1) // b - row0
        m = c_ptr[r1 + 1] - c_ptr[r0]
        widest = max(widest, m)
        bound += 3 * m + 1
    u_lo = np.empty(3 * widest + 1, dtype=np.int64)
    u_hi = np.empty(3 * widest + 1, dtype=np.int64)
    i_lo = np.empty(widest + 1, dtype=np.int64)
    i_hi = np.empty(widest + 1, dtype=np.int64)
    t_lo = np.empty(widest + 1, dtype=np.int64)
    t_hi = np.empty(widest + 1, dtype=np.int64)
    ptr = np.zeros(grid.n_qb + 1, dtype=np.int64)
    lo = np.empty(bound, dtype=np.int64)
    hi = np.empty(bound, dtype=np.int64)
    cls = np.empty(bound, dtype=np.int8)
    n = 0
    for qb in range(grid.n_qb):
        n = _lifted_row(qb, c_ptr, c_lo, c_hi, b, row0, grid, u_lo, u_hi, i_lo, i_hi, t_lo, t_hi, lo, hi, cls, n)
        ptr[qb + 1] = n
    return ptr, lo[:n], hi[:n], cls[:n]  # views: the unused tail was never touched


@njit(cache=True, inline="always")
def _axis_row(r, kind, run_lo, run_hi, ck, lo, hi, n, write):
    """Runs of allowed coarse columns of coarse row r of a one-axis pattern whose
    membership runs are [run_lo, run_hi) (see :func:`axis_coarse_runs`); returns the new n."""
    m = run_lo.shape[0]
    if kind == T_D:  # index x = r - c + ck - 1: columns [r - x_hi + ck, r - x_lo + ck), x decreasing
        first = np.searchsorted(run_hi, r, side="right")
        k = np.searchsorted(run_lo, r + ck, side="left") - 1
        while k >= first:
            a = max(r - run_hi[k] + ck, 0)
            b = min(r - run_lo[k] + ck, ck)
            if a < b:
                if write:
                    lo[n] = a
                    hi[n] = b
                n += 1
            k -= 1
    elif kind == T_S:  # index s = r + c: columns [s_lo - r, s_hi - r)
        k = np.searchsorted(run_hi, r, side="right")
        while k < m and run_lo[k] < r + ck:
            if write:
                lo[n] = max(run_lo[k] - r, 0)
                hi[n] = min(run_hi[k] - r, ck)
            n += 1
            k += 1
    elif kind == T_R:
        k = np.searchsorted(run_hi, r, side="right")
        if k < m and run_lo[k] <= r:
            if write:
                lo[n] = 0
                hi[n] = ck
            n += 1
    else:
        for k in range(m):
            if write:
                lo[n] = run_lo[k]
                hi[n] = run_hi[k]
            n += 1
    return n


@njit(cache=True)
def axis_coarse_runs(kind, run_lo, run_hi, row0, n_rows, ck):
    """Coarse runs ``(ptr, lo, hi)`` of rows ``row0 .. row0 + n_rows - 1`` of a pattern on
    one axis, from the runs of its membership: a block-level leaf whose inner pattern
    needs no compile of its own."""
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    n = 0
    for r in range(n_rows):
        n = _axis_row(row0 + r, kind, run_lo, run_hi, ck, ptr, ptr, n, False)
        ptr[r + 1] = n
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    for r in range(n_rows):
        _axis_row(row0 + r, kind, run_lo, run_hi, ck, lo, hi, ptr[r], True)
    return ptr, lo, hi
