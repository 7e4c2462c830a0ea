"""Toeplitz parts: patterns that depend on d = i - j only, given by a membership array over d.

``member[d + kv_len - 1]`` says whether offset d is allowed, for d in
``[-(kv_len - 1), q_len - 1]``. Everything here is exact and O(blocks + distinct
diagonals x block area), with no compiler and no N x N mask:

* :func:`toeplitz_block_any`: which tiles hold an allowed pair (prefix sums, O(1) each);
* :func:`toeplitz_layout`: the :class:`maskc.Layout` of the part, so any registered
  block-sparse backend can run it. A tile's bits depend only on ``qb * Bq - kb * Bk``
  (and on whether it lies on a ragged tail), so each distinct diagonal is built once;
  a tile is FULL when every offset it spans is a member (prefix sums again).

Example:
    >>> import numpy as np
    >>> from maskc.planner.toeplitz import toeplitz_layout
    >>> d = np.arange(-9, 10)
    >>> lay = toeplitz_layout((d >= 0) & (d <= 2), 10, 10, 4)      # causal window(2)
    >>> lay.nnz, lay.nnz_blocks, lay.n_full
    (27, 5, 0)
    >>> i, j = np.arange(10)[:, None], np.arange(10)[None, :]
    >>> bool((lay.to_dense()[0] == ((i - j >= 0) & (i - j <= 2))).all())
    True
"""

from __future__ import annotations

import numpy as np

from maskc.ir.convert import dedupe_masks
from maskc.ir.layout import FULL, PARTIAL, Layout, normalize_block


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def toeplitz_block_any(member: np.ndarray, q_len: int, kv_len: int, bq: int, bk: int) -> np.ndarray:
    """bool [n_qb, n_kb]: does block (qb, kb) hold an allowed pair of this offset set?

    Prefix sums over the membership array answer each block in O(1).

    Example:
        >>> import numpy as np
        >>> d = np.arange(-7, 8); toeplitz_block_any(d >= 0, 8, 8, 4, 4).astype(int).tolist()
        [[1, 0], [1, 1]]
    """
    member = np.asarray(member, dtype=bool)
    pre = np.concatenate([[0], np.cumsum(member, dtype=np.int64)])
    n_qb, n_kb = _cdiv(q_len, bq), _cdiv(kv_len, bk)
    qb = np.arange(n_qb)[:, None]
    kbs = np.arange(n_kb)[None, :]
    # offsets touched by block (qb, kb): d in [qb*Bq - (last col), (last row) - kb*Bk], ragged tails clipped
    r_hi = np.minimum(qb * bq + bq - 1, q_len - 1)
    c_hi = np.minimum(kbs * bk + bk - 1, kv_len - 1)
    lo_i = np.clip(qb * bq - c_hi + kv_len - 1, 0, member.shape[0])
    hi_i = np.clip(r_hi - kbs * bk + kv_len, 0, member.shape[0])
    return (pre[np.maximum(hi_i, lo_i)] - pre[lo_i]) > 0


def toeplitz_layout(member: np.ndarray, q_len: int, kv_len: int, block: int | tuple[int, int],
                    pattern_text: str = "") -> Layout:
    """The exact block layout of a Toeplitz membership array (one slice).

    Raises ValueError when ``member`` does not have ``q_len + kv_len - 1`` entries.
    """
    bq, bk = normalize_block(block)
    member = np.asarray(member, dtype=bool)
    if member.shape != (q_len + kv_len - 1,):
        raise ValueError(f"membership must have length q_len + kv_len - 1 = {q_len + kv_len - 1}, got {member.shape}")
    n_qb, n_kb = _cdiv(q_len, bq), _cdiv(kv_len, bk)
    qb, kb = np.nonzero(toeplitz_block_any(member, q_len, kv_len, bq, bk))  # row-major: sorted rows, cols
    vr = np.minimum(q_len - qb * bq, bq)
    vc = np.minimum(kv_len - kb * bk, bk)
    diag = qb * bq - kb * bk
    # FULL when every offset the valid part spans, d in [diag - (vc - 1), diag + (vr - 1)], is a member
    pre = np.concatenate([[0], np.cumsum(member, dtype=np.int64)])
    lo = diag - (vc - 1) + kv_len - 1
    hi = diag + vr + kv_len - 1
    full = pre[hi] - pre[lo] == hi - lo
    kind = np.where(full, FULL, PARTIAL).astype(np.int8)
    partial_id = np.full(qb.shape, -1, np.int32)
    part = ~full
    masks = np.zeros((0, bq, _cdiv(bk, 8)), np.uint8)
    if part.any():
        keys = np.stack([diag[part], vr[part], vc[part]], axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        d = uniq[:, 0, None, None] + np.arange(bq)[None, :, None] - np.arange(bk)[None, None, :]
        bits = member[np.clip(d + kv_len - 1, 0, member.shape[0] - 1)]
        bits &= (d >= -(kv_len - 1)) & (d <= q_len - 1)
        bits &= np.arange(bq)[None, :, None] < uniq[:, 1, None, None]
        bits &= np.arange(bk)[None, None, :] < uniq[:, 2, None, None]
        masks, ids = dedupe_masks(bits)
        partial_id[part] = ids[inv.reshape(-1)]
    counts = np.bincount(qb, minlength=n_qb)
    row_ptr = np.zeros((1, n_qb + 1), np.int64)
    np.cumsum(counts, out=row_ptr[0, 1:])
    return Layout(q_len=int(q_len), kv_len=int(kv_len), block_q=bq, block_k=bk, row_ptr=row_ptr,
                  col_idx=kb.astype(np.int32), kind=kind, partial_id=partial_id, masks=masks,
                  pattern_text=pattern_text)
