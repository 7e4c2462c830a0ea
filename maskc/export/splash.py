"""JAX splash attention (``jax.experimental.pallas.ops.tpu.splash_attention``).

:func:`to_splash_mask` builds the ``MultiHeadMask`` of ``NumpyMask`` objects splash
attention consumes (jax needed). :func:`to_splash_info` computes, without jax, the
arrays of splash's ``MaskInfo`` (``splash_attention_mask_info.process_mask`` with
``shrink_grid=False, downcast_smem_data=False``, jax 0.4.3x - 0.10): block codes,
``data_next`` / ``mask_next`` prefetch indices and the deduplicated partial blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.export._common import (
    as_block, bool_array, check_layout, int_array, positive_int, require_keys, require_unbatched, validated,
)
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS, ceil_div
from maskc.ir.layout import Layout
from maskc.ir.masks import dedupe_masks, unpack_masks
from maskc.limits import MAX_HEADS, MAX_LEN, refuse_above

__all__ = ["to_splash_mask", "to_splash_info", "from_splash_info", "SPLASH_MODULE"]

SPLASH_MODULE = "jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_mask"


def _splash_mask_lib():
    import importlib

    try:
        return importlib.import_module(SPLASH_MODULE)
    except Exception as e:  # ImportError, or a jax build whose pallas TPU ops fail to import
        raise ImportError(
            f"to_splash_mask needs {SPLASH_MODULE}, which cannot be imported on this jax build "
            f"({type(e).__name__}: {e}); install jax >= 0.4.30 (pip install 'jax[cpu]'), or use "
            "mc.export.to_splash_info(layout), which needs no jax"
        ) from None


def to_splash_mask(layout: Layout, heads: int | None = None, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS):
    """A splash-attention ``MultiHeadMask`` with one ``NumpyMask`` [q_len, kv_len] per head.

    ``heads`` repeats a one-head layout. The masks are dense (that is what ``NumpyMask``
    holds): ``heads * q_len * kv_len`` must stay below ``max_elements``. Splash needs
    q_len / kv_len to be multiples of its own block sizes.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((2, 8, 8), bool)), block=4)
        >>> m = mc.export.to_splash_mask(lay)   # doctest: +SKIP
        >>> m.shape                              # doctest: +SKIP
        (2, 8, 8)
    """
    layout = check_layout(layout, "to_splash_mask")
    require_unbatched(layout, "a splash-attention MultiHeadMask")
    lib = _splash_mask_lib()
    dense = layout.to_dense(max_elements=max_elements)
    if heads is not None:
        heads = positive_int(heads, "heads", MAX_HEADS)
        if heads != layout.heads:
            if layout.heads != 1:
                raise ValueError(f"heads={heads} but the layout stores {layout.heads} heads")
            one = lib.NumpyMask(dense[0])
            return lib.MultiHeadMask([one] * heads)
    return lib.MultiHeadMask([lib.NumpyMask(np.ascontiguousarray(dense[h])) for h in range(layout.heads)])


def _next_index(pos: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """For each flat grid position p < size: ``values[k]`` of the first present position ``pos[k] >= p``
    (``pos`` sorted), wrapping around to ``values[0]``; zeros when nothing is present (splash's rule).
    O(size) writes, no search."""
    if pos.size == 0:
        return np.zeros(size, np.int32)
    runs = np.diff(np.concatenate([[-1], pos]))  # grid positions (pos[k-1], pos[k]] take entry k
    out = np.empty(size, np.int32)
    out[: pos[-1] + 1] = np.repeat(values.astype(np.int32), runs)
    out[pos[-1] + 1:] = values[0]
    return out


def to_splash_info(layout: Layout, max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> dict[str, np.ndarray]:
    """Splash ``MaskInfo``-like arrays for the forward pass, without jax.

    Returns (H = stored heads, grid = (n_qb, n_kb) over the layout's blocks):

    * ``block_mask`` int32 [H, n_qb, n_kb]: 0 empty, 1 partial, 2 full. Blocks are judged
      on the padded grid, so a FULL maskc block cut by a ragged tail is 1 here.
    * ``data_next`` int32 [H, n_qb, n_kb]: key-block index of the first non-empty block at
      or after this grid position (row-major over (h, qb, kb)), wrapping to the first one.
    * ``mask_next`` int32 [H, n_qb, n_kb]: the same walk over partial blocks, giving their
      index into ``partial_mask_blocks``.
    * ``partial_mask_blocks`` bool [P, block_q, block_k]: the distinct partial blocks in
      order of first appearance; padded positions are False.
    * ``q_len``, ``kv_len``, ``block_q``, ``block_k``: int64 scalars.

    The three grids are dense (as in splash): refused (TooLargeError) above ``max_elements``
    cells, and so are the partial blocks above ``max_elements`` booleans. No batch axis:
    batched layouts are refused.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((8, 8), bool)), block=4)
        >>> info = mc.export.to_splash_info(lay)
        >>> info["block_mask"].tolist(), info["partial_mask_blocks"].shape
        ([[[1, 0], [2, 1]]], (1, 4, 4))
    """
    layout = check_layout(layout, "to_splash_info")
    require_unbatched(layout, "splash attention's MaskInfo")
    H, n_qb, n_kb = layout.heads, layout.n_qb, layout.n_kb
    refuse_above(H * n_qb * n_kb, max_elements, "splash MaskInfo's dense block grids",
                 "use larger blocks, or pass a larger max_elements", unit="cells")
    full = layout.padded_full
    part = np.flatnonzero(~full)
    # a partial tile is its mask (tails already clear); a FULL block cut by a tail is ones on its extents:
    # build one tile per distinct (mask, extents) key, then deduplicate the tiles themselves
    vr, vc = layout.block_extents
    pid = layout.partial_id[part].astype(np.int64)
    key = np.stack([pid, np.where(pid < 0, vr[part], 0), np.where(pid < 0, vc[part], 0)], axis=1)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True) if part.size else (
        None, np.zeros(0, np.int64), np.zeros(0, np.int64))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    refuse_above(order.size * layout.block_q * layout.block_k, max_elements,
                 "splash MaskInfo's distinct partial blocks", "pass a larger max_elements", unit="booleans")
    codes = np.zeros((H, n_qb, n_kb), np.int32)
    codes[layout.block_head, layout.block_row, layout.col_idx] = np.where(full, 2, 1)
    packed, ids_u = dedupe_masks(layout.block_tiles(part[first[order]]))
    ids = ids_u[rank[inv.reshape(-1)]] if part.size else np.zeros(0, np.int32)
    bits = unpack_masks(packed, layout.block_k)
    flat = (layout.block_head.astype(np.int64) * n_qb + layout.block_row) * n_kb + layout.col_idx  # sorted
    data_next = _next_index(flat, layout.col_idx, H * n_qb * n_kb).reshape(H, n_qb, n_kb)
    mask_next = _next_index(flat[part], ids, H * n_qb * n_kb).reshape(H, n_qb, n_kb)
    return {
        "block_mask": codes, "data_next": data_next, "mask_next": mask_next,
        "partial_mask_blocks": bits,
        "q_len": np.int64(layout.q_len), "kv_len": np.int64(layout.kv_len),
        "block_q": np.int64(layout.block_q), "block_k": np.int64(layout.block_k),
    }


def from_splash_info(info: dict[str, Any], pattern_text: str = "") -> Layout:
    """Layout from :func:`to_splash_info`'s dict (``block_mask``, ``mask_next``,
    ``partial_mask_blocks`` and the four sizes); the inverse of :func:`to_splash_info`.

    Every field is checked first; O(stored blocks + partial blocks x block area).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.tril(np.ones((8, 8), bool)), block=4)
        >>> mc.export.from_splash_info(mc.export.to_splash_info(lay)) == lay
        True
    """
    require_keys(info, ("block_mask", "mask_next", "partial_mask_blocks", "q_len", "kv_len", "block_q", "block_k"),
                 "splash info")
    q_len, kv_len = (positive_int(int(int_array(info[k], k, 0)), k, MAX_LEN) for k in ("q_len", "kv_len"))
    bq, bk = as_block(tuple(int(int_array(info[k], k, 0)) for k in ("block_q", "block_k")))
    codes = int_array(info["block_mask"], "block_mask", 3)
    mnext = int_array(info["mask_next"], "mask_next", 3)
    pmb = bool_array(info["partial_mask_blocks"], "partial_mask_blocks", 3)
    H, n_qb, n_kb = codes.shape
    if (n_qb, n_kb) != (ceil_div(q_len, bq), ceil_div(kv_len, bk)) or mnext.shape != codes.shape or H < 1:
        raise ValueError("block_mask / mask_next shapes do not match the sizes")
    positive_int(H, "the number of heads of block_mask", MAX_HEADS)
    if pmb.shape[1:] != (bq, bk):
        raise ValueError(f"partial_mask_blocks must be [P, {bq}, {bk}], got {list(pmb.shape)}")
    if not np.isin(codes, (0, 1, 2)).all():
        raise ValueError("block_mask values must be 0, 1 or 2")
    h, r, c = np.nonzero(codes)
    full = codes[h, r, c] == 2
    ids = mnext[h[~full], r[~full], c[~full]]
    if ids.size and (ids.min() < 0 or ids.max() >= pmb.shape[0]):
        raise ValueError("mask_next of a partial block is out of range")
    return validated(Layout.from_blocks(q_len, kv_len, (bq, bk), h, r, c, pmb[ids], full=full, n_slices=H,
                                        pattern_text=pattern_text))
