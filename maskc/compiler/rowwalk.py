"""numba: walk every block row, then write the non-empty blocks and their content keys.

1. :func:`walk_rows` (serial) evaluates every block row on run lists
   (:func:`maskc.compiler.evalrow.eval_row`) and keeps its non-empty runs, the undecided
   ones with a content-key *slot*; it counts blocks and own-key blocks per row.
2. :func:`fill_rows` (parallel over rows) expands the kept runs into every non-empty
   block's column and content key (FULL blocks: -1).

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
from maskc.errors import TooLargeError

#: slot of a kept undecided run whose blocks have keys of their own
SLOT_OWN = -2


def kept_dtype(n_kb: int):
    """``(dtype, flag)`` of the kept runs' key-block bounds for rows of ``n_kb`` key blocks:
    two bytes while they fit below the flag bit that marks an undecided run."""
    if n_kb < 1 << 15:
        return np.uint16, 1 << 15
    if n_kb < 1 << 30:
        return np.int32, 1 << 30
    raise TooLargeError(f"{n_kb:,} key blocks per row exceed the row walk's int32 bounds; use a larger block")


class KeptRuns(NamedTuple):
    """The non-empty runs pass 1 keeps: those of row qb are ``ptr[qb]:ptr[qb + 1]``.

    Most kept runs are FULL (a block-level PrimeBird keeps 4.5M one-block FULL runs at 1M
    tokens), so a run is only its bounds, 2 bytes each while rows have fewer than 32,768
    key blocks; an undecided run has ``flag`` added to ``hi`` and its content-key slot in
    ``und_slot``, those of row qb at ``und_ptr[qb]..`` in run order. (Its class need not
    be kept: every undecided block's class comes from its key's evaluated bits.)
    """

    ptr: np.ndarray       # int64 [n_qb + 1]
    lo: np.ndarray        # uint16 or int32 first key block
    hi: np.ndarray        # one past the last, + flag when undecided
    und_ptr: np.ndarray   # int64 [n_qb + 1]
    und_slot: np.ndarray  # int32 content-key slot, or SLOT_OWN


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
    cls: np.ndarray      # int8 class: written by the finalize stage, from the keys
    key: np.ndarray      # int32 content key, -1 for FULL
    rep: np.ndarray      # int64 [keys]


@njit(cache=True, inline="always")
def _find_slot(slots, n, kind, tail, ctx):
    for s in range(n):
        if slots[0, s] == kind and slots[1, s] == tail and slots[2, s] == ctx:
            return s
    return -1


@njit(cache=True, _nrt=False)
def _walk_row(qb, ops, args, lv, grid, ar, share, slots, n_slots, keep_lo, keep_hi, n_kept, und_slot, n_und, flag):
    """Evaluate row qb and keep its runs at n_kept (undecided ones' slots at n_und);
    returns (blocks, own-key blocks, n_slots, n_kept, n_und, work), n_slots -1 when the
    kept runs are full, -2 when the slot table is, -3 when the undecided runs' table is."""
    lo, hi, work = eval_row(qb, ops, args, lv, grid, ar, share)
    cnt = 0
    own = 0
    if n_kept + 2 * (hi - lo) > keep_lo.shape[0]:
        return 0, 0, -1, n_kept, n_und, work
    if n_und + 2 * (hi - lo) > und_slot.shape[0]:
        return 0, 0, -3, n_kept, n_und, work
    for r in range(lo, hi):
        c = ar.cls[r]
        a = ar.lo[r]
        b = ar.hi[r]
        cnt += b - a
        if c == FULL:
            keep_lo[n_kept] = a
            keep_hi[n_kept] = b
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
                        return 0, 0, -2, n_kept, n_und, work
                    slots[0, n_slots] = part_kind
                    slots[1, n_slots] = tail
                    slots[2, n_slots] = ar.ctx[r]
                    slot = n_slots
                    n_slots += 1
            keep_lo[n_kept] = pa
            keep_hi[n_kept] = pb + flag
            und_slot[n_und] = slot
            n_kept += 1
            n_und += 1
    return cnt, own, n_slots, n_kept, n_und, work


@njit(cache=True)
def walk_rows(ops, args, lv, grid, share, depth, interests, counts, owns, max_kept, first, flag):
    """Pass 1: blocks per row into ``counts``, own-key blocks into ``owns``.

    Returns ``(slots, kept, work)``: the key slots found ([3, n]: kind, tail, context),
    the :class:`KeptRuns`, and the runs made (the work), or ``work = -1`` when more than
    ``max_kept`` runs would be kept. ``first`` is ``(lo, hi, und_slot)``, the
    first arrays of the kept runs (sized by an estimate and allocated by the caller, where
    numpy backs large arrays with huge pages: a run list of tens of MB otherwise costs
    ~10-20 ms of page faults per compile); they grow here when the estimate was short.
    ``flag`` marks undecided runs in ``hi`` (see :func:`kept_dtype`).
    """
    keep_ptr = np.zeros(grid.n_qb + 1, dtype=np.int64)
    und_ptr = np.zeros(grid.n_qb + 1, dtype=np.int64)
    ar = new_arena(grid.n_kb, depth, interests)
    slots = np.zeros((3, 16), dtype=np.int64)
    keep_lo, keep_hi, und_slot = first
    n_slots = 0
    n_kept = 0
    n_und = 0
    work = 0
    qb = 0
    while qb < grid.n_qb:
        cnt, own, n, n_now, u_now, w = _walk_row(qb, ops, args, lv, grid, ar, share, slots, n_slots, keep_lo,
                                                 keep_hi, n_kept, und_slot, n_und, flag)
        if n < 0:  # a table is full: grow it and do the row again
            if n == -2:  # the slot table (the row may have added slots before it filled up)
                grown = np.zeros((3, 2 * slots.shape[1]), dtype=np.int64)
                grown[:, :n_slots] = slots[:, :n_slots]
                slots = grown
            elif n == -3:  # the undecided runs' slots
                m = min(max(max_kept, 1), 2 * und_slot.shape[0] + 4 * grid.n_kb)
                if m <= und_slot.shape[0]:
                    return slots[:, :n_slots].copy(), KeptRuns(keep_ptr, keep_lo, keep_hi, und_ptr, und_slot), -1
                und_slot = np.concatenate((und_slot[:n_und], np.empty(m - n_und, np.int32)))
            else:
                if keep_lo.shape[0] >= max_kept:
                    return slots[:, :n_slots].copy(), KeptRuns(keep_ptr, keep_lo, keep_hi, und_ptr, und_slot), -1
                m = min(max_kept, 2 * keep_lo.shape[0] + 4 * grid.n_kb)
                keep_lo = np.concatenate((keep_lo[:n_kept], np.empty(m - n_kept, keep_lo.dtype)))
                keep_hi = np.concatenate((keep_hi[:n_kept], np.empty(m - n_kept, keep_hi.dtype)))
            continue
        n_slots = n
        n_kept = n_now
        n_und = u_now
        work += w
        counts[qb] = cnt
        owns[qb] = own
        keep_ptr[qb + 1] = n_kept
        und_ptr[qb + 1] = n_und
        qb += 1
    kept = KeptRuns(keep_ptr, keep_lo[:n_kept], keep_hi[:n_kept], und_ptr, und_slot[:n_und])
    return slots[:, :n_slots].copy(), kept, work


@njit(cache=True, inline="always")
def _put(cand_col, cand_key, rep, pos, qb, kb, key):
    """Write block (qb, kb) with key ``key`` (-1: FULL) at pos; make it the key's
    representative if the key has none yet."""
    cand_col[pos] = kb
    cand_key[pos] = key
    if key >= 0 and rep[key] < 0:
        rep[key] = (qb << 32) | kb


@njit(cache=True, _nrt=False)
def _fill_row(qb, lv, grid, kept, slots, out, flag):
    """Write row qb's non-empty blocks from its kept runs (see :func:`fill_rows`)."""
    pos = out.row_ptr[qb]
    own = slots.base[slots.base.shape[0] - 1] + out.own_ptr[qb]
    cand_col, cand_key, rep = out.col, out.key, out.rep
    slot_kind, slot_ctx, slot_base = slots.kind, slots.ctx, slots.base
    u = kept.und_ptr[qb]
    for r in range(kept.ptr[qb], kept.ptr[qb + 1]):
        a = np.int64(kept.lo[r])
        b = np.int64(kept.hi[r])
        if b < flag:  # a FULL run
            for kb in range(a, b):
                _put(cand_col, cand_key, rep, pos, qb, kb, -1)
                pos += 1
            continue
        b -= flag
        slot = kept.und_slot[u]
        u += 1
        if slot == SLOT_OWN:
            for kb in range(a, b):
                _put(cand_col, cand_key, rep, pos, qb, kb, own)
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
                _put(cand_col, cand_key, rep, pos, qb, kb, slot_base[slot] + off)
                pos += 1
        elif slot_kind[slot] <= K_COL:  # the coordinate moves by a fixed step along the row
            kind = slot_kind[slot]
            key = slot_base[slot] + coordinate(kind, qb, a, lv, grid)
            step = coordinate_step(kind, grid)
            for kb in range(a, b):
                _put(cand_col, cand_key, rep, pos, qb, kb, key)
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
                _put(cand_col, cand_key, rep, pos, qb, kb, key)
                pos += 1


@njit(cache=True, parallel=True)
def fill_rows(lv, grid, kept, slots, out, n_chunks, flag):
    """Pass 2, parallel over chunks of rows: write each non-empty block's column and key
    (-1 for FULL) into ``out`` (:class:`Blocks`); classes follow from the keys (finalize).

    ``out.rep[key]`` receives some block holding the key (threads may race to write it;
    any of them is a valid representative).
    """
    for ch in prange(n_chunks):
        for qb in range(ch * grid.n_qb // n_chunks, (ch + 1) * grid.n_qb // n_chunks):
            _fill_row(np.int64(qb), lv, grid, kept, slots, out, flag)


@njit(cache=True)
def fill_rows_serial(lv, grid, kept, slots, out, flag):
    """:func:`fill_rows` on the calling thread (small compiles: no thread pool to start)."""
    for qb in range(grid.n_qb):
        _fill_row(np.int64(qb), lv, grid, kept, slots, out, flag)
