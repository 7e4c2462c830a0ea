"""Block-level layouts: DeepSpeed / xformers sparsity layouts and MIT Block-Sparse-Attention
``base_blockmask``.

* DeepSpeed (``deepspeed.ops.sparse_attention.SparsityConfig.make_layout``, DeepSpeed 0.14)
  and xformers (``xformers.components.attention.BlockSparseAttention(layout, block_size)``,
  xformers 0.0.2x) take an int64 tensor ``[heads, n_qb, n_kb]`` of 0 / 1, one square
  block size, and whole blocks only.
* MIT Block-Sparse-Attention (mit-han-lab/Block-Sparse-Attention, 2024,
  ``block_sparse_attn_func``) takes ``base_blockmask`` bool ``[batch, n_mask_heads, n_qb, n_kb]``
  with ``head_mask_type`` int32 ``[heads]``: 0 dense, -1 streaming, ``k > 0`` block-sparse
  using ``base_blockmask[:, k - 1]``. Its kernels use 128 x 128 blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.ir.layout import Layout, _ceil_div
from maskc.export._common import (
    as_block, bool_array, check_layout, int_array, layout_from_block_grid, lossy_partial,
    positive_int, to_torch, validated,
)

__all__ = ["to_deepspeed", "from_deepspeed", "to_xformers", "from_xformers",
           "to_block_sparse_attn", "from_block_sparse_attn"]


def _grid(layout: Layout) -> np.ndarray:
    grid = np.zeros((layout.heads, layout.n_qb, layout.n_kb), dtype=np.int64)
    grid[layout.block_head, layout.block_row, layout.col_idx] = 1
    return grid


def _expand_heads(grid: np.ndarray, heads: int | None, stored: int) -> np.ndarray:
    if heads is None:
        return grid
    heads = positive_int(heads, "heads")
    if heads == stored:
        return grid
    if stored != 1:
        raise ValueError(f"heads={heads} but the layout stores {stored} heads; only a one-head layout can be repeated")
    return np.repeat(grid, heads, axis=0)


def to_deepspeed(layout: Layout, heads: int | None = None, strict: bool = False, device: Any = None) -> np.ndarray | Any:
    """DeepSpeed sparsity layout: int64 [heads, n_qb, n_kb], 1 where a block is attended.

    The same array ``SparsityConfig.make_layout(seq_len)`` returns. Block level only:
    partial blocks become full (a :class:`LossyExportWarning`, or a ValueError with
    ``strict=True``). DeepSpeed needs square blocks (block_q == block_k) and sequence
    lengths that are multiples of the block: pad q / k and mask the padding yourself.
    ``heads`` repeats a one-head layout; ``device`` returns a torch tensor.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((4, 4), bool), block=2)
        >>> mc.export.to_deepspeed(lay, heads=2).shape
        (2, 2, 2)
    """
    layout = check_layout(layout, "to_deepspeed")
    if layout.block_q != layout.block_k:
        raise ValueError(f"DeepSpeed / xformers sparse attention use square blocks, this layout has "
                         f"block {layout.block}; recompile with block={layout.block_q}")
    lossy_partial(layout, "DeepSpeed / xformers sparse attention", strict,
                  "use to_flashinfer_bsr or to_flex_block_mask to keep element masks")
    grid = _expand_heads(_grid(layout), heads, layout.heads)
    return to_torch({"layout": grid}, device)["layout"]


def from_deepspeed(layout_tensor: Any, block: int, q_len: int | None = None, kv_len: int | None = None,
                   pattern_text: str = "") -> Layout:
    """Layout with FULL blocks from a DeepSpeed / xformers layout [heads, n_qb, n_kb].

    ``q_len`` / ``kv_len`` default to ``n_qb * block`` / ``n_kb * block``; shorter lengths
    cut the last blocks (ragged tails). Values must be 0 or 1.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.export.from_deepspeed(np.tril(np.ones((1, 3, 3), np.int64)), block=16, q_len=40)
        >>> lay.q_len, lay.kv_len, lay.n_full
        (40, 48, 6)
    """
    block = positive_int(block, "block")
    g = int_array(layout_tensor, "layout", 3)
    if g.size and not np.isin(g, (0, 1)).all():
        raise ValueError("DeepSpeed layout values must be 0 or 1")
    H, n_qb, n_kb = g.shape
    if H < 1 or n_qb < 1 or n_kb < 1:
        raise ValueError(f"layout must be non-empty in every dimension, got shape {g.shape}")
    q_len = n_qb * block if q_len is None else positive_int(q_len, "q_len")
    kv_len = n_kb * block if kv_len is None else positive_int(kv_len, "kv_len")
    return validated(layout_from_block_grid(g, q_len, kv_len, (block, block), pattern_text))


def to_xformers(layout: Layout, heads: int | None = None, strict: bool = False, device: Any = None) -> np.ndarray | Any:
    """xformers ``BlockSparseAttention`` layout: the same int64 [heads, n_qb, n_kb] as DeepSpeed.

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.to_xformers(mc.Layout.from_dense(np.ones((4, 4), bool), block=2)).tolist()
        [[[1, 1], [1, 1]]]
    """
    return to_deepspeed(layout, heads=heads, strict=strict, device=device)


def from_xformers(layout_tensor: Any, block: int, q_len: int | None = None, kv_len: int | None = None,
                  pattern_text: str = "") -> Layout:
    """Layout with FULL blocks from an xformers layout (see :func:`from_deepspeed`).

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.from_xformers(np.ones((1, 2, 2), np.int64), block=8).nnz
        256
    """
    return from_deepspeed(layout_tensor, block, q_len, kv_len, pattern_text)


def to_block_sparse_attn(layout: Layout, batch: int = 1, heads: int | None = None, strict: bool = False,
                         device: Any = None) -> dict[str, Any]:
    """MIT Block-Sparse-Attention inputs: ``base_blockmask`` and ``head_mask_type``.

    Returns ``{"base_blockmask": bool [batch, n_mask_heads, n_qb, n_kb],
    "head_mask_type": int32 [heads]}``. A one-head layout gives one mask head shared by
    every head (``head_mask_type`` all 1); an H-head layout gives H mask heads and
    ``head_mask_type = [1, 2, ..., H]`` (head h uses ``base_blockmask[:, h]``).

    Block level only: partial blocks become full (warning, or ValueError when
    ``strict=True``). The library's kernels use 128 x 128 blocks: ``strict=True`` also
    refuses other block sizes.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((256, 256), bool), block=128)
        >>> d = mc.export.to_block_sparse_attn(lay, batch=2, heads=4)
        >>> d["base_blockmask"].shape, d["head_mask_type"].tolist()
        ((2, 1, 2, 2), [1, 1, 1, 1])
    """
    layout = check_layout(layout, "to_block_sparse_attn")
    batch = positive_int(batch, "batch")
    if strict and layout.block != (128, 128):
        raise ValueError(f"Block-Sparse-Attention kernels use 128x128 blocks, this layout has {layout.block}; "
                         "recompile with block=128 (refused because strict=True)")
    lossy_partial(layout, "MIT Block-Sparse-Attention base_blockmask", strict,
                  "use to_flashinfer_bsr or to_flex_block_mask to keep element masks")
    grid = _grid(layout).astype(bool)
    H = layout.heads if heads is None else positive_int(heads, "heads")
    if layout.heads == 1:
        hmt = np.ones(H, np.int32)
    elif H == layout.heads:
        hmt = np.arange(1, H + 1, dtype=np.int32)
    else:
        raise ValueError(f"heads={H} but the layout stores {layout.heads} heads")
    bbm = np.ascontiguousarray(np.broadcast_to(grid[None], (batch, *grid.shape)))
    return to_torch({"base_blockmask": bbm, "head_mask_type": hmt}, device)


def from_block_sparse_attn(base_blockmask: Any, head_mask_type: Any, q_len: int, kv_len: int | None = None,
                           block: int | tuple[int, int] = 128, batch_index: int = 0,
                           pattern_text: str = "") -> Layout:
    """Layout (FULL blocks, one stored head per attention head) from MIT Block-Sparse-Attention inputs.

    Dense heads (type 0) allow every block; streaming heads (type -1) are refused because
    their shape lives in ``streaming_info``, not in the block mask.

    Example:
        >>> import numpy as np, maskc as mc
        >>> bbm = np.tril(np.ones((1, 1, 2, 2), bool))
        >>> lay = mc.export.from_block_sparse_attn(bbm, [1, 0], q_len=256)
        >>> lay.heads, lay.n_full
        (2, 7)
    """
    bbm = bool_array(base_blockmask, "base_blockmask", 4)
    hmt = int_array(head_mask_type, "head_mask_type", 1)
    bq, bk = as_block(block)
    q_len = positive_int(q_len, "q_len")
    kv_len = q_len if kv_len is None else positive_int(kv_len, "kv_len")
    B, Hm, n_qb, n_kb = bbm.shape
    if not 0 <= batch_index < B:
        raise ValueError(f"batch_index must be in [0, {B}), got {batch_index}")
    if (n_qb, n_kb) != (_ceil_div(q_len, bq), _ceil_div(kv_len, bk)):
        raise ValueError(f"base_blockmask has {n_qb}x{n_kb} blocks; q_len={q_len}, kv_len={kv_len} with block "
                         f"{(bq, bk)} need {_ceil_div(q_len, bq)}x{_ceil_div(kv_len, bk)}")
    if hmt.size < 1:
        raise ValueError("head_mask_type must list at least one head")
    if (hmt < 0).any():
        raise ValueError(f"head {int(np.argmax(hmt < 0))} is a streaming head (type -1); its mask is defined by "
                         "streaming_info, which maskc does not import")
    if (hmt > Hm).any():
        raise ValueError(f"head_mask_type values must be at most the {Hm} mask heads of base_blockmask")
    grid = np.ones((hmt.size, n_qb, n_kb), dtype=bool)
    sparse = hmt > 0
    grid[sparse] = bbm[batch_index, hmt[sparse] - 1]
    return validated(layout_from_block_grid(grid, q_len, kv_len, (bq, bk), pattern_text))
