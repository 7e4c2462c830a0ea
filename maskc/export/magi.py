"""MagiAttention slices (``magi_attention.functional.flex_flash_attn_func`` / ``magi_attn_flex_key``,
MagiAttention 1.0).

A mask is a list of disjoint slices ``(q_range, k_range, mask_type)``; ranges are half-open
``[start, end)``. Inside a slice with nq = q_end - q_start and nk = k_end - k_start, query
offset a = i - q_start may attend key offset b = j - k_start when

* ``full`` (0):        always
* ``causal`` (1):      b <= a + (nk - nq)      (bottom-right aligned)
* ``inv_causal`` (2):  b >= a                  (top-left aligned)
* ``bi_causal`` (3):   a <= b <= a + (nk - nq)  (both)

Slices must not overlap (MagiAttention would count a shared pair twice).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from maskc.jit import njit

from maskc.export._common import as_block, check_layout, int_array, positive_int, select_head, to_numpy, to_torch
from maskc.export._runs import DEFAULT_MAX_RUNS, DEFAULT_MAX_WORK, row_runs
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS
from maskc.ir.layout import Layout
from maskc.ir.runs import RunOverlapError
from maskc.limits import MAX_LEN, refuse_above

__all__ = ["to_magi", "from_magi", "MAGI_MASK_TYPES"]

#: MagiAttention ``attn_type_map`` codes, by index.
MAGI_MASK_TYPES: tuple[str, ...] = ("full", "causal", "inv_causal", "bi_causal")

#: Default cap on the number of slices :func:`to_magi` emits.
DEFAULT_MAX_SLICES = 1 << 16


@njit(cache=True)
def _open(tr, r, i, s, e):
    """Start track r at row i on run [s, e): tr rows are (row0, start0, end0, start_last, end_last, step)."""
    tr[0, r] = i
    tr[1, r] = s
    tr[2, r] = e
    tr[3, r] = s
    tr[4, r] = e
    tr[5, r] = -1


@njit(cache=True)
def _track(ptr, rs, re, q_len, out):
    """Join runs of consecutive rows into slices; returns the slice count (-1: more than out holds).

    A track follows run r of consecutive rows with the same number of runs while its start and
    end each move by a constant 0 or +1 per row: (0, 0) full, (0, +1) causal, (+1, 0)
    inv_causal, (+1, +1) bi_causal. out[k] = (q0, q1, k0, k1, type).
    """
    width = 0
    for i in range(q_len):
        width = max(width, ptr[i + 1] - ptr[i])
    tr = np.zeros((6, width), np.int64)  # step (row 5): -1 none yet, else 2 * d_start + d_end
    n_tracks = 0
    n = 0
    for i in range(q_len + 1):
        m = ptr[i + 1] - ptr[i] if i < q_len else -1
        for r in range(n_tracks):
            close = m != n_tracks
            if not close:
                ds = rs[ptr[i] + r] - tr[3, r]
                de = re[ptr[i] + r] - tr[4, r]
                code = 2 * ds + de
                if 0 <= ds <= 1 and 0 <= de <= 1 and (tr[5, r] == -1 or tr[5, r] == code):
                    tr[3, r] = rs[ptr[i] + r]
                    tr[4, r] = re[ptr[i] + r]
                    tr[5, r] = code
                    continue
            if n >= out.shape[0]:
                return -1
            typ = max(tr[5, r], 0)
            out[n, 0] = tr[0, r]
            out[n, 1] = i
            out[n, 2] = tr[1, r]
            out[n, 3] = tr[2, r] if typ == 0 or typ == 2 else tr[4, r]
            out[n, 4] = typ
            n += 1
            if not close:  # restart this track at row i
                _open(tr, r, i, rs[ptr[i] + r], re[ptr[i] + r])
        if i < q_len and m != n_tracks:
            for r in range(m):
                _open(tr, r, i, rs[ptr[i] + r], re[ptr[i] + r])
            n_tracks = m
    return n


def to_magi(layout: Layout, head: int | None = None, max_slices: int = DEFAULT_MAX_SLICES, device: Any = None,
            max_work: int = DEFAULT_MAX_WORK) -> dict[str, Any]:
    """MagiAttention slices for one head: ``q_ranges`` / ``k_ranges`` int32 [n, 2] and ``attn_type_map``
    int32 [n] (codes of :data:`MAGI_MASK_TYPES`), plus ``total_seqlen_q`` / ``total_seqlen_k``.

    Exact (:func:`from_magi` rebuilds the same token mask). The runs of allowed keys of
    every row come from the blocks (consecutive full blocks merged first, so a causal row
    costs one step plus its diagonal block); runs of consecutive rows whose start and end
    each move by 0 or +1 per row become one full / causal / inv_causal / bi_causal slice,
    so causal, sliding windows and block-diagonal masks take a handful of slices. The work
    is estimated first and refused (TooLargeError) above ``max_work`` steps; ValueError
    when more than ``max_slices`` slices would be needed (scattered patterns such as prime
    offsets), when the layout stores several different heads and ``head`` is not given
    (MagiAttention applies one mask to every head), or for batched layouts.

    Example:
        >>> import numpy as np, maskc as mc
        >>> m = np.tril(np.ones((8, 8), bool)) & ~np.tril(np.ones((8, 8), bool), -3)  # window 3
        >>> d = mc.export.to_magi(mc.Layout.from_dense(m, block=4))
        >>> d["q_ranges"].tolist(), d["k_ranges"].tolist(), d["attn_type_map"].tolist()
        ([[0, 3], [3, 8]], [[0, 3], [1, 8]], [1, 3])
    """
    layout = check_layout(layout, "to_magi")
    h = select_head(layout, head, "MagiAttention")
    max_slices = positive_int(max_slices, "max_slices", 1 << 30)
    ptr, rs, re = row_runs(layout, h, max_work)
    out = np.zeros((max_slices, 5), np.int64)
    n = _track(ptr, rs, re, layout.q_len, out)
    if n < 0:
        raise ValueError(
            f"MagiAttention needs more than max_slices={max_slices} slices for head {h} of this layout "
            f"(its rows have {rs.size:,} runs of allowed keys that do not line up into full / causal / "
            "band slices); raise max_slices, or use a block-sparse export (to_flashinfer_bsr, to_flex_block_mask)")
    arr = out[:n].astype(np.int32)
    res = {"q_ranges": np.ascontiguousarray(arr[:, 0:2]), "k_ranges": np.ascontiguousarray(arr[:, 2:4]),
           "attn_type_map": np.ascontiguousarray(arr[:, 4]),
           "total_seqlen_q": layout.q_len, "total_seqlen_k": layout.kv_len}
    return to_torch(res, device)
def from_magi(q_ranges: Any, k_ranges: Any, attn_type_map: Any, total_seqlen_q: int, total_seqlen_k: int,
              block: int | tuple[int, int] = 128, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS,
              pattern_text: str = "", max_runs: int = DEFAULT_MAX_RUNS) -> Layout:
    """Layout (one head) from MagiAttention slices; ``attn_type_map`` holds codes 0-3 or names.

    No dense mask: every slice gives one run of allowed keys per query row, and the blocks
    come from those runs (:meth:`Layout.from_runs`), so the work is O(rows of the slices +
    output blocks + partial blocks x block area). Refused (TooLargeError, before any work)
    above ``max_runs`` rows of slices in all, or ``max_elements`` bytes of packed partial-block
    tiles; overlapping slices are refused (ValueError naming a shared query and key).

    Example:
        >>> import maskc as mc
        >>> lay = mc.export.from_magi([[0, 8]], [[0, 8]], ["causal"], 8, 8, block=4)
        >>> lay.nnz
        36
    """
    Lq = positive_int(total_seqlen_q, "total_seqlen_q", MAX_LEN)
    Lk = positive_int(total_seqlen_k, "total_seqlen_k", MAX_LEN)
    qr = int_array(q_ranges, "q_ranges", 2)
    kr = int_array(k_ranges, "k_ranges", 2)
    types = to_numpy(attn_type_map, "attn_type_map")
    if types.dtype.kind in "US":
        bad = [t for t in types.tolist() if t not in MAGI_MASK_TYPES]
        if bad:
            raise ValueError(f"unknown mask type(s) {bad}; known: {list(MAGI_MASK_TYPES)}")
        types = np.array([MAGI_MASK_TYPES.index(t) for t in types.tolist()], np.int64).reshape(types.shape)
    types = int_array(types, "attn_type_map", 1)
    n = types.shape[0]
    if qr.shape != (n, 2) or kr.shape != (n, 2):
        raise ValueError(f"q_ranges and k_ranges must be [{n}, 2] to match attn_type_map, got "
                         f"{list(qr.shape)} and {list(kr.shape)}")
    if n and (types.min() < 0 or types.max() > 3):
        raise ValueError("attn_type_map values must be 0 (full), 1 (causal), 2 (inv_causal) or 3 (bi_causal)")
    bad = np.flatnonzero((qr[:, 0] < 0) | (qr[:, 0] >= qr[:, 1]) | (qr[:, 1] > Lq)
                         | (kr[:, 0] < 0) | (kr[:, 0] >= kr[:, 1]) | (kr[:, 1] > Lk))
    if bad.size:
        (q0, q1), (k0, k1) = qr[bad[0]].tolist(), kr[bad[0]].tolist()
        raise ValueError(f"slice q_range [{q0}, {q1}) k_range [{k0}, {k1}) is empty or outside "
                         f"[0, {Lq}) x [0, {Lk})")
    heights = qr[:, 1] - qr[:, 0]
    refuse_above(int(heights.sum()), max_runs, "the per-row runs of these MagiAttention slices",
                 "pass fewer or shorter slices, or a larger max_runs", unit="runs")
    # one run of allowed keys per row of every slice (see the module docstring for the four types)
    which = np.repeat(np.arange(n), heights)
    a = np.arange(which.size) - np.repeat(np.cumsum(heights) - heights, heights)  # row offset in its slice
    nk = (kr[:, 1] - kr[:, 0])[which]
    shift = nk - heights[which]
    t = types[which]
    lo = np.where((t == 2) | (t == 3), np.minimum(a, nk), 0)
    hi = np.where((t == 1) | (t == 3), np.clip(a + shift + 1, 0, nk), nk)
    k0 = kr[which, 0]
    try:
        return Layout.from_runs(Lq, Lk, as_block(block), qr[which, 0] + a, k0 + lo, k0 + np.maximum(lo, hi),
                                pattern_text=pattern_text, max_elements=max_elements).validate()
    except RunOverlapError as e:
        raise ValueError(f"slices overlap at query {e.line}, key {e.position}; MagiAttention slices must be "
                         "disjoint") from None
