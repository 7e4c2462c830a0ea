"""PaddlePaddle FlashMask column intervals (``paddle.nn.functional.flashmask_attention``,
PaddlePaddle 3.0).

``startend_row_indices`` int32 [batch, heads, seq_len, k] gives, for each key column j,
the query rows that are *masked*:

* ``causal=True,  k=1``: [LTS]            rows >= LTS masked (and rows < j by causality)
* ``causal=True,  k=2``: [LTS, LTE]       rows in [LTS, LTE) masked (and rows < j)
* ``causal=False, k=2``: [LTS, UTE]       rows >= LTS and rows < UTE masked
* ``causal=False, k=4``: [LTS, LTE, UTS, UTE]  rows in [LTS, LTE) and in [UTS, UTE) masked

LT* describe the lower-left triangle (rows i >= j, the diagonal included) and UT* the
upper-right triangle (rows i < j). So a column can have at most one masked run on or
below the diagonal and one above it; maskc refuses layouts that need more.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.ir.layout import DEFAULT_MAX_DENSE_ELEMENTS, Layout
from maskc.errors import TooLargeError
from maskc.export._common import as_block, check_layout, int_array, positive_int, to_torch

__all__ = ["to_flashmask", "from_flashmask"]


def _gaps(col: np.ndarray, row: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Masked runs of every column inside [lo[j], hi[j]) given allowed entries (col, row),
    sorted by column then row (CSC order). O(nnz + L), no sort of the entries.

    Returns (count [L], start [L], end [L], second_start [L], second_end [L]) where
    start/end is the first gap (hi/hi when none) and second_* the second gap (for errors).
    """
    L = lo.size
    cnt = np.bincount(col, minlength=L)
    ptr = np.zeros(L + 1, np.int64)
    np.cumsum(cnt, out=ptr[1:])
    has = cnt > 0
    first = np.where(has, row[np.minimum(ptr[:-1], max(row.size - 1, 0))] if row.size else hi, hi)
    last = np.where(has, row[np.maximum(ptr[1:] - 1, 0)] if row.size else lo - 1, lo - 1)
    inner = (col[1:] == col[:-1]) & (row[1:] - row[:-1] > 1)
    lead = first > lo  # [lo, first) (for an empty column: [lo, hi))
    trail = has & (last < hi - 1)  # [last + 1, hi)
    j = np.arange(L)
    g_col = np.concatenate([j[lead], col[1:][inner], j[trail]])
    g_s = np.concatenate([lo[lead], row[:-1][inner] + 1, last[trail] + 1])
    g_e = np.concatenate([first[lead], row[1:][inner], hi[trail]])
    order = np.lexsort((g_s, g_col))
    g_col, g_s, g_e = g_col[order], g_s[order], g_e[order]
    count = np.bincount(g_col, minlength=L)
    start, end = hi.copy(), hi.copy()
    s2, e2 = np.zeros(L, np.int64), np.zeros(L, np.int64)
    if g_col.size:
        is_first = np.ones(g_col.size, bool)
        is_first[1:] = g_col[1:] != g_col[:-1]
        start[g_col[is_first]] = g_s[is_first]
        end[g_col[is_first]] = g_e[is_first]
        second = np.zeros(g_col.size, bool)
        second[1:] = (~is_first[1:]) & is_first[:-1]
        s2[g_col[second]] = g_s[second]
        e2[g_col[second]] = g_e[second]
    return count, start, end, s2, e2


def to_flashmask(layout: Layout, causal: bool | None = None, batch: int = 1, device: Any = None) -> dict[str, Any]:
    """FlashMask ``startend_row_indices`` (and the ``causal`` flag) for a square layout.

    Returns ``{"startend_row_indices": int32 [batch, heads, L, k], "causal": bool}`` using
    the smallest form that is exact: k = 1 or 2 when causal, 2 or 4 otherwise.
    ``causal=None`` picks causal when no query attends a later key. Exact:
    :func:`from_flashmask` gives back the same token-level mask.

    Raises ValueError when the layout is not square, when ``causal=True`` but some query
    attends a later key, or when a key column has two masked runs on the same side of the
    diagonal (FlashMask keeps one run per side).

    Example:
        >>> import numpy as np, maskc as mc
        >>> m = np.tril(np.ones((6, 6), bool)) & ~np.tril(np.ones((6, 6), bool), -3)  # window 3
        >>> d = mc.export.to_flashmask(mc.Layout.from_dense(m, block=4))
        >>> d["causal"], d["startend_row_indices"][0, 0, :, 0].tolist()
        (True, [3, 4, 5, 6, 6, 6])
    """
    layout = check_layout(layout, "to_flashmask")
    batch = positive_int(batch, "batch")
    if layout.q_len != layout.kv_len:
        raise ValueError(f"FlashMask's lower / upper triangles are defined for square masks; this layout has "
                         f"q_len={layout.q_len} != kv_len={layout.kv_len}")
    L, H = layout.q_len, layout.heads
    j = np.arange(L, dtype=np.int64)
    per_head = []
    any_upper = False
    for h in range(H):
        csc = layout.to_scipy("csr", head=h).tocsc()
        csc.sort_indices()
        col = np.repeat(j, np.diff(csc.indptr))
        row = csc.indices.astype(np.int64)
        up = row < col
        if up.any():
            any_upper = True
            if causal:
                k = int(np.argmax(up))
                raise ValueError(f"causal=True but head {h} lets query {int(row[k])} attend the later key "
                                 f"{int(col[k])}; pass causal=False (or None)")
        lo_cnt, lts, lte, ls2, le2 = _gaps(col[~up], row[~up], j, np.full(L, L, np.int64))
        up_cnt, uts, ute, us2, ue2 = _gaps(col[up], row[up], np.zeros(L, np.int64), j.copy())
        for cnt, s, e, s2, e2, side in ((lo_cnt, lts, lte, ls2, le2, "on or below"),
                                        (up_cnt, uts, ute, us2, ue2, "above")):
            bad = np.flatnonzero(cnt > 1)
            if bad.size:
                c = int(bad[0])
                raise ValueError(
                    f"key column {c} of head {h} has {int(cnt[c])} masked runs {side} the diagonal (rows "
                    f"[{int(s[c])}, {int(e[c])}) and [{int(s2[c])}, {int(e2[c])}), ...); FlashMask represents at "
                    "most one masked run below and one above the diagonal per key column")
        empty_up = up_cnt == 0
        uts = np.where(empty_up, 0, uts)
        ute = np.where(empty_up, 0, ute)
        per_head.append((lts, lte, uts, ute, up_cnt))
    is_causal = (not any_upper) if causal is None else bool(causal)
    if is_causal:
        # every row above the diagonal must be masked: the upper gap is [0, j) for every column
        lte_all_end = all((lte == L).all() for (_, lte, _, _, _) in per_head)
        cols = [np.stack([lts], -1) if lte_all_end else np.stack([lts, lte], -1)
                for (lts, lte, _, _, _) in per_head]
    else:
        simple = all(((lte == L) | (lts == L)).all() and (uts == 0).all() for (lts, lte, uts, _, _) in per_head)
        cols = [np.stack([lts, ute], -1) if simple else np.stack([lts, lte, uts, ute], -1)
                for (lts, lte, uts, ute, _) in per_head]
    arr = np.stack(cols).astype(np.int32)  # [H, L, k]
    arr = np.ascontiguousarray(np.broadcast_to(arr[None], (batch, *arr.shape)))
    return to_torch({"startend_row_indices": arr, "causal": is_causal}, device)


def from_flashmask(startend_row_indices: Any, causal: bool, block: int | tuple[int, int] = 128,
                   batch_index: int = 0, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS,
                   pattern_text: str = "") -> Layout:
    """Layout from FlashMask ``startend_row_indices`` [batch, heads, L, k] and ``causal``.

    Follows the dense reference of PaddlePaddle's FlashMask tests
    (``flashmask_to_densemask``); builds the dense mask, so ``heads * L * L`` must stay below
    ``max_elements``.

    Example:
        >>> import numpy as np, maskc as mc
        >>> sri = np.array([3, 4, 5, 6, 6, 6], np.int32).reshape(1, 1, 6, 1)
        >>> mc.export.from_flashmask(sri, causal=True, block=4).nnz
        15
    """
    s = int_array(startend_row_indices, "startend_row_indices", 4)
    B, H, L, k = s.shape
    if B < 1 or H < 1 or L < 1:
        raise ValueError(f"startend_row_indices must be non-empty, got shape {s.shape}")
    if not 0 <= batch_index < B:
        raise ValueError(f"batch_index must be in [0, {B}), got {batch_index}")
    if (causal and k not in (1, 2)) or (not causal and k not in (2, 4)):
        raise ValueError(f"startend_row_indices last dimension must be 1 or 2 when causal, 2 or 4 otherwise; "
                         f"got {k} with causal={causal}")
    if s.min() < 0 or s.max() > L:
        raise ValueError(f"row indices must be in [0, {L}]")
    if H * L * L > max_elements:
        raise TooLargeError(f"from_flashmask builds a dense {H}x{L}x{L} mask, above max_elements={max_elements:,}")
    s = s[batch_index]  # [H, L, k]
    r = np.arange(L)[None, :, None]  # rows
    has_end = (causal and k == 2) or (not causal and k == 4)
    lts = s[:, None, :, 0]
    masked = (r >= lts) & (r < s[:, None, :, 1]) if has_end else (r >= lts)
    if causal:
        masked |= r < np.arange(L)[None, None, :]
    elif has_end:
        masked |= (r >= s[:, None, :, 2]) & (r < s[:, None, :, 3])
    else:
        masked |= r < s[:, None, :, 1]
    from maskc.ir.layout import Layout as _L

    return _L.from_dense(~masked, as_block(block), pattern_text).validate()
