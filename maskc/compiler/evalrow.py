"""numba: the verdict of a whole expression on one block row (:func:`eval_row`).

The program's instruction stream is evaluated on run lists (:mod:`maskc.compiler.runs`):
every leaf reports its runs over the current *interest* (a list of key-block intervals),
and every operand of ``&`` after the first is asked only where the result so far is not
EMPTY (of ``|``: not FULL), so stretches another operand already rules out are skipped,
not walked. A row costs O(runs), never O(key blocks).
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.compiler.codes import (
    EMPTY, FULL, OP_AND, OP_LEAF, OP_NARROW_AND, OP_NARROW_OR, OP_NOT, PARTIAL, UNKNOWN,
)
from maskc.compiler.leafruns import leaf_runs
from maskc.compiler.runs import combine_class, emit_run


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
    where the other operand is neutral (FULL for ``&``, absent for ``|``); returns
    (p, k, the position reached).

    Only the first copied run can join the output's last run: a list never holds two
    runs that :func:`~maskc.compiler.runs.emit_run` would have joined, so the rest are
    copied as they are."""
    if k < k1 and ar.hi[k] <= lim:
        p = emit_run(ar, start, p, max(ar.lo[k], pos), ar.hi[k], ar.cls[k], ar.ctx[k])
        k += 1
        end = k
        while end < k1 and ar.hi[end] <= lim:
            end += 1
        p = _copy_runs(ar, k, end, p)
        k = end
    return p, k, max(pos, min(lim, ar.lo[k]) if k < k1 else lim)


@njit(cache=True, inline="always")
def _copy_runs(ar, a, b, to):
    """Copy runs a..b to ``to`` (below a, or after b: the copy never reads what it wrote);
    returns the end of the copy."""
    n = b - a
    lo, hi, cls, ctx = ar.lo, ar.hi, ar.cls, ar.ctx
    for t in range(n):
        lo[to + t] = lo[a + t]
        hi[to + t] = hi[a + t]
        cls[to + t] = cls[a + t]
        ctx[to + t] = ctx[a + t]
    return to + n


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
            p, j, pos = _pass_through(ar, start, p, j, b1, pos, ar.hi[i])
            i += 1 if pos >= ar.hi[i] else 0
            continue
        if is_and and in_b and ar.cls[j] == FULL and not (in_a and ar.hi[i] > ar.hi[j]):
            p, i, pos = _pass_through(ar, start, p, i, a1, pos, ar.hi[j])
            j += 1 if pos >= ar.hi[j] else 0
            continue
        gap_a = ar.lo[i] if i < a1 else big  # for |: up to where A has no run, B passes through
        if not is_and and not in_a and not (in_b and ar.hi[j] > gap_a):
            p, j, pos = _pass_through(ar, start, p, j, b1, pos, gap_a)
            continue
        gap_b = ar.lo[j] if j < b1 else big
        if not is_and and not in_b and not (in_a and ar.hi[i] > gap_b):
            p, i, pos = _pass_through(ar, start, p, i, a1, pos, gap_b)
            continue
        end = min(ar.hi[i] if in_a else (ar.lo[i] if i < a1 else big),
                  ar.hi[j] if in_b else (ar.lo[j] if j < b1 else big))
        c1 = ar.cls[i] if in_a else EMPTY
        c2 = ar.cls[j] if in_b else EMPTY
        c = combine_class(c1, c2, is_and)
        if c != EMPTY:
            x1 = ar.ctx[i] if in_a else np.int64(0)
            x2 = ar.ctx[j] if in_b else np.int64(0)
            p = emit_run(ar, start, p, pos, end, c, _context_of(c, c1, x1, c2, x2))
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
                    p = emit_run(ar, start, p, pos, ar.hi[r], ar.cls[r], ar.ctx[r])
                pos = ar.hi[r]
                r += 1
            else:
                end = min(ar.lo[r], e) if r < r1 else e
                p = emit_run(ar, start, p, pos, end, FULL, np.int64(0))
                pos = end
    return p


@njit(cache=True, inline="always")
def _combine(ar, a0, a1, b0, b1, p, is_and):
    """A & B (or A | B) of the result lists A = ``[a0, a1)`` and B = ``[b0, b1)`` (B above A,
    ``p`` the free space above B): returns ``(lo, hi, work)``, the result's place
    (within ``[a0, b1)``: a result may start above a0) and the runs merged.

    Where one operand is EMPTY, or B lies wholly after A in a union, nothing is merged. A
    long B keeps in place what a short A cannot change: for ``&`` the runs of B inside A's
    first run when it is FULL (``causal() & X``: all of X's runs left of the diagonal), for
    ``|`` the runs of B after A's last run; only the rest is merged, above B, and moved
    next to them."""
    na = a1 - a0
    nb = b1 - b0
    if is_and and (na == 0 or nb == 0):  # an EMPTY operand
        return a0, a0, 0
    if not is_and and na == 0:
        return b0, b1, 0
    if not is_and and nb == 0:
        return a0, a1, 0
    if not is_and and b0 == a1 and ar.hi[a1 - 1] < ar.lo[b0]:  # A then B, in place
        return a0, b1, 0
    if nb > 2 * na + 4:
        if is_and and ar.cls[a0] == FULL and ar.lo[a0] <= ar.lo[b0]:
            m = b0 + np.searchsorted(ar.hi[b0:b1], ar.hi[a0], side="right")  # B[b0:m] lie inside A's first run
            if m > b0:
                q = _merge(ar, a0, a1, m, b1, p, True)
                return b0, _copy_runs(ar, p, q, m), q - p
        if not is_and:
            m = b0 + np.searchsorted(ar.lo[b0:b1], ar.hi[a1 - 1], side="right")  # B[m:] lie after A
            if (m - b0) + na <= nb // 2:
                q = _merge(ar, a0, a1, b0, m, p, False)
                h = q - p
                if m - h >= a0:  # the merged head fits just below B[m:]
                    _copy_runs(ar, p, q, m - h)
                    return m - h, b1, h
    q = _merge(ar, a0, a1, b0, b1, p, is_and)
    end = _copy_runs(ar, p, q, a0)
    return a0, end, end - a0


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
            p = _copy_runs(ar, p, q, r0)
            ar.res_hi[nr - 1] = p
            work += p - r0
        else:
            ni -= 1
            lo, hi, w = _combine(ar, ar.res_lo[nr - 2], ar.res_hi[nr - 2], ar.res_lo[nr - 1], ar.res_hi[nr - 1], p,
                                 op == OP_AND)
            nr -= 1
            ar.res_lo[nr - 1] = lo
            ar.res_hi[nr - 1] = hi
            p = hi
            work += w
    return ar.res_lo[0], ar.res_hi[0], work
