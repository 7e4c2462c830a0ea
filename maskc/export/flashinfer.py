"""FlashInfer block-sparse attention: ``BlockSparseAttentionWrapper.plan`` arguments and the
``VariableBlockSparseAttentionWrapper.plan`` block map.

Follows ``flashinfer/sparse.py`` (``BlockSparseAttentionWrapper`` since FlashInfer 0.1;
``VariableBlockSparseAttentionWrapper`` since 0.2.7):
``plan(indptr, indices, M, N, R, C, num_qo_heads, num_kv_heads, head_dim, mask=None, ...)``
where ``indptr`` [ceil(M/R) + 1] and ``indices`` [nnz] are the BSR structure over (R x C)
blocks and ``mask`` [nnz, R, C] bool is the element mask of *every* stored block (FlashInfer
takes all blocks' masks as soon as one block is partial); the variable-block ``plan`` takes
``block_mask_map`` [num_kv_heads, MB, NB] with ``block_row_sz`` [num_kv_heads, MB] and
``block_col_sz`` [num_kv_heads, NB]. Neither has a batch axis: batched layouts are refused
(export ``layout.for_batch(b)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.export._common import (
    as_block, bool_array, check_layout, int_array, lossy_partial, positive_int, require_unbatched, select_head, to_torch,
    validated,
)
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS, ceil_div
from maskc.ir.layout import Layout
from maskc.limits import MAX_HEADS, MAX_LEN, refuse_above

__all__ = ["to_flashinfer_bsr", "from_flashinfer_bsr", "to_flashinfer_variable", "from_flashinfer_variable"]


def to_flashinfer_bsr(layout: Layout, head: int | None = None, device: Any = None,
                      max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> dict[str, Any]:
    """Arguments for FlashInfer ``BlockSparseAttentionWrapper.plan`` (one mask for all heads).

    Returns ``{"indptr": int32 [n_qb + 1], "indices": int32 [nnz], "M": q_len, "N": kv_len,
    "R": block_q, "C": block_k}`` plus ``"mask": bool [nnz, R, C]`` when any stored block
    does not allow every one of its R x C elements (a partial block, or a block cut by a
    ragged tail: positions past ``M`` / ``N`` are False). Arrays are numpy, or torch
    tensors on ``device`` when it is given. Exact: :func:`from_flashinfer_bsr` inverts it.

    FlashInfer applies the same layout to every head: a layout with several different
    heads needs ``head=h``. When ``N`` is not a multiple of ``C``, FlashInfer reads whole
    key blocks: pad K / V to ``ceil(N / C) * C`` rows (the padded keys are masked out).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((8, 8), bool)), block=4)
        >>> d = mc.export.to_flashinfer_bsr(lay)
        >>> d["indptr"].tolist(), d["indices"].tolist(), d["mask"].shape
        ([0, 1, 3], [0, 0, 1], (3, 4, 4))
        >>> # wrapper.plan(**d, num_qo_heads=8, num_kv_heads=8, head_dim=64)
    """
    layout = check_layout(layout, "to_flashinfer_bsr")
    h = select_head(layout, head, "FlashInfer BlockSparseAttentionWrapper")
    lo, hi = layout.slice_range(h)
    out: dict[str, Any] = {
        "indptr": (layout.row_ptr[h] - lo).astype(np.int32),
        "indices": layout.col_idx[lo:hi].astype(np.int32),
        "M": layout.q_len, "N": layout.kv_len, "R": layout.block_q, "C": layout.block_k,
    }
    if not layout.padded_full[lo:hi].all():  # FlashInfer then takes the masks of all blocks
        refuse_above((hi - lo) * layout.block_q * layout.block_k, max_elements,
                     "FlashInfer's per-block element masks (every stored block's R x C tile)",
                     "use larger blocks, a layout without partial blocks, or pass a larger max_elements",
                     unit="booleans")
        out["mask"] = layout.block_tiles(slice(lo, hi))
    return to_torch(out, device)


def from_flashinfer_bsr(indptr: Any, indices: Any, M: int, N: int, R: int, C: int, mask: Any = None,
                        pattern_text: str = "") -> Layout:
    """Layout (one head, block (R, C)) from FlashInfer ``plan`` arguments.

    ``mask`` [nnz, R, C] bool, when given, selects elements inside each block (elements past
    ``M`` / ``N`` are ignored); without it every listed block is fully allowed. Accepts
    numpy arrays or torch tensors.

    Example:
        >>> import maskc as mc
        >>> lay = mc.export.from_flashinfer_bsr([0, 1, 3], [0, 0, 1], M=8, N=8, R=4, C=4)
        >>> lay.n_full, lay.nnz
        (3, 48)
    """
    M, N = positive_int(M, "M", MAX_LEN), positive_int(N, "N", MAX_LEN)
    R, C = as_block((R, C))
    indptr = int_array(indptr, "indptr", 1)
    indices = int_array(indices, "indices", 1)
    n_qb, n_kb = ceil_div(M, R), ceil_div(N, C)
    if indptr.shape[0] != n_qb + 1:
        raise ValueError(f"indptr must have ceil(M/R) + 1 = {n_qb + 1} entries, got {indptr.shape[0]}")
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != indices.shape[0]:
        raise ValueError("indptr must start at 0, be non-decreasing and end at len(indices)")
    if indices.size and (indices.min() < 0 or indices.max() >= n_kb):
        raise ValueError(f"indices must be key-block numbers in [0, ceil(N/C) = {n_kb})")
    rows = np.repeat(np.arange(n_qb, dtype=np.int64), np.diff(indptr))
    tiles = None
    if mask is not None:
        tiles = bool_array(mask, "mask", 3)
        if tiles.shape != (indices.shape[0], R, C):
            raise ValueError(f"mask must have shape [nnz, R, C] = {[indices.shape[0], R, C]}, got {list(tiles.shape)}")
    try:
        lay = Layout.from_blocks(M, N, (R, C), np.zeros_like(rows), rows, indices, tiles, pattern_text=pattern_text)
    except ValueError as e:
        if "twice" in str(e):
            raise ValueError("indices list a block twice in one block row") from None
        raise
    return validated(lay)


def to_flashinfer_variable(layout: Layout, strict: bool = False, num_kv_heads: int | None = None,
                           device: Any = None, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> dict[str, Any]:
    """Arguments for FlashInfer ``VariableBlockSparseAttentionWrapper.plan``.

    Returns ``{"block_mask_map": bool [H, n_qb, n_kb], "block_row_sz": int32 [H, n_qb],
    "block_col_sz": int32 [H, n_kb]}`` with H = ``num_kv_heads`` (default: the layout's
    stored heads; a one-head layout is repeated). The row / column sizes are the layout's
    blocks, the last one shortened to the ragged tail, so they sum to q_len / kv_len.

    Block level only: partial blocks become allowed blocks (a warning, or a ValueError
    when ``strict=True``). Use :func:`to_flashinfer_bsr` to keep element masks.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((2, 6, 6), bool), block=4)
        >>> d = mc.export.to_flashinfer_variable(lay)
        >>> d["block_mask_map"].shape, d["block_row_sz"].tolist()
        ((2, 2, 2), [[4, 2], [4, 2]])
    """
    layout = check_layout(layout, "to_flashinfer_variable")
    require_unbatched(layout, "FlashInfer VariableBlockSparseAttentionWrapper")
    lossy_partial(layout, "FlashInfer VariableBlockSparseAttentionWrapper", strict,
                  "use to_flashinfer_bsr to keep per-block element masks")
    H = layout.heads if num_kv_heads is None else positive_int(num_kv_heads, "num_kv_heads", MAX_HEADS)
    if H != layout.heads and layout.heads != 1:
        raise ValueError(f"num_kv_heads={H} but the layout stores {layout.heads} heads; "
                         "it must equal the stored heads (or the layout must have one head)")
    refuse_above(H * layout.n_qb * layout.n_kb, max_elements, "FlashInfer's dense block_mask_map",
                 "use larger blocks, or pass a larger max_elements", unit="cells")
    grid = layout.block_grid(max_elements) != 0
    if H != layout.heads:
        grid = np.repeat(grid, H, axis=0)
    out = {
        "block_mask_map": grid,
        "block_row_sz": np.tile(layout.valid_rows().astype(np.int32), (H, 1)),
        "block_col_sz": np.tile(layout.valid_cols().astype(np.int32), (H, 1)),
    }
    return to_torch(out, device)


def _rectangles(H: int, h: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray, q_len: int,
                kv_len: int, block: tuple[int, int], pattern_text: str, max_elements: int) -> Layout:
    """Layout of the union of disjoint allowed rectangles [r0, r1) x [c0, c1) of heads ``h``, tiled with ``block``.

    Target blocks inside a rectangle are FULL without any element work; only blocks on a
    rectangle's border get element tiles. O(target blocks touched + border blocks * block area).
    """
    bq, bk = block
    qa, qz, ka, kz = r0 // bq, (r1 - 1) // bq, c0 // bk, (c1 - 1) // bk
    per = (qz - qa + 1) * (kz - ka + 1)
    refuse_above(int(per.sum()), max_elements // 16, "re-tiling the variable blocks (target blocks touched)",
                 "pass a larger block, or a larger max_elements", unit="blocks")
    rect = np.repeat(np.arange(h.size), per)
    t = np.arange(rect.size) - np.repeat(np.cumsum(per) - per, per)
    width = (kz - ka + 1)[rect]
    qb, kb = qa[rect] + t // width, ka[rect] + t % width
    lo_r, hi_r = np.maximum(r0[rect], qb * bq) - qb * bq, np.minimum(r1[rect], (qb + 1) * bq) - qb * bq
    lo_c, hi_c = np.maximum(c0[rect], kb * bk) - kb * bk, np.minimum(c1[rect], (kb + 1) * bk) - kb * bk
    full = (lo_r == 0) & (hi_r >= np.minimum(bq, q_len - qb * bq)) & (lo_c == 0) & (hi_c >= np.minimum(bk, kv_len - kb * bk))
    part = np.flatnonzero(~full)
    refuse_above(part.size * bq * bk, max_elements, "re-tiling the variable blocks (border tiles)",
                 "pass a block that divides the variable block sizes, or a larger max_elements", unit="booleans")
    ar_q, ar_k = np.arange(bq)[None, :, None], np.arange(bk)[None, None, :]
    tiles = (((ar_q >= lo_r[part, None, None]) & (ar_q < hi_r[part, None, None]))
             & ((ar_k >= lo_c[part, None, None]) & (ar_k < hi_c[part, None, None])))
    s, qb_p, kb_p = h[rect[part]], qb[part], kb[part]
    if part.size > 1:  # a target block on the border of several rectangles: union of their pieces
        o = np.lexsort((kb_p, qb_p, s))
        s, qb_p, kb_p, tiles = s[o], qb_p[o], kb_p[o], tiles[o]
        new = np.ones(o.size, bool)
        new[1:] = (np.diff(s) != 0) | (np.diff(qb_p) != 0) | (np.diff(kb_p) != 0)
        starts = np.flatnonzero(new)
        tiles = np.logical_or.reduceat(tiles, starts, axis=0)
        s, qb_p, kb_p = s[starts], qb_p[starts], kb_p[starts]
    fs = h[rect[full]]
    return Layout.from_blocks(q_len, kv_len, block, np.concatenate([fs, s]), np.concatenate([qb[full], qb_p]),
                              np.concatenate([kb[full], kb_p]), tiles,
                              full=np.r_[np.ones(fs.size, bool), np.zeros(s.size, bool)], n_slices=H,
                              pattern_text=pattern_text)


def from_flashinfer_variable(block_mask_map: Any, block_row_sz: Any, block_col_sz: Any,
                             block: int | tuple[int, int] | None = None, pattern_text: str = "",
                             max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> Layout:
    """Layout from FlashInfer variable-block ``plan`` arguments.

    When every head uses the same uniform sizes (all equal, the last one possibly
    shorter, at most 4096), the result keeps those blocks and marks listed blocks FULL.
    Otherwise pass ``block``: the variable blocks are re-tiled exactly (blocks inside a
    variable block are FULL at no element cost; only border tiles are built, refused with
    TooLargeError above ``max_elements`` booleans).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.export.from_flashinfer_variable(np.ones((1, 2, 2), bool), [[4, 2]], [[4, 2]])
        >>> lay.q_len, lay.block, lay.n_full
        (6, (4, 4), 4)
    """
    g = bool_array(block_mask_map, "block_mask_map", 3)
    rs = int_array(block_row_sz, "block_row_sz", 2)
    cs = int_array(block_col_sz, "block_col_sz", 2)
    H, n_qb, n_kb = g.shape
    if H < 1 or n_qb < 1 or n_kb < 1:
        raise ValueError(f"block_mask_map must be non-empty in every dimension, got shape {g.shape}")
    positive_int(H, "the number of heads of block_mask_map", MAX_HEADS)
    if rs.shape != (H, n_qb) or cs.shape != (H, n_kb):
        raise ValueError(f"block_row_sz must be [{H}, {n_qb}] and block_col_sz [{H}, {n_kb}], "
                         f"got {list(rs.shape)} and {list(cs.shape)}")
    if (rs < 1).any() or (cs < 1).any() or (rs > MAX_LEN).any() or (cs > MAX_LEN).any():
        raise ValueError(f"block sizes must be in [1, {MAX_LEN}]")
    r_off = np.concatenate([np.zeros((H, 1), np.int64), np.cumsum(rs, axis=1)], axis=1)
    c_off = np.concatenate([np.zeros((H, 1), np.int64), np.cumsum(cs, axis=1)], axis=1)
    if (r_off[:, -1] != r_off[0, -1]).any() or (c_off[:, -1] != c_off[0, -1]).any():
        raise ValueError("every head's block sizes must sum to the same q_len / kv_len")
    q_len = positive_int(int(r_off[0, -1]), "q_len (the sum of block_row_sz)", MAX_LEN)
    kv_len = positive_int(int(c_off[0, -1]), "kv_len (the sum of block_col_sz)", MAX_LEN)

    def uniform(sz: np.ndarray) -> bool:
        return bool((sz == sz[0, 0]).all() if sz.shape[1] == 1 else
                    ((sz[:, :-1] == sz[0, 0]).all() and (sz[:, -1] <= sz[0, 0]).all()))

    hb, rb, cb = np.nonzero(g)
    if block is None:
        if not (uniform(rs) and uniform(cs)) or max(rs[0, 0], cs[0, 0]) > 4096:
            raise ValueError("block sizes are not uniform (equal, the last one possibly shorter, at most 4096); "
                             "pass block= to re-tile the exact token-level mask")
        lay = Layout.from_blocks(q_len, kv_len, (int(rs[0, 0]), int(cs[0, 0])), hb, rb, cb, n_slices=H,
                                 pattern_text=pattern_text)
        return validated(lay)
    return validated(_rectangles(H, hb, r_off[hb, rb], r_off[hb, rb + 1], c_off[hb, cb], c_off[hb, cb + 1], q_len,
                                 kv_len, as_block(block), pattern_text, max_elements))
