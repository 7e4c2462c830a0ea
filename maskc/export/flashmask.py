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
from maskc.jit import njit

from maskc.export._common import as_block, check_layout, int_array, positive_int, to_torch
from maskc.export._runs import DEFAULT_MAX_WORK, col_runs
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS
from maskc.ir.layout import Layout
from maskc.limits import MAX_BATCH, MAX_LEN, check_int, refuse_above

__all__ = ["to_flashmask", "from_flashmask"]


@njit(cache=True)
def _gaps(ptr, rs, re, L, out):
    """Masked runs of every key column j given its allowed query runs: out[j] =
    (lower count, lts, lte, 2nd lower start, 2nd lower end, upper count, uts, ute, 2nd upper start,
    2nd upper end, first allowed row above the diagonal or -1). Lower = rows [j, L), upper = rows [0, j)."""
    for j in range(L):
        for side in range(2):
            a0 = j if side == 0 else 0
            b0 = L if side == 0 else j
            base = 0 if side == 0 else 5
            out[j, base + 1] = b0  # no gap: (b0, b0)
            out[j, base + 2] = b0
            cnt = 0
            pos = a0
            for t in range(ptr[j], ptr[j + 1] + 1):
                if t < ptr[j + 1]:
                    s = max(rs[t], a0)
                    e = min(re[t], b0)
                    if e <= s:
                        continue
                    if side == 1 and out[j, 10] < 0:
                        out[j, 10] = s
                else:  # past the last run: the rest of the region
                    s = b0
                    e = b0
                if s > pos:
                    if cnt < 2:
                        out[j, base + 1 + 2 * cnt] = pos
                        out[j, base + 2 + 2 * cnt] = s
                    cnt += 1
                pos = max(pos, e)
            out[j, base] = cnt


def to_flashmask(layout: Layout, causal: bool | None = None, batch: int | None = None, device: Any = None,
                 max_work: int = DEFAULT_MAX_WORK) -> dict[str, Any]:
    """FlashMask ``startend_row_indices`` (and the ``causal`` flag) for a square layout.

    Returns ``{"startend_row_indices": int32 [batch, heads, L, k], "causal": bool}`` using
    the smallest form that is exact: k = 1 or 2 when causal, 2 or 4 otherwise.
    ``causal=None`` picks causal when no query attends a later key. ``batch`` defaults to
    the layout's batch (a batch-1 layout is repeated). Exact: :func:`from_flashmask` gives
    back the same token-level mask. The column runs are computed from the blocks (see
    :mod:`maskc.export._runs`); the work is estimated first and refused (TooLargeError)
    above ``max_work`` steps.

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
    B = layout.batch if batch is None else positive_int(batch, "batch", MAX_BATCH)
    if layout.batch > 1 and B != layout.batch:
        raise ValueError(f"batch={B} but the layout stores {layout.batch} batch elements")
    if layout.q_len != layout.kv_len:
        raise ValueError(f"FlashMask's lower / upper triangles are defined for square masks; this layout has "
                         f"q_len={layout.q_len} != kv_len={layout.kv_len}")
    L, S = layout.q_len, layout.n_slices
    refuse_above(B * layout.heads * L * 4 * 4, 1 << 34, "FlashMask's startend_row_indices",
                 "export fewer batch elements", unit="bytes")
    per = []
    unit = "head" if layout.batch == 1 else "slice"
    for s in range(S):
        ptr, rs, re = col_runs(layout, s, max_work)
        g = np.zeros((L, 11), np.int64)
        g[:, 10] = -1
        _gaps(ptr, rs, re, L, g)
        up = np.flatnonzero(g[:, 10] >= 0)
        if causal and up.size:
            raise ValueError(f"causal=True but {unit} {s} lets query {int(g[up[0], 10])} attend the later key "
                             f"{int(up[0])}; pass causal=False (or None)")
        for side, word in ((0, "on or below"), (5, "above")):
            bad = np.flatnonzero(g[:, side] > 1)
            if bad.size:
                c = int(bad[0])
                raise ValueError(
                    f"key column {c} of {unit} {s} has {int(g[c, side])} masked runs {word} the diagonal (rows "
                    f"[{int(g[c, side + 1])}, {int(g[c, side + 2])}) and [{int(g[c, side + 3])}, "
                    f"{int(g[c, side + 4])}), ...); FlashMask represents at most one masked run below and one "
                    "above the diagonal per key column")
        none_up = g[:, 5] == 0
        g[none_up, 6] = 0
        g[none_up, 7] = 0
        per.append(g)
    any_upper = any(bool((g[:, 10] >= 0).any()) for g in per)
    is_causal = (not any_upper) if causal is None else bool(causal)
    if is_causal:  # every row above the diagonal is masked: the upper gap is [0, j) for every column
        cols = [1] if all((g[:, 2] == L).all() for g in per) else [1, 2]
    else:
        simple = all(((g[:, 2] == L) | (g[:, 1] == L)).all() and (g[:, 6] == 0).all() for g in per)
        cols = [1, 7] if simple else [1, 2, 6, 7]
    arr = np.stack([g[:, cols] for g in per]).astype(np.int32)  # [slices, L, k]
    arr = arr.reshape(layout.batch, layout.heads, L, len(cols))
    arr = np.ascontiguousarray(np.broadcast_to(arr, (B, layout.heads, L, len(cols))))
    return to_torch({"startend_row_indices": arr, "causal": is_causal}, device)


def from_flashmask(startend_row_indices: Any, causal: bool, block: int | tuple[int, int] = 128,
                   batch_index: int = 0, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS,
                   pattern_text: str = "") -> Layout:
    """Layout from FlashMask ``startend_row_indices`` [batch, heads, L, k] and ``causal``.

    Follows the dense reference of PaddlePaddle's FlashMask tests
    (``flashmask_to_densemask``) without building it: each key column's allowed rows are the
    gaps between its (at most two) masked intervals, and the blocks come from those runs
    (:meth:`Layout.from_runs`), so the work is O(heads * L + output blocks + partial blocks
    x block area). ``max_elements`` bounds the bytes of packed partial-block tiles of one head
    (TooLargeError above it).

    Example:
        >>> import numpy as np, maskc as mc
        >>> sri = np.array([3, 4, 5, 6, 6, 6], np.int32).reshape(1, 1, 6, 1)
        >>> mc.export.from_flashmask(sri, causal=True, block=4).nnz
        15
    """
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    s = int_array(startend_row_indices, "startend_row_indices", 4)
    B, H, L, k = s.shape
    if B < 1 or H < 1 or L < 1:
        raise ValueError(f"startend_row_indices must be non-empty, got shape {s.shape}")
    positive_int(L, "seq_len", MAX_LEN)
    batch_index = check_int(batch_index, "batch_index", 0, B - 1)
    if (causal and k not in (1, 2)) or (not causal and k not in (2, 4)):
        raise ValueError(f"startend_row_indices last dimension must be 1 or 2 when causal, 2 or 4 otherwise; "
                         f"got {k} with causal={causal}")
    if s.min() < 0 or s.max() > L:
        raise ValueError(f"row indices must be in [0, {L}]")
    s = s[batch_index]  # [H, L, k]
    has_end = (causal and k == 2) or (not causal and k == 4)
    # each key column j masks at most two row intervals [a1, b1) and [a2, b2) (see the module docstring)
    a1 = s[:, :, 0]
    b1 = s[:, :, 1] if has_end else np.full_like(a1, L)
    if causal:
        a2, b2 = np.zeros_like(a1), np.broadcast_to(np.arange(L), a1.shape)
    elif has_end:
        a2, b2 = s[:, :, 2], s[:, :, 3]
    else:
        a2, b2 = np.zeros_like(a1), s[:, :, 1]
    b1, b2 = np.maximum(a1, b1), np.maximum(a2, b2)  # an interval with end <= start masks nothing
    swap = a2 < a1
    a1, a2 = np.where(swap, a2, a1), np.where(swap, a1, a2)
    b1, b2 = np.where(swap, b2, b1), np.where(swap, b1, b2)
    # the allowed rows are the gaps: [0, a1), [b1, a2), [max(b1, b2), L) (empty gaps are dropped)
    starts = np.stack([np.zeros_like(a1), b1, np.maximum(b1, b2)], axis=-1)
    ends = np.maximum(starts, np.stack([a1, a2, np.full_like(a1, L)], axis=-1))
    cols = np.broadcast_to(np.arange(L)[:, None], (L, 3)).reshape(-1)
    heads = [Layout.from_runs(L, L, as_block(block), cols, starts[h].reshape(-1), ends[h].reshape(-1), by="cols",
                              pattern_text=pattern_text, max_elements=max_elements) for h in range(H)]
    return (heads[0] if H == 1 else Layout.from_slices(heads, pattern_text=pattern_text)).validate()
