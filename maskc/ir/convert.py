"""Conversions between :class:`~maskc.ir.layout.Layout` and dense / scipy masks."""

from __future__ import annotations

import numpy as np
from numba import njit

from maskc.errors import LayoutFormatError
from maskc.ir.layout import FULL, PARTIAL, _ceil_div, normalize_block


def dedupe_masks(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pack bool blocks [n, Bq, Bk] and deduplicate them.

    Returns ``(masks, ids)``: unique packed masks uint8 [U, Bq, ceil(Bk/8)] in order of
    first appearance, and int32 ids [n] into them.
    """
    n = bits.shape[0]
    packed = np.packbits(bits, axis=2, bitorder="little")
    if n == 0:
        return packed, np.zeros(0, dtype=np.int32)
    flat = np.ascontiguousarray(packed.reshape(n, -1))
    view = flat.view(np.dtype((np.void, flat.shape[1])))
    _, first, inverse = np.unique(view.reshape(-1), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique ids in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ids = rank[inverse.reshape(-1)].astype(np.int32)
    return np.ascontiguousarray(packed[first[order]]), ids


def layout_from_dense(cls, mask, block, pattern_text: str = "", q_offset: int = 0):
    """See :meth:`Layout.from_dense`."""
    m = np.asarray(mask)
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
            raise LayoutFormatError(f"mask must be boolean (or 0/1 integers), got dtype {m.dtype}")
        m = m.astype(bool)
    if m.ndim == 2:
        m = m[None]
    batch = 1
    if m.ndim == 4:
        batch = m.shape[0]
        m = m.reshape((-1,) + m.shape[2:])
    if m.ndim != 3:
        raise LayoutFormatError(f"mask must have shape [q_len, kv_len], [heads, q_len, kv_len] or "
                                f"[batch, heads, q_len, kv_len], got {m.shape}")
    H, q_len, kv_len = m.shape
    if H < 1 or q_len < 1 or kv_len < 1:
        raise LayoutFormatError(f"mask must be non-empty in every dimension, got shape {m.shape}")
    try:
        bq, bk = normalize_block(block)
    except ValueError as e:
        raise LayoutFormatError(str(e)) from None
    n_qb, n_kb = _ceil_div(q_len, bq), _ceil_div(kv_len, bk)
    pad = np.zeros((H, n_qb * bq, n_kb * bk), dtype=bool)
    pad[:, :q_len, :kv_len] = m
    tiles = pad.reshape(H, n_qb, bq, n_kb, bk).transpose(0, 1, 3, 2, 4)  # H, qb, kb, bq, bk
    counts = tiles.sum(axis=(3, 4))
    vr = np.full(n_qb, bq)
    vr[-1] = q_len - (n_qb - 1) * bq
    vc = np.full(n_kb, bk)
    vc[-1] = kv_len - (n_kb - 1) * bk
    cap = vr[:, None] * vc[None, :]
    nonempty = counts > 0
    h_idx, qb_idx, kb_idx = np.nonzero(nonempty)  # row-major: sorted by head, row, col
    full = counts[h_idx, qb_idx, kb_idx] == cap[qb_idx, kb_idx]
    kind = np.where(full, FULL, PARTIAL).astype(np.int8)
    part = ~full
    masks, ids = dedupe_masks(tiles[h_idx[part], qb_idx[part], kb_idx[part]])
    partial_id = np.full(kind.shape, -1, dtype=np.int32)
    partial_id[part] = ids
    row_counts = nonempty.sum(axis=2).reshape(-1)
    row_ptr = np.zeros(H * n_qb + 1, dtype=np.int64)
    np.cumsum(row_counts, out=row_ptr[1:])
    row_ptr2 = np.empty((H, n_qb + 1), dtype=np.int64)
    for h in range(H):
        row_ptr2[h] = row_ptr[h * n_qb : (h + 1) * n_qb + 1]
    return cls(
        q_len=int(q_len),
        kv_len=int(kv_len),
        block_q=bq,
        block_k=bk,
        row_ptr=row_ptr2,
        col_idx=kb_idx.astype(np.int32),
        kind=kind,
        partial_id=partial_id,
        masks=masks,
        pattern_text=pattern_text,
        q_offset=int(q_offset),
        batch=int(batch),
    )


def layout_to_scipy(layout, fmt: str, head: int):
    """See :meth:`Layout.to_scipy`."""
    import scipy.sparse as sp

    if fmt not in ("csr", "bsr", "coo"):
        raise ValueError(f"fmt must be 'csr', 'bsr' or 'coo', got {fmt!r}")
    if not 0 <= head < layout.heads:
        raise ValueError(f"head must be in [0, {layout.heads}), got {head}")
    if fmt == "bsr":
        return _layout_to_bsr(layout, head)
    indptr, indices = csr_arrays(layout, head)
    csr = sp.csr_matrix((np.ones(indices.size, dtype=bool), indices, indptr), shape=(layout.q_len, layout.kv_len))
    csr.has_sorted_indices = True
    return csr.tocoo() if fmt == "coo" else csr


def csr_arrays(layout, head: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token-level CSR (indptr int64 [q_len + 1], indices int32 sorted) of one stored head.

    O(nnz) time and memory: rows are produced block by block, never densely.
    """
    key = ("csr", head)
    if key not in layout._cache:
        lo, hi = int(layout.row_ptr[head, 0]), int(layout.row_ptr[head, -1])
        bits = layout.mask_bits if layout.n_unique_masks else np.zeros((1, layout.block_q, layout.block_k), bool)
        args = (layout.row_ptr[head] - lo, layout.col_idx[lo:hi], layout.kind[lo:hi], layout.partial_id[lo:hi],
                bits, layout.q_len, layout.kv_len, layout.block_q, layout.block_k)
        counts = np.zeros(layout.q_len, dtype=np.int64)
        _csr_fill(*args, counts, np.zeros(1, np.int32), 0)
        indptr = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        _csr_fill(*args, indptr, indices, 1)
        layout._cache[key] = (indptr, indices)
    return layout._cache[key]


def _layout_to_bsr(layout, head: int):
    import scipy.sparse as sp

    Bq, Bk = layout.block_q, layout.block_k
    lo, hi = layout.row_ptr[head, 0], layout.row_ptr[head, -1]
    kind = layout.kind[lo:hi]
    blocks = np.ones((hi - lo, Bq, Bk), dtype=bool)
    part = kind == PARTIAL
    if part.any():
        blocks[part] = layout.mask_bits[layout.partial_id[lo:hi][part]]
    rows = layout.block_row[lo:hi]
    cols = layout.col_idx[lo:hi]
    blocks &= (np.arange(Bq)[None, :] < layout.valid_rows()[rows][:, None])[:, :, None]
    blocks &= (np.arange(Bk)[None, :] < layout.valid_cols()[cols][:, None])[:, None, :]
    indptr = layout.row_ptr[head] - lo
    shape = (layout.n_qb * Bq, layout.n_kb * Bk)
    return sp.bsr_matrix((blocks, cols.astype(np.int64), indptr), shape=shape, blocksize=(Bq, Bk))


@njit(cache=True)
def _csr_fill(row_ptr, col_idx, kind, pid, bits, q_len, kv_len, bq, bk, ptr, indices, fill):
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
