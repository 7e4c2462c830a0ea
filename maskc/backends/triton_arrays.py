"""The layout arrays maskc's Triton kernels read, prepared on the host (numpy).

:func:`kernel_arrays` turns a :class:`~maskc.ir.layout.Layout` into what the kernels
walk (see :mod:`maskc.backends.triton_kernels`):

* every BSR row (``row_ptr``) lists its FULL blocks first; ``row_mid`` marks where its
  PARTIAL blocks start, so the kernels run two loops and the FULL one does no mask work;
* the same for every CSC column (``col_ptr``, ``col_mid``, ``row_idx``);
* ``part_id`` / ``c_part_id`` index the mask dictionary, ``masks`` int32 words
  ``[U, block_q, mask_w]`` (bit ``c & 31`` of word ``c >> 5`` is key column c);
* a FULL block whose key block is the ragged last one is listed as PARTIAL with a
  synthesised mask of its valid columns (keys past ``kv_len`` are loaded as zeros and
  must not score 0).

Example:
    >>> import numpy as np, maskc as mc
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((40, 40), bool)), block=16)
    >>> a = kernel_arrays(lay)
    >>> a["row_ptr"].tolist(), a["row_mid"].tolist(), a["col_idx"].tolist()
    ([0, 1, 3, 6], [0, 2, 5], [0, 0, 1, 0, 1, 2])
    >>> a["part_id"].tolist(), a["mask_w"]
    ([0, -1, 0, -1, -1, 1], 1)
"""

from __future__ import annotations

import numpy as np

from maskc.errors import MaskcError
from maskc.ir.layout import FULL, PARTIAL, Layout

#: Largest number of stored blocks the kernels' int32 indices address.
MAX_BLOCKS: int = 2**31 - 2


def mask_words(masks: np.ndarray, block_k: int) -> np.ndarray:
    """Packed uint8 masks ``[U, Bq, ceil(Bk/8)]`` as little-endian int32 words ``[U, Bq, ceil(Bk/32)]``.

    Example:
        >>> m = np.zeros((1, 1, 2), np.uint8); m[0, 0, 1] = 1   # key column 8
        >>> mask_words(m, 16).tolist()
        [[[256]]]
    """
    w32 = -(-block_k // 32)
    u, bq, w8 = masks.shape
    padded = np.zeros((u, bq, 4 * w32), dtype=np.uint8)
    padded[:, :, :w8] = masks
    return padded.view("<i4").astype(np.int32).reshape(u, bq, w32)


def _tail_mask(layout: Layout) -> np.ndarray:
    """One packed mask allowing the valid columns of the ragged last key block (all rows)."""
    valid = layout.kv_len - (layout.n_kb - 1) * layout.block_k
    bits = np.zeros((1, layout.block_q, layout.block_k), dtype=bool)
    bits[:, :, :valid] = True
    return np.packbits(bits, axis=2, bitorder="little")


def _grouped(key: np.ndarray, n_groups: int, full: np.ndarray):
    """Stable order by ``key`` (group * 2 + is_partial), and each group's start / mid / end."""
    order = np.argsort(key, kind="stable")
    group = key // 2
    counts = np.bincount(group, minlength=n_groups)
    full_counts = np.bincount(group[full], minlength=n_groups)
    ends = np.cumsum(counts)
    starts = ends - counts
    return order, starts, starts + full_counts, ends


def kernel_arrays(layout: Layout) -> dict:
    """The kernels' view of ``layout`` as numpy arrays (int32 indices, int32 mask words)."""
    nnz = layout.nnz_blocks
    if nnz > MAX_BLOCKS:
        raise MaskcError(
            f"triton backend: {nnz} stored blocks exceed the kernels' int32 indices ({MAX_BLOCKS}); "
            "use a larger block size or split the heads"
        )
    S, n_qb, n_kb = layout.n_slices, layout.n_qb, layout.n_kb
    rows = layout.block_row.astype(np.int64)
    heads = layout.block_head.astype(np.int64)
    cols = np.asarray(layout.col_idx, dtype=np.int64)
    kind = np.asarray(layout.kind)
    pid = np.where(kind == PARTIAL, np.asarray(layout.partial_id, dtype=np.int64), -1)
    masks = layout.masks if layout.masks.ndim == 3 else np.zeros((0, layout.block_q, 1), np.uint8)
    if layout.kv_len % layout.block_k:
        tail = (kind == FULL) & (cols == n_kb - 1)
        if tail.any():
            pid = np.where(tail, masks.shape[0], pid)
            masks = np.concatenate([masks, _tail_mask(layout)]) if masks.shape[0] else _tail_mask(layout)
    words = mask_words(masks, layout.block_k) if masks.shape[0] else np.zeros((1, 1, 1), np.int32)
    part = pid >= 0
    full = ~part

    order, starts, mids, ends = _grouped((heads * n_qb + rows) * 2 + part, S * n_qb, full)
    row_ptr = np.empty((S, n_qb + 1), dtype=np.int64)
    row_ptr[:, :-1] = starts.reshape(S, n_qb)
    row_ptr[:, -1] = ends.reshape(S, n_qb)[:, -1] if n_qb else 0
    corder, cstarts, cmids, cends = _grouped((heads * n_kb + cols) * 2 + part, S * n_kb, full)
    col_ptr = np.empty((S, n_kb + 1), dtype=np.int64)
    col_ptr[:, :-1] = cstarts.reshape(S, n_kb)
    col_ptr[:, -1] = cends.reshape(S, n_kb)[:, -1] if n_kb else 0

    def i32(a):
        a = np.ascontiguousarray(a, dtype=np.int32).reshape(-1)
        return a if a.size else np.zeros(1, np.int32)  # never read, but pointers must be valid

    return {
        "row_ptr": i32(row_ptr), "row_mid": i32(mids), "col_idx": i32(cols[order]), "part_id": i32(pid[order]),
        "col_ptr": i32(col_ptr), "col_mid": i32(cmids), "row_idx": i32(rows[corder]),
        "c_part_id": i32(pid[corder]), "masks": i32(words), "mask_w": int(words.shape[2]),
    }
