"""numba: walk every block row, then write the non-empty blocks and their content keys.

1. :func:`walk_rows` (serial) evaluates every block row on run lists
   (:func:`maskc.compiler.evalrow.eval_row`) and keeps its non-empty runs, each with a
   content-key *slot*; it counts blocks and own-key blocks per row.
2. :func:`fill_rows` (parallel over rows) expands the kept runs into every non-empty
   block's column, class and content key.

Content keys. The bits of an undecided block (PARTIAL or UNKNOWN) are a fixed function
of its run's context S (see :mod:`maskc.compiler.runs`), its ragged extent, and the
content of the leaves in S. When the leaves in S share one coordinate the key is
``slot_base[slot] + coordinate`` with slot = (kind, tail, S) and

========================  =========================================================
kind                      coordinate
========================  =========================================================
K_DIAG (all D)            the block diagonal x
K_ANTI (all S)            the block anti-diagonal
K_ROW (all R)             the block row
K_COL (all C)             the key block
K_SEG_COL (segments, C)   (key block, the query block's only segment): its incidence
K_SEG_ROW (segments, R)   (query block, the key block's only segment): its incidence
K_CONTENT (1-3 axis)      the content ids of each leaf's window on the block
========================  =========================================================

A full-size block whose undecided leaves are axis leaves with content ids (the distinct
membership windows, see :func:`maskc.compiler.tables.content_ids`) is keyed by them:
blocks far apart whose windows hold the same bits share one key.

so blocks with equal keys provably hold equal bits and one representative per key is
evaluated. Every other undecided block gets a key of its own.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from maskc.compiler.codes import (
    FULL, K_ANTI, K_COL, K_CONTENT, K_DIAG, K_ROW, K_SEG_COL, K_SEG_ROW, K_UNIQUE, T_C, T_D, T_R, T_S, T_SEG,
)
from maskc.compiler.evalrow import eval_row
from maskc.compiler.runs import new_arena
from maskc.compiler.tables import AT_CONTENT, AT_KSEG, AT_QSEG

#: Most keys one content slot may span (the product of its leaves' distinct contents).
MAX_CONTENT_KEYS = 1 << 24

#: slot of a kept run: FULL blocks, or undecided blocks with keys of their own
SLOT_FULL, SLOT_OWN = -1, -2


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
def _by_content(ctx, lv):
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
def _nth_leaf(ctx, n):
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
def _content_walk(l, qb, kb, lv, grid):
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
def _is_seg_row(kind):
    return kind >= K_SEG_COL and (kind - K_SEG_COL) % 2 == 1


@njit(cache=True, inline="always")
def _find_slot(slots, n, kind, tail, ctx):
    for s in range(n):
        if slots[0, s] == kind and slots[1, s] == tail and slots[2, s] == ctx:
            return s
    return -1


@njit(cache=True, _nrt=False)
def _walk_row(qb, ops, args, lv, grid, ar, share, slots, n_slots, keep_lo, keep_hi, keep_cls, keep_slot, n_kept):
    """Evaluate row qb and keep its runs at n_kept; returns (blocks, own-key blocks,
    n_slots, n_kept, work), n_slots -1 when the slot table or the kept runs are full."""
    lo, hi, work = eval_row(qb, ops, args, lv, grid, ar, share)
    cnt = 0
    own = 0
    if n_kept + 2 * (hi - lo) > keep_lo.shape[0]:
        return 0, 0, -1, n_kept, work
    for r in range(lo, hi):
        c = ar.cls[r]
        a = ar.lo[r]
        b = ar.hi[r]
        cnt += b - a
        if c == FULL:
            keep_lo[n_kept] = a
            keep_hi[n_kept] = b
            keep_cls[n_kept] = FULL
            keep_slot[n_kept] = SLOT_FULL
            n_kept += 1
            continue
        kind = run_kind(ar.ctx[r], qb, lv, share)
        for part in range(2):  # full-width key blocks, then the ragged last one
            pa = a if part == 0 else max(a, grid.full_cols)
            pb = min(b, grid.full_cols) if part == 0 else b
            if pa >= pb:
                continue
            slot = SLOT_OWN
            tail = (2 if qb >= grid.full_rows else 0) + (1 if pa >= grid.full_cols else 0)
            part_kind = K_CONTENT if tail == 0 and _by_content(ar.ctx[r], lv) else kind
            if part_kind == K_UNIQUE:
                own += pb - pa
            else:
                if _is_seg_row(part_kind):  # only key blocks inside one segment share
                    base = lv.at[(part_kind - K_SEG_ROW) // 2, AT_KSEG]
                    own += pb - pa - (lv.k_pure_count[base + pb] - lv.k_pure_count[base + pa])
                slot = _find_slot(slots, n_slots, part_kind, tail, ar.ctx[r])
                if slot < 0:
                    if n_slots == slots.shape[1]:
                        return 0, 0, -1, n_kept, work
                    slots[0, n_slots] = part_kind
                    slots[1, n_slots] = tail
                    slots[2, n_slots] = ar.ctx[r]
                    slot = n_slots
                    n_slots += 1
            keep_lo[n_kept] = pa
            keep_hi[n_kept] = pb
            keep_cls[n_kept] = c
            keep_slot[n_kept] = slot
            n_kept += 1
    return cnt, own, n_slots, n_kept, work


@njit(cache=True)
def walk_rows(ops, args, lv, grid, share, depth, interests, counts, owns, keep_ptr, max_kept, first_cap):
    """Pass 1: blocks per row into ``counts``, own-key blocks into ``owns``, kept runs
    of row qb at ``keep_ptr[qb]:keep_ptr[qb + 1]``.

    Returns ``(slots, keep_lo, keep_hi, keep_cls, keep_slot, work)``: the key slots
    ([3, n]: kind, tail, context), the kept runs, and the runs made (the work), or
    ``work = -1`` when more than ``max_kept`` runs would be kept. ``first_cap`` is the
    first capacity of the kept runs (an estimate: untouched capacity costs no memory).
    """
    ar = new_arena(grid.n_kb, depth, interests)
    slots = np.zeros((3, 16), dtype=np.int64)
    cap = min(max_kept, max(1024, first_cap))
    keep_lo = np.empty(cap, dtype=np.int32)
    keep_hi = np.empty(cap, dtype=np.int32)
    keep_cls = np.empty(cap, dtype=np.int8)
    keep_slot = np.empty(cap, dtype=np.int32)
    n_slots = 0
    n_kept = 0
    work = 0
    qb = 0
    while qb < grid.n_qb:
        cnt, own, n, kept, w = _walk_row(qb, ops, args, lv, grid, ar, share, slots, n_slots, keep_lo, keep_hi,
                                         keep_cls, keep_slot, n_kept)
        if n < 0:  # a table is full: grow it and do the row again
            if n_slots == slots.shape[1]:
                grown = np.zeros((3, 2 * slots.shape[1]), dtype=np.int64)
                grown[:, :n_slots] = slots[:, :n_slots]
                slots = grown
            else:
                if keep_lo.shape[0] >= max_kept:
                    return slots[:, :n_slots].copy(), keep_lo, keep_hi, keep_cls, keep_slot, -1
                m = min(max_kept, 2 * keep_lo.shape[0] + 4 * grid.n_kb)
                keep_lo = np.concatenate((keep_lo[:n_kept], np.empty(m - n_kept, np.int32)))
                keep_hi = np.concatenate((keep_hi[:n_kept], np.empty(m - n_kept, np.int32)))
                keep_cls = np.concatenate((keep_cls[:n_kept], np.empty(m - n_kept, np.int8)))
                keep_slot = np.concatenate((keep_slot[:n_kept], np.empty(m - n_kept, np.int32)))
            continue
        n_slots = n
        n_kept = kept
        work += w
        counts[qb] = cnt
        owns[qb] = own
        keep_ptr[qb + 1] = n_kept
        qb += 1
    return (slots[:, :n_slots].copy(), keep_lo[:n_kept], keep_hi[:n_kept], keep_cls[:n_kept],
            keep_slot[:n_kept], work)


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
def _fill_row(qb, lv, grid, row_ptr, own_ptr, keep_ptr, keep_lo, keep_hi, keep_cls, keep_slot, slot_kind,
              slot_ctx, slot_base, cand_col, cand_cls, cand_key, rep):
    """Write row qb's non-empty blocks from its kept runs (see :func:`fill_rows`)."""
    pos = row_ptr[qb]
    own = slot_base[slot_base.shape[0] - 1] + own_ptr[qb]
    for r in range(keep_ptr[qb], keep_ptr[qb + 1]):
        a = np.int64(keep_lo[r])
        b = np.int64(keep_hi[r])
        c = keep_cls[r]
        slot = keep_slot[r]
        if slot == SLOT_FULL:
            for kb in range(a, b):
                cand_col[pos] = kb
                cand_cls[pos] = FULL
                cand_key[pos] = -1
                pos += 1
        elif slot == SLOT_OWN:
            for kb in range(a, b):
                cand_col[pos] = kb
                cand_cls[pos] = c
                cand_key[pos] = own
                rep[own] = (qb << 32) | kb
                own += 1
                pos += 1
        elif slot_kind[slot] == K_CONTENT:  # up to three leaves, each id walking by a fixed step
            ctx = slot_ctx[slot]
            e1, s1, _ = _content_walk(_nth_leaf(ctx, 0), qb, a, lv, grid)
            e2, s2, r2 = _content_walk(_nth_leaf(ctx, 1), qb, a, lv, grid)
            e3, s3, r3 = _content_walk(_nth_leaf(ctx, 2), qb, a, lv, grid)
            two = _nth_leaf(ctx, 1) >= 0
            three = _nth_leaf(ctx, 2) >= 0
            for kb in range(a, b):
                off = lv.content[e1]
                if two:
                    off = off * r2 + lv.content[e2]
                    if three:
                        off = off * r3 + lv.content[e3]
                e1 += s1
                e2 += s2
                e3 += s3
                key = slot_base[slot] + off
                cand_col[pos] = kb
                cand_cls[pos] = c
                cand_key[pos] = key
                if rep[key] < 0:
                    rep[key] = (qb << 32) | kb
                pos += 1
        elif slot_kind[slot] <= K_COL:  # the coordinate moves by a fixed step along the row
            kind = slot_kind[slot]
            key = slot_base[slot] + _coordinate(kind, qb, a, lv, grid)
            step = _step(kind, grid)
            for kb in range(a, b):
                cand_col[pos] = kb
                cand_cls[pos] = c
                cand_key[pos] = key
                if rep[key] < 0:
                    rep[key] = (qb << 32) | kb
                key += step
                pos += 1
        else:
            for kb in range(a, b):
                coord = _coordinate(slot_kind[slot], qb, kb, lv, grid)
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
def fill_rows(lv, grid, row_ptr, own_ptr, keep_ptr, keep_lo, keep_hi, keep_cls, keep_slot, slot_kind, slot_ctx,
              slot_base, n_chunks, cand_col, cand_cls, cand_key, rep):
    """Pass 2, parallel over chunks of rows: write each non-empty block's column, class
    (FULL, or PARTIAL / UNKNOWN for an undecided one) and key (-1 for FULL).

    ``rep[key]`` receives some block holding the key, packed ``qb << 32 | kb`` (threads
    may race to write it; any of them is a valid representative).
    """
    for ch in prange(n_chunks):
        for qb in range(ch * grid.n_qb // n_chunks, (ch + 1) * grid.n_qb // n_chunks):
            _fill_row(np.int64(qb), lv, grid, row_ptr, own_ptr, keep_ptr, keep_lo, keep_hi, keep_cls, keep_slot,
                      slot_kind, slot_ctx, slot_base, cand_col, cand_cls, cand_key, rep)


@njit(cache=True)
def fill_rows_serial(lv, grid, row_ptr, own_ptr, keep_ptr, keep_lo, keep_hi, keep_cls, keep_slot, slot_kind,
                     slot_ctx, slot_base, cand_col, cand_cls, cand_key, rep):
    """:func:`fill_rows` on the calling thread (small compiles: no thread pool to start)."""
    for qb in range(grid.n_qb):
        _fill_row(np.int64(qb), lv, grid, row_ptr, own_ptr, keep_ptr, keep_lo, keep_hi, keep_cls, keep_slot,
                  slot_kind, slot_ctx, slot_base, cand_col, cand_cls, cand_key, rep)
