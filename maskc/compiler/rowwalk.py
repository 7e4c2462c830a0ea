"""numba: walk every block row, write the non-empty blocks and their content keys.

Two passes over the block rows, each evaluating the row's runs with
:func:`maskc.compiler.runs.eval_row`:

1. :func:`count_rows` (serial): non-empty blocks per row, blocks needing a key of their
   own per row, and the *slots* shared by undecided blocks.
2. :func:`fill_rows` (parallel over rows): every non-empty block's column, class and
   content key.

Content keys. The bits of an undecided block (PARTIAL or UNKNOWN) are a function of
what its leaves said (the run's context), its ragged extent, and the content of its
undecided leaves. When those share one coordinate the key is ``slot_base[slot] +
coordinate`` with slot = (kind, tail, context) and

========================  =========================================================
kind                      coordinate
========================  =========================================================
K_DIAG (all D)            the block diagonal x
K_ANTI (all S)            the block anti-diagonal
K_ROW (all R)             the block row
K_COL (all C)             the key block
K_SEG_COL (segments, C)   (key block, the query block's only segment): its incidence
K_SEG_ROW (segments, R)   (query block, the key block's only segment): its incidence
========================  =========================================================

so blocks with equal keys provably hold equal bits and one representative per key is
evaluated. Every other undecided block gets a key of its own.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from maskc.compiler.codes import (
    CODE_UNDECIDED, EMPTY, FULL, K_ANTI, K_COL, K_DIAG, K_ROW, K_SEG_COL, K_SEG_ROW, K_UNIQUE, T_C, T_D, T_R,
    T_S, T_SEG,
)
from maskc.compiler.runs import eval_row, new_arena
from maskc.compiler.tables import AT_KSEG, AT_QSEG


@njit(cache=True, inline="always")
def run_kind(ctx, qb, lv, share):
    """Key kind of an undecided run of row qb with context ctx (see the module docstring)."""
    if not share:
        return K_UNIQUE
    axes = 0
    seg = -1
    c = ctx
    l = 0
    while c != 0:
        if c & 3 == CODE_UNDECIDED:
            t = lv.kind[l]
            if t <= T_C:
                axes |= 1 << t
            elif t == T_SEG and seg < 0:
                seg = l
            else:
                return K_UNIQUE
        c >>= 2
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
def _is_seg_row(kind):
    return kind >= K_SEG_COL and (kind - K_SEG_COL) % 2 == 1


@njit(cache=True, inline="always")
def _pure_key_blocks(kind, lv, a, b):
    """Key blocks in [a, b) holding one segment only, for a K_SEG_ROW run."""
    base = lv.at[(kind - K_SEG_ROW) // 2, AT_KSEG]
    return lv.k_pure_count[base + b] - lv.k_pure_count[base + a]


@njit(cache=True, inline="always")
def _tail(qb, kb, grid):
    return (2 if qb >= grid.full_rows else 0) + (1 if kb >= grid.full_cols else 0)


@njit(cache=True, inline="always")
def _find_slot(slot_kind, slot_tail, slot_ctx, n, kind, tail, ctx):
    for s in range(n):
        if slot_kind[s] == kind and slot_tail[s] == tail and slot_ctx[s] == ctx:
            return s
    return -1


@njit(cache=True, _nrt=False)
def _count_row(qb, ops, args, lv, grid, ar, share, slots, n_slots):
    """Blocks and own-key blocks of row qb, slots added to ``slots`` ([3, capacity]:
    kind, tail, context); returns (blocks, own, n_slots, work), n_slots -1 when full."""
    lo, hi, work = eval_row(qb, ops, args, lv, grid, ar, share)
    cnt = 0
    un = 0
    for r in range(lo, hi):
        c = ar.cls[r]
        if c == EMPTY:
            continue
        a = ar.lo[r]
        b = ar.hi[r]
        cnt += b - a
        if c == FULL:
            continue
        kind = run_kind(ar.ctx[r], qb, lv, share)
        if kind == K_UNIQUE:
            un += b - a
            continue
        for part in range(2):  # full-width key blocks, then the ragged last one
            pa = a if part == 0 else max(a, grid.full_cols)
            pb = min(b, grid.full_cols) if part == 0 else b
            if pa >= pb:
                continue
            if _is_seg_row(kind):
                pure = _pure_key_blocks(kind, lv, pa, pb)
                un += pb - pa - pure
                if pure == 0:
                    continue
            tail = _tail(qb, pa, grid)
            if _find_slot(slots[0], slots[1], slots[2], n_slots, kind, tail, ar.ctx[r]) < 0:
                if n_slots == slots.shape[1]:
                    return cnt, un, -1, work
                slots[0, n_slots] = kind
                slots[1, n_slots] = tail
                slots[2, n_slots] = ar.ctx[r]
                n_slots += 1
    return cnt, un, n_slots, work


@njit(cache=True)
def count_rows(ops, args, lv, grid, share, depth, interests, counts, uniq):
    """Pass 1: non-empty blocks per row into ``counts``, own-key blocks into ``uniq``.

    Returns ``(slots, work)``: the key slots found ([3, n]: kind, tail, context), and the
    runs made (the row walk's work).
    """
    ar = new_arena(grid.n_kb, depth, interests)
    slots = np.zeros((3, 16), dtype=np.int64)
    n_slots = 0
    work = 0
    qb = 0
    while qb < grid.n_qb:
        cnt, un, n, w = _count_row(qb, ops, args, lv, grid, ar, share, slots, n_slots)
        if n < 0:  # the slot table is full: grow it and do the row again
            grown = np.zeros((3, 2 * slots.shape[1]), dtype=np.int64)
            grown[:, :n_slots] = slots[:, :n_slots]
            slots = grown
            continue
        n_slots = n
        work += w
        counts[qb] = cnt
        uniq[qb] = un
        qb += 1
    return slots[:, :n_slots].copy(), work


@njit(cache=True, inline="always")
def _index_of(values, lo, hi, v):
    for e in range(lo, hi):
        if values[e] == v:
            return e
    return -1


@njit(cache=True, inline="always")
def _coordinate(kind, qb, kb, lv, grid):
    """Coordinate of block (qb, kb) for a slotted kind (-1: this block needs its own key)."""
    if kind == K_DIAG:
        return (qb * grid.bq - kb * grid.bk + (grid.n_kb - 1) * grid.bk) // grid.g
    if kind == K_ANTI:
        return (qb * grid.bq + kb * grid.bk) // grid.g
    if kind == K_ROW:
        return qb
    if kind == K_COL:
        return kb
    if _is_seg_row(kind):
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
def _step(kind, grid):
    """How the coordinate of K_DIAG / K_ANTI / K_ROW / K_COL moves from kb to kb + 1."""
    if kind == K_DIAG:
        return -(grid.bk // grid.g)
    if kind == K_ANTI:
        return grid.bk // grid.g
    if kind == K_ROW:
        return 0
    return 1


@njit(cache=True, _nrt=False)
def _fill_row(qb, ops, args, lv, grid, ar, share, row_ptr, uniq_ptr, slots, slot_base, cand_col, cand_cls,
              cand_key, rep):
    """Write row qb's non-empty blocks (see :func:`fill_rows`)."""
    n_slots = slots.shape[1]
    lo, hi, _ = eval_row(qb, ops, args, lv, grid, ar, share)
    pos = row_ptr[qb]
    own = slot_base[n_slots] + uniq_ptr[qb]
    for r in range(lo, hi):
        c = ar.cls[r]
        if c == EMPTY:
            continue
        a = ar.lo[r]
        b = ar.hi[r]
        if c == FULL:
            for kb in range(a, b):
                cand_col[pos] = kb
                cand_cls[pos] = FULL
                cand_key[pos] = -1
                pos += 1
            continue
        kind = run_kind(ar.ctx[r], qb, lv, share)
        if kind == K_UNIQUE:
            for kb in range(a, b):
                cand_col[pos] = kb
                cand_cls[pos] = c
                cand_key[pos] = own
                rep[own] = (qb << 32) | kb
                own += 1
                pos += 1
            continue
        for part in range(2):  # full-width key blocks, then the ragged last one
            pa = a if part == 0 else max(a, grid.full_cols)
            pb = min(b, grid.full_cols) if part == 0 else b
            if pa >= pb:
                continue
            slot = _find_slot(slots[0], slots[1], slots[2], n_slots, kind, _tail(qb, pa, grid), ar.ctx[r])
            if kind <= K_COL:  # the coordinate moves by a fixed step along the row
                key = slot_base[slot] + _coordinate(kind, qb, pa, lv, grid)
                step = _step(kind, grid)
                for kb in range(pa, pb):
                    cand_col[pos] = kb
                    cand_cls[pos] = c
                    cand_key[pos] = key
                    if rep[key] < 0:
                        rep[key] = (qb << 32) | kb
                    key += step
                    pos += 1
                continue
            for kb in range(pa, pb):
                coord = _coordinate(kind, qb, kb, lv, grid)
                if coord >= 0:
                    key = slot_base[slot] + coord
                else:
                    key = own
                    own += 1
                cand_col[pos] = kb
                cand_cls[pos] = c
                cand_key[pos] = key
                if rep[key] < 0:
                    rep[key] = (qb << 32) | kb
                pos += 1


@njit(cache=True, parallel=True)
def fill_rows(ops, args, lv, grid, share, depth, interests, row_ptr, uniq_ptr, slots, slot_base, n_chunks,
              cand_col, cand_cls, cand_key, rep):
    """Pass 2, parallel over chunks of rows: write each non-empty block's column, class
    (FULL, or PARTIAL / UNKNOWN for an undecided one) and key (-1 for FULL).

    ``rep[key]`` receives some block holding the key, packed ``qb << 32 | kb`` (threads
    may race to write it; any of them is a valid representative).
    """
    for ch in prange(n_chunks):
        ar = new_arena(grid.n_kb, depth, interests)
        for qb in range(ch * grid.n_qb // n_chunks, (ch + 1) * grid.n_qb // n_chunks):
            _fill_row(np.int64(qb), ops, args, lv, grid, ar, share, row_ptr, uniq_ptr, slots, slot_base,
                      cand_col, cand_cls, cand_key, rep)
