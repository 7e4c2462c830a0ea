"""numba: element bits of the representative blocks, and the final BSR arrays.

Each content key has one representative block. :func:`block_bits` evaluates the
program on it element by element, but only where it must: a leaf whose class on the
block is EMPTY or FULL is a constant, and an operand the rest of the expression already
decides is skipped (the same short circuit as the row walk). The result is packed
little-endian along keys; its true class (a block judged UNKNOWN may turn out EMPTY or
FULL) comes back in ``kclass``.
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit, prange

from maskc.compiler.codes import (
    EMPTY, FULL, OP_AND, OP_LEAF, OP_NARROW_AND, OP_NARROW_OR, OP_NOT, PARTIAL, T_BLOCK, T_C, T_CELLS, T_D,
    T_PRED, T_R, T_S, T_SEG, UNKNOWN,
)
from maskc.compiler.coarse import cell_allowed
from maskc.compiler.leafruns import axis_class, run_class
from maskc.compiler.runs import not_class
from maskc.compiler.grid import AT_BITS, AT_CELLS, AT_IDS, AT_MEMB

#: bit-reversed bytes, and the number of set bits of every byte
_REV8 = np.array([int(f"{v:08b}"[::-1], 2) for v in range(256)], dtype=np.uint8)
_POP8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)


@njit(cache=True, inline="always")
def leaf_class_at(l, qb, kb, lv, grid):
    """Class of leaf l on block (qb, kb)."""
    t = lv.kind[l]
    if t <= T_C:
        return axis_class(l, qb, kb, lv, grid)
    if t == T_PRED:
        return UNKNOWN
    return run_class(l, qb, kb, lv, grid)


@njit(cache=True)
def predicates_needed(ops, args, lv, grid, pred_of_leaf, rep_qb, rep_kb, need):
    """``need[t, p]`` = 1 (int64) where block t's evaluation reaches predicate p (the others
    are decided without it): :func:`_eval_block` walking classes only."""
    depth = ops.shape[0] + 1
    tag = np.empty(depth, dtype=np.int8)
    scratch = np.empty(depth, dtype=np.int64)
    none = np.zeros((1, 1, 1), dtype=np.bool_)
    for t in range(rep_qb.shape[0]):
        _eval_block(t, ops, args, lv, grid, rep_qb, rep_kb, none, need, pred_of_leaf,
                    none.view(np.uint8), tag, none.view(np.uint8), tag, scratch, scratch, scratch, none[0], True)


@njit(cache=True, inline="always")
def _leaf_bits(l, qb, kb, lv, grid, rows, cols, gbits, gslot, col_label, out):
    """Element bits of leaf l on block (qb, kb) into out[:rows, :cols]: segment, block-level,
    cells and predicate leaves (axis leaves are packed straight from their membership by
    :func:`_leaf_packed`)."""
    t = lv.kind[l]
    i0 = grid.q_offset + qb * grid.bq
    j0 = kb * grid.bk
    if t == T_SEG:
        base = lv.at[l, AT_IDS]
        starts = lv.piece_start[base:base + lv.param[l] + 1]
        p = np.searchsorted(starts, j0, side="right") - 1
        for b in range(cols):
            while starts[p + 1] <= j0 + b:
                p += 1
            col_label[b] = lv.piece_label[base + p]
        p = np.searchsorted(starts, i0, side="right") - 1
        for a in range(rows):
            while starts[p + 1] <= i0 + a:
                p += 1
            la = lv.piece_label[base + p]
            for b in range(cols):
                out[a, b] = la == col_label[b]
    elif t == T_BLOCK:
        bb = lv.param[l]
        for a in range(rows):
            r = (i0 + a) // bb
            c_prev = -1
            v = False
            for b in range(cols):
                c = (j0 + b) // bb
                if c != c_prev:  # one lookup per coarse cell
                    v = cell_allowed(lv, l, r, c, grid)
                    c_prev = c
                out[a, b] = v
    elif t == T_CELLS:
        ptr = lv.at[l, AT_CELLS] + qb * grid.bq
        for a in range(rows):
            for b in range(cols):
                out[a, b] = False
            for e in range(lv.cell_ptr[ptr + a], lv.cell_ptr[ptr + a + 1]):
                c = lv.cell_col[e] - j0
                if 0 <= c < cols:
                    out[a, c] = True
    else:
        for a in range(rows):
            for b in range(cols):
                out[a, b] = gbits[gslot, a, b]


@njit(cache=True, inline="always")
def _bits_byte(bits, p):
    """The 8 bits of ``bits`` (packed little-endian) from bit p on, as one byte."""
    lo = p >> 3
    return ((np.int64(bits[lo]) | (np.int64(bits[lo + 1]) << 8)) >> (p & 7)) & 0xFF


@njit(cache=True, inline="always")
def _tail_mask(cols):
    """The valid bits of a row's last byte."""
    return (1 << (cols & 7)) - 1 if cols & 7 else 0xFF


@njit(cache=True, inline="always")
def _pack_tile(x, rows, cols, out):
    """Pack the bool tile ``x[:rows, :cols]`` little-endian into ``out[:rows]``."""
    whole = cols >> 3
    for a in range(rows):
        row = x[a]
        for c in range(whole):  # branch-free: 8 bits per byte
            v = 0
            for k in range(8):
                v |= np.int64(row[c * 8 + k]) << k
            out[a, c] = np.uint8(v)
        if cols & 7:
            v = 0
            for b in range(whole * 8, cols):
                v |= np.int64(row[b]) << (b & 7)
            out[a, whole] = np.uint8(v)


@njit(cache=True, inline="always")
def _leaf_packed(l, qb, kb, lv, grid, rows, cols, gbits, gslot, col_label, scratch, out):
    """Packed element bits of leaf l on block (qb, kb) into ``out[:rows]``. Axis leaves are
    read from their membership a byte at a time (a row of an offset or sum leaf is a slice
    of its bit-packed membership, reversed for offsets); the others through a bool tile."""
    t = lv.kind[l]
    i0 = grid.q_offset + qb * grid.bq
    j0 = kb * grid.bk
    n_bytes = (cols + 7) >> 3
    last = _tail_mask(cols)
    if t == T_D or t == T_S:
        base = lv.at[l, AT_BITS] * 8 + 8  # bit of membership entry 0 (8 zero bits lead)
        for a in range(rows):
            for c in range(n_bytes):
                if t == T_D:  # columns 8c .. 8c+7 are entries x0 - 8c .. x0 - 8c - 7, x0 = i - j0 + kv_len - 1
                    v = _REV8[_bits_byte(lv.memb_bits, base + i0 + a - j0 + grid.kv_len - 1 - 8 * c - 7)]
                else:  # columns 8c .. are entries i + j0 + 8c ..
                    v = _bits_byte(lv.memb_bits, base + i0 + a + j0 + 8 * c)
                out[a, c] = np.uint8(v & last if c == n_bytes - 1 else v)
    elif t == T_R:
        base = lv.at[l, AT_MEMB] + i0
        for a in range(rows):
            v = 0xFF if lv.memb[base + a] != 0 else 0
            for c in range(n_bytes):
                out[a, c] = np.uint8(v & last if c == n_bytes - 1 else v)
    elif t == T_C:
        base = lv.at[l, AT_MEMB] + j0
        for c in range(n_bytes):
            v = 0
            for k in range(min(8, cols - 8 * c)):
                v |= np.int64(lv.memb[base + 8 * c + k] != 0) << k
            out[0, c] = np.uint8(v)
        for a in range(1, rows):
            for c in range(n_bytes):
                out[a, c] = out[0, c]
    else:
        _leaf_bits(l, qb, kb, lv, grid, rows, cols, gbits, gslot, col_label, scratch)
        _pack_tile(scratch, rows, cols, out)


@njit(cache=True, _nrt=False)
def _eval_block(t, ops, args, lv, grid, rep_qb, rep_kb, gbits, gslot, pred_of_leaf, packed, kclass,
                pool, tag, buf, free, col_label, scratch, mark):
    """Evaluate representative block t (see :func:`block_bits`) on packed bits: ``pool``
    holds one packed tile per stack entry, ``&``, ``|`` and ``~`` work a byte at a time.
    With ``mark``, walk the classes only and set ``gslot[t, p] = 1`` for every predicate p
    the walk reaches."""
    n_ops = ops.shape[0]
    qb = rep_qb[t]
    kb = rep_kb[t]
    rows = min(grid.bq, grid.q_len - qb * grid.bq)
    cols = min(grid.bk, grid.kv_len - kb * grid.bk)
    n_bytes = (cols + 7) >> 3
    last = _tail_mask(cols)
    n_free = free.shape[0]
    for e in range(n_free):
        free[e] = n_free - 1 - e
    sp = 0
    k = 0
    while k < n_ops:
        op = ops[k]
        if op == OP_LEAF:
            l = args[k]
            c = leaf_class_at(l, qb, kb, lv, grid)
            if c == EMPTY or c == FULL:
                tag[sp] = c
            elif mark:
                if pred_of_leaf[l] >= 0:
                    gslot[t, pred_of_leaf[l]] = 1
                tag[sp] = PARTIAL
            else:
                n_free -= 1
                s = free[n_free]
                g = gslot[t, pred_of_leaf[l]] if pred_of_leaf[l] >= 0 else 0
                _leaf_packed(l, qb, kb, lv, grid, rows, cols, gbits, g, col_label, scratch, pool[s])
                tag[sp] = PARTIAL
                buf[sp] = s
            sp += 1
        elif op == OP_NARROW_AND or op == OP_NARROW_OR:
            if tag[sp - 1] == (EMPTY if op == OP_NARROW_AND else FULL):  # the operand cannot matter
                k = args[k] + 1
                continue
        elif op == OP_NOT:
            tag[sp - 1] = not_class(tag[sp - 1])
            if tag[sp - 1] == PARTIAL and not mark:
                x = pool[buf[sp - 1]]
                for a in range(rows):
                    for c in range(n_bytes - 1):
                        x[a, c] = ~x[a, c]
                    x[a, n_bytes - 1] = np.uint8(~x[a, n_bytes - 1] & last)
        else:
            is_and = op == OP_AND
            sp -= 1
            ca = tag[sp - 1]
            cb = tag[sp]
            absorb = EMPTY if is_and else FULL
            if ca == absorb or cb == absorb:
                if ca == PARTIAL and not mark:
                    free[n_free] = buf[sp - 1]
                    n_free += 1
                if cb == PARTIAL and not mark:
                    free[n_free] = buf[sp]
                    n_free += 1
                tag[sp - 1] = absorb
            elif cb != PARTIAL:
                pass  # b is the neutral constant: a stays
            elif ca != PARTIAL:
                tag[sp - 1] = PARTIAL
                buf[sp - 1] = buf[sp]
            elif not mark:
                x = pool[buf[sp - 1]]
                y = pool[buf[sp]]
                if is_and:
                    for a in range(rows):
                        for c in range(n_bytes):
                            x[a, c] &= y[a, c]
                else:
                    for a in range(rows):
                        for c in range(n_bytes):
                            x[a, c] |= y[a, c]
                free[n_free] = buf[sp]
                n_free += 1
        k += 1
    if mark:
        return
    if tag[0] != PARTIAL:
        kclass[t] = tag[0]
        return
    x = pool[buf[0]]
    cnt = 0
    for a in range(rows):
        for c in range(n_bytes):
            v = x[a, c]
            packed[t, a, c] = v
            cnt += _POP8[v]
    kclass[t] = EMPTY if cnt == 0 else (FULL if cnt == rows * cols else PARTIAL)


@njit(cache=True)
def _bits_of_range(t0, t1, ops, args, lv, grid, rep_qb, rep_kb, gbits, gslot, pred_of_leaf, packed, kclass):
    depth = ops.shape[0] + 1
    rmax = min(grid.bq, grid.q_len)
    cmax = min(grid.bk, grid.kv_len)
    pool = np.empty((depth, rmax, (cmax + 7) >> 3), dtype=np.uint8)
    scratch = np.empty((rmax, cmax), dtype=np.bool_)
    tag = np.empty(depth, dtype=np.int8)
    buf = np.empty(depth, dtype=np.int64)
    free = np.empty(depth, dtype=np.int64)
    col_label = np.empty(cmax, dtype=np.int64)
    for t in range(t0, t1):
        _eval_block(t, ops, args, lv, grid, rep_qb, rep_kb, gbits, gslot, pred_of_leaf, packed, kclass,
                    pool, tag, buf, free, col_label, scratch, False)


@njit(cache=True, parallel=True)
def block_bits(ops, args, lv, grid, rep_qb, rep_kb, gbits, gslot, pred_of_leaf, n_chunks, packed, kclass):
    """Packed bits (``packed[t]``, zeroed by the caller) and true class (``kclass[t]``) of
    every representative block t, in parallel over ``n_chunks`` chunks."""
    n = rep_qb.shape[0]
    for ch in prange(n_chunks):
        _bits_of_range(ch * n // n_chunks, (ch + 1) * n // n_chunks, ops, args, lv, grid, rep_qb, rep_kb, gbits,
                       gslot, pred_of_leaf, packed, kclass)


@njit(cache=True)
def block_bits_serial(ops, args, lv, grid, rep_qb, rep_kb, gbits, gslot, pred_of_leaf, packed, kclass):
    """:func:`block_bits` on the calling thread (small compiles: no thread pool to start)."""
    _bits_of_range(0, rep_qb.shape[0], ops, args, lv, grid, rep_qb, rep_kb, gbits, gslot, pred_of_leaf, packed,
                   kclass)


@njit(cache=True)
def mask_hashes(words):
    """A 64-bit hash of every row of ``words`` (uint64 [n, w])."""
    n, w = words.shape
    out = np.empty(n, dtype=np.uint64)
    for t in range(n):
        h = np.uint64(1469598103934665603)
        for e in range(w):
            h = (h ^ words[t, e]) * np.uint64(1099511628211)
            h ^= h >> np.uint64(29)
        out[t] = h
    return out


@njit(cache=True)
def same_as_first(words, first, group):
    """True when every row of ``words`` equals the row ``first[group[t]]`` (no hash collision)."""
    for t in range(words.shape[0]):
        f = first[group[t]]
        if f != t:
            for e in range(words.shape[1]):
                if words[t, e] != words[f, e]:
                    return False
    return True


@njit(cache=True, inline="always")
def _resolve_row(qb, row_ptr, cand_cls, cand_key, key_class, key_pid):
    """Resolve row qb's blocks in place: ``cand_cls`` to kinds (EMPTY kept), ``cand_key`` to
    partial ids (-1 unless PARTIAL); returns how many turned out EMPTY."""
    empty = 0
    for c in range(row_ptr[qb], row_ptr[qb + 1]):
        k = cand_key[c]
        if k < 0:
            kind = FULL
            pid = -1
        else:
            kind = key_class[k]
            pid = key_pid[k] if kind == PARTIAL else -1
        cand_cls[c] = kind
        cand_key[c] = pid
        if kind == EMPTY:
            empty += 1
    return empty


@njit(cache=True, parallel=True)
def resolve_rows(row_ptr, cand_cls, cand_key, key_class, key_pid, n_chunks):
    """:func:`_resolve_row` for every row, in parallel over ``n_chunks`` chunks of rows;
    returns the number of blocks that turned out EMPTY."""
    n_qb = row_ptr.shape[0] - 1
    empties = np.zeros(n_chunks, dtype=np.int64)
    for ch in prange(n_chunks):
        e = 0
        for qb in range(ch * n_qb // n_chunks, (ch + 1) * n_qb // n_chunks):
            e += _resolve_row(qb, row_ptr, cand_cls, cand_key, key_class, key_pid)
        empties[ch] = e
    return empties.sum()


@njit(cache=True)
def drop_empty(row_ptr, cand_col, cand_cls, cand_key):
    """Compact resolved blocks in place, dropping EMPTY ones; ``row_ptr`` follows. Returns
    the number of blocks kept."""
    n_qb = row_ptr.shape[0] - 1
    out = 0
    start = 0
    for qb in range(n_qb):
        end = row_ptr[qb + 1]
        for c in range(start, end):
            if cand_cls[c] == EMPTY:
                continue
            cand_col[out] = cand_col[c]
            cand_cls[out] = cand_cls[c]
            cand_key[out] = cand_key[c]
            out += 1
        start = end
        row_ptr[qb + 1] = out
    return out


@njit(cache=True)
def finalize(row_ptr, cand_col, cand_cls, cand_key, key_class, key_pid):
    """Turn candidates into BSR in place: resolve keys to kinds / partial ids, drop empties.

    On return ``cand_cls`` holds kinds, ``cand_key`` partial ids (-1 for full), and
    ``row_ptr`` the compacted offsets; returns the number of blocks kept. (On one thread;
    large compiles call :func:`resolve_rows` in parallel, then :func:`drop_empty` only when
    some block turned out EMPTY.)
    """
    empty = 0
    for qb in range(row_ptr.shape[0] - 1):
        empty += _resolve_row(qb, row_ptr, cand_cls, cand_key, key_class, key_pid)
    if empty == 0:
        return row_ptr[row_ptr.shape[0] - 1]
    return drop_empty(row_ptr, cand_col, cand_cls, cand_key)
