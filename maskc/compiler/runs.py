"""numba: the verdict of a whole expression on one block row, as a list of runs.

A *run* is a stretch of key blocks ``[lo, hi)`` of one class with one *context* (the
code of every leaf on it, see :mod:`maskc.compiler.codes`). :func:`eval_row` evaluates
the program's instruction stream on run lists: every leaf reports its runs over the
current *interest* (a list of key-block intervals), and every operand of ``&`` after the
first is asked only where the result so far is not EMPTY (of ``|``: not FULL), so
stretches another operand already rules out are skipped, not walked. A row costs
O(runs), never O(key blocks).

Example (the kernels are called by :mod:`maskc.compiler.rowwalk`):
    >>> and_class(PARTIAL, FULL) == PARTIAL, or_class(PARTIAL, PARTIAL) == UNKNOWN
    (True, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from maskc.compiler.codes import (
    CODE_EMPTY, CODE_FULL, CODE_UNDECIDED, EMPTY, FULL, OP_AND, OP_LEAF, OP_NARROW_AND, OP_NARROW_OR, OP_NOT,
    PARTIAL, T_C, T_D, T_PRED, T_R, T_S, UNKNOWN,
)
from maskc.compiler.tables import AT_COUNT, AT_MEMB, AT_RUNS, AT_TAB


class Arena(NamedTuple):
    """Scratch space of :func:`eval_row`: run lists on a stack, and interest lists."""

    lo: np.ndarray       # int64 runs: first key block
    hi: np.ndarray       # one past the last
    cls: np.ndarray      # int8 class
    ctx: np.ndarray      # int64 leaf codes
    iv_lo: np.ndarray    # int64 interest intervals
    iv_hi: np.ndarray
    res_lo: np.ndarray   # int64 result stack: the runs of result r are lo[res_lo[r]:res_hi[r]]
    res_hi: np.ndarray
    int_lo: np.ndarray   # int64 interest stack: intervals iv_lo[int_lo[i]:int_hi[i]]
    int_hi: np.ndarray


@njit(cache=True)
def new_arena(n_kb, depth, interests):
    """An Arena for rows of ``n_kb`` key blocks and a program of the given stack depths."""
    cap = (depth + 2) * (n_kb + 1)
    icap = (interests + 2) * (n_kb + 1)
    return Arena(np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int8), np.empty(cap, np.int64),
                 np.empty(icap, np.int64), np.empty(icap, np.int64), np.empty(depth + 2, np.int64),
                 np.empty(depth + 2, np.int64), np.empty(interests + 2, np.int64), np.empty(interests + 2, np.int64))


def arena_bytes(n_kb: int, depth: int, interests: int) -> int:
    """Bytes of one :func:`new_arena`."""
    return (depth + 2) * (n_kb + 1) * 25 + (interests + 2) * (n_kb + 1) * 16


@njit(cache=True, inline="always")
def and_class(a, b):
    """Class of x & y from the classes of x and y."""
    if a == EMPTY or b == EMPTY:
        return EMPTY
    if a == FULL:
        return b
    if b == FULL:
        return a
    return UNKNOWN


@njit(cache=True, inline="always")
def or_class(a, b):
    """Class of x | y from the classes of x and y."""
    if a == FULL or b == FULL:
        return FULL
    if a == EMPTY:
        return b
    if b == EMPTY:
        return a
    return UNKNOWN


@njit(cache=True, inline="always")
def not_class(a):
    """Class of ~x: EMPTY and FULL swap, PARTIAL and UNKNOWN stay."""
    if a == EMPTY:
        return FULL
    if a == FULL:
        return EMPTY
    return a


@njit(cache=True, inline="always")
def leaf_code(l, c, share):
    """The context bits of leaf l saying class c (0 when content sharing is off)."""
    if not share:
        return np.int64(0)
    code = CODE_EMPTY if c == EMPTY else (CODE_FULL if c == FULL else CODE_UNDECIDED)
    return np.int64(code) << (2 * l)


@njit(cache=True, inline="always")
def _emit(ar, start, p, a, b, c, x):
    """Append run [a, b) with class c and context x at p (merged into the previous one when
    it continues it); ``start`` is where the current list began."""
    if p > start and ar.hi[p - 1] == a and ar.cls[p - 1] == c and ar.ctx[p - 1] == x:
        ar.hi[p - 1] = b
        return p
    ar.lo[p] = a
    ar.hi[p] = b
    ar.cls[p] = c
    ar.ctx[p] = x
    return p + 1


@njit(cache=True, inline="always")
def count_class(count, total):
    if count == 0:
        return EMPTY
    if count == total:
        return FULL
    return PARTIAL


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
def run_class(l, qb, kb, lv):
    """Class of a run-list leaf (segments, block level, cells) on block (qb, kb)."""
    p = lv.at[l, AT_RUNS] + qb
    r0 = lv.run_ptr[p]
    r1 = lv.run_ptr[p + 1]
    k = r0 + np.searchsorted(lv.run_hi[r0:r1], kb, side="right")
    if k < r1 and lv.run_lo[k] <= kb:
        return lv.run_cls[k]
    return EMPTY


@njit(cache=True, inline="always")
def _diagonal_runs(l, qb, s, e, lv, grid, ar, start, p, share):
    """Runs of a D or S leaf on key blocks [s, e) of row qb, from its tables."""
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
        p = _emit(ar, start, p, kb, end, c, leaf_code(l, c, share))
        kb = end
    if kb < e:  # the ragged last key block
        c = axis_class(l, qb, kb, lv, grid)
        p = _emit(ar, start, p, kb, e, c, leaf_code(l, c, share))
    return p


@njit(cache=True, inline="always")
def _listed_runs(l, qb, s, e, lv, ar, start, p, share):
    """Runs of a run-list leaf on key blocks [s, e) of row qb (gaps are EMPTY)."""
    q = lv.at[l, AT_RUNS] + qb
    r1 = lv.run_ptr[q + 1]
    k = lv.run_ptr[q] + np.searchsorted(lv.run_hi[lv.run_ptr[q]:r1], s, side="right")
    empty = leaf_code(l, EMPTY, share)
    pos = s
    while pos < e:
        if k < r1 and lv.run_lo[k] <= pos:
            end = min(lv.run_hi[k], e)
            c = lv.run_cls[k]
            p = _emit(ar, start, p, pos, end, c, leaf_code(l, c, share))
            k += 1
        else:
            end = min(lv.run_lo[k], e) if k < r1 else e
            p = _emit(ar, start, p, pos, end, EMPTY, empty)
        pos = end
    return p


@njit(cache=True, inline="always")
def leaf_runs(l, qb, lv, grid, ar, i_from, i_to, p, share):
    """Append leaf l's runs on row qb over the interest intervals i_from..i_to at p."""
    t = lv.kind[l]
    start = p
    row_c = EMPTY
    if t == T_R:
        row_c = lv.tab_cls[lv.at[l, AT_TAB] + qb]
    for iv in range(i_from, i_to):
        s = ar.iv_lo[iv]
        e = ar.iv_hi[iv]
        if t == T_D or t == T_S:
            p = _diagonal_runs(l, qb, s, e, lv, grid, ar, start, p, share)
        elif t == T_R:
            p = _emit(ar, start, p, s, e, row_c, leaf_code(l, row_c, share))
        elif t == T_C:
            base = lv.at[l, AT_TAB]
            kb = s
            while kb < e:
                c = lv.tab_cls[base + kb]
                end = min(e, kb + lv.tab_steps[base + kb])
                p = _emit(ar, start, p, kb, end, c, leaf_code(l, c, share))
                kb = end
        elif t == T_PRED:
            p = _emit(ar, start, p, s, e, UNKNOWN, leaf_code(l, UNKNOWN, share))
        else:
            p = _listed_runs(l, qb, s, e, lv, ar, start, p, share)
    return p


@njit(cache=True, inline="always")
def _combine(ar, a0, a1, b0, p, is_and):
    """Runs of (A & B) or (A | B) at p: A's runs a0..a1 over the interest, B's from b0 over
    the positions where A does not decide the result."""
    decided = EMPTY if is_and else FULL
    start = p
    j = b0
    for i in range(a0, a1):
        lo = ar.lo[i]
        hi = ar.hi[i]
        c1 = ar.cls[i]
        x1 = ar.ctx[i]
        if c1 == decided:
            p = _emit(ar, start, p, lo, hi, c1, x1)
            continue
        pos = lo
        while pos < hi:
            while ar.hi[j] <= pos:
                j += 1
            end = min(hi, ar.hi[j])
            c = and_class(c1, ar.cls[j]) if is_and else or_class(c1, ar.cls[j])
            p = _emit(ar, start, p, pos, end, c, x1 | ar.ctx[j])
            pos = end
    return p


@njit(cache=True, _nrt=False)
def eval_row(qb, ops, args, lv, grid, ar, share):
    """Runs of the whole program on block row qb: ``(lo, hi, work)``, the runs being
    ``ar.lo[lo:hi]`` etc. over all key blocks; ``work`` counts runs and intervals made."""
    ar.iv_lo[0] = 0
    ar.iv_hi[0] = grid.n_kb
    ar.int_lo[0] = 0
    ar.int_hi[0] = 1
    ni = 1
    nr = 0
    p = 0
    work = 0
    for k in range(ops.shape[0]):
        op = ops[k]
        if op == OP_LEAF:
            i_from = ar.int_lo[ni - 1]
            i_to = ar.int_hi[ni - 1]
            q = leaf_runs(args[k], qb, lv, grid, ar, i_from, i_to, p, share)
            ar.res_lo[nr] = p
            ar.res_hi[nr] = q
            nr += 1
            work += q - p + i_to - i_from
            p = q
        elif op == OP_NARROW_AND or op == OP_NARROW_OR:
            decided = EMPTY if op == OP_NARROW_AND else FULL
            first = ar.int_hi[ni - 1]
            m = first
            for r in range(ar.res_lo[nr - 1], ar.res_hi[nr - 1]):
                if ar.cls[r] == decided:
                    continue
                if m > first and ar.iv_hi[m - 1] == ar.lo[r]:
                    ar.iv_hi[m - 1] = ar.hi[r]
                else:
                    ar.iv_lo[m] = ar.lo[r]
                    ar.iv_hi[m] = ar.hi[r]
                    m += 1
            ar.int_lo[ni] = first
            ar.int_hi[ni] = m
            ni += 1
            work += m - first
        elif op == OP_NOT:
            for r in range(ar.res_lo[nr - 1], ar.res_hi[nr - 1]):
                ar.cls[r] = not_class(ar.cls[r])
            work += ar.res_hi[nr - 1] - ar.res_lo[nr - 1]
        else:
            ni -= 1
            a0 = ar.res_lo[nr - 2]
            q = _combine(ar, a0, ar.res_hi[nr - 2], ar.res_lo[nr - 1], p, op == OP_AND)
            n_out = q - p
            for t in range(n_out):
                ar.lo[a0 + t] = ar.lo[p + t]
                ar.hi[a0 + t] = ar.hi[p + t]
                ar.cls[a0 + t] = ar.cls[p + t]
                ar.ctx[a0 + t] = ar.ctx[p + t]
            nr -= 1
            ar.res_hi[nr - 1] = a0 + n_out
            p = a0 + n_out
            work += n_out
    return ar.res_lo[0], ar.res_hi[0], work
