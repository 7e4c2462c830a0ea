"""numba: the coarse cells of a block-level leaf, ``block_level(inner, b)``.

A block-level leaf allows token (i, j) iff its inner pattern allows the coarse cell
(i // b, j // b). Its tables hold the inner pattern at coarse resolution in one of two
forms (``LeafTables.coarse_axis[l]``):

* ``-1``: the allowed coarse columns of every coarse row as runs (an inner pattern that
  was compiled on cells), rows ``coarse_row0[l] ..``;
* an axis kind (``T_D``, ``T_S``, ``T_R``, ``T_C``): the inner pattern is one axis leaf,
  and the tables keep only its *membership runs* (intervals of allowed indices
  x = r - c + ck - 1, r + c, r or c, ``ck`` coarse columns). A coarse row's columns are
  then computed when the row walk asks, in O(runs of that row): at a million tokens a
  block-level PrimeBird has 4.5 million coarse runs, which would take ~45 ms and 72 MB
  to list and are never needed at once.

Example:
    >>> import numpy as np
    >>> from maskc.compiler.codes import T_D
    >>> lo, hi = np.array([3]), np.array([5])  # offsets r - c in {0, 1} (x = r - c + 3): row 2 allows columns 1, 2
    >>> [bool(axis_allows(T_D, lo, hi, 2, c, 4)) for c in range(4)]
    [False, True, True, False]
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.compiler.codes import FULL, T_C, T_D, T_R, T_S
from maskc.compiler.grid import AT_COARSE
from maskc.compiler.runs import emit_run


@njit(cache=True, inline="always")
def axis_index(kind, r, c, ck):
    """The membership index of coarse cell (r, c) of a one-axis inner pattern."""
    if kind == T_D:
        return r - c + ck - 1
    if kind == T_S:
        return r + c
    if kind == T_R:
        return r
    return c


@njit(cache=True, inline="always")
def axis_allows(kind, run_lo, run_hi, r, c, ck):
    """True when the membership runs ``[run_lo, run_hi)`` allow coarse cell (r, c)."""
    x = axis_index(kind, r, c, ck)
    k = np.searchsorted(run_hi, x, side="right")
    return k < run_hi.shape[0] and run_lo[k] <= x


@njit(cache=True, inline="always")
def coarse_ck(lv, l, grid):
    """Coarse columns of block-level leaf l."""
    b = lv.param[l]
    return (grid.kv_len + b - 1) // b


@njit(cache=True, inline="always")
def cell_allowed(lv, l, r, c, grid):
    """True when block-level leaf l allows coarse cell (r, c); r is the absolute coarse row."""
    base = lv.at[l, AT_COARSE]
    if lv.coarse_axis[l] >= 0:
        m0 = lv.coarse_ptr[base]
        m1 = lv.coarse_ptr[base + 1]
        return axis_allows(lv.coarse_axis[l], lv.coarse_lo[m0:m1], lv.coarse_hi[m0:m1], r, c, coarse_ck(lv, l, grid))
    rr = r - lv.coarse_row0[l]
    e0 = lv.coarse_ptr[base + rr]
    e1 = lv.coarse_ptr[base + rr + 1]
    k = e0 + np.searchsorted(lv.coarse_hi[e0:e1], c, side="right")
    return k < e1 and lv.coarse_lo[k] <= c


@njit(cache=True, inline="always")
def _emit_cols(a, b, cs, ce, sc, s, e, ar, start, p):
    """Emit the coarse columns [a, b) clipped to [cs, ce), as key blocks clipped to [s, e)."""
    a = max(a, cs)
    b = min(b, ce)
    if a < b:
        p = emit_run(ar, start, p, max(a * sc, s), min(b * sc, e), FULL, np.int64(0))
    return p


@njit(cache=True, inline="always")
def axis_row_runs(kind, run_lo, run_hi, r, ck, sc, s, e, ar, start, p):
    """Append the FULL runs, on key blocks [s, e), of coarse row r of a one-axis inner
    pattern whose coarse cells are ``sc`` key blocks wide; returns the new end."""
    m = run_lo.shape[0]
    cs = s // sc
    ce = min((e + sc - 1) // sc, ck)
    if cs >= ce:
        return p
    if kind == T_D:  # columns [r - hi + ck, r - lo + ck): increasing as the run index falls
        k = np.searchsorted(run_lo, r + ck - cs, side="left") - 1
        while k >= 0 and r - run_hi[k] + ck < ce:
            p = _emit_cols(r - run_hi[k] + ck, r - run_lo[k] + ck, cs, ce, sc, s, e, ar, start, p)
            k -= 1
    elif kind == T_S:  # columns [lo - r, hi - r)
        k = np.searchsorted(run_hi, r + cs, side="right")
        while k < m and run_lo[k] - r < ce:
            p = _emit_cols(run_lo[k] - r, run_hi[k] - r, cs, ce, sc, s, e, ar, start, p)
            k += 1
    elif kind == T_R:
        k = np.searchsorted(run_hi, r, side="right")
        if k < m and run_lo[k] <= r:
            p = _emit_cols(cs, ce, cs, ce, sc, s, e, ar, start, p)
    else:  # T_C: columns [lo, hi)
        k = np.searchsorted(run_hi, cs, side="right")
        while k < m and run_lo[k] < ce:
            p = _emit_cols(run_lo[k], run_hi[k], cs, ce, sc, s, e, ar, start, p)
            k += 1
    return p


def axis_index_np(kind: int, r, c, ck: int):
    """:func:`axis_index` on numpy arrays (broadcasting)."""
    if kind == T_D:
        return r - c + ck - 1
    if kind == T_S:
        return r + c
    return np.broadcast_arrays(r, c)[0 if kind == T_R else 1]


def axis_estimate(kind: int, run_lo: np.ndarray, run_hi: np.ndarray, row0: int, cq: int, ck: int) -> tuple[float, float]:
    """``(share of allowed coarse cells, coarse runs per row)`` of rows ``row0 .. row0 + cq - 1``
    of a one-axis inner pattern, from its membership runs (numpy, O(runs))."""
    lo = run_lo.astype(np.int64)
    hi = run_hi.astype(np.int64)
    r0, r1 = row0, row0 + cq
    if kind in (T_D, T_S):  # row r reaches the indices [r, r + ck) (D: c = r + ck - 1 - x; S: c = x - r)
        def reached_below(y):  # sum over rows r of |[r, r + ck) ∩ (-inf, y)|
            whole = np.clip(y - ck - r0 + 1, 0, r1 - r0)  # rows r <= y - ck reach ck indices below y
            a = np.maximum(y - ck + 1, r0)  # rows a .. b-1 reach y - r of them
            b = np.minimum(y, r1)
            cnt = np.maximum(b - a, 0)
            return whole * ck + cnt * y - (a + b - 1) * cnt // 2
        cells = float(np.sum(reached_below(hi) - reached_below(lo)))
        touching = np.minimum(hi - 1, r1 - 1) - np.maximum(lo - ck + 1, r0) + 1
        runs = float(np.maximum(touching, 0).sum())
    elif kind == T_R:
        rows = np.maximum(np.minimum(hi, r1) - np.maximum(lo, r0), 0).sum()
        cells, runs = float(rows * ck), float(rows)
    else:
        cols = np.maximum(np.minimum(hi, ck) - np.maximum(lo, 0), 0)
        cells, runs = float(cols.sum() * cq), float(np.count_nonzero(cols) * cq)
    return cells / max(cq * ck, 1), runs / max(cq, 1)
