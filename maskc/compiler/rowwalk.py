"""numba: walk every block row, then write the non-empty blocks and their content keys.

1. :func:`walk_rows` (serial) evaluates every block row on run lists
   (:func:`maskc.compiler.evalrow.eval_row`) and keeps its non-empty runs, each with a
   content-key *slot*; it counts blocks and own-key blocks per row.
2. :func:`fill_rows` (parallel over rows) expands the kept runs into every non-empty
   block's column, class and content key.

Content keys (which undecided blocks share one evaluated representative) are in
:mod:`maskc.compiler.keys`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from maskc.jit import njit, prange

from maskc.compiler.codes import FULL, K_COL, K_CONTENT, K_SEG_ROW, K_UNIQUE
from maskc.compiler.evalrow import eval_row
from maskc.compiler.grid import AT_KSEG
from maskc.compiler.keys import by_content, content_walk, coordinate, coordinate_step, is_seg_row, nth_leaf, run_kind
from maskc.compiler.runs import new_arena

#: slot of a kept run: FULL blocks, or undecided blocks with keys of their own
SLOT_FULL, SLOT_OWN = -1, -2


class KeptRuns(NamedTuple):
    """The non-empty runs pass 1 keeps: those of row qb are ``ptr[qb]:ptr[qb + 1]``."""

    ptr: np.ndarray   # int64 [n_qb + 1]
    lo: np.ndarray    # int32 first key block
    hi: np.ndarray    # int32 one past the last
    cls: np.ndarray   # int8 FULL, PARTIAL or UNKNOWN
    slot: np.ndarray  # int32 content-key slot, SLOT_FULL or SLOT_OWN


class Slots(NamedTuple):
    """Content-key slots: a slot's keys are ``base[s] .. base[s + 1]``; own keys follow."""

    kind: np.ndarray  # int64 [n] K_*
    ctx: np.ndarray   # int64 [n] the leaves the content depends on
    base: np.ndarray  # int64 [n + 1]


class Blocks(NamedTuple):
    """The output of pass 2: every non-empty block of row qb at ``row_ptr[qb]..``, and the
    representative of every key (``qb << 32 | kb``, -1 for unused keys)."""

    row_ptr: np.ndarray  # int64 [n_qb + 1]
    own_ptr: np.ndarray  # int64 [n_qb + 1] first own key of each row, after the slots' keys
    col: np.ndarray      # int32 key block
    cls: np.ndarray      # int8 FULL, PARTIAL or UNKNOWN
    key: np.ndarray      # int32 content key, -1 for FULL
    rep: np.ndarray      # int64 [keys]


@njit(cache=True, inline="always")
def _find_slot(slots, n, kind, tail, ctx):
    for s in range(n):
        if slots[0, s] == kind and slots[1, s] == tail and slots[2, s] == ctx:
            return s
    return -1


@njit(cache=True, _nrt=False)
def _walk_row(qb, ops, args, lv, grid, ar, share, slots, n_slots, keep_lo, keep_hi, keep_cls, keep_slot, n_kept):
    """Evaluate row qb and keep its runs at n_kept; returns (blocks, own-key blocks,
    n_slots, n_kept, work), n_slots -1 when the kept runs are full, -2 when the slot table is."""
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
            part_kind = K_CONTENT if tail == 0 and by_content(ar.ctx[r], lv) else kind
            if part_kind == K_UNIQUE:
                own += pb - pa
            else:
                if is_seg_row(part_kind):  # only key blocks inside one segment share
                    base = lv.at[(part_kind - K_SEG_ROW) // 2, AT_KSEG]
                    own += pb - pa - (lv.k_pure_count[base + pb] - lv.k_pure_count[base + pa])
                slot = _find_slot(slots, n_slots, part_kind, tail, ar.ctx[r])
                if slot < 0:
                    if n_slots == slots.shape[1]:
                        return 0, 0, -2, n_kept, work
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
def walk_rows(ops, args, lv, grid, share, depth, interests, counts, owns, max_kept, first):
    """Pass 1: blocks per row into ``counts``, own-key blocks into ``owns``.

    Returns ``(slots, kept, work)``: the key slots found ([3, n]: kind, tail, context),
    the :class:`KeptRuns`, and the runs made (the work), or ``work = -1`` when more than
    ``max_kept`` runs would be kept. ``first`` is ``(lo, hi, cls, slot)``, the first
    arrays of the kept runs (sized by an estimate and allocated by the caller, where
    numpy backs large arrays with huge pages: a run list of 60 MB otherwise costs ~20 ms
    of page faults per compile); they grow here when the estimate was short.
    """
    keep_ptr = np.zeros(grid.n_qb + 1, dtype=np.int64)
    ar = new_arena(grid.n_kb, depth, interests)
    slots = np.zeros((3, 16), dtype=np.int64)
    keep_lo, keep_hi, keep_cls, keep_slot = first
    n_slots = 0
    n_kept = 0
    work = 0
    qb = 0
    while qb < grid.n_qb:
        cnt, own, n, n_now, w = _walk_row(qb, ops, args, lv, grid, ar, share, slots, n_slots, keep_lo, keep_hi,
                                          keep_cls, keep_slot, n_kept)
        if n < 0:  # a table is full: grow it and do the row again
            if n == -2:  # the slot table (the row may have added slots before it filled up)
                grown = np.zeros((3, 2 * slots.shape[1]), dtype=np.int64)
                grown[:, :n_slots] = slots[:, :n_slots]
                slots = grown
            else:
                if keep_lo.shape[0] >= max_kept:
                    return slots[:, :n_slots].copy(), KeptRuns(keep_ptr, keep_lo, keep_hi, keep_cls, keep_slot), -1
                m = min(max_kept, 2 * keep_lo.shape[0] + 4 * grid.n_kb)
                keep_lo = np.concatenate((keep_lo[:n_kept], np.empty(m - n_kept, np.int32)))
                keep_hi = np.concatenate((keep_hi[:n_kept], np.empty(m - n_kept, np.int32)))
                keep_cls = np.concatenate((keep_cls[:n_kept], np.empty(m - n_kept, np.int8)))
                keep_slot = np.concatenate((keep_slot[:n_kept], np.empty(m - n_kept, np.int32)))
            continue
        n_slots = n
        n_kept = n_now
        work += w
        counts[qb] = cnt
        owns[qb] = own
        keep_ptr[qb + 1] = n_kept
        qb += 1
    kept = KeptRuns(keep_ptr, keep_lo[:n_kept], keep_hi[:n_kept], keep_cls[:n_kept], keep_slot[:n_kept])
    return slots[:, :n_slots].copy(), kept, work


@njit(cache=True, inline="always")
def _put(cand_col, cand_cls, cand_key, rep, pos, qb, kb, c, key):
    """Write block (qb, kb) of class c and key (-1: FULL) at pos; make it the key's
    representative if the key has none yet."""
    cand_col[pos] = kb
    cand_cls[pos] = c
    cand_key[pos] = key
    if key >= 0 and rep[key] < 0:
        rep[key] = (qb << 32) | kb


@njit(cache=True, _nrt=False)
def _fill_row(qb, lv, grid, kept, slots, out):
    """Write row qb's non-empty blocks from its kept runs (see :func:`fill_rows`)."""
    pos = out.row_ptr[qb]
    own = slots.base[slots.base.shape[0] - 1] + out.own_ptr[qb]
    cand_col, cand_cls, cand_key, rep = out.col, out.cls, out.key, out.rep
    slot_kind, slot_ctx, slot_base = slots.kind, slots.ctx, slots.base
    for r in range(kept.ptr[qb], kept.ptr[qb + 1]):
        a = np.int64(kept.lo[r])
        b = np.int64(kept.hi[r])
        c = kept.cls[r]
        slot = kept.slot[r]
        if slot == SLOT_FULL:
            for kb in range(a, b):
                _put(cand_col, cand_cls, cand_key, rep, pos, qb, kb, FULL, -1)
                pos += 1
        elif slot == SLOT_OWN:
            for kb in range(a, b):
                _put(cand_col, cand_cls, cand_key, rep, pos, qb, kb, c, own)
                own += 1
                pos += 1
        elif slot_kind[slot] == K_CONTENT:  # up to three leaves, each id walking by a fixed step
            ctx = slot_ctx[slot]
            e1, s1, _ = content_walk(nth_leaf(ctx, 0), qb, a, lv, grid)
            e2, s2, r2 = content_walk(nth_leaf(ctx, 1), qb, a, lv, grid)
            e3, s3, r3 = content_walk(nth_leaf(ctx, 2), qb, a, lv, grid)
            two = nth_leaf(ctx, 1) >= 0
            three = nth_leaf(ctx, 2) >= 0
            for kb in range(a, b):
                off = lv.content[e1]
                if two:
                    off = off * r2 + lv.content[e2]
                    if three:
                        off = off * r3 + lv.content[e3]
                e1 += s1
                e2 += s2
                e3 += s3
                _put(cand_col, cand_cls, cand_key, rep, pos, qb, kb, c, slot_base[slot] + off)
                pos += 1
        elif slot_kind[slot] <= K_COL:  # the coordinate moves by a fixed step along the row
            kind = slot_kind[slot]
            key = slot_base[slot] + coordinate(kind, qb, a, lv, grid)
            step = coordinate_step(kind, grid)
            for kb in range(a, b):
                _put(cand_col, cand_cls, cand_key, rep, pos, qb, kb, c, key)
                key += step
                pos += 1
        else:
            for kb in range(a, b):
                coord = coordinate(slot_kind[slot], qb, kb, lv, grid)
                if coord >= 0:
                    key = slot_base[slot] + coord
                else:
                    key = own
                    own += 1
                _put(cand_col, cand_cls, cand_key, rep, pos, qb, kb, c, key)
                pos += 1


@njit(cache=True, parallel=True)
def fill_rows(lv, grid, kept, slots, out, n_chunks):
    """Pass 2, parallel over chunks of rows: write each non-empty block's column, class
    (FULL, or PARTIAL / UNKNOWN for an undecided one) and key (-1 for FULL) into ``out``
    (:class:`Blocks`).

    ``out.rep[key]`` receives some block holding the key (threads may race to write it;
    any of them is a valid representative).
    """
    for ch in prange(n_chunks):
        for qb in range(ch * grid.n_qb // n_chunks, (ch + 1) * grid.n_qb // n_chunks):
            _fill_row(np.int64(qb), lv, grid, kept, slots, out)


@njit(cache=True)
def fill_rows_serial(lv, grid, kept, slots, out):
    """:func:`fill_rows` on the calling thread (small compiles: no thread pool to start)."""
    for qb in range(grid.n_qb):
        _fill_row(np.int64(qb), lv, grid, kept, slots, out)
