"""Shared pieces of the guarantees: the error type, input resolution and slice naming."""

from __future__ import annotations

from typing import Union

import numpy as np

from maskc.compiler import compile as _compile
from maskc.ir.layout import Layout
from maskc.patterns.core import Pattern

#: What every guarantee accepts: a compiled layout, or a pattern plus lengths.
Source = Union[Layout, Pattern]


class GuaranteeError(AssertionError):
    """A ``check_*`` found a layout that breaks the property; carries a counterexample.

    It is an :class:`AssertionError` on purpose: a guarantee is an assertion about a
    layout, so inside pytest a failing check is reported as a test *failure* with the
    counterexample in the message (and ``python -O`` does not remove it, because it is
    raised explicitly). Bad *arguments* (a negative hop count, a pattern without
    lengths, a graph too large to search) raise ``ValueError`` subclasses instead.

    Attributes:
        prop: name of the property (``"causal"``, ``"reachable"``, ...).
        head: stored slice of the counterexample (the head; ``b * heads + h`` for a
            batched layout), or None.
        query: query position i (or None).
        key: key position j (or None).
        details: extra facts (dict) such as the degree found or the hop count.

    Example:
        >>> import maskc as mc
        >>> from maskc.guarantees import check_causal, GuaranteeError
        >>> try:
        ...     check_causal(mc.window(0, 1), q_len=4, block=2)
        ... except GuaranteeError as e:
        ...     (e.head, e.query, e.key)
        (0, 0, 1)
    """

    def __init__(self, prop: str, message: str, *, head: int | None = None, query: int | None = None,
                 key: int | None = None, **details):
        self.prop = prop
        self.head = head
        self.query = query
        self.key = key
        self.details = details
        super().__init__(message)

    @property
    def counterexample(self) -> tuple[int | None, int | None, int | None]:
        """``(head, query, key)``."""
        return (self.head, self.query, self.key)


def as_layout(x: Source, q_len: int | None = None, kv_len: int | None = None, block=128,
              heads: int | None = None) -> Layout:
    """A Layout from a layout (returned as is) or a pattern compiled at the given lengths."""
    if isinstance(x, Layout):
        if q_len is not None and q_len != x.q_len or kv_len is not None and kv_len != x.kv_len:
            raise ValueError(
                f"lengths q_len={q_len} kv_len={kv_len} given with a Layout of q_len={x.q_len} "
                f"kv_len={x.kv_len}; lengths are only for patterns"
            )
        return x
    if isinstance(x, Pattern):
        if q_len is None:
            raise ValueError(f"pattern {x.text()} needs q_len= (and optionally kv_len=, block=) to be checked")
        return _compile(x, q_len, kv_len, block=block, heads=heads)
    raise TypeError(f"expected a maskc Layout or Pattern, got {type(x).__name__}")


def n_heads_of(x: Source, heads: int | None) -> int:
    """Slices to examine: a layout's stored slices, or a pattern's heads([...]) count, ``heads=``, or 1."""
    if isinstance(x, Layout):
        return x.n_slices
    return int(heads or x.n_heads or 1)


def slice_name(lay: Layout, s: int) -> str:
    """``"head h"``, or ``"slice s (batch b, head h)"`` for a batched layout."""
    if lay.batch == 1:
        return f"head {s}"
    return f"slice {s} (batch {s // lay.heads}, head {s % lay.heads})"


def slice_rows(lay: Layout) -> np.ndarray:
    """Allowed keys per query row, int64 [slices, q_len] (batched layouts flattened batch-major)."""
    return lay.row_counts().reshape(lay.n_slices, lay.q_len)


def token_row(layout: Layout, s: int, i: int) -> np.ndarray:
    """Allowed keys of query ``i`` in stored slice ``s``: bool [kv_len]; O(blocks of that block row)."""
    Bq, Bk = layout.block_q, layout.block_k
    qb, r = divmod(int(i), Bq)
    lo, hi = int(layout.row_ptr[s, qb]), int(layout.row_ptr[s, qb + 1])
    out = np.zeros(layout.n_kb * Bk, dtype=bool) if hi > lo else np.zeros(layout.kv_len, dtype=bool)
    if hi > lo:
        tiles = layout.block_tiles(slice(lo, hi))
        cols = layout.col_idx[lo:hi].astype(np.int64)
        out[(cols[:, None] * Bk + np.arange(Bk)[None, :]).reshape(-1)] = tiles[:, r, :].reshape(-1)
    return out[: layout.kv_len]
