"""numba kernels of the compiler: block classification, dedup keys, element bits.

A head's pattern is flattened into a postfix *program* over *leaves*; every leaf is a
structured rule whose class on a rectangle of tokens (EMPTY / PARTIAL / FULL) is
answered in O(1) (or O(rows) for block-level leaves) from prefix counts:

=========  =====================================  ==================================
type       data                                   class on rows [i0,i1) x cols [j0,j1)
=========  =====================================  ==================================
T_D        membership over d = i - j              prefix count over d in [i0-j1+1, i1-1-j0]
T_S        membership over s = i + j              prefix count over s in [i0+j0, i1+j1-2]
T_R        membership over i                      prefix count over [i0, i1)
T_C        membership over j                      prefix count over [j0, j1)
T_SEG      non-decreasing segment ids             overlap of the id ranges
T_G        user predicate                         UNKNOWN (bits evaluated per block)
T_B        coarse CSR of a block-level pattern    count of coarse cells in the coarse rect
=========  =====================================  ==================================

Class values: EMPTY 0, PARTIAL 1, FULL 2, UNKNOWN 3 (a combination the class algebra
cannot decide; element bits decide it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

EMPTY, PARTIAL, FULL, UNKNOWN = 0, 1, 2, 3
T_D, T_S, T_R, T_C, T_SEG, T_G, T_B = 0, 1, 2, 3, 4, 5, 6
OP_LEAF, OP_AND, OP_OR, OP_NOT = 0, 1, 2, 3
# key kinds: which single axis the active (undecided) leaves of a block share
K_D, K_S, K_R, K_C, K_UNIQUE = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _count_class(count, total):
    if count == 0:
        return EMPTY
    if count == total:
        return FULL
    return PARTIAL


@njit(cache=True)
def _coarse_count(aux, ptr_off, idx_off, r0, r1, c0, c1):
    """Number of allowed coarse cells in rows [r0, r1] x cols [c0, c1] of a CSR."""
    total = 0
    for r in range(r0, r1 + 1):
        lo = aux[ptr_off + r]
        hi = aux[ptr_off + r + 1]
        seg = aux[idx_off + lo: idx_off + hi]
        total += np.searchsorted(seg, c1, side="right") - np.searchsorted(seg, c0, side="left")
    return total


@njit(cache=True)
def leaf_class(l, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, i0, i1, j0, j1):
    """Class of leaf ``l`` on the token rectangle [i0, i1) x [j0, j1)."""
    t = ltype[l]
    if t == T_D:
        lo = i0 - (j1 - 1) + (kv_len - 1)
        hi = (i1 - 1) - j0 + (kv_len - 1)
        return _count_class(pref[po[l] + hi + 1] - pref[po[l] + lo], hi - lo + 1)
    if t == T_S:
        lo = i0 + j0
        hi = i1 + j1 - 2
        return _count_class(pref[po[l] + hi + 1] - pref[po[l] + lo], hi - lo + 1)
    if t == T_R:
        return _count_class(pref[po[l] + i1] - pref[po[l] + i0], i1 - i0)
    if t == T_C:
        return _count_class(pref[po[l] + j1] - pref[po[l] + j0], j1 - j0)
    if t == T_SEG:
        a = ao[l]
        sq0 = aux[a + i0]
        sq1 = aux[a + i1 - 1]
        sk0 = aux[a + j0]
        sk1 = aux[a + j1 - 1]
        if sq1 < sk0 or sk1 < sq0:
            return EMPTY
        if sq0 == sq1 and sk0 == sk1 and sq0 == sk0:
            return FULL
        return PARTIAL
    if t == T_G:
        return UNKNOWN
    # T_B: block-level pattern, coarse block p0[l], coarse CSR at aux[ao[l]:]
    b = p0[l]
    n_rows_c = p1[l]
    r0 = i0 // b
    r1 = (i1 - 1) // b
    c0 = j0 // b
    c1 = (j1 - 1) // b
    ptr_off = ao[l]
    idx_off = ao[l] + n_rows_c + 1
    cnt = _coarse_count(aux, ptr_off, idx_off, r0, r1, c0, c1)
    return _count_class(cnt, (r1 - r0 + 1) * (c1 - c0 + 1))


@njit(cache=True, inline="always")
def _complement(c):
    """Class of ~x from the class of x: EMPTY and FULL swap, PARTIAL / UNKNOWN stay."""
    if c == EMPTY:
        return FULL
    if c == FULL:
        return EMPTY
    return c


@njit(cache=True)
def _run_classes(ops, args, lcls, stack):
    """Evaluate the postfix program on leaf classes ``lcls``; returns the block class."""
    sp = 0
    for k in range(ops.shape[0]):
        op = ops[k]
        if op == OP_LEAF:
            stack[sp] = lcls[args[k]]
            sp += 1
        elif op == OP_NOT:
            stack[sp - 1] = _complement(stack[sp - 1])
        else:
            n = args[k]
            absorb = EMPTY if op == OP_AND else FULL  # value that decides the result
            neutral = FULL if op == OP_AND else EMPTY
            decided = False
            undecided = 0
            last = neutral
            for m in range(sp - n, sp):
                c = stack[m]
                if c == absorb:
                    decided = True
                elif c != neutral:
                    undecided += 1
                    last = c
            sp -= n
            if decided:
                stack[sp] = absorb
            elif undecided == 0:
                stack[sp] = neutral
            elif undecided == 1:
                stack[sp] = last
            else:
                stack[sp] = UNKNOWN
            sp += 1
    return stack[0]


@njit(cache=True)
def _lookup_slot(slot_kind, slot_tail, slot_ctx, n_slots, kind, tail, ctx):
    for s in range(n_slots):
        if slot_kind[s] == kind and slot_tail[s] == tail and slot_ctx[s] == ctx:
            return s
    return -1


@njit(cache=True)
def _is_generic(ltype, p0, bq, bk):
    """True if some leaf must be classified block by block (SEG, G, unaligned B)."""
    for l in range(ltype.shape[0]):
        if ltype[l] == T_SEG or ltype[l] == T_G:
            return True
        if ltype[l] == T_B and (p0[l] % bq != 0 or p0[l] % bk != 0):
            return True  # a block straddles coarse cells
    return False


@njit(cache=True)
def _segment(qb, kb, generic, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, bq, bk, g,
             tab_cls, tab_run, to, lcls, cursor):
    """Leaf classes of block (qb, kb) into ``lcls``; returns the end of the run of blocks
    (along the row) over which every leaf keeps its class.

    Interior blocks (full bq x bk extent) read each structured leaf's class from a
    precomputed table (``tab_cls`` at offset ``to[l]``: per diagonal for D, per
    anti-diagonal for S, per row for R, per column for C) together with the distance to
    its next change (``tab_run``). Ragged tail blocks and generic leaves are classified
    block by block. ``cursor`` carries aligned block-level leaves' position in their
    coarse CSR row (reset at kb == 0).
    """
    n_kb = -(-kv_len // bk)
    row_int = q_len // bq
    col_int = kv_len // bk
    L = ltype.shape[0]
    i0 = qb * bq
    j0 = kb * bk
    if generic or qb >= row_int or kb >= col_int:
        i1 = min(i0 + bq, q_len)
        j1 = min(j0 + bk, kv_len)
        for l in range(L):
            lcls[l] = leaf_class(l, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, i0, i1, j0, j1)
        return kb + 1
    sx = bk // g
    nxt = col_int
    for l in range(L):
        t = ltype[l]
        if t == T_D:
            x = (i0 - j0 + (n_kb - 1) * bk) // g
            lcls[l] = tab_cls[to[l] + x]
            nxt = min(nxt, kb + tab_run[to[l] + x] // sx + 1)
        elif t == T_S:
            y = (i0 + j0) // g
            lcls[l] = tab_cls[to[l] + y]
            nxt = min(nxt, kb + tab_run[to[l] + y] // sx + 1)
        elif t == T_R:
            lcls[l] = tab_cls[to[l] + qb]
        elif t == T_C:
            lcls[l] = tab_cls[to[l] + kb]
            nxt = min(nxt, kb + tab_run[to[l] + kb] + 1)
        else:
            # aligned block-level leaf: the block lies in coarse cell (r, c)
            b = p0[l]
            n_rows_c = p1[l]
            ptr_off = ao[l]
            nnz_c = aux[ptr_off + n_rows_c]
            idx_off = ptr_off + n_rows_c + 1
            run_off = idx_off + nnz_c
            r = i0 // b
            c = j0 // b
            hi = aux[ptr_off + r + 1]
            if kb == 0:
                cursor[l] = aux[ptr_off + r]
            k = cursor[l]  # columns only grow along a row: advance, never search
            while k < hi and aux[idx_off + k] < c:
                k += 1
            cursor[l] = k
            if k < hi and aux[idx_off + k] == c:
                lcls[l] = FULL
                change = aux[idx_off + aux[run_off + k]] + 1
            else:
                lcls[l] = EMPTY
                change = aux[idx_off + k] if k < hi else (kv_len + b - 1) // b
            nxt = min(nxt, (change * b) // bk)
    return nxt


@njit(cache=True)
def _key_kind(lcls, ltype, qb, kb, n_qb_int, n_kb_int, max_ctx_leaves):
    """(kind, tail, ctx) of an undecided block: which single axis its undecided leaves
    share (K_UNIQUE if none or several), its ragged-tail flags and decided-leaf classes."""
    L = ltype.shape[0]
    axes = 0
    for l in range(L):
        if lcls[l] == PARTIAL or lcls[l] == UNKNOWN:
            axes |= 1 << ltype[l]
    kind = K_UNIQUE
    if L <= max_ctx_leaves:
        if axes == 1 << T_D:
            kind = K_D
        elif axes == 1 << T_S:
            kind = K_S
        elif axes == 1 << T_R:
            kind = K_R
        elif axes == 1 << T_C:
            kind = K_C
    ctx = 0
    for l in range(L):
        ctx = ctx * 4 + lcls[l]
    tail = 0
    if qb >= n_qb_int:
        tail += 2
    if kb >= n_kb_int:
        tail += 1
    return kind, tail, ctx


@njit(cache=True)
def plan_rows(ops, args, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, bq, bk, g,
              tab_cls, tab_run, to, max_ctx_leaves, counts, uniq):
    """First pass over block rows (serial, O(segments)): non-empty blocks per row into
    ``counts``, blocks needing a key of their own into ``uniq``, and the table of key
    *slots* (kind, tail, decided-leaf classes) shared by undecided blocks.

    Returns (slot_kind, slot_tail, slot_ctx) of the slots found.
    """
    n_qb = -(-q_len // bq)
    n_kb = -(-kv_len // bk)
    L = ltype.shape[0]
    lcls = np.empty(L, dtype=np.int8)
    cursor = np.zeros(L, dtype=np.int64)
    stack = np.empty(ops.shape[0] + 1, dtype=np.int8)
    generic = _is_generic(ltype, p0, bq, bk)
    slot_kind = np.zeros(16, dtype=np.int64)
    slot_tail = np.zeros(16, dtype=np.int64)
    slot_ctx = np.zeros(16, dtype=np.int64)
    n_slots = 0
    for qb in range(n_qb):
        cnt = 0
        un = 0
        kb = 0
        while kb < n_kb:
            nxt = _segment(qb, kb, generic, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, bq, bk, g,
                           tab_cls, tab_run, to, lcls, cursor)
            c = _run_classes(ops, args, lcls, stack)
            if c != EMPTY:
                cnt += nxt - kb
                if c != FULL:
                    kind, tail, ctx = _key_kind(lcls, ltype, qb, kb, q_len // bq, kv_len // bk, max_ctx_leaves)
                    if kind == K_UNIQUE:
                        un += nxt - kb
                    elif _lookup_slot(slot_kind, slot_tail, slot_ctx, n_slots, kind, tail, ctx) < 0:
                        if n_slots == slot_kind.shape[0]:
                            m = 2 * n_slots
                            nk = np.zeros(m, dtype=np.int64)
                            nt = np.zeros(m, dtype=np.int64)
                            nc = np.zeros(m, dtype=np.int64)
                            nk[:n_slots] = slot_kind[:n_slots]
                            nt[:n_slots] = slot_tail[:n_slots]
                            nc[:n_slots] = slot_ctx[:n_slots]
                            slot_kind, slot_tail, slot_ctx = nk, nt, nc
                        slot_kind[n_slots] = kind
                        slot_tail[n_slots] = tail
                        slot_ctx[n_slots] = ctx
                        n_slots += 1
            kb = nxt
        counts[qb] = cnt
        uniq[qb] = un
    return slot_kind[:n_slots].copy(), slot_tail[:n_slots].copy(), slot_ctx[:n_slots].copy()


@njit(cache=True, parallel=True)
def fill_rows(ops, args, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, bq, bk, g,
              tab_cls, tab_run, to, max_ctx_leaves, row_ptr, uniq_ptr, slot_kind, slot_tail, slot_ctx, W,
              cand_col, cand_cls, cand_key, rep):
    """Second pass, parallel over block rows: write every non-empty block's column,
    class and content key.

    Keys are computed, not assigned: a block of slot s at axis coordinate x gets key
    ``s * W + x`` (blocks sharing it provably hold the same bits: their undecided leaves
    share one axis, their decided leaves have equal classes, and their coordinate and
    ragged extent agree); every other undecided block gets ``n_slots * W + uniq_ptr[qb] + u``.
    ``rep[key]`` receives some block holding the key, packed ``qb << 32 | kb`` (threads
    may race to write it; any of them is a valid representative).
    """
    n_qb = -(-q_len // bq)
    n_kb = -(-kv_len // bk)
    L = ltype.shape[0]
    n_slots = slot_kind.shape[0]
    generic = _is_generic(ltype, p0, bq, bk)
    for qb_ in prange(n_qb):
        qb = np.int64(qb_)  # prange indices may be unsigned; keep coordinates int64
        lcls = np.empty(L, dtype=np.int8)
        cursor = np.zeros(L, dtype=np.int64)
        stack = np.empty(ops.shape[0] + 1, dtype=np.int8)
        i0 = qb * bq
        pos = row_ptr[qb]
        u = n_slots * W + uniq_ptr[qb]
        last_kind = -1
        last_tail = -1
        last_ctx = -1
        last_slot = -1
        kb = 0
        while kb < n_kb:
            nxt = _segment(qb, kb, generic, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, bq, bk, g,
                           tab_cls, tab_run, to, lcls, cursor)
            c = _run_classes(ops, args, lcls, stack)
            if c == EMPTY:
                kb = nxt
                continue
            if c == FULL:
                for k2 in range(kb, nxt):
                    cand_col[pos] = k2
                    cand_cls[pos] = FULL
                    cand_key[pos] = -1
                    pos += 1
                kb = nxt
                continue
            kind, tail, ctx = _key_kind(lcls, ltype, qb, kb, q_len // bq, kv_len // bk, max_ctx_leaves)
            if kind == K_UNIQUE:
                for k2 in range(kb, nxt):
                    cand_col[pos] = k2
                    cand_cls[pos] = c
                    cand_key[pos] = u
                    rep[u] = (np.int64(qb) << 32) | k2
                    u += 1
                    pos += 1
                kb = nxt
                continue
            if kind == last_kind and tail == last_tail and ctx == last_ctx:
                slot = last_slot
            else:
                slot = _lookup_slot(slot_kind, slot_tail, slot_ctx, n_slots, kind, tail, ctx)
                last_kind, last_tail, last_ctx, last_slot = kind, tail, ctx, slot
            if kind == K_D:
                coord = (i0 - kb * bk + (n_kb - 1) * bk) // g
                step = -(bk // g)
            elif kind == K_S:
                coord = (i0 + kb * bk) // g
                step = bk // g
            elif kind == K_R:
                coord = qb
                step = 0
            else:
                coord = kb
                step = 1
            base = slot * W
            for k2 in range(kb, nxt):
                key = base + coord
                cand_col[pos] = k2
                cand_cls[pos] = c
                cand_key[pos] = key
                if rep[key] < 0:
                    rep[key] = (np.int64(qb) << 32) | k2
                coord += step
                pos += 1
            kb = nxt


@njit(cache=True)
def _leaf_bits(l, ltype, memb, po, aux, ao, p0, p1, q_len, kv_len, i0, j0, rows, cols, gbits, gidx, t, out):
    """Element bits of leaf ``l`` on the block at (i0, j0) into out[:rows, :cols]."""
    ty = ltype[l]
    base = po[l]
    if ty == T_D:
        off = i0 - j0 + (kv_len - 1)
        for a in range(rows):
            for b in range(cols):
                out[a, b] = memb[base + off + a - b] != 0
    elif ty == T_S:
        off = i0 + j0
        for a in range(rows):
            for b in range(cols):
                out[a, b] = memb[base + off + a + b] != 0
    elif ty == T_R:
        for a in range(rows):
            v = memb[base + i0 + a] != 0
            for b in range(cols):
                out[a, b] = v
    elif ty == T_C:
        for a in range(rows):
            for b in range(cols):
                out[a, b] = memb[base + j0 + b] != 0
    elif ty == T_SEG:
        s = ao[l]
        for a in range(rows):
            sa = aux[s + i0 + a]
            for b in range(cols):
                out[a, b] = sa == aux[s + j0 + b]
    elif ty == T_G:
        gi = gidx[l]
        for a in range(rows):
            for b in range(cols):
                out[a, b] = gbits[gi, t, a, b]
    else:
        bb = p0[l]
        n_rows_c = p1[l]
        ptr_off = ao[l]
        idx_off = ao[l] + n_rows_c + 1
        for a in range(rows):
            r = (i0 + a) // bb
            lo = aux[ptr_off + r]
            hi = aux[ptr_off + r + 1]
            seg = aux[idx_off + lo: idx_off + hi]
            for b in range(cols):
                c = (j0 + b) // bb
                k = np.searchsorted(seg, c)
                out[a, b] = k < seg.shape[0] and seg[k] == c


@njit(cache=True, parallel=True)
def block_bits(ops, args, ltype, pref, memb, po, aux, ao, p0, p1, q_len, kv_len, bq, bk,
               rep_qb, rep_kb, gbits, gidx, packed, kclass):
    """Evaluate the program's element bits on each representative block.

    Leaves whose class on the block is decided are constants (no element work); only
    undecided leaves are expanded to bits. Writes packed little-endian bits to
    ``packed[t]`` and the block's true class (EMPTY / PARTIAL / FULL) to ``kclass[t]``.
    """
    n = rep_qb.shape[0]
    depth = ops.shape[0] + 1
    n_chunks = min(n, 256)
    for ch in prange(n_chunks):
        pool = np.empty((depth, bq, bk), dtype=np.bool_)
        tag = np.empty(depth, dtype=np.int8)  # EMPTY / FULL constants, or PARTIAL = array
        slot = np.empty(depth, dtype=np.int64)  # which pool buffer holds the array
        free = np.empty(depth, dtype=np.int64)
        t0 = ch * n // n_chunks
        t1 = (ch + 1) * n // n_chunks
        for t in range(t0, t1):
            _eval_one(t, ops, args, ltype, pref, memb, po, aux, ao, p0, p1, q_len, kv_len, bq, bk,
                      rep_qb, rep_kb, gbits, gidx, packed, kclass, pool, tag, slot, free)


@njit(cache=True)
def _eval_one(t, ops, args, ltype, pref, memb, po, aux, ao, p0, p1, q_len, kv_len, bq, bk,
              rep_qb, rep_kb, gbits, gidx, packed, kclass, pool, tag, slot, free):
    """Evaluate one representative block (see block_bits)."""
    depth = ops.shape[0] + 1
    qb = rep_qb[t]
    kb = rep_kb[t]
    i0 = qb * bq
    j0 = kb * bk
    rows = min(bq, q_len - i0)
    cols = min(bk, kv_len - j0)
    for e in range(depth):
        free[e] = depth - 1 - e
    n_free = depth
    sp = 0
    for k in range(ops.shape[0]):
        op = ops[k]
        if op == OP_LEAF:
            l = args[k]
            c = leaf_class(l, ltype, pref, po, aux, ao, p0, p1, q_len, kv_len, i0, i0 + rows, j0, j0 + cols)
            if c == EMPTY or c == FULL:
                tag[sp] = c
            else:
                n_free -= 1
                s = free[n_free]
                _leaf_bits(l, ltype, memb, po, aux, ao, p0, p1, q_len, kv_len, i0, j0, rows, cols,
                           gbits, gidx, t, pool[s])
                tag[sp] = PARTIAL
                slot[sp] = s
            sp += 1
        elif op == OP_NOT:
            tag[sp - 1] = _complement(tag[sp - 1])
            if tag[sp - 1] == PARTIAL:
                buf = pool[slot[sp - 1]]
                for a in range(rows):
                    for b in range(cols):
                        buf[a, b] = not buf[a, b]
        else:
            m = args[k]
            is_and = op == OP_AND
            absorb = EMPTY if is_and else FULL
            neutral = FULL if is_and else EMPTY
            decided = False
            acc = -1
            for e in range(sp - m, sp):
                c = tag[e]
                if c == absorb:
                    decided = True
                elif c == PARTIAL:
                    if acc < 0:
                        acc = slot[e]
                    else:
                        src = pool[slot[e]]
                        dst = pool[acc]
                        if is_and:
                            for a in range(rows):
                                for b in range(cols):
                                    dst[a, b] = dst[a, b] and src[a, b]
                        else:
                            for a in range(rows):
                                for b in range(cols):
                                    dst[a, b] = dst[a, b] or src[a, b]
                        free[n_free] = slot[e]
                        n_free += 1
            sp -= m
            if decided:
                if acc >= 0:
                    free[n_free] = acc
                    n_free += 1
                tag[sp] = absorb
            elif acc < 0:
                tag[sp] = neutral
            else:
                tag[sp] = PARTIAL
                slot[sp] = acc
            sp += 1
    # pack the result
    c = tag[0]
    if c == EMPTY or c == FULL:
        kclass[t] = c
        return
    buf = pool[slot[0]]
    cnt = 0
    full_bytes = cols >> 3
    for a in range(rows):
        row = buf[a]
        for c in range(full_bytes):  # branch-free: 8 bits per byte
            v = 0
            for k in range(8):
                v |= np.int64(row[c * 8 + k]) << k
            cnt += np.int64(row[c * 8]) + row[c * 8 + 1] + row[c * 8 + 2] + row[c * 8 + 3] + \
                row[c * 8 + 4] + row[c * 8 + 5] + row[c * 8 + 6] + row[c * 8 + 7]
            packed[t, a, c] = np.uint8(v)
        for b in range(full_bytes * 8, cols):
            if row[b]:
                cnt += 1
                packed[t, a, b >> 3] |= np.uint8(1 << (b & 7))
    if cnt == 0:
        kclass[t] = EMPTY
    elif cnt == rows * cols:
        kclass[t] = FULL
    else:
        kclass[t] = PARTIAL


@njit(cache=True)
def finalize(row_ptr, cand_col, cand_cls, cand_key, kclass, key_pid):
    """Turn candidates into BSR in place: resolve keys to kinds / partial ids, drop empties.

    On return ``cand_cls`` holds kinds, ``cand_key`` partial ids (-1 for full), and
    ``row_ptr`` the compacted offsets; returns the number of blocks kept.
    """
    n_qb = row_ptr.shape[0] - 1
    out = 0
    start = 0
    for qb in range(n_qb):
        end = row_ptr[qb + 1]
        for c in range(start, end):
            k = cand_key[c]
            if k < 0:
                kind = FULL
                pid = -1
            else:
                kind = kclass[k]
                pid = key_pid[k] if kind == PARTIAL else -1
            if kind == EMPTY:
                continue
            cand_col[out] = cand_col[c]
            cand_cls[out] = kind
            cand_key[out] = pid
            out += 1
        start = end
        row_ptr[qb + 1] = out
    return out
