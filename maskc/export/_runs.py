"""Runs of allowed keys per query row (or of allowed queries per key column), straight from blocks.

The interval exporters (MagiAttention slices, FlashMask column intervals) need, for every
token row (column), the maximal runs of consecutive allowed positions. They are computed
from the block arrays without a token-level matrix: consecutive FULL blocks of a block
row are first merged into one *segment* (so a causal row costs one segment, not one step
per block), the runs of every row of every distinct partial mask are found once, and each
token row then walks its segments and the mask-row runs of its partial blocks.
The work is estimated from the block arrays before anything runs and refused
(TooLargeError) above a bound.
"""

from __future__ import annotations

import numpy as np
from maskc.jit import njit

from maskc.ir.kinds import FULL
from maskc.ir.layout import Layout
from maskc.limits import refuse_above

#: Default bound on the row-walk steps of one run extraction (about a second of numba).
DEFAULT_MAX_WORK = 1 << 30
#: Default bound on the runs kept (16 bytes each).
DEFAULT_MAX_RUNS = 1 << 25


def _segments(ptr: np.ndarray, idx: np.ndarray, kind: np.ndarray, pid: np.ndarray):
    """Merge consecutive FULL blocks of each row into one segment: (seg_ptr, lo, hi, pid) with
    block range [lo, hi] and pid -1 for a FULL segment."""
    n = idx.shape[0]
    R = ptr.shape[0] - 1
    row = np.repeat(np.arange(R, dtype=np.int64), np.diff(ptr))
    full = kind == FULL
    cont = np.zeros(n, bool)
    if n > 1:
        cont[1:] = full[1:] & full[:-1] & (row[1:] == row[:-1]) & (idx[1:].astype(np.int64) == idx[:-1] + 1)
    start = np.flatnonzero(~cont)
    end = np.append(start[1:], n) - 1 if n else start
    seg_row = row[start]
    seg_ptr = np.zeros(R + 1, np.int64)
    np.cumsum(np.bincount(seg_row, minlength=R), out=seg_ptr[1:])
    return seg_ptr, idx[start].astype(np.int64), idx[end].astype(np.int64), np.where(full[start], -1, pid[start])


@njit(cache=True)
def _mask_runs(bits, fill, ptr, starts, ends):
    """Runs of set bits of every row of every mask (bits [U, rows, cols]): count (fill=0) or write."""
    U, R, C = bits.shape
    k = 0
    for u in range(U):
        for a in range(R):
            if fill == 0:
                ptr[u * R + a] = k
            j = 0
            while j < C:
                if bits[u, a, j]:
                    j0 = j
                    while j < C and bits[u, a, j]:
                        j += 1
                    if fill == 1:
                        starts[k] = j0
                        ends[k] = j
                    k += 1
                else:
                    j += 1
    if fill == 0:
        ptr[U * R] = k


@njit(cache=True)
def _walk(seg_ptr, lo, hi, pid, mr_ptr, mr_s, mr_e, n_rows, n_cols, br, bc, out_ptr, starts, ends, fill):
    """Count (fill=0: out_ptr[i] = runs of row i) or write (fill=1) the runs of every token row."""
    R = seg_ptr.shape[0] - 1
    for rb in range(R):
        for a in range(br):
            i = rb * br + a
            if i >= n_rows:
                break
            k = out_ptr[i] if fill == 1 else 0
            cur_s = -1
            cur_e = -1
            for t in range(seg_ptr[rb], seg_ptr[rb + 1]):
                j0 = lo[t] * bc
                if pid[t] < 0:
                    first = 0
                    last = 1
                else:
                    first = mr_ptr[pid[t] * br + a]
                    last = mr_ptr[pid[t] * br + a + 1]
                for r in range(first, last):
                    if pid[t] < 0:
                        p0 = j0
                        p1 = min((hi[t] + 1) * bc, n_cols)
                    else:
                        p0 = j0 + mr_s[r]
                        p1 = j0 + mr_e[r]
                    if p0 == cur_e:
                        cur_e = p1
                    else:
                        if cur_s >= 0:
                            if fill == 1:
                                starts[k] = cur_s
                                ends[k] = cur_e
                            k += 1
                        cur_s = p0
                        cur_e = p1
            if cur_s >= 0:
                if fill == 1:
                    starts[k] = cur_s
                    ends[k] = cur_e
                k += 1
            if fill == 0:
                out_ptr[i] = k


def _runs(ptr, idx, kind, pid, bits, n_rows, n_cols, br, bc, what: str, max_work: int, max_runs: int):
    seg_ptr, lo, hi, spid = _segments(ptr, idx, kind, pid)
    U = bits.shape[0]
    mr_ptr = np.zeros(U * br + 1, np.int64)
    dummy = np.zeros(1, np.int64)
    _mask_runs(bits, 0, mr_ptr, dummy, dummy)
    mr_s = np.empty(int(mr_ptr[-1]), np.int64)
    mr_e = np.empty(int(mr_ptr[-1]), np.int64)
    _mask_runs(bits, 1, mr_ptr, mr_s, mr_e)
    runs_of_mask = mr_ptr[br::br] - mr_ptr[:-1:br] if U else np.zeros(0, np.int64)
    # each FULL segment costs one step per row of its block row; a partial one the runs of its mask
    work = int(np.where(spid < 0, br, runs_of_mask[np.maximum(spid, 0)] if U else 0).sum()) + n_rows
    refuse_above(work, max_work, f"extracting the runs of allowed {what}", "use a block-level export "
                 "(to_flex_block_mask, to_flashinfer_bsr) or pass a larger max_work", unit="steps")
    counts = np.zeros(n_rows, np.int64)
    _walk(seg_ptr, lo, hi, spid, mr_ptr, mr_s, mr_e, n_rows, n_cols, br, bc, counts, dummy, dummy, 0)
    out_ptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=out_ptr[1:])
    refuse_above(int(out_ptr[-1]), max_runs, f"the runs of allowed {what}", "use a block-level export "
                 "(to_flex_block_mask, to_flashinfer_bsr) or pass a larger max_runs", unit="runs")
    starts = np.empty(int(out_ptr[-1]), np.int64)
    ends = np.empty(int(out_ptr[-1]), np.int64)
    _walk(seg_ptr, lo, hi, spid, mr_ptr, mr_s, mr_e, n_rows, n_cols, br, bc, out_ptr, starts, ends, 1)
    return out_ptr, starts, ends


def _bits(layout: Layout, transpose: bool) -> np.ndarray:
    if not layout.n_unique_masks:
        return np.zeros((0, layout.block_k if transpose else layout.block_q,
                         layout.block_q if transpose else layout.block_k), bool)
    return np.ascontiguousarray(layout.mask_bits.transpose(0, 2, 1)) if transpose else layout.mask_bits


def row_runs(layout: Layout, s: int, max_work: int = DEFAULT_MAX_WORK, max_runs: int = DEFAULT_MAX_RUNS):
    """Runs of allowed keys of every query row of slice ``s``: (ptr [q_len + 1], starts, ends), half-open.

    Example:
        >>> import numpy as np, maskc as mc
        >>> ptr, a, b = row_runs(mc.Layout.from_dense(np.tril(np.ones((3, 3), bool)), 2), 0)
        >>> ptr.tolist(), a.tolist(), b.tolist()
        ([0, 1, 2, 3], [0, 0, 0], [1, 2, 3])
    """
    lo, hi = layout.slice_range(s)
    return _runs(layout.row_ptr[s] - lo, layout.col_idx[lo:hi], layout.kind[lo:hi], layout.partial_id[lo:hi],
                 _bits(layout, False), layout.q_len, layout.kv_len, layout.block_q, layout.block_k, "keys per query",
                 max_work, max_runs)


def col_runs(layout: Layout, s: int, max_work: int = DEFAULT_MAX_WORK, max_runs: int = DEFAULT_MAX_RUNS):
    """Runs of allowed queries of every key column of slice ``s``: (ptr [kv_len + 1], starts, ends)."""
    lo, hi = layout.slice_range(s)
    csc = layout.csc
    perm = csc.perm[lo:hi]
    return _runs(csc.col_ptr[s] - lo, csc.row_idx[lo:hi], layout.kind[perm], layout.partial_id[perm],
                 _bits(layout, True), layout.kv_len, layout.q_len, layout.block_k, layout.block_q,
                 "queries per key", max_work, max_runs)
