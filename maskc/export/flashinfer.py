"""FlashInfer block-sparse attention: ``BlockSparseAttentionWrapper.plan`` arguments and the
``VariableBlockSparseAttentionWrapper.plan`` block map.

Follows ``flashinfer/sparse.py`` of FlashInfer 0.2.x (0.2.5 and later for the variable-block
wrapper): ``plan(indptr, indices, M, N, R, C, num_qo_heads, num_kv_heads, head_dim, mask=None, ...)``
where ``indptr`` [M/R + 1] and ``indices`` [nnz] are the BSR structure over (R x C) blocks
and ``mask`` [nnz, R, C] bool is the element mask of *every* stored block (FlashInfer takes
all blocks' masks as soon as one block is partial).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.errors import TooLargeError
from maskc.ir.layout import DEFAULT_MAX_DENSE_ELEMENTS, Layout, _ceil_div
from maskc.export._common import (
    block_tiles, padded_full, bool_array, check_layout, int_array, layout_from_block_grid, layout_from_blocks,
    layout_from_coo, lossy_partial, positive_int, select_head, to_torch, validated,
)

__all__ = ["to_flashinfer_bsr", "from_flashinfer_bsr", "to_flashinfer_variable", "from_flashinfer_variable"]


def to_flashinfer_bsr(layout: Layout, head: int | None = None, device: Any = None) -> dict[str, Any]:
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
    lo, hi = int(layout.row_ptr[h, 0]), int(layout.row_ptr[h, -1])
    out: dict[str, Any] = {
        "indptr": (layout.row_ptr[h] - lo).astype(np.int32),
        "indices": layout.col_idx[lo:hi].astype(np.int32),
        "M": layout.q_len, "N": layout.kv_len, "R": layout.block_q, "C": layout.block_k,
    }
    if not padded_full(layout)[lo:hi].all():  # FlashInfer then takes the masks of all blocks
        out["mask"] = block_tiles(layout, lo, hi)
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
    M, N, R, C = (positive_int(v, n) for v, n in ((M, "M"), (N, "N"), (R, "R"), (C, "C")))
    indptr = int_array(indptr, "indptr", 1)
    indices = int_array(indices, "indices", 1)
    n_qb, n_kb = _ceil_div(M, R), _ceil_div(N, C)
    if indptr.shape[0] != n_qb + 1:
        raise ValueError(f"indptr must have ceil(M/R) + 1 = {n_qb + 1} entries, got {indptr.shape[0]}")
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != indices.shape[0]:
        raise ValueError("indptr must start at 0, be non-decreasing and end at len(indices)")
    if indices.size and (indices.min() < 0 or indices.max() >= n_kb):
        raise ValueError(f"indices must be key-block numbers in [0, ceil(N/C) = {n_kb})")
    rows = np.repeat(np.arange(n_qb, dtype=np.int64), np.diff(indptr))
    if mask is None:
        o = np.lexsort((indices, rows))
        if indices.size > 1 and ((np.diff(rows[o]) == 0) & (np.diff(indices[o]) == 0)).any():
            raise ValueError("indices list a block twice in one block row")
        # every listed block fully allowed: the pairs are the blocks' elements (never a dense n_qb x n_kb grid)
        return validated(layout_from_blocks(1, np.zeros_like(rows), rows, indices, M, N, (R, C), pattern_text))
    m = bool_array(mask, "mask", 3)
    if m.shape != (indices.shape[0], R, C):
        raise ValueError(f"mask must have shape [nnz, R, C] = {[indices.shape[0], R, C]}, got {list(m.shape)}")
    b, r, c = np.nonzero(m)
    qi, kj = rows[b] * R + r, indices[b] * C + c
    keep = (qi < M) & (kj < N)
    return validated(layout_from_coo(1, np.zeros(int(keep.sum()), np.int64), qi[keep], kj[keep], M, N,
                                     (R, C), pattern_text))


def to_flashinfer_variable(layout: Layout, strict: bool = False, num_kv_heads: int | None = None,
                           device: Any = None) -> dict[str, Any]:
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
    lossy_partial(layout, "FlashInfer VariableBlockSparseAttentionWrapper", strict,
                  "use to_flashinfer_bsr to keep per-block element masks")
    H = layout.heads if num_kv_heads is None else positive_int(num_kv_heads, "num_kv_heads")
    if H != layout.heads and layout.heads != 1:
        raise ValueError(f"num_kv_heads={H} but the layout stores {layout.heads} heads; "
                         "it must equal the stored heads (or the layout must have one head)")
    grid = np.zeros((layout.heads, layout.n_qb, layout.n_kb), dtype=bool)
    grid[layout.block_head, layout.block_row, layout.col_idx] = True
    if H != layout.heads:
        grid = np.repeat(grid, H, axis=0)
    out = {
        "block_mask_map": grid,
        "block_row_sz": np.tile(layout.valid_rows().astype(np.int32), (H, 1)),
        "block_col_sz": np.tile(layout.valid_cols().astype(np.int32), (H, 1)),
    }
    return to_torch(out, device)


def from_flashinfer_variable(block_mask_map: Any, block_row_sz: Any, block_col_sz: Any,
                             block: int | tuple[int, int] | None = None, pattern_text: str = "") -> Layout:
    """Layout from FlashInfer variable-block ``plan`` arguments.

    When every head uses the same uniform sizes (all equal, the last one possibly
    shorter), the result keeps those blocks and marks listed blocks FULL. Otherwise
    pass ``block``: the token-level mask is rebuilt exactly and re-tiled with it.

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
    if rs.shape != (H, n_qb) or cs.shape != (H, n_kb):
        raise ValueError(f"block_row_sz must be [{H}, {n_qb}] and block_col_sz [{H}, {n_kb}], "
                         f"got {list(rs.shape)} and {list(cs.shape)}")
    if (rs < 1).any() or (cs < 1).any():
        raise ValueError("block sizes must be positive")
    q_lens, kv_lens = rs.sum(axis=1), cs.sum(axis=1)
    if (q_lens != q_lens[0]).any() or (kv_lens != kv_lens[0]).any():
        raise ValueError("every head's block sizes must sum to the same q_len / kv_len")
    q_len, kv_len = int(q_lens[0]), int(kv_lens[0])

    def uniform(s: np.ndarray) -> bool:
        return bool((s == s[0, 0]).all() if s.shape[1] == 1 else
                    ((s[:, :-1] == s[0, 0]).all() and (s[:, -1] <= s[0, 0]).all()))

    if block is None:
        if not (uniform(rs) and uniform(cs)):
            raise ValueError("block sizes are not uniform (equal, last one possibly shorter); "
                             "pass block= to re-tile the exact token-level mask")
        return validated(layout_from_block_grid(g, q_len, kv_len, (int(rs[0, 0]), int(cs[0, 0])), pattern_text))
    hb, rb, cb = np.nonzero(g)
    pairs = int((rs[hb, rb].astype(object) * cs[hb, cb].astype(object)).sum()) if hb.size else 0
    if pairs > DEFAULT_MAX_DENSE_ELEMENTS:
        raise TooLargeError(f"from_flashinfer_variable(block=...) rebuilds the token-level mask: {pairs:,} allowed "
                            f"pairs, above {DEFAULT_MAX_DENSE_ELEMENTS:,}")
    r_off = np.concatenate([np.zeros((H, 1), np.int64), np.cumsum(rs, axis=1)], axis=1)
    c_off = np.concatenate([np.zeros((H, 1), np.int64), np.cumsum(cs, axis=1)], axis=1)
    hs, qi, kj = [], [], []
    for h, r, c in zip(*np.nonzero(g)):
        rr = np.arange(r_off[h, r], r_off[h, r + 1])
        cc = np.arange(c_off[h, c], c_off[h, c + 1])
        qi.append(np.repeat(rr, cc.size))
        kj.append(np.tile(cc, rr.size))
        hs.append(np.full(rr.size * cc.size, h))
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64))
    return validated(layout_from_coo(H, cat(hs), cat(qi), cat(kj), q_len, kv_len, block, pattern_text))
