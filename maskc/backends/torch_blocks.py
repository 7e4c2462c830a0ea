"""Chunk plans of the torch backend: which query-block rows run together, over which key blocks, with which masks.

A *row* of a layout is one (stored slice, query block) pair: row ``r = s * n_qb + qb``
reads the key blocks ``col_idx[row_ptr[s, qb] : row_ptr[s, qb + 1]]``. The torch
backend runs rows in *chunks*: rows are sorted by how many key blocks they read and cut
greedily so that a chunk's score tile (``unit x rows x K`` floats, K its largest count)
stays under :data:`CHUNK_ELEMENTS`; a chunk pads only to its own longest row. Rows with
no key block are left out (their output is 0 and lse -inf).

Only the slots that need it are masked: padding slots (all False), PARTIAL blocks (the
layout's bitmask) and FULL blocks crossing kv_len (the valid columns). Each such slot
carries a *code* into a small mask table: 0 all False, 1 the ragged-tail columns, 2 + u
partial mask u. A plan is built once per (layout, unit) and kept in this module's own
:class:`~maskc.ir.cache.LayoutCache` (the same chunks serve the forward, the backward
and every later call).

Example:
    >>> import numpy as np, maskc as mc
    >>> from maskc.backends.torch_blocks import chunk_plan
    >>> lay = mc.Layout.from_dense(np.tril(np.ones((6, 6), bool)), block=4)
    >>> [(c.rows.tolist(), c.kb.tolist()) for c in chunk_plan(lay, unit=16)]
    [([0, 1], [[0, -1], [0, 1]])]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskc.ir.cache import LayoutCache
from maskc.ir.layout import FULL, Layout

#: Score elements (floats) materialised per chunk. Small enough that a chunk's scores
#: (2 MiB in float32) stay in cache through the softmax passes: on the 2-core dev CPU
#: (2026-11-22) 1 << 19 ran block-level PrimeBird at 8K ~20% faster forward than 1 << 22
#: and ~30% faster forward+backward (1 << 20: ~10%; below 1 << 18 Python overhead wins).
CHUNK_ELEMENTS: int = 1 << 19

#: mask-table codes: padding slot, FULL block on the ragged key tail, first partial mask.
PAD_CODE, TAIL_CODE, PARTIAL_BASE = 0, 1, 2

_PLANS = LayoutCache("maskc.backends.torch_blocks")


@dataclass(frozen=True)
class Chunk:
    """Rows run together: ``rows`` int64 [c], local key blocks ``kb`` int64 [c, K] (-1 pads).

    ``mask_rows`` / ``mask_slots`` index the slots of ``kb`` that need masking and
    ``mask_codes`` their entry in the mask table (empty arrays when none does).
    """

    rows: np.ndarray
    kb: np.ndarray
    mask_rows: np.ndarray
    mask_slots: np.ndarray
    mask_codes: np.ndarray

    @property
    def K(self) -> int:
        """Key-block slots per row of this chunk."""
        return int(self.kb.shape[1])


def _cut(counts_sorted: np.ndarray, unit: int) -> list[tuple[int, int]]:
    """Greedy chunk boundaries ``[(start, stop), ...]`` over rows sorted by count (ascending).

    A chunk ``[i, j)`` satisfies ``(j - i) * counts[j - 1] * unit <= CHUNK_ELEMENTS`` (or
    holds one row); ``m * counts[i + m - 1]`` grows with m, so the longest chunk is found
    by bisection: O(chunks * log rows).
    """
    n = counts_sorted.shape[0]
    lim = max(CHUNK_ELEMENTS // max(unit, 1), 1)
    out, i = [], 0
    while i < n:
        lo, hi = 1, min(n - i, max(lim // int(counts_sorted[i]), 1))
        while lo < hi:  # largest m in [1, hi] with m * counts[i + m - 1] <= lim
            mid = (lo + hi + 1) // 2
            if mid * int(counts_sorted[i + mid - 1]) <= lim:
                lo = mid
            else:
                hi = mid - 1
        out.append((i, i + lo))
        i += lo
    return out


def _chunk(layout: Layout, rows: np.ndarray, flat_ptr: np.ndarray, counts: np.ndarray) -> Chunk:
    K = int(counts[rows].max())
    j = np.arange(K)[None, :]
    valid = j < counts[rows][:, None]
    pos = np.where(valid, flat_ptr[rows][:, None] + j, 0)
    kb = np.where(valid, layout.col_idx[pos].astype(np.int64), -1) if layout.nnz_blocks else np.full(pos.shape, -1)
    kind = layout.kind[pos] if layout.nnz_blocks else np.zeros(pos.shape, np.int8)
    ragged = layout.kv_len % layout.block_k != 0
    partial = valid & (kind != FULL)
    tail = valid & (kind == FULL) & (kb == layout.n_kb - 1) & ragged
    need = ~valid | partial | tail
    mr, ms = np.nonzero(need)
    codes = np.full(mr.shape, PAD_CODE, np.int64)
    codes[tail[mr, ms]] = TAIL_CODE
    part = partial[mr, ms]
    codes[part] = PARTIAL_BASE + layout.partial_id[pos[mr, ms][part]].astype(np.int64)
    return Chunk(rows, kb, mr.astype(np.int64), ms.astype(np.int64), codes)


def chunk_plan(layout: Layout, unit: int) -> list[Chunk]:
    """The chunks of ``layout`` for ``unit`` score floats per (row, key-block slot) (cached).

    ``unit`` is ``units x rows-per-block x block_k``: what one key-block slot of one row
    costs in scores across the units that share the layout's rows.
    """
    return _PLANS.get(layout, ("plan", int(unit), CHUNK_ELEMENTS), lambda: _build(layout, int(unit)))


def _build(layout: Layout, unit: int) -> list[Chunk]:
    flat_ptr = layout.row_ptr[:, :-1].reshape(-1)
    counts = np.diff(layout.row_ptr, axis=1).reshape(-1)
    order = np.argsort(counts, kind="stable")
    order = order[counts[order] > 0]
    return [_chunk(layout, np.sort(order[a:b]), flat_ptr, counts) for a, b in _cut(counts[order], unit)]


def mask_table(layout: Layout) -> np.ndarray:
    """bool [U + 2, block_q, block_k]: the mask of each code (see the module docstring).

    Example:
        >>> import numpy as np, maskc as mc
        >>> lay = mc.Layout.from_dense(np.ones((4, 6), bool), block=4)
        >>> mask_table(lay)[1, 0].astype(int).tolist()   # tail block: 2 valid columns
        [1, 1, 0, 0]
    """
    def make() -> np.ndarray:
        bq, bk = layout.block_q, layout.block_k
        table = np.zeros((layout.n_unique_masks + PARTIAL_BASE, bq, bk), dtype=bool)
        table[TAIL_CODE, :, : layout.kv_len - (layout.n_kb - 1) * bk] = True
        if layout.n_unique_masks:
            table[PARTIAL_BASE:] = layout.mask_bits
        return table

    return _PLANS.get(layout, "mask_table", make)
