"""FlexAttention ``BlockMask`` -> Layout: every input checked before use, mask_mod evaluated
only inside the sequence lengths and only on partial blocks."""

from __future__ import annotations

from typing import Any

import numpy as np

from maskc.errors import MaskcError, TooLargeError
from maskc.export._common import int_array, validated
from maskc.ir.kinds import DEFAULT_MAX_DENSE_ELEMENTS, ceil_div, extent, normalize_block
from maskc.ir.layout import Layout
from maskc.limits import MAX_BATCH, MAX_HEADS, MAX_LEN, MAX_SLICES, check_int

#: mask_mod elements evaluated per call (bounds the temporary index tensors)
_CHUNK_ELEMS = 1 << 22


def _lists(num: Any, idx: Any, what: str, shape: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """Checked (num [B, H, R], idx [B, H, R, W]) as int64 numpy arrays."""
    n = int_array(num, f"{what}_num_blocks", 3)
    i = int_array(idx, f"{what}_indices", 4)
    if i.shape[:3] != n.shape or (shape is not None and n.shape != shape):
        raise ValueError(f"{what}_num_blocks has shape {list(n.shape)} and {what}_indices {list(i.shape)}; a BlockMask "
                         f"has num_blocks [B, H, rows] and indices [B, H, rows, width] with the same B, H, rows")
    if n.size and (n.min() < 0 or n.max() > i.shape[3]):
        raise ValueError(f"{what}_num_blocks must be in [0, {i.shape[3]}] (the width of {what}_indices)")
    return n, i


def _entries(num: np.ndarray, idx: np.ndarray, what: str) -> tuple[np.ndarray, ...]:
    """(b, h, r, c) of every listed block; refuses negative indices and a block listed twice in a row."""
    b, h, r, w = np.nonzero(np.arange(idx.shape[3])[None, None, None, :] < num[..., None])
    c = idx[b, h, r, w]
    if c.size and c.min() < 0:
        k = int(np.argmin(c))
        raise ValueError(f"{what}_indices[{b[k]}, {h[k]}, {r[k]}] lists block {int(c[k])}; block indices are >= 0")
    return b, h, r, c


def _eval_tiles(mask_mod: Any, b: np.ndarray, h: np.ndarray, qb: np.ndarray, kb: np.ndarray, rows: int, cols: int,
                bq: int, bk: int, device: Any) -> np.ndarray:
    """mask_mod on the first ``rows`` x ``cols`` elements of blocks (b, h, qb, kb): bool [n, bq, bk]."""
    import torch
    from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

    n = b.shape[0]
    out = np.zeros((n, bq, bk), dtype=bool)
    per = max(1, _CHUNK_ELEMS // (rows * cols))
    ar_q = torch.arange(rows, device=device, dtype=torch.int32)
    ar_k = torch.arange(cols, device=device, dtype=torch.int32)
    fn = torch.vmap(mask_mod, in_dims=(0, 0, 0, 0))
    for s in range(0, n, per):
        e = min(n, s + per)
        m = e - s

        def col(a: np.ndarray, scale: int = 1):
            return torch.from_numpy((a[s:e] * scale).astype(np.int32)).to(device)[:, None, None]

        q_idx = (col(qb, bq) + ar_q[None, :, None]).expand(m, rows, cols).reshape(-1)
        kv_idx = (col(kb, bk) + ar_k[None, None, :]).expand(m, rows, cols).reshape(-1)
        b_idx = col(b).expand(m, rows, cols).reshape(-1)
        h_idx = col(h).expand(m, rows, cols).reshape(-1)
        try:
            with TransformGetItemToIndex():
                res = fn(b_idx, h_idx, q_idx, kv_idx)
        except Exception as e:
            raise MaskcError(f"from_flex_block_mask: the BlockMask's mask_mod raised {type(e).__name__} ({e}) "
                             f"inside q_len x kv_len") from e
        out[s:e, :rows, :cols] = res.reshape(m, rows, cols).cpu().numpy().astype(bool)
    return out


def _seq_lengths(block_mask: Any, q_len: Any, kv_len: Any) -> tuple[int, int]:
    if q_len is None or kv_len is None:
        try:
            sq, sk = block_mask.seq_lengths
        except (TypeError, ValueError):
            raise ValueError(f"BlockMask.seq_lengths must be a (q_len, kv_len) pair, got "
                             f"{getattr(block_mask, 'seq_lengths', None)!r}"[:200]) from None
        q_len = int(sq) if q_len is None else q_len
        kv_len = int(sk) if kv_len is None else kv_len
    return check_int(q_len, "q_len", 1, MAX_LEN), check_int(kv_len, "kv_len", 1, MAX_LEN)


def from_flex_block_mask(block_mask: Any, q_len: int | None = None, kv_len: int | None = None,
                         pattern_text: str = "", max_elements: int = DEFAULT_MAX_DENSE_ELEMENTS) -> Layout:
    """Build a Layout from a FlexAttention ``BlockMask``.

    Every input is checked first (shapes ``[B, H, rows]`` / ``[B, H, rows, width]``, block
    counts within the width, block indices >= 0, no block listed twice, ``BLOCK_SIZE``
    positive, lengths in range). ``mask_mod`` is evaluated on partial blocks only and
    never at positions past ``q_len`` / ``kv_len`` (a mask_mod that indexes length-N
    tensors works at any length); full blocks are taken as they are; blocks past the
    lengths are dropped; every block is reclassified (all valid elements allowed -> FULL,
    none -> absent, else PARTIAL). A BlockMask with B > 1 gives a batched layout (batch
    1 when every batch element is the same). The evaluation is refused (TooLargeError)
    above ``max_elements`` elements.

    Args:
        block_mask: a ``torch.nn.attention.flex_attention.BlockMask``.
        q_len, kv_len: sequence lengths (default ``block_mask.seq_lengths``).
        pattern_text: stored as the layout's pattern text.

    Example:
        >>> import maskc as mc
        >>> from maskc.export.flex import to_flex_block_mask, from_flex_block_mask
        >>> lay = mc.compile(mc.causal(), q_len=100, block=32)
        >>> from_flex_block_mask(to_flex_block_mask(lay)) == lay
        True
    """
    if not all(hasattr(block_mask, a) for a in ("kv_num_blocks", "kv_indices", "BLOCK_SIZE", "mask_mod")):
        raise TypeError(f"from_flex_block_mask expects a torch FlexAttention BlockMask, got {type(block_mask).__name__}")
    q_len, kv_len = _seq_lengths(block_mask, q_len, kv_len)
    bs = block_mask.BLOCK_SIZE
    bq, bk = normalize_block(tuple(int(x) if hasattr(x, "__index__") else x for x in bs)
                             if isinstance(bs, (tuple, list)) else bs)
    n_qb, n_kb = ceil_div(q_len, bq), ceil_div(kv_len, bk)
    part_num, part_idx = _lists(block_mask.kv_num_blocks, block_mask.kv_indices, "kv", None)
    B, H, R = part_num.shape
    check_int(B, "the BlockMask batch size", 1, MAX_BATCH)
    check_int(H, "the BlockMask head count", 1, MAX_HEADS)
    check_int(B * H, "BlockMask batch x heads", 1, MAX_SLICES)
    if R < n_qb:
        raise MaskcError(f"from_flex_block_mask: the BlockMask covers {R} query blocks of {bq}, fewer than "
                         f"q_len={q_len} needs ({n_qb})")
    groups = [(_entries(part_num, part_idx, "kv"), False)]
    if getattr(block_mask, "full_kv_num_blocks", None) is not None:
        fn_, fi_ = _lists(block_mask.full_kv_num_blocks, block_mask.full_kv_indices, "full_kv", (B, H, R))
        groups.append((_entries(fn_, fi_, "full_kv"), True))
    b, h, r, c = (np.concatenate([g[0][k] for g in groups]) for k in range(4))
    full = np.concatenate([np.full(g[0][0].size, g[1]) for g in groups])
    keep = (r < n_qb) & (c < n_kb)  # blocks past the lengths hold no valid position
    b, h, r, c, full = b[keep], h[keep], r[keep], c[keep], full[keep]
    s = b * H + h
    if s.size > 1:
        o = np.lexsort((c, r, s))
        dup = (np.diff(s[o]) == 0) & (np.diff(r[o]) == 0) & (np.diff(c[o]) == 0)
        if dup.any():
            k = o[int(np.argmax(dup))]
            raise ValueError(f"block (b={b[k]}, h={h[k]}, q block {r[k]}, kv block {c[k]}) is listed twice (in "
                             "kv_indices and/or full_kv_indices); FlexAttention would attend it twice")
    part = ~full
    vr, vc = extent(r[part], bq, q_len), extent(c[part], bk, kv_len)
    need = int((vr * vc).sum())
    if need > max_elements:
        raise TooLargeError(f"from_flex_block_mask would evaluate mask_mod on {need:,} elements of "
                            f"{int(part.sum()):,} partial blocks, above max_elements={max_elements:,}; pass a larger "
                            "max_elements or shorter lengths")
    tiles = np.zeros((int(part.sum()), bq, bk), dtype=bool)
    mask_mod = block_mask.mask_mod
    if mask_mod is None:
        tiles[:] = True
    else:
        device = getattr(block_mask.kv_num_blocks, "device", "cpu")
        pb, ph, pr, pc = b[part], h[part], r[part], c[part]
        for rows, cols in {(int(x), int(y)) for x, y in zip(vr, vc)}:  # at most four shapes (tails)
            sel = np.flatnonzero((vr == rows) & (vc == cols))
            tiles[sel] = _eval_tiles(mask_mod, pb[sel], ph[sel], pr[sel], pc[sel], rows, cols, bq, bk, device)
    lay = validated(Layout.from_blocks(q_len, kv_len, (bq, bk), s, r, c, tiles, full=full, n_slices=B * H,
                                       batch=B, pattern_text=pattern_text))
    if B > 1:
        first = lay.for_batch(0)
        if all(lay.for_batch(k) == first for k in range(1, B)):
            return first
    return lay
