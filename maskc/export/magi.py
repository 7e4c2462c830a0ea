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

from maskc.errors import TooLargeError
from maskc.ir.layout import DEFAULT_MAX_DENSE_ELEMENTS, Layout
from maskc.export._common import as_block, check_layout, int_array, positive_int, select_head, to_torch

__all__ = ["to_magi", "from_magi", "MAGI_MASK_TYPES"]

#: MagiAttention ``attn_type_map`` codes, by index.
MAGI_MASK_TYPES: tuple[str, ...] = ("full", "causal", "inv_causal", "bi_causal")
_DELTA_TYPE = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 3}

#: Default cap on the number of slices :func:`to_magi` emits.
DEFAULT_MAX_SLICES = 1 << 16


def _row_runs(layout: Layout, head: int):
    csr = layout.to_scipy("csr", head=head)
    csr.sort_indices()
    rows = np.repeat(np.arange(layout.q_len, dtype=np.int64), np.diff(csr.indptr))
    cols = csr.indices.astype(np.int64)
    if cols.size == 0:
        return np.zeros(layout.q_len + 1, np.int64), cols, cols
    new = np.ones(cols.size, bool)
    new[1:] = (cols[1:] != cols[:-1] + 1) | (rows[1:] != rows[:-1])
    starts_at = np.flatnonzero(new)
    run_start = cols[starts_at]
    ends_at = np.append(starts_at[1:], cols.size) - 1
    run_end = cols[ends_at] + 1
    run_row = rows[starts_at]
    ptr = np.zeros(layout.q_len + 1, np.int64)
    np.cumsum(np.bincount(run_row, minlength=layout.q_len), out=ptr[1:])
    return ptr, run_start, run_end


def to_magi(layout: Layout, head: int | None = None, max_slices: int = DEFAULT_MAX_SLICES,
            device: Any = None) -> dict[str, Any]:
    """MagiAttention slices for one head: ``q_ranges`` / ``k_ranges`` int32 [n, 2] and ``attn_type_map``
    int32 [n] (codes of :data:`MAGI_MASK_TYPES`), plus ``total_seqlen_q`` / ``total_seqlen_k``.

    Exact (:func:`from_magi` rebuilds the same token mask). Rows are scanned for runs of
    allowed keys; runs of consecutive rows whose start and end each move by 0 or +1 per
    row become one full / causal / inv_causal / bi_causal slice, so causal, sliding
    windows and block-diagonal masks take a handful of slices. Raises ValueError when more
    than ``max_slices`` slices would be needed (scattered patterns such as prime offsets),
    and when the layout stores several different heads and ``head`` is not given
    (MagiAttention applies one mask to every head).

    Example:
        >>> import numpy as np, maskc as mc
        >>> m = np.tril(np.ones((8, 8), bool)) & ~np.tril(np.ones((8, 8), bool), -3)  # window 3
        >>> d = mc.export.to_magi(mc.Layout.from_dense(m, block=4))
        >>> d["q_ranges"].tolist(), d["k_ranges"].tolist(), d["attn_type_map"].tolist()
        ([[0, 3], [3, 8]], [[0, 3], [1, 8]], [1, 3])
    """
    layout = check_layout(layout, "to_magi")
    h = select_head(layout, head, "MagiAttention")
    max_slices = positive_int(max_slices, "max_slices")
    ptr, rs, re = _row_runs(layout, h)
    out: list[tuple[int, int, int, int, int]] = []
    # open tracks, one per run of the previous row: [row0, s0, e0, s_last, e_last, delta or None]
    tracks: list[list] = []

    def close(t: list, r_end: int) -> None:
        r0, s0, e0, _, e_last, delta = t
        typ = _DELTA_TYPE[delta or (0, 0)]
        k_end = e0 if typ in (0, 2) else e_last
        out.append((r0, r_end, s0, k_end, typ))
        if len(out) > max_slices:
            raise ValueError(
                f"MagiAttention needs more than max_slices={max_slices} slices for head {h} of this layout "
                f"(its rows have {rs.size:,} runs of allowed keys that do not line up into full / causal / "
                "band slices); raise max_slices, or use a block-sparse export (to_flashinfer_bsr, to_flex_block_mask)")

    for i in range(layout.q_len):
        s, e = rs[ptr[i]:ptr[i + 1]].tolist(), re[ptr[i]:ptr[i + 1]].tolist()
        if len(s) != len(tracks):
            for t in tracks:
                close(t, i)
            tracks = [[i, a, b, a, b, None] for a, b in zip(s, e)]
            continue
        for r, (a, b) in enumerate(zip(s, e)):
            t = tracks[r]
            d = (a - t[3], b - t[4])
            if d in _DELTA_TYPE and (t[5] is None or t[5] == d):
                t[3], t[4], t[5] = a, b, d
            else:
                close(t, i)
                tracks[r] = [i, a, b, a, b, None]
    for t in tracks:
        close(t, layout.q_len)
    arr = np.array(out, dtype=np.int32).reshape(-1, 5)
    res = {"q_ranges": np.ascontiguousarray(arr[:, 0:2]), "k_ranges": np.ascontiguousarray(arr[:, 2:4]),
           "attn_type_map": np.ascontiguousarray(arr[:, 4]),
           "total_seqlen_q": layout.q_len, "total_seqlen_k": layout.kv_len}
    return to_torch(res, device)


def from_magi(q_ranges: Any, k_ranges: Any, attn_type_map: Any, total_seqlen_q: int, total_seqlen_k: int,
              block: int | tuple[int, int] = 128, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS,
              pattern_text: str = "") -> Layout:
    """Layout (one head) from MagiAttention slices; ``attn_type_map`` holds codes 0-3 or names.

    Builds the dense mask (``total_seqlen_q * total_seqlen_k`` below ``max_elements``) and
    refuses overlapping slices.

    Example:
        >>> import maskc as mc
        >>> lay = mc.export.from_magi([[0, 8]], [[0, 8]], ["causal"], 8, 8, block=4)
        >>> lay.nnz
        36
    """
    Lq, Lk = positive_int(total_seqlen_q, "total_seqlen_q"), positive_int(total_seqlen_k, "total_seqlen_k")
    qr = int_array(q_ranges, "q_ranges", 2)
    kr = int_array(k_ranges, "k_ranges", 2)
    types = np.asarray(attn_type_map.detach().cpu().numpy() if hasattr(attn_type_map, "detach") else attn_type_map)
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
    if Lq * Lk > max_elements:
        raise TooLargeError(f"from_magi builds a dense {Lq}x{Lk} mask, above max_elements={max_elements:,}")
    count = np.zeros((Lq, Lk), np.int32)
    for t, (q0, q1), (k0, k1) in zip(types.tolist(), qr.tolist(), kr.tolist()):
        if not (0 <= q0 < q1 <= Lq and 0 <= k0 < k1 <= Lk):
            raise ValueError(f"slice q_range [{q0}, {q1}) k_range [{k0}, {k1}) is empty or outside "
                             f"[0, {Lq}) x [0, {Lk})")
        a = np.arange(q1 - q0)[:, None]
        b = np.arange(k1 - k0)[None, :]
        shift = (k1 - k0) - (q1 - q0)
        m = np.ones((q1 - q0, k1 - k0), bool)
        if t in (1, 3):
            m &= b <= a + shift
        if t in (2, 3):
            m &= b >= a
        count[q0:q1, k0:k1] += m
    if (count > 1).any():
        i, j = (int(x) for x in np.argwhere(count > 1)[0])
        raise ValueError(f"slices overlap at query {i}, key {j}; MagiAttention slices must be disjoint")
    return Layout.from_dense(count > 0, as_block(block), pattern_text).validate()
