"""``mc.from_mask_mod``: a FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` compiled exactly to a Layout.

A mask_mod is a black box: the only exact way to know its blocks is to evaluate it on
every valid (query, key) pair, as ``torch.nn.attention.flex_attention.create_block_mask``
does. Here it is evaluated in chunks of whole block rows (bounded memory: at most
:data:`CHUNK_ELEMENTS` booleans plus the tiles of the partial blocks found), and only at
positions inside ``q_len`` x ``kv_len`` (so a mask_mod that indexes length-N tensors,
such as attention-gym's document masks, works at any length). Each block row's tiles are
classified on the spot: all valid elements allowed -> FULL (no tile kept), none ->
absent, else PARTIAL (its bits kept, deduplicated by the Layout).

Nothing is cached by function identity: a mask_mod that reads a tensor which has
changed gives the new layout on the next call.

Example:
    >>> import maskc as mc
    >>> causal = lambda b, h, q, kv: q >= kv
    >>> lay = mc.from_mask_mod(causal, q_len=300, kv_len=300, block=128)
    >>> lay.n_full, lay.n_partial
    (3, 3)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from maskc.errors import MaskcError
from maskc.ir.kinds import ceil_div, normalize_block
from maskc.ir.layout import Layout
from maskc.limits import MAX_BATCH, MAX_HEADS, MAX_LEN, check_int

#: Booleans of mask_mod output evaluated per chunk (``B x H x rows x kv_len``); a chunk holds
#: at least one block row.
CHUNK_ELEMENTS: int = 1 << 22


def _batched(mask_mod: Callable) -> Callable:
    """mask_mod vmapped over (b, h, q_idx, kv_idx) aranges: returns bool [B, H, Q, KV] (as create_mask)."""
    import torch

    fn = mask_mod
    for dims in ((None, None, None, 0), (None, None, 0, None), (None, 0, None, None), (0, None, None, None)):
        fn = torch.vmap(fn, in_dims=dims, out_dims=0)
    return fn


def _evaluate(fn: Callable, B: int, H: int, r0: int, r1: int, kv_len: int, device: Any, name: str) -> np.ndarray:
    import torch
    from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

    ar = lambda a, b: torch.arange(a, b, device=device, dtype=torch.int32)  # noqa: E731
    try:
        with TransformGetItemToIndex():  # tensor[q_idx] inside the mask_mod, as create_mask
            out = fn(ar(0, B), ar(0, H), ar(r0, r1), ar(0, kv_len))
    except Exception as e:
        raise MaskcError(f"from_mask_mod: {name} raised {type(e).__name__} ({e}) at query rows {r0}..{r1 - 1} "
                         f"(never called past q_len / kv_len)") from e
    if tuple(out.shape) != (B, H, r1 - r0, kv_len) or out.dtype != torch.bool:
        raise TypeError(f"from_mask_mod: {name} must return a bool tensor (True = may attend) for scalar indices, "
                        f"got {out.dtype} of shape {tuple(out.shape)} over the batched indices")
    return out.cpu().numpy()


def from_mask_mod(mask_mod: Callable, q_len: int, kv_len: int | None = None, B: int | None = None,
                  H: int | None = None, block: int | tuple[int, int] = 128, device: Any = "cpu") -> Layout:
    """Compile a FlexAttention ``mask_mod(b, h, q_idx, kv_idx) -> bool`` exactly to a Layout.

    Args:
        mask_mod: a function of four int tensors returning a bool tensor (True = may
            attend), as for ``create_block_mask``; evaluated with ``torch.vmap``.
        q_len, kv_len: sequence lengths (kv_len defaults to q_len); the mask_mod is never
            called at positions past them.
        B, H: batch size and heads the mask depends on; None (default) calls it with
            ``b = 0`` / ``h = 0`` only and the layout broadcasts over that axis.
        block: block size (int or ``(block_q, block_k)``).
        device: device of the index tensors (the mask_mod's own tensors' device).

    Returns:
        a Layout with ``batch = B or 1`` and ``heads = H or 1``. Work: one evaluation per
        valid pair, in chunks of :data:`CHUNK_ELEMENTS`.

    Example:
        >>> import maskc as mc, torch
        >>> ids = torch.tensor([0] * 5 + [1] * 6)
        >>> doc = lambda b, h, q, kv: (ids[q] == ids[kv]) & (q >= kv)
        >>> mc.from_mask_mod(doc, 11, block=4).nnz
        36
    """
    if not callable(mask_mod):
        raise TypeError(f"from_mask_mod takes a callable mask_mod(b, h, q_idx, kv_idx), got {type(mask_mod).__name__}")
    q_len = check_int(q_len, "q_len", 1, MAX_LEN)
    kv_len = q_len if kv_len is None else check_int(kv_len, "kv_len", 1, MAX_LEN)
    nb = 1 if B is None else check_int(B, "B", 1, MAX_BATCH)
    nh = 1 if H is None else check_int(H, "H", 1, MAX_HEADS)
    bq, bk = normalize_block(block)
    n_qb, n_kb = ceil_div(q_len, bq), ceil_div(kv_len, bk)
    name = getattr(mask_mod, "__name__", "the mask_mod")
    fn = _batched(mask_mod)
    rows_per = max(1, CHUNK_ELEMENTS // (nb * nh * bq * kv_len))
    found: list[tuple[np.ndarray, ...]] = []
    for qb0 in range(0, n_qb, rows_per):
        qb1 = min(n_qb, qb0 + rows_per)
        r0, r1 = qb0 * bq, min(q_len, qb1 * bq)
        m = _evaluate(fn, nb, nh, r0, r1, kv_len, device, name)
        found.append(_classify(m, qb0, qb1 - qb0, bq, bk, n_kb, r1 - r0, kv_len))
    s, r, c, full, tiles = (np.concatenate([f[i] for f in found]) for i in range(5))
    return Layout.from_blocks(q_len, kv_len, (bq, bk), s, r, c, tiles, full=full, n_slices=nb * nh, batch=nb,
                              pattern_text=f"mask_mod {name}")


def _classify(m: np.ndarray, qb0: int, n_rows: int, bq: int, bk: int, n_kb: int, rows: int,
              kv_len: int) -> tuple[np.ndarray, ...]:
    """Blocks of one chunk of block rows: (slice, row, col, full, tiles of the non-full ones)."""
    B, H = m.shape[:2]
    t = np.zeros((B * H, n_rows * bq, n_kb * bk), dtype=bool)
    t[:, :rows, :kv_len] = m.reshape(B * H, rows, kv_len)
    t = t.reshape(B * H, n_rows, bq, n_kb, bk).transpose(0, 1, 3, 2, 4)  # [S, rows, cols, bq, bk]
    valid = np.zeros((n_rows * bq, n_kb * bk), dtype=bool)
    valid[:rows, :kv_len] = True
    valid = valid.reshape(n_rows, bq, n_kb, bk).transpose(0, 2, 1, 3)
    n_set = t.sum(axis=(3, 4))
    s, r, c = np.nonzero(n_set)
    full = n_set[s, r, c] == valid.sum(axis=(2, 3))[r, c]
    tiles = t[s[~full], r[~full], c[~full]]
    return s.astype(np.int64), (r + qb0).astype(np.int64), c.astype(np.int64), full, tiles
