"""numba: each leaf's runs on a block row, over the intervals still in question.

Every kind answers in O(runs) from its tables (:mod:`maskc.compiler.tables`): offset and
sum leaves walk their per-diagonal class table by whole stretches of equal class, rows
read one class per row, columns a class table with run lengths, segment, cells and
off-grid block-level leaves binary-search their per-row run lists, block-level leaves on
the block grid their coarse row's runs, and predicates are UNKNOWN wherever asked.
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.compiler.codes import EMPTY, FULL, T_C, T_D, T_PRED, T_R, T_S, UNKNOWN
from maskc.compiler.coarse import axis_row_runs, cell_allowed, coarse_ck
from maskc.compiler.runs import count_class, emit_run, leaf_context
from maskc.compiler.grid import AT_COARSE, AT_COUNT, AT_MEMB, AT_RUNS, AT_TAB


@njit(cache=True, inline="always")
def _prefix(lv, l, x):
    """Allowed entries of leaf l's membership before index x."""
    q = x >> 6
    total = lv.count[lv.at[l, AT_COUNT] + q]
    base = lv.at[l, AT_MEMB]
    for y in range(q << 6, x):
        total += lv.memb[base + y]
    return total


@njit(cache=True, inline="always")
def axis_class(l, qb, kb, lv, grid):
    """Class of an axis leaf (D, S, R, C) on block (qb, kb), from its membership counts."""
    i0 = grid.q_offset + qb * grid.bq
    i1 = min(i0 + grid.bq, grid.q_total)
    j0 = kb * grid.bk
    j1 = min(j0 + grid.bk, grid.kv_len)
    t = lv.kind[l]
    if t == T_D:
        lo = i0 - (j1 - 1) + grid.kv_len - 1
        hi = (i1 - 1) - j0 + grid.kv_len - 1
    elif t == T_S:
        lo = i0 + j0
        hi = i1 + j1 - 2
    elif t == T_R:
        lo = i0
        hi = i1 - 1
    else:
        lo = j0
        hi = j1 - 1
    return count_class(_prefix(lv, l, hi + 1) - _prefix(lv, l, lo), hi - lo + 1)


@njit(cache=True, inline="always")
def _coarse_row_span(l, qb, lv, grid):
    """Coarse runs of the coarse row holding block row qb, of a block-level leaf on the grid."""
    r = (grid.q_offset + qb * grid.bq) // lv.param[l] - lv.coarse_row0[l]
    base = lv.at[l, AT_COARSE]
    return lv.coarse_ptr[base + r], lv.coarse_ptr[base + r + 1]


@njit(cache=True, inline="always")
def _coarse_runs(l, qb, s, e, lv, grid, ar, start, p):
    """Runs of a block-level leaf on the block grid: its coarse row's runs, scaled."""
    sc = lv.param[l] // grid.bk
    if lv.coarse_axis[l] >= 0:  # computed from the inner axis leaf's membership runs
        base = lv.at[l, AT_COARSE]
        m0 = lv.coarse_ptr[base]
        m1 = lv.coarse_ptr[base + 1]
        r = (grid.q_offset + qb * grid.bq) // lv.param[l]
        return axis_row_runs(lv.coarse_axis[l], lv.coarse_lo[m0:m1], lv.coarse_hi[m0:m1], r, coarse_ck(lv, l, grid),
                             sc, s, e, ar, start, p)
    c0, c1 = _coarse_row_span(l, qb, lv, grid)
    k = c0 + np.searchsorted(lv.coarse_hi[c0:c1], s // sc, side="right")
    while k < c1 and lv.coarse_lo[k] * sc < e:
        p = emit_run(ar, start, p, max(lv.coarse_lo[k] * sc, s), min(lv.coarse_hi[k] * sc, e), FULL, np.int64(0))
        k += 1
    return p


@njit(cache=True, inline="always")
def run_class(l, qb, kb, lv, grid):
    """Class of a run-list leaf (segments, block level, cells) on block (qb, kb)."""
    if lv.at[l, AT_RUNS] < 0:  # a block-level leaf on the grid: its coarse cell
        c = kb // (lv.param[l] // grid.bk)
        r = (grid.q_offset + qb * grid.bq) // lv.param[l]
        return FULL if cell_allowed(lv, l, r, c, grid) else EMPTY
    p = lv.at[l, AT_RUNS] + qb
    r0 = lv.run_ptr[p]
    r1 = lv.run_ptr[p + 1]
    k = r0 + np.searchsorted(lv.run_hi[r0:r1], kb, side="right")
    if k < r1 and lv.run_lo[k] <= kb:
        return lv.run_cls[k]
    return EMPTY


@njit(cache=True, inline="always")
def _diagonal_runs(l, qb, s, e, lv, grid, ar, start, p, share):
    """Non-empty runs of a D or S leaf on key blocks [s, e) of row qb, from its tables."""
    is_d = lv.kind[l] == T_D
    base = lv.at[l, AT_TAB] + (grid.width if qb >= grid.full_rows else 0)
    e_int = min(e, grid.full_cols)
    kb = s
    while kb < e_int:
        if is_d:
            x = (qb * grid.bq - kb * grid.bk + (grid.n_kb - 1) * grid.bk) // grid.g
        else:
            x = (qb * grid.bq + kb * grid.bk) // grid.g
        c = lv.tab_cls[base + x]
        end = min(e_int, kb + lv.tab_steps[base + x])
        if c != EMPTY:
            p = emit_run(ar, start, p, kb, end, c, leaf_context(l, c, share))
        kb = end
    if kb < e:  # the ragged last key block
        c = axis_class(l, qb, kb, lv, grid)
        if c != EMPTY:
            p = emit_run(ar, start, p, kb, e, c, leaf_context(l, c, share))
    return p


@njit(cache=True, inline="always")
def _listed_runs(l, qb, s, e, lv, ar, start, p, share):
    """Non-empty runs of a run-list leaf on key blocks [s, e) of row qb."""
    q = lv.at[l, AT_RUNS] + qb
    r1 = lv.run_ptr[q + 1]
    k = lv.run_ptr[q] + np.searchsorted(lv.run_hi[lv.run_ptr[q]:r1], s, side="right")
    while k < r1 and lv.run_lo[k] < e:
        c = lv.run_cls[k]
        p = emit_run(ar, start, p, max(lv.run_lo[k], s), min(lv.run_hi[k], e), c, leaf_context(l, c, share))
        k += 1
    return p


@njit(cache=True, inline="always")
def leaf_runs(l, qb, lv, grid, ar, i_from, i_to, p, share):
    """Append leaf l's non-empty runs on row qb over the interest intervals i_from..i_to at p."""
    t = lv.kind[l]
    start = p
    row_c = EMPTY
    if t == T_R:
        row_c = lv.tab_cls[lv.at[l, AT_TAB] + qb]
        if row_c == EMPTY:
            return p
    for iv in range(i_from, i_to):
        s = ar.iv_lo[iv]
        e = ar.iv_hi[iv]
        if t == T_D or t == T_S:
            p = _diagonal_runs(l, qb, s, e, lv, grid, ar, start, p, share)
        elif t == T_R:
            p = emit_run(ar, start, p, s, e, row_c, leaf_context(l, row_c, share))
        elif t == T_C:
            base = lv.at[l, AT_TAB]
            kb = s
            while kb < e:
                c = lv.tab_cls[base + kb]
                end = min(e, kb + lv.tab_steps[base + kb])
                if c != EMPTY:
                    p = emit_run(ar, start, p, kb, end, c, leaf_context(l, c, share))
                kb = end
        elif t == T_PRED:
            p = emit_run(ar, start, p, s, e, UNKNOWN, leaf_context(l, UNKNOWN, share))
        elif lv.at[l, AT_RUNS] < 0:
            p = _coarse_runs(l, qb, s, e, lv, grid, ar, start, p)
        else:
            p = _listed_runs(l, qb, s, e, lv, ar, start, p, share)
    return p
