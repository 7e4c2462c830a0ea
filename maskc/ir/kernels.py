"""numba kernels over the BSR arrays: structure checks, block-row indices, token CSR, counting sort.

Small inputs run as plain Python (the same source, without numba: its first call in a
process costs about half a second, :data:`PLAIN_MAX`), larger ones jitted. Each runs in O(input) time with O(output) memory (no temporaries sized by ``n_qb`` or
``n_kb`` beyond what the caller passes in), so they are safe on hostile sizes.
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.ir.kinds import FULL

#: codes returned by :func:`check_bsr` (0 = fine)
BSR_OK, BSR_PTR_RANGE, BSR_PTR_START, BSR_PTR_ORDER, BSR_PTR_CONTIG, BSR_PTR_END, BSR_COL_RANGE, BSR_COL_ORDER = range(8)
#: Inputs of at most this many entries are checked by the interpreter, not numba.
PLAIN_MAX = 1 << 14


def check_bsr(row_ptr: np.ndarray, col_idx: np.ndarray, n_kb: int) -> tuple[int, int, int]:
    """``(code, a, b)``: the first structural problem of (row_ptr [S, R + 1], col_idx) or BSR_OK.

    ``a, b`` locate it: (slice, row) for pointer problems, (block, value) for column problems.

    Example:
        >>> import numpy as np
        >>> check_bsr(np.array([[0, 1, 2]]), np.array([0, 0], np.int32), 1) == (BSR_OK, 0, 0)
        True
        >>> check_bsr(np.array([[0, 2]]), np.array([1, 0], np.int32), 2)[0] == BSR_COL_ORDER
        True
    """
    small = row_ptr.size + col_idx.size <= PLAIN_MAX
    return (_check_bsr.py_func if small else _check_bsr)(row_ptr, col_idx, n_kb)


@njit(cache=True)
def _check_bsr(row_ptr, col_idx, n_kb):
    """``(code, a, b)``: the first structural problem of (row_ptr [S, R + 1], col_idx) or BSR_OK.

    ``a, b`` locate it: (slice, row) for pointer problems, (block, value) for column problems.
    """
    S, R1 = row_ptr.shape
    nnzb = col_idx.shape[0]
    for s in range(S):
        for r in range(R1):
            v = row_ptr[s, r]
            if v < 0 or v > nnzb:
                return BSR_PTR_RANGE, s, r
    if row_ptr[0, 0] != 0:
        return BSR_PTR_START, 0, 0
    for s in range(S):
        if s > 0 and row_ptr[s, 0] != row_ptr[s - 1, R1 - 1]:
            return BSR_PTR_CONTIG, s, 0
        for r in range(R1 - 1):
            lo = row_ptr[s, r]
            hi = row_ptr[s, r + 1]
            if hi < lo:
                return BSR_PTR_ORDER, s, r
            for t in range(lo, hi):
                c = col_idx[t]
                if c < 0 or c >= n_kb:
                    return BSR_COL_RANGE, t, c
                if t > lo and c <= col_idx[t - 1]:
                    return BSR_COL_ORDER, t, c
    if row_ptr[S - 1, R1 - 1] != nnzb:
        return BSR_PTR_END, S - 1, R1 - 1
    return BSR_OK, 0, 0


def block_rows(row_ptr: np.ndarray, nnzb: int) -> np.ndarray:
    """Block row of every stored block (int32 [nnzb]); row_ptr must be valid.

    Example:
        >>> block_rows(np.array([[0, 2, 2, 3]]), 3).tolist()
        [0, 0, 2]
    """
    S, R1 = row_ptr.shape
    counts = np.diff(row_ptr, axis=1).reshape(-1)
    return np.repeat(np.tile(np.arange(R1 - 1, dtype=np.int32), S), counts)[:nnzb]


@njit(cache=True)
def counting_argsort(keys, n_buckets):
    """Stable argsort of int keys in [0, n_buckets) (int64 [n]) and the bucket counts; O(n + n_buckets)."""
    counts = np.zeros(n_buckets + 1, dtype=np.int64)
    for k in keys:
        counts[k + 1] += 1
    for b in range(n_buckets):
        counts[b + 1] += counts[b]
    pos = counts[:-1].copy()
    perm = np.empty(keys.shape[0], dtype=np.int64)
    for t in range(keys.shape[0]):
        k = keys[t]
        perm[pos[k]] = t
        pos[k] += 1
    return perm, np.diff(counts)


@njit(cache=True)
def csr_fill(row_ptr, col_idx, kind, pid, bits, q_len, kv_len, bq, bk, ptr, indices, fill):
    """Token-level CSR of one slice: pass ``fill=0`` to count keys per row into ``ptr``, ``fill=1``
    to write the sorted key indices (``ptr`` then holds the row starts)."""
    n_qb = row_ptr.shape[0] - 1
    for qb in range(n_qb):
        for a in range(bq):
            i = qb * bq + a
            if i >= q_len:
                break
            pos = ptr[i] if fill == 1 else 0
            for t in range(row_ptr[qb], row_ptr[qb + 1]):
                j0 = col_idx[t] * bk
                cols = min(bk, kv_len - j0)
                if kind[t] == FULL:
                    for b in range(cols):
                        if fill == 1:
                            indices[pos] = j0 + b
                        pos += 1
                else:
                    m = bits[pid[t], a]
                    for b in range(cols):
                        if m[b]:
                            if fill == 1:
                                indices[pos] = j0 + b
                            pos += 1
            if fill == 0:
                ptr[i] = pos
