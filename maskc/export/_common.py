"""Helpers shared by the exporters: block tiles, block-code grids, head selection,
lossy-export policy, a sparse (COO) -> Layout builder and torch conversion."""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from maskc.errors import LayoutFormatError, TooLargeError
from maskc.ir.layout import DEFAULT_MAX_DENSE_ELEMENTS, FULL, PARTIAL, Layout, _ceil_div, normalize_block
from maskc.limits import MAX_HEADS, MAX_LEN


class LossyExportWarning(UserWarning):
    """An export dropped information (partial-block detail); the target sees a superset mask."""


def check_layout(layout: Any, fn: str) -> Layout:
    """Return ``layout`` if it is a :class:`Layout`, else raise a TypeError naming ``fn``."""
    if not isinstance(layout, Layout):
        raise TypeError(f"{fn}: expected a maskc Layout, got {type(layout).__name__}; "
                        "build one with mc.compile(pattern, q_len) or mc.Layout.from_dense(mask)")
    return layout


def as_block(block: int | tuple[int, int] | Any) -> tuple[int, int]:
    """Normalise ``block`` (an int or a pair) to ``(block_q, block_k)`` (see :func:`maskc.ir.layout.normalize_block`)."""
    return normalize_block(block)


def positive_int(value: Any, name: str, hi: int | None = None) -> int:
    """``value`` as a positive int (at most ``hi``), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    if hi is not None and int(value) > hi:
        raise ValueError(f"{name} must be at most {hi:,}, got {int(value):,}")
    return int(value)


def _valid_extent(idx: np.ndarray, size: int, length: int) -> np.ndarray:
    """Elements of block ``idx`` (block ``size``) inside ``length``: size, or less for the ragged last."""
    return np.minimum(size, length - idx * size)


def block_tiles(layout: Layout, lo: int = 0, hi: int | None = None, index: np.ndarray | None = None) -> np.ndarray:
    """Element bits of stored blocks ``lo:hi`` (or of the blocks ``index``): bool [n, block_q, block_k].

    FULL blocks are all ones inside the valid region; everything past a ragged tail
    (rows >= q_len, columns >= kv_len) is False.
    """
    if index is None:
        hi = layout.nnz_blocks if hi is None else hi
        index = np.arange(lo, hi)
    index = np.asarray(index, dtype=np.int64)
    Bq, Bk = layout.block_q, layout.block_k
    tiles = np.ones((index.size, Bq, Bk), dtype=bool)
    kind = layout.kind[index]
    part = kind == PARTIAL
    if part.any():
        tiles[part] = layout.mask_bits[layout.partial_id[index][part]]
    rows = layout.block_row[index]
    cols = layout.col_idx[index]
    tiles &= (np.arange(Bq)[None, :] < layout.valid_rows()[rows][:, None])[:, :, None]
    tiles &= (np.arange(Bk)[None, :] < layout.valid_cols()[cols][:, None])[:, None, :]
    return tiles


def padded_full(layout: Layout) -> np.ndarray:
    """bool [nnzb]: the block allows all block_q x block_k elements (FULL and not cut by a tail)."""
    return ((layout.kind == FULL) & (layout.valid_rows()[layout.block_row] == layout.block_q)
            & (layout.valid_cols()[layout.col_idx] == layout.block_k))


def block_codes(layout: Layout) -> np.ndarray:
    """Block kinds on the full grid: int8 [heads, n_qb, n_kb], 0 empty / 1 partial / 2 full."""
    codes = np.zeros((layout.heads, layout.n_qb, layout.n_kb), dtype=np.int8)
    codes[layout.block_head, layout.block_row, layout.col_idx] = layout.kind
    return codes


def head_slice(layout: Layout, h: int) -> tuple[int, int]:
    """``(lo, hi)``: the stored-block range of head ``h``."""
    return int(layout.row_ptr[h, 0]), int(layout.row_ptr[h, -1])


def heads_identical(layout: Layout) -> bool:
    """True when every stored head allows exactly the same pairs (O(nnzb) packed comparisons)."""
    if layout.heads == 1:
        return True
    lo0, hi0 = head_slice(layout, 0)
    ref_ptr = layout.row_ptr[0] - lo0

    def packed(lo: int, hi: int) -> np.ndarray:
        pid = layout.partial_id[lo:hi]
        return layout.masks[pid[pid >= 0]]

    ref = packed(lo0, hi0)
    for h in range(1, layout.heads):
        lo, hi = head_slice(layout, h)
        if not (np.array_equal(layout.row_ptr[h] - lo, ref_ptr)
                and np.array_equal(layout.col_idx[lo:hi], layout.col_idx[lo0:hi0])
                and np.array_equal(layout.kind[lo:hi], layout.kind[lo0:hi0])
                and np.array_equal(packed(lo, hi), ref)):
            return False
    return True


def select_head(layout: Layout, head: int | None, target: str) -> int:
    """The stored head to export to a target that applies one mask to every head."""
    if head is None:
        if heads_identical(layout):
            return 0
        raise ValueError(
            f"{target} applies one mask to every attention head, but this layout stores "
            f"{layout.heads} different heads; pass head=h (one export per head)"
        )
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= int(head) < layout.heads:
        raise ValueError(f"head must be an int in [0, {layout.heads}), got {head!r}")
    return int(head)


def lossy_partial(layout: Layout, target: str, strict: bool, alternative: str) -> None:
    """Warn (or raise when ``strict``) that partial-block detail is lost in ``target``."""
    n = layout.n_partial
    if not n:
        return
    msg = (f"{target} stores a block-level layout only: {n} partial block(s) of this layout "
           f"become fully allowed blocks, so the target attends to a superset of the maskc mask")
    if strict:
        raise ValueError(msg + f"; refused because strict=True ({alternative})")
    warnings.warn(msg + f" (pass strict=True to refuse; {alternative})", LossyExportWarning, stacklevel=3)


def to_torch(d: dict[str, Any], device: Any) -> dict[str, Any]:
    """Convert the numpy arrays of ``d`` to torch tensors on ``device`` (None: keep numpy)."""
    if device is None:
        return d
    try:
        import torch
    except ImportError:
        raise ImportError("device= asks for torch tensors, but torch is not installed; "
                          "pip install torch, or leave device=None for numpy arrays") from None
    return {k: (torch.from_numpy(np.ascontiguousarray(v)).to(device) if isinstance(v, np.ndarray) else v)
            for k, v in d.items()}


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy / torch / jax / list) as a numpy array; refuses object arrays."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got an object array")
    return a


def int_array(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` as an int64 array (integers, or bools), with ``ndim`` dimensions if given."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    return a.astype(np.int64)


def bool_array(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` as a bool array; integers must be 0/1."""
    a = to_numpy(x, name)
    if a.dtype != bool:
        if a.dtype.kind not in "iu" or (a.size and not np.isin(a, (0, 1)).all()):
            raise ValueError(f"{name} must be boolean (or 0/1 integers), got dtype {a.dtype}")
        a = a.astype(bool)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    return a


def layout_from_coo(heads: int, h: np.ndarray, i: np.ndarray, j: np.ndarray, q_len: int, kv_len: int,
                    block: int | tuple[int, int], pattern_text: str = "",
                    max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> Layout:
    """Build a Layout from allowed (head, query, key) triples, in O(nnz + partial-block area).

    Duplicate triples are allowed (counted once). Indices must be in range.
    """
    bq, bk = as_block(block)
    heads = positive_int(heads, "heads", MAX_HEADS)
    q_len, kv_len = positive_int(q_len, "q_len", MAX_LEN), positive_int(kv_len, "kv_len", MAX_LEN)
    h, i, j = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (h, i, j))
    if not h.shape == i.shape == j.shape:
        raise ValueError(f"head / query / key index arrays differ in length: {h.size}, {i.size}, {j.size}")
    if h.size and (h.min() < 0 or h.max() >= heads or i.min() < 0 or i.max() >= q_len
                   or j.min() < 0 or j.max() >= kv_len):
        raise ValueError(f"allowed pairs out of range for heads={heads}, q_len={q_len}, kv_len={kv_len}")
    n_qb = _ceil_div(q_len, bq)
    if heads * (n_qb + 1) > max_elements // 8:
        raise TooLargeError(f"a layout of {heads:,} head(s) x {n_qb:,} block rows (q_len={q_len:,}, block_q={bq}) "
                            f"needs {heads * (n_qb + 1) * 8:,} bytes of row pointers, above max_elements={max_elements:,} / 8")
    # sort by (head, block row, block col, query, key): duplicates become neighbours, blocks runs.
    # (A flat key such as (h * q_len + i) * kv_len + j would overflow int64 at large sizes.)
    br, bc = i // bq, j // bk
    o = np.lexsort((j, i, bc, br, h))
    h, i, j, br, bc = h[o], i[o], j[o], br[o], bc[o]

    def changed(*cols: np.ndarray) -> np.ndarray:
        out = np.ones(h.size, bool)
        if h.size:
            out[1:] = np.logical_or.reduce([np.diff(c) != 0 for c in cols])
        return out

    keep = changed(h, i, j)
    h, i, j, br, bc = h[keep], i[keep], j[keep], br[keep], bc[keep]
    new_block = changed(h, br, bc)
    starts = np.nonzero(new_block)[0]
    inv = np.cumsum(new_block) - 1
    counts = np.diff(np.append(starts, h.size))
    bh, brow, bcol = h[starts], br[starts], bc[starts]
    full = counts == _valid_extent(brow, bq, q_len) * _valid_extent(bcol, bk, kv_len)
    kind = np.where(full, FULL, PARTIAL).astype(np.int8)
    n_part = int((~full).sum())
    if n_part * bq * bk > max_elements:
        raise TooLargeError(f"{n_part:,} partial blocks of {bq}x{bk} need {n_part * bq * bk:,} booleans, "
                            f"above max_elements={max_elements:,}")
    part_rank = np.cumsum(~full) - 1  # rank of each block among partial ones
    bits = np.zeros((n_part, bq, bk), dtype=bool)
    sel = ~full[inv]
    bits[part_rank[inv[sel]], i[sel] % bq, j[sel] % bk] = True
    from maskc.ir.convert import dedupe_masks

    masks, ids = dedupe_masks(bits)
    partial_id = np.full(kind.shape, -1, np.int32)
    partial_id[~full] = ids
    row_counts = np.bincount(bh * n_qb + brow, minlength=heads * n_qb)
    flat = np.zeros(heads * n_qb + 1, np.int64)
    np.cumsum(row_counts, out=flat[1:])
    row_ptr = np.empty((heads, n_qb + 1), np.int64)
    for hh in range(heads):
        row_ptr[hh] = flat[hh * n_qb: (hh + 1) * n_qb + 1]
    lay = Layout(q_len=q_len, kv_len=kv_len, block_q=bq, block_k=bk, row_ptr=row_ptr,
                 col_idx=bcol.astype(np.int32), kind=kind, partial_id=partial_id, masks=masks,
                 pattern_text=pattern_text)
    return lay


def layout_from_block_grid(grid: np.ndarray, q_len: int, kv_len: int, block: tuple[int, int],
                           pattern_text: str = "") -> Layout:
    """Layout whose non-zero cells of ``grid`` [H, n_qb, n_kb] are FULL blocks."""
    bq, bk = block
    H, n_qb, n_kb = grid.shape
    if (n_qb, n_kb) != (_ceil_div(q_len, bq), _ceil_div(kv_len, bk)):
        raise ValueError(
            f"block grid of shape {grid.shape[1:]} does not match q_len={q_len}, kv_len={kv_len} with "
            f"block {(bq, bk)} (expected {(_ceil_div(q_len, bq), _ceil_div(kv_len, bk))})")
    hh, rr, cc = np.nonzero(grid != 0)
    return layout_from_blocks(H, hh, rr, cc, q_len, kv_len, block, pattern_text)


def layout_from_blocks(heads: int, h: np.ndarray, r: np.ndarray, c: np.ndarray, q_len: int, kv_len: int,
                       block: tuple[int, int], pattern_text: str = "") -> Layout:
    """Layout whose listed (head, block row, block col) triples are FULL blocks; O(listed blocks).

    Triples must be distinct and in range (callers check; :func:`validated` re-checks).
    """
    bq, bk = block
    n_qb = _ceil_div(q_len, bq)
    h, r, c = (np.asarray(a, np.int64).reshape(-1) for a in (h, r, c))
    o = np.lexsort((c, r, h))
    h, r, c = h[o], r[o], c[o]
    flat = np.zeros(heads * n_qb + 1, np.int64)
    np.cumsum(np.bincount(h * n_qb + r, minlength=heads * n_qb), out=flat[1:])
    row_ptr = np.stack([flat[k * n_qb: (k + 1) * n_qb + 1] for k in range(heads)]).astype(np.int64)
    n = c.size
    return Layout(q_len=int(q_len), kv_len=int(kv_len), block_q=bq, block_k=bk, row_ptr=row_ptr,
                  col_idx=c.astype(np.int32), kind=np.full(n, FULL, np.int8),
                  partial_id=np.full(n, -1, np.int32), masks=np.zeros((0, bq, _ceil_div(bk, 8)), np.uint8),
                  pattern_text=pattern_text)


def require_keys(d: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    """Raise a ValueError naming the keys of ``d`` that are missing."""
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{what}: missing key(s) {missing}")


def validated(lay: Layout) -> Layout:
    """Validate a layout built by an importer; a failure is a bug or bad input (ValueError)."""
    try:
        return lay.validate()
    except LayoutFormatError as e:
        raise ValueError(f"imported arrays do not form a valid layout: {e}") from None
