"""numba: the verdict of a whole expression on one block row, as a list of runs.

A *run* is a stretch of key blocks ``[lo, hi)`` of one class (PARTIAL, FULL or UNKNOWN)
with a *context*: the bit set of the leaves whose content it depends on. Stretches not
covered by a run are EMPTY. :func:`eval_row` evaluates the program's instruction stream
on run lists: every leaf reports its runs over the current *interest* (a list of
key-block intervals), and every operand of ``&`` after the first is asked only where the
result so far is not EMPTY (of ``|``: not FULL), so stretches another operand already
rules out are skipped, not walked. A row costs O(runs), never O(key blocks).

Contexts. A leaf's run depends on that leaf if it is undecided (PARTIAL or UNKNOWN), on
nothing if FULL. Combining keeps the union of the undecided operands' contexts and drops
the context of a constant result. So the context of an undecided run is exactly the set
S of leaves still undecided after constant folding; the constants that remain around
them are the operators' neutral elements, so the run's bits are a fixed function of the
bits of the leaves in S, the same for every run with that context.

Example (the kernels are called by :mod:`maskc.compiler.rowwalk`):
    >>> and_class(PARTIAL, FULL) == PARTIAL, or_class(PARTIAL, PARTIAL) == UNKNOWN
    (True, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from maskc.compiler.codes import (
    EMPTY, FULL, OP_AND, OP_LEAF, OP_NARROW_AND, OP_NARROW_OR, OP_NOT,
    PARTIAL, T_C, T_D, T_PRED, T_R, T_S, UNKNOWN,
)
from maskc.compiler.tables import AT_COARSE, AT_COUNT, AT_MEMB, AT_RUNS, AT_TAB


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
def leaf_context(l, c, share):
    """The context of leaf l's run of class c: the leaf itself when undecided."""
    if not share or c == FULL or c == EMPTY:
        return np.int64(0)
    return np.int64(1) << l


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
def _coarse_row_span(l, qb, lv, grid):
    """Coarse runs of the coarse row holding block row qb, of a block-level leaf on the grid."""
    r = (grid.q_offset + qb * grid.bq) // lv.param[l] - lv.coarse_row0[l]
    base = lv.at[l, AT_COARSE]
    return lv.coarse_ptr[base + r], lv.coarse_ptr[base + r + 1]


@njit(cache=True, inline="always")
def _coarse_runs(l, qb, s, e, lv, grid, ar, start, p):
    """Runs of a block-level leaf on the block grid: its coarse row's runs, scaled."""
    sc = lv.param[l] // grid.bk
    c0, c1 = _coarse_row_span(l, qb, lv, grid)
    k = c0 + np.searchsorted(lv.coarse_hi[c0:c1], s // sc, side="right")
    while k < c1 and lv.coarse_lo[k] * sc < e:
        p = _emit(ar, start, p, max(lv.coarse_lo[k] * sc, s), min(lv.coarse_hi[k] * sc, e), FULL, np.int64(0))
        k += 1
    return p


@njit(cache=True, inline="always")
def run_class(l, qb, kb, lv, grid):
    """Class of a run-list leaf (segments, block level, cells) on block (qb, kb)."""
    if lv.at[l, AT_RUNS] < 0:  # a block-level leaf on the grid: its coarse cell
        c = kb // (lv.param[l] // grid.bk)
        c0, c1 = _coarse_row_span(l, qb, lv, grid)
        k = c0 + np.searchsorted(lv.coarse_hi[c0:c1], c, side="right")
        return FULL if k < c1 and lv.coarse_lo[k] <= c else EMPTY
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
            p = _emit(ar, start, p, kb, end, c, leaf_context(l, c, share))
        kb = end
    if kb < e:  # the ragged last key block
        c = axis_class(l, qb, kb, lv, grid)
        if c != EMPTY:
            p = _emit(ar, start, p, kb, e, c, leaf_context(l, c, share))
    return p


@njit(cache=True, inline="always")
def _listed_runs(l, qb, s, e, lv, ar, start, p, share):
    """Non-empty runs of a run-list leaf on key blocks [s, e) of row qb."""
    q = lv.at[l, AT_RUNS] + qb
    r1 = lv.run_ptr[q + 1]
    k = lv.run_ptr[q] + np.searchsorted(lv.run_hi[lv.run_ptr[q]:r1], s, side="right")
    while k < r1 and lv.run_lo[k] < e:
        c = lv.run_cls[k]
        p = _emit(ar, start, p, max(lv.run_lo[k], s), min(lv.run_hi[k], e), c, leaf_context(l, c, share))
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
            p = _emit(ar, start, p, s, e, row_c, leaf_context(l, row_c, share))
        elif t == T_C:
            base = lv.at[l, AT_TAB]
            kb = s
            while kb < e:
                c = lv.tab_cls[base + kb]
                end = min(e, kb + lv.tab_steps[base + kb])
                if c != EMPTY:
                    p = _emit(ar, start, p, kb, end, c, leaf_context(l, c, share))
                kb = end
        elif t == T_PRED:
            p = _emit(ar, start, p, s, e, UNKNOWN, leaf_context(l, UNKNOWN, share))
        elif lv.at[l, AT_RUNS] < 0:
            p = _coarse_runs(l, qb, s, e, lv, grid, ar, start, p)
        else:
            p = _listed_runs(l, qb, s, e, lv, ar, start, p, share)
    return p


@njit(cache=True, inline="always")
def _context_of(c, c1, x1, c2, x2):
    """Context of a combined piece of class c from operands (c1, x1) and (c2, x2)."""
    if c == FULL or c == EMPTY:
        return np.int64(0)
    u1 = c1 == PARTIAL or c1 == UNKNOWN
    u2 = c2 == PARTIAL or c2 == UNKNOWN
    if u1 and u2:
        return x1 | x2
    return x1 if u1 else x2


@njit(cache=True, inline="always")
def _pass_through(ar, start, p, k, k1, pos, lim):
    """Copy the runs k.. of a list that end by ``lim`` (the first clipped to start at ``pos``)
    where the other operand is neutral (FULL for ``&``, absent for ``|``); returns (p, k)."""
    while k < k1 and ar.hi[k] <= lim:
        p = _emit(ar, start, p, max(ar.lo[k], pos), ar.hi[k], ar.cls[k], ar.ctx[k])
        k += 1
    return p, k


@njit(cache=True, inline="always")
def _merge(ar, a0, a1, b0, b1, p, is_and):
    """Runs of (A & B) or (A | B) at p, sweeping A's runs a0..a1 and B's b0..b1 (absent = EMPTY).

    Where one operand is neutral over a stretch (a FULL run of it for ``&``, a gap in it
    for ``|``), the other's runs inside the stretch are copied without the sweep."""
    start = p
    i = a0
    j = b0
    big = np.int64(1) << 62
    pos = min(ar.lo[i] if i < a1 else big, ar.lo[j] if j < b1 else big)
    while i < a1 or j < b1:
        in_a = i < a1 and ar.lo[i] <= pos
        in_b = j < b1 and ar.lo[j] <= pos
        if not in_a and not in_b:
            pos = min(ar.lo[i] if i < a1 else big, ar.lo[j] if j < b1 else big)
            continue
        if is_and and in_a and ar.cls[i] == FULL and not (in_b and ar.hi[j] > ar.hi[i]):
            lim = ar.hi[i]
            p, j = _pass_through(ar, start, p, j, b1, pos, lim)
            pos = max(pos, min(lim, ar.lo[j]) if j < b1 else lim)
            if pos >= lim:
                i += 1
            continue
        if is_and and in_b and ar.cls[j] == FULL and not (in_a and ar.hi[i] > ar.hi[j]):
            lim = ar.hi[j]
            p, i = _pass_through(ar, start, p, i, a1, pos, lim)
            pos = max(pos, min(lim, ar.lo[i]) if i < a1 else lim)
            if pos >= lim:
                j += 1
            continue
        if not is_and and not in_a:  # a gap in A: B's runs up to A's next start pass through
            lim = ar.lo[i] if i < a1 else big
            if not (in_b and ar.hi[j] > lim):
                p, j = _pass_through(ar, start, p, j, b1, pos, lim)
                pos = max(pos, min(lim, ar.lo[j]) if j < b1 else lim)
                continue
        if not is_and and not in_b:
            lim = ar.lo[j] if j < b1 else big
            if not (in_a and ar.hi[i] > lim):
                p, i = _pass_through(ar, start, p, i, a1, pos, lim)
                pos = max(pos, min(lim, ar.lo[i]) if i < a1 else lim)
                continue
        end = min(ar.hi[i] if in_a else (ar.lo[i] if i < a1 else big),
                  ar.hi[j] if in_b else (ar.lo[j] if j < b1 else big))
        c1 = ar.cls[i] if in_a else EMPTY
        c2 = ar.cls[j] if in_b else EMPTY
        c = and_class(c1, c2) if is_and else or_class(c1, c2)
        if c != EMPTY:
            x1 = ar.ctx[i] if in_a else np.int64(0)
            x2 = ar.ctx[j] if in_b else np.int64(0)
            p = _emit(ar, start, p, pos, end, c, _context_of(c, c1, x1, c2, x2))
        pos = end
        if in_a and ar.hi[i] <= pos:
            i += 1
        if in_b and ar.hi[j] <= pos:
            j += 1
    return p


@njit(cache=True, inline="always")
def _complement(ar, r0, r1, i_from, i_to, p):
    """Runs of ~R at p within the interest: gaps become FULL, FULL runs vanish."""
    start = p
    r = r0
    for iv in range(i_from, i_to):
        pos = ar.iv_lo[iv]
        e = ar.iv_hi[iv]
        while pos < e:
            if r < r1 and ar.lo[r] <= pos:
                if ar.cls[r] != FULL:
                    p = _emit(ar, start, p, pos, ar.hi[r], ar.cls[r], ar.ctx[r])
                pos = ar.hi[r]
                r += 1
            else:
                end = min(ar.lo[r], e) if r < r1 else e
                p = _emit(ar, start, p, pos, end, FULL, np.int64(0))
                pos = end
    return p


@njit(cache=True, _nrt=False)
def eval_row(qb, ops, args, lv, grid, ar, share):
    """Runs of the whole program on block row qb: ``(lo, hi, work)``, the runs being
    ``ar.lo[lo:hi]`` etc. (non-empty, sorted); ``work`` counts runs and intervals made."""
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
        elif op == OP_NARROW_AND:  # where the left operand is not EMPTY: its runs
            first = ar.int_hi[ni - 1]
            m = first
            for r in range(ar.res_lo[nr - 1], ar.res_hi[nr - 1]):
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
        elif op == OP_NARROW_OR:  # where the left operand is not FULL: the interest minus its FULL runs
            first = ar.int_hi[ni - 1]
            m = first
            r = ar.res_lo[nr - 1]
            r1 = ar.res_hi[nr - 1]
            for iv in range(ar.int_lo[ni - 1], ar.int_hi[ni - 1]):
                pos = ar.iv_lo[iv]
                e = ar.iv_hi[iv]
                while True:
                    while r < r1 and (ar.cls[r] != FULL or ar.hi[r] <= pos):
                        r += 1
                    stop = ar.lo[r] if r < r1 and ar.lo[r] < e else e
                    if stop > pos:
                        ar.iv_lo[m] = pos
                        ar.iv_hi[m] = stop
                        m += 1
                    if stop == e:
                        break
                    pos = ar.hi[r]
                    r += 1
            ar.int_lo[ni] = first
            ar.int_hi[ni] = m
            ni += 1
            work += m - first
        elif op == OP_NOT:
            r0 = ar.res_lo[nr - 1]
            q = _complement(ar, r0, ar.res_hi[nr - 1], ar.int_lo[ni - 1], ar.int_hi[ni - 1], p)
            n_out = q - p
            for t in range(n_out):
                ar.lo[r0 + t] = ar.lo[p + t]
                ar.hi[r0 + t] = ar.hi[p + t]
                ar.cls[r0 + t] = ar.cls[p + t]
                ar.ctx[r0 + t] = ar.ctx[p + t]
            ar.res_hi[nr - 1] = r0 + n_out
            p = r0 + n_out
            work += n_out
        else:
            ni -= 1
            a0 = ar.res_lo[nr - 2]
            q = _merge(ar, a0, ar.res_hi[nr - 2], ar.res_lo[nr - 1], ar.res_hi[nr - 1], p, op == OP_AND)
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
