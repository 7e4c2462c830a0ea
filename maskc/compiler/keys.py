"""numba: content keys of undecided blocks: which blocks provably hold equal bits.

The bits of an undecided block (PARTIAL or UNKNOWN) are a fixed function of its run's
context S (see :mod:`maskc.compiler.runs`), its ragged extent, and the content of the
leaves in S. The key of a block is ``slot_base[slot] + coordinate`` with slot =
(kind, tail, S) and

========================  =========================================================
kind                      coordinate
========================  =========================================================
K_CONTENT (1-3 axis)      the content ids of each leaf's window on the block
K_DIAG (all D)            the block diagonal x
K_ANTI (all S)            the block anti-diagonal
K_ROW (all R)             the block row
K_COL (all C)             the key block
K_SEG_COL (segments, C)   (key block, the query block's only segment): its incidence
K_SEG_ROW (segments, R)   (query block, the key block's only segment): its incidence
========================  =========================================================

K_CONTENT applies to full-size blocks whose undecided leaves are axis leaves with content
ids (their distinct membership windows, :func:`maskc.compiler.axis.content_ids`): blocks
far apart whose windows hold the same bits share one key. The other kinds key by
position. Blocks with equal keys provably hold equal bits, and one representative per key
is evaluated; every other undecided block gets a key of its own.

Example:
    >>> is_seg_row(K_SEG_ROW + 2 * 3), is_seg_row(K_SEG_COL + 2 * 3)
    (True, False)
"""

from __future__ import annotations

from maskc.jit import njit

from maskc.compiler.codes import (
    K_ANTI, K_COL, K_DIAG, K_ROW, K_SEG_COL, K_SEG_ROW, K_UNIQUE, T_C, T_D, T_R, T_S, T_SEG,
)
from maskc.compiler.grid import AT_CONTENT, AT_KSEG, AT_QSEG

#: Most keys one content slot may span (the product of its leaves' distinct contents).
MAX_CONTENT_KEYS = 1 << 24


@njit(cache=True, inline="always")
def run_kind(ctx, qb, lv, share):
    """Key kind of an undecided run of row qb with context ctx (see the module docstring)."""
    if not share or ctx == 0:
        return K_UNIQUE
    axes = 0
    seg = -1
    c = ctx
    l = 0
    while c != 0:
        if c & 1:
            t = lv.kind[l]
            if t <= T_C:
                axes |= 1 << t
            elif t == T_SEG and seg < 0:
                seg = l
            else:
                return K_UNIQUE
        c >>= 1
        l += 1
    if seg < 0:
        if axes == 1 << T_D:
            return K_DIAG
        if axes == 1 << T_S:
            return K_ANTI
        if axes == 1 << T_R:
            return K_ROW
        if axes == 1 << T_C:
            return K_COL
        return K_UNIQUE
    if axes & ~(1 << T_C) == 0 and lv.q_pure[lv.at[seg, AT_QSEG] + qb] >= 0:
        return K_SEG_COL + 2 * seg
    if axes & ~(1 << T_R) == 0:
        return K_SEG_ROW + 2 * seg
    return K_UNIQUE


@njit(cache=True, inline="always")
def by_content(ctx, lv):
    """True when a full-size block of context ctx can be keyed by its leaves' content ids:
    one to three axis leaves, each with ids, few enough keys."""
    if ctx == 0:
        return False
    keys = 1
    count = 0
    c = ctx
    l = 0
    while c != 0:
        if c & 1:
            if lv.kind[l] > T_C or lv.at[l, AT_CONTENT] < 0:
                return False
            count += 1
            keys *= max(lv.param[l], 1)
            if count > 3 or keys > MAX_CONTENT_KEYS:
                return False
        c >>= 1
        l += 1
    return True


@njit(cache=True, inline="always")
def nth_leaf(ctx, n):
    """The n-th leaf (from 0) of context ctx, or -1."""
    l = 0
    c = ctx
    while c != 0:
        if c & 1:
            if n == 0:
                return l
            n -= 1
        c >>= 1
        l += 1
    return -1


@njit(cache=True, inline="always")
def content_walk(l, qb, kb, lv, grid):
    """(index of block (qb, kb)'s content id of leaf l, its step from kb to kb + 1, radix)."""
    if l < 0:
        return 0, 0, 1
    t = lv.kind[l]
    base = lv.at[l, AT_CONTENT]
    if t == T_D:
        return base + (qb * grid.bq - kb * grid.bk + (grid.n_kb - 1) * grid.bk) // grid.g, -(grid.bk // grid.g), \
            lv.param[l]
    if t == T_S:
        return base + (qb * grid.bq + kb * grid.bk) // grid.g, grid.bk // grid.g, lv.param[l]
    if t == T_R:
        return base + qb, 0, lv.param[l]
    return base + kb, 1, lv.param[l]


@njit(cache=True, inline="always")
def is_seg_row(kind):
    return kind >= K_SEG_COL and (kind - K_SEG_COL) % 2 == 1


@njit(cache=True, inline="always")
def _index_of(values, lo, hi, v):
    for e in range(lo, hi):
        if values[e] == v:
            return e
    return -1


@njit(cache=True, inline="always")
def coordinate(kind, qb, kb, lv, grid):
    """Coordinate of block (qb, kb) for a slotted kind (-1: this block needs its own key)."""
    if kind == K_DIAG:
        return (qb * grid.bq - kb * grid.bk + (grid.n_kb - 1) * grid.bk) // grid.g
    if kind == K_ANTI:
        return (qb * grid.bq + kb * grid.bk) // grid.g
    if kind == K_ROW:
        return qb
    if kind == K_COL:
        return kb
    if is_seg_row(kind):
        s = (kind - K_SEG_ROW) // 2
        v = lv.k_pure[lv.at[s, AT_KSEG] + kb]
        if v < 0:
            return -1
        base = lv.at[s, AT_QSEG]
        e = _index_of(lv.qinc_lab, lv.qinc_ptr[base + qb], lv.qinc_ptr[base + qb + 1], v)
        return e - lv.qinc_ptr[base]
    s = (kind - K_SEG_COL) // 2
    u = lv.q_pure[lv.at[s, AT_QSEG] + qb]
    base = lv.at[s, AT_KSEG]
    e = _index_of(lv.kinc_lab, lv.kinc_ptr[base + kb], lv.kinc_ptr[base + kb + 1], u)
    return e - lv.kinc_ptr[base]


@njit(cache=True, inline="always")
def coordinate_step(kind, grid):
    """How the coordinate of K_DIAG / K_ANTI / K_ROW / K_COL moves from kb to kb + 1."""
    if kind == K_DIAG:
        return -(grid.bk // grid.g)
    if kind == K_ANTI:
        return grid.bk // grid.g
    if kind == K_ROW:
        return 0
    return 1
