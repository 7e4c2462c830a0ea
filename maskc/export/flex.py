"""Layout <-> torch FlexAttention ``BlockMask``, built straight from the block arrays.

``to_flex_block_mask`` never calls ``create_block_mask`` and never builds a token-level
mask: the per-row block lists are scattered from the Layout's BSR arrays, the q-side
lists from its transposed (CSC) view, and the ``mask_mod`` looks partial blocks up in the
Layout's deduplicated bitmask dictionary. Work is O(stored blocks); memory is what any
BlockMask holds (index lists padded to the grid width, as ``create_block_mask`` pads
them: O(batch * heads * n_qb * n_kb) int32, allocated zeroed and written only where a
block is listed) plus a block lookup table of the same shape.

Conventions (those of ``create_block_mask``):

* FULL blocks go to ``full_kv_*`` (mask_mod skipped there), PARTIAL blocks to ``kv_*``.
* A FULL block in a ragged tail (its query rows or key columns run past q_len /
  kv_len) is listed as partial, so the kernels apply ``mask_mod`` and its bounds check
  to it; ``create_block_mask`` classifies such blocks the same way.
* Shapes are ``[B, H, ...]`` with B = ``layout.batch`` and H = ``layout.heads`` (1
  broadcasts, as in FlexAttention).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from maskc.jit import njit

from maskc.export._common import check_layout
from maskc.export._flex_import import from_flex_block_mask
from maskc.ir.cache import LayoutCache
from maskc.ir.kinds import FULL
from maskc.ir.layout import Layout
from maskc.limits import refuse_above

__all__ = ["to_flex_block_mask", "from_flex_block_mask", "flex_lookup_tables", "DEFAULT_MAX_BYTES"]

#: lookup-table codes: 0 = empty block, 1 = full block, 2 + pid = partial mask ``pid``
_EMPTY_CODE, _FULL_CODE, _PARTIAL_BASE = 0, 1, 2
#: Default cap on the bytes a BlockMask export may allocate (its padded lists and lookup table).
DEFAULT_MAX_BYTES = 8 << 30

_CACHE = LayoutCache("maskc.export.flex")


def _device(device: Any):
    import torch

    return torch.device(device) if device is not None else torch.device("cpu")


def flex_lookup_tables(layout: Layout, device: Any = None):
    """The tensors the mask_mod reads: ``(lut, bits)``.

    ``lut`` ``[slices, n_qb, n_kb]``: 0 empty, 1 full, ``2 + pid`` partial (int8 or int16 when
    the codes fit, else int32: it is as large as the block grid, so the narrowest type
    touches the fewest pages).
    ``bits`` bool ``[U + 2, block_q, block_k]``: entry 0 all False, entry 1 all True,
    entry ``2 + pid`` the unpacked partial mask ``pid``. Cached per layout and device.
    """
    import torch

    dev = _device(device)

    def make():
        top = layout.n_unique_masks + _PARTIAL_BASE
        dtype = next(d for d in (np.int8, np.int16, np.int32) if top <= np.iinfo(d).max)
        lut = np.zeros(layout.n_slices * layout.n_qb * layout.n_kb, dtype=dtype)
        _fill_lut(np.ascontiguousarray(layout.row_ptr), layout.col_idx, layout.kind, layout.partial_id,
                  layout.n_kb, lut)
        bits = np.zeros((layout.n_unique_masks + 2, layout.block_q, layout.block_k), dtype=bool)
        bits[_FULL_CODE] = True
        bits[_PARTIAL_BASE:] = layout.mask_bits
        lut = lut.reshape(layout.n_slices, layout.n_qb, layout.n_kb)
        return torch.from_numpy(lut).to(dev), torch.from_numpy(bits).to(dev)

    return _CACHE.get(layout, ("lut", str(dev)), make)


def _make_mask_mod(layout: Layout, lut, bits):
    """mask_mod(b, h, q, kv) = the layout allows (q, kv) in the slice of (b, h) (bounds-checked)."""
    import torch

    bq, bk, q_len, kv_len = layout.block_q, layout.block_k, layout.q_len, layout.kv_len
    n_qb, n_kb, heads = layout.n_qb, layout.n_kb, layout.heads
    one_batch, one_head = layout.batch == 1, heads == 1

    def maskc_mask_mod(b, h, q_idx, kv_idx):
        s = (b * 0 if one_batch else b) * heads + (h * 0 if one_head else h)
        qb = torch.clamp(q_idx // bq, 0, n_qb - 1)
        kb = torch.clamp(kv_idx // bk, 0, n_kb - 1)
        allowed = bits[lut[s, qb, kb].int(), q_idx % bq, kv_idx % bk]
        return allowed & (q_idx < q_len) & (kv_idx < kv_len)

    return maskc_mask_mod


@njit(cache=True)
def _fill_lut(row_ptr, col_idx, kind, partial_id, n_kb, lut):
    """lut[(s * n_qb + r) * n_kb + c] = the code of every stored block (into a zeroed buffer), O(blocks)."""
    S, R1 = row_ptr.shape
    for s in range(S):
        for r in range(R1 - 1):
            base = (s * (R1 - 1) + r) * n_kb
            for t in range(row_ptr[s, r], row_ptr[s, r + 1]):
                lut[base + col_idx[t]] = _FULL_CODE if kind[t] == FULL else partial_id[t] + _PARTIAL_BASE


@njit(cache=True)
def _fill_lists(row_ptr, col_idx, full, n_kb, kn, ki, fkn, fki, qn, qi, fqn, fqi):
    """One row-major pass over the blocks writes all four padded lists (into zeroed buffers).

    kv side: row (s, r) lists its columns in order; q side: visiting rows in increasing order
    appends r to column (s, c)'s list, so those lists come out sorted without a transpose.
    O(blocks) writes; only the pages holding list entries are touched.
    """
    S, R1 = row_ptr.shape
    n_qb = R1 - 1
    for s in range(S):
        for r in range(n_qb):
            row = s * n_qb + r
            for t in range(row_ptr[s, r], row_ptr[s, r + 1]):
                c = col_idx[t]
                col = s * n_kb + c
                if full[t]:
                    fki[row * n_kb + fkn[row]] = c
                    fkn[row] += 1
                    fqi[col * n_qb + fqn[col]] = r
                    fqn[col] += 1
                else:
                    ki[row * n_kb + kn[row]] = c
                    kn[row] += 1
                    qi[col * n_qb + qn[col]] = r
                    qn[col] += 1


def to_flex_block_mask(layout: Layout, device: Any = None, max_bytes: int = DEFAULT_MAX_BYTES):
    """A FlexAttention ``BlockMask`` for ``layout``, built from its block arrays.

    No ``create_block_mask``, no token-level mask: ``kv_num_blocks`` / ``kv_indices``
    list the PARTIAL blocks (plus FULL blocks in ragged tails), ``full_kv_*`` the FULL
    ones, the q-side lists come from the layout's CSC view, ``BLOCK_SIZE`` is
    ``(block_q, block_k)`` and ``mask_mod`` reads the layout's bitmask dictionary (and
    masks positions past ``q_len`` / ``kv_len``). Shapes: ``[batch, heads, n_qb, n_kb]``
    (a one-head or one-batch layout broadcasts). Cached per layout and device. Refused
    (TooLargeError) before allocating when the padded lists would exceed ``max_bytes``.

    Example:
        >>> import maskc as mc
        >>> from maskc.export.flex import to_flex_block_mask
        >>> bm = to_flex_block_mask(mc.compile(mc.causal(), q_len=256, block=128))
        >>> bm.BLOCK_SIZE, bm.full_kv_num_blocks.flatten().tolist(), bm.kv_num_blocks.flatten().tolist()
        ((128, 128), [0, 1], [1, 1])
    """
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    layout = check_layout(layout, "to_flex_block_mask")
    S, n_qb, n_kb = layout.n_slices, layout.n_qb, layout.n_kb
    refuse_above(S * n_qb * n_kb * 4 * 5 + S * (n_qb + n_kb) * 8, max_bytes,
                 f"a FlexAttention BlockMask of {S} slice(s) x {n_qb} x {n_kb} blocks (index lists padded to the "
                 "block grid, as create_block_mask pads them)", "use larger blocks, or pass a larger max_bytes")
    dev = _device(device)

    def make():
        B, H = layout.batch, layout.heads
        rows, cols = S * n_qb, S * n_kb
        kn, fkn, qn, fqn = (np.zeros(n, np.int32) for n in (rows, rows, cols, cols))
        ki, fki = np.zeros(rows * n_kb, np.int32), np.zeros(rows * n_kb, np.int32)
        qi, fqi = np.zeros(cols * n_qb, np.int32), np.zeros(cols * n_qb, np.int32)
        _fill_lists(np.ascontiguousarray(layout.row_ptr), layout.col_idx, layout.padded_full, n_kb,
                    kn, ki, fkn, fki, qn, qi, fqn, fqi)

        def t(a: np.ndarray, n_rows: int, width: int = 0):
            return torch.from_numpy(a.reshape((B, H, n_rows) + ((width,) if width else ()))).to(dev)

        kn, ki, fkn, fki = t(kn, n_qb), t(ki, n_qb, n_kb), t(fkn, n_qb), t(fki, n_qb, n_kb)
        qn, qi, fqn, fqi = t(qn, n_kb), t(qi, n_kb, n_qb), t(fqn, n_kb), t(fqi, n_kb, n_qb)
        lut, bits = flex_lookup_tables(layout, dev)
        return BlockMask(
            seq_lengths=(layout.q_len, layout.kv_len),
            kv_num_blocks=kn, kv_indices=ki, full_kv_num_blocks=fkn, full_kv_indices=fki,
            q_num_blocks=qn, q_indices=qi, full_q_num_blocks=fqn, full_q_indices=fqi,
            BLOCK_SIZE=(layout.block_q, layout.block_k),
            mask_mod=_make_mask_mod(layout, lut, bits),
        )

    return _CACHE.get(layout, ("block_mask", str(dev)), make)
