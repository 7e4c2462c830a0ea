"""Block-level layouts: DeepSpeed / xformers sparsity layouts and MIT Block-Sparse-Attention
``base_blockmask``.

* DeepSpeed (``deepspeed.ops.sparse_attention.SparsityConfig.make_layout``) and xformers
  (``xformers.components.attention.BlockSparseAttention(layout, block_size)``) take an
  int64 tensor ``[heads, n_qb, n_kb]`` of 0 / 1, one square block size, and whole blocks
  only. The exporters return that array itself (numpy, or torch with ``device=``).
* MIT Block-Sparse-Attention (mit-han-lab/Block-Sparse-Attention,
  ``block_sparse_attn_func``) takes ``base_blockmask`` bool
  ``[batch, n_sparse_heads, n_qb, n_kb]`` over 128 x 128 blocks and ``head_mask_type``
  int32 ``[heads]``. Its documented form: 0 dense head, -1 streaming head, 1 block-sparse
  head, and the k-th block-sparse head reads ``base_blockmask[:, k - 1]`` (the function
  itself rewrites the ones as 1, 2, 3, ..., the form its CUDA kernels read, and asserts
  that ``base_blockmask`` has one mask head per block-sparse head).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from maskc.export._common import (
    as_block, bool_array, check_layout, int_array, lossy_partial, positive_int, require_unbatched, to_torch,
    validated,
)
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS, ceil_div
from maskc.ir.layout import Layout
from maskc.limits import MAX_BATCH, MAX_HEADS, MAX_LEN, refuse_above

__all__ = ["to_deepspeed", "from_deepspeed", "to_xformers", "from_xformers",
           "to_block_sparse_attn", "from_block_sparse_attn"]

Encoding = Literal["documented", "kernel"]


def _grid(layout: Layout, cells: int, max_elements: int, what: str, dtype: Any = bool) -> np.ndarray:
    """1 where a block is stored: ``dtype`` [slices, n_qb, n_kb], written in place (O(blocks) writes)."""
    refuse_above(cells, max_elements, what, "use larger blocks, or pass a larger max_elements", unit="cells")
    grid = np.zeros(layout.n_slices * layout.n_qb * layout.n_kb, dtype=dtype)
    grid[(layout.block_head.astype(np.int64) * layout.n_qb + layout.block_row) * layout.n_kb + layout.col_idx] = 1
    return grid.reshape(layout.n_slices, layout.n_qb, layout.n_kb)


def to_deepspeed(layout: Layout, heads: int | None = None, strict: bool = False, device: Any = None,
                 max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray | Any:
    """DeepSpeed sparsity layout: the int64 array [heads, n_qb, n_kb], 1 where a block is attended.

    The same array ``SparsityConfig.make_layout(seq_len)`` returns (this exporter returns
    the array itself, not a dict). Block level only: partial blocks become full (a
    :class:`LossyExportWarning`, or a ValueError with ``strict=True``). DeepSpeed needs
    square blocks (block_q == block_k) and sequence lengths that are multiples of the
    block: pad q / k and mask the padding yourself. ``heads`` repeats a one-head layout;
    ``device`` returns a torch tensor. No batch axis: batched layouts are refused.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((4, 4), bool), block=2)
        >>> mc.export.to_deepspeed(lay, heads=2).shape
        (2, 2, 2)
    """
    layout = check_layout(layout, "to_deepspeed")
    require_unbatched(layout, "DeepSpeed / xformers sparse attention")
    if layout.block_q != layout.block_k:
        raise ValueError(f"DeepSpeed / xformers sparse attention use square blocks, this layout has "
                         f"block {layout.block}; recompile with block={layout.block_q}")
    H = layout.heads if heads is None else positive_int(heads, "heads", MAX_HEADS)
    if H != layout.heads and layout.heads != 1:
        raise ValueError(f"heads={H} but the layout stores {layout.heads} heads; only a one-head layout can be repeated")
    lossy_partial(layout, "DeepSpeed / xformers sparse attention", strict,
                  "use to_flashinfer_bsr or to_flex_block_mask to keep element masks")
    grid = _grid(layout, H * layout.n_qb * layout.n_kb, max_elements, "the DeepSpeed layout", np.int64)
    if H != layout.heads:
        grid = np.repeat(grid, H, axis=0)
    return to_torch({"layout": grid}, device)["layout"]


def from_deepspeed(layout_tensor: Any, block: int, q_len: int | None = None, kv_len: int | None = None,
                   pattern_text: str = "") -> Layout:
    """Layout with FULL blocks from a DeepSpeed / xformers layout [heads, n_qb, n_kb].

    ``q_len`` / ``kv_len`` default to ``n_qb * block`` / ``n_kb * block``; shorter lengths
    cut the last blocks (ragged tails) and must still need every block row / column. Values
    must be 0 or 1.

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.export.from_deepspeed(np.tril(np.ones((1, 3, 3), np.int64)), block=16, q_len=40)
        >>> lay.q_len, lay.kv_len, lay.n_full
        (40, 48, 6)
    """
    bq, _ = as_block(block)
    g = int_array(layout_tensor, "layout", 3)
    if g.size and not np.isin(g, (0, 1)).all():
        raise ValueError("DeepSpeed layout values must be 0 or 1")
    H, n_qb, n_kb = g.shape
    if H < 1 or n_qb < 1 or n_kb < 1:
        raise ValueError(f"layout must be non-empty in every dimension, got shape {g.shape}")
    positive_int(H, "the number of heads of the layout", MAX_HEADS)
    q_len = positive_int(n_qb * bq if q_len is None else q_len, "q_len", MAX_LEN)
    kv_len = positive_int(n_kb * bq if kv_len is None else kv_len, "kv_len", MAX_LEN)
    if (ceil_div(q_len, bq), ceil_div(kv_len, bq)) != (n_qb, n_kb):
        raise ValueError(f"a layout of {n_qb} x {n_kb} blocks of {bq} does not match q_len={q_len}, kv_len={kv_len} "
                         f"(which need {ceil_div(q_len, bq)} x {ceil_div(kv_len, bq)})")
    h, r, c = np.nonzero(g)
    return validated(Layout.from_blocks(q_len, kv_len, bq, h, r, c, n_slices=H, pattern_text=pattern_text))


def to_xformers(layout: Layout, heads: int | None = None, strict: bool = False, device: Any = None,
                max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> np.ndarray | Any:
    """xformers ``BlockSparseAttention`` layout: the same int64 [heads, n_qb, n_kb] array as DeepSpeed.

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.to_xformers(mc.Layout.from_dense(np.ones((4, 4), bool), block=2)).tolist()
        [[[1, 1], [1, 1]]]
    """
    return to_deepspeed(layout, heads=heads, strict=strict, device=device, max_elements=max_elements)


def from_xformers(layout_tensor: Any, block: int, q_len: int | None = None, kv_len: int | None = None,
                  pattern_text: str = "") -> Layout:
    """Layout with FULL blocks from an xformers layout (see :func:`from_deepspeed`).

    Example:
        >>> import numpy as np, maskc as mc
        >>> mc.export.from_xformers(np.ones((1, 2, 2), np.int64), block=8).nnz
        256
    """
    return from_deepspeed(layout_tensor, block, q_len, kv_len, pattern_text)


def _encoding(encoding: Any) -> str:
    if encoding not in ("documented", "kernel"):
        raise ValueError(f"encoding must be 'documented' (1 marks a block-sparse head) or 'kernel' (k reads "
                         f"mask head k-1), got {encoding!r}"[:200])
    return encoding


def to_block_sparse_attn(layout: Layout, batch: int | None = None, heads: int | None = None, strict: bool = False,
                         device: Any = None, encoding: Encoding = "documented",
                         max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> dict[str, Any]:
    """MIT Block-Sparse-Attention inputs: ``base_blockmask`` and ``head_mask_type``.

    Returns ``{"base_blockmask": bool [batch, heads, n_qb, n_kb], "head_mask_type": int32
    [heads]}``: every head is block-sparse with its own mask head. ``encoding="documented"``
    (default) gives ``head_mask_type`` all 1, the form ``block_sparse_attn_func`` takes;
    ``"kernel"`` gives ``[1, 2, ..., heads]``, the form its kernels read after
    ``block_sparse_attn_func`` rewrote it. ``batch`` defaults to the layout's batch (a
    batch-1 layout is repeated); ``heads`` repeats a one-head layout.

    The library's kernels use 128 x 128 blocks: other block sizes are refused. Block level
    only: partial blocks become full (warning, or ValueError when ``strict=True``).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((256, 256), bool), block=128)
        >>> d = mc.export.to_block_sparse_attn(lay, batch=2, heads=4)
        >>> d["base_blockmask"].shape, d["head_mask_type"].tolist()
        ((2, 4, 2, 2), [1, 1, 1, 1])
    """
    layout = check_layout(layout, "to_block_sparse_attn")
    enc = _encoding(encoding)
    if layout.block != (128, 128):
        raise ValueError(f"Block-Sparse-Attention kernels read 128x128 blocks, this layout has {layout.block}; "
                         "recompile with block=128")
    B = layout.batch if batch is None else positive_int(batch, "batch", MAX_BATCH)
    if layout.batch > 1 and B != layout.batch:
        raise ValueError(f"batch={B} but the layout stores {layout.batch} batch elements")
    H = layout.heads if heads is None else positive_int(heads, "heads", MAX_HEADS)
    if H != layout.heads and layout.heads != 1:
        raise ValueError(f"heads={H} but the layout stores {layout.heads} heads; only a one-head layout can be repeated")
    lossy_partial(layout, "MIT Block-Sparse-Attention base_blockmask", strict,
                  "use to_flashinfer_bsr or to_flex_block_mask to keep element masks")
    grid = _grid(layout, B * H * layout.n_qb * layout.n_kb, max_elements, "the Block-Sparse-Attention base_blockmask")
    grid = grid.reshape(layout.batch, layout.heads, layout.n_qb, layout.n_kb)
    bbm = np.ascontiguousarray(np.broadcast_to(grid, (B, H, layout.n_qb, layout.n_kb)))
    hmt = np.ones(H, np.int32) if enc == "documented" else np.arange(1, H + 1, dtype=np.int32)
    return to_torch({"base_blockmask": bbm, "head_mask_type": hmt}, device)


def from_block_sparse_attn(base_blockmask: Any, head_mask_type: Any, q_len: int, kv_len: int | None = None,
                           block: int | tuple[int, int] = 128, batch_index: int | None = None,
                           pattern_text: str = "", encoding: Encoding = "documented") -> Layout:
    """Layout (FULL blocks, one stored head per attention head) from MIT Block-Sparse-Attention inputs.

    ``encoding="documented"`` (default): ``head_mask_type`` holds 0 (dense), -1 (streaming)
    or 1 (block-sparse), and the k-th block-sparse head reads ``base_blockmask[:, k - 1]``
    (so ``base_blockmask`` must have one mask head per 1). ``encoding="kernel"``: a value
    k > 0 reads ``base_blockmask[:, k - 1]``. Dense heads allow every block; streaming heads
    are refused (their shape lives in ``streaming_info``). ``batch_index=None`` imports
    every batch element (a batched layout, batch 1 when they agree); an int picks one.

    Example:
        >>> import numpy as np, maskc as mc
        >>> bbm = np.tril(np.ones((1, 1, 2, 2), bool))
        >>> lay = mc.export.from_block_sparse_attn(bbm, [1, 0], q_len=256)
        >>> lay.heads, lay.n_full
        (2, 7)
    """
    enc = _encoding(encoding)
    bbm = bool_array(base_blockmask, "base_blockmask", 4)
    hmt = int_array(head_mask_type, "head_mask_type", 1)
    bq, bk = as_block(block)
    q_len = positive_int(q_len, "q_len", MAX_LEN)
    kv_len = q_len if kv_len is None else positive_int(kv_len, "kv_len", MAX_LEN)
    B, Hm, n_qb, n_kb = bbm.shape
    if (n_qb, n_kb) != (ceil_div(q_len, bq), ceil_div(kv_len, bk)):
        raise ValueError(f"base_blockmask has {n_qb}x{n_kb} blocks; q_len={q_len}, kv_len={kv_len} with block "
                         f"{(bq, bk)} need {ceil_div(q_len, bq)}x{ceil_div(kv_len, bk)}")
    if not 1 <= hmt.size <= MAX_HEADS or B < 1 or B > MAX_BATCH:
        raise ValueError(f"head_mask_type must list 1..{MAX_HEADS} heads and base_blockmask hold 1..{MAX_BATCH} "
                         f"batch elements; got {hmt.size} heads, {B} batch elements")
    if (hmt < 0).any():
        raise ValueError(f"head {int(np.argmax(hmt < 0))} is a streaming head (type -1); its mask is defined by "
                         "streaming_info, which maskc does not import")
    sparse = hmt > 0
    if enc == "documented":
        if (hmt > 1).any():
            raise ValueError("head_mask_type in the documented form holds -1, 0 or 1 (pass encoding='kernel' for "
                             "the 1, 2, 3, ... form the kernels read)")
        if int(sparse.sum()) != Hm:
            raise ValueError(f"head_mask_type marks {int(sparse.sum())} block-sparse head(s) but base_blockmask has "
                             f"{Hm} mask head(s); block_sparse_attn_func requires one mask head per block-sparse head")
        mask_of = np.cumsum(sparse) - 1
    else:
        if (hmt > Hm).any():
            raise ValueError(f"head_mask_type values must be at most the {Hm} mask heads of base_blockmask")
        mask_of = hmt - 1
    if batch_index is not None:
        b = positive_int(batch_index + 1, "batch_index + 1", B) - 1
        bbm = bbm[b:b + 1]
    H, Bn = hmt.size, bbm.shape[0]
    refuse_above(Bn * H * n_qb * n_kb, DEFAULT_MAX_DENSE_ELEMENTS, "the imported block grid",
                 "pass batch_index= to import one batch element", unit="cells")
    grid = np.ones((Bn, H, n_qb, n_kb), dtype=bool)
    grid[:, sparse] = bbm[:, mask_of[sparse]]
    s, r, c = np.nonzero(grid.reshape(Bn * H, n_qb, n_kb))
    lay = validated(Layout.from_blocks(q_len, kv_len, (bq, bk), s, r, c, n_slices=Bn * H, batch=Bn,
                                       pattern_text=pattern_text))
    if Bn > 1 and all(lay.for_batch(k) == lay.for_batch(0) for k in range(1, Bn)):
        return lay.for_batch(0)
    return lay
