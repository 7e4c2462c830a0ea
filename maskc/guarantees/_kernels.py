"""numba kernels of the reachability engines (bitsets of uint64 words).

* :func:`sumset_hops`: breadth-first hop counts on a 1-D index space of L positions
  where one hop adds any shift from a set (the offset sumset of a Toeplitz pattern).
  Each hop costs O(|shifts| * L / 64) word operations.
* :func:`graph_hops`: all-sources reachability on a token graph given as CSR; row i of
  ``R`` is the bitset of tokens reachable from i. Each hop costs O(nnz * N / 64).
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _extract(src, bitpos):
    q = bitpos >> 6
    r = bitpos & 63
    if r == 0:
        return src[q]
    return (src[q] >> np.uint64(r)) | (src[q + 1] << np.uint64(64 - r))


@njit(cache=True)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True)
def sumset_hops(start, shifts, target, max_hops, max_work):
    """Hop count of every position of [0, L) from the positions in ``start``.

    One hop moves position y to y + s for any s in ``shifts`` (int64, |s| < L), staying
    inside [0, L). Returns ``(hops int32 [L], done_hops, fixpoint, exceeded)``; hops = -1
    for positions not reached. Stops when every ``target`` position is reached, at a
    fixpoint, after ``max_hops`` hops, or (``exceeded``) before a hop that would take the
    word operations past ``max_work``.
    """
    L = start.shape[0]
    W = (L + 63) // 64
    S = np.zeros(W, dtype=np.uint64)
    hops = np.full(L, -1, dtype=np.int32)
    remaining = 0
    for y in range(L):
        if start[y]:
            S[y >> 6] |= _ONE << np.uint64(y & 63)
            hops[y] = 0
        elif target[y]:
            remaining += 1
    tail = L - 64 * (W - 1)
    last_mask = _ALL if tail == 64 else ((_ONE << np.uint64(tail)) - _ONE)
    P = np.zeros(3 * W + 1, dtype=np.uint64)
    k = 0
    fixpoint = False
    n_shifts = 0
    for t in range(shifts.shape[0]):
        if shifts[t] != 0:
            n_shifts += 1
    per_hop = (n_shifts + 2) * W
    work = 0
    while remaining > 0 and k < max_hops:
        if work + per_hop > max_work:
            return hops, k, False, True
        work += per_hop
        k += 1
        P[W : 2 * W] = S
        Nw = S.copy()
        for t in range(shifts.shape[0]):
            s = shifts[t]
            if s == 0:
                continue
            o = 64 * W - s
            for w in range(W):
                Nw[w] |= _extract(P, o + 64 * w)
        Nw[W - 1] &= last_mask
        changed = False
        for w in range(W):
            new = Nw[w] & ~S[w]
            if new != 0:
                changed = True
                for b in range(64):
                    if (new >> np.uint64(b)) & _ONE:
                        y = 64 * w + b
                        hops[y] = k
                        if target[y]:
                            remaining -= 1
        S = Nw
        if not changed:
            fixpoint = True
            break
    return hops, k, fixpoint, False


@njit(cache=True)
def graph_hops(indptr, indices, n, causal_targets, causal_graph, max_hops, max_work):
    """All-sources reachability by hops on the CSR token graph (query row -> key).

    ``R[i]`` starts as {i} (a token is its own residual stream) and after hop k holds
    every token reachable from i by a path of at most k allowed edges. Targets of row
    i are keys 0..i (``causal_targets``) or all keys. When ``causal_graph`` (no edge
    j > i) a row only keeps the words up to its own position.

    Returns ``(unreached int64 [k+1], first_i int64 [k+1], first_j int64 [k+1], R,
    hops_done, fixpoint, work_exceeded)``: unreached target pairs and the smallest
    unreached (i, j) after each hop 0..k.
    """
    W = (n + 63) // 64
    R = np.zeros((n, W), dtype=np.uint64)
    for i in range(n):
        R[i, i >> 6] |= _ONE << np.uint64(i & 63)
    cap = max_hops + 1
    unreached = np.zeros(cap, dtype=np.int64)
    first_i = np.full(cap, -1, dtype=np.int64)
    first_j = np.full(cap, -1, dtype=np.int64)
    k = 0
    fixpoint = False
    exceeded = False
    work = 0
    while True:
        # count unreached targets after hop k
        cnt = 0
        fi = -1
        fj = -1
        for i in range(n):
            top = i + 1 if causal_targets else n
            words = (top + 63) // 64
            for w in range(words):
                bits = 64 if 64 * (w + 1) <= top else top - 64 * w
                m = _ALL if bits == 64 else ((_ONE << np.uint64(bits)) - _ONE)
                miss = ~R[i, w] & m
                if miss != 0:
                    cnt += np.int64(_popcount(miss))
                    if fi < 0:
                        fi = i
                        for b in range(64):
                            if (miss >> np.uint64(b)) & _ONE:
                                fj = 64 * w + b
                                break
        unreached[k] = cnt
        first_i[k] = fi
        first_j[k] = fj
        if cnt == 0 or k >= max_hops:
            break
        nnz = indptr[n]
        work += nnz * W
        if work > max_work:
            exceeded = True
            break
        Rn = R.copy()
        changed = False
        for i in range(n):
            words = (i >> 6) + 1 if causal_graph else W
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                for w in range(words):
                    v = Rn[i, w] | R[j, w]
                    if v != Rn[i, w]:
                        Rn[i, w] = v
                        changed = True
        R = Rn
        k += 1
        if not changed:
            fixpoint = True
            unreached[k] = cnt
            first_i[k] = fi
            first_j[k] = fj
            break
    return unreached[: k + 1], first_i[: k + 1], first_j[: k + 1], R, k, fixpoint, exceeded
