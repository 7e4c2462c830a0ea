"""Assembling the BSR arrays of a layout from lists of blocks (the one implementation).

Every constructor of :class:`~maskc.ir.layout.Layout` (from a dense mask, from block
lists, from allowed pairs, from slices, from a row range) reduces its input to a *block
list* — stored-slice, block-row and block-column indices, a kind per block (PARTIAL /
FULL) and the packed masks of the partial blocks in list order — and calls
:func:`bsr_fields`, which sorts it, builds the per-slice row pointers and deduplicates the
masks. These functions work on numpy arrays only; they know nothing of the Layout class.

Example:
    >>> import numpy as np
    >>> from maskc.ir.assemble import bsr_fields
    >>> from maskc.ir.kinds import FULL
    >>> f = bsr_fields(2, 2, 2, 2, s=[1, 0], r=[0, 1], c=[1, 0], kind=[FULL, FULL])
    >>> f["row_ptr"].tolist(), f["col_idx"].tolist()
    ([[0, 0, 1], [1, 2, 2]], [0, 1])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.errors import TooLargeError
from maskc.ir.kinds import EMPTY, FULL, PARTIAL, ceil_div, extent
from maskc.ir.masks import dedupe_packed, empty_masks, pack_masks

__all__ = ["bsr_fields", "classify_tiles", "clear_tails", "blocks_from_dense", "blocks_from_pairs",
           "row_pointers", "lex_sorted"]

Blocks = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def lex_sorted(*keys: np.ndarray, strict: bool = True) -> bool:
    """True when the rows of ``keys`` (most significant first) are in (strictly) increasing order."""
    n = keys[0].shape[0]
    if n < 2:
        return True
    greater = np.zeros(n - 1, dtype=bool)
    equal = np.ones(n - 1, dtype=bool)
    for k in keys:
        d = np.diff(k)
        greater |= equal & (d > 0)
        equal &= d == 0
    return bool(greater.all()) if strict else bool((greater | equal).all())


def row_pointers(n_slices: int, n_qb: int, s: np.ndarray, r: np.ndarray) -> np.ndarray:
    """int64 [n_slices, n_qb + 1] row pointers of blocks sorted by (slice, row): global offsets,
    slice ``s`` starting where slice ``s - 1`` ends."""
    flat = np.zeros(n_slices * n_qb + 1, dtype=np.int64)
    np.cumsum(np.bincount(s * n_qb + r, minlength=n_slices * n_qb), out=flat[1:])
    return flat[np.arange(n_slices, dtype=np.int64)[:, None] * n_qb + np.arange(n_qb + 1)[None, :]]


def bsr_fields(n_slices: int, n_qb: int, block_q: int, block_k: int, *, s: Any, r: Any, c: Any, kind: Any,
               packed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The BSR arrays (``row_ptr, col_idx, kind, partial_id, masks``) of a block list.

    ``s, r, c``: slice, block row, block column of each block (any order, each triple once);
    ``kind``: PARTIAL or FULL per block; ``packed``: uint8 [number of PARTIAL blocks,
    block_q, ceil(block_k / 8)], the masks of the PARTIAL blocks in list order. Masks are
    deduplicated. O(n log n) when the list is not already sorted, else O(n).
    """
    s, r, c = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (s, r, c))
    kind = np.asarray(kind, dtype=np.int8).reshape(-1)
    n = s.shape[0]
    part = kind == PARTIAL
    if packed is None:
        packed = empty_masks(block_q, block_k)
    if packed.shape[0] != int(part.sum()):
        raise ValueError(f"{packed.shape[0]} packed masks for {int(part.sum())} partial blocks")
    slot = np.full(n, -1, dtype=np.int64)
    slot[part] = np.arange(packed.shape[0])
    if not lex_sorted(s, r, c):
        order = np.lexsort((c, r, s))
        s, r, c, kind, slot = s[order], r[order], c[order], kind[order], slot[order]
        if not lex_sorted(s, r, c):
            raise ValueError("a block is listed twice")
        part = kind == PARTIAL
    masks, ids = dedupe_packed(packed[slot[part]])
    partial_id = np.full(n, -1, dtype=np.int32)
    partial_id[part] = ids
    if masks.shape[0] == 0:
        masks = empty_masks(block_q, block_k)
    return {"row_ptr": row_pointers(n_slices, n_qb, s, r), "col_idx": c.astype(np.int32), "kind": kind,
            "partial_id": partial_id, "masks": masks}


def clear_tails(tiles: np.ndarray, valid_rows: np.ndarray, valid_cols: np.ndarray) -> np.ndarray:
    """Clear (in place) the elements of ``tiles`` [n, bq, bk] past each block's valid rows / columns."""
    bq, bk = tiles.shape[1:]
    tiles &= (np.arange(bq)[None, :] < np.asarray(valid_rows)[:, None])[:, :, None]
    tiles &= (np.arange(bk)[None, :] < np.asarray(valid_cols)[:, None])[:, None, :]
    return tiles


def classify_tiles(tiles: np.ndarray, valid_rows: np.ndarray, valid_cols: np.ndarray) -> np.ndarray:
    """Kinds (EMPTY / PARTIAL / FULL, int8 [n]) of element tiles [n, bq, bk]; clears their tails in place."""
    clear_tails(tiles, valid_rows, valid_cols)
    counts = tiles.sum(axis=(1, 2), dtype=np.int64)
    cap = np.asarray(valid_rows, np.int64) * np.asarray(valid_cols, np.int64)
    return np.where(counts == 0, EMPTY, np.where(counts == cap, FULL, PARTIAL)).astype(np.int8)


def blocks_from_dense(mask: np.ndarray, block_q: int, block_k: int) -> Blocks:
    """Block list ``(s, r, c, kind, packed)`` of a bool mask [slices, q_len, kv_len] (row-major sorted)."""
    S, q_len, kv_len = mask.shape
    n_qb, n_kb = ceil_div(q_len, block_q), ceil_div(kv_len, block_k)
    pad = np.zeros((S, n_qb * block_q, n_kb * block_k), dtype=bool)
    pad[:, :q_len, :kv_len] = mask
    tiles = pad.reshape(S, n_qb, block_q, n_kb, block_k).transpose(0, 1, 3, 2, 4)  # S, qb, kb, bq, bk
    counts = tiles.sum(axis=(3, 4), dtype=np.int64)
    cap = extent(np.arange(n_qb), block_q, q_len)[:, None] * extent(np.arange(n_kb), block_k, kv_len)[None, :]
    s, r, c = np.nonzero(counts)
    kind = np.where(counts[s, r, c] == cap[r, c], FULL, PARTIAL).astype(np.int8)
    part = kind == PARTIAL
    return s, r, c, kind, pack_masks(tiles[s[part], r[part], c[part]])


def blocks_from_pairs(s: np.ndarray, i: np.ndarray, j: np.ndarray, q_len: int, kv_len: int, block_q: int,
                      block_k: int, max_elements: int) -> Blocks:
    """Block list of allowed (slice, query, key) triples (in range; duplicates counted once).

    O(P log P) for P triples plus the element bits of the partial blocks, which are
    refused (TooLargeError) above ``max_elements`` booleans.
    """
    s, i, j = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (s, i, j))
    br, bc = i // block_q, j // block_k
    if not lex_sorted(s, br, bc, i, j):
        # (a flat key such as (s * q_len + i) * kv_len + j would overflow int64 at large sizes)
        o = np.lexsort((j, i, bc, br, s))
        s, i, j, br, bc = s[o], i[o], j[o], br[o], bc[o]

    def changed(*cols: np.ndarray) -> np.ndarray:
        out = np.ones(s.size, bool)
        if s.size:
            out[1:] = np.logical_or.reduce([np.diff(col) != 0 for col in cols])
        return out

    keep = changed(s, i, j)
    s, i, j, br, bc = s[keep], i[keep], j[keep], br[keep], bc[keep]
    new_block = changed(s, br, bc)
    starts = np.flatnonzero(new_block)
    inv = np.cumsum(new_block) - 1
    counts = np.diff(np.append(starts, s.size))
    bs, brow, bcol = s[starts], br[starts], bc[starts]
    full = counts == extent(brow, block_q, q_len) * extent(bcol, block_k, kv_len)
    n_part = int((~full).sum())
    if n_part * block_q * block_k > max_elements:
        raise TooLargeError(f"{n_part:,} partial blocks of {block_q}x{block_k} need {n_part * block_q * block_k:,} "
                            f"booleans, above max_elements={max_elements:,}; use larger blocks or raise max_elements")
    rank = np.cumsum(~full) - 1
    bits = np.zeros((n_part, block_q, block_k), dtype=bool)
    sel = ~full[inv]
    bits[rank[inv[sel]], i[sel] % block_q, j[sel] % block_k] = True
    kind = np.where(full, FULL, PARTIAL).astype(np.int8)
    return bs, brow, bcol, kind, pack_masks(bits)
